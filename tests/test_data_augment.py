"""PairAugment: the paper's random jitter and mirroring, shared by both sides of each pair."""

from __future__ import annotations

import pytest
import torch

from p2pkit.data.augment import PairAugment
from p2pkit.errors import ConfigError


def images(n: int = 4, c: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=generator) * 2 - 1


def test_both_sides_of_a_pair_share_crop_and_flip() -> None:
    torch.manual_seed(0)
    a = images()
    # b is a pixel-wise function of a, so any crop or flip not shared would break b == -a.
    out_a, out_b = PairAugment(40, 32)(a, -a)
    assert torch.equal(out_b, -out_a)


def test_pairs_in_a_batch_get_their_own_crops_and_flips() -> None:
    torch.manual_seed(0)
    a = images(n=1).expand(8, -1, -1, -1).contiguous()
    out, _ = PairAugment(40, 32)(a)
    distinct = {tuple(row.flatten()[:16].tolist()) for row in out}
    assert len(distinct) > 1


def test_output_is_float32_in_range_with_crop_size_and_the_input_channel_split() -> None:
    torch.manual_seed(1)
    a, b = images(c=1), images(c=3, seed=1)
    out_a, out_b = PairAugment(40, (24, 28))(a, b)
    assert out_a.shape == (4, 1, 24, 28) and out_b.shape == (4, 3, 24, 28)
    for out in (out_a, out_b):
        assert out.dtype == torch.float32
        assert out.min() >= -1 and out.max() <= 1


def test_same_torch_seed_gives_the_same_jitter() -> None:
    a = images()
    augment = PairAugment(40, 32)
    torch.manual_seed(7)
    first, _ = augment(a)
    torch.manual_seed(7)
    second, _ = augment(a)
    assert torch.equal(first, second)


def test_runs_in_float32_under_bfloat16_autocast() -> None:
    torch.manual_seed(0)
    a = images()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_a, out_b = PairAugment(40, 32)(a.bfloat16(), -a.bfloat16())
    assert out_a.dtype == torch.float32 and out_b.dtype == torch.float32
    assert torch.equal(out_b, -out_a)


def test_integer_pixels_are_scaled_with_max_value() -> None:
    a = torch.tensor([0, 65535], dtype=torch.int32).reshape(1, 1, 1, 2).expand(1, 1, 2, 2)
    out, _ = PairAugment(2, 2, flip=False, preprocess="none")(a, max_value=65535)
    assert out.dtype == torch.float32
    assert out[0, 0, 0].tolist() == [-1.0, 1.0]


def test_target_is_resampled_as_an_image_not_as_a_nearest_neighbour_mask() -> None:
    checker = (torch.arange(16).reshape(4, 4) % 2 * 2 - 1).float()
    b = checker.expand(1, 1, 4, 4)
    _, out = PairAugment(7, 7, flip=False, preprocess="resize")(b.clone(), b.clone())
    # Nearest-neighbour would keep only -1 and 1; interpolation creates values between.
    assert ((out > -0.9) & (out < 0.9)).any()


def test_deterministic_path_resizes_to_crop_size_without_crop_or_flip() -> None:
    a = images(n=2)
    augment = PairAugment(40, 16, flip=True, deterministic=True)
    torch.manual_seed(0)
    first, _ = augment(a)
    torch.manual_seed(1)
    second, _ = augment(a)
    assert first.shape == (2, 3, 16, 16) and torch.equal(first, second)


def test_preprocess_none_keeps_the_size_and_crop_mode_crops_without_resizing() -> None:
    a = images(size=20)
    torch.manual_seed(0)
    kept, _ = PairAugment(40, 16, flip=False, preprocess="none")(a)
    assert torch.equal(kept, a)
    cropped, _ = PairAugment(40, 16, flip=False, preprocess="crop")(a)
    # A plain crop copies pixels, so each crop is a window of the original image.
    window = cropped[0, 0, 0, :4]
    rows = a[0, 0].unfold(1, 4, 1).reshape(-1, 4)
    assert (rows == window).all(dim=1).any()


def test_unknown_preprocess_and_crop_larger_than_load_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="data.preprocess"):
        PairAugment(40, 32, preprocess="zoom")
    with pytest.raises(ConfigError, match="crop_size"):
        PairAugment(30, 32)
