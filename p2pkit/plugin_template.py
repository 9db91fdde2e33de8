"""``p2pkit plugins new NAME``: write a ready plugin distribution to start from.

[`write_plugin`][p2pkit.plugin_template.write_plugin] writes a folder that installs and tests
as it is:

```text
NAME/
  pyproject.toml                  hatchling; the entry points of the generator and the recipe
  README.md
  src/PACKAGE/__init__.py         requires the plugin API; locates the recipe file
  src/PACKAGE/network.py          a small residual generator and its factory
  src/PACKAGE/PREFIX-synth.toml   a recipe: the synthetic facades with that generator
  tests/test_PACKAGE.py           check_generator, check_recipe, smoke_train_and_translate
```

``PACKAGE`` is NAME in lower case with ``-`` and ``.`` as ``_``; ``PREFIX`` is PACKAGE
without a leading ``p2pkit_``, and names the components (``PREFIX_residual``,
``synth-facades-PREFIX``) so that they do not collide with p2pkit's own.

This module does not import torch.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

from p2pkit.api_version import PLUGIN_API_VERSION
from p2pkit.errors import ConfigError

__all__ = ["PluginNames", "plugin_names", "write_plugin"]

_DIST = re.compile(r"[A-Za-z][A-Za-z0-9._-]*[A-Za-z0-9]|[A-Za-z]")


class PluginNames:
    """The names a new plugin distribution uses, derived from its distribution name.

    Attributes:
        distribution: the distribution name as given (``p2pkit-mynet``).
        package: the import package (``p2pkit_mynet``).
        prefix: the prefix of its component names (``mynet``).
        generator: the generator's registered name (``mynet_residual``).
        recipe: the recipe's registered name (``synth-facades-mynet``).
    """

    def __init__(self, distribution: str) -> None:
        self.distribution = distribution
        self.package = re.sub(r"[-.]+", "_", distribution).lower()
        self.prefix = self.package.removeprefix("p2pkit_") or self.package
        self.generator = f"{self.prefix}_residual"
        self.recipe = f"synth-facades-{self.prefix.replace('_', '-')}"


def plugin_names(name: str) -> PluginNames:
    """The names of a plugin distribution called ``name``.

    Raises:
        ConfigError: ``name`` is not a distribution name that is also a Python package name
            once ``-`` and ``.`` become ``_``.
    """
    if not _DIST.fullmatch(name):
        raise ConfigError(
            f"plugin name {name!r}: use letters, digits, '-', '_' and '.', starting with a "
            "letter, e.g. p2pkit-mynet"
        )
    names = PluginNames(name)
    if not names.package.isidentifier() or keyword.iskeyword(names.package):
        raise ConfigError(f"plugin name {name!r} gives no Python package name; e.g. p2pkit-mynet")
    return names


_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.18"]
build-backend = "hatchling.build"

[project]
name = "$distribution"
version = "0.1.0"
description = "p2pkit plugin: a small residual generator and a recipe that trains it."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["p2pkit>=0.1", "torch>=2.1"]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# One table per kind of component; each key is a name users type, each value a factory.
[project.entry-points."p2pkit.generators"]
$generator = "$package.network:$generator"

[project.entry-points."p2pkit.recipes"]
$recipe = "$package:synth_recipe"

[tool.hatch.build.targets.wheel]
packages = ["src/$package"]

[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.ruff]
line-length = 100
"""

_INIT = '''\
"""$distribution: a p2pkit plugin with the generator ``$generator`` and the recipe
``$recipe``.

The generator lives in ``$package.network``, which imports torch; this module does not,
so that ``p2pkit recipes list`` stays fast.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

import p2pkit

# Fails as a cleanly reported broken plugin on a p2pkit without this plugin API.
p2pkit.require_api("$api_major")

__version__ = "0.1.0"


def synth_recipe() -> Traversable:
    """``$recipe``: the recipe file shipped inside this package."""
    return files(__name__) / "$prefix_dash-synth.toml"
'''

_NETWORK = '''\
"""``$generator``: a small fully convolutional residual generator."""

from __future__ import annotations

from typing import Annotated

import torch
from p2pkit.models import Channels, Width, init_weights
from p2pkit.ranges import Range
from torch import nn

#: Number of residual blocks.
Blocks = Annotated[int, Range(1, 16)]


class ResidualGenerator(nn.Module):
    """3x3 convolutions with padding and residual blocks: any image size works.

    Shapes: (N, in_channels, H, W) in [-1, 1] -> (N, out_channels, H, W) in [-1, 1].
    """

    def __init__(
        self, in_channels: int = 3, out_channels: int = 3, width: int = 32, blocks: int = 2
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.size_multiple = 1  # no downsampling: no size constraint
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(width, width, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1),
            )
            for _ in range(blocks)
        )
        self.head = nn.Sequential(nn.Conv2d(width, out_channels, 3, padding=1), nn.Tanh())
        init_weights(self)  # N(0, 0.02), like the paper's networks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x``; the output has the input's height and width."""
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


def $generator(
    in_channels: Channels = 3, out_channels: Channels = 3, width: Width = 32, blocks: Blocks = 2
) -> ResidualGenerator:
    """The factory the entry point names; its keyword options are the recipe's keys."""
    return ResidualGenerator(in_channels, out_channels, width, blocks)
'''

_RECIPE = """\
# The offline synth-facades setting (128 px, generated on first use) with this plugin's
# generator: a quick CPU run that exercises the plugin end to end.
name = "$recipe"
description = "Synthetic facade labels -> pseudo-photo with the $generator generator"
paper = "Section 4 labels -> photo setting at 128 px, with a plugin generator"

[task]
name = "translation"

[data]
dataset = "aligned"
root = "data/synth-facades"
source = "synth"
direction = "BtoA"
load_size = 142
crop_size = 128

[generator]
name = "$generator"
width = 32

[discriminator]
name = "patchgan_70"
ndf = 32

[objective]
name = "l1_cgan"

[train]
epochs = 6
epochs_decay = 4
batch_size = 4
"""

_TEST = '''\
"""$distribution fits p2pkit: checked with p2pkit.testing, through its installed entry points."""

from importlib import metadata

import pytest

try:
    metadata.distribution("$distribution")
except metadata.PackageNotFoundError:
    pytest.skip("$distribution is not installed: pip install -e .", allow_module_level=True)

import p2pkit
from p2pkit.testing import (
    check_generator,
    check_recipe,
    smoke_train_and_translate,
)

# Installed, so imported for real: a broken install fails here instead of being skipped.
import $package  # noqa: F401


def test_components_are_found_through_their_entry_points():
    for kind, name in (("generators", "$generator"), ("recipes", "$recipe")):
        assert p2pkit.get_registry(kind).info(name).distribution == "$canonical"


def test_generator_passes_the_conformance_check():
    G = p2pkit.create_generator("$generator", width=8)
    check_generator(G)
    check_generator(G, size=32, batch_size=1)


def test_recipe_passes_check_recipe():
    assert check_recipe("$recipe").generator.name == "$generator"


def test_recipe_trains_and_translates(tmp_path):
    tiny = (
        "generator.width=4",
        "discriminator.ndf=4",
        "data.load_size=36",
        "data.crop_size=32",
        "train.batch_size=2",
        "train.precision=fp32",
    )
    written = smoke_train_and_translate("$recipe", tmp_path, overrides=tiny)
    assert written and all(p.is_file() for p in written)
'''

_README = """\
# $distribution

A p2pkit plugin made by `p2pkit plugins new $distribution`. It adds:

- the generator `$generator` (entry-point group `p2pkit.generators`): a small residual
  network; options `width` (1 to 256, default 32) and `blocks` (1 to 16, default 2);
- the recipe `$recipe` (group `p2pkit.recipes`): the offline synthetic facades setting
  with that generator.

Install it, see it, use it:

    pip install -e .
    p2pkit list generators                 # $generator from $distribution
    p2pkit plugins check $distribution     # imports and checks every component
    p2pkit run recipe $recipe

Test it (the tests use p2pkit.testing; they skip if the package is not installed and fail
if it is installed but broken):

    python -m pytest

The package calls `p2pkit.require_api("$api_major")` when it is imported: on a p2pkit
without that plugin API it is reported as a broken plugin instead of failing later.
"""


def write_plugin(name: str, to: str | Path = ".") -> Path:
    """Write the plugin distribution ``name`` into ``to/name``.

    Args:
        name: the distribution name, e.g. ``p2pkit-mynet``.
        to: the folder to create it in.

    Returns:
        The new folder.

    Raises:
        ConfigError: a bad name, or the folder exists and is not empty.
    """
    names = plugin_names(name)
    root = Path(to) / name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"{root} already exists and is not empty; choose another --to or NAME")
    values = {
        "distribution": names.distribution,
        "canonical": names.distribution.replace("_", "-").lower(),
        "package": names.package,
        "prefix_dash": names.prefix.replace("_", "-"),
        "generator": names.generator,
        "recipe": names.recipe,
        "api_major": PLUGIN_API_VERSION.split(".")[0],
    }
    package = root / "src" / names.package
    files = {
        root / "pyproject.toml": _PYPROJECT,
        root / "README.md": _README,
        package / "__init__.py": _INIT,
        package / "network.py": _NETWORK,
        package / f"{values['prefix_dash']}-synth.toml": _RECIPE,
        root / "tests" / f"test_{names.package}.py": _TEST,
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(text).substitute(values), encoding="utf-8")
    return root
