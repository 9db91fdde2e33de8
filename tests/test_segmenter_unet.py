"""Tests for the U-Net segmenter (``unet_seg``) and the crop option of train_segmenter."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from test_segmentation import CLASSES, synthetic_task

from p2pkit.cli import cli
from p2pkit.errors import ConfigError, OptionValueError
from p2pkit.evaluation.segmentation import (
    fcn_small,
    load_segmenter,
    predict_labels,
    save_segmenter,
    segmentation_scores,
    train_segmenter,
)
from p2pkit.evaluation.segmenter_unet import UNetSegmenter, unet_seg
from p2pkit.registry import get_registry


def test_unet_seg_shapes_and_options() -> None:
    model = unet_seg(5, width=4, depth=3)
    assert isinstance(model, UNetSegmenter) and model.num_classes == 5
    assert model.config == {"num_classes": 5, "in_channels": 3, "width": 4, "depth": 3}
    # Sizes that do not divide by 2**depth, and depth 0, still come back at the input size.
    for h, w in [(32, 32), (30, 17), (5, 9)]:
        assert model(torch.zeros(2, 3, h, w)).shape == (2, 5, h, w)
    assert unet_seg(2, in_channels=1, width=2, depth=0)(torch.zeros(1, 1, 7, 7)).shape == (
        1, 2, 7, 7,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="unet_seg"):
        UNetSegmenter(1)


def test_unet_seg_is_registered_with_checked_options() -> None:
    registry = get_registry("segmenters")
    model = registry.create("unet_seg", num_classes=3, width=4, depth=2)
    assert isinstance(model, UNetSegmenter)
    with pytest.raises(OptionValueError, match="depth"):
        registry.create("unet_seg", num_classes=3, depth=50)
    with pytest.raises(OptionValueError, match="width"):
        registry.create("unet_seg", num_classes=3, width=0)


def test_p2pkit_list_segmenters_shows_unet_seg() -> None:
    result = CliRunner().invoke(cli, ["list", "segmenters", "--format", "json"])
    assert result.exit_code == 0, result.output
    names = {row["name"] for row in json.loads(result.output)}
    assert {"fcn_small", "unet_seg"} <= names


def test_unet_seg_learns_a_synthetic_task_through_train_segmenter(tmp_path) -> None:
    photos, labels = synthetic_task(32, seed=0, size=24)
    torch.manual_seed(0)
    net = unet_seg(CLASSES, width=8, depth=2)
    losses: list[float] = []
    net = train_segmenter(
        photos, labels, num_classes=CLASSES, steps=40, batch_size=4, lr=3e-3, progress=False,
        model=net, crop=16, on_step=lambda step, loss: losses.append(loss),
    )  # fmt: skip
    assert net is not None and not net.training
    assert sum(losses[-5:]) < sum(losses[:5])
    test_photos, test_labels = synthetic_task(8, seed=1, size=24)
    predicted = predict_labels(net, test_photos)  # whole 24 px photos, trained on 16 px crops
    assert predicted.shape == (8, 24, 24) and predicted.dtype == torch.long
    scores = segmentation_scores(predicted, test_labels, num_classes=CLASSES)
    chance = torch.bincount(test_labels.flatten()).max().item() / test_labels.numel()
    assert scores["per_pixel_acc"] > max(0.85, chance + 0.1), scores

    # The cache rebuilds it from the p2pkit.segmenters group.
    path = save_segmenter(tmp_path / "unet.safetensors", net, component="unet_seg")
    loaded, meta = load_segmenter(path)
    assert meta["component"] == "unet_seg" and isinstance(loaded, UNetSegmenter)
    assert torch.equal(predict_labels(loaded, test_photos), predicted)


def test_crop_is_off_by_default_and_checked() -> None:
    photos, labels = synthetic_task(6, seed=2, size=12)

    def trained(**kwargs: object) -> torch.nn.Module:
        torch.manual_seed(0)
        return train_segmenter(
            photos, labels, num_classes=CLASSES, steps=2, batch_size=2, progress=False,
            model=fcn_small(CLASSES, width=4, depth=1), **kwargs,
        )  # fmt: skip

    # crop=None is the default (whole photos, as before the option existed).
    default, explicit = trained(), trained(crop=None)
    for a, b in zip(default.state_dict().values(), explicit.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert trained(crop=12) is not None  # a crop of the whole photo is allowed
    with pytest.raises(ConfigError, match="crop"):
        trained(crop=13)

    def source(batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return photos[:batch_size], labels[:batch_size]

    with pytest.raises(ValueError, match="crop"):
        train_segmenter(source, num_classes=CLASSES, steps=1, progress=False, crop=8)
