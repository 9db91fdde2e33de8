"""The single-folder layout: one image per row, for inference or tasks that derive the input.

Colorization or inpainting build the network input from the photo itself, so a dataset of this
layout has only the ``a`` side (``b`` is None).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from p2pkit.data.base import ImageDataset, list_folder, load, read_sample, resolve_folder
from p2pkit.data.decode import Header
from p2pkit.data.options import DatasetOptions, reads_files
from p2pkit.data.store import Layout, Sample


def _side_size(sample: Sample, headers: list[Header]) -> tuple[int, int]:
    return (headers[0].height, headers[0].width)


def _whole(sample: Sample, pixels: list[np.ndarray]) -> list[np.ndarray]:
    return pixels


_LAYOUT = Layout("single", _side_size, _whole)


def read_single_file(path: Path, options: DatasetOptions) -> tuple[torch.Tensor, None]:
    """Read one image as the input side.

    Args:
        path: The image.
        options: ``in_channels`` and ``resize_to`` apply.

    Returns:
        ``(a, None)``: ``a`` float32 (in_channels, H, W) in [-1, 1]; there is no target side.

    Raises:
        ImageProblem: The file cannot be used; the message leaves the path out.
    """
    path = Path(path)
    sample = Sample(path, (path,), ((path, ""),))
    (a,) = read_sample(sample, _LAYOUT, (options.in_channels,), options.resize_to)
    return a, None


@reads_files(read_single_file)
def single(options: DatasetOptions) -> ImageDataset:
    """Load a folder of images as one side.

    ``root/<split>`` (or ``root``) holds one image per row. ``direction`` and
    ``out_channels`` do not apply (there is one side); the other options of
    [`DatasetOptions`][p2pkit.data.options.DatasetOptions] do. The per-file read is
    [`read_single_file`][p2pkit.data.single.read_single_file].

    Args:
        options: What to load.

    Returns:
        Dataset with ``a`` (N, in_channels, H, W), an integer tensor, and ``b`` None.

    Raises:
        DataError: Missing or empty folder, or unusable files (all listed in one message).
    """
    folder = resolve_folder(options.root, options.split)
    files = list_folder(folder)[: options.max_images]
    samples = [Sample(path, (path,), ((path, ""),)) for path in files]
    # One side: the direction must not change the cache key.
    return load(folder, samples, _LAYOUT, (options.in_channels,), options.replace(direction="AtoB"))
