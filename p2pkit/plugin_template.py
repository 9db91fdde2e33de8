"""``p2pkit plugins new NAME``: write a ready plugin distribution to start from.

[`write_plugin`][p2pkit.plugin_template.write_plugin] writes a folder that installs and tests
as it is:

```text
NAME/
  pyproject.toml                  hatchling; the entry points of every component
  README.md
  src/PACKAGE/__init__.py         requires the plugin API; locates the recipe files
  src/PACKAGE/network.py          a small residual generator and its factory
  src/PACKAGE/sources.py          a data source: coloured-block pairs made locally
  src/PACKAGE/PREFIX-synth.toml   a recipe: the synthetic facades with that generator
  src/PACKAGE/PREFIX-blocks.toml  a recipe: the generator on the data source's blocks
  tests/test_PACKAGE.py           check_generator, check_source, check_recipe,
                                  smoke_train_and_translate
```

``PACKAGE`` is NAME in lower case with ``-`` and ``.`` as ``_``; ``PREFIX`` is PACKAGE
without a leading ``p2pkit_``, and names the components (``PREFIX_residual``,
``synth-facades-PREFIX``, ``blocks-PREFIX``) so that they do not collide with p2pkit's own.

This module does not import torch.

Why this module is long: most of it is the text of the files it writes, kept side by side so
that a name changed in one template shows where the others use it.
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
        source: the data source's registered name (``blocks-mynet``), also the name of the
            recipe that trains on it.
    """

    def __init__(self, distribution: str) -> None:
        self.distribution = distribution
        self.package = re.sub(r"[-.]+", "_", distribution).lower()
        self.prefix = self.package.removeprefix("p2pkit_") or self.package
        self.generator = f"{self.prefix}_residual"
        self.recipe = f"synth-facades-{self.prefix.replace('_', '-')}"
        self.source = f"blocks-{self.prefix.replace('_', '-')}"


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
description = "p2pkit plugin: a small residual generator, a data source and two recipes."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["p2pkit>=0.1", "torch>=2.1"]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# One table per kind of component; each key is a name users type, each value a factory.
[project.entry-points."p2pkit.generators"]
$generator = "$package.network:$generator"

[project.entry-points."p2pkit.sources"]
$source = "$package.sources:$source_factory"

[project.entry-points."p2pkit.recipes"]
$recipe = "$package:synth_recipe"
$source = "$package:blocks_recipe"

[tool.hatch.build.targets.wheel]
packages = ["src/$package"]

[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.ruff]
line-length = 100
"""

_INIT = '''\
"""$distribution: a p2pkit plugin with the generator ``$generator``, the data source
``$source`` and the recipes ``$recipe`` and ``$source``.

The generator lives in ``$package.network``, which imports torch; this module and the data
source do not, so that ``p2pkit recipes list`` stays fast.
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


def blocks_recipe() -> Traversable:
    """``$source``: the recipe that trains on this package's data source."""
    return files(__name__) / "$prefix_dash-blocks.toml"
'''

_SOURCES = '''\
"""``$source``: a data source that makes a small aligned dataset locally (numpy and Pillow).

Each pair is a label map of coloured rectangles (B, right half) and a "photo" rendered from
it (A, left half: the same blocks, shaded, with a little noise), the facades layout, so
labels -> photo is ``BtoA``. p2pkit provides the set whenever a recipe whose ``data.source``
is ``$source`` needs it: into ``data.root``, or into the data home when that is empty.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
from p2pkit.errors import DataError
from p2pkit.ranges import Range
from PIL import Image

# Options are typed like any component's: p2pkit checks them before the factory runs.
Count = Annotated[int, Range(1, 10_000)]

_MARKER = "$source.json"


def _pair(rng: np.random.Generator, size: int) -> np.ndarray:
    """One ``size`` x ``2 * size`` RGB pair, photo (A) | labels (B), uint8."""
    labels = np.zeros((size, size, 3), np.float32)
    labels[:] = rng.integers(0, 256, 3)
    for _ in range(int(rng.integers(2, 6))):
        top, left = rng.integers(0, size - 4, 2)
        height, width = rng.integers(4, size // 2 + 1, 2)
        labels[top : top + height, left : left + width] = rng.integers(0, 256, 3)
    ramp = np.linspace(0.7, 1.0, size, dtype=np.float32)[:, None, None]
    photo = labels * ramp + rng.normal(0, 6, labels.shape)
    return np.clip(np.concatenate([photo, labels], axis=1), 0, 255).astype(np.uint8)


class BlocksSource:
    """Writes ``n_train`` + ``n_val`` pairs (seed 0) into ``train/`` and ``val/``."""

    downloads = False

    def __init__(self, n_train: int = 64, n_val: int = 8) -> None:
        self.n_train, self.n_val = n_train, n_val
        self.description = (
            f"coloured blocks, made locally: {n_train} train + {n_val} val aligned pairs "
            "(photo | labels) at the recipe's crop size"
        )

    def provide(self, folder: Path, *, size: int | None = None, progress: bool = True) -> Path:
        """Write the set into ``folder`` at ``size`` px (default 64) unless it is there."""
        folder = Path(folder)
        settings = {"n_train": self.n_train, "n_val": self.n_val, "size": size or 64}
        marker = folder / _MARKER
        if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == settings:
            return folder
        if folder.is_dir() and any(folder.iterdir()) and not marker.is_file():
            raise DataError(
                f"{folder} is not empty and holds no $source set; choose a new folder"
            )
        rng = np.random.default_rng(0)
        for split, count in (("train", self.n_train), ("val", self.n_val)):
            (folder / split).mkdir(parents=True, exist_ok=True)
            for i in range(1, count + 1):
                image = _pair(rng, settings["size"])
                Image.fromarray(image).save(folder / split / f"{i}.png")
        marker.write_text(json.dumps(settings), encoding="utf-8")
        return folder


def $source_factory(n_train: Count = 64, n_val: Count = 8) -> BlocksSource:
    """The factory the entry point names: ``$source``, made locally on first use."""
    return BlocksSource(n_train, n_val)
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

_BLOCKS_RECIPE = """\
# This plugin's generator on this plugin's data source: p2pkit makes the data in the data
# home (data/$source, or $$P2PKIT_DATA/$source) the first time the recipe runs.
name = "$source"
description = "Coloured-block labels -> shaded blocks with the $generator generator"
paper = "none: the plugin template's own data"

[task]
name = "translation"

[data]
dataset = "aligned"
source = "$source"
direction = "BtoA"
load_size = 72
crop_size = 64

[generator]
name = "$generator"
width = 16

[discriminator]
name = "patchgan_70"
ndf = 16

[objective]
name = "l1_cgan"

[train]
epochs = 4
epochs_decay = 2
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
    check_source,
    smoke_train_and_translate,
)

# Installed, so imported for real: a broken install fails here instead of being skipped.
import $package  # noqa: F401


def test_components_are_found_through_their_entry_points():
    found = [
        ("generators", "$generator"),
        ("recipes", "$recipe"),
        ("recipes", "$source"),
        ("sources", "$source"),
    ]
    for kind, name in found:
        assert p2pkit.get_registry(kind).info(name).distribution == "$canonical"


def test_generator_passes_the_conformance_check():
    G = p2pkit.create_generator("$generator", width=8)
    check_generator(G)
    check_generator(G, size=32, batch_size=1)


def test_recipes_pass_check_recipe():
    assert check_recipe("$recipe").generator.name == "$generator"
    assert check_recipe("$source").data.source == "$source"


def test_data_source_passes_the_conformance_check(tmp_path):
    source = p2pkit.get_registry("sources").create("$source", n_train=2, n_val=1)
    folder = check_source(source, tmp_path / "blocks", size=32)
    assert len(list((folder / "train").iterdir())) == 2


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
- the data source `$source` (group `p2pkit.sources`): coloured-block pairs made locally,
  without torch;
- the recipes `$recipe` (the offline synthetic facades setting with that generator) and
  `$source` (the generator on the data source's blocks), group `p2pkit.recipes`.

Install it, see it, use it:

    pip install -e .
    p2pkit list generators                 # $generator from $distribution
    p2pkit list sources                    # $source from $distribution
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
        "source": names.source,
        "source_factory": names.source.replace("-", "_"),
        "api_major": PLUGIN_API_VERSION.split(".")[0],
    }
    package = root / "src" / names.package
    files = {
        root / "pyproject.toml": _PYPROJECT,
        root / "README.md": _README,
        package / "__init__.py": _INIT,
        package / "network.py": _NETWORK,
        package / "sources.py": _SOURCES,
        package / f"{values['prefix_dash']}-synth.toml": _RECIPE,
        package / f"{values['prefix_dash']}-blocks.toml": _BLOCKS_RECIPE,
        root / "tests" / f"test_{names.package}.py": _TEST,
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(text).substitute(values), encoding="utf-8")
    return root
