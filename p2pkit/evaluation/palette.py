"""Colour-coded label maps -> class ids, for the FCN-score (pix2pix section 4.1).

Datasets such as the CMP facades or Cityscapes as the pix2pix authors distribute them store their
semantic labels as colour images, one flat colour per class, and usually as JPEG. To score generated
photos with a segmenter (the "FCN-score"), those colours must be turned back into class ids. This
module finds a dataset's palette from the label images themselves
([`find_palette`][p2pkit.evaluation.palette.find_palette]), accepts an explicit one
([`as_palette`][p2pkit.evaluation.palette.as_palette]), and maps pixels to the nearest palette
colour ([`labels_from_colors`][p2pkit.evaluation.palette.labels_from_colors]).

Image conventions: colour images are either ``uint8`` ``(N, 3, H, W)`` in ``[0, 255]`` or float
``(N, 3, H, W)`` in ``[-1, 1]``; PIL images and ``uint8`` ``(H, W, 3)`` arrays are accepted where
noted. A palette is a ``uint8`` tensor ``(K, 3)`` of RGB colours; class ``k`` is ``palette[k]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from p2pkit.data.batching import same_shape_runs
from p2pkit.data.images import to_uint8
from p2pkit.errors import ConfigError, DataError

__all__ = [
    "ImageLike",
    "as_palette",
    "colors_from_labels",
    "find_palette",
    "labels_from_colors",
    "palette_to_list",
    "to_uint8_images",
]

ImageLike = torch.Tensor | np.ndarray | Image.Image
"""A tensor ``(N, 3, H, W)`` or ``(3, H, W)`` (uint8, or float in [-1, 1]), a uint8 HWC array,
or a PIL image."""

# Width of the colour-histogram bins used to look for palette colours, in 8-bit levels per channel.
_BIN = 4


def to_uint8_images(images: ImageLike) -> torch.Tensor:
    """Convert one image or a batch to ``uint8`` ``(N, 3, H, W)`` in ``[0, 255]`` on the CPU.

    Args:
        images: a tensor ``(N, 3, H, W)`` or ``(3, H, W)``, either ``uint8`` or float in
            ``[-1, 1]`` (rounded to the nearest 8-bit level); a ``uint8`` numpy array ``(H, W, 3)``
            or ``(N, H, W, 3)``; or a PIL image (converted to RGB).

    Returns:
        ``uint8`` tensor ``(N, 3, H, W)``.
    """
    if isinstance(images, Image.Image):
        images = np.asarray(images.convert("RGB"))
    if isinstance(images, np.ndarray):
        array = np.ascontiguousarray(images)
        if not array.flags.writeable:  # e.g. np.asarray(PIL image); torch wants writable memory
            array = array.copy()
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"expected a (N, H, W, 3) or (H, W, 3) array, got {array.shape}")
        tensor = torch.from_numpy(array).permute(0, 3, 1, 2)
        if tensor.dtype != torch.uint8:
            raise ValueError(f"numpy images must be uint8, got {array.dtype}")
        return tensor.contiguous()
    tensor = images.detach().cpu()
    if tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise ValueError(f"expected RGB images (N, 3, H, W), got shape {tuple(tensor.shape)}")
    if tensor.dtype == torch.uint8:
        return tensor.contiguous()
    if not tensor.is_floating_point():
        raise ValueError(f"expected uint8 or float images, got {tensor.dtype}")
    return to_uint8(tensor)


def as_palette(colors: torch.Tensor | np.ndarray | Sequence[Sequence[int] | str]) -> torch.Tensor:
    """Normalise an explicit palette, e.g. from a recipe, to ``uint8`` ``(K, 3)``.

    Args:
        colors: ``(K, 3)`` integers in ``[0, 255]`` (tensor, array or nested lists) or a list of
            ``"#rrggbb"`` strings; class ``k`` gets ``colors[k]``.

    Returns:
        ``uint8`` tensor ``(K, 3)``.

    Raises:
        ConfigError: when a colour is malformed, out of range, or listed twice.
    """
    rows: list[list[int]] = []
    items = colors.tolist() if isinstance(colors, torch.Tensor | np.ndarray) else list(colors)
    for i, item in enumerate(items):
        if isinstance(item, str):
            text = item.strip().lstrip("#")
            if len(text) != 6:
                raise ConfigError(
                    f"palette colour {i} '{item}' is not '#rrggbb'; write e.g. '#00ff80'"
                )
            try:
                rows.append([int(text[j : j + 2], 16) for j in (0, 2, 4)])
            except ValueError:
                raise ConfigError(
                    f"palette colour {i} '{item}' is not '#rrggbb'; write e.g. '#00ff80'"
                ) from None
            continue
        values = list(item)
        if len(values) != 3 or any(int(v) != v or not 0 <= v <= 255 for v in values):
            raise ConfigError(
                f"palette colour {i} {values} must be three integers in 0..255 (R, G, B)"
            )
        rows.append([int(v) for v in values])
    if not rows:
        raise ConfigError("palette is empty; list one RGB colour per class")
    seen: dict[tuple[int, ...], int] = {}
    for i, row in enumerate(rows):
        key = tuple(row)
        if key in seen:
            raise ConfigError(
                f"palette colours {seen[key]} and {i} are both {row}; list each class once"
            )
        seen[key] = i
    return torch.tensor(rows, dtype=torch.uint8)


def palette_to_list(palette: torch.Tensor) -> list[list[int]]:
    """``(K, 3)`` palette -> ``[[r, g, b], ...]`` for JSON/TOML files."""
    return [[int(v) for v in row] for row in palette.tolist()]


def _colour_codes(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` ``(N, 3, H, W)`` -> ``int64`` ``(N, H, W)`` codes ``R << 16 | G << 8 | B``."""
    x = images.long()
    return (x[:, 0] << 16) | (x[:, 1] << 8) | x[:, 2]


def _flat_mask(images: torch.Tensor, window: int, tolerance: int) -> torch.Tensor:
    """Pixels whose ``window x window`` neighbourhood varies by at most ``tolerance`` levels.

    Args:
        images: ``uint8`` ``(N, 3, H, W)``.

    Returns:
        ``bool`` ``(N, H, W)``.
    """
    x = images.float()
    pad = window // 2
    # Per-channel local max and min; their spread is small only inside a uniform region.
    local_max = F.max_pool2d(x, window, stride=1, padding=pad)
    local_min = -F.max_pool2d(-x, window, stride=1, padding=pad)
    return (local_max - local_min).amax(dim=1) <= tolerance


def _batches_of_equal_size(
    items: Iterable[ImageLike], batch_size: int = 16
) -> Iterable[torch.Tensor]:
    """Regroup images of any form into ``uint8`` ``(B, 3, H, W)`` batches of one size each."""
    images = (image for item in items for image in to_uint8_images(item))
    for run in same_shape_runs(images, batch_size):
        yield torch.stack(run)


def find_palette(
    label_images: ImageLike | Iterable[ImageLike],
    *,
    max_colors: int = 32,
    min_fraction: float = 2e-4,
    merge_distance: float = 48.0,
    flat_window: int = 5,
    flat_tolerance: int = 24,
) -> torch.Tensor:
    """Discover the palette of colour-coded label maps, robustly to JPEG noise.

    JPEG turns each flat class colour into a cloud of nearby colours and, through chroma
    subsampling and ringing, smears blends of neighbouring classes along every region boundary. On
    20 facade label maps, 1.3 million pixels hold about 138 000 distinct colours, and the blends
    along boundaries carry more pixels than the rarest real classes. The method:

    1. Keep only *flat* pixels: those whose ``flat_window`` neighbourhood varies by at most
       ``flat_tolerance`` levels in every channel. Region interiors survive; boundary blends do
       not. (If under 1% of the pixels are flat, e.g. on noisy synthetic maps, all pixels are used.)
    2. Build a 3-D colour histogram of those pixels with 4-level bins, smooth it with a 3x3x3 box,
       and take its local maxima as candidate colours, strongest first.
    3. Greedily keep a candidate only if it is farther than ``merge_distance`` (Euclidean, RGB
       levels) from every stronger kept one, which merges near-duplicates of one class.
    4. Replace each kept candidate by its *mode*: the most frequent exact colour among the flat
       pixels within ``merge_distance / 2`` of it (JPEG reproduces a flat region's colour
       consistently, so the mode is stable from one sample of images to another).
    5. Count each colour's support, the fraction of flat pixels within ``merge_distance / 2`` of
       it; drop colours under ``min_fraction`` and keep at most ``max_colors``, the best supported.

    The palette is returned sorted by (R, G, B) so that class ids do not depend on which images
    were sampled. Distinct classes must differ by more than ``merge_distance``.

    Args:
        label_images: a batch (tensor ``(N, 3, H, W)``, uint8 or float in ``[-1, 1]``) or an
            iterable of images in any form
            [`to_uint8_images`][p2pkit.evaluation.palette.to_uint8_images] accepts (sizes may
            differ).
        max_colors: the most colours to return.
        min_fraction: the least share of flat pixels a colour needs to count as a class.
        merge_distance: colours closer than this (in 8-bit RGB levels) are one class.
        flat_window: odd side of the neighbourhood used to find flat pixels.
        flat_tolerance: largest per-channel spread, in levels, of a flat neighbourhood.

    Returns:
        ``uint8`` tensor ``(K, 3)``, ``1 <= K <= max_colors``.

    Raises:
        DataError: when no images are given or no colour is frequent enough.
    """
    if isinstance(label_images, torch.Tensor | np.ndarray | Image.Image):
        label_images = [label_images]
    flat_parts: list[torch.Tensor] = []
    all_parts: list[torch.Tensor] = []
    for batch in _batches_of_equal_size(label_images):
        codes = _colour_codes(batch)
        flat_parts.append(codes[_flat_mask(batch, flat_window, flat_tolerance)])
        all_parts.append(codes.reshape(-1))
    if not all_parts:
        raise DataError("find_palette: no label images were given; pass at least one label map")
    codes = torch.cat(flat_parts)
    if codes.numel() < 0.01 * sum(p.numel() for p in all_parts):
        codes = torch.cat(all_parts)
    del all_parts, flat_parts
    distinct, counts = torch.unique(codes, return_counts=True)
    rgb = torch.stack([(distinct >> 16) & 255, (distinct >> 8) & 255, distinct & 255], dim=1)

    # Step 2: smoothed colour histogram and its local maxima.
    levels = 256 // _BIN
    q = rgb // _BIN
    index = (q[:, 0] * levels + q[:, 1]) * levels + q[:, 2]
    hist = torch.zeros(levels**3).index_add_(0, index, counts.float())
    hist = hist.view(1, 1, levels, levels, levels)
    smooth = F.avg_pool3d(hist, 3, stride=1, padding=1)
    peak = (smooth == F.max_pool3d(smooth, 3, stride=1, padding=1)) & (smooth > 0)
    where = peak[0, 0].nonzero()
    strength = smooth[0, 0, where[:, 0], where[:, 1], where[:, 2]]
    centres = (where[strength.argsort(descending=True)] * _BIN + _BIN / 2).float()

    # Step 3: greedy suppression of weaker candidates near stronger ones.
    limit = 4 * max_colors  # plenty: candidates beyond these are noise far weaker than a class
    kept = torch.empty(limit, 3)
    n_kept = 0
    for centre in centres:
        if n_kept == 0 or torch.cdist(centre[None], kept[:n_kept]).min() > merge_distance:
            kept[n_kept] = centre
            n_kept += 1
            if n_kept == limit:
                break

    # Steps 4 and 5: snap to the modal exact colour, measure support, filter. Working on the
    # distinct colours with their counts is an order of magnitude cheaper than on every pixel.
    radius2 = (merge_distance / 2) ** 2
    distinct_rgb = rgb.float()
    found: list[tuple[float, tuple[int, int, int]]] = []
    for centre in kept[:n_kept]:
        near = ((distinct_rgb - centre) ** 2).sum(dim=1) <= radius2
        if not near.any():
            continue
        mode = distinct_rgb[near][counts[near].argmax()]
        support = counts[((distinct_rgb - mode) ** 2).sum(dim=1) <= radius2].sum()
        colour = (int(mode[0]), int(mode[1]), int(mode[2]))
        found.append((support.item() / codes.numel(), colour))
    found = [f for f in found if f[0] >= min_fraction]
    if not found:
        raise DataError(
            "find_palette: no colour covers min_fraction of the label pixels; lower min_fraction "
            "or give the palette explicitly"
        )
    found.sort(key=lambda f: -f[0])
    colours = sorted({c for _, c in found[:max_colors]})
    return torch.tensor(colours, dtype=torch.uint8)


def labels_from_colors(
    images: ImageLike,
    palette: torch.Tensor | Sequence[Sequence[int] | str],
    *,
    max_distance: float | None = None,
    ignore_index: int = -1,
) -> torch.Tensor:
    """Map every pixel to the class of its nearest palette colour (Euclidean distance in RGB).

    JPEG label maps that were resized with interpolation, like the pix2pix facades, hold one to
    three pixels of blended colour along every region boundary: about 15-20% of the facade pixels
    lie farther than 32 levels from every class colour, and the colour nearest to a blend of two
    classes can be a third class. Nearest-colour mapping still keeps thin structures (bars, sills)
    that consist of blends only. ``max_distance`` instead marks pixels farther than that from every
    palette colour with ``ignore_index`` so that scores can leave them out (see
    [`ConfusionMatrix`][p2pkit.evaluation.segmentation.ConfusionMatrix]), at the cost of losing
    those thin structures too.

    Args:
        images: colour-coded label maps, ``uint8`` ``(N, 3, H, W)`` or float ``(N, 3, H, W)`` in
            ``[-1, 1]`` (also one ``(3, H, W)`` image, a PIL image or a uint8 HWC array).
        palette: ``uint8`` ``(K, 3)`` from [`find_palette`][p2pkit.evaluation.palette.find_palette],
            or an explicit list of colours (see
            [`as_palette`][p2pkit.evaluation.palette.as_palette]).
        max_distance: distance in 8-bit levels beyond which a pixel gets ``ignore_index``;
            ``None`` gives every pixel a class.
        ignore_index: the label for such pixels.

    Returns:
        ``int64`` tensor ``(N, H, W)`` of class ids in ``[0, K)`` (or ``ignore_index``), on the CPU.
    """
    pal = palette if isinstance(palette, torch.Tensor) else as_palette(palette)
    pal_f = pal.float().cpu()
    batch = to_uint8_images(images)
    n, _, h, w = batch.shape
    # Label maps hold few distinct colours (JPEG noise included), so measuring distances once per
    # distinct colour and looking the result up per pixel is much cheaper than per pixel.
    flat = batch.permute(0, 2, 3, 1).reshape(-1, 3).int()
    codes = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    distinct, inverse = torch.unique(codes, return_inverse=True)
    rgb = torch.stack([(distinct >> 16) & 255, (distinct >> 8) & 255, distinct & 255], dim=1)
    best, nearest = ((rgb.float()[:, None, :] - pal_f[None]) ** 2).sum(dim=2).min(dim=1)
    out = nearest[inverse].view(n, h, w)
    if max_distance is not None:
        out[(best > max_distance**2)[inverse].view(n, h, w)] = ignore_index
    return out


def colors_from_labels(labels: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Paint class ids with their palette colours (the inverse of
    [`labels_from_colors`][p2pkit.evaluation.palette.labels_from_colors]).

    Args:
        labels: ``int64`` ``(N, H, W)`` class ids; values outside ``[0, K)`` are painted black.
        palette: ``uint8`` ``(K, 3)``.

    Returns:
        ``uint8`` tensor ``(N, 3, H, W)``.
    """
    pal = palette.to(labels.device)
    valid = (labels >= 0) & (labels < pal.shape[0])
    painted = pal[labels.clamp(0, pal.shape[0] - 1)]
    painted[~valid] = 0
    return painted.permute(0, 3, 1, 2).contiguous()
