"""Tasks: how a network's input and target are made from the dataset's images.

A task sits between the data and the networks. It receives the augmented images
(side ``a``, and side ``b`` when the dataset has one) and returns the generator's
input ``x`` and target ``y``; it turns network tensors back into RGB images for
sample grids and saved outputs.

* ``translation``: x = a, y = b (labels -> photo, map -> aerial, thermal -> colour, ...).
* ``colorization`` (section 4.5 and Table 5 of the paper, after Zhang et al.): from RGB photos,
  x = L and y = ab of CIE Lab, via `kornia.color`.
* ``inpainting`` (section 4, "photo with missing pixels -> photo"): from photos,
  x = the photo with a hole (centre square or random holes; masks come from
  [`p2pkit.data.masks`][p2pkit.data.masks], never from files), y = the full photo.
"""

from __future__ import annotations

from typing import Annotated

import torch

from p2pkit.ranges import Range

__all__ = ["Colorization", "Inpainting", "Task", "colorization", "inpainting", "translation"]

Channels = Annotated[int, Range(1, 64)]

# Scales that put L (0..100) and a, b (about -110..110) into [-1, 1].
_L_SCALE = 50.0
_AB_SCALE = 110.0


class Task:
    """Base class: the identity mapping of ``translation``.

    Attributes:
        in_channels: channels of the generator's input.
        out_channels: channels of the generator's output.
        needs_target: whether the dataset must provide side ``b``.
        image_channels: ``(a, b)`` channels the dataset must load.
    """

    name = "translation"
    needs_target = True

    def __init__(self, in_channels: Channels = 3, out_channels: Channels = 3) -> None:
        for n in (in_channels, out_channels):
            if n not in (1, 2, 3):
                raise ValueError(f"channels must be 1, 2 or 3, not {n}")
        self.in_channels = in_channels
        self.out_channels = out_channels

    @property
    def image_channels(self) -> tuple[int, int]:
        return self.in_channels, self.out_channels

    def make_pair(
        self, a: torch.Tensor, b: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Input and target from augmented images.

        Args:
            a: (N, Ca, H, W) float in [-1, 1], the dataset's input side.
            b: (N, Cb, H, W) float in [-1, 1] or None.

        Returns:
            ``(x, y)``: (N, in_channels, H, W) and (N, out_channels, H, W) in [-1, 1].
        """
        if b is None:
            raise ValueError(f"task '{self.name}' needs a target image (side B)")
        return a, b

    def make_input(self, a: torch.Tensor) -> torch.Tensor:
        """The generator's input for inference from an image (N, Ca, H, W) in [-1, 1]."""
        return a

    def to_rgb(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RGB views of an input and an output, for grids and saved files.

        Returns:
            ``(x_rgb, y_rgb)``, each (N, 3, H, W) in [-1, 1].
        """
        return _gray_to_rgb(x), _gray_to_rgb(y)

    def output_image(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The image to save for generator output ``y`` of input ``x``."""
        return y if y.shape[1] in (1, 3) else self.to_rgb(x, y)[1]


def _gray_to_rgb(t: torch.Tensor) -> torch.Tensor:
    if t.shape[1] == 3:
        return t
    if t.shape[1] == 1:
        return t.expand(-1, 3, -1, -1)
    # Two-channel tensors have no natural RGB view; pad with zeros.
    return torch.cat([t, torch.zeros_like(t[:, :1])], dim=1)


class Colorization(Task):
    """Grayscale -> colour in CIE Lab: x = L, y = ab (the colorization task, section 4.5, Table 5).

    The dataset is a single folder of RGB photos (side ``a``). L in [0, 100] is
    mapped to [-1, 1] by L / 50 - 1; a and b by dividing by 110.
    """

    name = "colorization"
    needs_target = False

    def __init__(self) -> None:
        super().__init__(1, 2)

    @property
    def image_channels(self) -> tuple[int, int]:
        return 3, 3

    def make_pair(
        self, a: torch.Tensor, b: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lab = _rgb_to_lab(a)
        return lab[:, :1], lab[:, 1:]

    def make_input(self, a: torch.Tensor) -> torch.Tensor:
        if a.shape[1] == 1:
            # A grayscale image's gray value is its lightness only approximately;
            # the conversion below is exact for neutral colours.
            a = a.expand(-1, 3, -1, -1)
        return _rgb_to_lab(a)[:, :1]

    def to_rgb(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gray = x.expand(-1, 3, -1, -1)
        if y.shape[1] == 2:
            return gray, _lab_to_rgb(torch.cat([x, y], dim=1))
        return gray, _gray_to_rgb(y)

    def output_image(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.to_rgb(x, y)[1]


def _rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    import kornia.color

    lab = kornia.color.rgb_to_lab(((rgb.float() + 1) / 2).clamp(0, 1))
    return torch.cat([lab[:, :1] / _L_SCALE - 1, lab[:, 1:] / _AB_SCALE], dim=1)


def _lab_to_rgb(scaled: torch.Tensor) -> torch.Tensor:
    import kornia.color

    lab = torch.cat([(scaled[:, :1] + 1) * _L_SCALE, scaled[:, 1:] * _AB_SCALE], dim=1)
    return kornia.color.lab_to_rgb(lab.float(), clip=True) * 2 - 1


class Inpainting(Task):
    """Photo with missing pixels -> full photo.

    Args:
        mask: ``"center"`` (a centred square of half the side) or ``"random"``
            (random holes, different for every image and iteration).
        channels: 3 for colour photos, 1 for grayscale.

    Holes are filled with 0 (mid-gray in [-1, 1]); the generator sees the photo
    only, not a separate mask channel, as in the paper's setting.
    """

    name = "inpainting"
    needs_target = False

    def __init__(self, mask: str = "center", channels: Channels = 3) -> None:
        if mask not in ("center", "random"):
            raise ValueError(f"mask must be 'center' or 'random', not {mask!r}")
        super().__init__(channels, channels)
        self.mask = mask

    @property
    def image_channels(self) -> tuple[int, int]:
        return self.in_channels, self.in_channels

    def _masked(self, a: torch.Tensor, kind: str) -> torch.Tensor:
        from p2pkit.data.masks import apply_mask, make_masks

        n, _, h, w = a.shape
        masks = make_masks(n, h, w, kind=kind, device=a.device)
        return apply_mask(a, masks)

    def make_pair(
        self, a: torch.Tensor, b: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._masked(a, self.mask), a

    def make_input(self, a: torch.Tensor) -> torch.Tensor:
        # At inference the hole is the deterministic centre square, so results are
        # repeatable; images that already have holes can be passed as they are by
        # training with mask="center" on such data.
        return self._masked(a, "center")


def translation(in_channels: Channels = 3, out_channels: Channels = 3) -> Task:
    """Paired translation: the input is side A (or B with direction BtoA)."""
    return Task(in_channels, out_channels)


def colorization() -> Colorization:
    """L -> ab colorization from a folder of RGB photos."""
    return Colorization()


def inpainting(mask: str = "center", channels: Channels = 3) -> Inpainting:
    """Fill a hole (``mask``: center or random) in photos from a single folder."""
    return Inpainting(mask, channels)
