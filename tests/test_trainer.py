"""The training engine: the D-then-G alternation, schedules, checkpoints and bit-exact resume."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from p2pkit.config import apply_overrides, load_recipe
from p2pkit.engine.checkpoint import load_checkpoint
from p2pkit.engine.optim import linear_decay
from p2pkit.engine.trainer import Trainer


def train(recipe_path, run_dir, *overrides, resume=False):
    recipe = apply_overrides(load_recipe(recipe_path), list(overrides))
    return Trainer(recipe, run_dir, resume=resume, progress=False).fit()


def weights(run_dir):
    ckpt = load_checkpoint(run_dir)
    return {k: v for k, v in ckpt.tensors.items() if not k.startswith("rng")}, ckpt.meta


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    factor = linear_decay(epochs=3, epochs_decay=2)
    # epochs 0-2 at the full rate, then 2/3 and 1/3; it would reach 0 at epoch 5.
    assert [round(factor(e), 4) for e in range(6)] == [1.0, 1.0, 1.0, 0.6667, 0.3333, 0.0]


def test_a_run_folder_holds_recipe_log_samples_and_checkpoints(tiny_recipe, tmp_path):
    result = train(tiny_recipe, tmp_path / "run")
    run = tmp_path / "run"
    assert result.iterations == 6 and result.epochs_done == 2
    assert (run / "recipe.toml").is_file() and (run / "env.json").is_file()
    rows = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert {"G_GAN", "G_L1", "D_real", "D_fake", "lr", "epoch", "iteration"} <= set(rows[0])
    assert [r["iteration"] for r in rows] == list(range(1, 7))
    assert rows[0]["lr"] == pytest.approx(2e-4) and rows[-1]["lr"] == pytest.approx(1e-4)
    assert sorted(p.name for p in (run / "samples").iterdir())[:1] == ["iter00000002.png"]
    env = json.loads((run / "env.json").read_text())
    assert "torch" in env["versions"]


def test_sample_grids_say_when_they_fall_back_to_training_images(tiny_recipe, tmp_path):
    from rich.console import Console

    console = Console(record=True, width=200)
    recipe = apply_overrides(load_recipe(tiny_recipe), ["data.val_split=missing"])
    Trainer(recipe, tmp_path / "run", progress=False, console=console).fit()
    text = console.export_text()
    assert "sample grids show training images: data.val_split 'missing'" in text
    assert (tmp_path / "run" / "samples").is_dir()


def test_checkpoint_describes_the_networks_so_they_can_be_rebuilt(tiny_recipe, tmp_path):
    train(tiny_recipe, tmp_path / "run")
    _, meta = weights(tmp_path / "run")
    generator = meta["networks"]["generator"]
    assert {k: generator[k] for k in ("name", "options")} == {
        "name": "unet",
        "options": {"depth": 5, "ngf": 4, "in_channels": 3, "out_channels": 3},
    }
    assert generator["provider"]["distribution"] == "p2pkit"  # who provided the component
    assert meta["networks"]["discriminator"]["options"]["conditional"] is True
    recipe = meta["recipe"]  # stored once: the resolved recipe
    assert recipe["task"]["name"] == "translation" and recipe["data"]["direction"] == "BtoA"
    assert not {"task", "objective", "data"} & set(meta)


def test_stopped_and_resumed_run_matches_an_uninterrupted_one_bit_for_bit(tiny_recipe, tmp_path):
    train(tiny_recipe, tmp_path / "straight")
    stopped = train(tiny_recipe, tmp_path / "resumed", "train.max_iterations=4")
    assert stopped.iterations == 4
    train(tiny_recipe, tmp_path / "resumed", "train.max_iterations=0", resume=True)
    a, meta_a = weights(tmp_path / "straight")
    b, meta_b = weights(tmp_path / "resumed")
    assert meta_a["counters"] == meta_b["counters"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_ctrl_c_saves_a_checkpoint_and_resume_continues_exactly(tiny_recipe, tmp_path, monkeypatch):
    train(tiny_recipe, tmp_path / "straight")
    original = Trainer.train_step
    calls = {"n": 0}

    def interrupted_step(self, x, y):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    result = train(tiny_recipe, tmp_path / "run")
    assert result.interrupted and result.iterations == 3
    monkeypatch.setattr(Trainer, "train_step", original)
    train(tiny_recipe, tmp_path / "run", resume=True)
    a, _ = weights(tmp_path / "straight")
    b, _ = weights(tmp_path / "run")
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_l1_only_objective_trains_without_a_discriminator(tiny_recipe, tmp_path):
    train(tiny_recipe, tmp_path / "run", "objective.name=l1")
    tensors, meta = weights(tmp_path / "run")
    assert "discriminator" not in meta["networks"]
    assert not any(k.startswith("discriminator") for k in tensors)


def test_unconditional_gan_gets_a_discriminator_that_sees_only_the_output(tiny_recipe, tmp_path):
    train(tiny_recipe, tmp_path / "run", "objective.name=l1_gan")
    _, meta = weights(tmp_path / "run")
    assert meta["networks"]["discriminator"]["options"]["conditional"] is False


def test_bf16_autocast_trains_on_cpu_with_finite_losses(tiny_recipe, tmp_path):
    train(tiny_recipe, tmp_path / "run", "train.precision=bf16", "train.channels_last=on")
    rows = (tmp_path / "run" / "losses.jsonl").read_text().splitlines()
    assert all(torch.isfinite(torch.tensor(v)) for r in rows for v in json.loads(r).values())


def test_crop_size_the_unet_cannot_divide_is_a_clear_error(tiny_recipe, tmp_path):
    from p2pkit.errors import ConfigError

    with pytest.raises(ConfigError, match="crop_size 30 is not a multiple of 32"):
        train(tiny_recipe, tmp_path / "run", "data.crop_size=30")


def test_resuming_with_a_changed_network_setting_names_that_setting(tiny_recipe, tmp_path):
    from p2pkit.errors import CheckpointError

    train(tiny_recipe, tmp_path / "run", "train.max_iterations=2")
    with pytest.raises(CheckpointError, match="ngf=4 but this network has ngf=8"):
        train(tiny_recipe, tmp_path / "run", "generator.ngf=8", resume=True)
