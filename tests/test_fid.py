"""Tests for p2pkit.evaluation.fid: closed forms, KID sanity, weight loading, the accumulator.

Everything is tiny: low-dimensional features, and a single batch-of-2 forward through an
untrained Inception-v3 for the weight-loading round trip. Nothing is downloaded.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from p2pkit.errors import ConfigError, DataError
from p2pkit.evaluation.fid import (
    FEATURE_DIM,
    FeatureStats,
    FIDAccumulator,
    InceptionFeatures,
    frechet_distance,
    kernel_inception_distance,
    load_feature_network,
)

torchvision = pytest.importorskip("torchvision")


def _gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """``(n, d)`` float64 standard normal samples plus ``shift``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state dict of an untrained torchvision Inception-v3 (with fc and AuxLogits), saved."""
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path_factory.mktemp("weights") / "inception_v3_test.pth"
    torch.save(model.state_dict(), path)
    return path


def test_frechet_distance_of_identical_gaussians_is_zero() -> None:
    x = _gaussian(50, 6, seed=0)
    mu, sigma = x.mean(0), torch.cov(x.T)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_matches_closed_form_for_diagonal_covariances() -> None:
    mu1 = torch.tensor([0.0, 1.0, -2.0, 0.5], dtype=torch.float64)
    mu2 = torch.tensor([1.0, 1.0, 0.0, -0.5], dtype=torch.float64)
    s1 = torch.tensor([1.0, 4.0, 0.25, 2.0], dtype=torch.float64)
    s2 = torch.tensor([9.0, 1.0, 0.25, 0.5], dtype=torch.float64)
    expected = float(((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum())
    got = frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)
    # numpy arrays and float32 are accepted too
    got_np = frechet_distance(
        mu1.float().numpy(), torch.diag(s1).numpy(), mu2.numpy(), torch.diag(s2).float().numpy()
    )
    assert got_np == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_handles_rank_deficient_covariances() -> None:
    # 3 samples in 8 dimensions: singular covariances, as with few images and 2048-d features.
    a, b = _gaussian(3, 8, seed=1), _gaussian(3, 8, seed=2)
    value = frechet_distance(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))
    assert math.isfinite(value) and value > 0


def test_feature_stats_match_torch_cov_across_batches() -> None:
    x = _gaussian(23, 5, seed=3, shift=100.0)
    stats = FeatureStats(keep_features=True)
    for chunk in (x[:1], x[1:10], x[10:10], x[10:].float()):
        stats.update(chunk)
    assert stats.n == 23
    torch.testing.assert_close(stats.mean, x.mean(0), rtol=0, atol=1e-5)
    torch.testing.assert_close(stats.covariance, torch.cov(x.T), rtol=0, atol=1e-4)
    assert stats.features.shape == (23, 5) and stats.features.dtype == torch.float64


def test_kid_is_near_zero_for_identical_sets_and_positive_for_shifted_ones() -> None:
    real = _gaussian(200, 8, seed=4)
    same_mean, _ = kernel_inception_distance(real, real, subsets=5, subset_size=100)
    shifted_mean, shifted_std = kernel_inception_distance(
        real + 1.0, real, subsets=5, subset_size=100
    )
    # The unbiased estimator's cross term includes the i == j pairs, which coincide here, so
    # identical sets score slightly below 0 (about -0.1 here), small against a shift's ~8.
    assert abs(same_mean) < 0.02 * shifted_mean
    assert shifted_mean > 1.0
    assert shifted_std >= 0
    # subset_size larger than the data is clipped; the same seed gives the same answer
    first = kernel_inception_distance(real[:10] + 1, real[:12], subsets=3, subset_size=1000)
    assert first == kernel_inception_distance(real[:10] + 1, real[:12], subsets=3)
    with pytest.raises(DataError, match="at least 2"):
        kernel_inception_distance(real[:1], real)


def test_load_feature_network_round_trip(inception_weights: Path) -> None:
    network = load_feature_network(inception_weights)
    assert isinstance(network, InceptionFeatures) and not network.inception.training
    network.train()  # the wrapped Inception stays in eval mode
    assert not network.inception.training
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    features = network(images)
    assert features.shape == (2, FEATURE_DIM) and features.dtype == torch.float64
    assert torch.isfinite(features).all() and not features.requires_grad


def test_load_feature_network_reads_safetensors(inception_weights: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = torch.load(inception_weights, weights_only=True)
    path = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    network = load_feature_network(path)
    reference = load_feature_network(inception_weights)
    for (name, a), (_, b) in zip(
        network.state_dict().items(), reference.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_missing_weights_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "inception_v3_google-0cc3c7bd.pth"
    with pytest.raises(ConfigError, match="inception_v3_google") as info:
        load_feature_network(missing)
    assert str(missing) in str(info.value)


def test_wrong_network_state_dict_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pth"
    torch.save(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).state_dict(), path)
    with pytest.raises(ConfigError, match="Inception-v3") as info:
        load_feature_network(path)
    assert str(path) in str(info.value)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="junk.pth"):
        load_feature_network(junk)


class _MeanColour(nn.Module):
    """A stand-in feature network: per-channel mean and std, ``(N, 3, H, W) -> (N, 6)``."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3))], dim=1).double()


def test_fid_accumulator_scores_and_needs_two_images() -> None:
    g = torch.Generator().manual_seed(5)
    real = torch.rand(12, 3, 8, 8, generator=g) * 2 - 1
    acc = FIDAccumulator(_MeanColour())
    acc.update(real[:6], real[:6])
    acc.update(real[6:], real[6:])
    same = acc.compute()
    assert set(same) == {"fid", "kid_mean", "kid_std", "n"} and same["n"] == 12
    assert same["fid"] == pytest.approx(0.0, abs=1e-9)

    shifted = FIDAccumulator(_MeanColour())
    shifted.update((real * 0.5 + 0.4).clamp(-1, 1), real)
    result = shifted.compute()
    assert result["fid"] > 0.1 and result["kid_mean"] > 0

    few = FIDAccumulator(_MeanColour())
    few.update(real[:1], real[:1])
    with pytest.raises(DataError, match="FID needs more images"):
        few.compute()
    with pytest.raises(DataError, match="NaN"):
        few.update(torch.full((2, 3, 8, 8), float("nan")), real[:2])
