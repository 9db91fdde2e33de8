"""The "FCN-score" (pix2pix section 4.1, Tables 1-3), usable on any labels -> photo task.

The paper judges generated photos by how well an off-the-shelf semantic segmenter, trained on
real photos of the same dataset (FCN-8s on Cityscapes), recovers the labels the photos were
generated from: per-pixel accuracy, per-class accuracy and class IoU. No pretrained segmenter
exists for an arbitrary dataset, so this module provides the pieces to make one:

* :func:`fcn_small`, a small fully convolutional segmenter with FCN-8s-style skip fusion, the
  built-in component of the ``p2pkit.segmenters`` entry-point group;
* :func:`train_segmenter`, which trains it on a dataset's real photos and labels;
* :func:`save_segmenter` / :func:`load_segmenter` / :func:`segmenter_cache_path` /
  :func:`load_cached_segmenter`, so it is trained once per dataset and then reused;
* :func:`predict_labels`, :class:`ConfusionMatrix` and :func:`segmentation_scores` to score the
  generated photos.

Conventions: photos are float ``(N, 3, H, W)`` in ``[-1, 1]``; label maps are ``int64``
``(N, H, W)`` class ids in ``[0, K)``, optionally with an ``ignore_index`` for unlabelled pixels.
Scores from this small segmenter are comparable between models scored with the *same* cached
segmenter, not with the paper's FCN-8s numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from p2pkit.errors import CheckpointError, ConfigError, DataError

__all__ = [
    "SEGMENTER_GROUP",
    "BatchSource",
    "ConfusionMatrix",
    "FCNSmall",
    "data_fingerprint",
    "default_cache_dir",
    "fcn_small",
    "load_cached_segmenter",
    "load_segmenter",
    "predict_labels",
    "save_segmenter",
    "segmentation_scores",
    "segmenter_cache_path",
    "train_segmenter",
]

SEGMENTER_GROUP = "p2pkit.segmenters"
"""Entry-point group whose components build segmenters: ``factory(num_classes, ...) -> Module``."""

BatchSource = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
"""``source(batch_size, generator) -> (photos, labels)``: photos float ``(B, 3, H, W)`` in
``[-1, 1]``, labels ``int64`` ``(B, H, W)``."""

_META_VERSION = 1


# --------------------------------------------------------------------------------------------
# The segmenter
# --------------------------------------------------------------------------------------------


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm rather than BatchNorm: the statistics do not depend on the batch, so a briefly
    trained segmenter behaves the same in train and eval mode and on batches of one."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


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


class FCNSmall(nn.Module):
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
        super().__init__()
        if num_classes < 2 or in_channels < 1 or width < 1 or depth < 0:
            raise ConfigError(
                f"fcn_small: need num_classes >= 2, in_channels >= 1, width >= 1 and depth >= 0, "
                f"got {num_classes}, {in_channels}, {width}, {depth}"
            )
        self.config = {
            "num_classes": num_classes,
            "in_channels": in_channels,
            "width": width,
            "depth": depth,
        }
        channels = [width * 2**i for i in range(depth + 1)]
        self.stages = nn.ModuleList()
        cin = in_channels
        for i, cout in enumerate(channels):
            self.stages.append(_ConvBlock(cin, cout, stride=1 if i == 0 else 2))
            cin = cout
        self.heads = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for c in channels)

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return int(self.config["num_classes"])

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
    """Build :class:`FCNSmall`; the ``fcn_small`` component of the ``p2pkit.segmenters`` group.

    Args:
        num_classes: number of classes K (the palette size).
        in_channels: channels of the input photos.
        width: channels of the first stage (doubles at each of the ``depth`` downsamplings).
        depth: number of downsampling stages.

    Returns:
        An untrained :class:`FCNSmall` mapping ``(N, in_channels, H, W)`` to logits
        ``(N, num_classes, H, W)``.
    """
    return FCNSmall(num_classes, in_channels=in_channels, width=width, depth=depth)


_BUILTIN_SEGMENTERS: dict[str, Callable[..., nn.Module]] = {"fcn_small": fcn_small}


def _segmenter_factory(name: str) -> Callable[..., nn.Module]:
    """A segmenter factory: built in, or from the ``segmenters`` registry (entry points of the
    ``p2pkit.segmenters`` group and in-process registrations).

    Raises:
        RegistryError: when no installed plugin provides ``name``.
    """
    if name in _BUILTIN_SEGMENTERS:
        return _BUILTIN_SEGMENTERS[name]
    from p2pkit.registry import get_registry

    return get_registry("segmenters").get(name)


# --------------------------------------------------------------------------------------------
# Training and prediction
# --------------------------------------------------------------------------------------------


def _check_labels(
    labels: torch.Tensor, num_classes: int, ignore_index: int | None, what: str
) -> None:
    """Raise :class:`DataError` when label ids fall outside ``[0, num_classes)``."""
    valid = labels if ignore_index is None else labels[labels != ignore_index]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= num_classes):
        raise DataError(
            f"{what}: label ids span {int(valid.min())}..{int(valid.max())} but num_classes is "
            f"{num_classes}; check the palette or pass the label used for unlabelled pixels as "
            f"ignore_index"
        )


def _tensor_source(photos: torch.Tensor, labels: torch.Tensor, hflip: bool) -> BatchSource:
    """A :data:`BatchSource` that samples random (optionally mirrored) pairs from tensors."""

    def source(batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, photos.shape[0], (batch_size,), generator=generator)
        x, y = photos[index], labels[index]
        if hflip:
            # Mirroring is the paper's own augmentation (appendix 6.2); labels mirror with photos.
            flip = (torch.rand(batch_size, generator=generator) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            y = torch.where(flip[:, None, None], y.flip(-1), y)
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
    seed: int = 0,
    model: nn.Module | None = None,
    width: int = 32,
    depth: int = 3,
    ignore_index: int | None = None,
    hflip: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> nn.Module:
    """Train a segmenter on real photos and their label maps (the FCN-score's reference net).

    Optimises pixel-wise cross-entropy with Adam, sampling ``batch_size`` pairs per step.

    Args:
        photos: real photos, float ``(N, 3, H, W)`` in ``[-1, 1]`` (kept where they are and sent
            to ``device`` one batch at a time), or a :data:`BatchSource` callable that returns
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

    Returns:
        The trained segmenter, in eval mode, on ``device``.

    Raises:
        DataError: when photos and labels do not fit together or labels are out of range.
    """
    if callable(photos) and not isinstance(photos, torch.Tensor):
        if labels is not None:
            raise ValueError("train_segmenter: pass labels=None when photos is a batch source")
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
        _check_labels(labels, num_classes, ignore_index, "train_segmenter")
        source = _tensor_source(photos, labels.long(), hflip)
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


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


class ConfusionMatrix:
    """Accumulates a K x K confusion matrix over batches of label maps.

    Entry ``[t, p]`` counts pixels of true class ``t`` predicted as ``p``. Pixels whose true
    label is ``ignore_index`` are skipped. The scores are those of the paper's Tables 1-3 (the
    FCN-score protocol of Long et al.):

    * per-pixel accuracy: correct pixels / all counted pixels;
    * per-class accuracy: mean over classes of correct / true pixels of that class;
    * class IoU: mean over classes of ``|pred & true| / |pred | true|``.

    Classes with no pixel in the ground truth are left out of both means (their accuracy is
    undefined, and their IoU would be 0 for any stray prediction or undefined otherwise).

    Args:
        num_classes: number of classes K.
        ignore_index: true label to skip, if any.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if num_classes < 1:
            raise ConfigError(f"ConfusionMatrix: num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self.matrix.zero_()

    def update(self, pred: torch.Tensor, true: torch.Tensor) -> None:
        """Add a batch.

        Args:
            pred: predicted class ids, integer ``(N, H, W)`` (any shape matching ``true``).
            true: true class ids, same shape, in ``[0, K)`` or ``ignore_index``.

        Raises:
            DataError: when ids fall outside ``[0, K)``.
        """
        if pred.shape != true.shape:
            raise ValueError(
                f"ConfusionMatrix.update: pred {tuple(pred.shape)} and true "
                f"{tuple(true.shape)} differ"
            )
        pred, true = pred.reshape(-1).long().cpu(), true.reshape(-1).long().cpu()
        if self.ignore_index is not None:
            keep = true != self.ignore_index
            pred, true = pred[keep], true[keep]
        _check_labels(true, self.num_classes, None, "ConfusionMatrix: true labels")
        _check_labels(pred, self.num_classes, None, "ConfusionMatrix: predicted labels")
        k = self.num_classes
        self.matrix += torch.bincount(true * k + pred, minlength=k * k).view(k, k)

    def compute(self, per_class: bool = False) -> dict[str, Any]:
        """The scores.

        Args:
            per_class: also return ``"class_acc"`` and ``"class_iou_each"``, lists of K floats
                with ``None`` for classes absent from the ground truth, and ``"present"``.

        Returns:
            ``{"per_pixel_acc", "per_class_acc", "class_iou"}`` as floats in ``[0, 1]`` (``nan``
            when nothing was counted).
        """
        m = self.matrix.double()
        diag = m.diagonal()
        true_count = m.sum(dim=1)
        pred_count = m.sum(dim=0)
        present = true_count > 0
        total = m.sum()
        class_acc = diag / true_count.clamp(min=1)
        iou = diag / (true_count + pred_count - diag).clamp(min=1)
        nan = float("nan")
        scores: dict[str, Any] = {
            "per_pixel_acc": float(diag.sum() / total) if total > 0 else nan,
            "per_class_acc": float(class_acc[present].mean()) if present.any() else nan,
            "class_iou": float(iou[present].mean()) if present.any() else nan,
        }
        if per_class:
            scores["class_acc"] = [
                float(a) if p else None for a, p in zip(class_acc, present, strict=True)
            ]
            scores["class_iou_each"] = [
                float(a) if p else None for a, p in zip(iou, present, strict=True)
            ]
            scores["present"] = [bool(p) for p in present]
        return scores


def segmentation_scores(
    pred_labels: torch.Tensor,
    true_labels: torch.Tensor,
    num_classes: int,
    ignore_index: int | None = None,
) -> dict[str, float]:
    """FCN-scores of one set of label maps (see :class:`ConfusionMatrix`).

    Args:
        pred_labels: predicted class ids, integer ``(N, H, W)``.
        true_labels: true class ids, same shape, in ``[0, K)`` or ``ignore_index``.
        num_classes: number of classes K.
        ignore_index: true label to skip, if any.

    Returns:
        ``{"per_pixel_acc": x, "per_class_acc": y, "class_iou": z}``, floats in ``[0, 1]``.
    """
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    cm.update(pred_labels, true_labels)
    return cm.compute()


# --------------------------------------------------------------------------------------------
# Saving, loading, caching
# --------------------------------------------------------------------------------------------


def _meta_path(weights: Path) -> Path:
    """The JSON file that describes a ``.safetensors`` segmenter."""
    return weights.with_suffix(".json")


def save_segmenter(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    component: str = "fcn_small",
    component_kwargs: Mapping[str, Any] | None = None,
    palette: torch.Tensor | list[list[int]] | None = None,
    image_size: tuple[int, int] | None = None,
    training: Mapping[str, Any] | None = None,
    fingerprint: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a segmenter as ``<path>`` (safetensors weights) and ``<path>.json`` (metadata).

    Both files are written to temporary names and renamed into place, so a reader never sees a
    half-written cache entry.

    Args:
        path: the weights file, conventionally ending in ``.safetensors``.
        model: the segmenter.
        component: its factory's name in the ``p2pkit.segmenters`` group.
        component_kwargs: the factory's arguments; defaults to ``model.config`` (``FCNSmall``
            carries one).
        palette: the ``(K, 3)`` colours of the classes, if the labels came from colours.
        image_size: ``(H, W)`` of the training photos.
        training: training settings (steps, batch size, lr, seed, ...).
        fingerprint: :func:`data_fingerprint` of the training data.
        extra: anything else worth keeping (must be JSON-serialisable).

    Returns:
        The weights path.
    """
    from safetensors.torch import save_file

    path = Path(path)
    kwargs = dict(
        component_kwargs if component_kwargs is not None else getattr(model, "config", {})
    )
    if not kwargs:
        raise ValueError("save_segmenter: pass component_kwargs for a model without .config")
    if isinstance(palette, torch.Tensor):
        palette = [[int(v) for v in row] for row in palette.tolist()]
    from p2pkit import __version__

    meta = {
        "format_version": _META_VERSION,
        "component": component,
        "component_kwargs": kwargs,
        "num_classes": kwargs.get("num_classes"),
        "palette": palette,
        "image_size": list(image_size) if image_size is not None else None,
        "training": dict(training or {}),
        "data_fingerprint": fingerprint,
        "p2pkit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **dict(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp_weights = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp_meta = path.with_name(path.name + f".json.tmp{os.getpid()}")
    save_file(tensors, str(tmp_weights), metadata={"component": component})
    tmp_meta.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp_weights, path)
    os.replace(tmp_meta, _meta_path(path))
    return path


def load_segmenter(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a segmenter written by :func:`save_segmenter`.

    Args:
        path: the ``.safetensors`` weights file (its ``.json`` must sit beside it).
        device: where to put the model.

    Returns:
        ``(model in eval mode, metadata dict)``.

    Raises:
        CheckpointError: when a file is missing, unreadable, or does not fit the network.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta_file = _meta_path(path)
    if not path.is_file() or not meta_file.is_file():
        missing = path if not path.is_file() else meta_file
        raise CheckpointError(f"{missing}: segmenter file not found; train the segmenter again")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        factory = _segmenter_factory(meta["component"])
        kwargs = dict(meta["component_kwargs"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{meta_file}: segmenter metadata is unreadable ({exc}); delete it and train again"
        ) from None
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(
            f"{path}: segmenter weights are unreadable ({exc}); delete and retrain"
        ) from None
    model = factory(**kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{path}: weights do not fit {meta['component']}({kwargs}) ({first}); "
            f"delete it and retrain"
        ) from None
    return model.to(device).eval(), meta


def default_cache_dir() -> Path:
    """Where cached segmenters live: ``$P2PKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/p2pkit``,
    else ``~/.cache/p2pkit``. Never the dataset folder, which may be shared or read-only."""
    if os.environ.get("P2PKIT_CACHE_DIR"):
        return Path(os.environ["P2PKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "p2pkit"


def segmenter_cache_path(
    dataset_root: str | os.PathLike[str],
    *,
    split: str = "train",
    component: str = "fcn_small",
    settings: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The cache file for the segmenter of one dataset, split and set of training settings.

    The name is readable (dataset folder, split, component) and ends in a hash of the resolved
    dataset path, split, component and ``settings``, so different datasets or settings never share
    an entry. The data itself is checked on load through the fingerprint stored in the metadata
    (see :func:`load_cached_segmenter`), so edited data invalidates the entry without a new name.

    Args:
        dataset_root: the dataset folder.
        split: the split the segmenter is trained on.
        component: the segmenter component.
        settings: anything else that changes the result (image size, steps, direction, palette).
        cache_dir: overrides :func:`default_cache_dir`.

    Returns:
        ``<cache_dir>/segmenters/<dataset>-<split>-<component>-<hash16>.safetensors``.
    """
    root = Path(dataset_root).expanduser().resolve()
    key = json.dumps(
        {"root": str(root), "split": split, "component": component, "settings": settings or {}},
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    safe = "".join(
        c if c.isalnum() or c in "-_." else "_" for c in f"{root.name}-{split}-{component}"
    )
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / "segmenters" / f"{safe}-{digest}.safetensors"


def load_cached_segmenter(
    path: str | os.PathLike[str],
    *,
    fingerprint: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]] | None:
    """Load a cached segmenter if it exists and was trained on the same data.

    Args:
        path: from :func:`segmenter_cache_path`.
        fingerprint: the current :func:`data_fingerprint`; ``None`` skips the check.
        device: where to put the model.

    Returns:
        ``(model, metadata)``, or ``None`` when there is no entry or it is stale (then train and
        :func:`save_segmenter` to the same path). A corrupt entry raises
        :class:`~p2pkit.errors.CheckpointError`.
    """
    path = Path(path)
    if not path.is_file() or not _meta_path(path).is_file():
        return None
    model, meta = load_segmenter(path, device=device)
    if fingerprint is not None and meta.get("data_fingerprint") != fingerprint:
        return None
    return model, meta


def data_fingerprint(items: Iterable[str | os.PathLike[str] | torch.Tensor]) -> str:
    """A SHA-256 over training data, to tell whether a cached segmenter is still valid.

    Args:
        items: files (hashed by name and content, in sorted order, so the listing order does not
            matter) or tensors (hashed by dtype, shape and values, in the given order).

    Returns:
        ``"sha256:<64 hex digits>"``.
    """
    digest = hashlib.sha256()
    paths: list[Path] = []
    for item in items:
        if isinstance(item, torch.Tensor):
            t = item.detach().cpu().contiguous()
            digest.update(f"tensor {t.dtype} {tuple(t.shape)}\n".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            paths.append(Path(item))
    for p in sorted(paths, key=lambda q: (q.name, str(q))):
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise DataError(
                f"{p}: cannot read it to fingerprint the data ({exc.strerror})"
            ) from None
        digest.update(f"file {p.name} {len(data)}\n".encode())
        digest.update(data)
    return "sha256:" + digest.hexdigest()
