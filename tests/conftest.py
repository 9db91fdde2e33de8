"""Shared fixtures: a tiny synthetic dataset and a tiny recipe, made once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

# Debian's Chromium, driven by Playwright for the page tests (Playwright's own download is not
# reachable here).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

TINY_RECIPE = """
name = "tiny"
description = "a 32 px U-Net on 8 synthetic facades, for tests"
paper = "none: a test fixture"

[data]
dataset = "aligned"
direction = "BtoA"
load_size = 36
crop_size = 32
max_images = 6

[generator]
name = "unet"
depth = 5
ngf = 4

[discriminator]
name = "patchgan_16"
ndf = 4

[train]
epochs = 1
epochs_decay = 1
batch_size = 2
log_every = 1
sample_every = 2
save_every = 1
keep_last = 2
"""


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Synthetic facades (aligned photo|labels, 32 px): 8 train and 2 val images."""
    from p2pkit.data.synth import synthesize_facades

    root = tmp_path_factory.mktemp("synth") / "facades"
    synthesize_facades(root, n_train=8, n_val=2, size=32, seed=0, progress=False)
    return root


def write_tiny_recipe(folder: Path, data: Path) -> Path:
    """``folder/tiny.toml``: the tiny recipe with ``data.root`` set to ``data``."""
    path = folder / "tiny.toml"
    path.write_text(
        TINY_RECIPE.replace(
            'dataset = "aligned"', f'dataset = "aligned"\nroot = "{data.as_posix()}"'
        )
    )
    return path


@pytest.fixture
def tiny_recipe(tmp_path, tiny_data) -> Path:
    """A recipe file for a 2-epoch run on `tiny_data`."""
    return write_tiny_recipe(tmp_path, tiny_data)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_data) -> Path:
    """A 2-iteration run of the tiny recipe, trained once through the command line.

    Shared by every test that needs a trained run: copy it before changing it.
    """
    from click.testing import CliRunner

    from p2pkit.cli import cli

    base = tmp_path_factory.mktemp("tiny-run")
    recipe = write_tiny_recipe(base, tiny_data)
    args = ["train", "--config", str(recipe), "--out", str(base / "runs")]
    args += ["--set", "train.max_iterations=2", "--no-progress"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return base / "runs" / "tiny"


def shared_dataset(name: str) -> Path:
    """A dataset under ../shared/datasets, or skip the test with the reason."""
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"real data {path} is absent (see ../shared/datasets/README.md)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium through Playwright, or a skip that says what is missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
