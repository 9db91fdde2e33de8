"""Sample grids: one row per example, input | output | target, saved as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8_image(t: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, H, W) float in [-1, 1] -> (H, W, 3) uint8."""
    from p2pkit.data.images import to_uint8

    t = to_uint8(t).cpu()
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t.permute(1, 2, 0).numpy()


def save_grid(rows: list[list[torch.Tensor]], path: Path, gap: int = 2) -> Path:
    """Save a grid image: one row per example, e.g. input | output | target.

    Args:
        rows: each a list of (3, H, W) floats in [-1, 1] with the same H and W.
        path: PNG file to write (folders are created).
    """
    if not rows:
        raise ValueError("no images for the grid")
    h, w = rows[0][0].shape[-2:]
    cols = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            canvas[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = (
                to_uint8_image(image)
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from p2pkit.data.images import PNG_COMPRESS_LEVEL

    Image.fromarray(canvas).save(path, compress_level=PNG_COMPRESS_LEVEL)
    return path


__all__ = ["save_grid", "to_uint8_image"]
