"""Building blocks shared by the paper's networks: normalisation, weight init, up/down convs."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from p2pkit.ranges import Range

# Declared option ranges (checked by the registry before a network is built). They are
# sanity limits: 256 is 4x the paper's widest setting (unet_256 at ngf 256 already has
# 870 M parameters), and depth 12 means inputs of 4096 px multiples.
Channels = Annotated[int, Range(1, 64)]
Width = Annotated[int, Range(1, 256)]
Depth = Annotated[int, Range(2, 12)]
Layers = Annotated[int, Range(0, 12)]
DropoutRate = Annotated[float, Range(0, 1, high_open=True)]

#: The normalisation layers a network may use; a ``Literal`` so a recipe's ``norm`` is
#: checked when the recipe loads, not when the network is built.
Norm = Literal["batch", "syncbatch", "instance", "none"]
NORMS: tuple[str, ...] = get_args(Norm)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation layer ``kind`` for ``channels`` feature maps.

    Args:
        kind: ``"batch"`` (the paper's choice, appendix 6.1), ``"syncbatch"``
            (BatchNorm whose statistics the trainer pools over all processes of a
            multi-GPU run; a plain BatchNorm layer here, so the weights load
            anywhere), ``"instance"`` (no running statistics, as in the authors'
            code) or ``"none"``.
        channels: number of feature maps.
    """
    if kind in ("batch", "syncbatch"):
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
    return norm not in ("batch", "syncbatch")


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


# On a CPU, oneDNN's 4x4 stride-2 (transposed) convolutions are slow on the U-Net's
# innermost feature maps (a few pixels, 512-1024 channels): the work there is a
# handful of large matrix products, which are faster as explicit matmuls with
# unfold/fold. Measured with bf16 autocast at batch 1 on a 2-core AVX512-BF16 CPU
# (docs/performance.md): the 1024->512 up-convolution at 2x2 input took 110 ms
# natively and 17 ms as matmul + fold. Thresholds are on input height * width.
# Without autograd (inference) the matmul form of the up-convolution also wins at 8x8,
# and at any size when it makes an image (1-4 output channels, the U-Net's last layer):
# oneDNN's transposed convolution runs at about 20 GFLOP/s there. Measured in fp32 on a
# 2-core AMD EPYC, 128 -> 3 channels at 128x128 input: 71 ms natively and 32 ms as
# matmul + fold at batch 8, 6.8 and 4.7 ms at batch 1; at 16 output channels native wins.
_MATMUL_DOWN_MAX_PIXELS = 16 * 16
_MATMUL_UP_MAX_PIXELS = 4 * 4
_MATMUL_UP_MAX_PIXELS_NO_GRAD = 8 * 8
_MATMUL_UP_MAX_OUT_CHANNELS_NO_GRAD = 4


def _use_matmul(x: torch.Tensor, max_pixels: int) -> bool:
    return x.device.type == "cpu" and x.dim() == 4 and x.shape[-2] * x.shape[-1] <= max_pixels


class DownConv(nn.Conv2d):
    """4x4 stride-2 convolution (the paper's C_k downsampling), padding 1.

    Identical parameters and results to ``nn.Conv2d``; on a CPU, small inputs run
    as ``unfold`` + matmul, which is several times faster there.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 4, 2, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _use_matmul(x, _MATMUL_DOWN_MAX_PIXELS):
            return super().forward(x)
        n, _, h, w = x.shape
        cols = F.unfold(x, 4, stride=2, padding=1)  # (N, Cin * 16, L)
        y = torch.matmul(self.weight.reshape(self.out_channels, -1), cols)
        y = y.reshape(n, self.out_channels, h // 2, w // 2)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1).to(y.dtype)


class UpConv(nn.ConvTranspose2d):
    """4x4 stride-2 transposed convolution (the decoder's upsampling), padding 1.

    Identical parameters and results to ``nn.ConvTranspose2d``; on a CPU, small
    inputs, and without autograd also a last layer of 1-4 output channels, run as
    matmul + ``fold`` (the adjoint of the convolution's unfold).
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 4, 2, 1, bias=bias)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if torch.is_grad_enabled():
            limit = _MATMUL_UP_MAX_PIXELS
        elif self.out_channels <= _MATMUL_UP_MAX_OUT_CHANNELS_NO_GRAD:
            limit = x.shape[-2] * x.shape[-1]
        else:
            limit = _MATMUL_UP_MAX_PIXELS_NO_GRAD
        if output_size is not None or not _use_matmul(x, limit):
            return super().forward(x, output_size)
        n, cin, h, w = x.shape
        weight = self.weight.reshape(cin, self.out_channels * 16).t()
        if n > 1 and h * w > _MATMUL_UP_MAX_PIXELS_NO_GRAD:
            # A large image (the last layer): one image at a time. The batched matmul moved
            # the whole (N, Cin, H * W) input into (N * H * W, Cin) and back, two copies that
            # cost more than the product (32 against 40 ms for eight 128 px inputs, fp32).
            y = x.new_empty(n, self.out_channels, 2 * h, 2 * w)
            for i in range(n):
                cols = torch.mm(weight, x[i].reshape(cin, h * w))  # (Cout * 16, H * W)
                y[i] = F.fold(cols, (2 * h, 2 * w), kernel_size=4, stride=2, padding=1)
        else:
            cols = torch.matmul(weight, x.reshape(n, cin, h * w))  # (N, Cout * 16, H * W)
            y = F.fold(cols, (2 * h, 2 * w), kernel_size=4, stride=2, padding=1)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1).to(y.dtype)
