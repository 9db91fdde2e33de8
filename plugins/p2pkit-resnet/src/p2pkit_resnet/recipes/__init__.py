"""The recipes of p2pkit-resnet, TOML files shipped inside this package.

Each ``p2pkit.recipes`` entry point names a function here; p2pkit calls it and reads the
`importlib.resources` file it returns, so the recipes work from a wheel and from an
editable install alike.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def _recipe(name: str) -> Traversable:
    return files(__name__) / f"{name}.toml"


def facades_resnet() -> Traversable:
    """``facades-resnet``: the facades recipe with the 9-block ResNet generator."""
    return _recipe("facades-resnet")


def synth_facades_resnet() -> Traversable:
    """``synth-facades-resnet``: synthetic facades at 128 px with a narrow ResNet, for a CPU."""
    return _recipe("synth-facades-resnet")


def stripes_resnet() -> Traversable:
    """``stripes-resnet``: this package's ``stripes`` source at 64 px with a 6-block ResNet."""
    return _recipe("stripes-resnet")
