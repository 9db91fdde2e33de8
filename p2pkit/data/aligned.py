"""The pix2pix "aligned" layout: each file holds A (left half) and B (right half) side by side."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

from p2pkit.data.base import ImageDataset, list_folder, load, read_sample, resolve_folder
from p2pkit.data.decode import Header, ImageProblem
from p2pkit.data.options import DatasetOptions, reads_files
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


def _sample(path: Path, swap: bool) -> Sample:
    parts = ("right half (B) ", "left half (A) ") if swap else ("left half (A) ", "right half (B) ")
    return Sample(path, (path,), ((path, parts[0]), (path, parts[1])))


def _layout(swap: bool) -> Layout:
    return Layout("aligned", _side_size, partial(_halves, swap))


def read_aligned_file(path: Path, options: DatasetOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one A|B file as its two sides, the input side first.

    Args:
        path: The side-by-side file; its width must be twice its height.
        options: ``direction``, ``in_channels``, ``out_channels`` and ``resize_to`` apply.

    Returns:
        ``(a, b)``: float32 (in_channels, H, W) and (out_channels, H, W) in [-1, 1], ``a`` the
        network input (the right half for ``BtoA``).

    Raises:
        ImageProblem: The file cannot be used; the message leaves the path out.
    """
    channels = (options.in_channels, options.out_channels)
    sample = _sample(Path(path), options.swap)
    a, b = read_sample(sample, _layout(options.swap), channels, options.resize_to)
    return a, b


@reads_files(read_aligned_file)
def aligned(options: DatasetOptions) -> ImageDataset:
    """Load a folder of side-by-side A|B files (facades, maps, cityscapes...).

    ``root/<split>`` (or ``root``) holds one file per row, A on the left half and B on the
    right; every option of [`DatasetOptions`][p2pkit.data.options.DatasetOptions] applies. Its
    per-file read is [`read_aligned_file`][p2pkit.data.aligned.read_aligned_file].

    Args:
        options: What to load; ``resize_to`` and ``min_size`` apply to each half.

    Returns:
        Dataset with ``a`` (N, in_channels, H, W) and ``b`` (N, out_channels, H, W), integer
        tensors (see [`ImageDataset`][p2pkit.data.base.ImageDataset]).

    Raises:
        DataError: Missing or empty folder, or unusable files (all listed in one message).
    """
    folder = resolve_folder(options.root, options.split)
    files = list_folder(folder)[: options.max_images]
    samples = [_sample(path, options.swap) for path in files]
    channels = (options.in_channels, options.out_channels)
    return load(folder, samples, _layout(options.swap), channels, options)
