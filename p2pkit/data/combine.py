"""Pair two folders of images into pix2pix's aligned ``A|B`` layout.

Many paired datasets come as two folders with the same file names, one per domain (LLVIP:
``A/`` infrared, ``B/`` visible). pix2pix reads one image per pair with A on the left and B on
the right; [`combine`][p2pkit.data.combine.combine] writes exactly that, as lossless PNG.
Sub-folders are kept, so ``A/train/x.jpg`` + ``B/train/x.jpg`` becomes ``out/train/x.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from rich.progress import track

from p2pkit.data.images import IMAGE_EXTENSIONS, images_by_key, open_rgb
from p2pkit.errors import DataError

__all__ = ["combine"]

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def _size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{path} cannot be read as an image ({err}); replace or remove it") from err


def combine(
    a_dir: str | os.PathLike[str],
    b_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    resize_to: int | tuple[int, int] | None = None,
    resample: str = "bicubic",
    max_count: int | None = None,
    progress: bool = False,
) -> int:
    """Write one aligned ``A|B`` PNG per pair of same-named images in ``a_dir`` and ``b_dir``.

    Args:
        a_dir: Folder of domain-A images (left halves). Searched recursively; files pair up by
            their path relative to the folder, ignoring the suffix (``x.jpg`` pairs ``x.png``).
        b_dir: Folder of domain-B images (right halves), same names.
        out_dir: Output folder; ``<relative path>.png`` per pair, sub-folders kept. Each output
            is (H, 2W, 3) uint8 RGB, A in columns ``[0, W)`` and B in ``[W, 2W)``.
        resize_to: ``None`` keeps the sizes (A and B must then match); an int resizes both
            halves to that square size, a ``(width, height)`` pair to that size.
        resample: ``"bicubic"`` (default), ``"bilinear"``, ``"lanczos"`` or ``"nearest"`` (use
            ``"nearest"`` for label maps, so no new colours appear).
        max_count: Write only the first N pairs in natural order (all pairs are still checked).
        progress: Show a progress bar.

    Returns:
        The number of pairs written.

    Raises:
        DataError: a folder is missing or empty, a file has no partner on the other side, a
            file cannot be read, or A and B sizes differ while ``resize_to`` is ``None``.
    """
    a_root, b_root, out = Path(a_dir), Path(b_dir), Path(out_dir)
    if resample not in _RESAMPLE:
        raise DataError(f"unknown resample {resample!r}: use one of {', '.join(_RESAMPLE)}")
    if isinstance(resize_to, int):
        size: tuple[int, int] | None = (resize_to, resize_to)
    elif resize_to is not None:
        size = (int(resize_to[0]), int(resize_to[1]))
    else:
        size = None
    if size is not None and min(size) < 1:
        raise DataError(f"resize_to must be positive, got {resize_to}")
    for root in (a_root, b_root):
        if out.resolve() == root.resolve():
            raise DataError(f"the output folder {out} is an input folder; choose another one")

    a_files, b_files = images_by_key(a_root), images_by_key(b_root)
    if not a_files:
        known = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(f"{a_root} holds no images ({known}); check the path")
    for here, there, there_root in ((a_files, b_files, b_root), (b_files, a_files, a_root)):
        missing = [key for key in here if key not in there]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(
                f"{here[missing[0]]} has no partner named {missing[0]}.* in {there_root}{more}; "
                "add it or remove the unpaired files"
            )

    keys = list(a_files)
    if max_count is not None:
        keys = keys[: max(0, max_count)]
    if size is None:
        # Check every pair before writing anything, from the headers only (no decoding).
        for key in keys:
            a_size, b_size = _size(a_files[key]), _size(b_files[key])
            if a_size != b_size:
                raise DataError(
                    f"{a_files[key]} is {a_size[0]}x{a_size[1]} but {b_files[key]} is "
                    f"{b_size[0]}x{b_size[1]}; pass resize_to to resize both halves"
                )

    resampling = _RESAMPLE[resample]
    for key in track(keys, description="combining", disable=not progress, transient=True):
        left = open_rgb(a_files[key], size, resampling)
        right = open_rgb(b_files[key], size, resampling)
        pair = Image.new("RGB", (left.width + right.width, left.height))
        pair.paste(left, (0, 0))
        pair.paste(right, (left.width, 0))
        target = out / f"{key}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        # PNG is lossless, so no JPEG artefacts are added on top of the source's. Level 1
        # compresses a little less than the default but is several times faster.
        pair.save(target, compress_level=1)
    return len(keys)
