"""``p2pkit sweep``: train and evaluate recipe variants, then compare them in one table.

Each ``--vary key=v1,v2,...`` is one axis; several make a grid. Every variant is
trained in its own run folder under ``--out`` and evaluated on the same split; the
comparison is written as Markdown and JSON in the layout of the paper's Tables 1-3
(FCN-scores first, when the task has label maps, with the "Ground truth" row).

A variant whose resolved recipe matches a finished run already in ``--out`` (from
this sweep or another one) reuses it instead of training again, so the Table 1, 2
and 3 sweeps can share their common L1+cGAN run.

``--out`` may hold other files: the sweep trains only into a variant's own folder
(empty, missing, or a run of the same recipe) and writes its tables only over
tables an earlier sweep wrote; both are checked before any training.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pkit.config import Recipe, recipe_to_toml
from p2pkit.errors import ConfigError, DataError
from p2pkit.evaluation.paths import claim_outputs
from p2pkit.files import plain_name

# How the paper names its rows (Tables 1-3).
PAPER_LABELS = {
    "l1": "L1",
    "gan": "GAN",
    "cgan": "cGAN",
    "l1_gan": "L1+GAN",
    "l1_cgan": "L1+cGAN",
    "pixelgan": "1x1",
    "patchgan_16": "16x16",
    "patchgan_70": "70x70",
    "patchgan_286": "286x286",
    "unet_256": "U-Net",
    "unet_128": "U-Net",
    "unet": "U-Net",
    "encoder_decoder_256": "Encoder-decoder",
    "encoder_decoder_128": "Encoder-decoder",
    "encoder_decoder": "Encoder-decoder",
}


@dataclass
class Variant:
    """One point of the grid: a row label and its ``--set`` overrides."""

    label: str
    overrides: list[str]

    @property
    def slug(self) -> str:
        return re.sub(
            r"[^A-Za-z0-9_.+-]+", "-", "_".join(o.split("=", 1)[1] for o in self.overrides)
        )


def expand_grid(varies: list[str] | tuple[str, ...]) -> list[Variant]:
    """Variants from ``key=v1,v2`` strings: the product of all axes, in order."""
    if not varies:
        raise ConfigError("give at least one --vary key=v1,v2,...")
    axes = []
    for text in varies:
        if "=" not in text:
            raise ConfigError(
                f"--vary {text!r}: expected key=v1,v2,... e.g. objective.name=l1,l1_cgan"
            )
        key, values = text.split("=", 1)
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items:
            raise ConfigError(f"--vary {text!r}: no values after '='")
        axes.append([(key.strip(), v) for v in items])
    variants = []
    for combo in itertools.product(*axes):
        label = ", ".join(PAPER_LABELS.get(v, v) for _, v in combo)
        variants.append(Variant(label, [f"{k}={v}" for k, v in combo]))
    return variants


def _comparable(recipe: Recipe) -> str:
    """The recipe's TOML without its top-level name (run names differ between sweeps)."""
    lines = recipe_to_toml(recipe).splitlines()
    assert lines[0].startswith("name =")
    return "\n".join(lines[1:])


def _finished(run_dir: Path, recipe: Recipe) -> bool:
    from p2pkit.engine.checkpoint import load_checkpoint

    try:
        meta = load_checkpoint(run_dir, verify=False).meta
    except Exception:
        return False
    total = recipe.train.epochs + recipe.train.epochs_decay
    counters = meta.get("counters", {})
    limit = recipe.train.max_iterations
    # "images" counts the epoch's images done; "position" is what older runs wrote.
    done = counters.get("epoch") == total and counters.get("images", counters.get("position")) == 0
    return done or bool(limit and counters.get("iteration", 0) >= limit)


def _reusable_run(out: Path, recipe: Recipe) -> Path | None:
    """A finished run under ``out`` trained with this exact recipe (names aside)."""
    from p2pkit.config import load_toml, recipe_from_dict

    wanted = _comparable(recipe)
    for path in sorted(out.glob("*/recipe.toml")):
        try:
            other = recipe_from_dict(load_toml(path), origin=str(path))
        except ConfigError:
            continue
        if _comparable(other) == wanted and _finished(path.parent, other):
            return path.parent
    return None


def _check_run_folder(run_dir: Path, recipe: Recipe) -> None:
    """Refuse to train into ``run_dir`` unless it is empty, missing or a run of ``recipe``."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: is a file, not a run folder; move it or use another --out")
    if not any(run_dir.iterdir()):
        return
    if not (run_dir / "recipe.toml").is_file():
        raise DataError(
            f"{run_dir}: holds files but no p2pkit run (no recipe.toml), so the sweep will not "
            "train into it; move them or use another --out"
        )
    if _comparable(_saved_recipe(run_dir)) != _comparable(recipe):
        raise ConfigError(f"{run_dir} holds a run of a different recipe; use another --out")


def run_sweep(
    recipe: str | Path,
    varies: list[str],
    *,
    overrides: list[str] | tuple[str, ...] = (),
    data_root: str | Path | None = None,
    out: str | Path = "runs/sweep",
    table: str = "comparison",
    settings: Any = None,
    progress: bool = True,
    console: Any = None,
) -> dict[str, Any]:
    """Train and evaluate every variant; write ``<out>/<table>.md`` and ``.json``.

    Returns:
        The comparison: one row per variant, with the evaluation's headline numbers,
        the run folder and the wall time.

    Raises:
        ConfigError: ``table`` or a variant's folder name is not a plain name, or two
            variants would share a folder.
        DataError: a variant's folder or a table file in ``out`` belongs to the user.
    """
    from rich.console import Console

    from p2pkit.engine.runs import ensure_data, resolve_recipe
    from p2pkit.engine.trainer import Trainer
    from p2pkit.evaluation.evaluate import EvaluationSettings, evaluate_checkpoint

    console = console or Console(quiet=True)
    settings = settings or EvaluationSettings()
    out = Path(out)
    plain_name(table, "--table", example="comparison")
    variants = expand_grid(varies)
    base = resolve_recipe(recipe, overrides, data_root)
    resolved_variants = []
    folders: dict[str, str] = {}
    # Every folder and file the sweep writes is checked before the first variant trains.
    for variant in variants:
        plain_name(variant.slug, f"the folder name of variant {variant.label!r}", example="l1")
        if variant.slug.casefold() in folders:
            raise ConfigError(
                f"variants {folders[variant.slug.casefold()]!r} and {variant.label!r} would both "
                f"train in {out / variant.slug}; give the --vary values distinct names"
            )
        folders[variant.slug.casefold()] = variant.label
        resolved = resolve_recipe(recipe, [*overrides, *variant.overrides], data_root)
        resolved.name = f"{base.name}-{variant.slug}"
        if out.is_dir() and _reusable_run(out, resolved) is None:
            _check_run_folder(out / variant.slug, resolved)
        resolved_variants.append((variant, resolved))
    claim_outputs(out, [f"{table}.json", f"{table}.md"], option="--out")
    rows: list[dict[str, Any]] = []
    ground_truth = blurred = None
    for i, (variant, resolved) in enumerate(resolved_variants, 1):
        console.rule(f"[{i}/{len(variants)}] {variant.label}")
        started = time.perf_counter()
        run_dir = _reusable_run(out, resolved)
        trained = False
        if run_dir is None:
            run_dir = out / variant.slug
            resume = (run_dir / "checkpoints").is_dir()
            found = ensure_data(resolved, progress=progress)
            if found:
                # As `run` says it: the log shows which copy of the data each variant trained on.
                console.print(found, highlight=False, markup=False, soft_wrap=True)
            Trainer(resolved, run_dir, resume=resume, progress=progress, console=console).fit()
            trained = True
        else:
            console.print(f"reusing the finished run {run_dir}")
        train_seconds = time.perf_counter() - started
        result = evaluate_checkpoint(
            run_dir, resolved.data.root, settings=settings, progress=progress, console=console
        )
        row = _row(variant, run_dir, result, train_seconds if trained else None)
        rows.append(row)
        if "fcn_scores" in result and ground_truth is None:
            ground_truth = result["fcn_scores"]["ground_truth"]
            blurred = result["fcn_scores"].get("ground_truth_blurred")
    comparison = {
        "recipe": base.name,
        "varies": list(varies),
        "overrides": list(overrides),
        "split": settings.split or base.data.val_split,
        "rows": rows,
        "ground_truth": ground_truth,
        "ground_truth_blurred": blurred,
    }
    (out / f"{table}.json").write_text(json.dumps(comparison, indent=2) + "\n")
    (out / f"{table}.md").write_text(comparison_markdown(comparison))
    return comparison


def _saved_recipe(run_dir: Path) -> Recipe:
    from p2pkit.engine.trainer import load_run_recipe

    return load_run_recipe(run_dir)


def _row(
    variant: Variant, run_dir: Path, result: dict[str, Any], train_seconds: float | None
) -> dict[str, Any]:
    agg = result["aggregate"]
    row: dict[str, Any] = {
        "label": variant.label,
        "overrides": variant.overrides,
        "run": str(run_dir),
        "train_seconds": None if train_seconds is None else round(train_seconds, 1),
        "l1": agg["l1"]["mean"],
        "psnr": agg["psnr"]["mean"],
        "ssim": agg["ssim"]["mean"],
        "hist_L": result["color_histogram_intersection"]["L"],
        "hist_a": result["color_histogram_intersection"]["a"],
        "hist_b": result["color_histogram_intersection"]["b"],
    }
    if "sharpness" in agg:
        row["sharpness"] = agg["sharpness"]["mean"]
    if "fcn_scores" in result:
        row.update({k: result["fcn_scores"]["generated"][k] for k in _FCN})
    realism = result.get("realism") or {}
    for variant, prefix in (("unconditional", ""), ("conditional", "cond_")):
        verdict = realism.get(variant)
        if verdict:
            row[f"{prefix}realism_acc"] = verdict["accuracy"]
            row[f"{prefix}realism_ci"] = verdict["accuracy_ci"]
            row[f"{prefix}labelled_real"] = verdict["generated_labelled_real"]
    if realism.get("settings") is not None:
        row["judge"] = {"name": realism.get("judge"), "settings": realism["settings"]}
    return row


_FCN = ("per_pixel_acc", "per_class_acc", "class_iou")
_HEADERS = {
    "per_pixel_acc": "Per-pixel acc.",
    "per_class_acc": "Per-class acc.",
    "class_iou": "Class IOU",
    "l1": "L1",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "hist_L": "hist. L",
    "hist_a": "hist. a",
    "hist_b": "hist. b",
    "sharpness": "Sharpness",
    "realism_acc": "Real/fake acc. [95% CI]",
    "labelled_real": "% labelled real",
    "cond_realism_acc": "Cond. real/fake acc. [95% CI]",
    "cond_labelled_real": "Cond. % labelled real",
}
_REALISM = ("realism_acc", "labelled_real", "cond_realism_acc", "cond_labelled_real")


def comparison_markdown(comparison: dict[str, Any]) -> str:
    """The comparison as a Markdown table, FCN-scores first as in the paper, then the realism
    verdicts (Table 4's "% Turkers labeled real" analogue) and the other measures."""
    rows = comparison["rows"]
    keys = [k for k in _FCN if rows and k in rows[0]]
    keys += [k for k in _REALISM if any(k in row for row in rows)]
    keys += ["l1", "psnr", "ssim"]
    keys += ["sharpness"] * any("sharpness" in row for row in rows)
    keys += ["hist_L", "hist_a", "hist_b"]
    axis = ", ".join(v.split("=")[0] for v in comparison["varies"])
    lines = [
        f"| {axis} | " + " | ".join(_HEADERS[k] for k in keys) + " | train time |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for row in rows:
        seconds = row["train_seconds"]
        when = "reused" if seconds is None else f"{seconds / 60:.1f} min"
        cells = [_cell(row, k) for k in keys]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {when} |")
    truth = comparison.get("ground_truth")
    if truth:
        cells = [_fmt(truth[k]) if k in _FCN else "" for k in keys]
        lines.append("| Ground truth | " + " | ".join(cells) + " | |")
    blurred = comparison.get("ground_truth_blurred")
    if truth and blurred:
        # The segmenter's control: it must score the real photos clearly above a blurred copy.
        cells = [_fmt(blurred[k]) if k in _FCN else "" for k in keys]
        lines.append("| Ground truth, blurred | " + " | ".join(cells) + " | |")
    title = f"Recipe `{comparison['recipe']}`, evaluated on `{comparison['split']}`"
    text = f"{title}\n\n" + "\n".join(lines) + "\n"
    judges = {json.dumps(row["judge"], sort_keys=True) for row in rows if row.get("judge")}
    for judge in sorted(judges):
        spec = json.loads(judge)
        options = ", ".join(f"{k} {v}" for k, v in spec["settings"].items())
        text += f"\nRealism judge: `{spec['name']}` ({options}); 0.5 = indistinguishable.\n"
    return text


def _cell(row: dict[str, Any], key: str) -> str:
    """A table cell: a number, an accuracy with its interval, or a percentage."""
    if key.endswith("realism_acc") and row.get(key) is not None:
        low, high = row[key.replace("_acc", "_ci")]
        return f"{row[key]:.3f} [{low:.2f}, {high:.2f}]"
    if key.endswith("labelled_real") and row.get(key) is not None:
        return f"{100 * row[key]:.1f}%"
    return _fmt(row.get(key))


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
