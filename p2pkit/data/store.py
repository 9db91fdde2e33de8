"""Decode a dataset once, in parallel, into one integer stack per side, checking every file.

The work runs in two passes over a thread pool (Pillow and torch release the GIL while decoding
and resizing):

1. **Scan** the headers: unreadable files, bad geometry, images smaller than ``min_size``, mixed
   sizes and the bit depth of the whole set are known before any pixel memory is allocated.
2. **Decode** every remaining file fully (truncation only shows at full decode) straight into its
   row of the preallocated stack, resizing and fitting channels on the way.

Problems from both passes (and any the layout found while listing) are then reported together by
[`p2pkit.data.preflight.report`][p2pkit.data.preflight.report], and unusable rows are dropped when
``skip_bad`` is set.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from p2pkit.data.cache import Stacks
from p2pkit.data.decode import Header, ImageProblem, decode, fit_channels, read_header
from p2pkit.data.preflight import Problem, listing, report, summarise_replicated
from p2pkit.errors import DataError

Size = tuple[int, int]
Allocate = Callable[[int, tuple[int, ...], np.dtype], np.ndarray]


@dataclass(frozen=True)
class Sample:
    """The files behind one dataset row.

    Attributes:
        path: The path reported in messages and exposed as the row's path.
        files: Files to decode, in the order the layout's ``split`` expects.
        sides: For each side (a, b...), the file it comes from and a prefix naming the part of
            that file ("" for a whole file, "left half (A) " for an aligned side).
    """

    path: Path
    files: tuple[Path, ...]
    sides: tuple[tuple[Path, str], ...]


@dataclass(frozen=True)
class Layout:
    """How a layout maps decoded files to sides.

    Attributes:
        name: "aligned", "paired" or "single".
        side_size: From a sample and its files' headers to the (height, width) of each side;
            raises ImageProblem for bad geometry.
        split: From a sample and the decoded files (H, W, C) to the sides' arrays, in side order.
    """

    name: str
    side_size: Callable[[Sample, list[Header]], Size]
    split: Callable[[Sample, list[np.ndarray]], list[np.ndarray]]


def as_size(size: int | Sequence[int]) -> Size:
    """``256`` or ``(256, 256)`` to ``(height, width)``."""
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


def _workers() -> int:
    return min(8, os.cpu_count() or 1)


def _scan(sample: Sample, layout: Layout) -> tuple[Size, int] | Problem:
    headers = []
    for path in sample.files:
        try:
            headers.append(read_header(path))
        except ImageProblem as problem:
            return Problem(path, str(problem))
    try:
        return layout.side_size(sample, headers), max(h.depth for h in headers)
    except ImageProblem as problem:
        return Problem(sample.path, str(problem))


def _resize(pixels: np.ndarray, size: Size) -> np.ndarray:
    full = 65535 if pixels.dtype == np.uint16 else 255
    image = torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1)[None]
    # Antialiased bicubic, like Pillow's resize, so shrinking does not alias.
    image = F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False)
    out = image[0].permute(1, 2, 0).round_().clamp_(0, full)
    return out.numpy().astype(pixels.dtype)


def _fill(
    sample: Sample,
    layout: Layout,
    channels: Sequence[int],
    size: Size,
    depth: int,
    stacks: list[np.ndarray],
    row: int,
) -> bool | Problem:
    """Decode one sample into ``row``; returns whether grey was replicated, or the problem."""
    pixels = []
    for path in sample.files:
        try:
            pixels.append(decode(path))
        except ImageProblem as problem:
            return Problem(path, str(problem))
    replicated = False
    sides = layout.split(sample, pixels)
    for side, (array, wanted) in enumerate(zip(sides, channels, strict=True)):
        path, part = sample.sides[side]
        try:
            array, grey = fit_channels(array, wanted)
        except ImageProblem as problem:
            return Problem(path, f"{part}{problem}")
        replicated |= grey
        if array.shape[:2] != size:
            array = _resize(array, size)
        if depth == 16 and array.dtype == np.uint8:
            # 255 * 257 = 65535, so 8-bit data lands exactly on the 16-bit scale.
            array = array.astype(np.int32) * 257
        stacks[side][row] = array.transpose(2, 0, 1)
    return replicated


def _mixed_sizes_error(
    label: str, sizes: Sequence[tuple[Size, Path]], problems: Sequence[Problem]
) -> DataError:
    counts = Counter(size for size, _ in sizes)
    examples: dict[Size, Path] = {}
    for size, path in sizes:
        examples.setdefault(size, path)
    parts = [
        f"{h}x{w} in {n} (e.g. {examples[(h, w)].name})" for (h, w), n in counts.most_common(3)
    ]
    more = f"; {len(counts) - 3} more sizes" if len(counts) > 3 else ""
    (h, w), _ = counts.most_common(1)[0]
    message = (
        f"{label}: the images come in {len(counts)} sizes (height x width: {'; '.join(parts)}"
        f'{more}); resize them as they load: in a recipe, data.preprocess = "resize_and_crop" '
        f'or "resize" (to data.load_size), from Python the dataset\'s resize_to=({h}, {w})'
    )
    if problems:
        message += "\nThese files cannot be used either:\n" + listing([p.line() for p in problems])
    return DataError(message)


def _compact(stacks: list[np.ndarray], keep: Sequence[int]) -> list[np.ndarray]:
    # Moving rows down in place avoids a second full-size copy (the stacks may be disk-backed).
    for new, old in enumerate(keep):
        if new != old:
            for stack in stacks:
                stack[new] = stack[old]
    return [stack[: len(keep)] for stack in stacks]


def build(
    label: str,
    samples: Sequence[Sample],
    layout: Layout,
    channels: Sequence[int],
    *,
    resize_to: int | Sequence[int] | None,
    min_size: int,
    skip_bad: bool,
    noun: str,
    known: Sequence[Problem] = (),
    allocate: Allocate | None = None,
    relative_to: Path,
) -> Stacks:
    """Check and decode every sample into per-side integer stacks.

    Args:
        label: The folder as the user named it, for messages.
        samples: The rows to load, in order.
        layout: How files map to sides.
        channels: Channel count (1 or 3) of each side.
        resize_to: Size every side is resized to when sizes differ or an image is larger
            (a downscale once at load saves memory and per-batch work); images of one size
            no larger than it are kept as they are.
        min_size: Smallest height or width a side may have (before any resize).
        skip_bad: Skip unusable samples with a warning instead of raising.
        noun: What a sample is called in messages ("files", "pairs").
        known: Problems the layout found while listing (e.g. a file with no partner).
        allocate: Makes a (N, C, H, W) stack of a dtype for a side; defaults to memory.
        relative_to: Folder that row names are given relative to.

    Returns:
        Stacks of shape (N, C_side, H, W): uint8 with max_value 255, or int32 with max_value
        65535 when any file is 16-bit.

    Raises:
        DataError: Every problem found, in one message (unless ``skip_bad``), or mixed sizes with
            no ``resize_to``.
    """
    target = as_size(resize_to) if resize_to is not None else None
    if target is not None and min(target) < min_size:
        raise DataError(
            f"{label}: resize_to {target[0]}x{target[1]} is smaller than min_size {min_size}; "
            "in a recipe raise data.load_size to at least data.crop_size"
        )
    problems: dict[int, Problem] = {}
    with ThreadPoolExecutor(_workers()) as pool:
        scans = list(pool.map(lambda sample: _scan(sample, layout), samples))
    good: list[tuple[int, Size, int]] = []
    for index, scan in enumerate(scans):
        if isinstance(scan, Problem):
            problems[index] = scan
        elif target is None and min(scan[0]) < min_size:
            h, w = scan[0]
            problems[index] = Problem(
                samples[index].path,
                f"is {h}x{w} (height x width), smaller than the minimum {min_size} (min_size, "
                "e.g. the crop size); use larger images, or resize them as they load "
                '(data.preprocess = "resize_and_crop" in a recipe, resize_to from Python)',
            )
        else:
            good.append((index, *scan))
    sizes = {size for _, size, _ in good}
    if target is not None and len(sizes) == 1:
        (native,) = sizes
        if native[0] <= target[0] and native[1] <= target[1]:
            # Images of one size no larger than the target keep their own pixels: the
            # upscale (e.g. the paper's 256 -> 286 jitter) happens on the device per batch,
            # and storing the smaller image saves memory.
            target = None
    if target is None and len(sizes) > 1:
        found = [(size, samples[i].path) for i, size, _ in good]
        raise _mixed_sizes_error(label, found, [*known, *(problems[i] for i in sorted(problems))])
    total = len(samples) + len(known)
    if not good:
        report(label, [*known, *problems.values()], total, noun, skip_bad=skip_bad)
        raise DataError(f"{label}: no usable images; check the folder")
    size = target or next(iter(sizes))
    depth = max(d for _, _, d in good)
    dtype = np.dtype(np.int32 if depth == 16 else np.uint8)
    allocate = allocate or (lambda _side, shape, kind: np.empty(shape, kind))
    stacks = [allocate(side, (len(good), c, *size), dtype) for side, c in enumerate(channels)]

    def fill(row: int) -> bool | Problem:
        return _fill(samples[good[row][0]], layout, channels, size, depth, stacks, row)

    with ThreadPoolExecutor(_workers()) as pool:
        filled = list(pool.map(fill, range(len(good))))
    keep, replicated = [], []
    for row, result in enumerate(filled):
        index = good[row][0]
        if isinstance(result, Problem):
            problems[index] = result
            continue
        keep.append(row)
        if result:
            replicated.append(samples[index].path)
    ordered = [*known, *(problems[i] for i in sorted(problems))]
    messages = report(label, ordered, total, noun, skip_bad=skip_bad)
    messages += summarise_replicated(label, replicated)
    names = [str(samples[good[row][0]].path.relative_to(relative_to)) for row in keep]
    return Stacks(_compact(stacks, keep), names, 65535 if depth == 16 else 255, messages)
