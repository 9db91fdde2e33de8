"""The single-folder layout: one image per row, for inference or tasks that derive the input.

Colorization or inpainting build the network input from the photo itself, so a dataset of this
layout has only the ``a`` side (``b`` is None).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from p2pkit.data.base import ImageDataset, check_options, list_folder, load, resolve_folder
from p2pkit.data.decode import Header
from p2pkit.data.store import Layout, Sample


def _side_size(sample: Sample, headers: list[Header]) -> tuple[int, int]:
    return (headers[0].height, headers[0].width)


def _whole(sample: Sample, pixels: list[np.ndarray]) -> list[np.ndarray]:
    return pixels


def single(
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
    """Load a folder of images as one side.

    Args:
        root: Image folder; ``root/<split>`` is used when it exists.
        split: Subfolder to read; None reads ``root`` itself.
        direction: Accepted for a uniform signature and ignored (there is one side).
        in_channels: Channels of ``a`` (1 or 3).
        out_channels: Accepted for a uniform signature and ignored.
        resize_to: Size (int or (height, width)) every image is resized to; needed when the
            images differ in size.
        min_size: Smallest height or width an image may have.
        skip_bad: Skip unusable files with one warning instead of raising.
        cache_dir: Folder for a memory-mapped cache of the decoded stack.
        max_images: Read only the first files, in natural order.

    Returns:
        Dataset with ``a`` (N, in_channels, H, W), an integer tensor, and ``b`` None.

    Raises:
        DataError: Missing or empty folder, or unusable files (all listed in one message).
    """
    del direction, out_channels
    check_options("AtoB", (in_channels,), max_images, min_size)
    folder = resolve_folder(root, split)
    files = list_folder(folder)[:max_images]
    samples = [Sample(path, (path,), ((path, ""),)) for path in files]
    return load(
        folder,
        samples,
        Layout("single", _side_size, _whole),
        (in_channels,),
        direction="AtoB",
        resize_to=resize_to,
        min_size=min_size,
        skip_bad=skip_bad,
        cache_dir=cache_dir,
        max_images=max_images,
    )
