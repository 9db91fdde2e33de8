"""The pix2pix objective (section 3.1) and the ablations of Table 1.

Eq. 1, the conditional GAN loss:
    L_cGAN(G, D) = E_{x,y}[log D(x, y)] + E_{x,z}[log(1 - D(x, G(x, z)))]
Eq. 2, the unconditional variant, where D does not see x.
Eq. 3, the L1 term: L_L1(G) = E_{x,y,z}[||y - G(x, z)||_1]
Eq. 4, the final objective: G* = arg min_G max_D L_cGAN(G, D) + lambda * L_L1(G).

Following section 3.3, the generator maximises log D(x, G(x, z)) (the
non-saturating loss) instead of minimising log(1 - D(x, G(x, z))), and the
discriminator's objective is divided by 2 to slow its learning relative to G.

The Table 1 rows are registered objectives of their own: ``l1`` (lambda * L1
only), ``gan`` (unconditional GAN alone), ``cgan`` (cGAN alone), ``l1_gan``
(L1 + unconditional GAN) and ``l1_cgan`` (L1 + cGAN, the paper's full method, the
same as ``pix2pix`` with its defaults).
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from p2pkit.interfaces import Discriminator, LossTerms
from p2pkit.ranges import Range

__all__ = [
    "GAN_MODES",
    "Pix2PixObjective",
    "Scale",
    "Weight",
    "cgan",
    "gan",
    "gan_loss",
    "l1",
    "l1_cgan",
    "l1_gan",
    "pix2pix",
]

# Declared ranges, checked before the objective is built (finite values only).
Weight = Annotated[float, Range(0)]
Scale = Annotated[float, Range(0, low_open=True)]

GAN_MODES = ("vanilla", "lsgan", "hinge", "none")


def gan_loss(logits: torch.Tensor, target_real: bool, mode: str) -> torch.Tensor:
    """Adversarial loss of patch logits against an all-real or all-fake target.

    Args:
        logits: discriminator output (N, 1, H', W'), any real values.
        target_real: whether the patches should be judged real.
        mode: ``"vanilla"`` (binary cross-entropy on the logits: eq. 1, and the
            non-saturating generator loss when used with target_real=True for G),
            ``"lsgan"`` (least squares to 1 or 0) or ``"hinge"`` (discriminator form:
            mean(relu(1 - D)) for real, mean(relu(1 + D)) for fake).

    Returns:
        scalar float32 tensor, averaged over every patch of the batch.
    """
    logits = logits.float()  # losses in fp32 even when the network ran in bf16
    if mode == "vanilla":
        target = torch.ones_like(logits) if target_real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, torch.full_like(logits, 1.0 if target_real else 0.0))
    if mode == "hinge":
        return F.relu(1.0 - logits).mean() if target_real else F.relu(1.0 + logits).mean()
    raise ValueError(f"gan_mode must be one of {', '.join(GAN_MODES)}, not {mode!r}")


class Pix2PixObjective(nn.Module):
    """L_GAN + lambda * L_L1 (eq. 4), with the choices of section 3.3.

    Args:
        gan_mode: ``"vanilla"`` (the paper), ``"lsgan"``, ``"hinge"``, or ``"none"``
            for no adversarial term (the L1-only row of Table 1).
        lambda_l1: weight of the L1 term (100 in the paper); 0 gives "GAN alone".
        conditional: whether the discriminator sees the input (cGAN, eq. 1) or only
            the output (GAN, eq. 2). The trainer builds the discriminator to match.
        d_scale: factor on the discriminator's loss (1/2 in the paper, section 3.3).

    Loss names: ``G_GAN``, ``G_L1`` (the unweighted L1, logged even when
    lambda_l1 is 0), ``D_real`` and ``D_fake``.
    """

    loss_names = ("G_GAN", "G_L1", "D_real", "D_fake")

    def __init__(
        self,
        gan_mode: str = "vanilla",
        lambda_l1: Weight = 100.0,
        conditional: bool = True,
        d_scale: Scale = 0.5,
    ) -> None:
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ValueError(f"gan_mode must be one of {', '.join(GAN_MODES)}, not {gan_mode!r}")
        if lambda_l1 < 0:
            raise ValueError(f"lambda_l1 must be >= 0, not {lambda_l1}")
        if gan_mode == "none" and lambda_l1 == 0:
            raise ValueError("gan_mode 'none' with lambda_l1 = 0 leaves nothing to minimise")
        self.gan_mode = gan_mode
        self.lambda_l1 = float(lambda_l1)
        self.conditional = bool(conditional)
        self.d_scale = float(d_scale)
        self.uses_discriminator = gan_mode != "none"

    def discriminator_loss(
        self, D: Discriminator, x: torch.Tensor, real: torch.Tensor, fake: torch.Tensor
    ) -> LossTerms:
        """The discriminator's loss: ``d_scale * (D_real + D_fake)``.

        Args:
            D: the discriminator, called as ``D(x, y)``.
            x: input images (N, Cin, H, W) in [-1, 1].
            real: target images (N, Cout, H, W) in [-1, 1].
            fake: generated images (N, Cout, H, W) in [-1, 1]; detached here so the
                discriminator's step never reaches the generator.
        """
        if not self.uses_discriminator:
            raise RuntimeError("this objective has no adversarial term; do not train a D")
        d_real = gan_loss(D(x, real), True, self.gan_mode)
        d_fake = gan_loss(D(x, fake.detach()), False, self.gan_mode)
        total = self.d_scale * (d_real + d_fake)
        return LossTerms(total, {"D_real": d_real.detach(), "D_fake": d_fake.detach()})

    def generator_loss(
        self,
        D: Discriminator | None,
        x: torch.Tensor,
        real: torch.Tensor,
        fake: torch.Tensor,
    ) -> LossTerms:
        """The generator's loss: ``G_GAN + lambda_l1 * G_L1``.

        G_GAN is the non-saturating loss -log D(x, G(x)) for ``vanilla``, the least
        squares distance to "real" for ``lsgan`` and -mean(D(x, G(x))) for ``hinge``.
        """
        l1 = F.l1_loss(fake.float(), real.float())
        terms = {"G_L1": l1.detach()}
        total = self.lambda_l1 * l1 if self.lambda_l1 > 0 else l1.new_zeros(())
        if self.uses_discriminator:
            if D is None:
                raise ValueError("this objective has an adversarial term: pass the discriminator")
            logits = D(x, fake)
            if self.gan_mode == "hinge":
                g_gan = -logits.float().mean()
            else:
                g_gan = gan_loss(logits, True, self.gan_mode)
            total = total + g_gan
            terms["G_GAN"] = g_gan.detach()
        return LossTerms(total, terms)

    def extra_repr(self) -> str:
        return (
            f"gan_mode={self.gan_mode!r}, lambda_l1={self.lambda_l1}, "
            f"conditional={self.conditional}, d_scale={self.d_scale}"
        )


def pix2pix(
    gan_mode: str = "vanilla",
    lambda_l1: Weight = 100.0,
    conditional: bool = True,
    d_scale: Scale = 0.5,
) -> Pix2PixObjective:
    """The general objective of eq. 4; every Table 1 row is a setting of it."""
    return Pix2PixObjective(gan_mode, lambda_l1, conditional, d_scale)


def l1(lambda_l1: Weight = 100.0) -> Pix2PixObjective:
    """Table 1, row "L1": the L1 term alone; no discriminator is trained."""
    return Pix2PixObjective("none", lambda_l1, conditional=False)


def gan(gan_mode: str = "vanilla") -> Pix2PixObjective:
    """Table 1, row "GAN": an unconditional GAN alone (eq. 2, lambda = 0)."""
    return Pix2PixObjective(gan_mode, 0.0, conditional=False)


def cgan(gan_mode: str = "vanilla") -> Pix2PixObjective:
    """Table 1, row "cGAN": the conditional GAN alone (eq. 1, lambda = 0)."""
    return Pix2PixObjective(gan_mode, 0.0, conditional=True)


def l1_gan(gan_mode: str = "vanilla", lambda_l1: Weight = 100.0) -> Pix2PixObjective:
    """Table 1, row "L1+GAN": L1 plus an unconditional GAN."""
    return Pix2PixObjective(gan_mode, lambda_l1, conditional=False)


def l1_cgan(gan_mode: str = "vanilla", lambda_l1: Weight = 100.0) -> Pix2PixObjective:
    """Table 1, row "L1+cGAN": the paper's full objective (eq. 4)."""
    return Pix2PixObjective(gan_mode, lambda_l1, conditional=True)
