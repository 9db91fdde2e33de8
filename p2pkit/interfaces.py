"""The small interfaces that components implement.

Generators, discriminators and objectives are ordinary ``torch.nn.Module``
subclasses with a few agreed attributes; these protocols document them and
[`p2pkit.testing`][p2pkit.testing] checks them. Images are NCHW floats in [-1, 1].
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import torch


@runtime_checkable
class Generator(Protocol):
    """Maps an input image to an output image.

    Attributes:
        in_channels: channels of the input (N, in_channels, H, W).
        out_channels: channels of the output (N, out_channels, H, W).
        size_multiple: H and W must be multiples of this (256 for ``unet_256``).

    ``G(x)`` takes x float (N, in_channels, H, W) in [-1, 1] and returns a float
    (N, out_channels, H, W) in [-1, 1].
    """

    in_channels: int
    out_channels: int
    size_multiple: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Discriminator(Protocol):
    """Scores (input, output) pairs patch by patch.

    Attributes:
        conditional: whether it looks at the input x (eq. 1) or ignores it (eq. 2).
        receptive_field: side of the square patch each logit sees, in pixels.

    ``D(x, y)`` takes x (N, Cin, H, W) and y (N, Cout, H, W) in [-1, 1] and returns
    logits (N, 1, H', W').
    """

    conditional: bool
    receptive_field: int

    def __call__(self, x: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor: ...


class LossTerms(NamedTuple):
    """A loss to minimise and its named parts, for logging.

    Attributes:
        total: scalar tensor to call ``backward()`` on.
        terms: named scalar tensors (detached or not) such as ``G_GAN``, ``G_L1``,
            ``D_real``, ``D_fake``.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


@runtime_checkable
class Objective(Protocol):
    """The training objective: losses for the discriminator and the generator.

    Attributes:
        uses_discriminator: False for objectives without an adversarial term (L1
            alone): the trainer then builds no discriminator and skips its step.
        conditional: whether the discriminator must see the input (eq. 1).
        loss_names: the names that appear in ``LossTerms.terms``.
    """

    uses_discriminator: bool
    conditional: bool
    loss_names: tuple[str, ...]

    def discriminator_loss(
        self, D: Discriminator, x: torch.Tensor, real: torch.Tensor, fake: torch.Tensor
    ) -> LossTerms: ...

    def generator_loss(
        self,
        D: Discriminator | None,
        x: torch.Tensor,
        real: torch.Tensor,
        fake: torch.Tensor,
    ) -> LossTerms: ...
