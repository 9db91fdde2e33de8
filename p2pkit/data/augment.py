"""Random jitter and mirroring for image pairs (pix2pix paper, section 6.2), batch-wise with kornia.

The paper resizes 256x256 images to 286x286, crops a random 256x256 window back out, and flips
half of the pairs left-right. Input and target must move together or the pair stops being
pixel-aligned, so both are concatenated along the channel axis and transformed as one tensor:
each pair draws its own crop and flip, shared by its two sides. The target is resampled like an
image (bicubic), never like a label mask (nearest). Randomness comes from the global torch RNG, so
saving and restoring that state reproduces a run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import kornia.augmentation as KA
import kornia.geometry.transform as KT
import torch
from torch import nn

from p2pkit.config import PREPROCESS
from p2pkit.data.images import to_float
from p2pkit.errors import ConfigError


def _size(size: int | Sequence[int], key: str) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else size
    if height < 1 or width < 1:
        raise ConfigError(f"data.{key} must be positive, not {size!r}")
    return (int(height), int(width))


def _full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    # Resampling in bfloat16 would visibly band images, so autocast is switched off here.
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


class PairAugment(nn.Module):
    """Resize, random crop and random horizontal flip, applied identically to both sides of a pair.

    Args:
        load_size: Size (int or (height, width)) images are resized to before cropping.
        crop_size: Size of the random crop, and of the output.
        flip: Mirror each pair left-right with probability 1/2.
        preprocess: "resize_and_crop" (the paper's jitter: resize to ``load_size``, random crop
            ``crop_size``), "crop" (random crop from the stored size), "resize" (resize to
            ``crop_size``, no crop) or "none" (sizes unchanged).
        deterministic: Evaluation path: resize to ``crop_size`` (keep the size for "none"), with
            no random crop and no flip, whatever ``flip`` says.
    """

    def __init__(
        self,
        load_size: int | Sequence[int],
        crop_size: int | Sequence[int],
        flip: bool = True,
        preprocess: str = "resize_and_crop",
        *,
        deterministic: bool = False,
    ) -> None:
        super().__init__()
        if preprocess not in PREPROCESS:
            raise ConfigError(
                f"data.preprocess must be one of {', '.join(PREPROCESS)}, not {preprocess!r}"
            )
        self.load_size = _size(load_size, "load_size")
        self.crop_size = _size(crop_size, "crop_size")
        if preprocess == "resize_and_crop" and any(
            c > s for c, s in zip(self.crop_size, self.load_size, strict=True)
        ):
            raise ConfigError(
                f"data.crop_size {crop_size} is larger than data.load_size {load_size}; "
                "the crop must fit inside the resized image"
            )
        self.flip = flip
        self.preprocess = preprocess
        self.deterministic = deterministic
        self.crop = KA.RandomCrop(self.crop_size, p=1.0)
        self.mirror = KA.RandomHorizontalFlip(p=0.5)

    def extra_repr(self) -> str:
        return (
            f"load_size={self.load_size}, crop_size={self.crop_size}, flip={self.flip}, "
            f"preprocess={self.preprocess!r}, deterministic={self.deterministic}"
        )

    def forward(
        self, a: torch.Tensor, b: torch.Tensor | None = None, *, max_value: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Transform a batch of pairs.

        Args:
            a: Input side (N, C_a, H, W): float in [-1, 1], or integer pixels (then
                ``max_value`` gives their scale; uint8 defaults to 255).
            b: Target side (N, C_b, H, W) in the same form, or None.
            max_value: Scale of integer inputs (255 or 65535).

        Returns:
            ``(a, b)`` float32 (N, C, h, w) in [-1, 1] on the input's device; ``b`` is None when
            it was None.
        """
        a = self._as_float(a, max_value)
        b = None if b is None else self._as_float(b, max_value)
        with _full_precision(a.device):
            x = a if b is None else torch.cat([a, b.to(a.device)], dim=1)
            x = self._transform(x)
        if b is None:
            return x.contiguous(), None
        return x[:, : a.shape[1]].contiguous(), x[:, a.shape[1] :].contiguous()

    @staticmethod
    def _as_float(x: torch.Tensor, max_value: int | None) -> torch.Tensor:
        if x.is_floating_point():
            return x.float()
        if max_value is None:
            if x.dtype != torch.uint8:
                raise ValueError("integer pixels other than uint8 need max_value (e.g. 65535)")
            max_value = 255
        return to_float(x, max_value)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        if self.deterministic:
            return x if self.preprocess == "none" else _resize(x, self.crop_size)
        if self.preprocess == "resize_and_crop":
            x = self.crop(_resize(x, self.load_size))
        elif self.preprocess == "crop":
            height, width = x.shape[-2:]
            if height < self.crop_size[0] or width < self.crop_size[1]:
                raise ConfigError(
                    f"images are {height}x{width}, smaller than data.crop_size {self.crop_size}; "
                    'use larger images or data.preprocess = "resize_and_crop"'
                )
            x = self.crop(x)
        elif self.preprocess == "resize":
            x = _resize(x, self.crop_size)
        if self.flip:
            x = self.mirror(x)
        return x


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    # Bicubic overshoots near edges; clamping keeps the documented [-1, 1] range.
    resized = KT.resize(x, size, interpolation="bicubic", antialias=True, align_corners=False)
    return resized.clamp_(-1.0, 1.0)
