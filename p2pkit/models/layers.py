"""Building blocks shared by the paper's networks: normalisation and weight init."""

from __future__ import annotations

from torch import nn

NORMS = ("batch", "instance", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation layer ``kind`` for ``channels`` feature maps.

    Args:
        kind: ``"batch"`` (the paper's choice, appendix 6.1), ``"instance"`` (no
            running statistics, as in the authors' code) or ``"none"``.
        channels: number of feature maps.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {kind!r}")


def check_norm(kind: str) -> str:
    """Validate a norm name early, so a bad option fails before any layer is built."""
    if kind not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {kind!r}")
    return kind


def uses_bias(norm: str) -> bool:
    """A convolution followed by BatchNorm needs no bias: BatchNorm's shift replaces it."""
    return norm != "batch"


def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Initialise as in section 6.2: weights from N(0, 0.02), BatchNorm scale from N(1, 0.02).

    Biases start at zero. Returns ``module`` for chaining.
    """

    def visit(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)

    module.apply(visit)
    return module


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
