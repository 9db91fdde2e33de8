"""The paper's networks: the U-Net generator and the PatchGAN discriminators."""

from p2pkit.models.layers import count_parameters, init_weights, norm_layer
from p2pkit.models.patchgan import PatchGAN, patchgan_receptive_field
from p2pkit.models.protocol import PROTOCOLS, inference_protocol
from p2pkit.models.timm_unet import TimmUNet
from p2pkit.models.unet import UNet

__all__ = [
    "PROTOCOLS",
    "PatchGAN",
    "TimmUNet",
    "UNet",
    "count_parameters",
    "inference_protocol",
    "init_weights",
    "norm_layer",
    "patchgan_receptive_field",
]
