"""``p2pkit translate CHECKPOINT INPUT... --out DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from p2pkit.cli.common import error_console, weights_option

if TYPE_CHECKING:
    from p2pkit.data.preflight import Problem


@click.command(
    "translate",
    epilog=(
        "Examples:\n\n"
        "  p2pkit translate runs/synth-facades photos/ --out translated/\n\n"
        "  p2pkit translate runs/facades ../shared/datasets/facades/val --layout aligned "
        "--out val_out/ --batch-size 8"
    ),
)
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the translated images, as PNG: DIR/NAME.EXT is saved as OUT/NAME.png. "
    "Inputs of one folder that would share a name keep their extension (a.jpg and a.png give "
    "a.jpg.png and a.png.png); same-named files of different folders go into sub-folders named "
    "after their folders (train/1.png, val/1.png). A folder where a translation would replace "
    "an input is refused.",
)
@click.option(
    "--layout",
    type=click.Choice(["single", "aligned"]),
    default="single",
    show_default=True,
    help="single: each file is an input. aligned: each file is an A|B pair and the "
    "checkpoint's direction picks the input half; the other half is saved as the target.",
)
@click.option(
    "--batch-size", default=1, show_default=True, type=click.IntRange(1), help="Images per batch."
)
@click.option(
    "--resize",
    type=click.IntRange(1),
    help="Resize inputs to SIZE x SIZE first (the training scale; default: native size).",
)
@click.option(
    "--tile",
    type=click.IntRange(1),
    help="Translate in TILE x TILE windows (a multiple of the network's size) to bound memory.",
)
@click.option("--overlap", default=32, show_default=True, help="Overlap between tiles, in pixels.")
@click.option(
    "--paper-protocol",
    is_flag=True,
    help="Run as the paper does at test time (section 3.3): dropout stays on and BatchNorm "
    "uses the statistics of the test batch, so outputs vary slightly from run to run. "
    "Default: the usual eval mode (no dropout, running statistics), which is deterministic.",
)
@weights_option()
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, mps or auto.")
@click.option(
    "--save-triplets",
    is_flag=True,
    help="Also save input | output | target strips (target only with --layout aligned), in "
    "OUT/triplets under the output's name.",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Warn about inputs that cannot be read or used and translate the rest. Default: list "
    "them all and stop before writing anything.",
)
def translate_command(
    checkpoint: Path,
    inputs: tuple[Path, ...],
    out: Path,
    layout: str,
    batch_size: int,
    resize: int | None,
    tile: int | None,
    overlap: int,
    paper_protocol: bool,
    weights: str,
    device: str,
    save_triplets: bool,
    skip_bad: bool,
) -> None:
    """Translate INPUT images (files or folders) with the generator in CHECKPOINT.

    CHECKPOINT is a run folder (its latest checkpoint) or a checkpoint folder. The
    network, its options and the task are read from the checkpoint itself. Any image
    size works: inputs are padded to the network's multiple, translated fully
    convolutionally and cropped back. Every input is read and checked before the
    first output is written.
    """
    from rich.progress import Progress

    from p2pkit.data.images import write_image
    from p2pkit.engine.grids import save_grid
    from p2pkit.inference import (
        check_inputs,
        expand_inputs,
        load_trained,
        plan_outputs,
        translate_files,
    )

    # The command's first argument is checked first: a wrong checkpoint or --weights is
    # named before anything about the inputs.
    model = load_trained(checkpoint, device, weights)
    files = expand_inputs(list(inputs))
    plan = dict(zip(files, plan_outputs(files, out, triplets=save_triplets), strict=True))
    with Progress(console=error_console(), transient=True) as progress:
        bar = progress.add_task("checking", total=len(files))
        problems = check_inputs(model, files, layout, advance=lambda: progress.advance(bar))
    if problems:
        _report_bad_inputs(problems, len(files), skip_bad)
        bad = {problem.path for problem in problems}
        files = [path for path in files if path not in bad]
    out.mkdir(parents=True, exist_ok=True)
    protocol = "paper" if paper_protocol else "eval"
    with Progress(console=error_console(), transient=True) as progress:
        bar = progress.add_task("translating", total=len(files))
        results = translate_files(
            model,
            files,
            layout=layout,
            resize=resize,
            batch_size=batch_size,
            tile=tile,
            overlap=overlap,
            protocol=protocol,
        )
        for path, x_rgb, y_rgb, target in results:
            output, strip = plan[path]
            write_image(output, y_rgb)
            if strip is not None:
                row = [x_rgb, y_rgb] + ([target] if target is not None else [])
                save_grid([row], strip)
            progress.advance(bar)
    skipped = f" ({len(problems)} skipped)" if problems else ""
    click.echo(f"translated {len(files)} image(s) into {out}{skipped}")


def _report_bad_inputs(problems: list[Problem], total: int, skip_bad: bool) -> None:
    """Raise one error listing every unusable input, or with ``skip_bad`` warn once."""
    from p2pkit.data.preflight import listing
    from p2pkit.errors import DataError

    lines = [p.line() for p in problems]
    if not skip_bad:
        raise DataError(
            f"{len(problems)} of {total} input(s) cannot be used, so nothing was written (fix "
            f"them, or pass --skip-bad to translate the rest):\n{listing(lines)}"
        )
    if len(problems) == total:
        raise DataError(f"none of the {total} input(s) can be used; fix them:\n{listing(lines)}")
    click.echo(
        f"warning: skipping {len(problems)} of {total} input(s) that cannot be used:\n"
        + listing(lines),
        err=True,
    )
