"""Dataset layouts (aligned, paired, single): loading, preflight reports, skipping and caching."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import p2pkit.data.store as store
from p2pkit.data.aligned import aligned
from p2pkit.data.decode import ImageProblem
from p2pkit.data.images import write_image
from p2pkit.data.options import DatasetOptions
from p2pkit.data.paired import paired
from p2pkit.data.single import single
from p2pkit.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def noise(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(path)
    return path


def make_aligned(folder: Path, n: int = 3, size: int = 8) -> list[np.ndarray]:
    """Aligned files 1..n whose A half is all ``i`` and B half all ``100 + i``."""
    images = []
    for i in range(1, n + 1):
        image = np.concatenate(
            [np.full((size, size, 3), i, np.uint8), np.full((size, size, 3), 100 + i, np.uint8)],
            axis=1,
        )
        save(folder / f"{i}.png", image)
        images.append(image)
    return images


def make_paired(folder: Path, names: list[str], size: int = 8) -> None:
    for i, name in enumerate(names):
        save(folder / "A" / name, noise(size, size, seed=i))
        save(folder / "B" / name, noise(size, size, seed=100 + i))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ---------------------------------------------------------------- layouts and options


def test_aligned_splits_left_half_into_a_and_right_half_into_b(tmp_path: Path) -> None:
    make_aligned(tmp_path / "train")
    ds = aligned(DatasetOptions(tmp_path))
    assert len(ds) == 3 and ds.a.shape == (3, 3, 8, 8) and ds.b.shape == (3, 3, 8, 8)
    assert ds.a.dtype == torch.uint8 and ds.max_value == 255
    assert ds.a[:, 0, 0, 0].tolist() == [1, 2, 3]
    assert ds.b[:, 0, 0, 0].tolist() == [101, 102, 103]
    assert ds.root == tmp_path / "train"


def test_direction_btoa_makes_the_right_half_the_network_input(tmp_path: Path) -> None:
    make_aligned(tmp_path)
    ds = aligned(DatasetOptions(tmp_path, direction="BtoA"))
    assert ds.a[:, 0, 0, 0].tolist() == [101, 102, 103]
    assert ds.b[:, 0, 0, 0].tolist() == [1, 2, 3]


def test_split_folder_is_used_when_present_and_root_otherwise(tmp_path: Path) -> None:
    make_aligned(tmp_path / "val", n=2)
    assert aligned(DatasetOptions(tmp_path, split="val")).root == tmp_path / "val"
    flat = tmp_path / "flat"
    make_aligned(flat, n=1)
    assert aligned(DatasetOptions(flat, split="train")).root == flat
    assert aligned(DatasetOptions(flat, split=None)).root == flat


def test_files_are_read_in_natural_order_and_max_images_takes_the_first(tmp_path: Path) -> None:
    for i in [10, 2, 1]:
        save(tmp_path / f"{i}.png", np.full((4, 4, 3), i, np.uint8))
    ds = single(DatasetOptions(tmp_path))
    assert [p.name for p in ds.paths] == ["1.png", "2.png", "10.png"]
    assert ds.a[:, 0, 0, 0].tolist() == [1, 2, 10]
    assert [p.name for p in single(DatasetOptions(tmp_path, max_images=2)).paths] == [
        "1.png",
        "2.png",
    ]


def test_paired_folders_match_by_name_and_paths_name_the_input_side(tmp_path: Path) -> None:
    make_paired(tmp_path / "train", ["x.png", "y.png"])
    ds = paired(DatasetOptions(tmp_path, direction="BtoA"))
    assert [p.relative_to(tmp_path) for p in ds.paths] == [
        Path("train/B/x.png"),
        Path("train/B/y.png"),
    ]
    np.testing.assert_array_equal(ds.a[0].permute(1, 2, 0).numpy(), noise(8, 8, seed=100))
    np.testing.assert_array_equal(ds.b[1].permute(1, 2, 0).numpy(), noise(8, 8, seed=1))


def test_paired_partners_may_differ_in_extension(tmp_path: Path) -> None:
    save(tmp_path / "A" / "1.png", noise(8, 8))
    save(tmp_path / "B" / "1.bmp", noise(8, 8, seed=1))
    assert len(paired(DatasetOptions(tmp_path))) == 1


def test_webp_files_are_read_into_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "A").mkdir()
    Image.fromarray(noise(8, 8)).save(tmp_path / "A" / "1.webp", lossless=True)
    save(tmp_path / "B" / "1.png", noise(8, 8, seed=1))
    ds = paired(DatasetOptions(tmp_path))
    assert [p.name for p in ds.paths] == ["1.webp"]
    np.testing.assert_array_equal(ds.a[0].permute(1, 2, 0).numpy(), noise(8, 8))


def test_single_folder_has_only_the_input_side(tmp_path: Path) -> None:
    save(tmp_path / "a.png", noise(8, 6))
    ds = single(DatasetOptions(tmp_path, in_channels=3))
    assert ds.b is None and ds.a.shape == (1, 3, 8, 6)
    assert ds.batch([0])["b"] is None


def test_one_channel_sides_are_stored_with_one_channel(tmp_path: Path) -> None:
    save(tmp_path / "A" / "1.png", noise(8, 8, 1))
    save(tmp_path / "B" / "1.png", noise(8, 8))
    ds = paired(DatasetOptions(tmp_path, in_channels=1, out_channels=3))
    assert ds.a.shape == (1, 1, 8, 8) and ds.b.shape == (1, 3, 8, 8)


def test_batch_selects_rows_with_their_paths(tmp_path: Path) -> None:
    make_aligned(tmp_path, n=4)
    ds = aligned(DatasetOptions(tmp_path))
    batch = ds.batch(torch.tensor([3, 1]))
    assert batch["a"].shape == (2, 3, 8, 8) and batch["a"].dtype == torch.uint8
    assert batch["a"][:, 0, 0, 0].tolist() == [4, 2]
    assert batch["b"][:, 0, 0, 0].tolist() == [104, 102]
    assert [p.name for p in batch["paths"]] == ["4.png", "2.png"]


def test_unknown_direction_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    make_aligned(tmp_path, n=1)
    with pytest.raises(ConfigError, match="data.direction"):
        aligned(DatasetOptions(tmp_path, direction="sideways"))


# ---------------------------------------------------------------- sizes and bit depth


def test_mixed_sizes_without_resize_to_raise_an_error_saying_to_set_it(tmp_path: Path) -> None:
    save(tmp_path / "1.png", noise(8, 8))
    save(tmp_path / "2.png", noise(12, 10))
    with pytest.raises(DataError, match=r'data\.preprocess = "resize_and_crop".*resize_to=\('):
        single(DatasetOptions(tmp_path))


def test_mixed_sizes_are_resized_to_resize_to_as_they_load(tmp_path: Path) -> None:
    save(tmp_path / "1.png", np.full((8, 8, 3), 40, np.uint8))
    save(tmp_path / "2.png", np.full((32, 20, 3), 200, np.uint8))
    ds = single(DatasetOptions(tmp_path, resize_to=(16, 12)))
    assert ds.a.shape == (2, 3, 16, 12)
    # A flat image stays flat under antialiased resampling.
    assert ds.a[0].unique().tolist() == [40] and ds.a[1].unique().tolist() == [200]


def test_mixed_bit_depths_are_promoted_to_the_16_bit_scale(tmp_path: Path) -> None:
    save(tmp_path / "1.png", np.full((4, 4, 1), 255, np.uint8))
    write_image(tmp_path / "2.png", np.full((4, 4, 1), 1000, np.uint16))
    ds = single(DatasetOptions(tmp_path, in_channels=1))
    assert ds.a.dtype == torch.int32 and ds.max_value == 65535
    assert ds.a[:, 0, 0, 0].tolist() == [65535, 1000]


def test_image_smaller_than_min_size_is_reported_with_its_path(tmp_path: Path) -> None:
    make_paired(tmp_path, ["big.png"], size=16)
    make_paired(tmp_path, ["tiny.png"], size=8)
    with pytest.raises(DataError, match=r"tiny\.png: is 8x8 .*smaller than the minimum 12"):
        paired(DatasetOptions(tmp_path, min_size=12))


# ---------------------------------------------------------------- bad input, one problem at a time


def test_missing_root_folder_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no-such-dataset"):
        aligned(DatasetOptions(tmp_path / "no-such-dataset"))


def test_empty_folder_is_reported_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"train: holds no images"):
        aligned(DatasetOptions(tmp_path))


def test_paired_root_without_b_folder_is_reported(tmp_path: Path) -> None:
    save(tmp_path / "A" / "1.png", noise(8, 8))
    with pytest.raises(DataError, match="has no B/ folder"):
        paired(DatasetOptions(tmp_path))


def test_aligned_image_with_odd_width_is_reported_with_its_path(tmp_path: Path) -> None:
    make_aligned(tmp_path, n=1)
    save(tmp_path / "odd.png", noise(8, 17))
    with pytest.raises(DataError, match=r"odd\.png: is 17 pixels wide and 8 high"):
        aligned(DatasetOptions(tmp_path))


def test_aligned_image_not_twice_as_wide_as_high_is_reported_with_its_path(tmp_path: Path) -> None:
    make_aligned(tmp_path, n=1)
    save(tmp_path / "square.png", noise(8, 8))
    with pytest.raises(DataError, match=r"square\.png: .*twice its height"):
        aligned(DatasetOptions(tmp_path))


def test_pair_of_different_sizes_is_reported_with_both_paths(tmp_path: Path) -> None:
    save(tmp_path / "A" / "1.png", noise(8, 8))
    save(tmp_path / "B" / "1.png", noise(10, 8))
    with pytest.raises(DataError, match=r"A/1\.png: is 8x8 .*partner .*B/1\.png is 8x10"):
        paired(DatasetOptions(tmp_path))


@pytest.mark.parametrize(("present", "absent"), [("A", "B"), ("B", "A")])
def test_file_without_a_partner_is_reported_with_its_path(
    tmp_path: Path, present: str, absent: str
) -> None:
    make_paired(tmp_path, ["1.png"])
    save(tmp_path / present / "lonely.png", noise(8, 8))
    with pytest.raises(DataError, match=rf"{present}/lonely\.png: is in {present}/ but {absent}/"):
        paired(DatasetOptions(tmp_path))


def test_truncated_image_in_a_dataset_is_reported_with_its_path(tmp_path: Path) -> None:
    make_paired(tmp_path, ["1.png", "2.png"], size=32)
    truncate(tmp_path / "B" / "2.png")
    with pytest.raises(DataError, match=r"B/2\.png: is truncated or corrupt"):
        paired(DatasetOptions(tmp_path))


def test_file_that_is_not_an_image_is_reported_with_its_path(tmp_path: Path) -> None:
    make_aligned(tmp_path, n=1)
    (tmp_path / "2.jpg").write_text("not a picture")
    with pytest.raises(DataError, match=r"2\.jpg: is not an image"):
        aligned(DatasetOptions(tmp_path))


def test_transparent_image_is_reported_with_its_path(tmp_path: Path) -> None:
    save(tmp_path / "ok.png", noise(8, 8))
    rgba = np.concatenate([noise(8, 8), np.zeros((8, 8, 1), np.uint8)], axis=-1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    with pytest.raises(DataError, match=r"clear\.png: has transparent pixels"):
        single(DatasetOptions(tmp_path))


def test_colour_half_where_one_channel_is_expected_is_reported_with_the_half(
    tmp_path: Path,
) -> None:
    save(tmp_path / "1.png", noise(8, 16))
    with pytest.raises(DataError, match=r"1\.png: left half \(A\) is a colour image"):
        aligned(DatasetOptions(tmp_path, in_channels=1))


# ---------------------------------------------------------------- preflight and skip_bad


def make_folder_with_three_problems(folder: Path) -> None:
    make_aligned(folder, n=4, size=16)
    save(folder / "odd.png", noise(16, 31))
    (folder / "text.png").write_text("hello")
    truncate(folder / "3.png")


def test_preflight_lists_every_problem_in_one_error_with_a_summary_first(tmp_path: Path) -> None:
    make_folder_with_three_problems(tmp_path)
    with pytest.raises(DataError) as caught:
        aligned(DatasetOptions(tmp_path))
    lines = str(caught.value).splitlines()
    assert lines[0] == (
        f"{tmp_path}: 3 of 6 files cannot be used "
        "(fix them, or set data.skip_bad = true to skip them):"
    )
    assert sorted(Path(line.split(": ")[0].strip()).name for line in lines[1:]) == [
        "3.png",
        "odd.png",
        "text.png",
    ]


def test_skip_bad_skips_unusable_files_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_folder_with_three_problems(tmp_path)
    with caplog.at_level(logging.WARNING, logger="p2pkit.data"):
        ds = aligned(DatasetOptions(tmp_path, skip_bad=True))
    assert [p.name for p in ds.paths] == ["1.png", "2.png", "4.png"]
    assert ds.a[:, 0, 0, 0].tolist() == [1, 2, 4]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipping 3 of 6 files" in warnings[0]
    assert all(name in warnings[0] for name in ["3.png", "odd.png", "text.png"])


def test_skip_bad_with_nothing_usable_still_raises(tmp_path: Path) -> None:
    (tmp_path / "1.png").write_text("nope")
    with pytest.raises(DataError, match="none of the 1 files"):
        single(DatasetOptions(tmp_path, skip_bad=True))


def test_grey_files_where_rgb_is_expected_get_one_summary_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(3):
        save(tmp_path / f"{i}.png", noise(8, 8, 1, seed=i))
    save(tmp_path / "rgb.png", noise(8, 8))
    with caplog.at_level(logging.WARNING, logger="p2pkit.data"):
        ds = single(DatasetOptions(tmp_path))
    assert ds.a.shape == (4, 3, 8, 8)
    assert torch.equal(ds.a[0, 0], ds.a[0, 2])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "3 greyscale files" in warnings[0]


def test_symlink_loop_in_a_data_folder_is_reported_with_its_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_aligned(tmp_path, n=2)
    os.symlink("self.png", tmp_path / "self.png")  # a link to itself
    os.symlink("pong.png", tmp_path / "ping.png")  # two links to each other
    os.symlink("ping.png", tmp_path / "pong.png")
    os.symlink("gone.png", tmp_path / "dangling.png")
    with caplog.at_level(logging.WARNING, logger="p2pkit.data"):
        ds = aligned(DatasetOptions(tmp_path))
    assert [p.name for p in ds.paths] == ["1.png", "2.png"]
    warnings = [r.getMessage() for r in caplog.records if "symbolic link" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(f"{tmp_path}: ignoring 4 symbolic")
    for name in ["self.png", "ping.png", "pong.png"]:
        assert f"{name} (a symlink loop)" in warnings[0]
    assert "dangling.png (its target is missing)" in warnings[0]


# ---------------------------------------------------------------- on-disk cache


def test_cache_is_reused_without_decoding_again(tmp_path: Path, monkeypatch) -> None:
    make_aligned(tmp_path / "data")
    first = aligned(DatasetOptions(tmp_path / "data", cache_dir=tmp_path / "cache"))
    assert any(p.suffix == ".npy" for p in (tmp_path / "cache").iterdir())

    def no_decoding(path: Path) -> np.ndarray:
        raise AssertionError(f"decoded {path} although the cache is fresh")

    monkeypatch.setattr(store, "decode", no_decoding)
    second = aligned(DatasetOptions(tmp_path / "data", cache_dir=tmp_path / "cache"))
    assert torch.equal(first.a, second.a) and torch.equal(first.b, second.b)
    assert second.paths == first.paths and second.max_value == 255


def test_cache_is_rebuilt_when_a_source_file_changes(tmp_path: Path) -> None:
    make_aligned(tmp_path / "data")
    aligned(DatasetOptions(tmp_path / "data", cache_dir=tmp_path / "cache"))
    changed = tmp_path / "data" / "2.png"
    save(changed, np.full((8, 16, 3), 77, np.uint8))
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    ds = aligned(DatasetOptions(tmp_path / "data", cache_dir=tmp_path / "cache"))
    assert ds.a[:, 0, 0, 0].tolist() == [1, 77, 3]


def test_cache_is_rebuilt_when_a_file_is_added(tmp_path: Path) -> None:
    make_aligned(tmp_path / "data", n=2)
    aligned(DatasetOptions(tmp_path / "data", cache_dir=tmp_path / "cache"))
    save(tmp_path / "data" / "3.png", np.full((8, 16, 3), 9, np.uint8))
    assert len(aligned(DatasetOptions(tmp_path / "data", cache_dir=tmp_path / "cache"))) == 3


def test_cache_keeps_skipped_rows_out_and_repeats_the_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_folder_with_three_problems(tmp_path / "data")
    options = dict(skip_bad=True, cache_dir=tmp_path / "cache")
    aligned(DatasetOptions(tmp_path / "data", **options))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="p2pkit.data"):
        ds = aligned(DatasetOptions(tmp_path / "data", **options))
    assert ds.a[:, 0, 0, 0].tolist() == [1, 2, 4]
    assert any("skipping 3 of 6 files" in r.getMessage() for r in caplog.records)


def test_failed_preflight_leaves_no_cache_behind(tmp_path: Path) -> None:
    make_folder_with_three_problems(tmp_path / "data")
    with pytest.raises(DataError):
        aligned(DatasetOptions(tmp_path / "data", cache_dir=tmp_path / "cache"))
    assert list((tmp_path / "cache").iterdir()) == []


# ---------------------------------------------------------------- real data


def test_real_facades_train_split_loads_as_256_pixel_pairs() -> None:
    root = SHARED / "facades"
    if not (root / "train").is_dir():
        pytest.skip(f"real facades data not present at {root}/train")
    ds = aligned(DatasetOptions(root, split="train", direction="BtoA", max_images=8))
    assert len(ds) == 8 and ds.max_value == 255
    assert ds.a.shape == (8, 3, 256, 256) and ds.b.shape == (8, 3, 256, 256)
    assert [p.name for p in ds.paths[:3]] == ["1.jpg", "2.jpg", "3.jpg"]


# ---------------------------------------------------------------- options and per-file reads


def test_dataset_options_check_their_values_and_names() -> None:
    options = DatasetOptions("data", direction="BtoA", cache_dir="cache")
    assert options.root == Path("data") and options.cache_dir == Path("cache") and options.swap
    with pytest.raises(ConfigError, match="in_channels must be 1 or 3"):
        DatasetOptions("data", in_channels=2)
    with pytest.raises(ConfigError, match="data.max_images"):
        options.replace(max_images=0)
    with pytest.raises(ConfigError, match=r"'rot' does not exist; did you mean 'root'"):
        DatasetOptions.from_keywords(rot="data")


def test_create_dataset_takes_options_or_their_fields(tmp_path: Path) -> None:
    from p2pkit.registry import create_dataset

    make_aligned(tmp_path, n=2)
    by_fields = create_dataset("aligned", root=tmp_path, direction="BtoA")
    by_options = create_dataset("aligned", DatasetOptions(tmp_path, direction="BtoA"))
    assert torch.equal(by_fields.a, by_options.a)
    with pytest.raises(ConfigError, match="not both"):
        create_dataset("aligned", DatasetOptions(tmp_path), split="val")


def test_read_file_of_each_layout_matches_its_dataset_row(tmp_path: Path) -> None:
    from p2pkit.data.images import to_float

    make_aligned(tmp_path / "aligned")
    make_paired(tmp_path / "paired", ["x.png"])
    save(tmp_path / "single" / "1.png", noise(8, 6))
    for layout, folder in ((aligned, "aligned"), (paired, "paired"), (single, "single")):
        options = DatasetOptions(tmp_path / folder, direction="BtoA")
        ds = layout(options)
        a, b = layout.read_file(ds.paths[0], options)
        assert a.dtype == torch.float32 and torch.equal(a, to_float(ds.a[0], 255)), folder
        if ds.b is None:
            assert b is None
        else:
            assert torch.equal(b, to_float(ds.b[0], 255)), folder


def test_paired_read_file_finds_the_partner_from_either_side(tmp_path: Path) -> None:
    save(tmp_path / "A" / "1.png", noise(8, 8))
    save(tmp_path / "B" / "1.jpg", noise(8, 8, seed=1))
    options = DatasetOptions(tmp_path, in_channels=3)
    from_a = paired.read_file(tmp_path / "A" / "1.png", options)
    from_b = paired.read_file(tmp_path / "B" / "1.jpg", options)
    assert torch.equal(from_a[0], from_b[0]) and torch.equal(from_a[1], from_b[1])
    save(tmp_path / "A" / "lonely.png", noise(8, 8))
    with pytest.raises(ImageProblem, match=r"has no partner: B/ holds no image named lonely"):
        paired.read_file(tmp_path / "A" / "lonely.png", options)
    with pytest.raises(ImageProblem, match="not in a folder named A or B"):
        paired.read_file(save(tmp_path / "C" / "1.png", noise(8, 8)), options)
    truncate(tmp_path / "B" / "1.jpg")
    with pytest.raises(ImageProblem, match=r"has a partner B/1\.jpg that is not an image"):
        paired.read_file(tmp_path / "A" / "1.png", options)


def test_aligned_read_file_splits_like_the_dataset_and_resizes(tmp_path: Path) -> None:
    make_aligned(tmp_path, n=1)
    a, b = aligned.read_file(tmp_path / "1.png", DatasetOptions(tmp_path, direction="BtoA"))
    assert a.shape == (3, 8, 8) and a.unique().tolist() == pytest.approx([101 / 127.5 - 1])
    assert b.unique().tolist() == pytest.approx([1 / 127.5 - 1])
    a, _ = aligned.read_file(tmp_path / "1.png", DatasetOptions(tmp_path, resize_to=(4, 6)))
    assert a.shape == (3, 4, 6)
    save(tmp_path / "square.png", noise(8, 8))
    with pytest.raises(ImageProblem, match="twice its height"):
        aligned.read_file(tmp_path / "square.png", DatasetOptions(tmp_path))
