"""The commands people type first work exactly as written.

Data that ``p2pkit data download`` put in the data home is found without ``--data-root``,
``--download`` fetches it first (from a local HTTP server on 127.0.0.1, never the network),
a mistyped command gets a suggestion, and listing recipes or completing command names
imports no torch.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from p2pkit.cli import cli
from p2pkit.config import DataConfig, data_folder, load_recipe
from p2pkit.data import download as dl
from p2pkit.engine.runs import ensure_data
from p2pkit.errors import ConfigError

# The fewest --set overrides that make maps2aerial a two-iteration run on 32 px crops.
TINY = [
    "data.load_size=36",
    "data.crop_size=32",
    "generator.name=unet",
    "generator.depth=5",
    "generator.ngf=4",
    "discriminator.name=patchgan_16",
    "discriminator.ndf=4",
    "train.max_iterations=2",
]


def _sets(overrides: list[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


def _maps_archive() -> bytes:
    """A tiny ``maps.tar.gz``: aligned 64x32 (A|B, 2:1) images in maps/train and maps/val."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for split, count in (("train", 4), ("val", 2)):
            for i in range(count):
                image = io.BytesIO()
                pixels = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(image, format="JPEG" if i % 2 else "PNG")
                data = image.getvalue()
                info = tarfile.TarInfo(f"maps/{split}/{i}.{'jpg' if i % 2 else 'png'}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A local HTTP server that the ``maps`` entry of DATASETS points at; yields its folder."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    source = dataclasses.replace(dl.DATASETS["maps"], url=f"http://{host}:{port}/maps.tar.gz")
    monkeypatch.setitem(dl.DATASETS, "maps", source)
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with no $P2PKIT_DATA: the data home is ./data."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv(dl.DATA_HOME_ENV, raising=False)
    return work


# The console script, as a Python program: main(ARGS), whose exit does not end the program.
_MAIN = "from p2pkit.cli import main\ntry:\n    main({args})\nexcept SystemExit:\n    pass"


def _torch_free(code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter; its stdout, which ends with whether torch loaded."""
    code += "\nimport sys\nprint('TORCH', 'torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    return out.stdout + out.stderr


def test_run_recipe_download_fetches_the_dataset_into_the_data_home_then_trains(
    mirror: Path, workdir: Path
) -> None:
    (mirror / "maps.tar.gz").write_bytes(_maps_archive())
    out = workdir.parent / "runs"
    args = ["run", "recipe", "maps2aerial", *_sets(TINY), "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(cli, [*args, "--download"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (workdir / "data" / "maps" / "train").is_dir()
    assert f"data: {Path('data') / 'maps'} (downloaded)" in result.stdout
    assert (out / "maps2aerial" / "checkpoints").is_dir()

    # The exact command, without --download or --data-root, now finds the data there.
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"data: {Path('data') / 'maps'} (the data home" in result.stdout
    assert (out / "maps2aerial-2" / "checkpoints").is_dir()


def test_offline_download_fails_in_one_line_naming_the_archive_and_its_folder(
    mirror: Path, workdir: Path
) -> None:
    # The mirror serves nothing: the download gets a 404, as an unreachable host would fail.
    args = ["run", "recipe", "maps2aerial", "--download", "--no-progress", "--out", "runs"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"as {Path('data') / 'maps.tar.gz'} and run the same command again" in result.stderr


def test_an_archive_put_in_the_data_home_by_hand_is_unpacked_without_network(
    mirror: Path, workdir: Path
) -> None:
    (workdir / "data").mkdir()
    (workdir / "data" / "maps.tar.gz").write_bytes(_maps_archive())
    recipe = load_recipe("maps2aerial")
    assert ensure_data(recipe, progress=False, download=True) == "data: data/maps (downloaded)"
    assert recipe.data.root == str(Path("data") / "maps")


def test_data_download_without_to_unpacks_into_the_data_home(
    mirror: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (mirror / "maps.tar.gz").write_bytes(_maps_archive())
    home = workdir / "datasets"
    monkeypatch.setenv(dl.DATA_HOME_ENV, str(home))
    result = CliRunner().invoke(cli, ["data", "download", "maps"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (home / "maps" / "val").is_dir() and not (workdir / "data").exists()


def test_recipe_finds_its_dataset_in_p2pkit_data_without_data_root(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = workdir / "elsewhere"
    (home / "maps" / "train").mkdir(parents=True)
    monkeypatch.setenv(dl.DATA_HOME_ENV, str(home))
    recipe = load_recipe("maps2aerial")
    message = ensure_data(recipe, progress=False)
    assert recipe.data.root == str(home / "maps")
    assert message is not None and str(home / "maps") in message


def test_a_given_data_root_wins_over_the_data_home(workdir: Path) -> None:
    (workdir / "data" / "maps").mkdir(parents=True)
    (workdir / "mine").mkdir()
    recipe = load_recipe("maps2aerial")
    recipe.data.root = "mine"
    assert ensure_data(recipe, progress=False) is None
    assert recipe.data.root == "mine"


def test_missing_data_names_the_data_home_and_how_to_fill_it(workdir: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        ensure_data(load_recipe("maps2aerial"), progress=False)
    message = str(raised.value)
    assert "needs --data-root DIR, or its dataset in data/maps" in message
    assert "`p2pkit data download maps`, or add --download" in message


def test_download_refuses_a_source_p2pkit_cannot_fetch(workdir: Path) -> None:
    with pytest.raises(ConfigError, match="cannot download"):
        ensure_data(load_recipe("thermal2color"), progress=False, download=True)


def test_evaluate_and_sweep_lookup_finds_the_data_home_only_for_dataset_names(
    workdir: Path,
) -> None:
    (workdir / "data" / "maps").mkdir(parents=True)
    assert data_folder(DataConfig(source="maps")) == str(Path("data") / "maps")
    assert data_folder(DataConfig(source="maps", root="given")) == "given"
    assert data_folder(DataConfig(source="facades")) == ""  # not downloaded
    assert data_folder(DataConfig(source="a folder of photos (ImageNet)")) == ""


def test_a_mistyped_command_gets_a_suggestion_without_importing_torch() -> None:
    output = _torch_free(_MAIN.format(args="['trian']"))
    assert "No such command 'trian'. Did you mean 'train'?" in output
    assert "TORCH False" in output


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [(["run", "recip"], "'recipe'"), (["data", "dowload"], "'download'")],
)
def test_a_mistyped_subcommand_gets_a_suggestion(args: list[str], suggestion: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert f"Did you mean {suggestion}?" in result.stderr


def test_recipes_list_does_not_import_torch() -> None:
    output = _torch_free(_MAIN.format(args="['recipes', 'list']"))
    assert "maps2aerial" in output and "Google Maps map -> aerial photo" in output
    assert "TORCH False" in output


def test_recipes_show_of_a_registered_recipe_does_not_import_torch() -> None:
    output = _torch_free(_MAIN.format(args="['recipes', 'show', 'maps2aerial']"))
    assert 'name = "maps2aerial"' in output and "[generator]" in output
    assert "TORCH False" in output


def test_recipes_show_checks_component_options_that_an_override_sets() -> None:
    args = ["recipes", "show", "facades", "--set", "generator.norm=group"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "generator.norm" in result.stderr and "group" in result.stderr


def test_shell_completion_completes_lazy_command_names_without_importing_torch() -> None:
    env = {"_P2PKIT_COMPLETE": "bash_complete", "COMP_WORDS": "p2pkit r", "COMP_CWORD": "1"}
    output = _torch_free(_MAIN.format(args=""), env)
    assert "plain,recipes" in output and "plain,report" in output and "plain,run" in output
    assert "TORCH False" in output


def test_shell_completion_completes_subcommands_of_a_lazy_group() -> None:
    env = {"_P2PKIT_COMPLETE": "bash_complete", "COMP_WORDS": "p2pkit data do", "COMP_CWORD": "2"}
    output = _torch_free(_MAIN.format(args=""), env)
    assert "plain,download" in output


def test_evaluate_without_data_names_the_data_home(tmp_path, monkeypatch):
    import json
    import shutil

    from p2pkit.errors import ConfigError
    from p2pkit.evaluation.evaluate import evaluate_checkpoint

    run = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "data" / "run-format-1", run)
    step = run / "checkpoints" / "step-00000002" / "meta.json"
    meta = json.loads(step.read_text())
    meta["recipe"]["data"].update(root="", source="maps")
    step.write_text(json.dumps(meta))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("P2PKIT_DATA", raising=False)
    with pytest.raises(ConfigError, match=r"pass --data DIR, or put the dataset in data/maps"):
        evaluate_checkpoint(run)
