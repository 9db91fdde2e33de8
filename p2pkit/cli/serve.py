"""``p2pkit serve RUN [RUN ...]``: the web page and HTTP API of [`p2pkit.serve`][p2pkit.serve]."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from p2pkit.cli.common import precision_option, weights_option


class PixelCount(click.ParamType):
    """``WIDTHxHEIGHT`` (``2048x2048``) or a plain number of pixels (``4000000``)."""

    name = "WxH"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        match = re.fullmatch(r"(\d+)\s*[x*]\s*(\d+)|(\d+)", text)
        if match is None:
            self.fail(f"{value!r} is not WIDTHxHEIGHT (2048x2048) or a pixel count", param, ctx)
        pixels = int(match[3]) if match[3] else int(match[1]) * int(match[2])
        if pixels < 1:
            self.fail(f"{value!r} allows no pixels; give at least 1x1", param, ctx)
        return pixels


@click.command(
    "serve",
    epilog=(
        "Examples:\n\n"
        "  p2pkit serve runs/facades\n\n"
        "  p2pkit serve runs/facades runs/edges2shoes --port 8080 --tile 512\n\n"
        "  curl --data-binary @labels.png http://127.0.0.1:7860/api/translate/facades -o out.png"
    ),
)
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. The default keeps the server to this machine; 0.0.0.0 opens it "
    "to the network, without any password.",
)
@click.option(
    "--port",
    default=7860,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0: any free port).",
)
@click.option(
    "--max-size",
    default="2048x2048",
    show_default=True,
    type=PixelCount(),
    metavar="WxH",
    help="Largest image translated, as WIDTHxHEIGHT or a pixel count: any shape with no more "
    "pixels is accepted; a larger one gets a message instead of using up the memory.",
)
@click.option(
    "--max-file-size",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Largest upload, in megabytes.",
)
@click.option(
    "--resize",
    type=click.IntRange(1),
    help="Resize inputs to SIZE x SIZE first, as translate --resize (default: native size).",
)
@click.option(
    "--tile",
    type=click.IntRange(1),
    help="Translate in TILE x TILE windows, as translate --tile, to bound memory.",
)
@click.option("--overlap", default=32, show_default=True, help="Overlap between tiles, in pixels.")
@weights_option()
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, mps or auto.")
@precision_option()
def serve_command(
    runs: tuple[Path, ...],
    host: str,
    port: int,
    max_size: int,
    max_file_size: float,
    resize: int | None,
    tile: int | None,
    overlap: int,
    weights: str,
    device: str,
    precision: str,
) -> None:
    """Open a local web page that translates uploaded or drawn images with each RUN.

    Each RUN (a run folder or a checkpoint folder) becomes a tab: upload an image or draw one,
    press Translate, and the output appears beside the input, exactly as p2pkit translate
    would write it. Programs post an image to /api/translate/NAME and get a PNG back. Needs
    the serve extra: pip install "p2pkit[serve]".
    """
    from p2pkit.serve import Limits, require_gradio, serve, served_runs

    require_gradio()  # before loading the runs: the missing extra is the first thing to say
    limits = Limits(max_pixels=max_size, max_bytes=int(max_file_size * 1_000_000))
    served = served_runs(
        list(runs),
        device=device,
        weights=weights,
        precision=precision,
        limits=limits,
        resize=resize,
        tile=tile,
        overlap=overlap,
    )
    serve(served, host, port, announce=lambda line: click.echo(line, err=True))
