"""Edge maps for edges -> photo tasks (edges2shoes, edges2handbags style).

The pix2pix edge datasets pair a photo with its edge map drawn as black lines on white. The
authors made theirs with HED plus post-processing; here edges come from
`kornia.filters.canny`, which needs no model download and runs anywhere. Use
[`make_edges`][p2pkit.data.edges.make_edges] on tensors (e.g. on the fly in a data pipeline) or
[`edges_dataset`][p2pkit.data.edges.edges_dataset] to write an aligned ``edges|photo`` dataset from
a folder of photos.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import canny
from PIL import Image
from rich.progress import track

from p2pkit.data.batching import same_shape_runs
from p2pkit.data.images import images_by_key, open_rgb, to_float, to_uint8
from p2pkit.errors import DataError

__all__ = ["edges_dataset", "make_edges"]


def make_edges(
    images: torch.Tensor,
    *,
    low_threshold: float = 0.2,
    high_threshold: float = 0.4,
    sigma: float = 1.5,
    thickness: int = 1,
    channels: int = 3,
) -> torch.Tensor:
    """Canny edge maps, black edges on white, in the value range of the input.

    Args:
        images: (N, 3, H, W) RGB or (N, 1, H, W) grey, floating point, in [-1, 1].
        low_threshold: Hysteresis low threshold on kornia's Canny gradient magnitude, measured
            on the image mapped to [0, 1]. A clean step of contrast ``c`` scores about
            ``1.9 * c`` at the default ``sigma``, so the defaults keep edges of contrast above
            about 0.2 and continue them down to about 0.1.
        high_threshold: Hysteresis high threshold (same scale); must be >= ``low_threshold``.
        sigma: Gaussian blur before the gradient, in pixels; larger gives fewer, smoother edges.
        thickness: Line width in pixels (odd; 1 keeps Canny's one-pixel lines).
        channels: 3 (RGB, like the pix2pix edge datasets' files) or 1 (grey).

    Returns:
        (N, channels, H, W) tensor, dtype and device of ``images``: -1.0 on edges (black),
        +1.0 elsewhere (white). Not differentiable.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [-1, 1], got {images.dtype}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if thickness < 1 or thickness % 2 == 0:
        raise ValueError(f"thickness must be a positive odd number, got {thickness}")
    if not 0 <= low_threshold <= high_threshold:
        raise ValueError(
            f"need 0 <= low_threshold <= high_threshold, got {low_threshold}, {high_threshold}"
        )
    # Kernel wide enough for the Gaussian (+-2 sigma), odd.
    k = 2 * math.ceil(2 * sigma) + 1
    with torch.no_grad():
        unit = ((images.float() + 1) / 2).clamp(0, 1)
        _, found = canny(
            unit,
            low_threshold=low_threshold,
            high_threshold=high_threshold,
            kernel_size=(k, k),
            sigma=(sigma, sigma),
        )
        if thickness > 1:
            found = F.max_pool2d(found, thickness, stride=1, padding=thickness // 2)
        drawn = 1.0 - 2.0 * (found > 0.5).float()
    return drawn.expand(-1, channels, -1, -1).contiguous().to(images.dtype)


def _to_hwc_uint8(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [-1, 1] -> (H, W, 3) uint8, grey repeated to three channels."""
    pixels = to_uint8(image).cpu()
    if pixels.shape[0] == 1:
        pixels = pixels.expand(3, -1, -1)
    return pixels.permute(1, 2, 0).numpy()


def edges_dataset(
    photo_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    size: int | None = 256,
    low_threshold: float = 0.2,
    high_threshold: float = 0.4,
    sigma: float = 1.5,
    thickness: int = 1,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    max_count: int | None = None,
    progress: bool = True,
) -> int:
    """Write an aligned ``edges|photo`` dataset from a folder of photos.

    Args:
        photo_dir: Folder of photos, searched recursively (sub-folders are kept in the output).
        out_dir: Output folder; one ``<relative path>.png`` per photo, (S, 2S, 3) uint8 RGB with
            the edge map (A) on the left and the photo (B) on the right, so edges -> photo is
            direction ``AtoB`` as in edges2shoes.
        size: Resize photos to ``size`` x ``size`` first (bicubic; 256 like the pix2pix sets);
            ``None`` keeps each photo's own size.
        low_threshold: see [`make_edges`][p2pkit.data.edges.make_edges].
        high_threshold: see [`make_edges`][p2pkit.data.edges.make_edges].
        sigma: see [`make_edges`][p2pkit.data.edges.make_edges].
        thickness: see [`make_edges`][p2pkit.data.edges.make_edges].
        batch_size: Photos per Canny call (at least 1).
        device: Where to run Canny (default CPU).
        max_count: Process only the first N photos in natural order.
        progress: Show a progress bar.

    Returns:
        The number of pairs written.

    Raises:
        DataError: the folder holds no images, or one cannot be read.
    """
    photos = images_by_key(photo_dir)
    if not photos:
        raise DataError(f"{photo_dir} holds no images; check the path")
    keys = list(photos)[: max_count if max_count is not None else None]
    out = Path(out_dir)
    if out.resolve() == Path(photo_dir).resolve():
        raise DataError(f"the output folder {out} is the photo folder; choose another one")
    target_device = torch.device(device) if device is not None else torch.device("cpu")

    resize_to = None if size is None else (size, size)

    def loaded() -> Iterator[tuple[str, torch.Tensor]]:
        """Each photo as ``(key, float (3, H, W) in [-1, 1])``, read as it is needed."""
        for key in track(keys, description="drawing edges", disable=not progress, transient=True):
            rgb = open_rgb(photos[key], resize_to, Image.Resampling.BICUBIC)
            yield key, to_float(torch.from_numpy(np.array(rgb)).permute(2, 0, 1), 255)

    # Photos of different sizes cannot share a batch: a batch ends where the size changes.
    for batch in same_shape_runs(loaded(), batch_size, key=lambda item: item[1].shape):
        stack = torch.stack([t for _, t in batch]).to(target_device)
        drawn = make_edges(
            stack,
            low_threshold=low_threshold,
            high_threshold=high_threshold,
            sigma=sigma,
            thickness=thickness,
        )
        for (key, photo), edge in zip(batch, drawn, strict=True):
            pair = np.concatenate([_to_hwc_uint8(edge), _to_hwc_uint8(photo)], axis=1)
            target = out / f"{key}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pair).save(target, compress_level=1)
    return len(keys)
