"""Turn one image file into a pixel array, under one documented policy.

Pixel-format policy (the same for every layout and for
[`p2pkit.data.images.read_image`][p2pkit.data.images.read_image]):

* **Bit depth.** 8-bit files give ``uint8``; 16-bit PNG and TIFF (grey or colour) give ``uint16`` at
  full precision, never through an 8-bit round trip. 32-bit integer files are accepted when their
  values fit in 16 bits; floating-point files are refused.
* **Palette** (``P``) and bilevel (``1``) images are expanded losslessly to RGB or grey.
* **Alpha.** An alpha channel that is fully opaque is dropped silently. Real transparency is
  refused: the network would see whatever colour happens to sit under the transparent pixels, so
  the user must flatten the image onto a background first (or skip it with ``skip_bad``).
* **CMYK, YCbCr, LAB, HSV** images are converted to RGB.
* **Grey where 3 channels are expected** is replicated to three equal channels; datasets log one
  warning that summarises the files concerned.
* **RGB where 1 channel is expected** is accepted only when the content is grey (the three channels
  differ by at most 3 levels out of 255, which covers JPEG noise): it is then reduced to one channel
  with ITU-R BT.601 luma weights. An image with real colour is refused rather than silently
  desaturated; convert it to greyscale first, or set the side's channel count to 3.
* **EXIF orientation** is ignored: pixels are used in stored order, so both sides of a pair stay
  aligned whatever tags the files carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# Beyond this many levels (out of 255) a channel difference is colour, not JPEG noise on grey.
GREY_TOLERANCE_8BIT = 3

_CONVERT_TO_RGB = {"CMYK", "YCbCr", "LAB", "HSV", "RGBX"}
_GREY_16BIT = {"I;16", "I;16L", "I;16B", "I;16N"}


class ImageProblem(Exception):
    """One file cannot be used; the message says why, without the path (the caller adds it)."""


@dataclass(frozen=True)
class Header:
    """What a file's header says, read without decoding the pixels.

    Attributes:
        width: Width in pixels.
        height: Height in pixels.
        depth: 8 or 16 (bits per channel the decoded array will have).
    """

    width: int
    height: int
    depth: int


def _rawmode(image: Image.Image) -> str:
    """The decoder's raw mode, which reveals 16-bit colour that Pillow would reduce to 8 bits."""
    if not image.tile:
        return ""
    args = image.tile[0].args
    if isinstance(args, tuple):
        return str(args[0]) if args else ""
    return str(args or "")


def _is_16bit_colour(image: Image.Image) -> bool:
    if image.mode not in {"RGB", "RGBA", "LA"}:
        return False
    if ";16" in _rawmode(image):
        return True
    bits = getattr(image, "tag_v2", {}).get(258) if image.format == "TIFF" else None
    return isinstance(bits, tuple) and max(bits, default=8) == 16


def _depth(image: Image.Image) -> int:
    return 16 if image.mode in _GREY_16BIT or image.mode == "I" or _is_16bit_colour(image) else 8


def _open(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except PermissionError:
        raise ImageProblem("cannot be read (permission denied); fix its permissions") from None
    except FileNotFoundError:
        raise ImageProblem(
            "disappeared while loading; check that nothing else is editing the folder"
        ) from None
    except Image.DecompressionBombError:
        raise ImageProblem("is too large to decode safely; downscale it before training") from None
    except (OSError, ValueError, SyntaxError):
        raise ImageProblem(
            "is not an image Pillow can read; replace it or remove it from the folder"
        ) from None


def read_header(path: Path) -> Header:
    """Read size and bit depth from the header, without decoding the pixels.

    Raises:
        ImageProblem: The file is not a readable image.
    """
    with _open(path) as image:
        if image.mode == "F":
            raise ImageProblem(
                "holds floating-point pixels; save it as an 8- or 16-bit PNG or TIFF"
            )
        return Header(width=image.width, height=image.height, depth=_depth(image))


def _read_16bit_colour(path: Path, image: Image.Image) -> np.ndarray:
    # Pillow reduces 16-bit colour to 8 bits; kornia-rs (installed with kornia) keeps all 16.
    if image.mode == "LA":
        raise ImageProblem("is 16-bit grey with alpha; save it without the alpha channel")
    mode = "rgba" if image.mode == "RGBA" else "rgb"
    try:
        from kornia_rs import io as krs_io

        reader = krs_io.read_image_tiff_u16 if image.format == "TIFF" else krs_io.read_image_png_u16
        return np.asarray(reader(str(path), mode), dtype=np.uint16)
    except ImportError:
        raise ImageProblem(
            "is 16-bit colour, which needs kornia-rs to read; install kornia-rs or convert to 8-bit"
        ) from None
    except Exception as error:
        raise ImageProblem(
            f"is 16-bit colour but cannot be decoded ({error}); it may be truncated, corrupt or "
            "compressed in a way kornia-rs does not read: re-save it as a 16-bit PNG"
        ) from None


def _drop_alpha(pixels: np.ndarray, full: int) -> np.ndarray:
    if np.any(pixels[..., -1] != full):
        raise ImageProblem("has transparent pixels; flatten it onto a background")
    return pixels[..., :-1]


def _decode(image: Image.Image) -> np.ndarray:
    # A tRNS colour key is transparency too, so it goes through the alpha rule.
    has_key = "transparency" in image.info
    mode = image.mode
    if mode == "1" or (mode == "L" and not has_key):
        return np.asarray(image.convert("L"))[..., None]
    if mode in _GREY_16BIT:
        return np.asarray(image).astype(np.uint16)[..., None]
    if mode == "I":
        values = np.asarray(image)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise ImageProblem("holds 32-bit values; save it as an 8- or 16-bit PNG or TIFF")
        return values.astype(np.uint16)[..., None]
    if mode == "F":
        raise ImageProblem("holds floating-point pixels; save it as an 8- or 16-bit PNG or TIFF")
    if mode in {"L", "LA", "La"}:
        return _drop_alpha(np.asarray(image.convert("LA")), 255)
    if mode in {"P", "PA"}:
        has_alpha = has_key or mode == "PA"
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
    if mode == "RGB" and not has_key:
        return np.asarray(image)
    if mode in {"RGB", "RGBA", "RGBa"}:
        return _drop_alpha(np.asarray(image.convert("RGBA")), 255)
    if mode in _CONVERT_TO_RGB:
        return np.asarray(image.convert("RGB"))
    raise ImageProblem(f"has pixel mode {mode!r}, which p2pkit does not read; save it as RGB")


def decode(path: Path) -> np.ndarray:
    """Decode every pixel of one file (so truncation and corruption are caught here).

    Returns:
        Array (H, W, C) with C = 1 or 3, dtype uint8 (0..255) or uint16 (0..65535).

    Raises:
        ImageProblem: The file is not an image, is truncated or corrupt, or breaks the policy.
    """
    with _open(path) as image:
        # Checked before load(), which discards the tile list that reveals 16-bit colour.
        if _is_16bit_colour(image):
            pixels = _read_16bit_colour(path, image)
            if pixels.shape[-1] == 4:
                pixels = _drop_alpha(pixels, 65535)
            return np.ascontiguousarray(pixels)
        try:
            image.load()
            pixels = _decode(image)
        except ImageProblem:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise ImageProblem(
                f"is truncated or corrupt ({error}); re-export it or remove it"
            ) from None
    return np.ascontiguousarray(pixels)


def fit_channels(pixels: np.ndarray, channels: int) -> tuple[np.ndarray, bool]:
    """Give decoded pixels the channel count a dataset side expects.

    Args:
        pixels: Array (H, W, C), C in {1, 3}, uint8 or uint16.
        channels: 1 or 3.

    Returns:
        The array (H, W, channels), same dtype, and whether grey was replicated to 3 channels.

    Raises:
        ImageProblem: Colour content where one channel is expected.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    have = pixels.shape[-1]
    if have == channels:
        return pixels, False
    if channels == 3:
        return np.repeat(pixels, 3, axis=-1), True
    full = 65535 if pixels.dtype == np.uint16 else 255
    wide = pixels.astype(np.int32)
    spread = np.max(wide, axis=-1) - np.min(wide, axis=-1)
    if spread.max(initial=0) * 255 > GREY_TOLERANCE_8BIT * full:
        raise ImageProblem(
            "is a colour image but this side expects 1 channel; convert it to greyscale first, "
            "or set the channel count to 3"
        )
    # Integer BT.601 luma (weights sum to 1000), so grey content maps to itself.
    luma = (wide[..., 0] * 299 + wide[..., 1] * 587 + wide[..., 2] * 114 + 500) // 1000
    return luma.astype(pixels.dtype)[..., None], False
