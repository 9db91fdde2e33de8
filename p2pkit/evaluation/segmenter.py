"""The FCN-score's segmenter: a small fully convolutional network, its training and prediction.

The paper scores generated photos with FCN-8s trained on real Cityscapes photos (section 4.1). No
pretrained segmenter exists for an arbitrary dataset, so p2pkit trains its own:

* [`fcn_small`][p2pkit.evaluation.segmenter.fcn_small], a small fully convolutional segmenter
  with FCN-8s-style skip fusion, a built-in component of the ``p2pkit.segmenters`` entry-point
  group (found through that group like any plugin);
* [`train_segmenter`][p2pkit.evaluation.segmenter.train_segmenter], which trains a segmenter on a
  dataset's real photos and labels;
* [`predict_labels`][p2pkit.evaluation.segmenter.predict_labels], which segments real or
  generated photos for [`p2pkit.evaluation.fcn_score`][p2pkit.evaluation.fcn_score].

Conventions: photos are float ``(N, 3, H, W)`` in ``[-1, 1]``; label maps are ``int64``
``(N, H, W)`` class ids in ``[0, K)``, optionally with an ``ignore_index`` for unlabelled pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from p2pkit.errors import ConfigError, DataError
from p2pkit.evaluation.fcn_score import check_labels

__all__ = [
    "DEFAULT_SEED",
    "BatchSource",
    "FCNSmall",
    "fcn_small",
    "predict_labels",
    "train_segmenter",
]

DEFAULT_SEED = 0
"""The seed [`train_segmenter`][p2pkit.evaluation.segmenter.train_segmenter] uses unless told
otherwise (the FCN-score's segmenter is trained with it; ``metrics.json`` records it)."""

BatchSource = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
"""``source(batch_size, generator) -> (photos, labels)``: photos float ``(B, 3, H, W)`` in
``[-1, 1]``, labels ``int64`` ``(B, H, W)``."""


# --------------------------------------------------------------------------------------------
# The segmenter
# --------------------------------------------------------------------------------------------


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm rather than BatchNorm: the statistics do not depend on the batch, so a briefly
    trained segmenter behaves the same in train and eval mode and on batches of one."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


class _StagedSegmenter(nn.Module):
    """What the built-in segmenters share: ``depth + 1`` stages whose width starts at ``width``
    and doubles, checked options kept as ``config`` (what the segmenter cache saves and
    rebuilds them from), and ``num_classes``.

    Raises:
        ConfigError: an option out of range, naming the segmenter.
    """

    def __init__(self, name: str, num_classes: int, in_channels: int, width: int, depth: int):
        super().__init__()
        if num_classes < 2 or in_channels < 1 or width < 1 or depth < 0:
            raise ConfigError(
                f"{name}: need num_classes >= 2, in_channels >= 1, width >= 1 and depth >= 0, "
                f"got {num_classes}, {in_channels}, {width}, {depth}"
            )
        self.config = {
            "num_classes": num_classes,
            "in_channels": in_channels,
            "width": width,
            "depth": depth,
        }

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return int(self.config["num_classes"])

    @property
    def widths(self) -> list[int]:
        """Channels of each stage, finest first."""
        return [self.config["width"] * 2**i for i in range(self.config["depth"] + 1)]


class _ConvBlock(nn.Sequential):
    """Two 3x3 convolutions with normalisation and ReLU; the first may halve the resolution."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            _norm(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            _norm(cout),
            nn.ReLU(inplace=True),
        )


class FCNSmall(_StagedSegmenter):
    """A small fully convolutional segmenter in the spirit of FCN-8s (Long et al., CVPR 2015).

    An encoder of ``depth + 1`` stages (the first at full resolution, each later one halving the
    resolution and doubling the width) feeds a 1x1 class-score head at every stage; like FCN-8s,
    the coarse scores are upsampled bilinearly and added to the finer ones, stage by stage, so
    that coarse context and fine localisation both reach the output. Any input size works.

    Args:
        num_classes: number of classes K.
        in_channels: channels of the input photos.
        width: channels of the first stage.
        depth: number of downsampling stages (receptive field grows with it).

    Shapes:
        input: float ``(N, in_channels, H, W)`` in ``[-1, 1]``;
        output: float logits ``(N, K, H, W)``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32, depth: int = 3):
        super().__init__("fcn_small", num_classes, in_channels, width, depth)
        channels = self.widths
        self.stages = nn.ModuleList()
        cin = in_channels
        for i, cout in enumerate(channels):
            self.stages.append(_ConvBlock(cin, cout, stride=1 if i == 0 else 2))
            cin = cout
        self.heads = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for c in channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Photos ``(N, C, H, W)`` in ``[-1, 1]`` -> logits ``(N, K, H, W)``."""
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        scores = self.heads[-1](features[-1])
        for feature, head in zip(reversed(features[:-1]), reversed(self.heads[:-1]), strict=True):
            scores = F.interpolate(
                scores, size=feature.shape[-2:], mode="bilinear", align_corners=False
            )
            scores = scores + head(feature)
        return scores


def fcn_small(num_classes: int, in_channels: int = 3, width: int = 32, depth: int = 3) -> FCNSmall:
    """Build [`FCNSmall`][p2pkit.evaluation.segmenter.FCNSmall]; the ``fcn_small`` component of
    the ``p2pkit.segmenters`` group.

    Args:
        num_classes: number of classes K (the palette size).
        in_channels: channels of the input photos.
        width: channels of the first stage (doubles at each of the ``depth`` downsamplings).
        depth: number of downsampling stages.

    Returns:
        An untrained [`FCNSmall`][p2pkit.evaluation.segmenter.FCNSmall] mapping
        ``(N, in_channels, H, W)`` to logits ``(N, num_classes, H, W)``.
    """
    return FCNSmall(num_classes, in_channels=in_channels, width=width, depth=depth)


# --------------------------------------------------------------------------------------------
# Training and prediction
# --------------------------------------------------------------------------------------------


def _tensor_source(
    photos: torch.Tensor, labels: torch.Tensor, hflip: bool, crop: int | None = None
) -> BatchSource:
    """A [`BatchSource`][p2pkit.evaluation.segmenter.BatchSource] that samples random (optionally
    mirrored, optionally cropped) pairs from tensors.

    Without ``crop`` it draws exactly the random numbers it drew before ``crop`` existed, so
    segmenters trained (and cached) without it come out the same.
    """

    def source(batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, photos.shape[0], (batch_size,), generator=generator)
        x, y = photos[index], labels[index]
        if hflip:
            # Mirroring is the paper's own augmentation (appendix 6.2); labels mirror with photos.
            flip = (torch.rand(batch_size, generator=generator) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            y = torch.where(flip[:, None, None], y.flip(-1), y)
        if crop is not None:
            # One random crop-by-crop window per pair, the same for the photo and its labels.
            h, w = x.shape[-2:]
            top = torch.randint(0, h - crop + 1, (batch_size,), generator=generator).tolist()
            left = torch.randint(0, w - crop + 1, (batch_size,), generator=generator).tolist()
            windows = list(enumerate(zip(top, left, strict=True)))
            x = torch.stack([x[i, :, t : t + crop, s : s + crop] for i, (t, s) in windows])
            y = torch.stack([y[i, t : t + crop, s : s + crop] for i, (t, s) in windows])
        return x, y

    return source


def train_segmenter(
    photos: torch.Tensor | BatchSource,
    labels: torch.Tensor | None = None,
    *,
    num_classes: int,
    steps: int = 2000,
    batch_size: int = 8,
    lr: float = 1e-3,
    device: str | torch.device = "cpu",
    progress: bool = True,
    seed: int = DEFAULT_SEED,
    model: nn.Module | None = None,
    width: int = 32,
    depth: int = 3,
    ignore_index: int | None = None,
    hflip: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    crop: int | None = None,
) -> nn.Module:
    """Train a segmenter on real photos and their label maps (the FCN-score's reference net).

    Optimises pixel-wise cross-entropy with Adam, sampling ``batch_size`` pairs per step.

    Args:
        photos: real photos, float ``(N, 3, H, W)`` in ``[-1, 1]`` (kept where they are and sent
            to ``device`` one batch at a time), or a
            [`BatchSource`][p2pkit.evaluation.segmenter.BatchSource] callable that returns
            ``(photos, labels)`` batches itself (then ``labels`` must be ``None``).
        labels: class ids, ``int64`` ``(N, H, W)`` in ``[0, num_classes)`` or ``ignore_index``.
        num_classes: number of classes K.
        steps: optimisation steps.
        batch_size: pairs per step.
        lr: Adam learning rate.
        device: where to train.
        progress: show a rich progress bar with the running loss.
        seed: seeds the initial weights and the batch sampling (results are reproducible on
            the CPU; GPU kernels may add nondeterminism).
        model: a segmenter to train instead of a new ``fcn_small(num_classes, width=width,
            depth=depth)``;
            it must map ``(B, 3, H, W)`` to logits ``(B, K, H, W)``.
        width: width of the new ``fcn_small``.
        depth: downsampling stages of the new ``fcn_small``.
        ignore_index: label of pixels left out of the loss.
        hflip: mirror half the pairs at random (tensor input only).
        on_step: called as ``on_step(step, loss)`` after every step (1-based), e.g. for logging.
        crop: train on one random ``crop`` x ``crop`` window of each pair (tensor input only;
            a fully convolutional segmenter still segments whole photos afterwards). Cheaper
            steps and more varied batches; ``None`` (the default) trains on whole photos and
            reproduces segmenters trained before this option existed.

    Returns:
        The trained segmenter, in eval mode, on ``device``.

    Raises:
        DataError: when photos and labels do not fit together or labels are out of range.
        ConfigError: when ``steps``, ``batch_size`` or ``crop`` is out of range.
    """
    if callable(photos) and not isinstance(photos, torch.Tensor):
        if labels is not None:
            raise ValueError("train_segmenter: pass labels=None when photos is a batch source")
        if crop is not None:
            raise ValueError("train_segmenter: crop works on tensors; crop in the batch source")
        source = photos
    else:
        if labels is None:
            raise ValueError("train_segmenter: labels are required with a photos tensor")
        if photos.ndim != 4 or labels.ndim != 3 or photos.shape[0] != labels.shape[0]:
            raise DataError(
                f"train_segmenter: photos {tuple(photos.shape)} and labels {tuple(labels.shape)} "
                f"do not pair up; expected (N, 3, H, W) photos and (N, H, W) labels"
            )
        if photos.shape[-2:] != labels.shape[-2:]:
            raise DataError(
                f"train_segmenter: photos are {tuple(photos.shape[-2:])} but labels are "
                f"{tuple(labels.shape[-2:])}; resize the label maps with nearest neighbour"
            )
        check_labels(labels, num_classes, ignore_index, "train_segmenter")
        if crop is not None and not 1 <= crop <= min(photos.shape[-2:]):
            raise ConfigError(
                f"train_segmenter: crop must be between 1 and the photo side "
                f"{min(photos.shape[-2:])}, got {crop}"
            )
        source = _tensor_source(photos, labels.long(), hflip, crop)
    if steps < 1 or batch_size < 1:
        raise ConfigError(
            f"train_segmenter: steps and batch_size must be >= 1, got {steps}, {batch_size}"
        )

    device = torch.device(device)
    if model is None:
        # Seed the initial weights without disturbing the caller's global random state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = fcn_small(num_classes, width=width, depth=depth)
    model = model.to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100 if ignore_index is None else ignore_index)

    bar = _progress_bar(progress, "training segmenter", steps)
    running = None
    try:
        for step in range(1, steps + 1):
            x, y = source(batch_size, generator)
            x = x.to(device, non_blocking=True).float()
            y = y.to(device, non_blocking=True).long()
            loss = loss_fn(model(x), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise ConfigError(
                    f"train_segmenter: the loss became {value} at step {step}; lower lr (now {lr})"
                )
            # An exponential moving average makes the displayed loss readable.
            running = value if running is None else 0.95 * running + 0.05 * value
            if bar is not None:
                bar.update(bar.task_ids[0], advance=1, loss=f"{running:.4f}")
            if on_step is not None:
                on_step(step, value)
    finally:
        if bar is not None:
            bar.stop()
    return model.eval()


def _progress_bar(enabled: bool, description: str, total: int):
    """A started rich progress bar with one task (and a ``loss`` field), or ``None``."""
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    bar.add_task(description, total=total, loss="-")
    bar.start()
    return bar


@torch.no_grad()
def predict_labels(
    model: nn.Module,
    photos: torch.Tensor,
    *,
    batch_size: int = 16,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Segment photos: the arg-max class of the segmenter's logits for every pixel.

    Args:
        model: a segmenter mapping ``(B, 3, H, W)`` to logits ``(B, K, H, W)``.
        photos: float ``(N, 3, H, W)`` in ``[-1, 1]``, real or generated.
        batch_size: photos per forward pass.
        device: where to run; defaults to the model's device.

    Returns:
        ``int64`` ``(N, H, W)`` class ids on the CPU.
    """
    if device is None:
        device = next(model.parameters()).device
    model = model.to(device).eval()
    out = []
    for start in range(0, photos.shape[0], batch_size):
        x = photos[start : start + batch_size].to(device).float()
        out.append(model(x).argmax(dim=1).cpu())
    return torch.cat(out) if out else torch.empty(0, *photos.shape[-2:], dtype=torch.long)
