"""Does bf16 autocast change what training produces beyond seed-to-seed noise?

Trains the offline synthetic-facades recipe (reduced: 64 px, a narrow U-Net) four
times: fp32 and bf16, each with seeds 0 and 1, evaluates each on the validation
split, and compares the bf16-vs-fp32 difference at the same seed with the
difference that changing only the seed makes.

    python benchmarks/precision_check.py --out runs/precision-check
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from p2pkit.engine.runs import ensure_data, resolve_recipe
from p2pkit.engine.trainer import Trainer
from p2pkit.evaluation.evaluate import EvaluationSettings, evaluate_checkpoint

REDUCED = [
    "data.crop_size=64",
    "data.load_size=72",
    "generator.name=unet",
    "generator.depth=6",
    "generator.ngf=16",
    "discriminator.ndf=16",
    "train.epochs=4",
    "train.epochs_decay=2",
    "train.sample_every=0",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/precision-check"))
    parser.add_argument("--data-root", default="data/synth-facades-64")
    args = parser.parse_args()
    results = {}
    for name, extra in {
        "fp32-seed0": ["train.precision=fp32", "train.seed=0"],
        "fp32-seed1": ["train.precision=fp32", "train.seed=1"],
        "bf16-seed0": ["train.precision=bf16", "train.seed=0"],
        "bf16-seed1": ["train.precision=bf16", "train.seed=1"],
    }.items():
        recipe = resolve_recipe("synth-facades", [*REDUCED, *extra], args.data_root)
        ensure_data(recipe, progress=False)
        run = args.out / name
        if not (run / "checkpoints").is_dir():
            Trainer(recipe, run, progress=False).fit()
        metrics = evaluate_checkpoint(run, settings=EvaluationSettings(fcn="off"), progress=False)
        results[name] = {k: v["mean"] for k, v in metrics["aggregate"].items()}
        print(name, json.dumps(results[name]))
    for metric in ("l1", "psnr", "ssim"):
        r = {name: values[metric] for name, values in results.items()}
        precision = [abs(r[f"bf16-seed{s}"] - r[f"fp32-seed{s}"]) for s in (0, 1)]
        seed = [abs(r[f"{p}-seed1"] - r[f"{p}-seed0"]) for p in ("fp32", "bf16")]
        print(
            f"{metric}: |bf16 - fp32| at equal seed = {precision[0]:.4f}, {precision[1]:.4f}; "
            f"|seed 1 - seed 0| at equal precision = {seed[0]:.4f}, {seed[1]:.4f}"
        )


if __name__ == "__main__":
    main()
