"""The paired-folder layout: ``A/`` and ``B/`` hold the two sides under the same file names."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import torch

from p2pkit.data.base import ImageDataset, list_folder, load, read_sample, resolve_folder
from p2pkit.data.decode import Header, ImageProblem
from p2pkit.data.images import is_image_file, natural_key
from p2pkit.data.options import DatasetOptions, reads_files
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


def _pair(first: Path, second: Path) -> Sample:
    return Sample(first, (first, second), ((first, ""), (second, "")))


_LAYOUT = Layout("paired", _side_size, _same)


def _partner(path: Path, side: str) -> Path:
    """The file of folder ``side`` (``A`` or ``B``) next to ``path``'s folder with its stem."""
    folder = path.parent.parent / side
    if path.parent.name == side:
        return path
    found = (
        [
            p
            for p in folder.glob(f"{glob.escape(path.stem)}.*")
            if p.stem == path.stem and is_image_file(p)
        ]
        if folder.is_dir()
        else []
    )
    if not found:
        raise ImageProblem(
            f"has no partner: {side}/ holds no image named {path.stem}.*; add it, or read the "
            "file as one image (the single layout)"
        )
    if len(found) > 1:
        names = ", ".join(sorted(p.name for p in found))
        raise ImageProblem(f"has more than one partner in {side}/ ({names}); keep only one")
    return found[0]


def read_paired_file(path: Path, options: DatasetOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one pair, named by either of its files (``A/7.png`` or ``B/7.jpg``).

    The partner is the image of the other folder (``A/`` or ``B/``, next to the file's) with
    the same name without extension, as when loading a folder.

    Args:
        path: A file in a folder named ``A`` or ``B``.
        options: ``direction``, ``in_channels``, ``out_channels`` and ``resize_to`` apply.

    Returns:
        ``(a, b)``: float32 (in_channels, H, W) and (out_channels, H, W) in [-1, 1], ``a`` the
        network input (the ``B/`` file for ``BtoA``).

    Raises:
        ImageProblem: The file is not in ``A/`` or ``B/``, has no partner, or cannot be used;
            the message leaves the path out.
    """
    path = Path(path)
    if path.parent.name not in ("A", "B"):
        raise ImageProblem(
            "is not in a folder named A or B; the paired layout reads A/NAME with B/NAME "
            "(read a lone image with the single layout)"
        )
    a_file, b_file = _partner(path, "A"), _partner(path, "B")
    first, second = (b_file, a_file) if options.swap else (a_file, b_file)
    channels = (options.in_channels, options.out_channels)
    a, b = read_sample(_pair(first, second), _LAYOUT, channels, options.resize_to, reported=path)
    return a, b


@reads_files(read_paired_file)
def paired(options: DatasetOptions) -> ImageDataset:
    """Load ``A/`` and ``B/`` folders whose files pair up by name (LLVIP, custom data...).

    ``root/<split>`` (or ``root``) must contain ``A/`` and ``B/``. Files pair up by name
    without extension (``A/7.png`` with ``B/7.jpg``). ``paths`` are the files of the input side
    ``a``. Every option of [`DatasetOptions`][p2pkit.data.options.DatasetOptions] applies;
    ``max_images`` counts names in natural order. The per-file read is
    [`read_paired_file`][p2pkit.data.paired.read_paired_file].

    Args:
        options: What to load.

    Returns:
        Dataset with ``a`` (N, in_channels, H, W) and ``b`` (N, out_channels, H, W), integer
        tensors (see [`ImageDataset`][p2pkit.data.base.ImageDataset]).

    Raises:
        DataError: Missing folders, or unusable pairs (all listed in one message).
    """
    folder = resolve_folder(options.root, options.split)
    for name in ("A", "B"):
        if not (folder / name).is_dir():
            raise DataError(
                f"{folder}: has no {name}/ folder; a paired dataset needs A/ and B/ subfolders "
                "holding images with the same names (for side-by-side files use the aligned layout)"
            )
    a_files, a_clashes = _by_stem(list_folder(folder / "A"))
    b_files, b_clashes = _by_stem(list_folder(folder / "B"))
    stems = sorted(a_files.keys() | b_files.keys(), key=natural_key)[: options.max_images]
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
        samples.append(_pair(b, a) if options.swap else _pair(a, b))
    channels = (options.in_channels, options.out_channels)
    return load(folder, samples, _LAYOUT, channels, options, noun="pairs", known=known)
