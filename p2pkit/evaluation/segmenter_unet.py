"""A U-Net segmenter for the FCN-score: an encoder-decoder with skip connections.

[`unet_seg`][p2pkit.evaluation.segmenter_unet.unet_seg] is a component of the
``p2pkit.segmenters`` entry-point group, like
[`fcn_small`][p2pkit.evaluation.segmenter.fcn_small], and is trained and applied by the same
[`train_segmenter`][p2pkit.evaluation.segmenter.train_segmenter] and
[`predict_labels`][p2pkit.evaluation.segmenter.predict_labels]. Where ``fcn_small`` only adds
1x1 class scores of its stages, the U-Net (Ronneberger, Fischer and Brox, *U-Net: Convolutional
Networks for Biomedical Image Segmentation*, MICCAI 2015) decodes with convolutions that see the
upsampled coarse features and the fine encoder features together, so fine detail of the photo
can decide the labels near boundaries.

Conventions: photos are float ``(N, 3, H, W)`` in ``[-1, 1]``; the output is float logits
``(N, K, H, W)`` (no final activation).
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from p2pkit.evaluation.segmenter import _ConvBlock, _StagedSegmenter
from p2pkit.ranges import Range

__all__ = ["UNetSegmenter", "unet_seg"]


class UNetSegmenter(_StagedSegmenter):
    """A U-Net segmenter (Ronneberger et al. 2015) with GroupNorm and ReLU.

    The encoder has ``depth + 1`` stages of two 3x3 convolutions each (GroupNorm, ReLU); every
    stage after the first starts with a 2x2 max-pool (ceil mode, so odd sizes work) and doubles
    the width. Each decoder stage upsamples the coarser features bilinearly to the size of the
    matching encoder stage, concatenates that stage's features (the skip connection) and applies
    two 3x3 convolutions. A 1x1 convolution gives the class logits. Two departures from the
    paper: padded convolutions keep the input size (no cropping of the skips), and bilinear
    upsampling replaces the 2x2 up-convolution. Any input size works.

    Args:
        num_classes: number of classes K.
        in_channels: channels of the input photos.
        width: channels of the first stage.
        depth: number of downsampling stages.

    Shapes:
        input: float ``(N, in_channels, H, W)`` in ``[-1, 1]``;
        output: float logits ``(N, K, H, W)``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16, depth: int = 4):
        super().__init__("unet_seg", num_classes, in_channels, width, depth)
        channels = self.widths
        self.down = nn.ModuleList()
        cin = in_channels
        for cout in channels:
            self.down.append(_ConvBlock(cin, cout, stride=1))
            cin = cout
        self.up = nn.ModuleList(
            _ConvBlock(channels[i + 1] + channels[i], channels[i], stride=1)
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(channels[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Photos ``(N, C, H, W)`` in ``[-1, 1]`` -> logits ``(N, K, H, W)``."""
        skips = []
        for i, stage in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2, ceil_mode=True)
            x = stage(x)
            skips.append(x)
        for stage, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = stage(torch.cat([x, skip], dim=1))
        return self.head(x)


def unet_seg(
    num_classes: Annotated[int, Range(2, 4096)],
    in_channels: Annotated[int, Range(1, 64)] = 3,
    width: Annotated[int, Range(1, 256)] = 16,
    depth: Annotated[int, Range(0, 6)] = 4,
) -> UNetSegmenter:
    """Build [`UNetSegmenter`][p2pkit.evaluation.segmenter_unet.UNetSegmenter]; the ``unet_seg``
    component of the ``p2pkit.segmenters`` group.

    Args:
        num_classes: number of classes K (the palette size).
        in_channels: channels of the input photos.
        width: channels of the first stage (doubles at each of the ``depth`` downsamplings).
        depth: number of downsampling stages (4 halvings: a 128 px photo reaches 8 px).

    Returns:
        An untrained [`UNetSegmenter`][p2pkit.evaluation.segmenter_unet.UNetSegmenter] mapping
        float ``(N, in_channels, H, W)`` in ``[-1, 1]`` to logits ``(N, num_classes, H, W)``.
    """
    return UNetSegmenter(num_classes, in_channels=in_channels, width=width, depth=depth)
