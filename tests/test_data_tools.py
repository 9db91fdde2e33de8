"""Tests for the dataset tools: combine, synthetic facades, edges and inpainting masks."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from p2pkit.data import synth
from p2pkit.data.batching import same_shape_runs
from p2pkit.data.combine import combine
from p2pkit.data.edges import edges_dataset, make_edges
from p2pkit.data.images import images_by_key as list_images
from p2pkit.data.masks import apply_mask, make_masks
from p2pkit.errors import ConfigError, DataError

LLVIP = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "llvip-sample"


def _save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _noise(seed: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------------------------------
# combine
# ---------------------------------------------------------------------------------------------


def test_combine_pairs_same_names_a_left_b_right(tmp_path: Path) -> None:
    a, b, out = tmp_path / "A", tmp_path / "B", tmp_path / "AB"
    for i, name in enumerate(["1", "2", "10", "sub/3"]):
        _save(a / f"{name}.png", _noise(i, 24, 32))
        _save(b / f"{name}.png", _noise(100 + i, 24, 32))
    assert list(list_images(a)) == ["1", "2", "10", "sub/3"]  # natural order, sub-folders kept
    assert combine(a, b, out) == 4
    pair = np.asarray(Image.open(out / "sub" / "3.png"))
    assert pair.shape == (24, 64, 3)
    np.testing.assert_array_equal(pair[:, :32], _noise(3, 24, 32))
    np.testing.assert_array_equal(pair[:, 32:], _noise(103, 24, 32))


def test_combine_reports_unpaired_and_mismatched_files(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    _save(a / "x.png", _noise(0, 16, 16))
    _save(b / "x.png", _noise(1, 16, 16))
    _save(a / "only_a.png", _noise(2, 16, 16))
    with pytest.raises(DataError, match=r"only_a\.png has no partner"):
        combine(a, b, tmp_path / "out")
    (a / "only_a.png").unlink()
    _save(b / "only_b.jpg", _noise(3, 16, 16))
    with pytest.raises(DataError, match=r"only_b\.jpg has no partner"):
        combine(a, b, tmp_path / "out")
    (b / "only_b.jpg").unlink()
    _save(b / "x.png", _noise(1, 16, 20))
    with pytest.raises(DataError, match=r"x\.png is 16x16 but .*x\.png is 20x16; pass resize_to"):
        combine(a, b, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written before the checks pass
    assert combine(a, b, tmp_path / "out", resize_to=(12, 8)) == 1
    assert Image.open(tmp_path / "out" / "x.png").size == (24, 8)


def test_combine_llvip_sample(tmp_path: Path) -> None:
    if not (LLVIP / "train" / "A").is_dir():
        pytest.skip(f"LLVIP sample not found at {LLVIP} (shared datasets are optional)")
    names = sorted(p.name for p in (LLVIP / "train" / "A").glob("*.jpg"))[:2]
    for side in ("A", "B"):
        (tmp_path / side).mkdir()
        for name in names:
            shutil.copy(LLVIP / "train" / side / name, tmp_path / side / name)
    assert combine(tmp_path / "A", tmp_path / "B", tmp_path / "AB") == 2
    for name in names:
        pair = Image.open(tmp_path / "AB" / name.replace(".jpg", ".png"))
        assert pair.size == (2560, 1024) and pair.mode == "RGB"
        visible = np.asarray(Image.open(tmp_path / "B" / name).convert("RGB"))
        np.testing.assert_array_equal(np.asarray(pair)[:, 1280:], visible)


# ---------------------------------------------------------------------------------------------
# synthetic facades
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples() -> list[tuple[np.ndarray, np.ndarray]]:
    """40 rendered facades at the default size: (photo HWC uint8, labels HW uint8)."""
    return [synth.render_facade(0, i, 128) for i in range(1, 41)]


def test_synthesize_facades_layout_and_determinism(tmp_path: Path) -> None:
    out = synth.synthesize_facades(tmp_path / "a", n_train=5, n_val=2, size=64, progress=False)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert names == [f"train/{i}.png" for i in range(1, 6)] + ["val/1.png", "val/2.png"]
    with Image.open(out / "train" / "1.png") as im:
        assert im.size == (128, 64) and im.mode == "RGB"
    meta = json.loads((out / "classes.json").read_text())
    assert meta["direction"] == "BtoA"
    assert [c["name"] for c in meta["classes"]] == list(synth.FACADE_CLASSES)
    assert [c["rgb"] for c in meta["classes"]] == synth.FACADE_PALETTE.tolist()
    assert "BtoA" in (out / "README.txt").read_text()

    # Same seed: same bytes, also in another folder; another seed: different images.
    again = synth.synthesize_facades(tmp_path / "b", n_train=5, n_val=2, size=64, progress=False)
    assert _digests(out) == _digests(again)
    other = synth.synthesize_facades(
        tmp_path / "c", n_train=5, n_val=2, size=64, seed=1, progress=False
    )
    assert (other / "train" / "1.png").read_bytes() != (out / "train" / "1.png").read_bytes()

    # Rerunning with other settings replaces the images; a foreign folder is refused.
    synth.synthesize_facades(out, n_train=3, n_val=1, size=64, progress=False)
    assert len(list((out / "train").glob("*.png"))) == 3
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        synth.synthesize_facades(foreign, n_train=1, n_val=0, progress=False)


def test_render_is_order_independent() -> None:
    later = [synth.render_facade(7, i, 64, "val") for i in (5, 3)]
    photo, labels = synth.render_facade(7, 3, 64, "val")
    np.testing.assert_array_equal(photo, later[1][0])
    np.testing.assert_array_equal(labels, later[1][1])
    assert not np.array_equal(synth.render_facade(7, 3, 64, "train")[0], photo)


def test_label_maps_use_only_palette_colours(tmp_path: Path) -> None:
    out = synth.synthesize_facades(tmp_path, n_train=4, n_val=0, size=96, progress=False)
    palette = {tuple(c) for c in synth.FACADE_PALETTE.tolist()}
    for path in (out / "train").glob("*.png"):
        label_half = np.asarray(Image.open(path))[:, 96:]
        assert {tuple(c) for c in label_half.reshape(-1, 3).tolist()} <= palette


def test_every_class_appears_in_most_images(samples: list[tuple[np.ndarray, np.ndarray]]) -> None:
    present = np.zeros(len(synth.FACADE_CLASSES))
    for _, labels in samples:
        present[np.unique(labels)] += 1
    share = present / len(samples)
    rare = {synth.FACADE_CLASSES[i]: s for i, s in enumerate(share) if s < 0.6}
    assert not rare, f"classes in fewer than 60% of images: {rare}"


def test_photo_is_aligned_with_labels(samples: list[tuple[np.ndarray, np.ndarray]]) -> None:
    photos = np.stack([p for p, _ in samples]).reshape(-1, 3).astype(np.float64)
    labels = np.stack([lab for _, lab in samples]).reshape(-1)
    means = np.stack([photos[labels == c].mean(0) for c in range(len(synth.FACADE_CLASSES))])
    # Most of the photo's variance is explained by the class of the pixel...
    explained = 1 - ((photos - means[labels]) ** 2).sum() / ((photos - photos.mean(0)) ** 2).sum()
    assert explained > 0.6, explained
    # ...and the large classes look clearly different from each other.
    big = [synth.BACKGROUND, synth.FACADE, synth.WINDOW, synth.DOOR, synth.ROOF, synth.SHOP]
    for i in big:
        for j in big:
            if i < j:
                assert np.linalg.norm(means[i] - means[j]) > 25, (i, j)


# ---------------------------------------------------------------------------------------------
# edges
# ---------------------------------------------------------------------------------------------


def _square(n: int = 1, size: int = 64) -> torch.Tensor:
    """Black images (-1) with a white square at [16, 48) x [16, 48)."""
    images = -torch.ones(n, 3, size, size)
    images[:, :, 16:48, 16:48] = 1.0
    return images


def test_edges_follow_the_square_border() -> None:
    edges = make_edges(_square(2))
    assert edges.shape == (2, 3, 64, 64) and edges.dtype == torch.float32
    assert set(edges.unique().tolist()) <= {-1.0, 1.0}
    on = (edges[0, 0] < 0).numpy()  # black = edge
    # Each side of the square has an edge within one pixel of its boundary along >= 90 %.
    near_top = on[15:18, 18:46].any(axis=0).mean()
    near_bottom = on[46:49, 18:46].any(axis=0).mean()
    near_left = on[18:46, 15:18].any(axis=1).mean()
    near_right = on[18:46, 46:49].any(axis=1).mean()
    assert min(near_top, near_bottom, near_left, near_right) >= 0.9
    # Nothing far from the border: the square's inside and the background are white.
    assert not on[20:44, 20:44].any()
    far = np.ones_like(on)
    far[12:52, 12:52] = False
    assert not on[far].any()
    grey = make_edges(_square(1)[:, :1], channels=1)
    assert grey.shape == (1, 1, 64, 64)
    assert (make_edges(torch.zeros(1, 3, 32, 32)) == 1).all()  # flat image: no edges


def test_edges_dataset_writes_edges_left_photo_right(tmp_path: Path) -> None:
    square = ((_square(1)[0].permute(1, 2, 0) + 1) * 127.5).to(torch.uint8).numpy()
    for i in range(3):
        _save(tmp_path / "photos" / f"{i}.png", square)
    assert edges_dataset(tmp_path / "photos", tmp_path / "out", size=None, progress=False) == 3
    pair = np.asarray(Image.open(tmp_path / "out" / "0.png"))
    assert pair.shape == (64, 128, 3)
    np.testing.assert_array_equal(pair[:, 64:], square)
    edge_half = pair[:, :64, 0]
    assert set(np.unique(edge_half).tolist()) == {0, 255}
    assert (edge_half == 0).mean() < 0.1  # mostly white, thin black lines
    resized = edges_dataset(tmp_path / "photos", tmp_path / "small", size=32, progress=False)
    assert resized == 3 and Image.open(tmp_path / "small" / "2.png").size == (64, 32)


def test_edges_dataset_keeps_photos_of_mixed_sizes_apart(tmp_path: Path) -> None:
    for i, (h, w) in enumerate([(16, 16), (16, 16), (24, 16), (16, 16)]):
        _save(tmp_path / "photos" / f"{i}.png", _noise(i, h, w))
    out = tmp_path / "out"
    assert edges_dataset(tmp_path / "photos", out, size=None, batch_size=2, progress=False) == 4
    for i, (h, w) in enumerate([(16, 16), (16, 16), (24, 16), (16, 16)]):
        pair = np.asarray(Image.open(out / f"{i}.png"))
        assert pair.shape == (h, 2 * w, 3)
        np.testing.assert_array_equal(pair[:, w:], _noise(i, h, w))


# ---------------------------------------------------------------------------------------------
# batching
# ---------------------------------------------------------------------------------------------


def test_same_shape_runs_keep_order_and_split_on_size_or_batch_size() -> None:
    shapes = [(3, 4, 4), (3, 4, 4), (3, 4, 4), (3, 2, 2), (3, 4, 4)]
    images = [torch.full(shape, float(i)) for i, shape in enumerate(shapes)]
    runs = list(same_shape_runs(images, 2))
    assert [[int(x[0, 0, 0]) for x in run] for run in runs] == [[0, 1], [2], [3], [4]]
    assert [torch.stack(run).shape for run in runs][:2] == [(2, 3, 4, 4), (1, 3, 4, 4)]
    named = [("a", 1), ("b", 1), ("c", 2)]
    assert list(same_shape_runs(named, 8, key=lambda item: item[1])) == [named[:2], named[2:]]
    with pytest.raises(ValueError, match="batch_size"):
        list(same_shape_runs(images, 0))


# ---------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------


def test_center_mask_is_the_middle_quarter() -> None:
    masks = make_masks(3, 128, 128)
    assert masks.shape == (3, 1, 128, 128) and masks.dtype == torch.float32
    expected = torch.zeros(128, 128)
    expected[32:96, 32:96] = 1
    for m in masks:
        assert torch.equal(m[0], expected)
    wide = make_masks(1, 64, 128)[0, 0]
    rows, cols = wide.nonzero(as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 47, 32, 95)


def test_random_masks_differ_per_sample_and_repeat_with_a_seed() -> None:
    def draw(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return make_masks(6, 64, 64, kind="random", generator=gen)

    first, again, other = draw(0), draw(0), draw(1)
    assert first.shape == (6, 1, 64, 64)
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    for i in range(6):
        for j in range(i + 1, 6):
            assert not torch.equal(first[i], first[j])
    coverage = first.mean(dim=(1, 2, 3))
    assert (coverage > 0.05).all() and (coverage < 0.95).all()
    assert 0.1 < coverage.mean() < 0.5
    small = make_masks(
        6, 64, 64, kind="random", hole_fraction=0.05, generator=torch.Generator().manual_seed(0)
    )
    assert small.mean() < first.mean()


def test_apply_mask_fills_only_the_holes() -> None:
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = make_masks(1, 16, 16)
    out = apply_mask(image, mask, fill=-1.0)
    hole = mask[0, 0].bool()
    assert (out[:, :, hole] == -1).all()
    assert torch.equal(out[:, :, ~hole], image[:, :, ~hole])
    with pytest.raises(ValueError, match="does not fit"):
        apply_mask(image, make_masks(1, 8, 8))


def test_bad_mask_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown mask kind 'centre'"):
        make_masks(1, 8, 8, kind="centre")
    with pytest.raises(ConfigError, match="hole_fraction"):
        make_masks(1, 8, 8, hole_fraction=1.5)
