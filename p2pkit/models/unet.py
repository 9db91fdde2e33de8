"""The U-Net generator of appendix 6.1.1 and the encoder-decoder of section 4.3.

Notation of the paper: C_k is Convolution-BatchNorm-ReLU with k filters, CD_k adds
50% dropout; every convolution is 4x4 with stride 2, downsampling by 2 in the
encoder and upsampling by 2 in the decoder.

* encoder: C64-C128-C256-C512-C512-C512-C512-C512, LeakyReLU(0.2), no BatchNorm on
  the first layer, and none on the innermost one either (errata, section 6.3: at
  1x1 spatial size with batch 1 it would zero the activations);
* decoder: CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128 (the U-Net counts include
  the skip channels concatenated from the mirrored encoder layer), ReLU, then a
  convolution to the output channels and Tanh.

Removing the skips gives the section 4.3 encoder-decoder, whose decoder is
CD512-CD512-CD512-C512-C256-C128-C64.
"""

from __future__ import annotations

import torch
from torch import nn

from p2pkit.models.layers import (
    Channels,
    Depth,
    DownConv,
    DropoutRate,
    Layers,
    Norm,
    UpConv,
    Width,
    check_norm,
    init_weights,
    norm_layer,
    uses_bias,
)


class UNet(nn.Module):
    """U-Net generator (appendix 6.1.1), optionally with its skips cut (section 4.3).

    Args:
        in_channels: channels of the input image (1, 2 or 3; colorization maps L to ab).
        out_channels: channels of the output image (1, 2 or 3).
        ngf: filters of the first encoder layer; deeper layers use up to ``8 * ngf``.
        depth: number of stride-2 downsamplings; input sides must be multiples of
            ``2 ** depth`` (256 for ``depth=8``).
        norm: ``"batch"``, ``"syncbatch"`` (BatchNorm pooled over GPUs), ``"instance"`` or
            ``"none"``.
        dropout: dropout probability of the first ``dropout_layers`` decoder layers
            (the paper's only source of noise, section 3.1); 0 disables it.
        dropout_layers: how many decoder layers, from the bottleneck up, use dropout.
        dropout_offset: how many decoder layers next to the bottleneck come before the
            first one with dropout. 0 (the paper's placement, CD512-CD1024-CD1024) starts
            at the bottleneck; 1 is where the authors' code puts it, on the three layers
            after the bottleneck's.
        skip: concatenate encoder layer i to decoder layer n - i (the U-Net); False
            gives the plain encoder-decoder.

    Shapes:
        input (N, in_channels, H, W) float in [-1, 1], with H and W multiples of
        `size_multiple`; output (N, out_channels, H, W) float in [-1, 1] (Tanh).
    """

    def __init__(
        self,
        in_channels: Channels = 3,
        out_channels: Channels = 3,
        ngf: Width = 64,
        depth: Depth = 8,
        norm: Norm = "batch",
        dropout: DropoutRate = 0.5,
        dropout_layers: Layers = 3,
        skip: bool = True,
        dropout_offset: Layers = 0,
    ) -> None:
        super().__init__()
        check_norm(norm)
        if depth < 2:
            raise ValueError(f"depth must be at least 2, not {depth}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.depth = depth
        self.skip = skip
        self.size_multiple = 2**depth
        widths = [ngf * min(2**i, 8) for i in range(depth)]
        bias = uses_bias(norm)

        down: list[nn.Module] = [DownConv(in_channels, widths[0])]
        for i in range(1, depth):
            innermost = i == depth - 1
            down.append(
                nn.Sequential(
                    nn.LeakyReLU(0.2),
                    DownConv(widths[i - 1], widths[i], bias=bias or innermost),
                    nn.Identity() if innermost else norm_layer(norm, widths[i]),
                )
            )
        self.down = nn.ModuleList(down)

        factor = 2 if skip else 1
        up: list[nn.Module] = []
        for j in range(depth - 1):
            source = depth - 1 - j  # the encoder layer this decoder layer mirrors
            in_ch = widths[source] * (factor if j > 0 else 1)
            out_ch = widths[source - 1]
            # In place: a decoder layer's input is a fresh tensor (the concatenation, or the
            # innermost encoder output, which no skip reads), and no backward pass needs it.
            # Same results; at 256 px it saved 5-10% of an eval forward on a 2-core CPU.
            layers = [
                nn.ReLU(inplace=True),
                UpConv(in_ch, out_ch, bias=bias),
                norm_layer(norm, out_ch),
            ]
            if dropout > 0 and dropout_offset <= j < dropout_offset + dropout_layers:
                layers.append(nn.Dropout(dropout))
            up.append(nn.Sequential(*layers))
        self.up = nn.ModuleList(up)
        self.head = nn.Sequential(
            nn.ReLU(inplace=True),
            UpConv(widths[0] * factor, out_channels),
            nn.Tanh(),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (N, in_channels, H, W) in [-1, 1] to (N, out_channels, H, W)."""
        features = []
        h = x
        for layer in self.down:
            h = layer(h)
            features.append(h)
        for j, layer in enumerate(self.up):
            h = layer(h)
            if self.skip:
                # Skips carry the encoder's normalised output before its activation. The
                # authors' in-place LeakyReLU activates theirs, which changes nothing: what
                # reads the concatenation starts with ReLU, and ReLU(LeakyReLU(h)) = ReLU(h).
                h = torch.cat([h, features[self.depth - 2 - j]], dim=1)
        return self.head(h)


def unet(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ngf: Width = 64,
    depth: Depth = 8,
    norm: Norm = "batch",
    dropout: DropoutRate = 0.5,
    dropout_layers: Layers = 3,
    dropout_offset: Layers = 0,
) -> UNet:
    """U-Net generator of any depth (appendix 6.1.1); inputs are multiples of 2**depth.

    ``dropout_offset = 1`` puts the dropout where the authors' code has it (see
    [`UNet`][p2pkit.models.unet.UNet]); the import of their checkpoints sets it.
    """
    return UNet(
        in_channels,
        out_channels,
        ngf,
        depth,
        norm,
        dropout,
        dropout_layers,
        skip=True,
        dropout_offset=dropout_offset,
    )


def unet_256(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ngf: Width = 64,
    norm: Norm = "batch",
    dropout: DropoutRate = 0.5,
) -> UNet:
    """The paper's U-Net for 256x256 images: 8 downsamplings to a 1x1 bottleneck."""
    return UNet(in_channels, out_channels, ngf, 8, norm, dropout, 3, skip=True)


def unet_128(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ngf: Width = 64,
    norm: Norm = "batch",
    dropout: DropoutRate = 0.5,
) -> UNet:
    """The U-Net for 128x128 images: 7 downsamplings to a 1x1 bottleneck."""
    return UNet(in_channels, out_channels, ngf, 7, norm, dropout, 3, skip=True)


def encoder_decoder(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ngf: Width = 64,
    depth: Depth = 8,
    norm: Norm = "batch",
    dropout: DropoutRate = 0.5,
    dropout_layers: Layers = 3,
) -> UNet:
    """The encoder-decoder of section 4.3: the U-Net with its skip connections cut."""
    return UNet(in_channels, out_channels, ngf, depth, norm, dropout, dropout_layers, skip=False)


def encoder_decoder_256(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ngf: Width = 64,
    norm: Norm = "batch",
    dropout: DropoutRate = 0.5,
) -> UNet:
    """Encoder-decoder (section 4.3) for 256x256 images."""
    return UNet(in_channels, out_channels, ngf, 8, norm, dropout, 3, skip=False)


def encoder_decoder_128(
    in_channels: Channels = 3,
    out_channels: Channels = 3,
    ngf: Width = 64,
    norm: Norm = "batch",
    dropout: DropoutRate = 0.5,
) -> UNet:
    """Encoder-decoder (section 4.3) for 128x128 images."""
    return UNet(in_channels, out_channels, ngf, 7, norm, dropout, 3, skip=False)
