"""The FCN-scores themselves (pix2pix section 4.1, Tables 1-3): label maps in, accuracies out.

Given the class ids a segmenter predicts for generated photos and the labels those photos were
generated from, [`ConfusionMatrix`][p2pkit.evaluation.fcn_score.ConfusionMatrix] accumulates a
K x K confusion matrix over batches and computes per-pixel accuracy, per-class accuracy and class
IoU; [`segmentation_scores`][p2pkit.evaluation.fcn_score.segmentation_scores] does the same for
one set in one call. Nothing here knows about networks: the segmenter lives in
[`p2pkit.evaluation.segmenter`][p2pkit.evaluation.segmenter].

Conventions: label maps are integer ``(N, H, W)`` class ids in ``[0, K)``, optionally with an
``ignore_index`` for unlabelled pixels.
"""

from __future__ import annotations

from typing import Any

import torch

from p2pkit.errors import ConfigError, DataError

__all__ = ["ConfusionMatrix", "check_labels", "segmentation_scores"]


def check_labels(
    labels: torch.Tensor, num_classes: int, ignore_index: int | None, what: str
) -> None:
    """Raise [`DataError`][p2pkit.errors.DataError] when label ids fall outside
    ``[0, num_classes)``.

    Args:
        labels: integer class ids of any shape.
        num_classes: number of classes K.
        ignore_index: a label left out of the check (unlabelled pixels), if any.
        what: what the labels are, for the message (e.g. ``"train_segmenter"``).
    """
    valid = labels if ignore_index is None else labels[labels != ignore_index]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= num_classes):
        raise DataError(
            f"{what}: label ids span {int(valid.min())}..{int(valid.max())} but num_classes is "
            f"{num_classes}; check the palette or pass the label used for unlabelled pixels as "
            f"ignore_index"
        )


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
        check_labels(true, self.num_classes, None, "ConfusionMatrix: true labels")
        check_labels(pred, self.num_classes, None, "ConfusionMatrix: predicted labels")
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
    """FCN-scores of one set of label maps (see
    [`ConfusionMatrix`][p2pkit.evaluation.fcn_score.ConfusionMatrix]).

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
