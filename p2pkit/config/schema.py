"""The recipe's schema: typed dataclasses, the allowed values and the section tables.

A recipe says everything a training run needs: the task, the data, the networks,
the objective and the training schedule. Component tables (``[generator]``,
``[discriminator]``, ``[objective]``, ``[task]``) hold a ``name`` from the registry
and any further keys are that component's options; everything else is a field of
[`DataConfig`][p2pkit.config.DataConfig] or [`TrainConfig`][p2pkit.config.TrainConfig].
This module imports nothing but the standard library and [`p2pkit.ranges`][p2pkit.ranges].
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from p2pkit.ranges import Range

# Allowed values, as types the dataclasses use and as tuples the data, augmentation,
# engine and command-line code check against: one definition each.
Direction = Literal["AtoB", "BtoA"]
Preprocess = Literal["resize_and_crop", "crop", "resize", "none"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Switch = Literal["auto", "on", "off"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
DistBackend = Literal["auto", "nccl", "gloo", "mpi", "xccl"]
Weights = Literal["auto", "ema", "raw"]

DIRECTIONS: tuple[str, ...] = typing.get_args(Direction)
PREPROCESS: tuple[str, ...] = typing.get_args(Preprocess)
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
SWITCHES: tuple[str, ...] = typing.get_args(Switch)
COMPILE_MODES: tuple[str, ...] = typing.get_args(CompileMode)
DIST_BACKENDS: tuple[str, ...] = typing.get_args(DistBackend)
WEIGHTS: tuple[str, ...] = typing.get_args(Weights)


@dataclass
class ComponentConfig:
    """A registered component: its ``name`` and the options passed to its factory."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where the images come from and how they are prepared (section 6.2).

    Attributes:
        dataset: dataset layout from the registry: ``aligned`` (A|B side by side),
            ``paired`` (``A/`` and ``B/`` folders) or ``single`` (one folder).
        root: the dataset folder; ``--data-root`` overrides it.
        source: where the data comes from: a name for ``p2pkit data download``,
            ``synth`` for the generated toy set, or a short description.
        train_split: sub-folder used for training (the root itself if absent).
        val_split: sub-folder used for the training sample grids and scored by
            ``evaluate`` unless ``--split`` names another.
        direction: ``AtoB`` or ``BtoA``: which side is the network's input.
        load_size: images are resized to this before the random crop (286).
        crop_size: training crop (256); must be a multiple of the U-Net's size.
        preprocess: ``resize_and_crop`` (the paper's jitter), ``crop``, ``resize``
            or ``none``.
        flip: random horizontal mirroring (section 6.2).
        skip_bad: warn and skip unusable files instead of stopping.
        cache_dir: optional folder for an on-disk cache of decoded images.
        max_images: use at most this many training images (0: all).
    """

    dataset: str = "aligned"
    root: str = ""
    source: str = ""
    train_split: str = "train"
    val_split: str = "val"
    direction: Direction = "AtoB"
    load_size: Annotated[int, Range(1, 16384)] = 286
    crop_size: Annotated[int, Range(1, 16384)] = 256
    preprocess: Preprocess = "resize_and_crop"
    flip: bool = True
    skip_bad: bool = False
    cache_dir: str = ""
    max_images: Annotated[int, Range(0)] = 0


@dataclass
class TrainConfig:
    """The optimisation schedule (sections 3.3 and 6.2) and speed settings.

    Attributes:
        epochs: epochs at the initial learning rate.
        epochs_decay: further epochs with the rate decaying linearly to zero.
        batch_size: images per iteration (1 in most of the paper's experiments).
        lr: Adam learning rate (2e-4).
        beta1, beta2: Adam momentum terms (0.5, 0.999).
        seed: seeds Python, NumPy and torch; the same seed gives the same run on CPU.
        device: ``auto`` (cuda, then mps, then cpu) or an explicit torch device.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` autocast.
        channels_last: ``auto``, ``on`` or ``off``: NHWC memory format.
        compile: ``auto``, ``on`` or ``off``: ``torch.compile`` the networks.
        compile_mode: ``torch.compile``'s mode when compiling: ``default``,
            ``reduce-overhead`` (CUDA graphs: removes the kernel-launch cost that
            dominates small batches on a fast GPU), ``max-autotune`` or
            ``max-autotune-no-cudagraphs``.
        log_every: iterations between loss-history rows.
        sample_every: iterations between sample grids (0: only at epoch ends).
        save_every: epochs between checkpoints (the last epoch is always saved).
        save_every_minutes: also save when this many minutes have passed since the
            last checkpoint (0: off), so a run killed at any moment loses at most
            that much work; 30 by default.
        save_every_iterations: also save every this many iterations (0: off).
        keep_last: step checkpoints kept on disk (older ones are pruned).
        max_iterations: stop after this many iterations in total (0: no limit); for
            quick checks.
        ema_decay: keep an exponential moving average of the generator's weights
            with this decay (``timm.utils.ModelEmaV3``; 0 turns it off, 0.999 is
            usual). Checkpoints then hold ``generator_ema`` as well, and sample
            grids, ``translate`` and ``evaluate`` use it. Not in the paper.
        ema_warmup: ramp the decay up from 0 over the first iterations (decay at
            step t is ``1 - (1 + t) ** -0.75``, capped at ``ema_decay``), so short
            runs do not average in the random initial weights.
        dist_backend: ``torch.distributed`` backend when the run is started by
            torchrun or ``--nproc``: ``auto`` (``nccl`` on CUDA, ``gloo`` on CPUs),
            ``nccl``, ``gloo``, ``mpi`` or ``xccl``.
        dist_timeout_minutes: how long a process waits for the others at a
            collective before the job fails (a process that hangs or dies stops the
            job within this time instead of freezing it).
        tensorboard: also write TensorBoard event files to ``RUN/tensorboard``
            (needs ``pip install "p2pkit[tensorboard]"``).
    """

    epochs: Annotated[int, Range(0)] = 100
    epochs_decay: Annotated[int, Range(0)] = 100
    batch_size: Annotated[int, Range(1, 65536)] = 1
    lr: Annotated[float, Range(0, 1, low_open=True)] = 2e-4
    beta1: Annotated[float, Range(0, 1, high_open=True)] = 0.5
    beta2: Annotated[float, Range(0, 1, high_open=True)] = 0.999
    seed: int = 0
    device: str = "auto"
    precision: Precision = "auto"
    channels_last: Switch = "auto"
    compile: Switch = "auto"
    compile_mode: CompileMode = "default"
    log_every: Annotated[int, Range(0)] = 20
    sample_every: Annotated[int, Range(0)] = 500
    save_every: Annotated[int, Range(0)] = 5
    keep_last: Annotated[int, Range(0)] = 3
    max_iterations: Annotated[int, Range(0)] = 0
    ema_decay: Annotated[float, Range(0, 1, high_open=True)] = 0.0
    ema_warmup: bool = True
    save_every_minutes: Annotated[float, Range(0)] = 30.0
    save_every_iterations: Annotated[int, Range(0)] = 0
    dist_backend: DistBackend = "auto"
    dist_timeout_minutes: Annotated[float, Range(0, low_open=True)] = 10.0
    tensorboard: bool = False


@dataclass
class Recipe:
    """A complete training recipe.

    Attributes:
        name: the recipe's name (also the default run name).
        description: one line for ``p2pkit recipes list``.
        paper: the paper's section, figure or table the recipe follows.
        task: how inputs and targets are made from the images (``translation``,
            ``colorization``, ``inpainting``).
        data: the dataset and its loading, a [`DataConfig`][p2pkit.config.DataConfig].
        train: the schedule and the engine's settings, a
            [`TrainConfig`][p2pkit.config.TrainConfig].
        generator: the registered generator and its options.
        discriminator: the registered discriminator and its options.
        objective: the registered objective and its options.
    """

    name: str = "custom"
    description: str = ""
    paper: str = ""
    task: ComponentConfig = field(default_factory=lambda: ComponentConfig("translation"))
    data: DataConfig = field(default_factory=DataConfig)
    generator: ComponentConfig = field(default_factory=lambda: ComponentConfig("unet_256"))
    discriminator: ComponentConfig = field(default_factory=lambda: ComponentConfig("patchgan_70"))
    objective: ComponentConfig = field(default_factory=lambda: ComponentConfig("l1_cgan"))
    train: TrainConfig = field(default_factory=TrainConfig)


COMPONENT_SECTIONS = {
    "task": "tasks",
    "generator": "generators",
    "discriminator": "discriminators",
    "objective": "objectives",
}
PLAIN_SECTIONS = {"data": DataConfig, "train": TrainConfig}
TOP_LEVEL = ("name", "description", "paper")

# Options the engine fills in from the task and the objective; a recipe may not set
# them, because a mismatch would only surface as a shape error deep in training.
ENGINE_OPTIONS = {
    "generator": ("in_channels", "out_channels"),
    "discriminator": ("in_channels", "out_channels", "conditional"),
}

_CHOICES = {
    "data.direction": DIRECTIONS,
    "data.preprocess": PREPROCESS,
    "train.precision": PRECISIONS,
    "train.channels_last": SWITCHES,
    "train.compile": SWITCHES,
    "train.compile_mode": (
        "default",
        "reduce-overhead",
        "max-autotune",
        "max-autotune-no-cudagraphs",
    ),
    "train.dist_backend": DIST_BACKENDS,
}
