"""The registry: names, errors, and real plugins found through entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import p2pkit
from p2pkit.errors import PluginLoadError, RegistryError
from p2pkit.registry import get_registry


def make_distribution(
    site: Path, name: str, version: str, module: str, source: str, entry_points: str
) -> None:
    """Install a minimal distribution into ``site`` by hand: a module and its dist-info."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


TINY_GENERATOR = """
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self, in_channels=3, out_channels=3, width=4):
            super().__init__()
            self.in_channels, self.out_channels, self.size_multiple = in_channels, out_channels, 1
            self.net = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(width, out_channels, 3, padding=1), nn.Tanh())

        def forward(self, x):
            return self.net(x)

    def tiny(in_channels: int = 3, out_channels: int = 3, width: int = 4) -> Tiny:
        return Tiny(in_channels, out_channels, width)
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory on sys.path acting as a site-packages for hand-made plugins."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtin_components_come_from_p2pkit_entry_points():
    info = get_registry("generators").info("unet_256")
    assert info.distribution == "p2pkit"
    assert info.target == "p2pkit.models.unet:unet_256"
    assert {"pixelgan", "patchgan_16", "patchgan_70", "patchgan_286", "patchgan"} <= set(
        p2pkit.list_discriminators()
    )


def test_unknown_name_lists_known_names_and_closest_matches():
    with pytest.raises(RegistryError) as err:
        p2pkit.create_discriminator("patchgan70")
    message = str(err.value)
    assert "unknown discriminator 'patchgan70'" in message
    assert "did you mean 'patchgan_70'" in message
    assert "pixelgan" in message


def test_unknown_option_names_the_component_and_the_option():
    with pytest.raises(RegistryError, match=r"generator 'unet_256' has no option 'nfg'.*'ngf'"):
        p2pkit.create_generator("unet_256", nfg=32)


def test_in_process_registration_and_isolation(p2pkit_registry):
    @p2pkit.register_generator("my_identity")
    def my_identity(scale: float = 1.0):
        return ("identity", scale)

    assert p2pkit.create_generator("my_identity", scale=2.0) == ("identity", 2.0)
    assert get_registry("generators").info("my_identity").distribution == "<in-process>"


def test_isolated_registry_forgets_registrations_afterwards():
    assert "my_identity" not in p2pkit.list_generators()


def test_registering_a_taken_name_names_both_providers(p2pkit_registry):
    with pytest.raises(RegistryError, match=r"provided twice.*p2pkit.*registered in-process"):
        p2pkit.register_generator("unet_256")(lambda: None)


def test_installed_plugin_is_listed_without_import_and_built_by_name(site, p2pkit_registry):
    make_distribution(
        site,
        "p2pkit-tiny",
        "1.2.3",
        "p2pkit_tiny",
        TINY_GENERATOR,
        "[p2pkit.generators]\ntiny = p2pkit_tiny:tiny\n",
    )
    assert "tiny" in p2pkit.list_generators()
    assert "p2pkit_tiny" not in sys.modules, "listing must not import the plugin"
    info = get_registry("generators").info("tiny")
    assert (info.distribution, info.version) == ("p2pkit-tiny", "1.2.3")
    G = p2pkit.create_generator("tiny", width=2)
    assert G.net[0].out_channels == 2
    from p2pkit.testing import check_generator

    check_generator(G, size=8)


def test_plugin_whose_import_raises_is_reported_and_others_keep_working(site, p2pkit_registry):
    make_distribution(
        site,
        "p2pkit-broken",
        "0.1",
        "p2pkit_broken",
        "raise RuntimeError('libfoo.so: cannot open shared object file')\n",
        "[p2pkit.generators]\nbroken = p2pkit_broken:make\n",
    )
    make_distribution(
        site,
        "p2pkit-tiny",
        "1.0",
        "p2pkit_tiny2",
        TINY_GENERATOR,
        "[p2pkit.generators]\ntiny2 = p2pkit_tiny2:tiny\n",
    )
    registry = get_registry("generators")
    with pytest.warns(RuntimeWarning, match=r"'broken'.*p2pkit-broken 0\.1.*RuntimeError"):
        failures = registry.load_all()
    assert [(f.name, f.distribution, f.version) for f in failures] == [
        ("broken", "p2pkit-broken", "0.1")
    ]
    assert "libfoo.so" in failures[0].error
    with pytest.raises(PluginLoadError, match="p2pkit-broken"):
        p2pkit.create_generator("broken")
    assert p2pkit.create_generator("tiny2") is not None
    assert p2pkit.create_generator("unet_128", ngf=2) is not None


def test_strict_mode_turns_a_plugin_failure_into_an_error(site, p2pkit_registry, monkeypatch):
    make_distribution(
        site,
        "p2pkit-broken",
        "0.1",
        "p2pkit_broken3",
        "import this_module_does_not_exist\n",
        "[p2pkit.generators]\nbroken = p2pkit_broken3:make\n",
    )
    monkeypatch.setenv("P2PKIT_STRICT_PLUGINS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PluginLoadError, match="ModuleNotFoundError"):
            get_registry("generators").load_all()


def test_two_providers_of_one_name_give_an_error_naming_both(site, p2pkit_registry):
    for dist in ("p2pkit-one", "p2pkit-two"):
        module = dist.replace("-", "_")
        make_distribution(
            site,
            dist,
            "1.0",
            module,
            TINY_GENERATOR,
            f"[p2pkit.generators]\nsame = {module}:tiny\n",
        )
    with pytest.raises(RegistryError, match=r"'same' is provided by both p2pkit-") as err:
        p2pkit.create_generator("same")
    assert "p2pkit-one 1.0" in str(err.value) and "p2pkit-two 1.0" in str(err.value)
    assert set(get_registry("generators").conflicts()) == {"same"}


def test_disabling_autoload_keeps_only_the_builtins(site, p2pkit_registry, monkeypatch):
    make_distribution(
        site,
        "p2pkit-tiny",
        "1.0",
        "p2pkit_tiny4",
        TINY_GENERATOR,
        "[p2pkit.generators]\ntiny4 = p2pkit_tiny4:tiny\n",
    )
    monkeypatch.setenv("P2PKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    from p2pkit.registry import refresh_plugins

    refresh_plugins()
    names = p2pkit.list_generators()
    assert "tiny4" not in names
    assert "unet_256" in names


def test_importing_p2pkit_does_not_import_torch_or_timm():
    code = (
        "import sys, p2pkit; p2pkit.list_generators(); "
        "print('torch' in sys.modules, 'timm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_rejected_option_value_is_a_user_error_naming_the_component():
    from p2pkit.errors import OptionValueError

    with pytest.raises(OptionValueError, match="task 'inpainting': mask must be"):
        p2pkit.create_task("inpainting", mask="square")
