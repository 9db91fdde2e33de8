"""Locates the recipes that ship with p2pkit, for the ``p2pkit.recipes`` entry points.

p2pkit's own recipes are TOML files in the project's top-level ``recipes/``
folder, where the project layout puts one file per task and where contributors edit
them; a wheel carries them as the package data ``p2pkit/_recipes``, read through
`importlib.resources`. Each entry point names an attribute of this module
(``facades = "p2pkit.recipe_files:facades"``), and the module resolves the attribute
to the TOML file's path. A hyphen in a recipe's name is an underscore in its attribute
(``cityscapes_photo2labels``).

Why not move the files into the package: the project's layout keeps recipes at the
top level next to ``plugins/`` and ``docs/``, and an editable install (how the
project is developed and tested) then reads them in place, with no copy to go stale.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# The installed wheel's package data first, then the source checkout's folder.
_SEARCH = (
    Path(str(resources.files("p2pkit").joinpath("_recipes"))),
    Path(__file__).resolve().parent.parent / "recipes",
)


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
