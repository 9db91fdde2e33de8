"""Listing, reading and writing image files, and converting stored pixels to network floats.

Stored pixels are integers (uint8 with max_value 255, or int32 with max_value 65535 for 16-bit
data); networks see float32 in [-1, 1]. [`to_float`][p2pkit.data.images.to_float] and
[`to_uint8`][p2pkit.data.images.to_uint8] convert between them. The pixel-format policy that
[`read_image`][p2pkit.data.images.read_image] applies is documented in
[`p2pkit.data.decode`][p2pkit.data.decode].

Every listing of image files in p2pkit goes through this module, so all of them accept the same
[`IMAGE_EXTENSIONS`][p2pkit.data.images.IMAGE_EXTENSIONS] and sort by the same
[`natural_key`][p2pkit.data.images.natural_key].
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from p2pkit.data.decode import ImageProblem, decode, fit_channels
from p2pkit.errors import DataError

#: zlib level for the 8-bit PNGs p2pkit writes. Pillow's default (6) spent 18 ms per 256 px
#: network output on a 2-core AMD EPYC, level 1 4.4 ms for files 3% larger (the 100 facades
#: val photos: 99 against 102 KB); the pixels are the same. At ten images a second the
#: default's encoding alone took a tenth of the machine from the network (docs/performance.md).
PNG_COMPRESS_LEVEL = 1

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
)
"""File name endings treated as images (compared lower-case), by every reader and writer of p2pkit:
datasets, ``p2pkit data combine`` and ``edges``, and ``p2pkit translate``."""

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key that orders embedded numbers by value: ``1, 2, 10`` rather than ``1, 10, 2``."""
    # Tagging numbers 0 and text 1 keeps every pair of keys comparable. isdecimal, not isdigit:
    # "²" is a digit that int() refuses, and only decimal runs are split out as numbers.
    return tuple(
        (0, int(part), part) if part.isdecimal() else (1, 0, part.casefold())
        for part in _DIGITS.split(name)
        if part
    )


def is_image_file(path: Path) -> bool:
    """Whether ``path`` names a visible file with an image extension (case-insensitive)."""
    # Names starting with "." are macOS/editor sidecars such as "._1.jpg", not images.
    return (
        path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()
    )


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder``, in natural order of their names.

    Raises:
        DataError: The folder does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder does not exist; check the path (data.root)")
    return sorted(
        (p for p in folder.iterdir() if is_image_file(p)), key=lambda p: natural_key(p.name)
    )


def images_by_key(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Map each image under ``folder`` (recursively) to its key: relative path without suffix.

    Keys use ``/`` separators (``train/010001``) and come back in natural order. Files and
    folders whose names start with ``.`` are skipped (``.ipynb_checkpoints``, ``._x.jpg`` from
    macOS).

    Raises:
        DataError: if the folder is missing or two files share a key (``x.jpg`` and ``x.png``).
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; give the folder holding the images")
    found: dict[str, Path] = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if not is_image_file(path) or any(part.startswith(".") for part in relative.parts):
            continue
        key = relative.with_suffix("").as_posix()
        if key in found:
            raise DataError(
                f"{found[key]} and {path} would both become {key}.png; remove or rename one"
            )
        found[key] = path
    return {key: found[key] for key in sorted(found, key=natural_key)}


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """Read one image under the p2pkit pixel policy.

    Args:
        path: A PNG, JPEG, TIFF, BMP or WebP file.
        channels: 1 or 3, the channel count wanted.

    Returns:
        Array (H, W, channels), uint8 (0..255) or, for 16-bit files, uint16 (0..65535).

    Raises:
        DataError: The file cannot be used; the message names it and says what to do.
    """
    path = Path(path)
    try:
        pixels, _ = fit_channels(decode(path), channels)
    except ImageProblem as problem:
        raise DataError(f"{path}: {problem}") from None
    return pixels


def open_rgb(
    path: Path,
    size: tuple[int, int] | None = None,
    resample: Image.Resampling = Image.Resampling.BICUBIC,
) -> Image.Image:
    """Open one image as 8-bit RGB for the dataset tools (``p2pkit data combine`` and ``edges``).

    Unlike [`read_image`][p2pkit.data.images.read_image] this applies no pixel policy: the tools
    write pix2pix halves, which are 3-channel 8-bit RGB whatever the source was, so grey, palette
    and RGBA inputs are converted (alpha dropped, not checked) and 16-bit ones reduced to 8 bits.

    Args:
        path: Any image file Pillow reads.
        size: ``(width, height)`` to resize to, or ``None`` to keep the size.
        resample: Pillow's resampling filter for the resize.

    Returns:
        A loaded RGB PIL image (the file is closed again).

    Raises:
        DataError: The file cannot be read as an image.
    """
    try:
        with Image.open(path) as im:
            # Grey (infrared, edges), palette or RGBA inputs: pix2pix halves are 3-channel RGB.
            rgb = im.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{path} cannot be read as an image ({err}); replace or remove it") from err
    if size is not None and rgb.size != size:
        rgb = rgb.resize(size, resample)
    return rgb


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _write_png16(path: Path, pixels: np.ndarray) -> None:
    # Pillow cannot write 16-bit colour PNGs, and the format is simple enough to write directly.
    height, width, channels = pixels.shape
    colour_type = {1: 0, 3: 2}[channels]
    rows = np.ascontiguousarray(pixels.astype(">u2")).reshape(height, -1).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 6))
        + _png_chunk(b"IEND", b"")
    )


def _as_hwc(image: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        if tensor.is_floating_point():
            tensor = to_uint8(tensor)
        if tensor.dim() == 3:
            tensor = tensor.permute(1, 2, 0)
        array = tensor.numpy()
    else:
        array = np.asarray(image)
        if np.issubdtype(array.dtype, np.floating):
            array = to_uint8(torch.from_numpy(np.ascontiguousarray(array))).numpy()
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise ValueError(f"expected an image with 1 or 3 channels, got shape {tuple(image.shape)}")
    return array


def write_image(path: str | Path, image: np.ndarray | torch.Tensor) -> None:
    """Write one image, creating parent folders.

    Args:
        path: Destination; the extension picks the format (16-bit data needs ``.png``).
        image: A torch tensor (C, H, W) or a numpy array (H, W, C); (H, W) is grey either way.
            C is 1 or 3. dtype uint8 (0..255); uint16 or int32 (0..65535), written as a 16-bit
            PNG; or float in [-1, 1], written as 8-bit.

    Raises:
        ValueError: Unsupported shape, dtype or extension for the data.
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(f"{path}: unknown image extension; use one of {sorted(IMAGE_EXTENSIONS)}")
    array = _as_hwc(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype in (np.uint16, np.int32):
        if path.suffix.lower() != ".png":
            raise ValueError(f"{path}: 16-bit images are written as PNG; use a .png name")
        if array.min(initial=0) < 0 or array.max(initial=0) > 65535:
            raise ValueError(f"{path}: 16-bit pixel values must lie in 0..65535")
        _write_png16(path, array)
        return
    if array.dtype != np.uint8:
        raise ValueError(f"{path}: cannot write pixels of dtype {array.dtype}")
    picture = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    suffix = path.suffix.lower()
    options: dict[str, object] = {}
    if suffix in {".jpg", ".jpeg"}:
        options = {"quality": 95}
    elif suffix == ".webp":
        # Pillow's WebP default is lossy; a written image should read back as written.
        options = {"lossless": True}
    elif suffix == ".png":
        options = {"compress_level": PNG_COMPRESS_LEVEL}
    picture.save(path, **options)


def to_float(x: torch.Tensor, max_value: int) -> torch.Tensor:
    """Stored integer pixels to network input.

    Args:
        x: Integer tensor of any shape (typically NCHW), values in 0..max_value.
        max_value: 255 for uint8 data, 65535 for 16-bit data.

    Returns:
        float32 tensor of the same shape in [-1, 1], on the same device.
    """
    # Divide first: v / max is exact at both ends, so 0 -> -1 and max -> 1 exactly.
    return x.to(torch.float32).div_(max_value).mul_(2.0).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Network output to 8-bit pixels.

    Args:
        x: Float tensor of any shape in [-1, 1] (values outside are clamped).

    Returns:
        uint8 tensor of the same shape in 0..255, on the same device.
    """
    return x.detach().float().clamp(-1.0, 1.0).add(1.0).mul(127.5).round_().to(torch.uint8)
