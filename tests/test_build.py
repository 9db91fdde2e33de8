"""What a run was made of is stored once and read once (p2pkit.engine.build)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from p2pkit.config import load_recipe
from p2pkit.engine.build import (
    build_dataset,
    build_networks,
    build_objective,
    build_task,
    network_specs,
    recipe_data,
    recipe_task,
)
from p2pkit.engine.checkpoint import list_checkpoints, load_checkpoint
from p2pkit.engine.trainer import Trainer
from p2pkit.errors import CheckpointError
from p2pkit.inference import load_trained

# A run trained by p2pkit 0.1.0 (run format 1) before the checkpoint stopped repeating the
# recipe's task and data: readers must keep loading it.
FORMAT_1_RUN = Path(__file__).parent / "data" / "run-format-1"


@pytest.fixture
def old_run(tmp_path) -> Path:
    run = tmp_path / "old"
    shutil.copytree(FORMAT_1_RUN, run)
    return run


def test_engine_filled_options_come_from_one_place(tiny_recipe):
    recipe = load_recipe(tiny_recipe)
    task, objective = build_task(recipe.task), build_objective(recipe.objective)
    specs = network_specs(recipe, task, objective)
    expected = {"depth": 5, "ngf": 4, "in_channels": 3, "out_channels": 3}
    assert specs["generator"]["options"] == expected
    assert specs["discriminator"]["options"]["conditional"] is True
    G, D = build_networks(recipe, task, objective)
    assert G.in_channels == 3 and D is not None


def test_a_checkpoint_stores_the_recipe_and_the_network_specs_once(tiny_recipe, tmp_path):
    recipe = load_recipe(tiny_recipe)
    recipe.train.max_iterations = 1
    Trainer(recipe, tmp_path / "run", progress=False).fit()
    meta = load_checkpoint(tmp_path / "run").meta
    assert meta["format"] == "p2pkit-run/1"
    assert not {"task", "objective", "data"} & set(meta)
    assert meta["networks"]["discriminator"]["provider"]["distribution"] == "p2pkit"
    assert recipe_data(meta).direction == "BtoA" and recipe_task(meta).name == "translation"


def test_a_run_written_by_format_1_still_translates(old_run):
    model = load_trained(old_run, "cpu")
    assert model.direction == "BtoA" and model.crop_size == 32
    with torch.no_grad():
        y = model.generator(torch.zeros(1, 3, 32, 32))
    assert y.shape == (1, 3, 32, 32)


def test_a_run_written_by_format_1_resumes(old_run, tiny_data):
    recipe = load_recipe(old_run / "recipe.toml")
    recipe.data.root = str(tiny_data)
    recipe.train.epochs = 2
    result = Trainer(recipe, old_run, resume=True, progress=False).fit()
    assert result.iterations == 4
    assert [s for s, _ in list_checkpoints(old_run)][-1] == 4


def test_a_newer_run_format_is_a_one_line_error(old_run):
    step = list_checkpoints(old_run)[-1][1]
    meta = json.loads((step / "meta.json").read_text())
    meta["format"] = "p2pkit-run/2"
    (step / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"run format 2 by a newer p2pkit.*upgrade it"):
        load_trained(old_run, "cpu")


def test_training_and_evaluation_read_a_split_through_the_same_builder(tiny_recipe, tiny_data):
    recipe = load_recipe(tiny_recipe)
    task = build_task(recipe.task)
    train = build_dataset(recipe.data, task, "train", resize_to=16, max_images=3)
    val = build_dataset(recipe.data, task, "val", root=str(tiny_data), resize_to=32)
    assert tuple(train.a.shape) == (3, 3, 16, 16) and tuple(val.a.shape[-2:]) == (32, 32)
