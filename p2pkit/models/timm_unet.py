"""A U-Net generator whose encoder is a timm backbone.

Not in the paper, whose encoder is the plain C64-...-C512 stack of appendix 6.1.1.
It keeps the paper's shape (an encoder, a decoder, and skips that concatenate each
encoder scale to the decoder layer of the same size, section 3.2.1) but takes the
encoder from timm's model zoo (ResNets, EfficientNets, ConvNeXts, MobileNets...),
optionally starting from ImageNet weights the user already has on disk. Pretrained
encoders help most when the training set is small.

The decoder is built here: at each encoder scale, from the deepest up, the features
are upsampled (bilinear) to the next scale, concatenated with the encoder's features
there, and passed through two 3x3 Convolution-Norm-ReLU layers. A last block at full
resolution sees the input image itself as its skip, so fine detail the encoder
discarded at stride 2 is still available. A 3x3 convolution and Tanh give the output.
As in the paper's U-Net, dropout in the deepest decoder blocks is the generator's
source of noise (section 3.1) and stays on under the paper's test protocol.

Weights are never downloaded: ``pretrained_path`` must name a local file.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from p2pkit.errors import ConfigError
from p2pkit.models.layers import (
    Channels,
    DropoutRate,
    Layers,
    Norm,
    Width,
    check_norm,
    init_weights,
    norm_layer,
    uses_bias,
)


class _DecoderBlock(nn.Sequential):
    """Two 3x3 Convolution-Norm-ReLU layers, with optional dropout after them."""

    def __init__(self, in_ch: int, out_ch: int, norm: str, dropout: float) -> None:
        bias = uses_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias),
            norm_layer(norm, out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=bias),
            norm_layer(norm, out_ch),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


def _create_backbone(
    backbone: str, in_channels: int, pretrained_path: str
) -> tuple[nn.Module, list[int], list[int]]:
    """timm's feature extractor for ``backbone``: (module, reductions, channels)."""
    import timm

    kwargs: dict[str, Any] = {"features_only": True, "in_chans": in_channels}
    if pretrained_path:
        path = Path(pretrained_path).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"generator.pretrained_path: {path} is not a file; give a local timm "
                f"state dict for {backbone} (.safetensors or .pth) or leave it empty"
            )
        # Only the local file: no hub id or URL is left for timm to fall back to.
        kwargs.update(
            pretrained=True,
            pretrained_cfg_overlay={
                "file": str(path),
                "source": "",
                "hf_hub_id": None,
                "url": None,
            },
        )
    if not timm.is_model(backbone):
        near = difflib.get_close_matches(backbone, timm.list_models(), n=5, cutoff=0.75)
        hint = f" (similar: {', '.join(near)})" if near else ""
        raise ConfigError(
            f"generator.backbone: timm has no model '{backbone}'{hint}; "
            "see timm.list_models() for the names"
        )
    try:
        net = timm.create_model(backbone, **kwargs)
    except Exception as exc:  # timm raises several types, for the model and for the file
        raise _backbone_error(backbone, in_channels, pretrained_path, exc) from None
    info = net.feature_info
    return net, list(info.reduction()), list(info.channels())


def _backbone_error(
    backbone: str, in_channels: int, pretrained_path: str, exc: Exception
) -> ConfigError:
    """One line that blames the weights file or the backbone, whichever failed."""
    import timm

    # Two lines keep a state_dict error's first mismatch, in one line of output.
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = " ".join([f"{type(exc).__name__}:", *lines[:2]])
    if pretrained_path:
        try:  # only on this failure path: does the backbone build without the file?
            timm.create_model(backbone, features_only=True, in_chans=in_channels)
        except Exception:
            pass
        else:
            return ConfigError(
                f"generator.pretrained_path: cannot load {pretrained_path} into timm's "
                f"'{backbone}' ({reason}); give a state dict saved from that model"
            )
    return ConfigError(
        f"generator.backbone: timm cannot build '{backbone}' as a feature extractor "
        f"with {in_channels} input channel(s) ({reason})"
    )


class TimmUNet(nn.Module):
    """U-Net generator with a timm backbone as its encoder.

    Args:
        backbone: a timm model name that supports ``features_only`` (e.g.
            ``resnet18``, ``resnet34``, ``efficientnet_b0``, ``convnext_atto``).
        in_channels: channels of the input image (1, 2 or 3; timm adapts the
            first convolution, also of pretrained weights).
        out_channels: channels of the output image.
        ngf: width of the full-resolution decoder block; the block at stride s
            has ``ngf * min(s, 8)`` channels.
        norm: the decoder's normalisation (``batch``, ``instance`` or ``none``);
            the backbone keeps its own.
        dropout: dropout after each of the ``dropout_layers`` deepest decoder
            blocks; 0 disables it.
        dropout_layers: how many decoder blocks, from the deepest, use dropout.
        pretrained_path: a local file of timm weights for ``backbone``; empty
            keeps timm's random initialisation. Nothing is downloaded.

    Shapes:
        input (N, in_channels, H, W) float in [-1, 1], with H and W multiples of
        `size_multiple` (the backbone's largest stride, usually 32) and, to train at
        batch 1, at least `min_size` (twice that);
        output (N, out_channels, H, W) float in [-1, 1] (Tanh).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        in_channels: Channels = 3,
        out_channels: Channels = 3,
        ngf: Width = 32,
        norm: Norm = "batch",
        dropout: DropoutRate = 0.5,
        dropout_layers: Layers = 2,
        pretrained_path: str = "",
    ) -> None:
        super().__init__()
        check_norm(norm)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.encoder, reductions, channels = _create_backbone(
            backbone, in_channels, pretrained_path
        )
        self.reductions = reductions
        self.size_multiple = max(reductions)
        # The backbone's BatchNorm at its deepest level needs more than one value per
        # channel in training: at batch 1 that is two positions, so twice the stride.
        self.min_size = 2 * self.size_multiple

        def width(stride: int) -> int:
            return ngf * min(stride, 8)

        blocks: list[nn.Module] = []
        h_ch = channels[-1]
        # From the deepest skip up to the shallowest, then full resolution.
        targets = list(zip(reductions[-2::-1], channels[-2::-1], strict=True))
        targets.append((1, in_channels))
        for j, (stride, skip_ch) in enumerate(targets):
            out_ch = width(stride)
            blocks.append(
                _DecoderBlock(h_ch + skip_ch, out_ch, norm, dropout if j < dropout_layers else 0.0)
            )
            h_ch = out_ch
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Conv2d(h_ch, out_channels, 3, padding=1), nn.Tanh())
        # The paper's N(0, 0.02) initialisation (6.2) for the new layers; the
        # backbone keeps timm's initialisation or its pretrained weights.
        init_weights(self.decoder)
        init_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (N, in_channels, H, W) in [-1, 1] to (N, out_channels, H, W)."""
        features = self.encoder(x)
        skips = [*features[-2::-1], x]
        h = features[-1]
        for block, skip in zip(self.decoder, skips, strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip.to(h.dtype)], dim=1))
        return self.head(h)


__all__ = ["TimmUNet"]
