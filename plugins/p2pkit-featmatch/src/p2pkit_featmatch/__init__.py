"""Feature-matching objective for p2pkit, shipped as a separate plugin distribution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import p2pkit
from p2pkit.interfaces import LossTerms
from p2pkit.objectives import Pix2PixObjective

# Written for plugin API 1: on a p2pkit without it, this package is a reported broken plugin.
p2pkit.require_api("1")

__version__ = "0.1.0"


def _features(D: nn.Module, x: torch.Tensor | None, y: torch.Tensor) -> list[torch.Tensor]:
    """Outputs of D's LeakyReLU layers for input (x, y), captured with forward hooks."""
    captured: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: captured.append(out))
        for m in D.modules()
        if isinstance(m, nn.LeakyReLU)
    ]
    try:
        D(x, y)
    finally:
        for h in hooks:
            h.remove()
    return captured


class FeatureMatchingObjective(Pix2PixObjective):
    """L1 + cGAN (eq. 4 of pix2pix) plus ``lambda_fm`` times a feature-matching loss.

    The extra term is the mean L1 distance between the discriminator's hidden
    activations on (x, G(x)) and on (x, y), with the real activations detached.
    Reported as ``G_FM``.
    """

    loss_names = (*Pix2PixObjective.loss_names, "G_FM")

    def __init__(self, lambda_l1: float = 100.0, lambda_fm: float = 10.0) -> None:
        super().__init__("vanilla", lambda_l1, conditional=True)
        self.lambda_fm = float(lambda_fm)

    def generator_loss(self, D, x, real, fake) -> LossTerms:
        base = super().generator_loss(D, x, real, fake)
        with torch.no_grad():
            real_features = _features(D, x, real)
        fake_features = _features(D, x, fake)
        if not fake_features:
            raise ValueError("the discriminator has no LeakyReLU layers to match features on")
        fm = sum(
            F.l1_loss(f.float(), r.float())
            for f, r in zip(fake_features, real_features, strict=True)
        ) / len(fake_features)
        terms = {**base.terms, "G_FM": fm.detach()}
        return LossTerms(base.total + self.lambda_fm * fm, terms)


def l1_cgan_fm(lambda_l1: float = 100.0, lambda_fm: float = 10.0) -> FeatureMatchingObjective:
    """L1 + cGAN + feature matching on the discriminator's hidden layers."""
    return FeatureMatchingObjective(lambda_l1, lambda_fm)
