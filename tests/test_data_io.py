"""Reading, writing and converting single images (p2pkit.data.images and its pixel policy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from p2pkit.data.images import list_images, read_image, to_float, to_uint8, write_image
from p2pkit.errors import DataError


def noise(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# ---------------------------------------------------------------- listing


def test_list_images_uses_natural_order_and_any_case_of_extension(tmp_path: Path) -> None:
    for name in ["10.png", "2.JPG", "1.tif", "3.Jpeg", "4.bmp", "5.TIFF"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == [
        "1.tif",
        "2.JPG",
        "3.Jpeg",
        "4.bmp",
        "5.TIFF",
        "10.png",
    ]


def test_list_images_ignores_other_files_hidden_sidecars_and_folders(tmp_path: Path) -> None:
    (tmp_path / "1.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "._1.png").write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["1.png"]


def test_list_images_of_missing_folder_raises_data_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        list_images(tmp_path / "nowhere")


# ---------------------------------------------------------------- formats and bit depth


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_lossless_formats_read_back_exactly(tmp_path: Path, suffix: str) -> None:
    pixels = noise(8, 12)
    path = save(tmp_path / f"x{suffix}", pixels)
    out = read_image(path, 3)
    assert out.dtype == np.uint8 and out.shape == (8, 12, 3)
    np.testing.assert_array_equal(out, pixels)


def test_webp_is_listed_and_reads_back_exactly_as_written(tmp_path: Path) -> None:
    # One extension list for every reader: WebP, long accepted by `p2pkit data combine`, trains.
    pixels = noise(8, 12)
    Image.fromarray(pixels).save(tmp_path / "1.webp", lossless=True)
    write_image(tmp_path / "2.WEBP", pixels)
    assert [p.name for p in list_images(tmp_path)] == ["1.webp", "2.WEBP"]
    for path in list_images(tmp_path):
        out = read_image(path, 3)
        assert out.dtype == np.uint8 and out.shape == (8, 12, 3)
        np.testing.assert_array_equal(out, pixels)


def test_jpeg_reads_as_uint8_rgb(tmp_path: Path) -> None:
    path = save(tmp_path / "x.JPG", noise(16, 16))
    out = read_image(path, 3)
    assert out.dtype == np.uint8 and out.shape == (16, 16, 3)


def test_eight_bit_png_is_written_with_fast_zlib_and_reads_back_exactly(tmp_path: Path) -> None:
    """Outputs are PNG-encoded at zlib's fastest level (4x faster than Pillow's default for
    3% larger files); the pixels are unchanged."""
    import struct
    import zlib

    from p2pkit.data.images import PNG_COMPRESS_LEVEL

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    pixels[:16] = 200  # something for zlib to compress
    write_image(tmp_path / "o.png", pixels)
    np.testing.assert_array_equal(read_image(tmp_path / "o.png", 3), pixels)
    data = (tmp_path / "o.png").read_bytes()
    start = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[start - 4 : start])
    stream = data[start + 4 : start + 4 + length]
    assert PNG_COMPRESS_LEVEL == 1
    assert stream[1] >> 6 == 0, "zlib header says the stream was not made at the fastest level"
    assert zlib.decompress(stream)


def test_sixteen_bit_grey_png_round_trip_keeps_values_above_255_exactly(tmp_path: Path) -> None:
    pixels = (np.arange(64, dtype=np.uint16).reshape(8, 8, 1) * 1000 + 7).astype(np.uint16)
    write_image(tmp_path / "g.png", pixels)
    out = read_image(tmp_path / "g.png", 1)
    assert out.dtype == np.uint16 and out.max() > 255
    np.testing.assert_array_equal(out, pixels)


def test_sixteen_bit_colour_png_round_trip_keeps_full_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 65536, (6, 10, 3), dtype=np.uint16)
    write_image(tmp_path / "c.png", pixels)
    out = read_image(tmp_path / "c.png", 3)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, pixels)


def test_sixteen_bit_tiff_is_read_at_full_precision(tmp_path: Path) -> None:
    pixels = np.array([[0, 256, 4097], [65535, 300, 12345]], dtype=np.uint16)
    Image.fromarray(pixels).save(tmp_path / "g.tiff")
    out = read_image(tmp_path / "g.tiff", 1)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out[..., 0], pixels)


def test_sixteen_bit_colour_tiff_is_read_at_full_precision(tmp_path: Path) -> None:
    krs_io = pytest.importorskip("kornia_rs").io
    pixels = np.random.default_rng(2).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    krs_io.write_image_tiff_u16(str(tmp_path / "c.tif"), pixels, "rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "c.tif", 3), pixels)


def test_write_image_refuses_sixteen_bit_data_for_jpeg(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="png"):
        write_image(tmp_path / "x.jpg", np.zeros((4, 4, 3), np.uint16))


# ---------------------------------------------------------------- pixel-format policy


def test_palette_image_is_expanded_losslessly(tmp_path: Path) -> None:
    pixels = noise(8, 8)
    quantised = Image.fromarray(pixels).quantize(colors=16)
    quantised.save(tmp_path / "p.png")
    expected = np.asarray(quantised.convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "p.png", 3), expected)


def test_grey_image_is_replicated_to_three_equal_channels(tmp_path: Path) -> None:
    grey = noise(8, 8, 1)[..., 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png", 3)
    assert out.shape == (8, 8, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], grey)


def test_opaque_alpha_channel_is_dropped_silently(tmp_path: Path) -> None:
    rgba = np.concatenate([noise(8, 8), np.full((8, 8, 1), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png", 3), rgba[..., :3])


def test_transparent_image_is_refused_with_its_path_and_a_flatten_hint(tmp_path: Path) -> None:
    rgba = np.concatenate([noise(8, 8), np.full((8, 8, 1), 255, np.uint8)], axis=-1)
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "see-through.png")
    with pytest.raises(DataError, match=r"see-through\.png.*flatten"):
        read_image(tmp_path / "see-through.png", 3)


def test_rgb_file_with_grey_content_is_accepted_as_one_channel(tmp_path: Path) -> None:
    grey = noise(8, 8, 1)
    save(tmp_path / "grey-rgb.png", np.repeat(grey, 3, axis=-1))
    out = read_image(tmp_path / "grey-rgb.png", 1)
    np.testing.assert_array_equal(out, grey)


def test_colour_image_where_one_channel_is_expected_is_refused(tmp_path: Path) -> None:
    save(tmp_path / "colour.png", noise(8, 8))
    with pytest.raises(DataError, match=r"colour\.png.*greyscale"):
        read_image(tmp_path / "colour.png", 1)


def test_truncated_png_is_reported_with_its_path(tmp_path: Path) -> None:
    path = truncate(save(tmp_path / "cut.png", noise(32, 32)))
    with pytest.raises(DataError, match=r"cut\.png.*truncated or corrupt"):
        read_image(path, 3)


def test_truncated_jpeg_is_reported_with_its_path(tmp_path: Path) -> None:
    path = truncate(save(tmp_path / "cut.jpg", noise(32, 32)))
    with pytest.raises(DataError, match=r"cut\.jpg.*truncated or corrupt"):
        read_image(path, 3)


def test_file_that_is_not_an_image_is_reported_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "fake.jpg").write_text("this is not a jpeg")
    with pytest.raises(DataError, match=r"fake\.jpg.*not an image"):
        read_image(tmp_path / "fake.jpg", 3)


# ---------------------------------------------------------------- conversions and writing


def test_to_float_maps_zero_and_max_value_to_minus_one_and_one() -> None:
    for max_value, dtype in [(255, torch.uint8), (65535, torch.int32)]:
        x = torch.tensor([0, max_value], dtype=dtype)
        out = to_float(x, max_value)
        assert out.dtype == torch.float32
        assert out.tolist() == [-1.0, 1.0]


def test_to_uint8_inverts_to_float_for_every_8_bit_value() -> None:
    values = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_uint8(to_float(values, 255)), values)


def test_to_uint8_clamps_out_of_range_values() -> None:
    assert to_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]


def test_write_image_accepts_float_chw_tensor_in_minus_one_to_one(tmp_path: Path) -> None:
    pixels = torch.from_numpy(noise(6, 7)).permute(2, 0, 1)
    write_image(tmp_path / "sub" / "f.png", to_float(pixels, 255))
    np.testing.assert_array_equal(read_image(tmp_path / "sub" / "f.png", 3), noise(6, 7))


def test_write_image_accepts_uint8_chw_tensor_and_hw_grey_array(tmp_path: Path) -> None:
    pixels = noise(5, 4)
    write_image(tmp_path / "t.png", torch.from_numpy(pixels).permute(2, 0, 1))
    np.testing.assert_array_equal(read_image(tmp_path / "t.png", 3), pixels)
    write_image(tmp_path / "g.bmp", pixels[..., 0])
    np.testing.assert_array_equal(read_image(tmp_path / "g.bmp", 1)[..., 0], pixels[..., 0])
