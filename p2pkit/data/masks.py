"""Hole masks for inpainting: the input is the photo with a hole, the target the whole photo.

Masks are made on the fly, never stored: [`make_masks`][p2pkit.data.masks.make_masks] draws a batch,
[`apply_mask`][p2pkit.data.masks.apply_mask] fills the holes. Two kinds:

* ``"center"``: the missing centre of the context-encoder / pix2pix inpainting experiments, a
  centred rectangle covering ``hole_fraction`` of the area (by default a square of half the
  side, i.e. a quarter of the area). The same for every sample.
* ``"random"``: a few random rectangles and brush strokes per sample, different for each
  sample, covering about ``hole_fraction`` of the area on average.
"""

from __future__ import annotations

import math

import torch

from p2pkit.errors import ConfigError

__all__ = ["MASK_KINDS", "apply_mask", "make_masks"]

MASK_KINDS = ("center", "random")
_MAX_SHAPES = 16


class _Draws:
    """Uniform random numbers from one generator (or torch's global one), as Python floats."""

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator

    def __call__(self, low: float = 0.0, high: float = 1.0) -> float:
        device = self.generator.device if self.generator is not None else "cpu"
        x = torch.rand((), generator=self.generator, device=device).item()
        return low + (high - low) * x


def _rectangle(
    draw: _Draws, ys: torch.Tensor, xs: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """A random axis-aligned rectangle, 10-50 % of each side, as a (H, W) bool map."""
    h = max(1, round(draw(0.1, 0.5) * height))
    w = max(1, round(draw(0.1, 0.5) * width))
    y0 = round(draw(0, height - h))
    x0 = round(draw(0, width - w))
    return ((ys >= y0) & (ys < y0 + h)) & ((xs >= x0) & (xs < x0 + w))


def _stroke(
    draw: _Draws, ys: torch.Tensor, xs: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """A random thick polyline (a brush stroke) as a (H, W) bool map."""
    side = min(height, width)
    radius = max(1.0, draw(0.02, 0.06) * side)
    points = [(draw(0, width), draw(0, height))]
    angle = draw(0, 2 * math.pi)
    for _ in range(int(draw(3, 8))):
        angle += draw(-1.2, 1.2)
        step = draw(0.1, 0.25) * side
        x, y = points[-1]
        points.append(
            (
                min(max(x + step * math.cos(angle), 0), width),
                min(max(y + step * math.sin(angle), 0), height),
            )
        )
    p = torch.tensor(points, dtype=torch.float32)  # (K, 2) as (x, y)
    a, b = p[:-1], p[1:]  # segment ends, (S, 2)
    pix = torch.stack([xs.flatten() + 0.5, ys.flatten() + 0.5], dim=1).float()  # (HW, 2)
    ab = b - a
    # Distance from every pixel centre to every segment, all at once: (HW, S).
    t = ((pix[:, None, :] - a[None]) * ab[None]).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-6)
    nearest = a[None] + t.clamp(0, 1)[..., None] * ab[None]
    dist = (pix[:, None, :] - nearest).norm(dim=-1).min(dim=1).values
    return (dist <= radius).view(height, width)


def make_masks(
    n: int,
    height: int,
    width: int,
    *,
    kind: str = "center",
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    hole_fraction: float | None = None,
) -> torch.Tensor:
    """Make a batch of inpainting masks.

    Args:
        n: Batch size.
        height: Image height in pixels.
        width: Image width in pixels.
        kind: ``"center"`` or ``"random"`` (see the module docstring).
        generator: Source of randomness for ``"random"``; the same seeded generator state gives
            the same masks. ``None`` uses torch's global generator.
        device: Device of the result (default CPU). Masks are drawn on the CPU, or on the
            generator's device for the random numbers.
        hole_fraction: Share of the area to remove, in (0, 1); default 0.25. For ``"center"``
            it is exact up to rounding; for ``"random"`` it is the average, each sample drawing
            its own target between 0.5x and 1.5x of it.

    Returns:
        (n, 1, height, width) float32 tensor on ``device``: 1.0 in the hole, 0.0 elsewhere.
    """
    if kind not in MASK_KINDS:
        raise ConfigError(f"unknown mask kind {kind!r}: use one of {', '.join(MASK_KINDS)}")
    fraction = 0.25 if hole_fraction is None else float(hole_fraction)
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"hole_fraction must be between 0 and 1, got {hole_fraction}")
    if n < 0 or height < 1 or width < 1:
        raise ValueError(f"bad mask batch shape: n={n}, height={height}, width={width}")

    masks = torch.zeros(n, 1, height, width, dtype=torch.float32)
    if kind == "center":
        # Same aspect as the image: a quarter of the area is a box of half of each side.
        side = math.sqrt(fraction)
        h, w = max(1, round(height * side)), max(1, round(width * side))
        top, left = (height - h) // 2, (width - w) // 2
        masks[:, :, top : top + h, left : left + w] = 1.0
        return masks.to(device) if device is not None else masks

    draw = _Draws(generator)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for i in range(n):
        target = min(0.9, fraction * draw(0.5, 1.5))
        hole = torch.zeros(height, width, dtype=torch.bool)
        # Keep adding shapes until this sample's target is reached (or enough were tried).
        for _ in range(_MAX_SHAPES):
            shape = _rectangle if draw() < 0.5 else _stroke
            hole |= shape(draw, ys, xs, height, width)
            if hole.float().mean().item() >= target:
                break
        masks[i, 0] = hole.float()
    return masks.to(device) if device is not None else masks


def apply_mask(image: torch.Tensor, mask: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Blank out the holes of ``image``.

    Args:
        image: (N, C, H, W) float in [-1, 1].
        mask: (N, 1, H, W) or (1, 1, H, W), 1 = hole, 0 = keep (soft values blend).
        fill: Value written into the holes; 0.0 is mid-grey in [-1, 1].

    Returns:
        (N, C, H, W) tensor like ``image``: ``image * (1 - mask) + fill * mask``.
    """
    if image.ndim != 4 or mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(
            f"need image (N, C, H, W) and mask (N, 1, H, W), got {tuple(image.shape)} and "
            f"{tuple(mask.shape)}"
        )
    if mask.shape[-2:] != image.shape[-2:] or mask.shape[0] not in (1, image.shape[0]):
        raise ValueError(
            f"mask {tuple(mask.shape)} does not fit image {tuple(image.shape)}: same H and W, "
            "and batch size 1 or N"
        )
    mask = mask.to(device=image.device, dtype=image.dtype)
    return image * (1 - mask) + fill * mask
