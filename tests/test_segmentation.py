"""Tests for p2pkit.evaluation.segmentation: FCN-scores, the small segmenter, and its cache."""

from __future__ import annotations

import json
import math

import pytest
import torch

from p2pkit.errors import CheckpointError, DataError, RegistryError
from p2pkit.evaluation.segmentation import (
    ConfusionMatrix,
    FCNSmall,
    data_fingerprint,
    fcn_small,
    load_cached_segmenter,
    load_segmenter,
    predict_labels,
    save_segmenter,
    segmentation_scores,
    segmenter_cache_path,
    train_segmenter,
)
from p2pkit.registry import get_registry, isolated_registries

# Class colours of the synthetic task, in [-1, 1].
CLASS_COLOURS = torch.tensor(
    [[-0.8, -0.8, -0.8], [0.8, -0.6, -0.6], [-0.6, 0.8, -0.6], [-0.6, -0.6, 0.8]]
)
CLASSES = len(CLASS_COLOURS)


def synthetic_task(n: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Label maps of random rectangles and photos that paint each class a colour plus noise
    (also the data of the U-Net segmenter's tests).

    Returns:
        photos float (n, 3, size, size) in [-1, 1], labels int64 (n, size, size) in [0, 4).
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        for _ in range(4):
            y, x = torch.randint(0, size - 8, (2,), generator=g).tolist()
            h, w = torch.randint(6, 14, (2,), generator=g).tolist()
            labels[i, y : y + h, x : x + w] = int(torch.randint(1, 4, (1,), generator=g))
    photos = CLASS_COLOURS[labels].permute(0, 3, 1, 2)
    photos = photos + 0.35 * torch.randn(photos.shape, generator=g)
    return photos.clamp(-1, 1), labels


def test_perfect_prediction_scores_one() -> None:
    labels = torch.tensor([[[0, 1], [2, 2]], [[1, 1], [0, 2]]])
    assert segmentation_scores(labels, labels, num_classes=3) == {
        "per_pixel_acc": 1.0,
        "per_class_acc": 1.0,
        "class_iou": 1.0,
    }


def test_known_confusion_by_hand() -> None:
    # true: 0 0 0 0 1 1 ; pred: 0 0 0 1 1 1 ; class 2 never occurs in the truth.
    true = torch.tensor([[[0, 0, 0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 0, 0, 1, 1, 1]]])
    scores = segmentation_scores(pred, true, num_classes=3)
    # 5 of 6 pixels right.
    assert scores["per_pixel_acc"] == pytest.approx(5 / 6)
    # class 0: 3/4, class 1: 2/2; class 2 is absent from the truth and left out of the means.
    assert scores["per_class_acc"] == pytest.approx((3 / 4 + 1) / 2)
    # IoU class 0: 3 / (4 + 3 - 3) = 3/4; class 1: 2 / (2 + 3 - 2) = 2/3.
    assert scores["class_iou"] == pytest.approx((3 / 4 + 2 / 3) / 2)


def test_absent_class_predicted_is_not_averaged_but_costs_accuracy() -> None:
    true = torch.tensor([[[0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 2, 1, 1]]])  # class 2 predicted, never true
    cm = ConfusionMatrix(3)
    cm.update(pred, true)
    scores = cm.compute(per_class=True)
    assert scores["per_pixel_acc"] == pytest.approx(3 / 4)
    assert scores["per_class_acc"] == pytest.approx((1 / 2 + 1) / 2)
    assert scores["class_iou"] == pytest.approx((1 / 2 + 1) / 2)
    assert scores["present"] == [True, True, False]
    assert scores["class_iou_each"][2] is None


def test_confusion_matrix_accumulates_and_ignores() -> None:
    true = torch.tensor([[[0, 1, 255, 1]]])
    pred = torch.tensor([[[0, 0, 1, 1]]])
    cm = ConfusionMatrix(2, ignore_index=255)
    cm.update(pred, true)
    cm.update(pred, true)
    assert cm.matrix.tolist() == [[2, 0], [2, 2]]
    assert cm.compute()["per_pixel_acc"] == pytest.approx(4 / 6)
    with pytest.raises(DataError, match="num_classes"):
        ConfusionMatrix(2).update(pred, true)  # 255 is not ignored there
    assert math.isnan(ConfusionMatrix(2).compute()["per_pixel_acc"])


def test_fcn_small_shapes() -> None:
    model = fcn_small(5, width=8, depth=2)
    assert isinstance(model, FCNSmall)
    # Sizes that do not divide by 2**depth still come back at the input size.
    for h, w in [(32, 32), (30, 17)]:
        assert model(torch.zeros(2, 3, h, w)).shape == (2, 5, h, w)


def test_train_segmenter_learns_asynthetic_task() -> None:
    photos, labels = synthetic_task(48, seed=0)
    losses: list[float] = []
    model = train_segmenter(
        photos,
        labels,
        num_classes=4,
        steps=30,
        batch_size=4,
        lr=5e-3,
        width=8,
        depth=2,
        progress=False,
        seed=0,
        on_step=lambda step, loss: losses.append(loss),
    )
    assert len(losses) == 30
    assert sum(losses[-5:]) < sum(losses[:5])
    test_photos, test_labels = synthetic_task(8, seed=1)
    scores = segmentation_scores(predict_labels(model, test_photos), test_labels, num_classes=4)
    chance = torch.bincount(test_labels.flatten()).max().item() / test_labels.numel()
    assert scores["per_pixel_acc"] > max(0.85, chance + 0.2), scores


def test_train_segmenter_from_a_batch_source() -> None:
    photos, labels = synthetic_task(16, seed=2)

    def source(batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, 16, (batch_size,), generator=generator)
        return photos[index], labels[index]

    model = train_segmenter(source, num_classes=4, steps=3, batch_size=4, width=4, progress=True)
    assert predict_labels(model, photos[:2]).shape == (2, 32, 32)


def test_train_segmenter_rejects_bad_labels() -> None:
    photos, labels = synthetic_task(4, seed=3)
    with pytest.raises(DataError, match="num_classes"):
        train_segmenter(photos, labels, num_classes=3, steps=1, progress=False)
    with pytest.raises(DataError, match="pair up"):
        train_segmenter(photos, labels[:2], num_classes=4, steps=1, progress=False)


def test_save_load_round_trip(tmp_path) -> None:
    photos, labels = synthetic_task(4, seed=4)
    model = train_segmenter(photos, labels, num_classes=4, steps=2, width=4, progress=False)
    fingerprint = data_fingerprint([photos, labels])
    path = segmenter_cache_path("/data/facades", settings={"size": 32}, cache_dir=tmp_path)
    assert path.parent == tmp_path / "segmenters"
    assert path.name.startswith("facades-train-fcn_small-")
    assert path != segmenter_cache_path("/data/facades", settings={"size": 64}, cache_dir=tmp_path)
    assert load_cached_segmenter(path, fingerprint=fingerprint) is None  # nothing cached yet

    save_segmenter(
        path,
        model,
        palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]],
        image_size=(32, 32),
        training={"steps": 2},
        fingerprint=fingerprint,
    )
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["component"] == "fcn_small" and meta["num_classes"] == 4
    assert meta["palette"][1] == [255, 0, 0] and meta["image_size"] == [32, 32]

    loaded, meta = load_cached_segmenter(path, fingerprint=fingerprint)
    assert meta["data_fingerprint"] == fingerprint
    with torch.no_grad():
        assert torch.allclose(loaded(photos), model(photos), atol=1e-6)
    # Different data: the cached entry is stale.
    assert load_cached_segmenter(path, fingerprint=data_fingerprint([photos * 0])) is None


def test_load_segmenter_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_segmenter(tmp_path / "missing.safetensors")
    model = fcn_small(3, width=4, depth=1)
    path = save_segmenter(tmp_path / "seg.safetensors", model)
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_segmenter(path)
    path = save_segmenter(tmp_path / "seg.safetensors", model)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["component_kwargs"]["width"] = 8
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_segmenter(path)


def test_data_fingerprint_files(tmp_path) -> None:
    a, b = tmp_path / "1.jpg", tmp_path / "2.jpg"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    first = data_fingerprint([a, b])
    assert first == data_fingerprint([b, a])  # order of listing does not matter
    b.write_bytes(b"changed")
    assert data_fingerprint([a, b]) != first
    with pytest.raises(DataError, match="missing"):
        data_fingerprint([tmp_path / "missing.jpg"])


def test_load_segmenter_resolves_registered_components(tmp_path) -> None:
    with isolated_registries():

        @get_registry("segmenters").register("tiny_fcn")
        def tiny_fcn(num_classes: int) -> torch.nn.Module:
            return fcn_small(num_classes, width=4, depth=1)

        model = tiny_fcn(3)
        path = save_segmenter(
            tmp_path / "tiny.safetensors",
            model,
            component="tiny_fcn",
            component_kwargs={"num_classes": 3},
        )
        loaded, meta = load_segmenter(path)
        assert meta["component"] == "tiny_fcn"
        x = torch.zeros(1, 3, 8, 8)
        with torch.no_grad():
            assert torch.allclose(loaded(x), model.eval()(x))
    with pytest.raises(RegistryError, match="tiny_fcn"):
        load_segmenter(path)
