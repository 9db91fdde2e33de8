"""A trained generator rebuilt from its checkpoint, with the task and data it was trained with.

A checkpoint records the generator's spec and the resolved recipe
([`p2pkit.engine.build`][p2pkit.engine.build]), so nothing has to be repeated on the command line.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from p2pkit.config import WEIGHTS, DataConfig
from p2pkit.engine.build import (
    build_network,
    build_task,
    check_run_format,
    recipe_data,
    recipe_task,
)
from p2pkit.errors import CheckpointError, ConfigError, RegistryError
from p2pkit.registry import missing_provider_message


@dataclass
class TrainedModel:
    """A generator rebuilt from a checkpoint, with its task and data settings.

    Attributes:
        generator: the network, on ``device``, in eval mode; None when loaded with
            ``network=False`` (another engine, such as an exported ONNX file, supplies it).
        task: the task component (makes inputs, turns outputs into images).
        meta: the checkpoint's metadata.
        checkpoint: the checkpoint folder.
        device: where ``generator`` runs.
        weights: ``"ema"`` when the generator holds the moving average of its
            weights (``train.ema_decay``), ``"raw"`` for the trained weights.
    """

    generator: nn.Module | None
    task: Any
    meta: dict[str, Any]
    checkpoint: Path
    device: torch.device
    weights: str = "raw"

    @property
    def data(self) -> DataConfig:
        """The data settings the run was trained with (its recipe's ``[data]``)."""
        return recipe_data(self.meta)

    @property
    def direction(self) -> str:
        return self.data.direction

    @property
    def crop_size(self) -> int:
        return self.data.crop_size


def load_trained(
    checkpoint: str | Path,
    device: str = "auto",
    weights: str = "auto",
    *,
    fold: bool = False,
    network: bool = True,
    precision: str = "fp32",
) -> TrainedModel:
    """Rebuild the generator and task recorded in ``checkpoint`` (run or step folder).

    Args:
        checkpoint: a run folder (its latest checkpoint) or a checkpoint folder.
        device: ``auto``, ``cpu``, ``cuda``...
        weights: ``auto`` takes the moving average of the generator's weights when
            the run kept one (``train.ema_decay > 0``) and the trained weights
            otherwise; ``ema`` and ``raw`` choose explicitly.
        fold: return an eval-only generator, BatchNorm folded into its convolutions and
            dropout removed ([`fold_batchnorm`][p2pkit.models.fold.fold_batchnorm]): the same
            eval-mode outputs to float rounding, faster. Leave it off to train, to export, or
            to run the paper's test-time protocol, which needs the BatchNorm layers and dropout.
        network: False reads only the checkpoint's description (task, data settings,
            networks' specs), neither its tensors nor a network: for another engine, such as
            [`with_onnx_engine`][p2pkit.inference.onnx.with_onnx_engine]. It saves the
            build and the weights' read and check (about 1 s of start-up for ``unet_256``).
        precision: ``fp32`` (as trained), or ``bf16`` / ``fp16``: an eval-only generator
            (BatchNorm folded in fp32, as with ``fold``) whose weights are then cast to that
            dtype, so it runs with no per-call weight casts; it takes and returns float32
            through [`translate_tensor`][p2pkit.inference.translate_tensor]. Outputs differ
            from fp32 by more than float rounding (a few 8-bit levels); see
            [`check_precision`][p2pkit.inference.model.check_precision] for where each runs.

    Raises:
        ConfigError: ``weights="ema"`` for a run that kept no average, or a ``precision``
            this device cannot run (see ``check_precision``).
        CheckpointError: the checkpoint is missing, damaged or does not fit.
    """
    from p2pkit.engine.allocator import tune_allocator
    from p2pkit.engine.checkpoint import load_checkpoint
    from p2pkit.engine.device import resolve_device

    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    dev = resolve_device(device)
    dtype = check_precision(precision, dev)
    tune_allocator()
    ckpt = load_checkpoint(checkpoint, tensors=False)  # the description; the tensors below
    has_ema = "generator_ema" in (ckpt.meta.get("modules") or {})
    if weights == "ema" and not has_ema:
        raise ConfigError(
            f"checkpoint {ckpt.path} holds no EMA weights (the run had train.ema_decay = 0); "
            "use --weights raw"
        )
    chosen = "ema" if has_ema and weights != "raw" else "raw"
    meta_file = ckpt.path / "meta.json"
    check_run_format(ckpt.meta, meta_file)
    spec = ckpt.meta["networks"]["generator"]
    try:
        task = build_task(recipe_task(ckpt.meta))
    except RegistryError as exc:
        raise CheckpointError(f"{meta_file}: recipe task: {exc}") from None
    if not network:
        return TrainedModel(None, task, ckpt.meta, Path(ckpt.path), dev, chosen)
    # The tensors file is read, sha256-checked and parsed in a thread while the network is
    # built (both release the interpreter lock): for unet_256 on a 2-core CPU, 0.81 -> 0.57 s
    # of every translate, evaluate, export and serve start-up. Same checkpoint folder as the
    # description, even if training writes a newer one meanwhile.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="p2pkit-load") as pool:
        loading = pool.submit(load_checkpoint, ckpt.path)
        try:
            G = build_network("generators", spec, for_inference=True)
        except RegistryError as exc:  # out-of-range options included: meta.json is data
            missing = missing_provider_message("generators", spec["name"], spec.get("provider"))
            if missing is not None:  # trained with a plugin that is not installed here
                raise CheckpointError(f"{meta_file}: networks.generator: {missing}") from None
            raise CheckpointError(
                f"{meta_file}: networks.generator: {exc}; the file was changed since training "
                "or is not from p2pkit"
            ) from None
        ckpt = loading.result()
    module = "generator_ema" if chosen == "ema" else "generator"
    ckpt.load_module(module, G, expected_options=spec["options"])
    G.to(dev).eval()
    if fold or dtype != torch.float32:
        from p2pkit.models.fold import fold_batchnorm

        # Folded in fp32 first: BatchNorm's running variance rounded to bf16 would move
        # every channel's scale by up to 0.4% before any convolution ran.
        G = fold_batchnorm(G, inplace=True)
    G.to(dtype)
    return TrainedModel(G, task, ckpt.meta, Path(ckpt.path), dev, chosen)


def check_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype for ``precision`` on ``device``, or a one-line error saying why not.

    bf16 runs on GPUs and on CPUs with native bf16 instructions (AVX512-BF16 or AMX), where
    it is about twice as fast as fp32 (docs/performance.md); elsewhere a CPU emulates it,
    slower than fp32, so it is refused. fp16 is for GPUs.

    Raises:
        ConfigError: an unknown precision, or one the device cannot run fast.
    """
    from p2pkit.engine.device import PRECISION_DTYPES, cpu_has_fast_bf16

    if precision not in PRECISION_DTYPES:
        choices = ", ".join(PRECISION_DTYPES)
        raise ConfigError(f"precision must be one of {choices}, not {precision!r}")
    if device.type == "cpu" and precision == "fp16":
        raise ConfigError("--precision fp16 is for GPUs; use bf16 or fp32 on a CPU")
    if device.type == "cpu" and precision == "bf16" and not cpu_has_fast_bf16():
        raise ConfigError(
            "--precision bf16: this CPU has no native bf16 instructions (AVX512-BF16 or AMX), "
            "so bf16 would be slower than fp32 here; use fp32"
        )
    return PRECISION_DTYPES[precision]


__all__ = ["WEIGHTS", "TrainedModel", "check_precision", "load_trained"]
