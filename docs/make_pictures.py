"""Make the pictures in docs/images/ from a tiny training run, on the CPU.

    python docs/make_pictures.py

trains the synth-facades recipe at 64 px on a small generated set (about a minute on a 2-core
CPU), evaluates it, and writes

* ``docs/images/sample-grid.png``: the run's last sample grid (input | output | target), the one
  ``p2pkit run recipe`` writes into ``RUN/samples/``, enlarged 2x;
* ``docs/images/loss-curves.png``: the loss curves that ``p2pkit evaluate`` draws into
  ``RUN/eval-val/losses.png``;
* ``docs/images/results-page.png``: a screenshot of the whole page ``p2pkit evaluate`` writes,
  ``RUN/eval-val/index.html``, taken by a headless Chromium (``apt-get install chromium``);
* ``docs/images/serve.png``: the page of ``p2pkit serve RUN`` after translating a val label map,
  driven by Playwright in that Chromium (needs ``pip install "p2pkit[serve]" playwright``).

``--only serve`` trains the run and makes the last picture alone.

Each PNG is kept under 300 KB (with a 256-colour palette when that is needed).

Every step is a ``p2pkit`` command, printed as it runs. ``--work DIR`` keeps the run there
(default: a temporary folder, removed at the end).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

IMAGES = Path(__file__).resolve().parent / "images"
MAX_BYTES = 300_000

# A 64 px U-Net (6 downsamplings, a 1 x 1 bottleneck as in the paper) and a narrow 70 x 70
# PatchGAN: 60 pairs, 12 + 6 epochs at batch 4, 270 iterations.
SYNTH = "data synth data/synth-facades --n-train 60 --n-val 4 --size 64 --seed 0"
SETTINGS = (
    "generator.name=unet generator.depth=6 generator.ngf=16 discriminator.ndf=16 "
    "data.load_size=72 data.crop_size=64 train.epochs=12 train.epochs_decay=6 "
    "train.log_every=5 train.sample_every=0 train.seed=0"
)
EVALUATE = "evaluate runs/synth-facades --split val --segmenter-steps 150 --no-progress"


def p2pkit(args: list[str], cwd: Path) -> None:
    print("$ p2pkit " + " ".join(args), flush=True)
    # The FCN-score's segmenter is cached in the work folder, not in ~/.cache.
    env = {**os.environ, "P2PKIT_CACHE_DIR": str(cwd / "cache")}
    subprocess.run([sys.executable, "-m", "p2pkit", *args], cwd=cwd, env=env, check=True)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    sys.exit("make_pictures: no Chromium for the screenshot; install it (apt-get install chromium)")


def screenshot(page: Path, out: Path, size: tuple[int, int] = (1000, 2100)) -> None:
    """The whole page (the window is taller than it), with the empty space below it cut off."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--screenshot={out}",
        f"--window-size={size[0]},{size[1]}",
        page.resolve().as_uri(),
    ]
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, capture_output=True)
    image = Image.open(out).convert("RGB")
    content = ImageOps.invert(image).getbbox()  # the box of everything that is not white
    if content is not None:
        image.crop((0, 0, image.width, min(image.height, content[3] + 24))).save(out)


def save_small(image: Image.Image, out: Path) -> None:
    """Write a PNG under MAX_BYTES: optimised, then with a 256-colour palette if needed."""
    image = image.convert("RGB")
    image.save(out, optimize=True)
    if out.stat().st_size > MAX_BYTES:
        image.quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
    print(f"wrote {out.relative_to(IMAGES.parent.parent)} ({out.stat().st_size // 1000} KB)")


def serve_screenshot(work: Path, out: Path) -> None:
    """``p2pkit serve`` on the run, one val label map uploaded and translated, the page shot."""
    from playwright.sync_api import sync_playwright

    label = work / "serve-input.png"
    pair = Image.open(sorted((work / "data" / "synth-facades" / "val").glob("*.png"))[0])
    pair.crop((pair.width // 2, 0, pair.width, pair.height)).save(label)  # B: the labels
    args = ["serve", "runs/synth-facades", "--port", "0", "--device", "cpu"]
    print("$ p2pkit " + " ".join(args), flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "p2pkit", *args], cwd=work, stderr=subprocess.PIPE, text=True
    )
    try:
        url = None
        for line in server.stderr or []:
            if found := re.search(r" at (http://\S+/) ", line):
                url = found.group(1)
                break
        if url is None:
            sys.exit("make_pictures: p2pkit serve did not start")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1000, "height": 640})
            page.goto(url)
            page.locator("#synth-facades-upload input[type=file]").set_input_files(str(label))
            page.locator("#synth-facades-upload img").wait_for()
            page.click("#synth-facades-translate")
            page.locator("#synth-facades-output img").wait_for()
            page.wait_for_timeout(500)
            page.screenshot(path=str(out))
            browser.close()
    finally:
        server.terminate()
        server.wait()


def make(work: Path, only: str | None = None) -> None:
    p2pkit(SYNTH.split(), work)
    sets = [arg for setting in SETTINGS.split() for arg in ("--set", setting)]
    p2pkit(["run", "recipe", "synth-facades", "--no-progress", *sets], work)
    IMAGES.mkdir(exist_ok=True)
    if only == "serve":
        serve_screenshot(work, work / "serve.png")
        save_small(Image.open(work / "serve.png"), IMAGES / "serve.png")
        return
    p2pkit(EVALUATE.split(), work)

    run = work / "runs" / "synth-facades"
    grid = Image.open(sorted((run / "samples").glob("iter*.png"))[-1])
    enlarged = grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST)
    save_small(enlarged, IMAGES / "sample-grid.png")
    save_small(Image.open(run / "eval-val" / "losses.png"), IMAGES / "loss-curves.png")
    shot = work / "results-page.png"
    screenshot(run / "eval-val" / "index.html", shot)
    save_small(Image.open(shot), IMAGES / "results-page.png")
    serve_screenshot(work, work / "serve.png")
    save_small(Image.open(work / "serve.png"), IMAGES / "serve.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="keep the data and the run in this folder")
    parser.add_argument("--only", choices=["serve"], help="make only this picture")
    args = parser.parse_args()
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        make(args.work, args.only)
        return
    with tempfile.TemporaryDirectory(prefix="p2pkit-pictures-") as work:
        make(Path(work), args.only)


if __name__ == "__main__":
    main()
