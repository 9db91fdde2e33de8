"""``p2pkit plugins new``: the distribution it writes installs and passes its own tests."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2pkit.cli import cli
from p2pkit.errors import ConfigError
from p2pkit.plugin_template import plugin_names, write_plugin


def test_names_come_from_the_distribution_name():
    names = plugin_names("p2pkit-my.net")
    assert (names.package, names.prefix) == ("p2pkit_my_net", "my_net")
    assert (names.generator, names.recipe) == ("my_net_residual", "synth-facades-my-net")
    assert names.source == "blocks-my-net"
    assert plugin_names("cool-gen").generator == "cool_gen_residual"


@pytest.mark.parametrize("bad", ["1abc", "my plugin", "p2pkit-", "-x", "import"])
def test_a_name_that_makes_no_package_is_refused_in_one_line(bad):
    with pytest.raises(ConfigError, match="plugin name") as raised:
        plugin_names(bad)
    assert "\n" not in str(raised.value)


def test_an_existing_folder_is_never_overwritten(tmp_path):
    (tmp_path / "p2pkit-taken").mkdir()
    (tmp_path / "p2pkit-taken" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["plugins", "new", "p2pkit-taken", "--to", str(tmp_path)])
    assert result.exit_code == 2
    assert "already exists and is not empty" in result.stderr
    assert (tmp_path / "p2pkit-taken" / "keep.txt").read_text() == "mine"


def test_the_written_files(tmp_path):
    root = write_plugin("p2pkit-files", tmp_path)
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert found == [
        "README.md",
        "pyproject.toml",
        "src/p2pkit_files/__init__.py",
        "src/p2pkit_files/files-blocks.toml",
        "src/p2pkit_files/files-synth.toml",
        "src/p2pkit_files/network.py",
        "src/p2pkit_files/sources.py",
        "tests/test_p2pkit_files.py",
    ]
    pyproject = (root / "pyproject.toml").read_text()
    assert 'files_residual = "p2pkit_files.network:files_residual"' in pyproject
    assert 'synth-facades-files = "p2pkit_files:synth_recipe"' in pyproject
    assert 'blocks-files = "p2pkit_files.sources:blocks_files"' in pyproject
    assert 'blocks-files = "p2pkit_files:blocks_recipe"' in pyproject
    assert 'p2pkit.require_api("1")' in (root / "src/p2pkit_files/__init__.py").read_text()


def _throwaway_venv(folder: Path) -> Path:
    """A venv made with --system-site-packages that also sees this project's environment
    (p2pkit, torch, pytest, hatchling), so nothing is downloaded; returns its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(folder)],
        check=True,
    )
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # --system-site-packages reaches the base interpreter's packages, not this venv's: add
    # them with addsitedir, which also runs their .pth files (the editable installs).
    ours = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "_p2pkit_project.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def test_a_new_plugin_installs_and_passes_its_own_tests(tmp_path):
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("hatchling, the template's build backend, is not installed: pip install .[dev]")
    result = CliRunner().invoke(cli, ["plugins", "new", "p2pkit-tmplcheck", "--to", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "p2pkit-tmplcheck"
    assert f"wrote {root}" in result.output
    python = _throwaway_venv(tmp_path / "venv")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIP_NO_INDEX": "1"}
    env.pop("P2PKIT_DISABLE_PLUGIN_AUTOLOAD", None)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", str(root)],
        check=True, env=env, timeout=300,
    )  # fmt: skip
    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "5 passed" in tests.stdout
    # The plugin went into the throwaway venv only.
    assert importlib.util.find_spec("p2pkit_tmplcheck") is None
