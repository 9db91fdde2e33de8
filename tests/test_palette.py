"""Tests for p2pkit.evaluation.palette: palette discovery and colour -> class mapping."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from p2pkit.errors import ConfigError, DataError
from p2pkit.evaluation.palette import (
    as_palette,
    colors_from_labels,
    find_palette,
    labels_from_colors,
    palette_to_list,
)

FACADES_TRAIN = (
    Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "facades" / "train"
)

COLOURS = [(255, 0, 0), (0, 200, 0), (0, 0, 255), (240, 240, 0)]


def _synthetic_labels(n: int = 4, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Random rectangles of the four COLOURS on a COLOURS[0] ground: int64 (n, size, size)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        for _ in range(6):
            y, x = torch.randint(0, size - 16, (2,), generator=g).tolist()
            h, w = torch.randint(8, 17, (2,), generator=g).tolist()
            labels[i, y : y + h, x : x + w] = int(torch.randint(1, 4, (1,), generator=g))
    return labels


def _jpeg_round_trip(images: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> the same images after JPEG compression, as uint8 (N, 3, H, W)."""
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=quality)
        out.append(torch.from_numpy(np.array(Image.open(buffer).convert("RGB"))))
    return torch.stack(out).permute(0, 3, 1, 2).contiguous()


def test_exact_palette_round_trip() -> None:
    palette = torch.tensor(COLOURS, dtype=torch.uint8)
    labels = _synthetic_labels()
    images = colors_from_labels(labels, palette)
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.uint8
    assert torch.equal(labels_from_colors(images, palette), labels)
    # The same images as float in [-1, 1] map identically.
    as_float = images.float() / 127.5 - 1
    assert torch.equal(labels_from_colors(as_float, palette), labels)
    found = find_palette(images)
    assert sorted(palette_to_list(found)) == sorted(list(c) for c in COLOURS)


def test_find_palette_survives_jpeg_noise() -> None:
    palette = torch.tensor(COLOURS, dtype=torch.uint8)
    labels = _synthetic_labels(n=6)
    noisy = _jpeg_round_trip(colors_from_labels(labels, palette))
    assert len(torch.unique(noisy.permute(0, 2, 3, 1).reshape(-1, 3), dim=0)) > 50
    found = find_palette(noisy)
    assert found.shape == (4, 3)
    # Each true colour is found to within a few levels (sorted by RGB, so match by distance).
    dist = torch.cdist(palette.float(), found.float())
    assert dist.min(dim=1).values.max() < 12
    mapped = labels_from_colors(noisy, found)
    recovered = dist.argmin(dim=1)[labels]  # true class -> index of its found colour
    assert (mapped == recovered).float().mean() > 0.95


def test_max_distance_marks_unmatched_pixels() -> None:
    palette = torch.tensor([[0, 0, 0], [255, 255, 255]], dtype=torch.uint8)
    image = torch.tensor([[0, 0, 0], [250, 250, 250], [100, 100, 100]], dtype=torch.uint8)
    image = image.T.reshape(1, 3, 1, 3)
    assert labels_from_colors(image, palette).tolist() == [[[0, 1, 0]]]
    labels = labels_from_colors(image, palette, max_distance=20, ignore_index=255)
    assert labels.tolist() == [[[0, 1, 255]]]


def test_as_palette_forms_and_errors() -> None:
    expected = [[255, 0, 0], [0, 128, 255]]
    assert palette_to_list(as_palette(["#ff0000", "0080ff"])) == expected
    assert palette_to_list(as_palette(expected)) == expected
    assert palette_to_list(as_palette(np.array(expected))) == expected
    with pytest.raises(ConfigError, match="'#ff00'"):
        as_palette(["#ff00"])
    with pytest.raises(ConfigError, match="0..255"):
        as_palette([[300, 0, 0]])
    with pytest.raises(ConfigError, match="both"):
        as_palette([[1, 2, 3], [1, 2, 3]])
    with pytest.raises(ConfigError, match="empty"):
        as_palette([])


def test_find_palette_needs_images() -> None:
    with pytest.raises(DataError):
        find_palette([])


def test_facades_palette() -> None:
    """On real facades label maps: about 12 classes, and pixels close to their class colour."""
    files = sorted(
        FACADES_TRAIN.glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0
    )
    if len(files) < 20:
        pytest.skip(f"facades dataset not found at {FACADES_TRAIN} (needs 20 *.jpg label images)")
    halves = []
    for path in files[:20]:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        halves.append(rgb[:, rgb.shape[1] // 2 :])  # the label map is the right half
    palette = find_palette(halves)
    # The CMP facade database has 12 classes (background included); 20 images show all of them.
    assert 11 <= len(palette) <= 13, palette_to_list(palette)
    pairwise = torch.cdist(palette.float(), palette.float()) + 1e3 * torch.eye(len(palette))
    assert pairwise.min() > 48

    images = torch.from_numpy(np.stack(halves)).permute(0, 3, 1, 2)
    labels = labels_from_colors(images, palette)
    distance = (images.float() - palette[labels].permute(0, 3, 1, 2).float()).norm(dim=1)
    # Inside regions (pixels whose 5x5 neighbourhood is uniform, as find_palette defines it)
    # almost every pixel sits right on its class colour.
    x = images.float()
    spread = torch.nn.functional.max_pool2d(x, 5, 1, 2) + torch.nn.functional.max_pool2d(
        -x, 5, 1, 2
    )
    interior = spread.amax(dim=1) <= 24
    assert (distance[interior] <= 24).float().mean() > 0.95
    # Boundaries carry 1-3 pixels of JPEG/resampling blends that are far from every class colour
    # (about 20% of all pixels lie more than 32 levels away), so the bound for all pixels is lower.
    assert (distance <= 32).float().mean() > 0.75
