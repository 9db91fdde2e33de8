"""``p2pkit translate CHECKPOINT INPUT... --out DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from p2pkit.cli.common import error_console, precision_option, weights_option


class _BatchSize(click.ParamType):
    """A positive number of images, or ``auto`` (None)."""

    name = "N|auto"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        if value is None or value == "auto":
            return None
        try:
            number = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            number = 0
        if number < 1:
            self.fail(f"{value!r} is not a number of images (1 or more) or auto", param, ctx)
        return number


BATCH_SIZE = _BatchSize()

if TYPE_CHECKING:
    from p2pkit.data.preflight import Problem


@click.command(
    "translate",
    epilog=(
        "Examples:\n\n"
        "  p2pkit translate runs/synth-facades photos/ --layout single --out translated/\n\n"
        "  p2pkit translate runs/facades ../shared/datasets/facades/val --out val_out/ "
        "--batch-size 8"
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
    metavar="NAME",
    default="single",
    show_default=True,
    help="The dataset layout that reads each input file. single: the file is one input "
    "image. aligned: an A|B file; the checkpoint's direction picks the input half and the "
    "other half is the target. paired: a file of an A/ or B/ folder, read with its "
    "same-named partner of the other folder. Any registered layout that can read single "
    "files works, a plugin's included.",
)
@click.option(
    "--batch-size",
    default="auto",
    show_default=True,
    type=BATCH_SIZE,
    help="Images per batch, or auto: consecutive images of one size are batched up to 8, and "
    "fewer when they are large (at most eight 256 x 256 images' pixels). On a CPU two batches "
    "run at once, each with half the threads, and auto takes half as many images. Batching "
    "changes outputs only by float rounding.",
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
    "--engine",
    type=click.Choice(["torch", "onnxruntime"]),
    default="torch",
    show_default=True,
    help="torch: the checkpoint's network as trained, in eval mode. "
    'onnxruntime: the file written by p2pkit export (needs pip install "p2pkit[onnx]"); '
    "same outputs to float rounding, eval mode only.",
)
@precision_option()
@click.option(
    "--onnx",
    "onnx_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The ONNX file for --engine onnxruntime. Default: generator.onnx in the run folder, "
    "where p2pkit export writes it, if it was exported from the checkpoint and weights used.",
)
@click.option(
    "--save-triplets",
    is_flag=True,
    help="Also save input | output | target strips (the target when the layout stores one, "
    "as aligned and paired do), in OUT/triplets under the output's name.",
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
    batch_size: int | None,
    resize: int | None,
    tile: int | None,
    overlap: int,
    paper_protocol: bool,
    weights: str,
    device: str,
    engine: str,
    precision: str,
    onnx_file: Path | None,
    save_triplets: bool,
    skip_bad: bool,
) -> None:
    """Translate INPUT images (files or folders) with the generator in CHECKPOINT.

    CHECKPOINT is a run folder (its latest checkpoint) or a checkpoint folder. The
    network, its options and the task are read from the checkpoint itself. Any image
    size works: inputs are padded to the network's multiple, translated fully
    convolutionally and cropped back. Each file is read by a dataset layout: single
    (each file is one input image) unless --layout names another, such as aligned for
    A|B files or a plugin's layout. Every input is read and checked before the first
    output is written.

    With --engine onnxruntime the generator is the ONNX file of p2pkit export; the
    checkpoint still gives the task, the direction and the channels.
    """
    from rich.progress import Progress

    from p2pkit.data.images import write_image
    from p2pkit.engine.grids import save_grid
    from p2pkit.errors import ConfigError
    from p2pkit.inference import (
        WriteBehind,
        check_inputs,
        expand_inputs,
        load_trained,
        plan_outputs,
        translate_files,
    )

    if engine == "onnxruntime" and paper_protocol:
        raise ConfigError(
            "--paper-protocol cannot run with --engine onnxruntime: the paper's test-time "
            "protocol keeps dropout on and normalises with each test batch's statistics, which "
            "an exported eval-mode graph does not have; use --engine torch"
        )
    if precision != "fp32" and paper_protocol:
        raise ConfigError(
            f"--precision {precision} cannot run with --paper-protocol: it folds BatchNorm "
            "into the convolutions, and the paper's protocol normalises with each test batch's "
            "statistics; use --precision fp32"
        )
    if precision != "fp32" and engine == "onnxruntime":
        raise ConfigError(
            f"--precision {precision} is for --engine torch: the exported ONNX file is fp32; "
            "drop one of the two"
        )
    if onnx_file is not None and engine != "onnxruntime":
        raise ConfigError(f"--onnx {onnx_file} is used only with --engine onnxruntime; add it")
    if engine == "onnxruntime":
        from p2pkit.inference.onnx import require_onnx

        require_onnx("--engine onnxruntime", runtime_only=True)
    # The command's first argument is checked first: a wrong checkpoint or --weights is
    # named before anything about the inputs. BatchNorm is not folded for the torch engine:
    # measured on a 2-core CPU (docs/performance.md) it saved no time per image and cost 0.4 s
    # of start-up; export folds it, where the graph is fixed anyway. The ONNX engine needs
    # only the checkpoint's description: its weights are in the exported file.
    model = load_trained(
        checkpoint, device, weights, network=engine == "torch", precision=precision
    )
    if engine == "onnxruntime":
        from p2pkit.inference.onnx import with_onnx_engine

        model = with_onnx_engine(model, onnx_file)
    files = expand_inputs(list(inputs))
    plan = dict(zip(files, plan_outputs(files, out, triplets=save_triplets), strict=True))
    with Progress(console=error_console(), transient=True) as progress:
        bar = progress.add_task("checking", total=len(files))
        problems = check_inputs(model, files, layout, advance=lambda: progress.advance(bar))
    if problems:
        _report_bad_inputs(problems, len(files), skip_bad, layout)
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
        # PNG encoding runs behind the network: writing one batch overlaps the next.
        with WriteBehind() as writer:
            for path, x_rgb, y_rgb, target in results:
                output, strip = plan[path]
                writer.submit(write_image, output, y_rgb)
                if strip is not None:
                    row = [x_rgb, y_rgb] + ([target] if target is not None else [])
                    writer.submit(save_grid, [row], strip)
                progress.advance(bar)
    skipped = f" ({len(problems)} skipped)" if problems else ""
    click.echo(f"translated {len(files)} image(s) into {out}{skipped}")


def _report_bad_inputs(problems: list[Problem], total: int, skip_bad: bool, layout: str) -> None:
    """Raise one error listing every unusable input, or with ``skip_bad`` warn once."""
    from p2pkit.data.preflight import listing
    from p2pkit.errors import DataError

    shown = listing([p.line() for p in problems])
    if layout != "single":
        # The files may not be stored the way the layout reads them: say how they were read.
        shown += (
            f"\n(each file was read as the {layout} layout stores a row; "
            "--layout single reads it as one image)"
        )
    if not skip_bad:
        raise DataError(
            f"{len(problems)} of {total} input(s) cannot be used, so nothing was written (fix "
            f"them, or pass --skip-bad to translate the rest):\n{shown}"
        )
    if len(problems) == total:
        raise DataError(f"none of the {total} input(s) can be used; fix them:\n{shown}")
    click.echo(
        f"warning: skipping {len(problems)} of {total} input(s) that cannot be used:\n{shown}",
        err=True,
    )
