"""The moving average of the generator's weights (train.ema_decay, timm's ModelEmaV3)."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from p2pkit.cli import cli
from p2pkit.config import apply_overrides, load_recipe
from p2pkit.engine.checkpoint import load_checkpoint
from p2pkit.engine.ema import make_generator_ema
from p2pkit.engine.trainer import Trainer
from p2pkit.errors import ConfigError
from p2pkit.inference import load_trained


def train(recipe_path, run_dir, *overrides, resume=False):
    recipe = apply_overrides(load_recipe(recipe_path), list(overrides))
    return Trainer(recipe, run_dir, resume=resume, progress=False).fit()


def test_ema_weights_are_the_warmed_up_average_of_the_trained_ones():
    net = torch.nn.Linear(3, 1)
    ema = make_generator_ema(net, 0.5, warmup=False)
    history = []
    for step in range(1, 4):
        with torch.no_grad():
            net.weight.add_(1.0)
        history.append(net.weight.detach().clone())
        ema.update(net, step=step)
    # step 1 copies (decay 0 before any average exists); later steps lerp by 1 - decay.
    expected = history[0]
    for w in history[1:]:
        expected = 0.5 * expected + 0.5 * w
    assert torch.allclose(ema.module.weight, expected)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_warmup_keeps_the_decay_small_at_first_and_caps_it():
    ema = make_generator_ema(torch.nn.Linear(2, 2), 0.999, warmup=True)
    assert ema.get_decay(2) == pytest.approx(1 - 2**-0.75)
    assert ema.get_decay(10**7) == pytest.approx(0.999)


def test_a_run_with_ema_saves_both_weight_sets_and_translate_uses_the_average(
    tiny_recipe, tmp_path
):
    train(tiny_recipe, tmp_path / "run", "train.ema_decay=0.9")
    ckpt = load_checkpoint(tmp_path / "run")
    assert {"generator", "generator_ema", "discriminator"} <= set(ckpt.meta["modules"])
    raw, avg = ckpt.module_state("generator"), ckpt.module_state("generator_ema")
    assert raw.keys() == avg.keys()
    assert any(not torch.equal(raw[k], avg[k]) for k in raw if raw[k].is_floating_point())

    model = load_trained(tmp_path / "run", "cpu")
    assert model.weights == "ema"
    for name, tensor in model.generator.state_dict().items():
        assert torch.equal(tensor, avg[name]), name
    assert load_trained(tmp_path / "run", "cpu", "raw").weights == "raw"


def test_asking_for_ema_weights_of_a_run_without_them_is_a_clear_error(tiny_recipe, tmp_path):
    train(tiny_recipe, tmp_path / "run")
    assert load_trained(tmp_path / "run", "cpu").weights == "raw"
    with pytest.raises(ConfigError, match="holds no EMA weights.*--weights raw"):
        load_trained(tmp_path / "run", "cpu", "ema")
    result = CliRunner().invoke(
        cli,
        ["translate", str(tmp_path / "run"), str(tmp_path), "--out", "o", "--weights", "ema"],
    )
    assert result.exit_code != 0 and "holds no EMA weights" in result.output


def test_a_stopped_and_resumed_run_with_ema_matches_an_uninterrupted_one_bit_for_bit(
    tiny_recipe, tmp_path
):
    train(tiny_recipe, tmp_path / "straight", "train.ema_decay=0.9")
    train(tiny_recipe, tmp_path / "resumed", "train.ema_decay=0.9", "train.max_iterations=4")
    train(tiny_recipe, tmp_path / "resumed", "train.ema_decay=0.9", resume=True)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    for key in a.tensors:
        if key.startswith("module/generator_ema/"):
            assert torch.equal(a.tensors[key], b.tensors[key]), key


def test_switching_ema_on_at_resume_starts_the_average_from_the_restored_generator(
    tiny_recipe, tmp_path
):
    train(tiny_recipe, tmp_path / "run", "train.max_iterations=4")
    train(tiny_recipe, tmp_path / "run", "train.ema_decay=0.9", resume=True)
    ckpt = load_checkpoint(tmp_path / "run")
    assert "generator_ema" in ckpt.meta["modules"]


def test_an_ema_decay_outside_zero_to_one_names_the_key(tiny_recipe):
    with pytest.raises(ConfigError, match=r"train.ema_decay must be in \[0, 1\)"):
        apply_overrides(load_recipe(tiny_recipe), ["train.ema_decay=1.0"])
