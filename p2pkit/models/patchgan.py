"""PatchGAN discriminators (section 3.2.2, appendix 6.1.2, Table 3).

A PatchGAN classifies each N x N patch of an image as real or fake and is run
convolutionally across the image; the paper compares N = 1 ("PixelGAN"), 16, 70
and 286 ("ImageGAN" at 256 px). The 70x70 network is C64-C128-C256-C512 followed by
a convolution to one channel, LeakyReLU(0.2) throughout and no BatchNorm on the
first layer. As in the authors' code, the last C512 and the output convolution use
stride 1, which is what makes the receptive field 70 (with stride 2 everywhere it
would be 94 and the output would be 8x smaller).

A discriminator is called as ``D(x, y)``: ``x`` is the input image and ``y`` the
real or generated output. A conditional discriminator (eq. 1) sees both,
concatenated along channels; an unconditional one (eq. 2) sees ``y`` only and
ignores ``x``.
"""

from __future__ import annotations

import torch
from torch import nn

from p2pkit.models.layers import (
    Channels,
    Layers,
    Norm,
    Width,
    check_norm,
    init_weights,
    norm_layer,
    uses_bias,
)


def patchgan_receptive_field(n_layers: int) -> int:
    """Receptive field in pixels of [`PatchGAN`][p2pkit.models.patchgan.PatchGAN] with ``n_layers``
    (0 = PixelGAN).

    Each 4x4 convolution with stride s grows the field r to (r - 1) * s + 4; the
    network ends with two stride-1 convolutions after ``n_layers`` stride-2 ones.
    """
    if n_layers == 0:
        return 1
    field = 1
    for stride in reversed([2] * n_layers + [1, 1]):  # from one output unit back to the input
        field = (field - 1) * stride + 4
    return field


class PatchGAN(nn.Module):
    """N x N PatchGAN discriminator.

    Args:
        in_channels: channels of the input image x (used when ``conditional``).
        out_channels: channels of the output image y.
        ndf: filters of the first layer; deeper layers use up to ``8 * ndf``.
        n_layers: stride-2 layers. 1 gives 16x16, 3 gives 70x70, 5 gives 286x286;
            0 gives the 1x1 PixelGAN made of 1x1 convolutions (C64-C128, then 1).
        norm: ``"batch"``, ``"syncbatch"`` (BatchNorm pooled over GPUs), ``"instance"`` or
            ``"none"``.
        conditional: see ``x`` and ``y`` concatenated (eq. 1) or ``y`` alone (eq. 2).

    Shapes:
        ``forward(x, y)``: x (N, in_channels, H, W) and y (N, out_channels, H, W),
        floats in [-1, 1]; returns patch logits (N, 1, H', W'), one per receptive
        field position (unbounded reals; sigmoid gives the probability of "real").
    """

    def __init__(
        self,
        in_channels: Channels = 3,
        out_channels: Channels = 3,
        ndf: Width = 64,
        n_layers: Layers = 3,
        norm: Norm = "batch",
        conditional: bool = True,
    ) -> None:
        super().__init__()
        check_norm(norm)
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, not {n_layers}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conditional = conditional
        self.n_layers = n_layers
        self.receptive_field = patchgan_receptive_field(n_layers)
        channels = in_channels + out_channels if conditional else out_channels
        bias = uses_bias(norm)

        layers: list[nn.Module]
        if n_layers == 0:
            layers = [
                nn.Conv2d(channels, ndf, 1),
                nn.LeakyReLU(0.2),
                nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
                norm_layer(norm, ndf * 2),
                nn.LeakyReLU(0.2),
                nn.Conv2d(ndf * 2, 1, 1),
            ]
        else:
            layers = [nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
            width = ndf
            for i in range(1, n_layers + 1):
                stride = 2 if i < n_layers else 1
                next_width = ndf * min(2**i, 8)
                layers += [
                    nn.Conv2d(width, next_width, 4, stride, 1, bias=bias),
                    norm_layer(norm, next_width),
                    nn.LeakyReLU(0.2),
                ]
                width = next_width
            layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
        """Patch logits (N, 1, H', W') for output ``y`` given input ``x``."""
        if self.conditional:
            if x is None:
                raise ValueError("a conditional discriminator needs the input image x")
            y = torch.cat([x, y], dim=1)
        return self.net(y)


def patchgan(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ndf: Width = 64,
    n_layers: Layers = 3,
    norm: Norm = "batch",
    conditional: bool = True,
) -> PatchGAN:
    """PatchGAN with ``n_layers`` stride-2 layers (receptive field: see
    [`patchgan_receptive_field`][p2pkit.models.patchgan.patchgan_receptive_field])."""
    return PatchGAN(in_channels, out_channels, ndf, n_layers, norm, conditional)


def pixelgan(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ndf: Width = 64,
    norm: Norm = "batch",
    conditional: bool = True,
) -> PatchGAN:
    """1x1 "PixelGAN" (Table 3): C64-C128 with 1x1 convolutions, then one output channel."""
    return PatchGAN(in_channels, out_channels, ndf, 0, norm, conditional)


def patchgan_16(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ndf: Width = 64,
    norm: Norm = "batch",
    conditional: bool = True,
) -> PatchGAN:
    """16x16 PatchGAN (Table 3): C64-C128."""
    return PatchGAN(in_channels, out_channels, ndf, 1, norm, conditional)


def patchgan_70(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ndf: Width = 64,
    norm: Norm = "batch",
    conditional: bool = True,
) -> PatchGAN:
    """70x70 PatchGAN (appendix 6.1.2, the paper's default): C64-C128-C256-C512."""
    return PatchGAN(in_channels, out_channels, ndf, 3, norm, conditional)


def patchgan_286(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ndf: Width = 64,
    norm: Norm = "batch",
    conditional: bool = True,
) -> PatchGAN:
    """286x286 "ImageGAN" (Table 3): C64-C128-C256-C512-C512-C512."""
    return PatchGAN(in_channels, out_channels, ndf, 5, norm, conditional)
