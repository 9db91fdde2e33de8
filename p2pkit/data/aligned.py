"""The pix2pix "aligned" layout: each file holds A (left half) and B (right half) side by side."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from p2pkit.data.base import ImageDataset, check_options, list_folder, load, resolve_folder
from p2pkit.data.decode import Header, ImageProblem
from p2pkit.data.store import Layout, Sample


def _side_size(sample: Sample, headers: list[Header]) -> tuple[int, int]:
    width, height = headers[0].width, headers[0].height
    if width % 2 or width != 2 * height:
        raise ImageProblem(
            f"is {width} pixels wide and {height} high, but an aligned file holds A and B side by "
            "side, so its width must be exactly twice its height; crop or re-export it"
        )
    return (height, width // 2)


def _halves(swap: bool, sample: Sample, pixels: list[np.ndarray]) -> list[np.ndarray]:
    image = pixels[0]
    middle = image.shape[1] // 2
    left, right = image[:, :middle], image[:, middle:]
    return [right, left] if swap else [left, right]


def aligned(
    root: str | Path,
    *,
    split: str | None = "train",
    direction: str = "AtoB",
    in_channels: int = 3,
    out_channels: int = 3,
    resize_to: int | tuple[int, int] | None = None,
    min_size: int = 0,
    skip_bad: bool = False,
    cache_dir: str | Path | None = None,
    max_images: int | None = None,
) -> ImageDataset:
    """Load a folder of side-by-side A|B files (facades, maps, cityscapes...).

    Args:
        root: Dataset folder; ``root/<split>`` is used when it exists.
        split: Subfolder to read, e.g. "train" or "val"; None reads ``root`` itself.
        direction: "AtoB" (A is the network input) or "BtoA".
        in_channels: Channels of the input side ``a`` (1 or 3).
        out_channels: Channels of the target side ``b`` (1 or 3).
        resize_to: Size (int or (height, width)) each half is resized to; needed when the
            files differ in size.
        min_size: Smallest height or width a half may have, e.g. the crop size.
        skip_bad: Skip unusable files with one warning instead of raising.
        cache_dir: Folder for a memory-mapped cache of the decoded stacks.
        max_images: Read only the first files, in natural order.

    Returns:
        Dataset with ``a`` (N, in_channels, H, W) and ``b`` (N, out_channels, H, W), integer
        tensors (see [`ImageDataset`][p2pkit.data.base.ImageDataset]).

    Raises:
        DataError: Missing or empty folder, or unusable files (all listed in one message).
    """
    check_options(direction, (in_channels, out_channels), max_images, min_size)
    folder = resolve_folder(root, split)
    files = list_folder(folder)[:max_images]
    swap = direction == "BtoA"
    parts = ("right half (B) ", "left half (A) ") if swap else ("left half (A) ", "right half (B) ")
    samples = [Sample(path, (path,), ((path, parts[0]), (path, parts[1]))) for path in files]
    return load(
        folder,
        samples,
        Layout("aligned", _side_size, partial(_halves, swap)),
        (in_channels, out_channels),
        direction=direction,
        resize_to=resize_to,
        min_size=min_size,
        skip_bad=skip_bad,
        cache_dir=cache_dir,
        max_images=max_images,
    )
