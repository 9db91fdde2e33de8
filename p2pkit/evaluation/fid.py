"""Optional FID and KID for ``p2pkit evaluate``, from Inception-v3 weights already on disk.

The Fréchet Inception Distance (FID, Heusel et al. 2017) and the Kernel Inception Distance (KID,
Binkowski et al. 2018) compare the distribution of generated images with that of real ones in the
2048-d pool features of an ImageNet Inception-v3. p2pkit never downloads anything: the feature
network is built from a weights file the user already has
([`load_feature_network`][p2pkit.evaluation.fid.load_feature_network]), e.g. torchvision's
``inception_v3_google-0cc3c7bd.pth`` as found in ``~/.cache/torch/hub/checkpoints``.

Pieces:

* [`load_feature_network`][p2pkit.evaluation.fid.load_feature_network]: weights file -> module
  mapping images to ``(N, 2048)`` features;
* [`FeatureStats`][p2pkit.evaluation.fid.FeatureStats]: running mean and covariance of features
  (optionally the features too);
* [`frechet_distance`][p2pkit.evaluation.fid.frechet_distance]: FID between two Gaussians, computed
  with ``torch.linalg.eigh`` (no scipy);
* [`kernel_inception_distance`][p2pkit.evaluation.fid.kernel_inception_distance]: KID, the unbiased
  MMD^2 with the cubic polynomial kernel, averaged over random subsets;
* [`FIDAccumulator`][p2pkit.evaluation.fid.FIDAccumulator]: feeds batches of generated and real
  images through the network and returns ``{"fid", "kid_mean", "kid_std", "n"}``.

Conventions: images are float ``(N, 3, H, W)`` in ``[-1, 1]`` (``(N, 1, H, W)`` grey images are
repeated to three channels); features are ``float64`` ``(N, D)``.

The numbers are comparable between models scored with the *same* weights file. They are not
comparable with FID values published from the TensorFlow Inception graph (``pytorch-fid``'s
``pt_inception-2015-12-05`` weights), whose network and resizing differ slightly from
torchvision's.

Why this module is long: it holds the whole measure: the feature network, rebuilt
from a bare weights file with checks that say what is wrong with it, and the statistics computed
from its features, which ``p2pkit evaluate`` only ever uses together.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from p2pkit.errors import ConfigError, DataError

__all__ = [
    "EXPECTED_WEIGHTS",
    "FEATURE_DIM",
    "INCEPTION_SIZE",
    "FIDAccumulator",
    "FeatureStats",
    "InceptionFeatures",
    "frechet_distance",
    "kernel_inception_distance",
    "load_feature_network",
]

FEATURE_DIM = 2048
"""Width of Inception-v3's final average-pool features."""

INCEPTION_SIZE = 299
"""Side, in pixels, of the square images Inception-v3 is fed."""

EXPECTED_WEIGHTS = "a torchvision Inception-v3 state dict, e.g. inception_v3_google-0cc3c7bd.pth"
"""What [`load_feature_network`][p2pkit.evaluation.fid.load_feature_network] asks for when a weights
file does not fit."""

# Heads that the pool features do not use: they are dropped from the weights before loading, so a
# state dict with or without them (or with another number of classes) is accepted.
_UNUSED_PREFIXES = ("fc.", "AuxLogits.")

ArrayLike = torch.Tensor | np.ndarray


class InceptionFeatures(nn.Module):
    """Inception-v3 as a feature extractor: images ``(N, C, H, W)`` -> pool features ``(N, 2048)``.

    ``forward`` takes float images in ``[-1, 1]`` with ``C`` = 3 (RGB) or 1 (grey, repeated to
    RGB) and any ``H, W``; it resizes them to 299x299 with antialiased bilinear interpolation
    (``align_corners=False``; the whole image, no crop) and returns the 2048-d output of the final
    average pool as ``float64`` on the network's device, without gradients.

    Input normalisation, exactly: torchvision's ImageNet Inception-v3 weights (a port of Google's
    TensorFlow model) expect the first convolution to see RGB in ``[-1, 1]``. torchvision's own
    pipeline gets there in two steps: its preset normalises ``[0, 1]`` images with the ImageNet
    mean/std, then the model's ``transform_input=True`` undoes that,
    ``x * std / 0.5 + (mean - 0.5) / 0.5 = 2 * x01 - 1``. Our images already are ``2 * x01 - 1``,
    so the network is built with ``transform_input=False`` and fed them unchanged; the result is
    the same up to the rounding that the round trip would add.

    The wrapped network stays in eval mode (BatchNorm running statistics, no dropout) whatever
    ``train()`` is called with.
    """

    def __init__(self, inception: nn.Module) -> None:
        """Wrap a torchvision ``Inception3`` whose ``fc`` is already ``nn.Identity``."""
        super().__init__()
        self.inception = inception
        self.inception.requires_grad_(False)
        self.inception.eval()

    def train(self, mode: bool = True) -> InceptionFeatures:
        """Keep the feature network in eval mode; ``mode`` only sets this wrapper's flag."""
        super().train(mode)
        self.inception.eval()
        return self

    @property
    def device(self) -> torch.device:
        """The device the network's weights live on."""
        return next(self.inception.parameters()).device

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Pool features of ``images``.

        Args:
            images: float ``(N, 3, H, W)`` or ``(N, 1, H, W)`` in ``[-1, 1]``, on any device.

        Returns:
            ``float64`` ``(N, 2048)`` on the network's device.
        """
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"expected (N, 3, H, W) or (N, 1, H, W) images, got shape {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise ValueError(f"expected float images in [-1, 1], got {images.dtype}")
        weight = next(self.inception.parameters())
        x = images.to(device=weight.device, dtype=weight.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = F.interpolate(
                x,
                size=(INCEPTION_SIZE, INCEPTION_SIZE),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        features = self.inception(x)
        if isinstance(features, tuple):  # InceptionOutputs, should the module be scripted
            features = features[0]
        return features.reshape(len(x), -1).double()


def _read_state_dict(path: Path) -> Mapping[str, Any]:
    """The raw mapping stored in a ``.pth``/``.pt`` or ``.safetensors`` weights file."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise ConfigError(
                f"{path}: cannot read it as safetensors ({exc.__class__.__name__}); pass "
                f"{EXPECTED_WEIGHTS}"
            ) from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"{path}: cannot read it as a PyTorch weights file ({exc.__class__.__name__}); pass "
            f"{EXPECTED_WEIGHTS}"
        ) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ConfigError(
            f"{path}: holds a {type(loaded).__name__}, not a state dict; pass {EXPECTED_WEIGHTS}"
        )
    return loaded


def _fit_state_dict(path: Path, raw: Mapping[str, Any], model: nn.Module) -> dict[str, Any]:
    """The entries of ``raw`` that ``model`` uses, after checking that names and shapes fit."""
    state = {}
    for key, value in raw.items():
        key = str(key)
        if key.startswith("module."):  # saved from a DataParallel wrapper
            key = key[len("module.") :]
        if not key.startswith(_UNUSED_PREFIXES):
            state[key] = value
    expected = model.state_dict()
    missing = [
        k for k in expected if k not in state and not k.endswith(".num_batches_tracked")
    ]  # old files lack the BatchNorm step counters, which inference does not use
    unexpected = [k for k in state if k not in expected]
    wrong = [
        k
        for k, v in state.items()
        if k in expected and (not isinstance(v, torch.Tensor) or v.shape != expected[k].shape)
    ]
    if missing or unexpected or wrong:
        problems = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong", wrong)):
            if keys:
                problems.append(f"{len(keys)} {label} keys (e.g. {keys[0]!r})")
        raise ConfigError(
            f"{path}: not an Inception-v3 state dict: {', '.join(problems)}; pass "
            f"{EXPECTED_WEIGHTS}"
        )
    return state


def load_feature_network(
    weights_path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> InceptionFeatures:
    """Build torchvision's Inception-v3 from a local weights file, as a pool-feature extractor.

    Nothing is downloaded: the architecture comes from ``torchvision.models.inception_v3`` with
    ``weights=None`` and the weights from ``weights_path``, a ``.pth``/``.pt`` state dict (loaded
    with ``weights_only=True``; a ``{"state_dict": ...}`` wrapper and ``module.`` prefixes are
    accepted) or a ``.safetensors`` file with the same keys. Only the layers up to the final
    average pool are needed: ``fc.*`` and ``AuxLogits.*`` entries may be present or absent.

    Args:
        weights_path: e.g. ``~/.cache/torch/hub/checkpoints/inception_v3_google-0cc3c7bd.pth``
            (``~`` is expanded).
        device: where the network runs.

    Returns:
        An [`InceptionFeatures`][p2pkit.evaluation.fid.InceptionFeatures] in eval mode: float images
        ``(N, 3, H, W)`` in ``[-1, 1]`` -> ``float64`` features ``(N, 2048)``.

    Raises:
        ConfigError: the file is missing or unreadable, its keys or shapes are not those of
            Inception-v3, or torchvision is not installed.
    """
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such file; pass the path of {EXPECTED_WEIGHTS} already on this machine"
        )
    try:
        from torchvision.models import inception_v3
    except ImportError:
        raise ConfigError(
            f"{path}: FID/KID need torchvision to build Inception-v3; install it with "
            "'pip install torchvision'"
        ) from None
    # init_weights=False skips torchvision's slow truncated-normal initialisation: every weight
    # is overwritten by the file anyway. transform_input=False: see InceptionFeatures.
    model = inception_v3(weights=None, aux_logits=False, transform_input=False, init_weights=False)
    model.fc = nn.Identity()
    state = _fit_state_dict(path, _read_state_dict(path), model)
    model.load_state_dict(state, strict=False)
    return InceptionFeatures(model).to(device)


def _as_float64(x: ArrayLike, name: str) -> torch.Tensor:
    """``x`` as a CPU ``float64`` tensor, rejecting non-finite values."""
    t = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


class FeatureStats:
    """Running mean and covariance of feature vectors, in ``float64``.

    Batches are merged with Chan et al.'s pairwise update (running mean and running sum of
    *centred* outer products), which stays accurate where the naive ``sum(x x^T) - n mu mu^T`` can
    cancel. With ``keep_features=True`` the features themselves are also kept (``float64``,
    ``8 * D`` bytes per image on the CPU), as KID needs them.
    """

    def __init__(self, keep_features: bool = False) -> None:
        """Start empty; ``keep_features`` keeps every feature row for
        [`features`][p2pkit.evaluation.fid.FeatureStats.features]."""
        self.keep_features = keep_features
        self.n = 0
        self._mean: torch.Tensor | None = None  # (D,) float64
        self._m2: torch.Tensor | None = None  # (D, D) float64, sum of centred outer products
        self._kept: list[torch.Tensor] = []

    def update(self, features: ArrayLike) -> None:
        """Add a batch of feature rows.

        Args:
            features: ``(N, D)`` (any float dtype, any device); ``D`` must not change between
                calls. An empty batch is ignored.
        """
        f = _as_float64(features, "features")
        if f.ndim != 2:
            raise ValueError(f"expected (N, D) features, got shape {tuple(f.shape)}")
        if self._mean is not None and f.shape[1] != self._mean.shape[0]:
            raise ValueError(f"expected {self._mean.shape[0]}-d features, got {f.shape[1]}-d")
        if len(f) == 0:
            return
        batch_mean = f.mean(dim=0)
        centred = f - batch_mean
        batch_m2 = centred.T @ centred
        if self._mean is None or self._m2 is None:
            self._mean, self._m2 = batch_mean, batch_m2
        else:
            n_a, n_b = self.n, len(f)
            total = n_a + n_b
            delta = batch_mean - self._mean
            self._mean = self._mean + delta * (n_b / total)
            self._m2 = self._m2 + batch_m2 + torch.outer(delta, delta) * (n_a * n_b / total)
        self.n += len(f)
        if self.keep_features:
            self._kept.append(f)

    @property
    def mean(self) -> torch.Tensor:
        """``float64`` ``(D,)`` mean of all features so far."""
        if self._mean is None:
            raise ValueError("no features added yet")
        return self._mean.clone()

    @property
    def covariance(self) -> torch.Tensor:
        """``float64`` ``(D, D)`` unbiased sample covariance (divides by ``n - 1``; n >= 2)."""
        if self._m2 is None or self.n < 2:
            raise ValueError(f"a covariance needs at least 2 feature rows, got {self.n}")
        return self._m2 / (self.n - 1)

    @property
    def features(self) -> torch.Tensor:
        """``float64`` ``(n, D)`` of every row added (only with ``keep_features=True``)."""
        if not self.keep_features:
            raise ValueError("features were not kept: create FeatureStats(keep_features=True)")
        if not self._kept:
            raise ValueError("no features added yet")
        if len(self._kept) > 1:
            self._kept = [torch.cat(self._kept)]
        return self._kept[0]


def _psd_sqrt(sigma: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite ``(D, D)`` matrix."""
    values, vectors = torch.linalg.eigh(sigma)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet distance between the Gaussians ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``|mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrt(S1 S2))``, without scipy: ``S1 S2`` is similar
    to the symmetric PSD matrix ``sqrt(S1) S2 sqrt(S1)``, so ``Tr(sqrt(S1 S2))`` is the sum of the
    square roots of that matrix's eigenvalues, found with ``torch.linalg.eigh`` in ``float64``.
    Tiny negative eigenvalues (rounding, or rank-deficient covariances when there are fewer
    samples than dimensions) are clipped to zero, as is a tiny negative result.

    Args:
        mu1: ``(D,)`` mean of the first set (a tensor or an array, any float dtype).
        sigma1: ``(D, D)`` symmetric positive semi-definite covariance of the first set.
        mu2: ``(D,)`` mean of the second set.
        sigma2: ``(D, D)`` covariance of the second set.

    Returns:
        The distance, a Python float >= 0.
    """
    m1, m2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    s1, s2 = _as_float64(sigma1, "sigma1"), _as_float64(sigma2, "sigma2")
    d = m1.shape[0] if m1.ndim == 1 else -1
    if m1.shape != (d,) or m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            "expected mu1, mu2 of shape (D,) and sigma1, sigma2 of shape (D, D), got "
            f"{tuple(m1.shape)}, {tuple(m2.shape)}, {tuple(s1.shape)}, {tuple(s2.shape)}"
        )
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    root1 = _psd_sqrt(s1)
    product = root1 @ s2 @ root1
    product = (product + product.T) / 2
    trace_sqrt = torch.linalg.eigvalsh(product).clamp(min=0).sqrt().sum()
    distance = (m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * trace_sqrt
    return max(float(distance), 0.0)


def _polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``k(x, y) = (x . y / d + 1)^3`` for all pairs of rows: ``(m, d), (n, d) -> (m, n)``."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 estimate between two ``(m, d)`` samples (Binkowski et al. 2018, eq. 2).

    Within-sample sums skip the diagonal (``i != j``); the cross term averages all ``m^2`` pairs.
    """
    m = len(x)
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (
        m * (m - 1)
    )
    return float(within - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    feats_fake: ArrayLike,
    feats_real: ArrayLike,
    subsets: int = 10,
    subset_size: int = 1000,
    *,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): mean and spread of MMD^2 over subsets.

    Each of ``subsets`` rounds draws ``m`` generated and ``m`` real feature rows without
    replacement (independently, from a generator seeded with ``seed``, so the result is
    reproducible) and computes the unbiased MMD^2 with the cubic polynomial kernel
    ``k(x, y) = (x . y / d + 1)^3``. ``m`` is ``subset_size`` clipped to the smaller of the two
    sample counts. Being unbiased, a single estimate can be slightly negative when the two
    distributions match.

    Args:
        feats_fake: ``(N_fake, D)`` features of generated images.
        feats_real: ``(N_real, D)`` features of real images.
        subsets: number of random subsets (>= 1).
        subset_size: rows drawn from each set per subset (>= 2).
        seed: seed of the subset draws.

    Returns:
        ``(mean, std)`` over the subsets; ``std`` is the population standard deviation (``ddof=0``,
        as in torch-fidelity), 0 when ``subsets`` is 1.

    Raises:
        DataError: either set has fewer than 2 rows.
    """
    fake, real = _as_float64(feats_fake, "feats_fake"), _as_float64(feats_real, "feats_real")
    if fake.ndim != 2 or real.ndim != 2 or fake.shape[1] != real.shape[1]:
        raise ValueError(
            "expected (N, D) features with the same D, got "
            f"{tuple(fake.shape)} and {tuple(real.shape)}"
        )
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2, got {subsets}, {subset_size}")
    m = min(subset_size, len(fake), len(real))
    if m < 2:
        raise DataError(
            f"KID needs at least 2 generated and 2 real images, got {len(fake)} and {len(real)}; "
            "evaluate a split with more images"
        )
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    for _ in range(subsets):
        pick_fake = torch.randperm(len(fake), generator=generator)[:m]
        pick_real = torch.randperm(len(real), generator=generator)[:m]
        estimates.append(_mmd2_unbiased(fake[pick_fake], real[pick_real]))
    mean = sum(estimates) / len(estimates)
    std = math.sqrt(sum((e - mean) ** 2 for e in estimates) / len(estimates))
    return mean, std


class FIDAccumulator:
    """FID and KID of generated against real images, accumulated over batches.

    Feed it with [`update`][p2pkit.evaluation.fid.FIDAccumulator.update] (a batch of generated
    images and the matching real ones) or, when the counts differ (several samples per input), with
    [`update_fake`][p2pkit.evaluation.fid.FIDAccumulator.update_fake] and
    [`update_real`][p2pkit.evaluation.fid.FIDAccumulator.update_real]; then call
    [`compute`][p2pkit.evaluation.fid.FIDAccumulator.compute]. Features are kept on the CPU in
    ``float64`` for KID (16 KiB per image and set).
    """

    def __init__(
        self, network: nn.Module, *, kid_subsets: int = 10, kid_subset_size: int = 1000
    ) -> None:
        """Wrap a feature network, usually from
        [`load_feature_network`][p2pkit.evaluation.fid.load_feature_network].

        Args:
            network: maps float images ``(N, 3, H, W)`` in ``[-1, 1]`` to features ``(N, D)``.
            kid_subsets: subsets KID averages over.
            kid_subset_size: images per subset for KID (clipped to the images available).
        """
        self.network = network
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self.fake = FeatureStats(keep_features=True)
        self.real = FeatureStats(keep_features=True)

    def _features(self, images: torch.Tensor, role: str) -> torch.Tensor:
        if not bool(torch.isfinite(images).all()):
            raise DataError(
                f"FID: the {role} images contain NaN or infinite values; check the checkpoint "
                "and the data that produced them"
            )
        with torch.no_grad():
            return self.network(images).detach().to(device="cpu", dtype=torch.float64)

    def update_fake(self, fake: torch.Tensor) -> None:
        """Add generated images: float ``(N, 3, H, W)`` in ``[-1, 1]``."""
        self.fake.update(self._features(fake, "generated"))

    def update_real(self, real: torch.Tensor) -> None:
        """Add real images: float ``(N, 3, H, W)`` in ``[-1, 1]``."""
        self.real.update(self._features(real, "real"))

    def update(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        """Add a batch of generated images and the real ones, both float NCHW in ``[-1, 1]``."""
        self.update_fake(fake)
        self.update_real(real)

    def compute(self) -> dict[str, float | int]:
        """FID and KID over everything added so far.

        Returns:
            ``{"fid": float, "kid_mean": float, "kid_std": float, "n": int}`` where ``n`` is the
            number of generated images scored.

        Raises:
            DataError: fewer than 2 generated or 2 real images were added.
        """
        if self.fake.n < 2 or self.real.n < 2:
            raise DataError(
                f"FID needs more images: at least 2 generated and 2 real, got {self.fake.n} and "
                f"{self.real.n}; evaluate a split with more images (or a larger --max-images)"
            )
        fid = frechet_distance(
            self.fake.mean, self.fake.covariance, self.real.mean, self.real.covariance
        )
        kid_mean, kid_std = kernel_inception_distance(
            self.fake.features,
            self.real.features,
            subsets=self.kid_subsets,
            subset_size=self.kid_subset_size,
        )
        return {"fid": fid, "kid_mean": kid_mean, "kid_std": kid_std, "n": self.fake.n}
