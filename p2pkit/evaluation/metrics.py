"""Per-image and whole-set metrics that compare generated images with real ones.

Every image tensor here is a batch in NCHW layout, floating point, with values in ``[-1, 1]`` (the
range of the generators' final ``tanh``, pix2pix appendix 6.1.1). Three kinds of measure live in
this module:

* per-image metrics ``l1``, ``psnr``, ``ssim`` and ``sharpness`` (the generated image's
  high-frequency energy relative to the real one's, which shows the blur of L1 alone): plain
  functions ``fn(fake, real) -> (N,)``, declared as components of the ``p2pkit.metrics``
  entry-point group and found through it like any plugin's;
* [`ColorHistogramIntersection`][p2pkit.evaluation.metrics.ColorHistogramIntersection], the
  colour-distribution analysis of the paper's section 4.2 (Figure 7): marginal histograms of L, a
  and b over a whole evaluation set, compared by histogram intersection;
* [`MetricSet`][p2pkit.evaluation.metrics.MetricSet], which runs several per-image metrics over
  batches, remembers each image's name and value, and summarises them as a JSON-ready dict.

Why this module is long: SSIM, the Lab histograms and the sharpness measure carry their
formulas and references in full; splitting them apart would separate each metric from the set
that runs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import kornia
import torch

from p2pkit.errors import ConfigError

__all__ = [
    "CLOSER_TO",
    "HIGHER_IS_BETTER",
    "LAB_RANGES",
    "PSNR_CAP_DB",
    "ColorHistogramIntersection",
    "MetricFn",
    "MetricSet",
    "l1",
    "lab_histogram_intersection",
    "laplacian_energy",
    "psnr",
    "sharpness",
    "ssim",
]

MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A per-image metric: ``fn(fake, real) -> (N,) float`` for two ``(N, C, H, W)`` batches."""

PSNR_CAP_DB = 100.0
"""Ceiling applied to PSNR by default, in dB.

Identical images have zero mean squared error and an infinite PSNR, which would turn every mean
and standard deviation over a set into ``inf``/``nan`` and cannot be written as strict JSON. 100 dB
is an MSE of 1e-10 on ``[0, 1]`` images: far below one 8-bit grey level (a single pixel one level
off in a 256x256 RGB image already gives about 101 dB), so a capped value means "identical up to
floating-point noise" and no real comparison between different images is clipped.
"""

LAB_RANGES: dict[str, tuple[float, float]] = {
    "L": (0.0, 100.0),
    "a": (-128.0, 128.0),
    "b": (-128.0, 128.0),
}
"""Histogram ranges for the Lab channels, as produced by `kornia.color.rgb_to_lab`."""


def _check_pair(fake: torch.Tensor, real: torch.Tensor, name: str) -> None:
    """Reject batches that cannot be compared pixel by pixel.

    These are programming errors (the caller built the batches), so they raise ``ValueError``
    rather than a user-facing [`P2PKitError`][p2pkit.errors.P2PKitError].
    """
    if fake.shape != real.shape:
        raise ValueError(
            f"{name}: fake and real must have the same shape, got "
            f"{tuple(fake.shape)} and {tuple(real.shape)}"
        )
    if fake.ndim != 4:
        raise ValueError(f"{name}: expected (N, C, H, W) batches, got shape {tuple(fake.shape)}")
    if not (fake.is_floating_point() and real.is_floating_point()):
        raise ValueError(
            f"{name}: expected float images in [-1, 1], got {fake.dtype} and {real.dtype}"
        )


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    """Map ``[-1, 1]`` to ``[0, 1]`` in float32 (or float64), clamping stray values.

    Generators end in ``tanh`` so values stay inside the range, but resampled or loaded images can
    overshoot slightly; clamping keeps PSNR/SSIM data ranges honest.
    """
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0)


def l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image, in the ``[-1, 1]`` units the generator is trained in.

    This is the per-image value of the paper's L1 term (section 3.1, Eq. 3), so it can be read
    next to the ``G_L1`` training loss (before its weight lambda). Its range is ``[0, 2]``; halve it
    for the error on a ``[0, 1]`` scale.

    Args:
        fake: generated images, float ``(N, C, H, W)`` in ``[-1, 1]``.
        real: ground-truth images, same shape and range.

    Returns:
        Float32 ``(N,)`` tensor on the inputs' device; 0 for identical images.
    """
    _check_pair(fake, real, "l1")
    return (fake.float() - real.float()).abs().flatten(1).mean(dim=1)


def psnr(
    fake: torch.Tensor, real: torch.Tensor, *, max_db: float | None = PSNR_CAP_DB
) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB, on images mapped to ``[0, 1]`` (data range 1).

    The value is computed for each image separately and never from the batch's pooled error:
    `kornia.metrics.psnr` pools the MSE over every element it is given, so it is called once
    per image. Averaging per-image PSNRs (what [`MetricSet`][p2pkit.evaluation.metrics.MetricSet]
    does) is the usual convention and differs from the PSNR of the mean error whenever the images'
    errors differ.

    Args:
        fake: generated images, float ``(N, C, H, W)`` in ``[-1, 1]``.
        real: ground-truth images, same shape and range.
        max_db: ceiling for the result (see [`PSNR_CAP_DB`][p2pkit.evaluation.metrics.PSNR_CAP_DB]);
            identical images return exactly this value. ``None`` keeps the mathematical value,
            ``inf`` for identical images.

    Returns:
        Float32 ``(N,)`` tensor on the inputs' device, in dB.
    """
    _check_pair(fake, real, "psnr")
    f, r = _to_unit(fake), _to_unit(real)
    values = torch.stack([kornia.metrics.psnr(f[i], r[i], max_val=1.0) for i in range(f.shape[0])])
    values = values.float()
    if max_db is not None:
        values = values.clamp(max=float(max_db))
    return values


def ssim(fake: torch.Tensor, real: torch.Tensor, *, window_size: int = 11) -> torch.Tensor:
    """Mean structural similarity per image, on images mapped to ``[0, 1]``.

    Uses `kornia.metrics.ssim` with the standard Gaussian window (sigma 1.5, 11 taps, the
    constants of Wang et al. 2004) and ``'same'`` (reflect) padding, then averages the SSIM map over
    channels and pixels of each image. ``eps`` is set to 0 so that identical images, flat ones
    included, score exactly 1 (the SSIM constants already keep the denominator positive). Images
    smaller than the window use the largest odd window that fits.

    Args:
        fake: generated images, float ``(N, C, H, W)`` in ``[-1, 1]``.
        real: ground-truth images, same shape and range.
        window_size: odd number of Gaussian taps.

    Returns:
        Float32 ``(N,)`` tensor on the inputs' device, in ``[-1, 1]``; 1 for identical images.
    """
    _check_pair(fake, real, "ssim")
    f, r = _to_unit(fake), _to_unit(real)
    side = min(f.shape[-2], f.shape[-1])
    # 'same' padding reflects window_size // 2 pixels, which needs that many to exist.
    window = min(window_size, side if side % 2 == 1 else side - 1)
    window = max(window, 1)
    ssim_map = kornia.metrics.ssim(f, r, window, max_val=1.0, eps=0.0, padding="same")
    return ssim_map.flatten(1).mean(dim=1).float()


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])

SHARPNESS_EPS = 1e-6
"""Added to both energies of [`sharpness`][p2pkit.evaluation.metrics.sharpness], so that two flat
images score 1 instead of 0/0. Real photos have Laplacian energies around 1e-3 (in ``[0, 1]``
units), so it changes no real comparison."""


def laplacian_energy(images: torch.Tensor) -> torch.Tensor:
    """Mean squared response of the 4-neighbour Laplacian, per image: a high-frequency energy.

    The "energy of Laplacian" focus measure (Subbarao, Choi and Nikzad, "Focusing techniques",
    Optical Engineering 1993; compared with other focus measures by Pertuz, Puig and Garcia,
    Pattern Recognition 2013). The Laplacian's gain grows with the square of the spatial
    frequency, so the energy is dominated by the finest detail: blur lowers it, noise and
    sharpening raise it. The filter runs on each channel of the image mapped to ``[0, 1]``,
    without padding (no border effects), and the squares are averaged over channels and
    pixels.

    Args:
        images: float ``(N, C, H, W)`` in ``[-1, 1]``, H and W at least 3.

    Returns:
        Float32 ``(N,)`` tensor on the inputs' device, ``>= 0``; 0 for flat or linear ramps.
    """
    if images.ndim != 4 or images.shape[-1] < 3 or images.shape[-2] < 3:
        raise ValueError(
            f"laplacian_energy: expected (N, C, H, W) images of at least 3 x 3 pixels, "
            f"got shape {tuple(images.shape)}"
        )
    x = _to_unit(images)
    n, c, h, w = x.shape
    kernel = _LAPLACIAN.to(device=x.device, dtype=x.dtype).view(1, 1, 3, 3)
    response = torch.nn.functional.conv2d(x.reshape(n * c, 1, h, w), kernel)
    return response.reshape(n, -1).square().mean(dim=1).float()


def sharpness(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """How sharp each generated image is relative to its real counterpart: 1 is as sharp.

    The ratio of [`laplacian_energy`][p2pkit.evaluation.metrics.laplacian_energy] of the
    generated image to that of the real one. The paper's claim that L1 alone "produces blurry
    results" (section 4.2, Figure 4) shows as a ratio well below 1; a cGAN's outputs should come
    close to 1, and values above 1 mean more fine detail than the photos have (noise,
    high-frequency artifacts, over-sharpening). Closer to 1 is better
    ([`CLOSER_TO`][p2pkit.evaluation.metrics.CLOSER_TO]).

    Args:
        fake: generated images, float ``(N, C, H, W)`` in ``[-1, 1]``, H and W at least 3.
        real: real images, same shape and range.

    Returns:
        Float32 ``(N,)`` tensor on the inputs' device, ``> 0``; exactly 1 for identical images.
    """
    _check_pair(fake, real, "sharpness")
    fake_energy = laplacian_energy(fake).double()
    real_energy = laplacian_energy(real).double()
    return ((fake_energy + SHARPNESS_EPS) / (real_energy + SHARPNESS_EPS)).float()


HIGHER_IS_BETTER: dict[str, bool] = {"l1": False, "psnr": True, "ssim": True}
"""Which way each built-in metric improves (used to mark the best values in reports); its names
are also the metrics a [`MetricSet`][p2pkit.evaluation.metrics.MetricSet] runs by default."""

CLOSER_TO: dict[str, float] = {"sharpness": 1.0}
"""Metrics that are best at a value rather than high or low: closer to it is better (used to
mark the best values in reports, next to
[`HIGHER_IS_BETTER`][p2pkit.evaluation.metrics.HIGHER_IS_BETTER])."""


class ColorHistogramIntersection:
    """Colour-distribution similarity of two image sets (paper section 4.2, Figure 7).

    The paper compares the marginal distributions of the L, a and b channels of the generated and
    the real images over the whole test set and scores them by histogram intersection. This
    accumulator converts each batch from RGB to Lab (`kornia.color.rgb_to_lab`, D65), adds the
    pixels to one histogram per channel for each set, and on
    [`compute`][p2pkit.evaluation.metrics.ColorHistogramIntersection.compute] returns
    ``sum_i min(p_i, q_i)`` of the normalised histograms: 1 when the distributions are identical at
    this bin width, 0 when they do not overlap.

    Args:
        bins: number of equal-width bins per channel over
            [`LAB_RANGES`][p2pkit.evaluation.metrics.LAB_RANGES] (values outside are counted in the
            edge bins). The paper does not state a bin count; 128 gives bins under one L unit and
            two a/b units wide.
    """

    def __init__(self, bins: int = 128) -> None:
        if bins < 1:
            raise ConfigError(f"colour histogram 'bins' must be a positive integer, got {bins}")
        self.bins = int(bins)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        # float64 counts stay exact far beyond any evaluation set's pixel count.
        self._fake = torch.zeros(3, self.bins, dtype=torch.float64)
        self._real = torch.zeros(3, self.bins, dtype=torch.float64)

    def _histograms(self, images: torch.Tensor) -> torch.Tensor:
        """Lab histograms of a batch: float64 ``(3, bins)`` pixel counts (on the CPU)."""
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(
                "expected RGB float images (N, 3, H, W) in [-1, 1], got "
                f"{images.dtype} {tuple(images.shape)}"
            )
        lab = kornia.color.rgb_to_lab(_to_unit(images))
        out = torch.empty(3, self.bins, dtype=torch.float64)
        for c, (lo, hi) in enumerate(LAB_RANGES.values()):
            # Clamp just inside the range so extreme values land in the edge bins instead of being
            # dropped, as torch.histc would do with them.
            values = lab[:, c].reshape(-1).float().clamp(lo, hi)
            out[c] = torch.histc(values, bins=self.bins, min=lo, max=hi).double().cpu()
        return out

    def update(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        """Add one batch of each set.

        The two batches need not have the same size or shape: only their pixel distributions are
        compared.

        Args:
            fake: generated images, RGB float ``(N, 3, H, W)`` in ``[-1, 1]``.
            real: real images, RGB float ``(M, 3, H', W')`` in ``[-1, 1]``.
        """
        self._fake += self._histograms(fake)
        self._real += self._histograms(real)

    def histograms(self) -> dict[str, dict[str, list[float]]]:
        """The normalised histograms and bin edges, for plots like the paper's Figure 7.

        Returns:
            ``{"L": {"edges": [bins + 1], "fake": [bins], "real": [bins]}, "a": ..., "b": ...}``
            (lists of floats) with each histogram summing to 1 (all zeros before any update).
        """
        result: dict[str, dict[str, list[float]]] = {}
        for c, (name, (lo, hi)) in enumerate(LAB_RANGES.items()):
            edges = torch.linspace(lo, hi, self.bins + 1, dtype=torch.float64)
            result[name] = {
                "edges": edges.tolist(),
                "fake": _normalise(self._fake[c]).tolist(),
                "real": _normalise(self._real[c]).tolist(),
            }
        return result

    def compute(self) -> dict[str, float]:
        """Histogram intersection per channel.

        Returns:
            ``{"L": x, "a": y, "b": z}`` with each value in ``[0, 1]``.

        Raises:
            ValueError: if nothing was accumulated for one of the sets.
        """
        if self._fake.sum() == 0 or self._real.sum() == 0:
            raise ValueError("ColorHistogramIntersection.compute() called before update()")
        result = {}
        for c, name in enumerate(LAB_RANGES):
            p, q = _normalise(self._fake[c]), _normalise(self._real[c])
            result[name] = float(torch.minimum(p, q).sum().clamp(0.0, 1.0))
        return result


def _normalise(counts: torch.Tensor) -> torch.Tensor:
    """Counts -> probabilities (zeros stay zeros)."""
    total = counts.sum()
    return counts / total if total > 0 else counts.clone()


def lab_histogram_intersection(
    fake: torch.Tensor, real: torch.Tensor, bins: int = 128
) -> dict[str, float]:
    """One-shot [`ColorHistogramIntersection`][p2pkit.evaluation.metrics.ColorHistogramIntersection]
    on two batches.

    Args:
        fake: generated images, RGB float ``(N, 3, H, W)`` in ``[-1, 1]``.
        real: real images, RGB float ``(M, 3, H', W')`` in ``[-1, 1]``.
        bins: bins per Lab channel.

    Returns:
        ``{"L": x, "a": y, "b": z}``, each in ``[0, 1]`` (1 = identical distributions).
    """
    acc = ColorHistogramIntersection(bins=bins)
    acc.update(fake, real)
    return acc.compute()


class MetricSet:
    """Runs per-image metrics over batches and keeps every value with its image's name.

    Args:
        metrics: the metrics to run: names of components of the ``metrics`` registry (the
            ``p2pkit.metrics`` entry-point group, which holds the built-in ``"l1"``, ``"psnr"``
            and ``"ssim"``, and in-process registrations), or a mapping
            ``name -> fn(fake, real) -> (N,)``. ``None`` means the built-in metrics, the names of
            [`HIGHER_IS_BETTER`][p2pkit.evaluation.metrics.HIGHER_IS_BETTER].

    Raises:
        RegistryError: for a metric name that no installed plugin provides.

    Examples:
        >>> ms = MetricSet(["l1", "psnr"])
        >>> ms.update(fake, real, names=["1.jpg", "2.jpg"])  # doctest: +SKIP
        >>> ms.to_dict()["aggregate"]["psnr"]["mean"]  # doctest: +SKIP
    """

    def __init__(self, metrics: Mapping[str, MetricFn] | Sequence[str] | None = None) -> None:
        if isinstance(metrics, Mapping):
            self.metrics: dict[str, MetricFn] = dict(metrics)
        else:
            from p2pkit.registry import get_registry

            # Built-in names too come from the metrics registry (entry points of the
            # p2pkit.metrics group, or in-process registrations), so a plugin is found the same
            # way; unknown names raise RegistryError there.
            names = list(HIGHER_IS_BETTER) if metrics is None else metrics
            self.metrics = {name: get_registry("metrics").get(name) for name in names}
        self._names: list[str] = []
        self._values: dict[str, list[float]] = {name: [] for name in self.metrics}

    def __len__(self) -> int:
        return len(self._names)

    def update(
        self, fake: torch.Tensor, real: torch.Tensor, names: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Compute every metric on a batch and record the values.

        Args:
            fake: generated images, float ``(N, C, H, W)`` in ``[-1, 1]``.
            real: ground-truth images, same shape and range.
            names: one name per image (e.g. its file name); defaults to running numbers.

        Returns:
            ``{metric: (N,) float tensor}`` for this batch.
        """
        n = fake.shape[0]
        if names is None:
            names = [str(len(self._names) + i) for i in range(n)]
        if len(names) != n:
            raise ValueError(f"MetricSet.update: {len(names)} names for a batch of {n} images")
        with torch.no_grad():
            batch = {name: fn(fake, real).detach().reshape(-1) for name, fn in self.metrics.items()}
        for name, values in batch.items():
            if values.numel() != n:
                raise ValueError(f"metric '{name}' returned {values.numel()} values for {n} images")
            self._values[name].extend(float(v) for v in values.cpu().double())
        self._names.extend(str(x) for x in names)
        return batch

    def add(self, name: str, **values: float) -> None:
        """Record precomputed values for one image, e.g. ``add("1.jpg", l1=0.1, psnr=20.0)``."""
        unknown = set(values) - set(self.metrics)
        missing = set(self.metrics) - set(values)
        if unknown or missing:
            raise ValueError(
                f"MetricSet.add: expected values for {sorted(self.metrics)}, got {sorted(values)}"
            )
        self._names.append(str(name))
        for key, value in values.items():
            self._values[key].append(float(value))

    def per_image(self) -> list[dict[str, str | float | None]]:
        """One dict per image, ``{"name": ..., metric: value, ...}`` in the order recorded.

        Non-finite values (e.g. an uncapped infinite PSNR) become ``None`` so the result is strict
        JSON.
        """
        rows: list[dict[str, str | float | None]] = []
        for i, image_name in enumerate(self._names):
            row: dict[str, str | float | None] = {"name": image_name}
            for metric, values in self._values.items():
                row[metric] = _json_float(values[i])
            rows.append(row)
        return rows

    def aggregate(self) -> dict[str, dict[str, float | int | None]]:
        """Summary statistics per metric.

        Returns:
            ``{metric: {"mean", "std", "median", "min", "max", "n", "n_nonfinite"}}``. ``std`` is
            the population standard deviation; the statistics use the finite values only, and
            ``n_nonfinite`` counts the others (0 with the built-in metrics, which cap PSNR).
            Statistics of an empty set are ``None``.
        """
        out: dict[str, dict[str, float | int | None]] = {}
        for metric, values in self._values.items():
            finite = torch.tensor([v for v in values if math.isfinite(v)], dtype=torch.float64)
            stats: dict[str, float | int | None] = {
                "n": len(values),
                "n_nonfinite": len(values) - finite.numel(),
            }
            if finite.numel():
                stats.update(
                    mean=float(finite.mean()),
                    std=float(finite.std(correction=0)),
                    # torch.median returns the lower middle value; average the two middle ones.
                    median=float(finite.quantile(0.5)),
                    min=float(finite.min()),
                    max=float(finite.max()),
                )
            else:
                stats.update(mean=None, std=None, median=None, min=None, max=None)
            out[metric] = stats
        return out

    def to_dict(self) -> dict[str, object]:
        """All results as a JSON-ready dict.

        Returns:
            ``{"metrics": [names], "aggregate": aggregate(), "per_image": per_image()}``.
        """
        return {
            "metrics": list(self.metrics),
            "aggregate": self.aggregate(),
            "per_image": self.per_image(),
        }


def _json_float(value: float) -> float | None:
    """A float that ``json.dumps(..., allow_nan=False)`` accepts."""
    return value if math.isfinite(value) else None
