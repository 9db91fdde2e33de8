"""Bad values stop before the work: declared option ranges, recipe ranges, hostile checkpoints,
losses that diverge, full disks, and sizes the generator cannot take."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import pytest
import safetensors
import safetensors.torch
import torch

import p2pkit
from p2pkit.config import apply_overrides, load_recipe
from p2pkit.engine.checkpoint import list_checkpoints, load_checkpoint
from p2pkit.engine.trainer import Trainer
from p2pkit.errors import CheckpointError, ConfigError, OptionValueError, TrainingDiverged
from p2pkit.ranges import Range


def train(recipe_path, run_dir, *overrides):
    recipe = apply_overrides(load_recipe(recipe_path), list(overrides))
    return Trainer(recipe, run_dir, progress=False).fit()


# ------------------------------------------------------------ declared ranges


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ngf": 10**9}, "option ngf must be between 1 and 256, not 1000000000"),
        ({"ngf": 4096}, "option ngf must be between 1 and 256"),
        ({"depth": 10**6}, "option depth must be between 2 and 12"),
        ({"ngf": "32"}, "option ngf expects an integer, got '32'"),
        ({"dropout": float("nan")}, "option dropout must be a finite number"),
    ],
)
def test_generator_options_out_of_range_fail_at_once_in_one_line(options, message):
    started = time.perf_counter()
    with pytest.raises(OptionValueError, match=message) as caught:
        p2pkit.create_generator("unet", **options)
    assert time.perf_counter() - started < 1.0  # nothing was allocated
    assert "\n" not in str(caught.value) and "generator 'unet'" in str(caught.value)


def test_discriminator_and_objective_options_have_ranges_too():
    with pytest.raises(OptionValueError, match="option ndf must be between 1 and 256, not -1"):
        p2pkit.create_discriminator("patchgan_70", ndf=-1)
    with pytest.raises(OptionValueError, match="option lambda_l1 must be a finite number"):
        p2pkit.create_objective("l1_cgan", lambda_l1=float("inf"))


def test_a_plugin_declares_ranges_with_annotated_and_gets_the_same_check(p2pkit_registry):
    @p2pkit.register_generator("ranged")
    def ranged(width: Annotated[int, Range(1, 8)] = 4, gain: Annotated[float, Range(0)] = 1.0):
        return ("ranged", width, gain)

    assert p2pkit.create_generator("ranged", width=8) == ("ranged", 8, 1.0)
    with pytest.raises(OptionValueError, match="generator 'ranged': option width must be"):
        p2pkit.create_generator("ranged", width=9)
    with pytest.raises(OptionValueError, match="option gain must be >= 0, not -1"):
        p2pkit.create_generator("ranged", gain=-1)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=inf", "train.lr must be a finite number, not inf"),
        ("train.lr=nan", "train.lr must be a finite number, not nan"),
        ("train.lr=0", r"train.lr must be in \(0, 1\], not 0.0"),
        ("train.beta1=1", r"train.beta1 must be in \[0, 1\), not 1.0"),
        ("generator.ngf=0", "generator.ngf must be between 1 and 256, not 0"),
        ("discriminator.ndf=-1", "discriminator.ndf must be between 1 and 256, not -1"),
        ("train.keep_last=-1", "train.keep_last must be >= 0, not -1"),
        ("data.crop_size=0", "data.crop_size must be between 1 and 16384"),
    ],
)
def test_recipe_values_out_of_range_are_refused_when_the_recipe_loads(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(load_recipe("synth-facades"), [override])


def test_print_config_refuses_a_nan_learning_rate_in_one_line():
    from click.testing import CliRunner

    from p2pkit.cli import cli

    result = CliRunner().invoke(
        cli, ["run", "recipe", "synth-facades", "--set", "train.lr=nan", "--print-config"]
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --set train.lr: train.lr must be a finite number, not nan"
    )


def test_a_toml_file_in_range_terms_names_the_file(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('name = "r"\n[generator]\nname = "unet"\nngf = 100000\n')
    with pytest.raises(ConfigError, match=rf"{path}: generator.ngf must be between 1 and 256"):
        load_recipe(path)


def test_a_recipe_that_is_not_utf8_is_a_one_line_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "façade"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"{path}: not UTF-8 text"):
        load_recipe(path)


# ------------------------------------------------------- hostile checkpoints


@pytest.fixture
def trained_run(tiny_recipe, tmp_path) -> Path:
    run = tmp_path / "run"
    train(tiny_recipe, run, "train.max_iterations=2")
    return run


@pytest.mark.parametrize("name", ["meta.json", "tensors.safetensors"])
def test_a_checkpoint_file_linked_to_a_device_is_refused_without_reading_it(trained_run, name):
    step = list_checkpoints(trained_run)[-1][1]
    (step / name).unlink()
    (step / name).symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match=rf"{name} is not a regular file"):
        load_checkpoint(trained_run)


def test_load_trained_reads_the_tensors_of_the_same_checkpoint_while_building(
    trained_run, monkeypatch
):
    """The description is read first; the tensors file of that same checkpoint folder is read
    and checked in a background thread while the network is built."""
    import threading

    import p2pkit.engine.checkpoint as checkpoint_module
    from p2pkit.inference import load_trained

    calls = []
    original = checkpoint_module.load_checkpoint

    def recording(path, **kwargs):
        calls.append((threading.current_thread().name, Path(path), kwargs.get("tensors", True)))
        return original(path, **kwargs)

    monkeypatch.setattr(checkpoint_module, "load_checkpoint", recording)
    model = load_trained(trained_run, "cpu")
    step = list_checkpoints(trained_run)[-1][1]
    assert [(c[0] == threading.current_thread().name, c[2]) for c in calls] == [
        (True, False),
        (False, True),
    ]
    assert calls[1][0].startswith("p2pkit-load") and calls[1][1] == step
    saved = safetensors.torch.load_file(step / "tensors.safetensors")
    prefix = "module/generator_ema/" if model.weights == "ema" else "module/generator/"
    for name, value in model.generator.state_dict().items():
        assert torch.equal(value, saved[prefix + name]), name


def test_load_trained_refuses_a_corrupt_tensors_file_in_one_line(trained_run):
    from p2pkit.inference import load_trained

    step = list_checkpoints(trained_run)[-1][1]
    data = bytearray((step / "tensors.safetensors").read_bytes())
    data[-100] ^= 0xFF
    (step / "tensors.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"tensors\.safetensors does not match the sha256"):
        load_trained(trained_run, "cpu")


def test_an_oversized_meta_json_is_refused(trained_run, monkeypatch):
    from p2pkit.engine.checkpoint import load as checkpoint

    monkeypatch.setattr(checkpoint, "META_LIMIT", 100)
    with pytest.raises(CheckpointError, match=r"meta.json is \d+ bytes, far more"):
        load_checkpoint(trained_run)


def test_a_full_disk_while_writing_the_tensors_is_the_documented_error(trained_run, monkeypatch):
    before = list_checkpoints(trained_run)

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise safetensors.SafetensorError("Error while serializing: No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    recipe = load_recipe(trained_run / "recipe.toml")
    recipe.train.max_iterations = 3
    with pytest.raises(CheckpointError, match="check free disk space") as caught:
        Trainer(recipe, trained_run, resume=True, progress=False).fit()
    assert "previous checkpoint is unchanged" in str(caught.value)
    assert list_checkpoints(trained_run) == before
    assert not [p for p in (trained_run / "checkpoints").iterdir() if ".tmp-" in p.name]


# ---------------------------------------------------------- training guards


def test_a_loss_that_turns_nan_stops_the_run_and_keeps_the_last_good_checkpoint(
    tiny_recipe, tmp_path, monkeypatch
):
    original = Trainer.train_step
    calls = {"n": 0}

    def poisoned(self, x, y):
        calls["n"] += 1
        terms = original(self, x, y)
        if calls["n"] == 8:
            with torch.no_grad():
                next(self.G.parameters()).fill_(float("nan"))
            terms["G_L1"] = torch.tensor(float("nan"))
        return terms

    monkeypatch.setattr(Trainer, "train_step", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as caught:
        train(tiny_recipe, run, "train.batch_size=1", "train.save_every_minutes=0")
    message = str(caught.value)
    assert "training diverged at iteration 8: G_L1 is nan" in message
    assert "step-00000006" in message and "\n" not in message
    assert [s for s, _ in list_checkpoints(run)] == [6]
    rows = [json.loads(r) for r in (run / "losses.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, 8))  # no NaN row is written
    for key, value in load_checkpoint(run).tensors.items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), key


def test_non_finite_weights_are_never_saved(tiny_recipe, tmp_path, monkeypatch):
    original = Trainer.train_step

    def blown_up(self, x, y):
        terms = original(self, x, y)
        with torch.no_grad():
            next(self.D.parameters()).fill_(float("inf"))
        return terms

    monkeypatch.setattr(Trainer, "train_step", blown_up)
    with pytest.raises(TrainingDiverged, match=r"weight discriminator\.\S+ is not finite"):
        train(tiny_recipe, tmp_path / "run", "train.max_iterations=1")
    assert list_checkpoints(tmp_path / "run") == []


def test_images_the_generator_cannot_take_without_resizing_fail_before_the_run_folder(
    tiny_recipe, tmp_path
):
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"images are 32x32 but generator 'unet' needs .* 64"):
        train(
            tiny_recipe,
            run,
            "data.preprocess=none",
            "generator.depth=6",
            "data.crop_size=64",
            "data.load_size=64",
        )
    assert not run.exists()


def test_a_crop_larger_than_the_images_fails_before_the_run_folder(tiny_recipe, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(p2pkit.P2PKitError, match="load_size"):
        train(tiny_recipe, run, "data.preprocess=crop", "data.crop_size=64", "generator.depth=6")
    assert not run.exists()


@pytest.mark.parametrize(
    ("overrides", "advice"),
    [
        (["data.crop_size=64", "data.load_size=72"], "set generator.depth = 6 (multiples of 64)"),
        (["data.crop_size=96", "data.load_size=100"], "set generator.depth = 5"),
    ],
)
def test_size_errors_suggest_a_depth_that_works(tiny_recipe, tmp_path, overrides, advice):
    with pytest.raises(ConfigError, match="is not a multiple of 256") as caught:
        train(tiny_recipe, tmp_path / "run", "generator.depth=8", *overrides)
    assert advice in str(caught.value)


def test_the_guards_leave_plain_runs_alone(tiny_recipe, tmp_path):
    result = train(tiny_recipe, tmp_path / "run")
    assert result.iterations == 6 and os.path.isdir(tmp_path / "run" / "checkpoints")


@pytest.mark.parametrize(("key", "value"), [("ngf", 10**9), ("depth", 10**6), ("ngf", "32")])
def test_network_options_in_a_hostile_meta_json_are_one_line_naming_file_and_key(
    trained_run, key, value
):
    from p2pkit.inference import load_trained

    step = list_checkpoints(trained_run)[-1][1]
    meta = json.loads((step / "meta.json").read_text())
    meta["networks"]["generator"]["options"][key] = value
    (step / "meta.json").write_text(json.dumps(meta))
    started = time.perf_counter()
    with pytest.raises(CheckpointError) as caught:
        load_trained(trained_run, "cpu")
    message = str(caught.value)
    assert f"{step / 'meta.json'}: networks.generator: generator 'unet': option {key}" in message
    assert "\n" not in message and time.perf_counter() - started < 5


@pytest.mark.parametrize("name", ["../outside", "a/b", "..", "/tmp/abs"])
def test_run_names_are_single_folder_names(tiny_recipe, tmp_path, name):
    from click.testing import CliRunner

    from p2pkit.cli import cli

    out = tmp_path / "runs"
    args = ["run", "recipe", str(tiny_recipe), "--out", str(out), "--name", name]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "--name" in result.output and "must be a single folder or file name" in result.output
    assert not (tmp_path / "outside").exists() and not out.exists()


def test_a_recipe_name_that_is_a_path_cannot_place_the_run_outside_out(tiny_recipe, tmp_path):
    from click.testing import CliRunner

    from p2pkit.cli import cli

    hostile = tmp_path / "hostile.toml"
    hostile.write_text(tiny_recipe.read_text().replace('name = "tiny"', 'name = "../escaped"'))
    args = ["run", "recipe", str(hostile), "--out", str(tmp_path / "runs")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "the recipe's name = '../escaped'" in result.output
    assert not (tmp_path / "escaped").exists()


def test_an_override_replaces_a_component_the_file_names_but_is_not_installed(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(
        'name = "r"\n[generator]\nname = "resnet_from_a_missing_plugin"\nngf = 16\nn_blocks = 9\n'
    )
    with pytest.raises(p2pkit.P2PKitError, match="resnet_from_a_missing_plugin"):
        load_recipe(path)
    recipe = load_recipe(path, ["generator.name=unet", "generator.depth=5"])
    assert recipe.generator.name == "unet"
    assert recipe.generator.options == {"ngf": 16, "depth": 5}  # n_blocks is not unet's


def test_an_override_replaces_a_value_out_of_range_in_the_file(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('name = "r"\n[train]\nlr = -1.0\n')
    with pytest.raises(ConfigError, match=r"train.lr must be in \(0, 1\]"):
        load_recipe(path)
    assert load_recipe(path, ["train.lr=1e-4"]).train.lr == 1e-4
    with pytest.raises(ConfigError, match=r"--set train.lr: train.lr must be a finite number"):
        load_recipe(path, ["train.lr=nan"])
