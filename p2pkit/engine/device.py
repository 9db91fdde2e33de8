"""Device and speed settings: which device, which autocast precision, which layout.

The ``auto`` defaults are chosen per device from measurements (see
``benchmarks/train_step.py`` and docs/performance.md); an explicit setting in the
recipe always wins.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from p2pkit.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; anything else is checked and returned."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"train.device: '{name}' is not a torch device (try cpu or cuda)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but no CUDA GPU is visible; use auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device is mps but MPS is not available; use auto or cpu")
    return device


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


@dataclass(frozen=True)
class SpeedSettings:
    """Resolved speed settings for one run.

    Attributes:
        device: where the networks run.
        autocast_dtype: torch.bfloat16 / torch.float16 for autocast, None for fp32.
        channels_last: use the NHWC memory format.
        compile: wrap the networks with ``torch.compile``.
    """

    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool
    compile: bool

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context for forward passes (a no-op for fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]

    def describe(self) -> str:
        return (
            f"device {self.device}, {self.precision}, "
            f"channels_last {'on' if self.channels_last else 'off'}, "
            f"compile {'on' if self.compile else 'off'}"
        )


#: The number formats a precision name stands for (``train.precision`` and ``--precision``,
#: less ``auto``): one map for training's autocast and inference's cast weights.
PRECISION_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def resolve_speed(device: str, precision: str, channels_last: str, compile: str) -> SpeedSettings:
    """Turn the recipe's ``train`` speed fields into concrete settings.

    Defaults (``auto``): on CUDA, bf16 autocast where supported (fp16 otherwise),
    channels_last and no compile (its start-up cost pays off only in long runs);
    on a CPU with native bf16 instructions (AVX512-BF16 or AMX), bf16 autocast,
    otherwise fp32, with contiguous NCHW and no compile (neither helped there,
    docs/performance.md); on MPS, fp32. Autocast keeps weights, BatchNorm, the
    losses and the optimiser in fp32, so only the convolutions' products are
    rounded to bf16.
    """
    dev = resolve_device(device)
    if precision == "auto":
        if dev.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif dev.type == "cpu" and cpu_has_fast_bf16():
            precision = "bf16"
        else:
            precision = "fp32"
    dtype = None if precision == "fp32" else PRECISION_DTYPES[precision]  # None: no autocast
    if dtype is torch.float16 and dev.type == "cpu":
        raise ConfigError("train.precision fp16 is for GPUs; use bf16 or fp32 on a CPU")
    cl = {"on": True, "off": False, "auto": dev.type == "cuda"}[channels_last]
    comp = {"on": True, "off": False, "auto": False}[compile]
    return SpeedSettings(dev, dtype, cl, comp)
