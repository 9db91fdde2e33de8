"""An automated real-vs-fake study: a classifier two-sample test (C2ST) of generated images.

The paper measures realism with people: Amazon Mechanical Turk workers saw real and generated
images for one second each and said which were real (sections 4.1 and 4.5, Table 4, "% Turkers
labeled real"). No person, and no pretrained feature network, is needed for the automated analogue
built here, the classifier two-sample test of Lopez-Paz and Oquab ("Revisiting Classifier
Two-Sample Tests", ICLR 2017): a fresh classifier is trained, from scratch and seeded, to tell
the real target images of the evaluated split from the generated ones, and its accuracy on
images it did not train on measures how far apart the two sets are. 0.5 means it cannot tell
them apart; 1 means every image gives itself away.

[`C2ST`][p2pkit.evaluation.realism.C2ST] (the built-in ``c2st`` component of the
``p2pkit.judges`` entry-point group) does this with k-fold cross-fitting: the images are split
into ``folds`` groups, each image's real and generated versions in the same group; a small
convolutional classifier ([`C2STNet`][p2pkit.evaluation.realism.C2STNet]) is trained on random
crops of the other groups and decides every image of the held-out group from a grid of its
crops, and the groups take turns, so every image is judged exactly once by a classifier that
never saw it. Crops make a 100-image split enough to train on. Without ``inputs`` the judge sees
the outputs alone, as the Turkers did; with them it sees (input, output) pairs, the conditional
test, which also catches outputs that look real but do not fit their input.

[`realism_cache_path`][p2pkit.evaluation.realism.realism_cache_path],
[`load_cached_verdict`][p2pkit.evaluation.realism.load_cached_verdict] and
[`save_verdict`][p2pkit.evaluation.realism.save_verdict] keep each verdict, keyed by the judge,
its settings and the exact 8-bit images, so a re-evaluation of the same outputs (a sweep run
again with another segmenter, say) does not train the judge again.

Images are float ``(N, C, H, W)`` in ``[-1, 1]``; they are judged as the 8-bit images that
``p2pkit evaluate`` writes (see [`to_uint8`][p2pkit.data.images.to_uint8]).

Why this module is long: the judge, its statistics (the Wilson interval and the binomial
p-value) and its cache are one measure: a verdict is only comparable with another made with the
same settings, and keeping them together keeps the cache key next to what it must cover.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from p2pkit.errors import ConfigError, DataError
from p2pkit.ranges import Range

__all__ = [
    "C2ST",
    "C2STNet",
    "Judge",
    "binomial_p_value",
    "c2st",
    "check_verdict",
    "load_cached_verdict",
    "realism_cache_path",
    "save_verdict",
    "wilson_interval",
]

_Z95 = 1.959963984540054  # the two-sided 95% quantile of the standard normal


@runtime_checkable
class Judge(Protocol):
    """What a component of the ``p2pkit.judges`` group builds: a real-vs-generated test.

    Attributes:
        settings: everything that changes the verdict (steps, crop size, folds, seed...), as a
            JSON-ready dict; ``metrics.json`` and the evaluation page show it, and cached
            verdicts are keyed by it.

    ``judge(real, fake, inputs=None, device="cpu", progress=False)`` takes real and generated
    images, float ``(N, C, H, W)`` in ``[-1, 1]`` with image ``i`` of both made from the same
    input, and optionally those inputs ``(N, C', H, W)`` for the conditional test. It returns a
    JSON-ready dict with at least ``accuracy`` (held-out accuracy, 0.5 = indistinguishable),
    ``accuracy_ci`` (``[low, high]``), ``generated_labelled_real`` (the fraction of generated
    images judged real) and ``decisions`` (how many decisions the accuracy counts).
    """

    settings: dict[str, Any]

    def __call__(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        inputs: torch.Tensor | None = None,
        *,
        device: str | torch.device = "cpu",
        progress: bool = False,
    ) -> dict[str, Any]: ...


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (Wilson, JASA 1927).

    Better behaved than the normal approximation near 0 and 1, where a judge that always
    wins lands: it never leaves ``[0, 1]`` and is not empty at ``successes = n``.

    Args:
        successes: correct decisions.
        n: all decisions (0 gives ``(0, 1)``).
        z: the normal quantile; the default gives a two-sided 95% interval.

    Returns:
        ``(low, high)`` in ``[0, 1]``.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_p_value(successes: int, n: int) -> float:
    """One-sided p-value of ``successes`` correct decisions out of ``n`` under chance (p = 1/2).

    The null distribution of a C2ST's held-out accuracy (Lopez-Paz and Oquab, section 3):
    ``P(X >= successes)`` for ``X ~ Binomial(n, 1/2)``, summed exactly.
    """
    if n <= 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(max(successes, 0), n + 1))
    return min(1.0, tail / 2**n)


# --------------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------------


class C2STNet(nn.Module):
    """The small convolutional classifier of [`C2ST`][p2pkit.evaluation.realism.C2ST].

    ``depth + 1`` convolutions of 4 x 4 with stride 2, doubling the width from ``width``, each
    followed by LeakyReLU(0.2) and all but the first by GroupNorm, as in the paper's PatchGAN
    discriminator (whose first layer has no normalisation either); then global average pooling
    and one linear logit: positive means "real". The first convolution reads every pixel at
    full resolution (its 4 x 4 windows overlap), so blur, noise and ringing reach it. It has no
    pretrained weights and trains in seconds on a CPU.

    Args:
        in_channels: image channels (output channels plus input channels when conditional).
        width: channels of the first layer.
        depth: stride-2 stages after the first.

    Shapes:
        input: float ``(N, in_channels, H, W)`` in ``[-1, 1]``, H and W at least ``2**(depth+1)``;
        output: float logits ``(N,)``.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, stride=2, padding=1)]
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        cin = width
        for i in range(depth):
            cout = width * 2 ** (i + 1)
            layers += [
                nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False),
                nn.GroupNorm(math.gcd(8, cout), cout),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in ``[-1, 1]`` -> logits ``(N,)``."""
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------


def _grid(size: int, crop: int, count: int) -> list[int]:
    """``count`` crop offsets spread evenly over ``[0, size - crop]`` (distinct, ascending)."""
    if count <= 1 or size == crop:
        return [(size - crop) // 2]
    return sorted({round(i * (size - crop) / (count - 1)) for i in range(count)})


class C2ST:
    """A classifier two-sample test with k-fold cross-fitting (Lopez-Paz and Oquab, ICLR 2017).

    For each fold, a fresh [`C2STNet`][p2pkit.evaluation.realism.C2STNet] is trained for
    ``steps`` steps of Adam on batches of ``batch_size`` random ``crop_size`` crops, half from
    real and half from generated images of the other folds (mirrored at random, the same
    window of the input with each crop in the conditional test), with binary cross-entropy.
    It then decides each held-out image, real and generated, by the mean logit over a grid of
    up to ``test_crops`` crops covering the image. Every image is decided once; the accuracy
    counts these ``2N`` decisions, and its 95% interval is the
    [`wilson_interval`][p2pkit.evaluation.realism.wilson_interval] over them (crops of one image
    are not independent, so they are not counted as decisions).

    The result is a function of the images and the settings: the folds, the weights and every
    crop come from ``seed``, and the global random state is left as it was. It is exactly
    repeatable on one machine with one thread count; another thread count or a GPU sums in
    another order and moves the verdict about as much as another seed does.

    Args:
        steps: training steps per fold.
        crop_size: side of the square crops (smaller images are cropped to their own size).
        folds: number of folds k (at most the number of images).
        seed: seeds the folds, the weights and the crops.
        batch_size: crops per step, half real and half generated.
        lr: Adam learning rate.
        width: channels of the classifier's first layer.
        test_crops: crops per held-out image, on a grid (rounded down to a square number).
    """

    def __init__(
        self,
        steps: int = 150,
        crop_size: int = 64,
        folds: int = 5,
        seed: int = 0,
        batch_size: int = 32,
        lr: float = 2e-3,
        width: int = 16,
        test_crops: int = 16,
    ) -> None:
        self.steps, self.crop_size, self.folds, self.seed = steps, crop_size, folds, seed
        self.batch_size, self.lr, self.width, self.test_crops = batch_size, lr, width, test_crops

    @property
    def settings(self) -> dict[str, Any]:
        """The settings that change the verdict, for ``metrics.json`` and the cache key."""
        return {
            "steps": self.steps,
            "crop_size": self.crop_size,
            "folds": self.folds,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "width": self.width,
            "test_crops": self.test_crops,
        }

    def __call__(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        inputs: torch.Tensor | None = None,
        *,
        device: str | torch.device = "cpu",
        progress: bool = False,
    ) -> dict[str, Any]:
        """Judge ``fake`` against ``real`` (see [`Judge`][p2pkit.evaluation.realism.Judge]).

        Args:
            real: real images, float ``(N, C, H, W)`` in ``[-1, 1]``, or uint8 ``0..255``.
            fake: generated images, same shape; ``fake[i]`` was made from the input of
                ``real[i]``.
            inputs: the inputs, ``(N, C', H, W)`` in the same range, for the conditional test;
                ``None`` judges the outputs alone.
            device: where to train the classifiers.
            progress: show a progress bar.

        Returns:
            ``accuracy``, ``accuracy_ci``, ``p_value`` (one-sided binomial test against
            chance), ``generated_labelled_real``, ``real_labelled_real``, ``crop_accuracy``,
            ``decisions`` (``2N``), ``images`` (N), ``crop_size`` (the crop side used) and
            ``folds`` (the folds used).

        Raises:
            DataError: when the sets do not pair up or hold fewer than two images.
        """
        real, fake = _as_uint8(real), _as_uint8(fake)
        if real.shape != fake.shape or real.ndim != 4:
            raise DataError(
                f"the realism judge needs real and generated images of one shape (N, C, H, W), "
                f"got {tuple(real.shape)} and {tuple(fake.shape)}"
            )
        n, _, height, width = real.shape
        if inputs is not None:
            inputs = _as_uint8(inputs)
            if inputs.ndim != 4 or inputs.shape[0] != n or inputs.shape[-2:] != real.shape[-2:]:
                raise DataError(
                    f"the conditional realism judge needs one input per image of the same size, "
                    f"got {tuple(inputs.shape)} for images {tuple(real.shape)}"
                )
            # The conditional test sees (input, output) pairs: one image of both's channels.
            real, fake = torch.cat([inputs, real], dim=1), torch.cat([inputs, fake], dim=1)
        if n < 2:
            raise DataError(f"the realism judge needs at least 2 images to cross-fit, got {n}")
        crop = min(self.crop_size, height, width)
        folds = min(self.folds, n)
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(n, generator=generator)
        groups = [order[f::folds].sort().values for f in range(folds)]
        side = max(1, math.isqrt(self.test_crops))
        grid = [(y, x) for y in _grid(height, crop, side) for x in _grid(width, crop, side)]
        device = torch.device(device)

        real_logits = torch.empty(n)
        fake_logits = torch.empty(n)
        crop_correct = 0
        bar = _bar(progress, folds * self.steps)
        try:
            for f, held_out in enumerate(groups):
                train = torch.cat([g for i, g in enumerate(groups) if i != f])
                net = self._train(real, fake, train, crop, f, generator, device, bar)
                for images, logits, sign in ((real, real_logits, 1), (fake, fake_logits, -1)):
                    crops = _decide(net, images[held_out], grid, crop, device)  # (n_f, crops)
                    logits[held_out] = crops.mean(dim=1)
                    crop_correct += int((crops * sign > 0).sum())
        finally:
            if bar is not None:
                bar.stop()
        real_says_real = real_logits > 0
        fake_says_real = fake_logits > 0
        correct = int(real_says_real.sum()) + int((~fake_says_real).sum())
        low, high = wilson_interval(correct, 2 * n)
        return {
            "accuracy": correct / (2 * n),
            "accuracy_ci": [low, high],
            "p_value": binomial_p_value(correct, 2 * n),
            "generated_labelled_real": float(fake_says_real.float().mean()),
            "real_labelled_real": float(real_says_real.float().mean()),
            "crop_accuracy": crop_correct / (2 * n * len(grid)),
            "decisions": 2 * n,
            "images": n,
            "crop_size": crop,
            "folds": folds,
        }

    def _train(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        train: torch.Tensor,
        crop: int,
        fold: int,
        generator: torch.Generator,
        device: torch.device,
        bar: Any,
    ) -> nn.Module:
        """A fresh classifier trained on crops of the images ``train`` (uint8 sets)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1009 + fold)
            net = C2STNet(real.shape[1], width=self.width).to(device)
        optimiser = torch.optim.Adam(net.parameters(), lr=self.lr, betas=(0.5, 0.999))
        half = max(1, self.batch_size // 2)
        target = torch.cat([torch.ones(half), torch.zeros(half)]).to(device)
        height, width = real.shape[-2:]
        with torch.enable_grad():
            net.train()
            for _ in range(self.steps):
                picks = train[torch.randint(len(train), (2 * half,), generator=generator)]
                ys = torch.randint(height - crop + 1, (2 * half,), generator=generator).tolist()
                xs = torch.randint(width - crop + 1, (2 * half,), generator=generator).tolist()
                flips = (torch.rand(2 * half, generator=generator) < 0.5).tolist()
                crops = []
                for i, (index, y, x, flip) in enumerate(
                    zip(picks.tolist(), ys, xs, flips, strict=True)
                ):
                    source = real if i < half else fake
                    patch = source[index, :, y : y + crop, x : x + crop]
                    crops.append(patch.flip(-1) if flip else patch)
                batch = _to_float(torch.stack(crops).to(device))
                loss = F.binary_cross_entropy_with_logits(net(batch), target)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                if bar is not None:
                    bar.update(bar.task_ids[0], advance=1, loss=f"{loss.item():.3f}")
        return net.eval()


def _as_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images as the 8-bit pixels ``evaluate`` writes, on the CPU."""
    from p2pkit.data.images import to_uint8

    return images.cpu() if images.dtype == torch.uint8 else to_uint8(images.cpu())


def _to_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 ``0..255`` -> float ``[-1, 1]``."""
    return pixels.float().div_(127.5).sub_(1.0)


@torch.no_grad()
def _decide(
    net: nn.Module, images: torch.Tensor, grid: list[tuple[int, int]], crop: int, device: Any
) -> torch.Tensor:
    """The classifier's logits for every grid crop of every image: float ``(N, len(grid))``."""
    out = []
    for image in images:
        crops = torch.stack([image[:, y : y + crop, x : x + crop] for y, x in grid])
        out.append(net(_to_float(crops.to(device))).float().cpu())
    return torch.stack(out) if out else torch.empty(0, len(grid))


def _bar(enabled: bool, total: int) -> Any:
    """A rich progress bar for the judge's training, or None."""
    from p2pkit.evaluation.segmenter import _progress_bar

    return _progress_bar(enabled, "training the realism judge", total)


def c2st(
    steps: Annotated[int, Range(1, 100_000)] = 150,
    crop_size: Annotated[int, Range(8, 4096)] = 64,
    folds: Annotated[int, Range(2, 100)] = 5,
    seed: int = 0,
    batch_size: Annotated[int, Range(2, 4096)] = 32,
    lr: Annotated[float, Range(0, 1, low_open=True)] = 2e-3,
    width: Annotated[int, Range(1, 512)] = 16,
    test_crops: Annotated[int, Range(1, 1024)] = 16,
) -> C2ST:
    """Build [`C2ST`][p2pkit.evaluation.realism.C2ST]; the ``c2st`` component of the
    ``p2pkit.judges`` group.

    Args:
        steps: training steps per fold.
        crop_size: side of the square training and test crops, in pixels.
        folds: number of cross-fitting folds k.
        seed: seeds the folds, the classifiers' weights and the crops.
        batch_size: crops per training step, half real and half generated.
        lr: Adam learning rate.
        width: channels of the classifier's first layer.
        test_crops: crops per held-out image (a square grid).

    Returns:
        The judge; call it as described under [`Judge`][p2pkit.evaluation.realism.Judge].
    """
    return C2ST(steps, crop_size, folds, seed, batch_size, lr, width, test_crops)


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


def realism_cache_path(
    judge: str,
    settings: Mapping[str, Any],
    images: list[torch.Tensor | None],
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The cache file of one verdict: the judge's name and settings and the images judged.

    Args:
        judge: the component's name in the ``p2pkit.judges`` group.
        settings: the judge's [`settings`][p2pkit.evaluation.realism.Judge].
        images: the tensors the judge is given (``real``, ``fake``, ``inputs`` or None),
            hashed as the 8-bit pixels it judges.
        cache_dir: overrides
            [`default_cache_dir`][p2pkit.evaluation.segmenter_cache.default_cache_dir].

    Returns:
        ``<cache_dir>/judges/<judge>-<hash16>.json``.
    """
    from p2pkit import __version__
    from p2pkit.evaluation.segmenter_cache import default_cache_dir

    digest = hashlib.sha256()
    head = {"judge": judge, "settings": dict(settings), "p2pkit": __version__}
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    for tensor in images:
        if tensor is None:
            digest.update(b"none\n")
            continue
        pixels = _as_uint8(tensor).contiguous()
        digest.update(f"tensor {tuple(pixels.shape)}\n".encode())
        digest.update(pixels.numpy().tobytes())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in judge)
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / "judges" / f"{safe}-{digest.hexdigest()[:16]}.json"


def load_cached_verdict(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A verdict saved by [`save_verdict`][p2pkit.evaluation.realism.save_verdict], or None
    when there is none (an unreadable entry counts as none and is judged again)."""
    try:
        verdict = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return verdict if isinstance(verdict, dict) else None


def save_verdict(path: str | os.PathLike[str], verdict: Mapping[str, Any]) -> Path:
    """Write a verdict to the cache, through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(dict(verdict), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def check_verdict(verdict: Any, judge: str) -> dict[str, Any]:
    """A judge's result, checked for the entries ``evaluate`` reports.

    Raises:
        ConfigError: when a (plugin) judge returned something else.
    """
    needed = ("accuracy", "accuracy_ci", "generated_labelled_real", "decisions")
    if not isinstance(verdict, Mapping) or any(k not in verdict for k in needed):
        raise ConfigError(
            f"judge '{judge}' returned no verdict with {', '.join(needed)}; see the Judge "
            "interface in p2pkit.evaluation.realism"
        )
    return dict(verdict)
