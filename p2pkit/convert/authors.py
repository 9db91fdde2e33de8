"""Generators saved by the authors' PyTorch code, as p2pkit networks and run folders.

The pix2pix authors' implementation,
[pytorch-CycleGAN-and-pix2pix](https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix),
saves a generator as a plain ``state_dict`` (``latest_net_G.pth``, and the published models
such as ``facades_label2photo``). Its keys are the module paths of their network classes, so
the file says nothing about the options it was built with; the caller states them as an
[`AuthorsNetwork`][p2pkit.convert.authors.AuthorsNetwork], the way their ``--netG``,
``--norm`` and ``--no_dropout`` did.

Facts of their code this module relies on (read from ``models/networks.py``):

* ``UnetGenerator`` keeps one ``UnetSkipConnectionBlock`` in ``model``; each block holds its
  layers in an ``nn.Sequential`` called ``model``, with the next block inside it. The
  outermost block is ``[downconv, block, uprelu, upconv, tanh]`` (the inner block at index 1),
  a middle block ``[downrelu, downconv, downnorm, block, uprelu, upconv, upnorm]`` (index 3),
  plus ``Dropout(0.5)`` at the end when ``use_dropout``, and the innermost block
  ``[downrelu, downconv, uprelu, upconv, upnorm]``.
* A block's forward pass is ``torch.cat([x, model(x)], 1)``: the skip first, where
  p2pkit's U-Net puts it second, so the input channels of every transposed convolution that
  reads a concatenation come in the other order. ``model`` starts with an in-place
  ``LeakyReLU(0.2)``, which overwrites ``x`` before it is concatenated; that changes no
  output, because what reads the concatenation starts with ReLU, and
  ReLU(LeakyReLU(h)) = ReLU(h).
* Convolutions have a bias only with ``InstanceNorm2d`` (``use_bias``); the outermost
  transposed convolution always has one. With BatchNorm this includes the first and the
  innermost convolution, which p2pkit gives a bias: the import sets those biases to zero.
* ``--norm instance`` is ``InstanceNorm2d(affine=False, track_running_stats=False)``: no
  tensors. Files saved by PyTorch before 0.4 still list running statistics for it, which
  their loader drops, and so does this module.
* ``num_downs`` blocks in all, ``num_downs - 5`` of them (the ones just above the innermost)
  with dropout: 3 for ``unet_256`` (8 blocks), 2 for ``unet_128`` (7).
* ``ResnetGenerator`` is one ``nn.Sequential`` ``model``: reflection pad, 7x7 convolution,
  norm, ReLU; two stride-2 3x3 convolutions each with norm and ReLU; ``n_blocks``
  ``ResnetBlock``s whose ``conv_block`` is reflection pad, 3x3 convolution, norm, ReLU, an
  optional ``Dropout(0.5)``, reflection pad, 3x3 convolution, norm; two stride-2 3x3
  transposed convolutions (``output_padding=1``) each with norm and ReLU; reflection pad,
  7x7 convolution with a bias, Tanh.

The tables in the docs (Deploy and share, "Import the authors' checkpoints") list the mapping
[`unet_layers`][p2pkit.convert.authors.unet_layers] and
[`resnet_layers`][p2pkit.convert.authors.resnet_layers] compute.

Why this module is long: the two layouts (U-Net and ResNet) are the facts of one foreign
format, read by one loader that checks every key before anything is written; most of the lines
are the per-layer mapping and the messages that name the first key that does not fit.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from p2pkit.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from p2pkit.config import ComponentConfig

#: Where the networks this module reads are defined.
AUTHORS_CODE = "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix"

#: Their U-Nets and how many blocks (downsamplings, ``num_downs``) each has.
UNET_DEPTHS: dict[str, int] = {"unet_256": 8, "unet_128": 7}

#: Their ResNet generators and how many residual blocks each has.
RESNET_BLOCKS: dict[str, int] = {"resnet_9blocks": 9, "resnet_6blocks": 6}

#: Every ``--netG`` this module converts.
NETWORKS: tuple[str, ...] = (*UNET_DEPTHS, *RESNET_BLOCKS)

#: The ``--norm`` values of their code that a generator can have.
NORMS: tuple[str, ...] = ("batch", "instance")

#: The plugin distribution that provides p2pkit's ResNet generators.
RESNET_PLUGIN = "p2pkit-resnet"

#: What ``nn.DataParallel`` puts before every key when a wrapped network is saved.
DATA_PARALLEL_PREFIX = "module."

# Their size of the images (``--crop_size``) each generator is meant for.
_CROP_SIZES = {"unet_256": 256, "unet_128": 128, "resnet_9blocks": 256, "resnet_6blocks": 256}

# BatchNorm's step counter: PyTorch before 0.4.1 did not save it, and inference ignores it.
_OPTIONAL_BATCHNORM = ("num_batches_tracked",)
_BATCHNORM = ("weight", "bias", "running_mean", "running_var")
# What PyTorch before 0.4 saved for an InstanceNorm without running statistics.
_STALE_INSTANCENORM = ("running_mean", "running_var", "num_batches_tracked")

_HINT = (
    "give --netG, --norm, --ngf, --input-nc, --output-nc and --no-dropout as the file was "
    "trained with"
)


@dataclass(frozen=True)
class Layer:
    """One layer with tensors, by its module path in both layouts.

    Attributes:
        theirs: the module path in the authors' ``state_dict`` (``model.model.1.model.1``).
        ours: the module path in the p2pkit network (``down.1.1``).
        kind: ``"conv"``, a convolution or transposed convolution (``weight``, and ``bias``
            when ``bias``), or ``"norm"``, the normalisation after one (BatchNorm's
            ``weight``, ``bias``, ``running_mean``, ``running_var`` and
            ``num_batches_tracked``; nothing for their InstanceNorm).
        bias: whether their convolution has a bias. Where it has none and p2pkit's has
            one, the import sets p2pkit's to zero.
        swap_halves: the layer reads a skip concatenated with the decoder's features,
            which their blocks concatenate as ``[skip, decoder]`` and p2pkit's U-Net as
            ``[decoder, skip]``: the two halves of the weight's input channels (dimension 0
            of a transposed convolution's weight) trade places.
    """

    theirs: str
    ours: str
    kind: Literal["conv", "norm"]
    bias: bool = False
    swap_halves: bool = False


def unet_block_path(level: int) -> str:
    """Module path of their U-Net block ``level`` (0 is the outermost) in ``UnetGenerator``.

    The outermost block is ``model``; its inner block sits at index 1 of its ``model``
    Sequential, and every deeper block at index 3 of its parent's.
    """
    if level == 0:
        return "model.model"
    return "model.model.1" + ".model.3" * (level - 1) + ".model"


def unet_layers(depth: int, norm: str) -> list[Layer]:
    """The mapping of their ``UnetGenerator(num_downs=depth)`` onto p2pkit's `unet` of ``depth``.

    Args:
        depth: their ``num_downs`` (8 for ``unet_256``, 7 for ``unet_128``; at least 5,
            as their constructor requires); p2pkit's ``depth``.
        norm: ``"batch"`` or ``"instance"``.

    Returns:
        The layers in the order of p2pkit's forward pass: encoder, decoder, head. Their
        block ``k`` holds p2pkit's encoder layer ``down.k`` and decoder layer
        ``up.(depth - 1 - k)``; the outermost block's transposed convolution is ``head.1``.
        Every transposed convolution but the innermost reads a concatenation, whose halves
        are in the other order (``swap_halves``).
    """
    bias = norm == "instance"
    layers = [Layer(f"{unet_block_path(0)}.0", "down.0", "conv", bias)]
    for level in range(1, depth):
        block = unet_block_path(level)
        layers.append(Layer(f"{block}.1", f"down.{level}.1", "conv", bias))
        if level < depth - 1:  # the innermost block has no norm after its convolution
            layers.append(Layer(f"{block}.2", f"down.{level}.2", "norm"))
    for j in range(depth - 1):
        level = depth - 1 - j
        block = unet_block_path(level)
        conv, normed = (3, 4) if level == depth - 1 else (5, 6)
        layers.append(Layer(f"{block}.{conv}", f"up.{j}.1", "conv", bias, swap_halves=j > 0))
        layers.append(Layer(f"{block}.{normed}", f"up.{j}.2", "norm"))
    layers.append(Layer(f"{unet_block_path(0)}.3", "head.1", "conv", True, swap_halves=True))
    return layers


def resnet_layers(n_blocks: int, norm: str, dropout: bool) -> list[Layer]:
    """The mapping of their ``ResnetGenerator`` onto p2pkit-resnet's ``ResnetGenerator``.

    Args:
        n_blocks: residual blocks (9 for ``resnet_9blocks``, 6 for ``resnet_6blocks``).
        norm: ``"batch"`` or ``"instance"``.
        dropout: their ``use_dropout``: it adds a ``Dropout`` inside each residual block,
            which moves the block's second convolution from index 5 to 6.

    Returns:
        The layers in the order of the forward pass.
    """
    bias = norm == "instance"
    layers = [
        Layer("model.1", "stem.0.1", "conv", bias),
        Layer("model.2", "stem.1", "norm"),
        Layer("model.4", "down.0.0", "conv", bias),
        Layer("model.5", "down.0.1", "norm"),
        Layer("model.7", "down.1.0", "conv", bias),
        Layer("model.8", "down.1.1", "norm"),
    ]
    second = 6 if dropout else 5
    for i in range(n_blocks):
        theirs, ours = f"model.{10 + i}.conv_block", f"blocks.{i}.body"
        for index in (1, second):
            layers.append(Layer(f"{theirs}.{index}", f"{ours}.{index}", "conv", bias))
            layers.append(Layer(f"{theirs}.{index + 1}", f"{ours}.{index + 1}", "norm"))
    up = 10 + n_blocks
    layers += [
        Layer(f"model.{up}", "up.0.0", "conv", bias),
        Layer(f"model.{up + 1}", "up.0.1", "norm"),
        Layer(f"model.{up + 3}", "up.1.0", "conv", bias),
        Layer(f"model.{up + 4}", "up.1.1", "norm"),
        Layer(f"model.{up + 7}", "head.1", "conv", True),
    ]
    return layers


@dataclass(frozen=True)
class AuthorsNetwork:
    """A generator as their training options described it; the file itself does not say.

    Attributes:
        netG: their ``--netG``: one of [`NETWORKS`][p2pkit.convert.authors.NETWORKS].
        norm: their ``--norm``: ``"batch"`` (pix2pix's default) or ``"instance"``.
        dropout: their ``use_dropout``, i.e. not ``--no_dropout`` (pix2pix trains with it).
        input_nc: channels of the input image (their ``--input_nc``).
        output_nc: channels of the output image (their ``--output_nc``).
        ngf: filters of the first convolution (their ``--ngf``).
    """

    netG: str = "unet_256"
    norm: str = "batch"
    dropout: bool = True
    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64

    def __post_init__(self) -> None:
        if self.netG not in NETWORKS:
            raise ConfigError(
                f"--netG {self.netG} is not one of the authors' generators p2pkit converts; "
                f"use one of {', '.join(NETWORKS)}"
            )
        if self.norm not in NORMS:
            raise ConfigError(f"--norm {self.norm} is not one of {', '.join(NORMS)}; use one")

    @property
    def is_resnet(self) -> bool:
        """Whether this is one of their ResNet generators (needs the p2pkit-resnet plugin)."""
        return self.netG in RESNET_BLOCKS

    @property
    def crop_size(self) -> int:
        """The image size the network is meant for (their ``--crop_size``)."""
        return _CROP_SIZES[self.netG]

    def describe(self) -> str:
        """``unet_256 (norm batch, dropout, ngf 64, 3 -> 3 channels)``, for messages."""
        dropout = "dropout" if self.dropout else "no dropout"
        return (
            f"{self.netG} (norm {self.norm}, {dropout}, ngf {self.ngf}, "
            f"{self.input_nc} -> {self.output_nc} channels)"
        )

    def spec(self) -> dict[str, Any]:
        """The p2pkit generator with the same layers, as ``{"name", "options"}``.

        Their U-Nets become `unet` with their depth and their dropout placement
        (``dropout_offset = 1``, ``dropout_layers = depth - 5``); their ResNets the plugin's
        generator of the same name.
        """
        options: dict[str, Any] = {
            "in_channels": self.input_nc,
            "out_channels": self.output_nc,
            "ngf": self.ngf,
            "norm": self.norm,
            "dropout": 0.5 if self.dropout else 0.0,
        }
        if self.is_resnet:
            return {"name": self.netG, "options": options}
        depth = UNET_DEPTHS[self.netG]
        options.update(depth=depth, dropout_layers=depth - 5, dropout_offset=1)
        return {"name": "unet", "options": options}

    def layers(self) -> list[Layer]:
        """The key mapping for this network (see [`Layer`][p2pkit.convert.authors.Layer])."""
        if self.is_resnet:
            return resnet_layers(RESNET_BLOCKS[self.netG], self.norm, self.dropout)
        return unet_layers(UNET_DEPTHS[self.netG], self.norm)

    def build(self) -> nn.Module:
        """The p2pkit generator, built through the registry so that a run can record it.

        Raises:
            ConfigError: a ResNet generator while the p2pkit-resnet plugin is not installed.
        """
        from p2pkit.errors import RegistryError
        from p2pkit.registry import get_registry

        spec = self.spec()
        registry = get_registry("generators")
        if spec["name"] not in registry:
            raise ConfigError(
                f"--netG {self.netG} needs the {RESNET_PLUGIN} plugin, which is not installed; "
                f"install it (pip install {RESNET_PLUGIN}, or pip install -e "
                f"plugins/{RESNET_PLUGIN} in a p2pkit checkout)"
            )
        try:
            return registry.create(spec["name"], **spec["options"])
        except RegistryError as exc:  # an option out of range (--ngf 0)
            raise ConfigError(f"{self.describe()}: {exc}") from None


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(s) for s in t.shape) or "scalar"


def read_authors_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The ``state_dict`` in ``path``, read with ``torch.load(weights_only=True)`` only.

    Args:
        path: a ``.pth`` file their code saved (``latest_net_G.pth``).

    Returns:
        Its tensors by key, on the CPU, in the file's order.

    Raises:
        CheckpointError: the file is missing or unreadable, holds anything but tensors
            (``weights_only`` refuses pickled code), or is not a flat mapping of tensors.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path} is not a file; pass the .pth file the authors' code saved "
            "(such as checkpoints/NAME/latest_net_G.pth)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not its own
        text = str(exc)
        detail = text.partition("WeightsUnpickler error:")[2].split("Check the documentation")[0]
        detail = " ".join(detail.split()).split(". Please use")[0].rstrip(".")
        if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in detail:
            raise CheckpointError(
                f"{path}: torch.load(weights_only=True) refused it ({detail}); p2pkit reads "
                "only files that hold nothing but tensors, such as the latest_net_G.pth the "
                "authors' code saves"
            ) from None
        first = detail or (text.strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"{path} is not a PyTorch file torch.load can read ({first}); pass the .pth "
            "file the authors' code saved"
        ) from None
    if not isinstance(obj, Mapping) or not obj:
        kind = "empty" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
        raise CheckpointError(
            f"{path} holds {kind}, not a generator's state_dict; pass the latest_net_G.pth "
            "(or NNN_net_G.pth) file the authors' code saved"
        )
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor; this is not "
                "a generator's state_dict as the authors' code saves it (latest_net_G.pth)"
            )
        state[key] = value
    return state


def _strip_data_parallel(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, Any], str]:
    """``state`` without the ``module.`` prefix DataParallel adds to every key, and the prefix."""
    if all(key.startswith(DATA_PARALLEL_PREFIX) for key in state):
        n = len(DATA_PARALLEL_PREFIX)
        return {key[n:]: value for key, value in state.items()}, DATA_PARALLEL_PREFIX
    return dict(state), ""


def convert_state_dict(
    state: Mapping[str, torch.Tensor], network: AuthorsNetwork, *, where: str = "checkpoint"
) -> nn.Module:
    """Their generator's ``state_dict`` as a p2pkit generator holding the same weights.

    Every tensor is checked before anything is loaded: the first key of the file, in the
    order of the forward pass, that is missing, has another shape or does not belong to
    ``network`` stops the conversion. A ``module.`` prefix on every key (a network saved
    inside ``nn.DataParallel``) is removed first; BatchNorm's ``num_batches_tracked`` may be
    absent (older PyTorch); running statistics listed for an InstanceNorm (PyTorch before
    0.4) are dropped, as their loader does.

    Args:
        state: the file's tensors (see
            [`read_authors_file`][p2pkit.convert.authors.read_authors_file]).
        network: the options the file was trained with.
        where: the file, for messages.

    Returns:
        The p2pkit generator (built by the registry, so a run can record its spec), on the
        CPU, in training mode as built. In eval mode its output (N, output_nc, H, W) in
        [-1, 1] for an input (N, input_nc, H, W) in [-1, 1] is theirs up to float rounding.

    Raises:
        CheckpointError: one line naming the first key that does not fit, with its shapes.
        ConfigError: the network cannot be built (a ResNet without the plugin).
    """
    import torch

    G = network.build()
    own = G.state_dict()
    theirs, prefix = _strip_data_parallel(state)
    used: set[str] = set()
    converted: dict[str, torch.Tensor] = {}
    what = network.describe()

    def problem(text: str) -> CheckpointError:
        return CheckpointError(f"{where}: {text}; {_HINT}")

    for layer in network.layers():
        if layer.kind == "conv":
            expected = {"weight": True, "bias": True} if layer.bias else {"weight": True}
            stale: tuple[str, ...] = ()
        elif network.norm == "batch":
            expected = {name: True for name in _BATCHNORM}
            expected.update({name: False for name in _OPTIONAL_BATCHNORM})
            stale = ()
        else:
            expected, stale = {}, _STALE_INSTANCENORM
        for name, required in expected.items():
            key, ours = f"{layer.theirs}.{name}", f"{layer.ours}.{name}"
            target = own[ours]
            if key not in theirs:
                if required:
                    raise problem(
                        f"{prefix}{key} ({_shape(target)}) is missing from the file, and "
                        f"{what} needs it"
                    )
                converted[ours] = target  # BatchNorm's step counter, as a fresh layer has it
                continue
            value = theirs[key]
            if value.shape != target.shape:
                raise problem(
                    f"{prefix}{key} is {_shape(value)} in the file but {_shape(target)} in {what}"
                )
            if layer.swap_halves and name == "weight":
                half = value.shape[0] // 2
                value = torch.cat([value[half:], value[:half]], dim=0)
            converted[ours] = value.to(target.dtype)
            used.add(key)
        ours_bias = f"{layer.ours}.bias"
        if layer.kind == "conv" and not layer.bias and ours_bias in own:
            converted[ours_bias] = torch.zeros_like(own[ours_bias])
        # Tensors of this layer the network does not have, in the file's order.
        start = f"{layer.theirs}."
        for key in theirs:
            name = key[len(start) :] if key.startswith(start) else None
            if name is None or "." in name or key in used:
                continue
            if name in stale:
                used.add(key)
                continue
            raise problem(f"{prefix}{key} ({_shape(theirs[key])}) is in the file but not in {what}")
    for key, value in theirs.items():
        if key not in used:
            raise problem(f"{prefix}{key} ({_shape(value)}) is in the file but not in {what}")
    if set(converted) != set(own):  # the tables above would be wrong: a bug, not the file
        left = sorted(set(own) - set(converted))
        raise RuntimeError(f"the mapping for {network.netG} leaves out {left[:3]}")
    G.load_state_dict(converted, strict=True)
    return G


def task_config(
    task: str, input_nc: int | None = None, output_nc: int | None = None
) -> tuple[ComponentConfig, int, int]:
    """The recipe's task and the generator's channels, made to agree.

    Args:
        task: a registered task (``translation``, ``colorization``, ``inpainting``...).
        input_nc: the generator's input channels, or None for the task's.
        output_nc: the generator's output channels, or None for the task's.

    Returns:
        The task as a recipe's ``[task]`` table, and the input and output channels.

    Raises:
        ConfigError: the task is unknown, or takes other channel counts than given.
    """
    from p2pkit.config import ComponentConfig
    from p2pkit.errors import RegistryError
    from p2pkit.registry import get_registry

    options: dict[str, int] = {}
    if task == "translation":
        for key, value in (("in_channels", input_nc), ("out_channels", output_nc)):
            if value is not None and value != 3:
                options[key] = value
    try:
        built = get_registry("tasks").create(task, **options)
    except RegistryError as exc:
        raise ConfigError(f"--task {task}: {exc}") from None
    in_ch, out_ch = int(built.in_channels), int(built.out_channels)
    for flag, given, needed in (
        ("--input-nc", input_nc, in_ch),
        ("--output-nc", output_nc, out_ch),
    ):
        if given is not None and given != needed:
            raise ConfigError(
                f"{flag} {given} does not fit task {task}, whose generator has {needed}; drop "
                f"{flag} or choose the task the file was trained for"
            )
    return ComponentConfig(task, options), in_ch, out_ch


def import_authors(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    network: AuthorsNetwork,
    *,
    direction: str = "AtoB",
    task: str = "translation",
    crop_size: int | None = None,
    name: str | None = None,
) -> Path:
    """Convert their generator file into a p2pkit run folder holding only that generator.

    The folder is laid out like a training run's: ``recipe.toml`` and
    ``checkpoints/step-00000000`` with ``latest`` pointing at it, whose meta records the
    generator's spec, a recipe (the network, ``data.direction``, ``data.crop_size``, the task)
    and ``contents = "generator"``
    ([`GENERATOR_ONLY`][p2pkit.engine.build.GENERATOR_ONLY]); ``imported`` names the source
    file, its sha256 and the options given. Nothing is written unless every tensor fits: the
    folder is assembled beside ``out`` and renamed into place.

    Args:
        checkpoint: their ``.pth`` file.
        out: the run folder to create; it must not exist or be an empty folder.
        network: the options the file was trained with; its channels must be the task's.
        direction: their ``--direction``: ``AtoB`` or ``BtoA`` (which half of an aligned
            A|B image is the input).
        task: the p2pkit task that turns images into the generator's inputs and back.
        crop_size: the image size the recipe records (``evaluate`` resizes to it); None
            takes the network's own (256, or 128 for ``unet_128``).
        name: the recipe's name; None takes the folder's name.

    Returns:
        The run folder.

    Raises:
        ConfigError: ``out`` holds files, an option is invalid, or the ResNet plugin is
            missing.
        CheckpointError: the file cannot be read or does not fit ``network``.
    """
    from p2pkit.config import (
        DIRECTIONS,
        ComponentConfig,
        DataConfig,
        Recipe,
        recipe_to_dict,
        recipe_to_toml,
    )
    from p2pkit.config import validate as validate_recipe
    from p2pkit.engine.build import CHECKPOINT_FORMAT, GENERATOR_ONLY, stored_specs
    from p2pkit.engine.checkpoint import save_checkpoint
    from p2pkit.files import sha256_file

    source, out = Path(checkpoint), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not an empty folder; choose another --out")
    if direction not in DIRECTIONS:
        raise ConfigError(f"--direction {direction} is not one of {', '.join(DIRECTIONS)}")
    task_table, _, _ = task_config(task, network.input_nc, network.output_nc)
    size = crop_size if crop_size is not None else network.crop_size
    recipe = Recipe(
        name=name or out.name,
        description=f"{network.describe()} imported from {source.name} (the authors' code)",
        paper="trained by the authors' code, not by p2pkit",
        task=task_table,
        data=DataConfig(
            direction=direction,  # type: ignore[arg-type]
            crop_size=size,
            load_size=max(size, round(size * 286 / 256)),  # their default jitter, 286 for 256
        ),
    )
    # The engine fills in the channels from the task, so the recipe leaves them out.
    spec = network.spec()
    generator_options = {
        k: v for k, v in spec["options"].items() if k not in ("in_channels", "out_channels")
    }
    recipe.generator = ComponentConfig(spec["name"], generator_options)
    validate_recipe(recipe, origin=f"the recipe for {out}")

    G = convert_state_dict(read_authors_file(source), network, where=str(source))
    imported = {
        "from": AUTHORS_CODE,
        "file": source.name,
        "sha256": sha256_file(source),
        "options": {
            "netG": network.netG,
            "norm": network.norm,
            "no_dropout": not network.dropout,
            "input_nc": network.input_nc,
            "output_nc": network.output_nc,
            "ngf": network.ngf,
            "direction": direction,
        },
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create {out.parent}: {exc.strerror}; choose another --out"
        ) from None
    tmp = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
    try:
        save_checkpoint(
            tmp,
            step=0,
            modules={"generator": G},
            networks=stored_specs({"generator": G}),
            recipe=recipe_to_dict(recipe),
            meta={"format": CHECKPOINT_FORMAT, "contents": GENERATOR_ONLY, "imported": imported},
            rng=False,
        )
        (tmp / "recipe.toml").write_text(recipe_to_toml(recipe), encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty, checked above
        os.rename(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"cannot write {out}: {exc.strerror or exc}; check free disk space and permissions"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


__all__ = [
    "AUTHORS_CODE",
    "DATA_PARALLEL_PREFIX",
    "NETWORKS",
    "NORMS",
    "RESNET_BLOCKS",
    "RESNET_PLUGIN",
    "UNET_DEPTHS",
    "AuthorsNetwork",
    "Layer",
    "convert_state_dict",
    "import_authors",
    "read_authors_file",
    "resnet_layers",
    "task_config",
    "unet_block_path",
    "unet_layers",
]
