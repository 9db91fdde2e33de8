"""Locates the recipes that ship with p2pkit, for the ``p2pkit.recipes`` entry points.

p2pkit's own recipes are TOML files in the project's top-level ``recipes/``
folder; a wheel carries them as ``p2pkit/_recipes``. Each entry point names an
attribute of this module (``facades = "p2pkit.recipe_files:facades"``), and the
module resolves the attribute to the TOML file's path. A hyphen in a recipe's name
is an underscore in its attribute (``cityscapes_photo2labels``).
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SEARCH = (_HERE / "_recipes", _HERE.parent / "recipes")


def recipe_path(name: str) -> Path:
    """Path of the built-in recipe ``name``; raises AttributeError if there is none."""
    for folder in _SEARCH:
        for candidate in (name, name.replace("_", "-")):
            path = folder / f"{candidate}.toml"
            if path.is_file():
                return path
    raise AttributeError(f"no built-in recipe file for '{name}' in {_SEARCH[0]} or {_SEARCH[1]}")


def __getattr__(name: str) -> Path:
    if name.startswith("__"):
        raise AttributeError(name)
    return recipe_path(name)
