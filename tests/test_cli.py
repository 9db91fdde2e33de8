"""The command line, driven through click's test runner as a user would type it."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from p2pkit.cli import cli


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_help_lists_commands_without_importing_torch():
    code = (
        "import sys\nfrom p2pkit.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\nprint('TORCH', 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "translate" in out.stdout and "TORCH False" in out.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["run", "recipe"],
        ["train"],
        ["translate"],
        ["list"],
        ["plugins", "list"],
        ["env"],
        ["recipes", "show"],
        ["data", "download"],
        ["data", "combine"],
        ["data", "synth"],
        ["data", "edges"],
    ],
)
def test_every_command_has_help_with_an_example(runner, command):
    result = invoke(runner, *command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output


def test_two_epoch_run_then_translate_through_the_cli(runner, tiny_recipe, tiny_data, tmp_path):
    runs = tmp_path / "runs"
    result = invoke(runner, "train", "--config", tiny_recipe, "--out", runs, "--no-progress")
    assert result.exit_code == 0, result.output
    run = runs / "tiny"
    assert (run / "checkpoints" / "latest").is_file()
    assert any((run / "samples").iterdir())
    rows = (run / "losses.jsonl").read_text().splitlines()
    assert json.loads(rows[-1])["epoch"] == 2
    out = tmp_path / "translated"
    result = invoke(
        runner, "translate", run, tiny_data / "val", "--layout", "aligned", "--out", out,
        "--save-triplets", "--batch-size", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.png")) == ["1.png", "2.png"]
    from PIL import Image

    assert Image.open(out / "1.png").size == (32, 32)
    assert Image.open(out / "triplets" / "1.png").size[0] > 3 * 32


def test_translate_handles_sizes_the_unet_cannot_divide(runner, tiny_recipe, tmp_path):
    from PIL import Image

    invoke(runner, "train", "--config", tiny_recipe, "--out", tmp_path / "runs", "--no-progress")
    Image.new("RGB", (45, 37), (200, 10, 10)).save(tmp_path / "odd.png")
    out = tmp_path / "out"
    result = invoke(
        runner, "translate", tmp_path / "runs" / "tiny", tmp_path / "odd.png", "--out", out,
        "--paper-protocol",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Image.open(out / "odd.png").size == (45, 37)


def test_resume_from_a_toml_file_finds_the_run_by_the_recipes_name(runner, tiny_recipe, tmp_path):
    config = tmp_path / "my_experiment.toml"  # file stem differs from the recipe's name "tiny"
    config.write_text(tiny_recipe.read_text())
    out = tmp_path / "runs"
    common = ["--out", out, "--no-progress"]
    invoke(runner, "train", "--config", config, "--set", "train.max_iterations=2", *common)
    result = invoke(
        runner, "train", "--config", config, "--resume", "--set", "train.max_iterations=0", *common
    )
    assert result.exit_code == 0, result.output
    assert "resumed" in result.output and "at epoch 1, iteration 2" in result.output
    assert not (out / "tiny-2").exists()


def test_second_run_gets_its_own_folder(runner, tiny_recipe, tmp_path):
    for _ in range(2):
        invoke(runner, "train", "--config", tiny_recipe, "--out", tmp_path, "--no-progress",
               "--set", "train.epochs_decay=0")  # fmt: skip
    assert (tmp_path / "tiny").is_dir() and (tmp_path / "tiny-2").is_dir()


def test_print_config_shows_the_resolved_recipe(runner):
    result = invoke(runner, "run", "recipe", "facades", "--print-config", "--set", "train.epochs=7")
    assert result.exit_code == 0
    assert "epochs = 7" in result.output and 'direction = "BtoA"' in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "recipe", "facades", "--set", "train.epoch=3"], "unknown key 'train.epoch'"),
        (["run", "recipe", "facades", "--set", "train.epochs=x"], "expects an integer"),
        (["run", "recipe", "nope"], "unknown recipe 'nope'"),
        (["run", "recipe", "facades"], "needs --data-root"),
        (["run", "recipe", "facades", "--data-root", "/no/such/dir"], "does not exist"),
        (["translate", ".", "x.png", "--out", "o"], "no checkpoint"),
        (
            ["run", "recipe", "inpainting", "--data-root", ".", "--set", "task.mask=square"],
            "task 'inpainting': mask must be 'center' or 'random'",
        ),
    ],
)
def test_user_errors_are_one_line_on_stderr_with_exit_code_2(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_debug_flag_shows_the_traceback(tmp_path):
    from p2pkit.errors import ConfigError

    result = CliRunner().invoke(cli, ["--debug", "run", "recipe", "nope"])
    assert isinstance(result.exception, ConfigError)


@pytest.mark.parametrize(("value", "traceback"), [("false", False), ("0", False), ("1", True)])
def test_debug_environment_variable_reads_false_as_off(value, traceback, monkeypatch):
    monkeypatch.setenv("P2PKIT_DEBUG", value)
    result = CliRunner().invoke(cli, ["run", "recipe", "nope"])
    assert (result.exit_code == 2) is not traceback
    assert (result.exception is not None and result.exit_code != 2) is traceback


def test_ctrl_c_exits_with_status_130(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    command = cli.get_command(click.Context(cli), "list")
    monkeypatch.setattr(command, "callback", interrupted)
    result = CliRunner().invoke(cli, ["list", "generators"])
    assert result.exit_code == 130
    assert "interrupted" in result.stderr and "Aborted" not in result.output


def test_list_json_names_providers(runner):
    result = invoke(runner, "list", "generators", "--format", "json")
    rows = json.loads(result.output)
    assert {"unet_256", "unet_128", "encoder_decoder_256"} <= {r["name"] for r in rows}
    assert all(r["distribution"] == "p2pkit" for r in rows if r["name"] == "unet_256")


def install_broken_plugin(tmp_path, monkeypatch):
    info = tmp_path / "p2pkit_bad-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: p2pkit-bad\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[p2pkit.objectives]\nbad = p2pkit_bad_missing:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_plugins_list_reports_a_broken_plugin(runner, tmp_path, monkeypatch, p2pkit_registry):
    install_broken_plugin(tmp_path, monkeypatch)
    result = invoke(runner, "plugins", "list", "--format", "json")
    payload = json.loads(result.output)
    failure = payload["failures"][0]
    assert (failure["name"], failure["distribution"], failure["version"]) == (
        "bad",
        "p2pkit-bad",
        "0.3",
    )
    assert "ModuleNotFoundError" in failure["error"]
    assert any(c["name"] == "unet_256" and c["status"] == "ok" for c in payload["components"])


def test_env_lists_a_broken_plugin_for_bug_reports(runner, tmp_path, monkeypatch, p2pkit_registry):
    install_broken_plugin(tmp_path, monkeypatch)
    info = json.loads(invoke(runner, "env", "--format", "json").output)
    assert any("p2pkit-bad" in f and "ModuleNotFoundError" in f for f in info["plugin_failures"])


def test_env_reports_versions_and_device(runner):
    info = json.loads(invoke(runner, "env", "--format", "json").output)
    assert {"python", "torch", "p2pkit"} <= set(info["versions"])
    assert info["default_device"] in ("cpu", "cuda", "mps")


def test_data_synth_writes_a_dataset(runner, tmp_path):
    result = invoke(runner, "data", "synth", tmp_path / "s", "--n-train", 2, "--n-val", 1,
                    "--size", 32)  # fmt: skip
    assert result.exit_code == 0
    assert len(list((tmp_path / "s" / "train").glob("*.png"))) == 2


def test_translate_batches_automatically_with_the_same_output_as_one_at_a_time(
    tiny_run, tiny_data, tmp_path
):
    import numpy as np
    from PIL import Image

    for name, size in (("auto", "auto"), ("one", "1")):
        out = str(tmp_path / name)
        args = ["translate", str(tiny_run), str(tiny_data / "train"), "--out", out]
        result = CliRunner().invoke(cli, [*args, "--layout", "aligned", "--batch-size", size])
        assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "auto").iterdir()) and len(names) == 8
    for name in names:
        a = np.asarray(Image.open(tmp_path / "auto" / name), dtype=int)
        b = np.asarray(Image.open(tmp_path / "one" / name), dtype=int)
        assert np.abs(a - b).max() <= 1  # batching changes only float rounding
    result = CliRunner().invoke(
        cli,
        [
            "translate",
            str(tiny_run),
            str(tiny_data),
            "--out",
            str(tmp_path / "x"),
            "--batch-size",
            "0",
        ],
    )
    assert result.exit_code == 2 and "or auto" in result.output
