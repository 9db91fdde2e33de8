"""The paper's networks: the U-Net generator and the PatchGAN discriminators."""

from p2pkit.models.layers import (
    NORMS,
    Channels,
    Depth,
    DropoutRate,
    Norm,
    Width,
    check_norm,
    count_parameters,
    init_weights,
    norm_layer,
    uses_bias,
)
from p2pkit.models.patchgan import PatchGAN, patchgan_receptive_field
from p2pkit.models.protocol import PROTOCOLS, inference_protocol
from p2pkit.models.timm_unet import TimmUNet
from p2pkit.models.unet import UNet

__all__ = [
    "NORMS",
    "PROTOCOLS",
    "Channels",
    "Depth",
    "DropoutRate",
    "Norm",
    "PatchGAN",
    "TimmUNet",
    "UNet",
    "Width",
    "check_norm",
    "count_parameters",
    "inference_protocol",
    "init_weights",
    "norm_layer",
    "patchgan_receptive_field",
    "uses_bias",
]
