"""The plugin platform: data sources as a component kind, the public API page and the plugin
API version, and resuming a run of a qualified ``distribution:name`` recipe."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_registry import TINY_GENERATOR, make_distribution

import p2pkit
from p2pkit.cli import cli
from p2pkit.config import load_recipe
from p2pkit.engine.runs import ensure_data
from p2pkit.errors import ConfigError, PluginAPIError, PluginLoadError

DOCS = Path(__file__).resolve().parents[1] / "docs"


class Squares:
    """A source made in-process: writes one aligned pair per split."""

    downloads = False
    description = "one grey square per split"

    def provide(self, folder, *, size=None, progress=True):
        from PIL import Image

        side = size or 16
        for split in ("train", "val"):
            (Path(folder) / split).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (2 * side, side), (128, 128, 128)).save(Path(folder) / split / "1.png")
        return Path(folder)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory whose data home is ./data."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("P2PKIT_DATA", raising=False)
    return tmp_path


# ------------------------------------------------------------------------------ sources


def test_sources_are_a_kind_listed_everywhere(p2pkit_registry):
    runner = CliRunner()
    rows = json.loads(runner.invoke(cli, ["list", "sources", "--format", "json"]).output)
    names = {row["name"]: row["distribution"] for row in rows}
    assert {"synth", "facades", "maps", "night2day"} <= set(names)
    assert names["synth"] == "p2pkit"
    listed = runner.invoke(cli, ["plugins", "list", "--format", "json"]).output
    assert any(
        row["kind"] == "sources" and row["name"] == "synth" and row["status"] == "ok"
        for row in json.loads(listed)["components"]
    )


def test_a_registered_source_provides_a_recipes_data_in_the_data_home(workdir, p2pkit_registry):
    p2pkit.get_registry("sources").register("squares")(Squares)
    recipe = load_recipe("synth-facades", ["data.root=", "data.source=squares"])
    message = ensure_data(recipe, progress=False)
    assert recipe.data.root == str(Path("data") / "squares")
    assert message == f"data: {recipe.data.root} (made by data source squares)"
    assert (workdir / "data" / "squares" / "train" / "1.png").is_file()
    # Found there the next time, and into data.root when one is given.
    again = load_recipe("synth-facades", ["data.root=", "data.source=squares"])
    assert "(the data home;" in ensure_data(again, progress=False)
    given = load_recipe("synth-facades", ["data.root=mine", "data.source=squares"])
    assert ensure_data(given, progress=False) is None
    assert (workdir / "mine" / "val" / "1.png").is_file()


def test_synth_generates_where_data_root_says_at_the_crop_size(workdir):
    recipe = load_recipe("synth-facades", ["data.root=made", "data.crop_size=32"])
    source = p2pkit.get_registry("sources").create("synth", n_train=2, n_val=1)
    assert source.provide(workdir / "made", size=32, progress=False) == workdir / "made"
    meta = json.loads((workdir / "made" / "classes.json").read_text())
    assert meta["size"] == 32 and meta["seed"] == 0
    assert ensure_data(recipe, progress=False) is None  # already there: used as it is


def test_a_downloading_source_is_fetched_only_when_asked(workdir, p2pkit_registry):
    with pytest.raises(ConfigError, match="`p2pkit data download maps`, or add --download"):
        ensure_data(load_recipe("maps2aerial"), progress=False)
    p2pkit.get_registry("sources").register("remote")(
        type("Remote", (Squares,), {"downloads": True, "description": "far away"})
    )
    recipe = load_recipe("synth-facades", ["data.root=", "data.source=remote"])
    with pytest.raises(ConfigError, match="`p2pkit data get remote`, or add --download"):
        ensure_data(recipe, progress=False)
    assert ensure_data(recipe, progress=False, download=True) == "data: data/remote (downloaded)"


def test_data_get_provides_any_source_and_download_points_to_it(workdir, p2pkit_registry):
    p2pkit.get_registry("sources").register("squares")(Squares)
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "get", "squares", "--size", "16"])
    assert result.exit_code == 0, result.output
    assert (workdir / "data" / "squares" / "train" / "1.png").is_file()
    result = runner.invoke(cli, ["data", "download", "squares"])
    assert result.exit_code == 2
    assert "get it with `p2pkit data get squares`" in result.stderr
    result = runner.invoke(cli, ["data", "get", "sqares"])
    assert result.exit_code == 2
    assert "unknown data source 'sqares'; did you mean 'squares'" in result.stderr


def test_plugins_check_runs_check_source(tmp_path, monkeypatch, p2pkit_registry):
    monkeypatch.syspath_prepend(str(tmp_path))
    source = """
        from pathlib import Path

        class Empty:
            downloads = False
            description = "makes an empty folder"

            def provide(self, folder, *, size=None, progress=True):
                Path(folder).mkdir(parents=True, exist_ok=True)
                return Path(folder)
    """
    make_distribution(
        tmp_path, "p2pkit-empty", "0.1", "p2pkit_empty", source,
        "[p2pkit.sources]\nempty = p2pkit_empty:Empty\n",
    )  # fmt: skip
    result = CliRunner().invoke(cli, ["plugins", "check", "p2pkit-empty"])
    assert result.exit_code == 1
    assert "sources.empty (p2pkit-empty 0.1): failed: provide() left" in result.output


# ---------------------------------------------------------------------- plugin API version


def test_require_api_accepts_the_same_major_and_an_older_minor():
    p2pkit.require_api("1")
    p2pkit.require_api("1.0")
    major, minor = p2pkit.PLUGIN_API_VERSION.split(".")
    p2pkit.require_api(f"{major}.{minor}")
    with pytest.raises(PluginAPIError, match=r"needs p2pkit plugin API 1\.99"):
        p2pkit.require_api("1.99")
    with pytest.raises(PluginAPIError, match="not a plugin API version"):
        p2pkit.require_api("one")


def test_a_plugin_that_needs_another_api_is_one_clean_broken_plugin_line(
    tmp_path, monkeypatch, p2pkit_registry
):
    monkeypatch.syspath_prepend(str(tmp_path))
    make_distribution(
        tmp_path, "p2pkit-future", "3.0", "p2pkit_future",
        'import p2pkit\np2pkit.require_api("2")\n' + textwrap.dedent(TINY_GENERATOR),
        "[p2pkit.generators]\nfuture_gen = p2pkit_future:tiny\n",
    )  # fmt: skip
    with pytest.raises(PluginLoadError) as raised:
        p2pkit.create_generator("future_gen")
    message = str(raised.value)
    assert "\n" not in message
    assert "PluginAPIError: p2pkit_future needs p2pkit plugin API 2, but p2pkit" in message
    assert "install a newer p2pkit" in message
    assert p2pkit.create_generator("unet_128", ngf=4) is not None  # the rest keeps working


def test_the_shipped_plugins_require_the_api_and_use_public_names_only():
    page = public_api()
    plugins = Path(__file__).resolve().parents[1] / "plugins"
    for path in sorted(plugins.glob("*/src/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("p2pkit"):
                continue
            if node.module.split(".")[0] != "p2pkit":
                continue  # the plugin's own package, e.g. p2pkit_resnet
            assert node.module in page, f"{path.name} imports from {node.module}: not public"
            for alias in node.names:
                assert alias.name in page[node.module], f"{path.name}: {alias.name} not public"
    for package in sorted(plugins.glob("*/src/*/__init__.py")):
        assert 'p2pkit.require_api("1")' in package.read_text(), package


# -------------------------------------------------------------------------- public API page


def public_api() -> dict[str, set[str]]:
    """Module -> names, as docs/public-api.md lists them (one section per module)."""
    text = (DOCS / "public-api.md").read_text()
    listed: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^### `(p2pkit[\w.]*)`$", line)
        if heading:
            current = heading.group(1)
            listed[current] = set()
        elif line.startswith("## "):
            current = None
        elif current is not None and line.startswith("| `"):
            listed[current].update(re.findall(r"`(\w+)`", line.split(" | ")[0]))
    return listed


def exported(module_name: str) -> set[str]:
    """``__all__``, or the public names a module defines when it has none."""
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        return set(module.__all__)
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module_name
    }


def test_the_public_api_page_lists_exactly_what_each_public_module_exports():
    listed = public_api()
    assert {"p2pkit", "p2pkit.errors", "p2pkit.interfaces", "p2pkit.testing"} <= set(listed)
    for module, names in listed.items():
        assert names == exported(module), (
            f"docs/public-api.md and {module} disagree: only on the page "
            f"{sorted(names - exported(module))}, only exported {sorted(exported(module) - names)}"
        )


def test_every_public_name_can_be_imported():
    for module, names in public_api().items():
        imported = importlib.import_module(module)
        for name in names:
            assert hasattr(imported, name), f"{module}.{name}"


# ------------------------------------------------------------------------------- resume


def test_resume_of_a_qualified_recipe_uses_the_recipes_own_name(tmp_path):
    from p2pkit.cli.train import _recipe_name

    assert _recipe_name("p2pkit:synth-facades") == "synth-facades"
    assert _recipe_name("synth-facades") == "synth-facades"
    assert _recipe_name("p2pkit:no-such-recipe") == "no-such-recipe"
    result = CliRunner().invoke(
        cli, ["run", "recipe", "p2pkit:synth-facades", "--resume", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert f"{tmp_path / 'synth-facades'}: not a run folder" in result.stderr
