"""How far does an FCN-score segmenter score the real photos above a blurred copy of them?

The FCN-score can only show what blur costs if its segmenter tells sharp photos from blurred
ones (project issue 15). For each candidate this script trains a registered segmenter on the
real photos and labels of the facades training split at 128 px, prepared as ``p2pkit
evaluate`` prepares them (the same dataset build, resize and palette search), then scores the
validation photos as they are and Gaussian-blurred by
[`blur_control`][p2pkit.evaluation.evaluate.blur_control] (sigma = side / 64), and prints a
Markdown table of per-pixel accuracy, per-class accuracy and class IoU, the real-minus-blurred
gaps and the training time. Every number is one training run with the default seed (no
repeats, no medians).

    OMP_NUM_THREADS=1 python benchmarks/segmenter_blur_gap.py \\
        --candidate fcn_small:600 --candidate unet_seg:3000:crop=64

A candidate is ``NAME:STEPS`` with optional ``:crop=N`` (train on random N x N crops, see
[`train_segmenter`][p2pkit.evaluation.segmenter.train_segmenter]) and ``:KEY=INT`` options of
the segmenter's factory (e.g. ``:width=32``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from p2pkit.config.loading import load_recipe
from p2pkit.engine.build import build_dataset, build_task
from p2pkit.evaluation.evaluate import (
    EvaluationSettings,
    _batches,
    _label_palette,
    blur_control,
    blur_sigma,
)
from p2pkit.evaluation.fcn_score import ConfusionMatrix
from p2pkit.evaluation.palette import labels_from_colors
from p2pkit.evaluation.segmenter import predict_labels, train_segmenter
from p2pkit.registry import get_registry

_SCORES = ("per_pixel_acc", "per_class_acc", "class_iou")


def parse_candidate(text: str) -> dict[str, Any]:
    """``NAME:STEPS[:crop=N][:KEY=INT...]`` -> ``{"name", "steps", "crop", "options"}``."""
    name, steps, *rest = text.split(":")
    options = dict(part.split("=", 1) for part in rest)
    crop = options.pop("crop", None)
    return {
        "name": name,
        "steps": int(steps),
        "crop": None if crop is None else int(crop),
        "options": {k: int(v) for k, v in options.items()},
    }


def load_split(root: Path, split: str, size: int, palette: torch.Tensor | None) -> Any:
    """Photos float ``(N, 3, size, size)`` in ``[-1, 1]``, labels ``int64`` ``(N, size, size)``
    and the palette, read as ``evaluate`` reads a split (facades recipe, labels -> photo)."""
    recipe = load_recipe("facades")
    dataset = build_dataset(
        recipe.data, build_task(recipe.task), split, root=str(root), resize_to=size
    )
    if palette is None:
        # evaluate finds the palette in the inputs of the split it scores.
        palette = _label_palette(dataset, EvaluationSettings(), required=True)
    photos, labels = [], []
    for _, a, b in _batches(dataset, 32, torch.device("cpu"), size):
        photos.append(b)
        labels.append(labels_from_colors(a, palette))
    return torch.cat(photos), torch.cat(labels), palette


def score(model: torch.nn.Module, photos: torch.Tensor, labels: torch.Tensor, k: int) -> dict:
    """Per-pixel accuracy, per-class accuracy and class IoU of ``model`` on ``photos``."""
    matrix = ConfusionMatrix(k)
    matrix.update(predict_labels(model, photos), labels)
    return matrix.compute()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("../shared/datasets/facades"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--candidate", action="append", default=None)
    args = parser.parse_args(argv)
    candidates = [
        parse_candidate(c) for c in (args.candidate or ["fcn_small:600", "unet_seg:3000:crop=64"])
    ]
    if not (args.root / "train").is_dir() or not (args.root / "val").is_dir():
        print(f"skipped: no facades dataset at {args.root} (p2pkit data get facades)")
        return 0

    val_photos, val_labels, palette = load_split(args.root, "val", args.size, None)
    train_photos, train_labels, _ = load_split(args.root, "train", args.size, palette)
    k = len(palette)
    blurred = blur_control(val_photos)
    print(
        f"{len(train_photos)} training and {len(val_photos)} val photos at {args.size} px, "
        f"{k} classes, blur sigma {blur_sigma(args.size):g} px, "
        f"{torch.get_num_threads()} thread(s)",
        flush=True,
    )

    rows = []
    for c in candidates:
        torch.manual_seed(0)
        net = get_registry("segmenters").create(c["name"], num_classes=k, **c["options"])
        start = time.perf_counter()
        net = train_segmenter(
            train_photos, train_labels, num_classes=k, steps=c["steps"],
            batch_size=args.batch_size, device=args.device, progress=False, model=net,
            crop=c["crop"],
        )  # fmt: skip
        seconds = time.perf_counter() - start
        real = score(net, val_photos, val_labels, k)
        blur = score(net, blurred, val_labels, k)
        rows.append((c, seconds, real, blur))
        print(f"done {c}: {seconds:.0f} s, real {real}, blurred {blur}", flush=True)

    print()
    print(
        "| segmenter | steps | training | time (s) | pixel acc. real / blurred / gap "
        "| class acc. real / blurred / gap | IoU real / blurred / gap |"
    )
    print("|---|---|---|---|---|---|---|")
    for c, seconds, real, blur in rows:
        options = "".join(f", {key}={value}" for key, value in c["options"].items())
        training = (
            (f"{c['crop']} px crops" if c["crop"] else f"whole {args.size} px")
            + ", flips"
            + options
        )
        cells = " | ".join(
            f"{real[s]:.3f} / {blur[s]:.3f} / {real[s] - blur[s]:+.3f}" for s in _SCORES
        )
        print(f"| `{c['name']}` | {c['steps']} | {training} | {seconds:.0f} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
