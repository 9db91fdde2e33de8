"""The ResNet generator of Johnson et al. (2016) for p2pkit, shipped as a separate plugin.

Johnson, Alahi and Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution" (ECCV 2016) transform an image with a residual network that works at a
quarter of the input resolution; the pix2pix authors offer it as the alternative to their
U-Net. The layers, for ``ngf`` = 64 and 3 -> 3 channels:

* stem: reflection pad 3, 7x7 convolution to ``ngf``, norm, ReLU (full resolution);
* two 3x3 stride-2 convolutions to ``2 * ngf`` and ``4 * ngf``, each with norm and ReLU
  (half, then quarter resolution);
* ``n_blocks`` residual blocks at ``4 * ngf`` channels: ``h + F(h)`` with ``F`` = reflection
  pad 1, 3x3 convolution, norm, ReLU, optional dropout, reflection pad 1, 3x3 convolution,
  norm (no activation after the sum);
* two 3x3 stride-2 transposed convolutions back to ``2 * ngf`` and ``ngf`` channels, each with
  norm and ReLU (half, then full resolution);
* head: reflection pad 3, 7x7 convolution to the output channels, Tanh.

Sizes: the two stride-2 steps need sides that are multiples of 4 (``size_multiple``), and a
reflection pad of ``p`` needs more than ``p`` pixels on each side, so the residual blocks'
pad of 1 at a quarter of the input needs inputs of at least 8 px (``min_size``).
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from p2pkit.models import (
    Channels,
    DropoutRate,
    Norm,
    Width,
    check_norm,
    init_weights,
    norm_layer,
    uses_bias,
)
from p2pkit.ranges import Range

#: Number of residual blocks: 9 (``resnet_9blocks``, for 256 px) and 6 (``resnet_6blocks``,
#: for 128 px) are the usual choices; 32 is a sanity limit (about 38 M parameters at ngf 64).
Blocks = Annotated[int, Range(1, 32)]

#: Two stride-2 downsamplings: sides must be multiples of 2**2.
SIZE_MULTIPLE = 4

#: The smallest side the network accepts. ReflectionPad2d(p) needs an input side > p. The
#: residual blocks pad by 1 at side / 4, so side / 4 >= 2; the stems pad by 3 at full
#: size, which 8 px also satisfies. At 4 px the blocks would see 1x1 maps and fail.
MIN_SIZE = 8


class ResidualBlock(nn.Module):
    """``x + F(x)`` at constant width, where F is two reflection-padded 3x3 convolutions.

    Shapes: (N, channels, H, W) -> (N, channels, H, W), with H, W >= 2.
    """

    def __init__(self, channels: int, norm: str, dropout: float) -> None:
        super().__init__()
        bias = uses_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W): the input plus the residual branch."""
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """ResNet generator (Johnson et al. 2016): downsample by 4, residual blocks, upsample by 4.

    Args:
        in_channels: channels of the input image (1 to 64; the engine sets it from the task).
        out_channels: channels of the output image (1 to 64; set by the engine).
        ngf: filters of the first convolution (1 to 256); the residual blocks use ``4 * ngf``.
        n_blocks: number of residual blocks (1 to 32).
        norm: ``"batch"`` (the default, as the pix2pix authors use for this network),
            ``"syncbatch"``, ``"instance"`` or ``"none"`` (see
            [`norm_layer`][p2pkit.models.layers.norm_layer]).
        dropout: dropout probability inside each residual block, in [0, 1); 0 (the
            default) leaves it out, as the pix2pix authors do for their ResNet generators.

    Attributes:
        size_multiple: 4, for the two stride-2 steps.
        min_size: 8, the smallest side the residual blocks' reflection padding allows.

    Shapes:
        input (N, in_channels, H, W) float in [-1, 1], H and W multiples of 4 and at
        least 8; output (N, out_channels, H, W) float in [-1, 1] (Tanh).
    """

    def __init__(
        self,
        in_channels: Channels = 3,
        out_channels: Channels = 3,
        ngf: Width = 64,
        n_blocks: Blocks = 9,
        norm: Norm = "batch",
        dropout: DropoutRate = 0.0,
    ) -> None:
        super().__init__()
        check_norm(norm)
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be at least 1, not {n_blocks}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_blocks = n_blocks
        self.size_multiple = SIZE_MULTIPLE
        self.min_size = MIN_SIZE
        bias = uses_bias(norm)

        def stage(conv: nn.Module, channels: int) -> nn.Sequential:
            return nn.Sequential(conv, norm_layer(norm, channels), nn.ReLU())

        self.stem = stage(
            nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias)), ngf
        )
        self.down = nn.Sequential(
            stage(nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1, bias=bias), 2 * ngf),
            stage(nn.Conv2d(2 * ngf, 4 * ngf, 3, stride=2, padding=1, bias=bias), 4 * ngf),
        )
        self.blocks = nn.Sequential(
            *(ResidualBlock(4 * ngf, norm, dropout) for _ in range(n_blocks))
        )
        # output_padding=1 makes each transposed convolution exactly double the side.
        self.up = nn.Sequential(
            stage(
                nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, 2, padding=1, output_padding=1, bias=bias),
                2 * ngf,
            ),
            stage(
                nn.ConvTranspose2d(2 * ngf, ngf, 3, 2, padding=1, output_padding=1, bias=bias),
                ngf,
            ),
        )
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh())
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (N, in_channels, H, W) in [-1, 1] to (N, out_channels, H, W) in
        [-1, 1]; H and W are multiples of 4, at least 8."""
        h, w = x.shape[-2:]
        if h < self.min_size or w < self.min_size:
            raise ValueError(
                f"the ResNet generator needs inputs of at least {self.min_size}x{self.min_size} "
                f"px, got {h}x{w}"
            )
        return self.head(self.up(self.blocks(self.down(self.stem(x)))))


def resnet(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ngf: Width = 64,
    n_blocks: Blocks = 9,
    norm: Norm = "batch",
    dropout: DropoutRate = 0.0,
) -> ResnetGenerator:
    """ResNet generator with any number of residual blocks (``n_blocks``, 1 to 32)."""
    return ResnetGenerator(in_channels, out_channels, ngf, n_blocks, norm, dropout)


def resnet_9blocks(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ngf: Width = 64,
    norm: Norm = "batch",
    dropout: DropoutRate = 0.0,
) -> ResnetGenerator:
    """ResNet generator with 9 residual blocks, the usual choice for 256x256 images."""
    return ResnetGenerator(in_channels, out_channels, ngf, 9, norm, dropout)


def resnet_6blocks(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ngf: Width = 64,
    norm: Norm = "batch",
    dropout: DropoutRate = 0.0,
) -> ResnetGenerator:
    """ResNet generator with 6 residual blocks, the usual choice for 128x128 images."""
    return ResnetGenerator(in_channels, out_channels, ngf, 6, norm, dropout)


__all__ = [
    "MIN_SIZE",
    "SIZE_MULTIPLE",
    "ResidualBlock",
    "ResnetGenerator",
    "resnet",
    "resnet_6blocks",
    "resnet_9blocks",
]
