"""``p2pkit serve``: a local web page and an HTTP API that translate images with trained runs.

The page is a [Gradio](https://www.gradio.app) app (the optional extra ``p2pkit[serve]``): each
run is a tab where one uploads an image, or draws one on a canvas, presses *Translate* and sees
the output beside the input. Programs use the same translation through a plain HTTP route,
``POST /api/translate/NAME`` (the image file as the request body, a PNG back), or through
Gradio's own API.

Every image goes through the steps of ``p2pkit translate``
([`translate_files`][p2pkit.inference.translate_files]: padding to the network's size multiple,
optional tiling), so the page and the API give the same pixels as the command on the same file.
[`Translator`][p2pkit.serve.Translator] checks each file first: one over the size limits
([`Limits`][p2pkit.serve.Limits]) or one that is not a usable image is refused with a one-line
message, before anything is decoded.

The canvas of a run ([`canvas_for`][p2pkit.serve.canvas_for]) follows its training data: label
maps (the facades recipes) get a brush palette of the label colours, edge maps (the ``edges2*``
recipes) black strokes on white, anything else a free brush.

Nothing leaves the machine: the server binds 127.0.0.1 unless told otherwise, makes no share
link, sends no analytics, and the page uses system fonts, so it requests nothing from the
internet.

Why this module is long: the demo's limits, canvas rules, translator, HTTP API and page are
one small application, and most of it is the Gradio wiring that only makes sense read
together; the translation itself is `p2pkit.inference`'s, unchanged.
"""

from __future__ import annotations

import html
import io
import os
import re
import socket
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from p2pkit.errors import DataError, P2PKitError
from p2pkit.inference.model import TrainedModel

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "FACADES_LABELS",
    "Canvas",
    "Limits",
    "ServedRun",
    "TooLarge",
    "Translator",
    "build_app",
    "canvas_for",
    "encode_png",
    "open_socket",
    "require_gradio",
    "serve",
    "served_runs",
    "url_of",
]

DEFAULT_MAX_PIXELS = 2048 * 2048
"""Largest image translated by default: 2048 x 2048 pixels (4.2 megapixels), any shape."""

DEFAULT_MAX_BYTES = 20 * 1_000_000
"""Largest file accepted by default: 20 MB."""

SERVE_EXTRA = 'the web app needs Gradio; install it with: pip install "p2pkit[serve]"'

FACADES_LABELS: tuple[tuple[str, str], ...] = (
    ("background", "#0000de"),
    ("facade", "#0030ff"),
    ("window", "#0080ff"),
    ("door", "#00cfff"),
    ("cornice", "#20ffe0"),
    ("sill", "#70ff8e"),
    ("balcony", "#c0ff3f"),
    ("blind", "#fff000"),
    ("deco", "#ff9f00"),
    ("molding", "#ff5000"),
    ("pillar", "#ff0000"),
    ("shop", "#ae0000"),
)
"""The 12 classes of the CMP facades label maps, as the pix2pix authors distribute them.

Each colour is the most frequent exact colour of its class in the 606 label maps of the set
(found with [`find_palette`][p2pkit.evaluation.palette.find_palette]), in the order of the
colour ramp, which is the order of the CMP class ids.
"""

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def require_gradio() -> Any:
    """Import Gradio with its analytics off, or raise the one-line install hint.

    Returns:
        The ``gradio`` module.

    Raises:
        P2PKitError: Gradio is not installed.
    """
    # Read by Gradio when it starts and when a Blocks is made: no usage reports, no version
    # check against gradio.app.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio
    except ImportError:
        raise P2PKitError(SERVE_EXTRA) from None
    return gradio


# ----------------------------------------------------------------------------- limits


class TooLarge(DataError):
    """An upload is over the server's size limits (HTTP status 413)."""


@dataclass(frozen=True)
class Limits:
    """What the server agrees to translate.

    Attributes:
        max_pixels: largest width x height; any shape with no more pixels is accepted.
        max_bytes: largest file, in bytes.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES

    def describe(self) -> str:
        """The limits in words, for the page: ``"up to 4.2 megapixels and 20 MB"``."""
        return f"up to {_pixels(self.max_pixels)} and {_megabytes(self.max_bytes)}"


def _pixels(count: int) -> str:
    return f"{count / 1e6:.1f} megapixels" if count >= 100_000 else f"{count} pixels"


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.3g} MB"


# ----------------------------------------------------------------------------- the canvas


@dataclass(frozen=True)
class Canvas:
    """How the drawing canvas of a run looks.

    Attributes:
        kind: ``labels`` (a fixed palette of label colours), ``edges`` (black on white) or
            ``free`` (any colour).
        colors: ``(name, "#rrggbb")`` of each brush colour, in palette order; empty for
            ``free``.
        background: the colour the canvas starts filled with, ``"#rrggbb"``.
        size: the canvas's side in pixels.
    """

    kind: Literal["labels", "edges", "free"]
    colors: tuple[tuple[str, str], ...]
    background: str
    size: int


def _synth_labels() -> tuple[tuple[str, str], ...]:
    from p2pkit.data.synth import FACADE_CLASSES, FACADE_PALETTE

    return tuple(
        (name, "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb)))
        for name, rgb in zip(FACADE_CLASSES, FACADE_PALETTE, strict=True)
    )


def canvas_for(model: TrainedModel) -> Canvas:
    """The canvas that suits what ``model`` was trained to translate.

    The rule reads the recipe's ``data.source`` and ``data.direction``: the label side of
    ``facades`` (CMP facades, [`FACADES_LABELS`][p2pkit.serve.FACADES_LABELS]) and ``synth``
    (the generated facades, [`FACADE_PALETTE`][p2pkit.data.synth.FACADE_PALETTE]) gets those
    label colours, starting from the background class; the edge side of an ``edges2*`` set
    black strokes on white; anything else a free brush on white. The side is the network's
    training crop, at least 256 pixels.
    """
    data = model.data
    size = max(int(model.crop_size), 256)
    source = data.source.strip().lower()
    labels_in = data.direction == "BtoA"  # facades and synth files are photo | labels
    if source in ("facades", "synth") and labels_in:
        colors = FACADES_LABELS if source == "facades" else _synth_labels()
        return Canvas("labels", colors, colors[0][1], size)
    if source.startswith("edges2") and data.direction == "AtoB":  # files are edges | photo
        return Canvas("edges", (("edge", "#000000"),), "#ffffff", size)
    return Canvas("free", (), "#ffffff", size)


# ----------------------------------------------------------------------------- translating


class Translator:
    """Translates one image file with one run exactly as ``p2pkit translate`` does.

    Args:
        model: the run, from [`load_trained`][p2pkit.inference.load_trained].
        limits: the size limits checked before decoding.
        resize: resize inputs to ``resize x resize`` first (``translate --resize``).
        tile: translate in ``tile x tile`` windows (``translate --tile``).
        overlap: overlap of the windows, in pixels.
        lock: held while the network runs; share one between translators so that one image
            at a time is in memory.
    """

    def __init__(
        self,
        model: TrainedModel,
        *,
        limits: Limits | None = None,
        resize: int | None = None,
        tile: int | None = None,
        overlap: int = 32,
        lock: threading.Lock | None = None,
    ) -> None:
        self.model = model
        self.limits = limits or Limits()
        self.resize = resize
        self.tile = tile
        self.overlap = overlap
        self.lock = lock or threading.Lock()

    def check(self, path: Path, label: str) -> tuple[int, int]:
        """Check a file against the limits from its size and header, without decoding it.

        Args:
            path: the file.
            label: how messages name it (the uploaded file's name).

        Returns:
            ``(width, height)``.

        Raises:
            TooLarge: the file or the image is over the limits.
            DataError: the file is not an image.
        """
        from PIL import Image

        size = path.stat().st_size
        if size > self.limits.max_bytes:
            raise TooLarge(
                f"{label} is {_megabytes(size)}; this server accepts files up to "
                f"{_megabytes(self.limits.max_bytes)} (p2pkit serve --max-file-size)"
            )
        if size == 0:
            raise DataError(f"{label} is empty; choose an image file (PNG, JPEG, ...)")
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Image.DecompressionBombError:
            raise TooLarge(f"{label} is too large to decode safely; downscale it") from None
        except (OSError, ValueError, SyntaxError):
            raise DataError(
                f"{label} is not an image file p2pkit can read; choose a PNG, JPEG, BMP, TIFF "
                "or WebP image"
            ) from None
        if width * height > self.limits.max_pixels:
            raise TooLarge(
                f"{label} is {width} x {height} pixels ({_pixels(width * height)}); this server "
                f"translates images of up to {_pixels(self.limits.max_pixels)}: downscale it "
                "(or start the server with a larger --max-size)"
            )
        return width, height

    def translate_file(self, path: str | Path, label: str | None = None) -> np.ndarray:
        """Translate one image file.

        Args:
            path: the file (any format ``p2pkit translate`` reads).
            label: how messages name the file (default: its name).

        Returns:
            The output image as ``uint8`` ``(H, W, 3)``: the pixels ``p2pkit translate``
            writes for the same file.

        Raises:
            TooLarge: the file or the image is over the limits.
            DataError: the file is not a usable image (the message says why).
        """
        import torch

        from p2pkit.data.images import to_uint8
        from p2pkit.inference import translate_files

        path = Path(path)
        label = label or path.name
        width, height = self.check(path, label)
        try:
            with self.lock:
                results = translate_files(
                    self.model,
                    [path],
                    layout="single",  # an upload is the input image itself, never a pair
                    resize=self.resize,
                    tile=self.tile,
                    overlap=self.overlap,
                )
                _, _, output, _ = next(iter(results))
        except DataError as exc:  # "PATH: why"; name the upload instead of the temporary file
            raise DataError(f"{label} {str(exc).removeprefix(f'{path}: ')}") from None
        except torch.OutOfMemoryError:
            raise TooLarge(
                f"{label} ({width} x {height}) does not fit in memory; downscale it, or start "
                "the server with --tile 512 or a smaller --max-size"
            ) from None
        return to_uint8(output).permute(1, 2, 0).contiguous().numpy()

    def translate_bytes(self, data: bytes, label: str = "the image") -> bytes:
        """Translate an image file held in memory and encode the output as PNG.

        Args:
            data: the file's bytes.
            label: how messages name it.

        Returns:
            The PNG file of the output (8-bit RGB).
        """
        if len(data) > self.limits.max_bytes:
            raise TooLarge(
                f"{label} is {_megabytes(len(data))}; this server accepts files up to "
                f"{_megabytes(self.limits.max_bytes)} (p2pkit serve --max-file-size)"
            )
        with tempfile.TemporaryDirectory(prefix="p2pkit-serve-") as folder:
            path = Path(folder) / "upload"
            path.write_bytes(data)
            return encode_png(self.translate_file(path, label))


def encode_png(pixels: np.ndarray) -> bytes:
    """``uint8`` ``(H, W, 3)`` pixels -> the bytes of a PNG file."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- runs


@dataclass
class ServedRun:
    """One run as the server shows it.

    Attributes:
        name: the tab's title and the ``NAME`` in ``/api/translate/NAME``.
        translator: translates its images.
        canvas: how its drawing canvas looks.
        source: the folder named on the command line.
    """

    name: str
    translator: Translator
    canvas: Canvas
    source: Path = field(default_factory=Path)

    @property
    def model(self) -> TrainedModel:
        return self.translator.model

    def summary(self) -> str:
        """One line about the run for its tab: recipe, network, task, direction, weights."""
        recipe = self.model.meta.get("recipe") or {}
        name = recipe.get("name", "?") if isinstance(recipe, dict) else "?"
        generator = self.model.meta.get("networks", {}).get("generator", {}).get("name", "?")
        return (
            f"recipe {name}; generator {generator}; task {self.model.task.name}; "
            f"direction {self.model.direction}; {self.model.weights} weights; "
            f"checkpoint {self.model.checkpoint}"
        )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "run"


def served_runs(
    folders: Sequence[str | Path],
    *,
    device: str = "auto",
    weights: str = "auto",
    precision: str = "fp32",
    limits: Limits | None = None,
    resize: int | None = None,
    tile: int | None = None,
    overlap: int = 32,
) -> list[ServedRun]:
    """Load each run (or checkpoint folder) and name it after its folder, uniquely.

    Args:
        folders: run folders or checkpoint folders, as for ``p2pkit translate``.
        device: where the networks run.
        weights: ``auto``, ``ema`` or ``raw`` (see [`load_trained`][p2pkit.inference.load_trained]).
        precision: ``fp32``, ``bf16`` or ``fp16``, as ``translate --precision``.
        limits: the size limits of every run.
        resize: as ``translate --resize``.
        tile: as ``translate --tile``.
        overlap: as ``translate --overlap``.

    Returns:
        One [`ServedRun`][p2pkit.serve.ServedRun] per folder; a name taken twice gets ``-2``,
        ``-3``... appended.
    """
    from p2pkit.inference import load_trained

    lock = threading.Lock()
    runs: list[ServedRun] = []
    taken: set[str] = set()
    for folder in folders:
        path = Path(folder)
        model = load_trained(path, device, weights, precision=precision)
        base = _slug(path.resolve().name)
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        translator = Translator(
            model, limits=limits, resize=resize, tile=tile, overlap=overlap, lock=lock
        )
        runs.append(ServedRun(name, translator, canvas_for(model), path))
    return runs


# ----------------------------------------------------------------------------- the app

_SYSTEM_FONTS = ("system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "sans-serif")
_SYSTEM_MONO = ("ui-monospace", "Menlo", "Consolas", "DejaVu Sans Mono", "monospace")


def _legend(canvas: Canvas) -> str:
    """HTML: a swatch and the name of each brush colour."""
    if canvas.kind == "free":
        return "<p>Draw with any colour on white.</p>"
    items = "".join(
        f'<span class="p2pkit-swatch"><i style="background:{hex_}"></i>{name}</span>'
        for name, hex_ in canvas.colors
    )
    what = "the label colours" if canvas.kind == "labels" else "black strokes on white"
    return f"<p>Draw with {what}:</p><p>{items}</p>"


_CSS = """
.p2pkit-swatch { display: inline-flex; align-items: center; gap: 4px; margin: 0 10px 4px 0; }
.p2pkit-swatch i { width: 14px; height: 14px; border: 1px solid #888; display: inline-block; }
"""


def _blank(canvas: Canvas) -> Any:
    from PIL import Image

    return Image.new("RGB", (canvas.size, canvas.size), canvas.background)


def _handlers(run: ServedRun, gr: Any) -> tuple[Any, Any]:
    """The page's two functions for ``run``: from an upload and from a drawing."""

    def translate(path: str | None, label: str) -> np.ndarray:
        if not path:
            raise gr.Error("Upload or draw an image first.", duration=None, print_exception=False)
        try:
            return run.translator.translate_file(Path(path), label)
        except P2PKitError as exc:  # the message is HTML in the page: the name is the user's
            raise gr.Error(html.escape(str(exc)), duration=None, print_exception=False) from None

    def from_upload(payload: dict[str, Any] | None) -> np.ndarray:
        # Not preprocessed: Gradio would open the file with Pillow first, and a bad file would
        # fail there with a message about the temporary file instead of ours.
        payload = payload or {}
        return translate(payload.get("path"), payload.get("orig_name") or "the image")

    def from_drawing(value: dict[str, Any] | None) -> np.ndarray:
        return translate((value or {}).get("composite"), "the drawing")

    return from_upload, from_drawing


def build_app(runs: Sequence[ServedRun]) -> tuple[Any, Any]:
    """The Gradio page and the FastAPI app that serves it with the HTTP routes.

    Routes besides the page (Gradio's own API is under ``/gradio_api/``):

    * ``GET /api/runs``: JSON ``{"runs": [{"name", "translate", "checkpoint", ...}]}``;
    * ``POST /api/translate/NAME``: the request body is an image file; the answer is the
      translation as ``image/png``, or status 400 (not a usable image), 404 (no such run) or
      413 (over the limits) with the one-line reason as plain text.

    Args:
        runs: the runs, one tab each, from [`served_runs`][p2pkit.serve.served_runs].

    Returns:
        ``(blocks, app)``: the ``gradio.Blocks`` page and the ``fastapi.FastAPI`` app (the page
        mounted at ``/``), ready for ``uvicorn``.
    """
    gr = require_gradio()
    import anyio
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse, Response

    if not runs:
        raise P2PKitError("no runs to serve; name at least one run folder")
    by_name = {run.name: run for run in runs}
    limits = runs[0].translator.limits
    with gr.Blocks(
        title="p2pkit serve", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as page:
        gr.Markdown(
            "# p2pkit\nUpload an image or draw one, press **Translate**, and the output appears "
            f"beside it. Images {limits.describe()}. Programs can post an image to "
            "`/api/translate/NAME` and get a PNG back."
        )
        with gr.Tabs():
            for run in runs:
                _run_tab(gr, run)
    app = FastAPI(title="p2pkit serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/runs")
    def list_runs() -> JSONResponse:
        rows = [
            {
                "name": run.name,
                "translate": f"/api/translate/{run.name}",
                "checkpoint": str(run.model.checkpoint),
                "task": run.model.task.name,
                "direction": run.model.direction,
            }
            for run in runs
        ]
        return JSONResponse({"runs": rows})

    async def translate(name: str, request: Request) -> Response:
        run = by_name.get(name)
        if run is None:
            known = ", ".join(by_name)
            return PlainTextResponse(f"no run named {name!r}; this server has {known}\n", 404)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_bytes:  # stop reading: never hold more than the limit
                message = (
                    f"the request body is over {_megabytes(limits.max_bytes)}, the largest file "
                    "this server accepts (p2pkit serve --max-file-size)"
                )
                return PlainTextResponse(message + "\n", 413)
        try:
            png = await anyio.to_thread.run_sync(
                run.translator.translate_bytes, bytes(body), "the request body"
            )
        except TooLarge as exc:
            return PlainTextResponse(f"{exc}\n", 413)
        except P2PKitError as exc:
            return PlainTextResponse(f"{exc}\n", 400)
        return Response(png, media_type="image/png")

    # FastAPI reads the annotations to find the request; as strings (postponed evaluation) they
    # would name classes imported in this function, which it cannot see.
    translate.__annotations__.update({"name": str, "request": Request, "return": Response})
    app.post("/api/translate/{name}")(translate)

    theme = gr.themes.Default(font=list(_SYSTEM_FONTS), font_mono=list(_SYSTEM_MONO))
    app = gr.mount_gradio_app(
        app,
        page,
        path="/",
        footer_links=["api", "settings"],
        max_file_size=limits.max_bytes,
        theme=theme,
        css=_CSS,
        ssr_mode=False,
        mcp_server=False,
    )
    return page, app


def _run_tab(gr: Any, run: ServedRun) -> None:
    """One run's tab: input (upload or draw) on the left, output on the right."""
    from_upload, from_drawing = _handlers(run, gr)
    canvas = run.canvas
    with gr.Tab(run.name, id=run.name):
        gr.Markdown(run.summary())
        with gr.Row(equal_height=False):
            with gr.Column(), gr.Tabs():
                with gr.Tab("Upload"):
                    upload = gr.Image(
                        label="Input",
                        type="filepath",
                        sources=["upload", "clipboard"],
                        elem_id=f"{run.name}-upload",
                    )
                    upload_button = gr.Button(
                        "Translate", variant="primary", elem_id=f"{run.name}-translate"
                    )
                with gr.Tab("Draw"):
                    gr.HTML(_legend(canvas))
                    brush = gr.Brush(
                        colors=[hex_ for _, hex_ in canvas.colors] or None,
                        color_mode="defaults" if canvas.kind == "free" else "fixed",
                    )
                    # The composite too: with the background alone the canvas starts empty.
                    blank = _blank(canvas)
                    editor = gr.ImageEditor(
                        label="Drawing",
                        value={"background": blank, "layers": [], "composite": blank},
                        type="filepath",
                        format="png",
                        image_mode="RGB",
                        sources=["upload", "clipboard"],
                        brush=brush,
                        canvas_size=(canvas.size, canvas.size),
                        elem_id=f"{run.name}-draw",
                    )
                    draw_button = gr.Button(
                        "Translate drawing",
                        variant="primary",
                        elem_id=f"{run.name}-translate-drawing",
                    )
            with gr.Column():
                output = gr.Image(
                    label="Output",
                    type="numpy",
                    format="png",
                    interactive=False,
                    elem_id=f"{run.name}-output",
                )
    upload_button.click(
        from_upload,
        inputs=upload,
        outputs=output,
        preprocess=False,
        api_name=f"translate_{run.name.replace('-', '_')}",
        concurrency_id="translate",
        concurrency_limit=1,
    )
    draw_button.click(
        from_drawing,
        inputs=editor,
        outputs=output,
        api_visibility="undocumented",
        concurrency_id="translate",
        concurrency_limit=1,
    )


# ----------------------------------------------------------------------------- running


def open_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port).

    Raises:
        P2PKitError: the address cannot be used (port taken, unknown host).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, IndexError) as exc:
        raise P2PKitError(f"--host {host}: cannot listen there ({exc}); try 127.0.0.1") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "is in use" if exc.errno in (98, 48, 10048) else f"cannot be used ({exc})"
        raise P2PKitError(
            f"port {port} on {host} {reason}; choose another with --port (0: any free port)"
        ) from None
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a listening socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    runs: Sequence[ServedRun],
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    announce: Any = print,
) -> None:
    """Serve ``runs`` on ``host:port`` until interrupted.

    Args:
        runs: from [`served_runs`][p2pkit.serve.served_runs].
        host: the address to bind; ``127.0.0.1`` keeps the server to this machine.
        port: the TCP port; 0 picks a free one.
        announce: called with each line to show the user (the address, a warning).
    """
    import uvicorn

    sock = open_socket(host, port)  # a port in use is said before Gradio spends seconds
    try:
        _, app = build_app(runs)
    except BaseException:
        sock.close()
        raise
    address = url_of(sock)
    if host not in _LOCAL_HOSTS:
        announce(
            f"warning: listening on {host}: anyone who can reach this machine can use the page "
            "and the API (no password)"
        )
    announce(f"serving {', '.join(run.name for run in runs)} at {address}/ (Ctrl+C to stop)")
    announce(
        f"API: curl --data-binary @input.png {address}/api/translate/{runs[0].name} -o out.png"
    )
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
