"""Tests for p2pkit.evaluation.metrics on hand-built cases whose values are known exactly."""

from __future__ import annotations

import json
import math

import kornia
import pytest
import torch

from p2pkit.errors import ConfigError, RegistryError
from p2pkit.evaluation.metrics import (
    PSNR_CAP_DB,
    ColorHistogramIntersection,
    MetricSet,
    l1,
    lab_histogram_intersection,
    psnr,
    ssim,
)
from p2pkit.registry import get_registry, isolated_registries


def _random_images(n: int = 3, size: int = 16, seed: int = 0, spread: float = 1.0) -> torch.Tensor:
    """Random float (n, 3, size, size) images in [-spread, spread]."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, size, size, generator=g) * 2 - 1) * spread


def _srgb_encode(linear: float) -> float:
    """Linear RGB value -> sRGB value in [0, 1] (IEC 61966-2-1)."""
    if linear <= 0.0031308:
        return 12.92 * linear
    return 1.055 * linear ** (1 / 2.4) - 0.055


def test_identical_images() -> None:
    x = _random_images()
    assert torch.equal(l1(x, x), torch.zeros(3))
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-6)
    # Capped by default so means and JSON stay finite; plain inf on request.
    assert torch.equal(psnr(x, x), torch.full((3,), PSNR_CAP_DB))
    assert torch.isinf(psnr(x, x, max_db=None)).all()
    assert lab_histogram_intersection(x, x) == pytest.approx({"L": 1.0, "a": 1.0, "b": 1.0})


def test_identical_flat_images_have_ssim_one() -> None:
    # Flat black images are where kornia's default eps biases SSIM below 1; eps=0 avoids it.
    black = -torch.ones(2, 3, 8, 8)
    assert torch.allclose(ssim(black, black), torch.ones(2), atol=1e-6)


def test_metrics_return_one_value_per_image() -> None:
    fake, real = _random_images(seed=1), _random_images(seed=2)
    # The built-in metrics, found through the p2pkit.metrics entry points like a plugin's.
    for name in ("l1", "psnr", "ssim"):
        fn = get_registry("metrics").get(name)
        values = fn(fake, real)
        assert values.shape == (3,), name
        assert values.dtype == torch.float32, name


def test_constant_shift_by_hand() -> None:
    # real in [-0.5, 0.5], fake = real + 0.2: nothing is clamped, the error is 0.2 everywhere in
    # [-1, 1] units, i.e. 0.1 in [0, 1] units -> MSE 0.01 -> PSNR = 10 log10(1 / 0.01) = 20 dB.
    real = _random_images(spread=0.5)
    fake = real + 0.2
    assert torch.allclose(l1(fake, real), torch.full((3,), 0.2), atol=1e-6)
    assert torch.allclose(psnr(fake, real), torch.full((3,), 20.0), atol=1e-3)
    shifted = ssim(fake, real)
    assert (shifted < 1.0).all() and (shifted > 0.5).all()


def test_psnr_is_averaged_per_image_not_from_the_batch_error() -> None:
    real = _random_images(n=2, spread=0.5)
    # Image 0 off by 0.1 in [0, 1] units (20 dB), image 1 off by 0.01 (40 dB).
    fake = real + torch.tensor([0.2, 0.02]).view(2, 1, 1, 1)
    per_image = psnr(fake, real)
    assert torch.allclose(per_image, torch.tensor([20.0, 40.0]), atol=1e-2)
    assert per_image.mean().item() == pytest.approx(30.0, abs=1e-2)
    # The PSNR of the pooled error: MSE = (0.01 + 0.0001) / 2 -> 22.97 dB, a different number.
    pooled = kornia.metrics.psnr((fake + 1) / 2, (real + 1) / 2, max_val=1.0).item()
    assert pooled == pytest.approx(10 * math.log10(1 / 0.00505), abs=1e-2)
    assert abs(pooled - per_image.mean().item()) > 5.0


def test_ssim_drops_with_noise_and_handles_tiny_images() -> None:
    real = _random_images(n=1, size=32, spread=0.5)
    noise = torch.randn(real.shape, generator=torch.Generator().manual_seed(3))
    assert ssim(real + 0.05 * noise, real) > ssim(real + 0.3 * noise, real)
    tiny = _random_images(n=2, size=4)
    assert ssim(tiny, tiny).shape == (2,)


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError):
        l1(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 4))


def _same_luminance_colours() -> tuple[torch.Tensor, torch.Tensor]:
    """A pure red and the grey of exactly the same CIE Y (hence the same L*), in [-1, 1].

    kornia's sRGB -> XYZ matrix gives red a linear Y of 0.212671; a grey of linear value v has
    Y = v, so the grey with linear value 0.212671 has the same L* but a* = b* = 0.
    """
    red = torch.tensor([1.0, 0.0, 0.0])
    grey = torch.full((3,), _srgb_encode(0.212671))
    return red * 2 - 1, grey * 2 - 1


def test_colour_change_keeps_l_and_halves_a_b() -> None:
    red, grey = _same_luminance_colours()
    # real: the left half red, the right half grey; fake: all grey. Same L everywhere, so the L
    # marginals are identical. a and b: real is half at red's value, half at 0; fake is all at 0,
    # so the intersection is min(0.5, 0) + min(0.5, 1) = 0.5.
    real = grey.view(1, 3, 1, 1).repeat(2, 1, 8, 8)
    real[:, :, :, :4] = red.view(1, 3, 1, 1)
    fake = grey.view(1, 3, 1, 1).repeat(2, 1, 8, 8)
    lab = kornia.color.rgb_to_lab((torch.stack([red, grey]).view(2, 3, 1, 1) + 1) / 2)
    assert lab[0, 0].item() == pytest.approx(lab[1, 0].item(), abs=1e-3)  # same L* ...
    assert lab[0, 1].item() > 50  # ... red has a large a*
    scores = lab_histogram_intersection(fake, real)
    assert scores["L"] == pytest.approx(1.0)
    assert scores["a"] == pytest.approx(0.5)
    assert scores["b"] == pytest.approx(0.5)


def test_histograms_accumulate_over_batches() -> None:
    fake, real = _random_images(n=4, seed=5), _random_images(n=4, seed=6)
    whole = lab_histogram_intersection(fake, real, bins=32)
    acc = ColorHistogramIntersection(bins=32)
    acc.update(fake[:1], real[:3])
    acc.update(fake[1:], real[3:])
    assert acc.compute() == pytest.approx(whole)
    assert all(0.0 < v < 1.0 for v in whole.values())
    hist = acc.histograms()
    assert len(hist["L"]["edges"]) == 33
    assert sum(hist["a"]["fake"]) == pytest.approx(1.0)


def test_histogram_intersection_needs_data() -> None:
    with pytest.raises(ValueError):
        ColorHistogramIntersection().compute()
    with pytest.raises(ConfigError):
        ColorHistogramIntersection(bins=0)


def test_metric_set_collects_names_and_aggregates() -> None:
    real = _random_images(n=3, spread=0.5)
    fake = real + torch.tensor([0.1, 0.2, 0.6]).view(3, 1, 1, 1)
    ms = MetricSet(["l1", "psnr"])
    ms.update(fake[:2], real[:2], names=["a.jpg", "b.jpg"])
    ms.update(fake[2:], real[2:], names=["c.jpg"])
    assert len(ms) == 3
    rows = ms.per_image()
    assert [r["name"] for r in rows] == ["a.jpg", "b.jpg", "c.jpg"]
    assert rows[1]["l1"] == pytest.approx(0.2, abs=1e-6)
    agg = ms.aggregate()["l1"]
    assert agg["mean"] == pytest.approx(0.3, abs=1e-6)
    assert agg["median"] == pytest.approx(0.2, abs=1e-6)
    assert agg["std"] == pytest.approx(math.sqrt((0.2**2 + 0.1**2 + 0.3**2) / 3), abs=1e-6)
    assert agg["n"] == 3
    # Strict JSON: no NaN or Infinity anywhere.
    json.dumps(ms.to_dict(), allow_nan=False)


def test_metric_set_reports_uncapped_inf_as_none() -> None:
    x = _random_images(n=2)
    ms = MetricSet({"psnr": lambda f, r: psnr(f, r, max_db=None)})
    ms.update(x, x + torch.tensor([0.0, 0.2]).view(2, 1, 1, 1), names=["same", "shifted"])
    assert ms.per_image()[0]["psnr"] is None
    agg = ms.aggregate()["psnr"]
    assert agg["n_nonfinite"] == 1
    assert math.isfinite(agg["mean"])
    json.dumps(ms.to_dict(), allow_nan=False)


def test_metric_set_unknown_name() -> None:
    with pytest.raises(RegistryError, match="fid"):
        MetricSet(["l1", "fid"])


def test_metric_set_uses_registered_metrics() -> None:
    with isolated_registries():

        @get_registry("metrics").register("max_abs")
        def max_abs(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
            return (fake - real).abs().flatten(1).amax(dim=1)

        ms = MetricSet(["l1", "max_abs"])
        x = _random_images(n=2, spread=0.5)
        ms.update(x, x + 0.25)
        assert ms.aggregate()["max_abs"]["mean"] == pytest.approx(0.25)
