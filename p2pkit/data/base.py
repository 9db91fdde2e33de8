"""The dataset object all layouts return, and the loading steps they share.

A dataset is a plain in-memory (or memory-mapped) object: every image is decoded once into one
integer stack per side, and a batch is an index select. Layout modules
([`aligned`][p2pkit.data.aligned], [`paired`][p2pkit.data.paired], [`single`][p2pkit.data.single])
only decide which files form a row and how they split into sides;
[`read_sample`][p2pkit.data.base.read_sample] reads one row on its own for their per-file reads.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from p2pkit.data.cache import DiskCache
from p2pkit.data.decode import Header, ImageProblem, decode, fit_channels
from p2pkit.data.images import IMAGE_EXTENSIONS, is_image_file, list_images, to_float
from p2pkit.data.options import DatasetOptions
from p2pkit.data.preflight import Problem
from p2pkit.data.store import Layout, Sample, _resize, as_size, build
from p2pkit.errors import DataError

logger = logging.getLogger("p2pkit.data")


class ImageDataset:
    """Decoded images of one dataset, ready to batch.

    Attributes:
        root: The folder the images were read from (``root/<split>`` when it exists).
        a: Network-input side, integer tensor (N, C_in, H, W): uint8 in 0..255, or int32 in
            0..65535 for 16-bit data. After the direction swap, so ``a`` is always the input.
        b: Target side, (N, C_out, H, W) with the same dtype, or None for a single-folder dataset.
        paths: For each row, the file its input side was read from.
        max_value: 255 or 65535; [`p2pkit.data.images.to_float`][p2pkit.data.images.to_float] maps
            0..max_value to [-1, 1].
    """

    def __init__(
        self,
        root: Path,
        a: torch.Tensor,
        b: torch.Tensor | None,
        paths: list[Path],
        max_value: int,
    ) -> None:
        self.root = root
        self.a = a
        self.b = b
        self.paths = paths
        self.max_value = max_value

    def __len__(self) -> int:
        return self.a.shape[0]

    def __repr__(self) -> str:
        b = "None" if self.b is None else tuple(self.b.shape)
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, n={len(self)}, "
            f"a={tuple(self.a.shape)}, b={b}, dtype={self.a.dtype}, max_value={self.max_value})"
        )

    def batch(self, indices: torch.Tensor | Sequence[int]) -> dict[str, object]:
        """Select rows.

        Args:
            indices: Row numbers, a 1-D tensor or a list of ints.

        Returns:
            ``{"a": (B, C_in, H, W), "b": (B, C_out, H, W) or None, "paths": list[Path]}``, the
            tensors on the dataset's device (the CPU unless [`to`][p2pkit.data.base.ImageDataset.to]
            moved it) with its integer dtype (convert with ``to_float``).
        """
        index = torch.as_tensor(indices, dtype=torch.long).cpu().reshape(-1)
        paths = [self.paths[i] for i in index.tolist()]
        # The selection runs where the images are: on the GPU after :meth:`to`.
        index = index.to(self.a.device, non_blocking=True)
        return {
            "a": self.a.index_select(0, index),
            "b": None if self.b is None else self.b.index_select(0, index),
            "paths": paths,
        }

    def to(self, device: torch.device | str) -> ImageDataset:
        """Move the decoded images to ``device`` (in place), e.g. a GPU that holds them all."""
        self.a = self.a.to(device)
        self.b = None if self.b is None else self.b.to(device)
        return self


def resolve_folder(root: str | Path, split: str | None) -> Path:
    """``root/<split>`` when that folder exists, else ``root`` itself.

    Raises:
        DataError: ``root`` does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder does not exist; check data.root")
    if split and (root / split).is_dir():
        return root / split
    return root


def list_folder(folder: Path) -> list[Path]:
    """The images in ``folder`` (natural order), warning once about files that are not images
    and once about symbolic links that cannot be followed (loops, missing targets).

    Raises:
        DataError: The folder is missing or holds no images.
    """
    images = list_images(folder)
    others: list[str] = []
    dead_links: list[str] = []
    for p in folder.iterdir():
        if p.name.startswith("."):
            continue
        if p.is_file():
            if not is_image_file(p):
                others.append(p.name)
        elif p.is_symlink() and not p.exists():
            # is_file() and exists() are quietly False for these: without a word the image
            # would just be missing from the dataset.
            try:
                os.stat(p)
                why = "unreadable"
            except OSError as err:
                why = "a symlink loop" if err.errno == errno.ELOOP else "its target is missing"
            dead_links.append(f"{p.name} ({why})")
    if others:
        shown = ", ".join(sorted(others)[:5]) + (" ..." if len(others) > 5 else "")
        logger.warning(
            "%s: ignoring %d files without an image extension (%s)", folder, len(others), shown
        )
    if dead_links:
        shown = ", ".join(sorted(dead_links)[:5]) + (" ..." if len(dead_links) > 5 else "")
        logger.warning(
            "%s: ignoring %d symbolic links that cannot be followed: %s; fix or remove them",
            folder,
            len(dead_links),
            shown,
        )
    if not images:
        raise DataError(
            f"{folder}: holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
            "point data.root at the folder that holds them"
        )
    return images


def load(
    folder: Path,
    samples: Sequence[Sample],
    layout: Layout,
    channels: Sequence[int],
    options: DatasetOptions,
    *,
    noun: str = "files",
    known: Sequence[Problem] = (),
) -> ImageDataset:
    """Decode (or reuse the cache of) the samples and wrap them as an
    [`ImageDataset`][p2pkit.data.base.ImageDataset].

    ``channels`` lists the channel count of each side after the direction swap: (in, out) for
    two sides, (in,) for one. Of ``options``, the direction (for the cache key), ``resize_to``,
    ``min_size``, ``skip_bad``, ``cache_dir`` and ``max_images`` apply here.
    """
    label = str(folder)
    direction, resize_to, min_size = options.direction, options.resize_to, options.min_size
    skip_bad, cache_dir, max_images = options.skip_bad, options.cache_dir, options.max_images
    cache = None
    if cache_dir is not None:
        settings = {
            "layout": layout.name,
            "folder": os.path.abspath(folder),
            "direction": direction,
            "channels": list(channels),
            "resize_to": None if resize_to is None else list(as_size(resize_to)),
            "min_size": min_size,
            "skip_bad": skip_bad,
            "max_images": max_images,
        }
        sources = {f for s in samples for f in s.files} | {p.path for p in known}
        cache = DiskCache(cache_dir, settings, sorted(sources))
    stacks = cache.load() if cache else None
    if stacks is None:
        try:
            stacks = build(
                label,
                samples,
                layout,
                channels,
                resize_to=resize_to,
                min_size=min_size,
                skip_bad=skip_bad,
                noun=noun,
                known=known,
                allocate=cache.allocate if cache else None,
                relative_to=folder,
            )
        except BaseException:
            if cache:
                cache.discard()
            raise
        if cache:
            stacks = cache.commit(stacks)
    sides = [torch.from_numpy(stack) for stack in stacks.sides]
    paths = [folder / name for name in stacks.names]
    b = sides[1] if len(sides) > 1 else None
    return ImageDataset(folder, sides[0], b, paths, stacks.max_value)


def read_sample(
    sample: Sample,
    layout: Layout,
    channels: Sequence[int],
    resize_to: int | Sequence[int] | None = None,
    *,
    reported: Path | None = None,
) -> list[torch.Tensor]:
    """Read one row on its own, checked and split as [`load`][p2pkit.data.base.load] does.

    The per-file read of the built-in layouts: the same decoding, geometry check, side split
    and channel fitting as loading a whole folder, for one sample.

    Args:
        sample: The files behind the row.
        layout: How they map to sides.
        channels: Channel count (1 or 3) of each side, in side order.
        resize_to: Size (int or (height, width)) every side is resized to; None keeps it.
        reported: The file the caller names in messages (default ``sample.path``); a problem
            with another file of the sample is said to be its partner's.

    Returns:
        One float32 tensor (C, H, W) in [-1, 1] per side, in side order.

    Raises:
        ImageProblem: A file cannot be used; the message leaves out the reported path.
    """
    reported = reported or sample.path

    def problem(path: Path, why: object) -> ImageProblem:
        if path == reported:
            return ImageProblem(str(why))
        return ImageProblem(f"has a partner {path.parent.name}/{path.name} that {why}")

    pixels = []
    for path in sample.files:
        try:
            pixels.append(decode(path))
        except ImageProblem as why:
            raise problem(path, why) from None
    headers = [Header(p.shape[1], p.shape[0], 16 if p.dtype == np.uint16 else 8) for p in pixels]
    layout.side_size(sample, headers)
    sides = []
    for array, wanted, (path, part) in zip(
        layout.split(sample, pixels), channels, sample.sides, strict=True
    ):
        try:
            array, _ = fit_channels(array, wanted)
        except ImageProblem as why:
            raise problem(path, f"{part}{why}") from None
        if resize_to is not None and array.shape[:2] != as_size(resize_to):
            array = _resize(array, as_size(resize_to))
        wide = array.dtype == np.uint16
        tensor = torch.from_numpy(array.astype(np.int32) if wide else array.copy())
        sides.append(to_float(tensor.permute(2, 0, 1), 65535 if wide else 255))
    return sides
