"""The paired-folder layout: ``A/`` and ``B/`` hold the two sides under the same file names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from p2pkit.data.base import ImageDataset, check_options, list_folder, load, resolve_folder
from p2pkit.data.decode import Header, ImageProblem
from p2pkit.data.images import natural_key
from p2pkit.data.preflight import Problem
from p2pkit.data.store import Layout, Sample
from p2pkit.errors import DataError


def _side_size(sample: Sample, headers: list[Header]) -> tuple[int, int]:
    first, second = headers
    if (first.width, first.height) != (second.width, second.height):
        raise ImageProblem(
            f"is {first.width}x{first.height} (width x height) but its partner "
            f"{sample.files[1]} is {second.width}x{second.height}; the two images of a pair "
            "must be the same size and pixel-aligned"
        )
    return (first.height, first.width)


def _same(sample: Sample, pixels: list[np.ndarray]) -> list[np.ndarray]:
    return pixels


def _by_stem(files: list[Path]) -> tuple[dict[str, Path], list[Problem]]:
    # Partners match by name without extension, so A/1.png pairs with B/1.jpg.
    found: dict[str, Path] = {}
    clashes = []
    for path in files:
        if path.stem in found:
            clashes.append(
                Problem(path, f"has the same name as {found[path.stem].name}; keep only one")
            )
        else:
            found[path.stem] = path
    return found, clashes


def paired(
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
    """Load ``A/`` and ``B/`` folders whose files pair up by name (LLVIP, custom data...).

    Files pair up by name without extension (``A/7.png`` with ``B/7.jpg``). ``paths`` are the
    files of the input side ``a``.

    Args:
        root: Dataset folder; ``root/<split>`` is used when it exists. It must contain ``A/``
            and ``B/``.
        split: Subfolder to read, e.g. "train" or "test"; None reads ``root`` itself.
        direction: "AtoB" (A is the network input) or "BtoA".
        in_channels: Channels of the input side ``a`` (1 or 3).
        out_channels: Channels of the target side ``b`` (1 or 3).
        resize_to: Size (int or (height, width)) every image is resized to; needed when pairs
            differ in size.
        min_size: Smallest height or width an image may have, e.g. the crop size.
        skip_bad: Skip unusable pairs with one warning instead of raising.
        cache_dir: Folder for a memory-mapped cache of the decoded stacks.
        max_images: Read only the first names, in natural order.

    Returns:
        Dataset with ``a`` (N, in_channels, H, W) and ``b`` (N, out_channels, H, W), integer
        tensors (see [`ImageDataset`][p2pkit.data.base.ImageDataset]).

    Raises:
        DataError: Missing folders, or unusable pairs (all listed in one message).
    """
    check_options(direction, (in_channels, out_channels), max_images, min_size)
    folder = resolve_folder(root, split)
    for name in ("A", "B"):
        if not (folder / name).is_dir():
            raise DataError(
                f"{folder}: has no {name}/ folder; a paired dataset needs A/ and B/ subfolders "
                "holding images with the same names (for side-by-side files use the aligned layout)"
            )
    a_files, a_clashes = _by_stem(list_folder(folder / "A"))
    b_files, b_clashes = _by_stem(list_folder(folder / "B"))
    stems = sorted(a_files.keys() | b_files.keys(), key=natural_key)[:max_images]
    samples, known = [], [*a_clashes, *b_clashes]
    for stem in stems:
        a, b = a_files.get(stem), b_files.get(stem)
        if a is None or b is None:
            have, missing = ("B", "A") if a is None else ("A", "B")
            known.append(
                Problem(
                    a or b,
                    f"is in {have}/ but {missing}/ has no file named {stem}.*; "
                    f"add its partner or remove it",
                )
            )
            continue
        first, second = (b, a) if direction == "BtoA" else (a, b)
        samples.append(Sample(first, (first, second), ((first, ""), (second, ""))))
    return load(
        folder,
        samples,
        Layout("paired", _side_size, _same),
        (in_channels, out_channels),
        direction=direction,
        resize_to=resize_to,
        min_size=min_size,
        skip_bad=skip_bad,
        cache_dir=cache_dir,
        max_images=max_images,
        noun="pairs",
        known=known,
    )
