"""``p2pkit export RUN --format onnx``."""

from __future__ import annotations

from pathlib import Path

import click

from p2pkit.cli.common import weights_option


@click.command(
    "export",
    epilog=(
        "Examples:\n\n"
        "  p2pkit export runs/facades --format onnx\n\n"
        "  p2pkit export runs/facades --format onnx --out facades.onnx --weights raw\n\n"
        "  p2pkit translate runs/facades photos/ --out translated/ --engine onnxruntime"
    ),
)
@click.argument("run", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx"]),
    required=True,
    help='The file format; onnx needs pip install "p2pkit[onnx]".',
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write. Default: generator.onnx in the run folder, where translate "
    "--engine onnxruntime looks for it. An existing file is replaced only once the new one "
    "has passed the check.",
)
@weights_option()
@click.option(
    "--opset",
    type=click.IntRange(7),
    help="ONNX opset of the graph. Default: the exporter's (20 with torch 2.14).",
)
def export_command(run: Path, fmt: str, out: Path | None, weights: str, opset: int | None) -> None:
    """Export the generator of RUN (a run or checkpoint folder) for use outside p2pkit.

    The generator is exported in eval mode, BatchNorm folded into its convolutions and dropout
    removed, with a free batch size, height and width (multiples of the network's size
    multiple; pad other sizes as translate does). The file records the p2pkit version, recipe,
    task, direction, channels, value range [-1, 1] and size multiple in its metadata. Before it
    is kept, onnxruntime runs it on random inputs of two sizes and its output must match
    p2pkit's eval-mode output within 1e-4.
    """
    from p2pkit.inference import load_trained
    from p2pkit.inference.onnx import export_onnx, require_onnx

    if fmt == "onnx":
        require_onnx()
    model = load_trained(run, "cpu", weights)
    result = export_onnx(model, out, opset=opset)
    checks = ", ".join(f"{'x'.join(map(str, shape))} ({diff:.1e})" for shape, diff in result.checks)
    click.echo(
        f"exported {model.checkpoint} ({model.weights} weights) to {result.path}: opset "
        f"{result.opset}, input {result.metadata['in_channels']} x H x W, H and W multiples of "
        f"{result.metadata['size_multiple']}; checked with onnxruntime on {checks} "
        "(max abs difference)"
    )
