"""Shared fixtures: a tiny synthetic dataset and a tiny recipe, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

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


@pytest.fixture
def tiny_recipe(tmp_path, tiny_data) -> Path:
    """A recipe file for a 2-epoch run on :func:`tiny_data`."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_RECIPE)
    text = path.read_text().replace(
        'dataset = "aligned"', f'dataset = "aligned"\nroot = "{tiny_data.as_posix()}"'
    )
    path.write_text(text)
    return path


def shared_dataset(name: str) -> Path:
    """A dataset under ../shared/datasets, or skip the test with the reason."""
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"real data {path} is absent (see ../shared/datasets/README.md)")
    return path
