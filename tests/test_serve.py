"""``p2pkit serve``: the translation behind the page and the API, then the page in a browser.

The first tests call [`Translator`][p2pkit.serve.Translator] directly: it must give the pixels
``p2pkit translate`` writes, and refuse files over the limits or not images with one line. The
last ones start the server on a free 127.0.0.1 port with the tiny run and drive it with headless
Chromium through Playwright, as a user would, and with plain HTTP requests, as a program would.
They skip, saying why, where Gradio, Playwright or Chromium is missing (``.ci/run`` installs
them).
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from p2pkit.cli import cli
from p2pkit.config import DataConfig
from p2pkit.data.synth import FACADE_PALETTE
from p2pkit.errors import DataError, P2PKitError
from p2pkit.serve import (
    FACADES_LABELS,
    Canvas,
    Limits,
    ServedRun,
    TooLarge,
    Translator,
    canvas_for,
    open_socket,
    require_gradio,
    served_runs,
)

LIMITS = Limits(max_pixels=64 * 64, max_bytes=60_000)
SERVER_LIMITS = Limits(max_pixels=256 * 256, max_bytes=60_000)  # the drawing is 256 x 256


def label_map(path: Path, height: int = 40, width: int = 48, seed: int = 0) -> Path:
    """A facades-like label map: blocks of the synthetic facades' colours, saved as PNG.

    40 x 48 is no multiple of the tiny U-Net's 32, so the padding of ``translate`` is used.
    """
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, len(FACADE_PALETTE), (height // 8 + 1, width // 8 + 1))
    labels = np.kron(blocks, np.ones((8, 8), dtype=np.int64))[:height, :width]
    Image.fromarray(FACADE_PALETTE[labels]).save(path)
    return path


def translated_by_cli(run: Path, image: Path, out: Path, *options: str) -> np.ndarray:
    """What ``p2pkit translate`` writes for ``image``, as uint8 (H, W, 3)."""
    args = ["translate", str(run), str(image), "--out", str(out), "--layout", "single"]
    result = CliRunner().invoke(cli, [*args, "--device", "cpu", *options])
    assert result.exit_code == 0, result.output
    with Image.open(out / f"{image.stem}.png") as written:
        return np.asarray(written.convert("RGB"))


@pytest.fixture(scope="module")
def model(tiny_run: Path):
    from p2pkit.inference import load_trained

    return load_trained(tiny_run, "cpu")


# ------------------------------------------------------------------------- the translation


@pytest.mark.parametrize(
    ("size", "options"),
    [((40, 48), ()), ((72, 100), ("--tile", "64", "--overlap", "16"))],
    ids=["padded", "tiled"],
)
def test_the_translator_gives_the_pixels_of_p2pkit_translate(
    model, tiny_run: Path, tmp_path: Path, size: tuple[int, int], options: tuple[str, ...]
) -> None:
    image = label_map(tmp_path / "labels.png", *size)
    expected = translated_by_cli(tiny_run, image, tmp_path / "out", *options)
    tile = int(options[1]) if options else None
    overlap = int(options[3]) if options else 32
    limits = Limits(max_pixels=100 * 100, max_bytes=60_000)
    translator = Translator(model, limits=limits, tile=tile, overlap=overlap)
    output = translator.translate_file(image)
    assert output.dtype == np.uint8 and output.shape == (*size, 3)
    np.testing.assert_array_equal(output, expected)
    png = translator.translate_bytes(image.read_bytes())
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), expected)


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(model, tmp_path: Path) -> None:
    image = label_map(tmp_path / "big.png", height=70, width=70)
    with pytest.raises(TooLarge) as caught:
        Translator(model, limits=LIMITS).translate_file(image, "big.png")
    message = str(caught.value)
    assert "big.png is 70 x 70 pixels" in message and "--max-size" in message
    assert "\n" not in message


def test_a_file_over_the_byte_limit_is_refused(model, tmp_path: Path) -> None:
    image = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 60, 3), np.uint8)).save(image)
    translator = Translator(model, limits=Limits(max_pixels=64 * 64, max_bytes=1000))
    with pytest.raises(TooLarge, match=r"noise.png is .* MB; .* up to 0.001 MB .*--max-file-size"):
        translator.translate_file(image)
    with pytest.raises(TooLarge, match="--max-file-size"):
        translator.translate_bytes(image.read_bytes())


def test_a_bad_file_gets_one_line_that_names_the_upload(model, tmp_path: Path) -> None:
    translator = Translator(model, limits=LIMITS)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(DataError, match="^notes.png is not an image file p2pkit can read"):
        translator.translate_file(text)
    truncated = tmp_path / "cut.png"
    noise = np.random.default_rng(0).integers(0, 256, (40, 48, 3), np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.png")
    whole = (tmp_path / "whole.png").read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError) as caught:
        translator.translate_file(truncated, "upload.png")
    assert str(caught.value).startswith("upload.png ") and str(tmp_path) not in str(caught.value)
    transparent = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(transparent)
    with pytest.raises(DataError, match="^clear.png .*transparen"):
        translator.translate_file(transparent)
    with pytest.raises(DataError, match="empty"):
        translator.translate_bytes(b"")


def test_the_canvas_follows_the_training_data() -> None:
    def fake(source: str, direction: str, crop: int = 256) -> SimpleNamespace:
        return SimpleNamespace(data=DataConfig(source=source, direction=direction), crop_size=crop)

    facades = canvas_for(fake("facades", "BtoA"))  # type: ignore[arg-type]
    assert facades.kind == "labels" and facades.colors == FACADES_LABELS
    assert len({hex_ for _, hex_ in FACADES_LABELS}) == 12
    assert facades.background == FACADES_LABELS[0][1] and facades.size == 256
    synth = canvas_for(fake("synth", "BtoA", 128))  # type: ignore[arg-type]
    assert synth.kind == "labels" and synth.colors[2] == ("window", "#0055ff")
    assert synth.size == 256
    edges = canvas_for(fake("edges2shoes", "AtoB"))  # type: ignore[arg-type]
    assert (edges.kind, edges.colors, edges.background) == (
        "edges",
        (("edge", "#000000"),),
        "#ffffff",
    )
    assert canvas_for(fake("facades", "AtoB")).kind == "free"  # type: ignore[arg-type]
    assert canvas_for(fake("maps", "BtoA")).kind == "free"  # type: ignore[arg-type]


def test_max_size_reads_width_by_height_or_a_pixel_count() -> None:
    from p2pkit.cli.serve import PixelCount

    assert PixelCount().convert("2048x2048", None, None) == 2048 * 2048
    assert PixelCount().convert("4000000", None, None) == 4_000_000
    result = CliRunner().invoke(cli, ["serve", ".", "--max-size", "big"])
    assert result.exit_code == 2 and "WIDTHxHEIGHT" in result.output


def test_without_gradio_the_command_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(P2PKitError, match=r'pip install "p2pkit\[serve\]"'):
        require_gradio()


def test_a_port_in_use_is_one_line() -> None:
    taken = open_socket("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(P2PKitError, match=f"port {port} on 127.0.0.1 is in use; .*--port"):
            open_socket("127.0.0.1", port)
    finally:
        taken.close()


# ------------------------------------------------------------------------ the server


@pytest.fixture(scope="module")
def server(tiny_run: Path) -> Iterator[tuple[str, list[ServedRun]]]:
    """The app with two tabs, the tiny run (free canvas) and the same run shown with the facades
    palette, served on a free port of 127.0.0.1 from a thread."""
    pytest.importorskip("gradio", reason='gradio is not installed (pip install "p2pkit[serve]")')
    import uvicorn

    from p2pkit.serve import build_app, url_of

    (tiny,) = served_runs([tiny_run], device="cpu", limits=SERVER_LIMITS)
    canvas = Canvas("labels", FACADES_LABELS, FACADES_LABELS[0][1], 256)
    runs = [tiny, ServedRun("facades", tiny.translator, canvas, tiny_run)]
    _, app = build_app(runs)
    sock = open_socket("127.0.0.1", 0)
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield url_of(sock), runs
    uv.should_exit = True
    thread.join(10)
    sock.close()


def post(url: str, data: bytes) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read(), answer.headers["content-type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers["content-type"]


def test_the_http_api_translates_a_file_into_a_png(server, tiny_run: Path, tmp_path: Path) -> None:
    url, _ = server
    image = label_map(tmp_path / "labels.png")
    expected = translated_by_cli(tiny_run, image, tmp_path / "out")
    status, body, kind = post(f"{url}/api/translate/tiny", image.read_bytes())
    assert (status, kind) == (200, "image/png")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))), expected)
    with urllib.request.urlopen(f"{url}/api/runs") as answer:
        names = [row["name"] for row in json.load(answer)["runs"]]
    assert names == ["tiny", "facades"]
    status, body, _ = post(f"{url}/api/translate/tiny", b"hello")
    assert status == 400 and b"not an image file" in body
    status, body, _ = post(f"{url}/api/translate/tiny", b"x" * 70_000)
    assert status == 413 and b"--max-file-size" in body
    status, body, _ = post(f"{url}/api/translate/nope", image.read_bytes())
    assert status == 404 and b"tiny, facades" in body


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.requested = []  # type: ignore[attr-defined]
    page.on("request", lambda request: page.requested.append(request.url))  # type: ignore[attr-defined]
    page.goto(server[0] + "/")
    yield page
    context.close()


def output_pixels(page, run: str) -> np.ndarray:
    """The output image the page shows, fetched from its ``src`` and decoded."""
    image = page.locator(f"#{run}-output img")
    image.wait_for(timeout=30_000)
    body = page.request.get(image.get_attribute("src")).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def test_the_page_translates_an_uploaded_label_map_like_p2pkit_translate(
    page, server, tiny_run: Path, tmp_path: Path
) -> None:
    image = label_map(tmp_path / "labels.png", seed=1)
    expected = translated_by_cli(tiny_run, image, tmp_path / "out")
    page.locator("#tiny-upload input[type=file]").set_input_files(str(image))
    page.locator("#tiny-upload img").wait_for()
    page.click("#tiny-translate")
    shown = output_pixels(page, "tiny")
    assert shown.shape == expected.shape
    assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1
    # Nothing came from anywhere but the server: no fonts, scripts or analytics from outside.
    outside = [u for u in page.requested if not u.startswith((server[0], "blob:", "data:"))]
    assert not outside


@pytest.mark.parametrize(
    ("name", "make", "says"),
    [
        ("notes.png", lambda path: path.write_text("not an image"), "is not an image file"),
        ("big.png", lambda path: label_map(path, 260, 260), "260 x 260 pixels"),
    ],
    ids=["bad-file", "too-large"],
)
def test_the_page_says_why_an_upload_cannot_be_translated(
    page, tmp_path: Path, name: str, make, says: str
) -> None:
    path = tmp_path / name
    make(path)
    page.locator("#tiny-upload input[type=file]").set_input_files(str(path))
    page.click("#tiny-translate")
    page.get_by_text(says, exact=False).first.wait_for(timeout=30_000)
    assert page.locator("#tiny-output img").count() == 0


def test_a_drawing_in_the_label_colours_is_translated(page, server) -> None:
    _, runs = server
    seen: list[np.ndarray] = []
    translator = runs[1].translator
    translate_file = translator.translate_file

    def recording(path, label=None):
        with Image.open(path) as drawn:
            seen.append(np.asarray(drawn.convert("RGB")))
        return translate_file(path, label)

    page.get_by_role("tab", name="facades").click()
    page.get_by_role("tab", name="Draw").last.click()
    legend = page.locator(".p2pkit-swatch")
    assert legend.all_inner_texts() == [name for name, _ in FACADES_LABELS]
    editor = page.locator("#facades-draw")
    editor.locator("button[aria-label=Color]").click()
    swatches = editor.locator("button.color")
    assert swatches.count() == 12
    swatches.nth(2).click()  # window
    page.mouse.click(1000, 900)  # closes the colour list
    box = editor.locator("canvas").first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.4, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=10)
    page.mouse.up()
    translator.translate_file = recording  # type: ignore[method-assign]
    try:
        page.click("#facades-translate-drawing")
        shown = output_pixels(page, "facades")
    finally:
        del translator.translate_file
    (drawing,) = seen
    assert shown.shape == drawing.shape == (256, 256, 3)
    colours = {tuple(int(v) for v in c) for c in np.unique(drawing.reshape(-1, 3), axis=0)}
    assert {(0, 0, 222), (0, 128, 255)} <= colours  # the background and the window stroke
