"""``p2pkit evaluate``, ``p2pkit report`` and ``p2pkit sweep``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from p2pkit.cli.common import console, error_console, weights_option


def evaluation_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``evaluate`` and ``sweep``."""
    options = [
        click.option(
            "--split",
            help="Split to score (default: the recipe's data.val_split, e.g. val or test).",
        ),
        click.option(
            "--paper-protocol",
            is_flag=True,
            help="Dropout on and test-batch BatchNorm statistics (section 3.3).",
        ),
        weights_option(),
        click.option(
            "--samples",
            default=1,
            show_default=True,
            type=click.IntRange(1),
            help="Outputs per input (with --paper-protocol); their spread is reported.",
        ),
        click.option(
            "--fcn-score",
            "fcn",
            type=click.Choice(["auto", "on", "off"]),
            default="auto",
            show_default=True,
            help="FCN-score (section 4.1): auto turns it on when inputs are label maps.",
        ),
        click.option(
            "--palette",
            help='Label colours as JSON, e.g. "[[0,0,255],[255,0,0]]" (default: found from data).',
        ),
        click.option(
            "--segmenter",
            default="fcn_small",
            show_default=True,
            help="Registered segmenter for the FCN-score (see `p2pkit list segmenters`).",
        ),
        click.option(
            "--segmenter-steps",
            default=3000,
            show_default=True,
            type=click.IntRange(1),
            help="Training steps for the FCN-score segmenter when it is not cached yet.",
        ),
        click.option(
            "--segmenter-crop",
            type=click.IntRange(0),
            help="Side of the random crops the segmenter trains on (default: half the run's "
            "crop size, 64 px for 128 px runs; 0: whole images).",
        ),
        click.option(
            "--metrics",
            default="l1,psnr,ssim,sharpness",
            show_default=True,
            metavar="NAME,...",
            help="Per-image metrics to score, comma-separated names of the metrics registry "
            "(`p2pkit list metrics`), a plugin's included.",
        ),
        click.option(
            "--realism",
            type=click.Choice(["unconditional", "conditional", "both", "off"]),
            default="unconditional",
            show_default=True,
            help="Real-vs-generated test (Table 4 without people): the judge sees the outputs "
            "alone (unconditional), (input, output) pairs (conditional), both, or nothing.",
        ),
        click.option(
            "--judge",
            default="c2st",
            show_default=True,
            help="Registered judge for --realism (see `p2pkit list judges`).",
        ),
        click.option(
            "--judge-option",
            "judge_options",
            multiple=True,
            metavar="KEY=VALUE",
            help="An option of the judge, e.g. steps=300, crop_size=64, folds=5, seed=1 "
            "(repeatable).",
        ),
        click.option(
            "--fid-weights",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Compute FID and KID with this torchvision Inception-v3 state dict, already "
            "on disk (nothing is downloaded; scores compare only across the same file).",
        ),
        click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1)),
        click.option(
            "--max-images", default=0, show_default=True, help="Score at most N (0: all)."
        ),
        click.option("--device", default="auto", show_default=True),
        click.option("--no-progress", is_flag=True, help="No live progress display."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _metric_names(text: str) -> tuple[str, ...]:
    """``--metrics`` as registered metric names; an unknown one is a one-line error."""
    from p2pkit.errors import ConfigError
    from p2pkit.registry import get_registry

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ConfigError("--metrics: name at least one metric, e.g. l1,psnr,ssim")
    known = get_registry("metrics").names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"--metrics: unknown metric {unknown[0]!r}; registered: {', '.join(sorted(known))} "
            "(a plugin's metric appears once its package is installed)"
        )
    return names


def _judge_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--judge-option KEY=VALUE`` as keywords; a value is read as a TOML literal (a number,
    ``true``/``false``, a quoted string), else kept as text."""
    import tomllib

    from p2pkit.errors import ConfigError

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"--judge-option {pair!r}: write KEY=VALUE, e.g. steps=300")
        try:
            value: Any = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        options[key.strip()] = value
    return options


def _settings(**kw: Any) -> Any:
    from p2pkit.errors import ConfigError
    from p2pkit.evaluation.evaluate import EvaluationSettings

    palette = None
    if kw["palette"]:
        try:
            palette = json.loads(kw["palette"])
        except json.JSONDecodeError:
            raise ConfigError("--palette must be JSON, e.g. [[0,0,255],[255,0,0]]") from None
    return EvaluationSettings(
        metrics=_metric_names(kw["metrics"]),
        split=kw["split"],
        protocol="paper" if kw["paper_protocol"] else "eval",
        weights=kw["weights"],
        samples=kw["samples"],
        batch_size=kw["batch_size"],
        fcn=kw["fcn"],
        palette=palette,
        segmenter=kw["segmenter"],
        segmenter_steps=kw["segmenter_steps"],
        segmenter_crop=kw["segmenter_crop"],
        max_images=kw["max_images"],
        device=kw["device"],
        fid_weights=None if kw["fid_weights"] is None else str(kw["fid_weights"]),
        realism=kw["realism"],
        judge=kw["judge"],
        judge_options=_judge_options(kw["judge_options"]),
    )


def _print_summary(result: dict[str, Any]) -> None:
    from rich.table import Table

    from p2pkit.evaluation.evaluate import summary_table

    table = Table("metric", "value", title=f"{result['split']}: {result['images']} images")
    for name, value in summary_table(result).items():
        table.add_row(name, "n/a" if value is None else f"{value:.4f}")
    console().print(table)


@click.command(
    "evaluate",
    epilog=("Example: p2pkit evaluate runs/facades --data ../shared/datasets/facades --split val"),
)
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Dataset folder (default: the recipe's data.root).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: RUN/eval-SPLIT). Files there that p2pkit did not write are "
    "never replaced: the command stops before any work instead.",
)
@evaluation_options
def evaluate_command(checkpoint: Path, data: Path | None, out: Path | None, **kw: Any) -> None:
    """Translate a split with CHECKPOINT and score it: L1, PSNR, SSIM, sharpness, Lab colour
    histograms, realism (a real-vs-generated classifier) and, for labels -> photo tasks, the
    FCN-score. Writes metrics.json and an HTML page (index.html) next to it."""
    from p2pkit.evaluation.evaluate import evaluate_checkpoint

    progress = not kw.pop("no_progress")
    result = evaluate_checkpoint(
        checkpoint, data, out, _settings(**kw), progress=progress, console=error_console()
    )
    _print_summary(result)
    run_dir = Path(result["checkpoint"]).parent.parent
    folder = Path(out) if out else run_dir / f"eval-{result['split']}"
    click.echo(f"metrics: {folder / 'metrics.json'}  page: {folder / 'index.html'}")


@click.command("report", epilog="Example: p2pkit report runs/facades")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report_command(run_dir: Path) -> None:
    """Write the self-contained HTML page(s) of RUN_DIR (open index.html from disk)."""
    from p2pkit.evaluation.evaluate import report_run

    for page in report_run(run_dir):
        click.echo(str(page))


@click.command(
    "sweep",
    epilog=(
        "Example (Table 1 of the paper, reduced):\n\n"
        "  p2pkit sweep facades --data-root ../shared/datasets/facades "
        "--vary objective.name=l1,gan,cgan,l1_gan,l1_cgan --set generator.name=unet_128 "
        "--set data.crop_size=128 --set data.load_size=142 --out runs/table1"
    ),
)
@click.argument("recipe")
@click.option(
    "--vary",
    "varies",
    multiple=True,
    required=True,
    metavar="KEY=V1,V2,...",
    help="A recipe key and its values; several --vary make a grid.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Fixed overrides.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/sweep"),
    show_default=True,
    help="Folder for the variants' runs and the comparison table. Other files may be there: "
    "the sweep checks first that it replaces none of them.",
)
@click.option(
    "--table",
    default="comparison",
    show_default=True,
    help="Base name of the comparison files (OUT/TABLE.md and .json).",
)
@evaluation_options
def sweep_command(
    recipe: str,
    varies: tuple[str, ...],
    overrides: tuple[str, ...],
    data_root: Path | None,
    out: Path,
    table: str,
    **kw: Any,
) -> None:
    """Train RECIPE once per variant, evaluate each, and write one comparison table."""
    from p2pkit.evaluation.sweep import run_sweep

    progress = not kw.pop("no_progress")
    comparison = run_sweep(
        recipe,
        list(varies),
        overrides=overrides,
        data_root=data_root,
        out=out,
        table=table,
        settings=_settings(**kw),
        progress=progress,
        console=error_console(),
    )
    click.echo((out / f"{table}.md").read_text())
    n = len(comparison["rows"])
    click.echo(f"{n} variant{'s' * (n != 1)}; table in {out / (table + '.md')}")
