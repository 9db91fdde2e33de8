"""The plugin host as a plugin's user and author meet it: names provided twice, qualified
names, ``p2pkit plugins check``, checkpoints of missing plugins and broken plugins' messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_registry import TINY_GENERATOR, make_distribution

import p2pkit
from p2pkit.cli import cli
from p2pkit.errors import CheckpointError, PluginLoadError, RegistryError
from p2pkit.registry import get_registry, missing_provider_message, refresh_plugins

# A recipe a plugin ships, as a dict (no file needed); the name collides with p2pkit's own.
RECIPE_PLUGIN = """
    def synth_facades():
        return {"description": "the plugin's synth-facades", "paper": "none: a test plugin",
                "task": {"name": "translation"}, "generator": {"name": "unet_128", "ngf": 8},
                "discriminator": {"name": "patchgan_70", "ndf": 8}}
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory on sys.path acting as a site-packages for hand-made plugins."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args, env=None):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False, env=env)


def install_twin(site: Path) -> None:
    """p2pkit-twin: declares the built-in generator unet_256 and recipe synth-facades again."""
    make_distribution(
        site,
        "p2pkit-twin",
        "2.0",
        "p2pkit_twin",
        TINY_GENERATOR + RECIPE_PLUGIN,
        """
        [p2pkit.generators]
        unet_256 = p2pkit_twin:tiny
        [p2pkit.recipes]
        synth-facades = p2pkit_twin:synth_facades
        """,
    )


def install_broken(site: Path, name: str = "broken_gen") -> None:
    make_distribution(
        site,
        "p2pkit-broken",
        "0.2",
        "p2pkit_broken_host",
        "import p2pkit_broken_missing_module_with_a_rather_long_name_for_wrapping\n",
        f"[p2pkit.generators]\n{name} = p2pkit_broken_host:make\n",
    )


# --------------------------------------------------------------------------- conflicts


def test_a_name_provided_twice_is_a_conflict_in_every_listing(site, runner, p2pkit_registry):
    install_twin(site)
    rows = json.loads(invoke(runner, "list", "generators", "--format", "json").output)
    row = next(r for r in rows if r["name"] == "unet_256")
    assert row["status"] == "conflict"
    assert row["providers"] == ["p2pkit:unet_256", "p2pkit-twin:unet_256"]
    assert next(r for r in rows if r["name"] == "unet_128")["status"] == "found"

    table = invoke(runner, "list", "generators").output
    line = next(x for x in table.splitlines() if " unet_256 " in x)
    assert "p2pkit 0.1.0 + p2pkit-twin 2.0" in line and "conflict" in line
    assert "p2pkit-twin:unet_256" in table  # the advice under the table

    listing = json.loads(invoke(runner, "plugins", "list", "--format", "json").output)
    statuses = {(c["kind"], c["name"]): c["status"] for c in listing["components"]}
    assert statuses[("generators", "unet_256")] == "conflict"
    assert statuses[("recipes", "synth-facades")] == "conflict"
    assert statuses[("generators", "unet_128")] == "ok"

    recipes = invoke(runner, "recipes", "list")
    assert recipes.exit_code == 0
    line = next(x for x in recipes.output.splitlines() if x.startswith(" synth-facades "))
    assert "p2pkit + p2pkit-twin" in line.replace(" 0.1.0", "").replace(" 2.0", "")
    assert "conflict" in line
    assert "p2pkit-twin:synth-facades" in recipes.output
    assert " facades " in recipes.output  # the other recipes are still listed


def test_strict_mode_fails_on_a_conflict_with_one_line(site, runner, p2pkit_registry):
    install_twin(site)
    result = invoke(runner, "plugins", "list", env={"P2PKIT_STRICT_PLUGINS": "1"})
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "generator 'unet_256' is provided by both p2pkit 0.1.0" in result.stderr
    assert "p2pkit-twin:unet_256" in result.stderr
    assert invoke(runner, "env", env={"P2PKIT_STRICT_PLUGINS": "1"}).exit_code == 2


def test_the_conflict_error_says_how_to_pick_a_provider(site, p2pkit_registry):
    install_twin(site)
    with pytest.raises(RegistryError) as err:
        p2pkit.create_generator("unet_256")
    message = str(err.value)
    assert "p2pkit:unet_256 or p2pkit-twin:unet_256" in message
    assert "--set generator.name=p2pkit-twin:unet_256" in message
    assert "uninstall p2pkit" not in message
    recipe_error = get_registry("recipes").conflict_message("synth-facades")
    assert "p2pkit run recipe p2pkit-twin:synth-facades" in recipe_error


def test_a_qualified_name_picks_the_provider_everywhere_a_name_is_taken(site, p2pkit_registry):
    install_twin(site)
    twin = p2pkit.create_generator("p2pkit-twin:unet_256", width=2)
    assert twin.net[0].out_channels == 2
    assert p2pkit.create_generator("p2pkit:unet_256", ngf=2).size_multiple == 256
    assert p2pkit.create_generator("p2pkit_Twin:unet_256").net[0].out_channels == 4
    assert "p2pkit-twin:unet_256" in get_registry("generators")
    assert get_registry("generators").info("p2pkit-twin:unet_256").version == "2.0"
    from p2pkit.engine.build import stored_specs

    spec = stored_specs({"generator": twin})["generator"]
    assert spec["name"] == "p2pkit-twin:unet_256"  # a checkpoint rebuilds the same provider
    assert spec["provider"] == {"distribution": "p2pkit-twin", "version": "2.0"}
    with pytest.raises(RegistryError, match=r"not provided by p2pkit-other.*p2pkit-twin:unet_256"):
        p2pkit.create_generator("p2pkit-other:unet_256")
    # A qualified name works for a name only one distribution declares, too.
    assert p2pkit.create_generator("p2pkit:unet_128", ngf=2) is not None


def test_a_qualified_name_works_in_recipes_and_on_the_command_line(site, runner, p2pkit_registry):
    install_twin(site)
    from p2pkit.config import load_recipe

    recipe = load_recipe("p2pkit-twin:synth-facades")
    assert recipe.description == "the plugin's synth-facades"
    shown = invoke(
        runner, "recipes", "show", "p2pkit:synth-facades", "--set",
        "generator.name=p2pkit-twin:unet_256", "--set", "generator.width=2",
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert 'name = "p2pkit-twin:unet_256"' in shown.output
    bare = invoke(runner, "recipes", "show", "synth-facades")
    assert bare.exit_code == 2
    assert "p2pkit:synth-facades or p2pkit-twin:synth-facades" in bare.stderr


# --------------------------------------------------------------------------- plugins check


def test_plugins_check_passes_a_conforming_plugin(site, runner, p2pkit_registry):
    make_distribution(
        site,
        "p2pkit-tidy",
        "1.0",
        "p2pkit_tidy",
        TINY_GENERATOR,
        "[p2pkit.generators]\ntidy = p2pkit_tidy:tiny\n",
    )
    result = invoke(runner, "plugins", "check", "p2pkit_tidy")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "generators.tidy (p2pkit-tidy 1.0): ok",
        "1 component of 1 distribution checked, all ok",
    ]


def test_plugins_check_fails_on_import_errors_failed_checks_and_conflicts(
    site, runner, p2pkit_registry
):
    make_distribution(
        site,
        "p2pkit-mixed",
        "0.5",
        "p2pkit_mixed",
        TINY_GENERATOR
        + """
    def shrinking(in_channels: int = 3, out_channels: int = 3, width: int = 4):
        G = Tiny(in_channels, out_channels - 1, width)
        G.out_channels = out_channels
        return G
    """,
        """
        [p2pkit.generators]
        good = p2pkit_mixed:tiny
        shrinking = p2pkit_mixed:shrinking
        unet_128 = p2pkit_mixed:tiny
        missing = p2pkit_mixed_nowhere:make
        """,
    )
    result = invoke(runner, "plugins", "check", "p2pkit-mixed")
    assert result.exit_code == 1
    lines = dict(line.split(": ", 1) for line in result.output.splitlines()[:-1])
    assert lines["generators.good (p2pkit-mixed 0.5)"] == "ok"
    assert lines["generators.missing (p2pkit-mixed 0.5)"].startswith(
        "failed: plugin 'missing' (entry point in group p2pkit.generators of p2pkit-mixed 0.5) "
        "failed to load: ModuleNotFoundError"
    )
    assert lines["generators.shrinking (p2pkit-mixed 0.5)"].startswith("failed: ")
    assert "shape" in lines["generators.shrinking (p2pkit-mixed 0.5)"]
    assert "is provided by both" in lines["generators.unet_128 (p2pkit-mixed 0.5)"]
    assert result.output.splitlines()[-1] == "4 components of 1 distribution checked, 3 failed"


def test_plugins_check_with_debug_prints_the_traceback(site, runner, p2pkit_registry):
    install_broken(site)
    result = invoke(runner, "--debug", "plugins", "check", "p2pkit-broken")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "Traceback" not in result.stdout


def test_plugins_check_of_an_unknown_distribution_is_a_user_error(runner, p2pkit_registry):
    result = invoke(runner, "plugins", "check", "p2pkit-nowhere")
    assert result.exit_code == 2
    assert "distribution 'p2pkit-nowhere' declares no p2pkit entry points" in result.stderr
    assert "p2pkit-featmatch" in result.stderr or "p2pkit," in result.stderr


# --------------------------------------------------------------------------- missing plugin


def test_a_checkpoint_of_a_missing_plugin_says_what_to_install(tmp_path, monkeypatch):
    from p2pkit.engine.build import stored_specs
    from p2pkit.engine.checkpoint import save_checkpoint
    from p2pkit.inference import load_trained
    from p2pkit.registry import isolated_registries

    plugin_dir = tmp_path / "site"
    plugin_dir.mkdir()
    make_distribution(
        plugin_dir,
        "p2pkit-gone",
        "0.1.0",
        "p2pkit_gone",
        TINY_GENERATOR,
        "[p2pkit.generators]\ngone_net = p2pkit_gone:tiny\n",
    )
    with isolated_registries():
        monkeypatch.syspath_prepend(str(plugin_dir))
        G = p2pkit.create_generator("gone_net")
        meta = {"format": "p2pkit-run/1", "networks": stored_specs({"generator": G})}
        save_checkpoint(tmp_path / "run", step=1, modules={"generator": G}, meta=meta)
        sys.path.remove(str(plugin_dir))  # the plugin is uninstalled
        refresh_plugins()
        with pytest.raises(CheckpointError) as err:
            load_trained(tmp_path / "run", device="cpu")
    message = str(err.value)
    assert message.endswith(
        "networks.generator: generator 'gone_net' comes from p2pkit-gone, which is not "
        "installed; install p2pkit-gone (0.1.0 trained this)"
    )
    assert "\n" not in message


def test_missing_provider_message_covers_each_case(p2pkit_registry, monkeypatch):
    provider = {"distribution": "p2pkit-featmatch", "version": "0.0.9"}
    assert missing_provider_message("generators", "unet_256", provider) is None
    assert missing_provider_message("generators", "nothing_here", None) is None
    installed = missing_provider_message("generators", "nothing_here", provider)
    assert installed is not None
    assert "is not provided by the installed p2pkit-featmatch 0.1.0" in installed
    assert installed.endswith("install p2pkit-featmatch 0.0.9 (the version that trained this)")
    local = missing_provider_message("generators", "mine", {"distribution": "<in-process>"})
    assert local is not None and "registered in-process" in local
    monkeypatch.setenv("P2PKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    refresh_plugins()
    disabled = missing_provider_message("objectives", "l1_cgan_fm", provider)
    assert disabled is not None and "P2PKIT_DISABLE_PLUGIN_AUTOLOAD" in disabled


# --------------------------------------------------------------------------- broken plugins


def test_using_a_broken_plugin_is_one_error_and_no_warning(site, p2pkit_registry):
    install_broken(site)
    with pytest.warns(RuntimeWarning, match="broken_gen") as record:
        get_registry("generators").load_all()
        get_registry("generators").load_all()  # a failure already reported is not repeated
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PluginLoadError, match="p2pkit-broken 0.2"):
            p2pkit.create_generator("broken_gen")
        with pytest.raises(PluginLoadError, match="p2pkit-broken 0.2"):
            p2pkit.create_generator("broken_gen")  # the cached failure, the same error


def test_the_command_line_prints_a_broken_plugin_once(site, tmp_path):
    install_broken(site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    args = ["run", "recipe", "synth-facades", "--set", "generator.name=broken_gen"]
    out = subprocess.run(
        [sys.executable, "-m", "p2pkit", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert out.stderr.count("broken_gen") == 1, out.stderr
    assert "Warning" not in out.stderr and len(out.stderr.splitlines()) == 1


def test_plugins_list_prints_failures_unwrapped_and_tracebacks_with_debug(
    site, runner, p2pkit_registry
):
    install_broken(site)
    result = invoke(runner, "plugins", "list")
    failure = [x for x in result.stdout.splitlines() if "failed to load" in x]
    assert len(failure) == 1 and len(failure[0]) > 80
    assert failure[0].endswith("with_a_rather_long_name_for_wrapping'")
    assert "Traceback" not in result.output
    debug = invoke(runner, "--debug", "plugins", "list")
    assert "Traceback (most recent call last)" in debug.stderr
    assert "p2pkit_broken_host" in debug.stderr
    env = invoke(runner, "--debug", "env")
    assert next(x for x in env.stdout.splitlines() if "failed to load" in x) == failure[0]
    assert "Traceback (most recent call last)" in env.stderr


def test_plugins_list_json_leaves_the_traceback_out(site, runner, p2pkit_registry):
    install_broken(site)
    payload = json.loads(invoke(runner, "plugins", "list", "--format", "json").stdout)
    assert set(payload["failures"][0]) == {"name", "group", "distribution", "version", "error"}
