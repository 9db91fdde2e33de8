"""The "FCN-score" (pix2pix section 4.1, Tables 1-3), usable on any labels -> photo task.

The paper judges generated photos by how well an off-the-shelf semantic segmenter, trained on
real photos of the same dataset (FCN-8s on Cityscapes), recovers the labels the photos were
generated from: per-pixel accuracy, per-class accuracy and class IoU. No pretrained segmenter
exists for an arbitrary dataset, so p2pkit provides the pieces to make one, in four modules
whose public names this one gathers:

* [`p2pkit.evaluation.segmenter`][p2pkit.evaluation.segmenter]: the segmenter
  ([`fcn_small`][p2pkit.evaluation.segmenter.fcn_small], a small fully convolutional network
  with FCN-8s-style skip fusion, a built-in component of the ``p2pkit.segmenters`` entry-point
  group), [`train_segmenter`][p2pkit.evaluation.segmenter.train_segmenter], which trains it on a
  dataset's real photos and labels, and
  [`predict_labels`][p2pkit.evaluation.segmenter.predict_labels];
* [`p2pkit.evaluation.segmenter_unet`][p2pkit.evaluation.segmenter_unet]:
  [`unet_seg`][p2pkit.evaluation.segmenter_unet.unet_seg], a U-Net segmenter, another built-in
  component of that group;
* [`p2pkit.evaluation.segmenter_cache`][p2pkit.evaluation.segmenter_cache]:
  [`save_segmenter`][p2pkit.evaluation.segmenter_cache.save_segmenter] /
  [`load_segmenter`][p2pkit.evaluation.segmenter_cache.load_segmenter] /
  [`segmenter_cache_path`][p2pkit.evaluation.segmenter_cache.segmenter_cache_path] /
  [`load_cached_segmenter`][p2pkit.evaluation.segmenter_cache.load_cached_segmenter], so it is
  trained once per dataset and then reused;
* [`p2pkit.evaluation.fcn_score`][p2pkit.evaluation.fcn_score]:
  [`ConfusionMatrix`][p2pkit.evaluation.fcn_score.ConfusionMatrix] and
  [`segmentation_scores`][p2pkit.evaluation.fcn_score.segmentation_scores] to score the generated
  photos.

Conventions: photos are float ``(N, 3, H, W)`` in ``[-1, 1]``; label maps are ``int64``
``(N, H, W)`` class ids in ``[0, K)``, optionally with an ``ignore_index`` for unlabelled pixels.
Scores from this small segmenter are comparable between models scored with the *same* cached
segmenter, not with the paper's FCN-8s numbers.
"""

from __future__ import annotations

from p2pkit.evaluation.fcn_score import ConfusionMatrix, segmentation_scores
from p2pkit.evaluation.segmenter import (
    BatchSource,
    FCNSmall,
    fcn_small,
    predict_labels,
    train_segmenter,
)
from p2pkit.evaluation.segmenter_cache import (
    data_fingerprint,
    default_cache_dir,
    load_cached_segmenter,
    load_segmenter,
    save_segmenter,
    segmenter_cache_path,
)
from p2pkit.evaluation.segmenter_unet import UNetSegmenter, unet_seg

__all__ = [
    "BatchSource",
    "ConfusionMatrix",
    "FCNSmall",
    "UNetSegmenter",
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
    "unet_seg",
]
