"""Sharpness, the ratio of generated to real high-frequency energy, reads the way L1 blurs."""

from __future__ import annotations

import kornia
import numpy as np
import pytest
import torch

from p2pkit.data.synth import render_facade
from p2pkit.evaluation.metrics import CLOSER_TO, MetricSet, laplacian_energy, sharpness
from p2pkit.registry import get_registry


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """Eight synthetic facade photos, float (8, 3, 64, 64) in [-1, 1]."""
    images = [torch.from_numpy(render_facade(0, i, size=64)[0]).permute(2, 0, 1) for i in range(8)]
    return torch.stack(images).float() / 127.5 - 1


def test_the_real_images_score_one(photos: torch.Tensor) -> None:
    assert torch.equal(sharpness(photos, photos), torch.ones(8))


def test_a_blurred_copy_scores_clearly_below_one(photos: torch.Tensor) -> None:
    blurred = kornia.filters.gaussian_blur2d(photos, (7, 7), (1.5, 1.5))
    values = sharpness(blurred, photos)
    assert values.shape == (8,) and values.dtype == torch.float32
    assert (values < 0.5).all(), values
    # More blur, less sharpness.
    more = sharpness(kornia.filters.gaussian_blur2d(photos, (9, 9), (3.0, 3.0)), photos)
    assert (more < values).all()


def test_a_sharpened_or_noisy_copy_scores_above_one(photos: torch.Tensor) -> None:
    # Unsharp masking: add back the detail a blur removes.
    detail = photos - kornia.filters.gaussian_blur2d(photos, (5, 5), (1.0, 1.0))
    sharpened = (photos + detail).clamp(-1, 1)
    assert (sharpness(sharpened, photos) > 1.2).all()
    noise = torch.randn(photos.shape, generator=torch.Generator().manual_seed(0))
    noisy = (photos + 0.2 * noise).clamp(-1, 1)
    assert (sharpness(noisy, photos) > 1.2).all()


def test_laplacian_energy_ignores_flat_images_and_ramps() -> None:
    flat = torch.full((2, 3, 16, 16), 0.3)
    ramp = torch.linspace(-1, 1, 16).view(1, 1, 1, 16).expand(2, 3, 16, 16)
    assert torch.allclose(laplacian_energy(flat), torch.zeros(2))
    assert torch.allclose(laplacian_energy(ramp), torch.zeros(2), atol=1e-10)
    assert torch.equal(sharpness(flat, flat), torch.ones(2))
    with pytest.raises(ValueError, match="3 x 3"):
        laplacian_energy(torch.zeros(1, 3, 2, 8))


def test_sharpness_is_a_registered_metric_best_at_one(photos: torch.Tensor) -> None:
    assert get_registry("metrics").get("sharpness") is sharpness
    assert CLOSER_TO["sharpness"] == 1.0
    metrics = MetricSet(["sharpness"])
    metrics.update(kornia.filters.gaussian_blur2d(photos, (5, 5), (1.0, 1.0)), photos)
    aggregate = metrics.aggregate()["sharpness"]
    assert aggregate["n"] == 8 and 0 < aggregate["mean"] < 1


def test_the_report_marks_the_value_closest_to_one(tmp_path) -> None:
    from p2pkit.evaluation.report import write_report

    rows = [{"name": str(i), "sharpness": value} for i, value in enumerate([0.4, 1.3, 0.9])]
    page = write_report(tmp_path, title="t", rows=rows).read_text()
    assert '<td class="num best" data-value="0.9">0.9</td>' in page
    assert 'title="sharpness (closer to 1 is better)"' in page
    np.testing.assert_equal(page.count("num best"), 1)
