"""Run folders: resolving a recipe and its data for a run, and naming the folder."""

from __future__ import annotations

from pathlib import Path

from p2pkit.config import Recipe, apply_overrides, load_recipe
from p2pkit.errors import ConfigError


def resolve_recipe(
    recipe: str | Path | Recipe,
    overrides: tuple[str, ...] | list[str] = (),
    data_root: str | Path | None = None,
) -> Recipe:
    """Load ``recipe`` (name, path or object), apply ``--set`` overrides and ``--data-root``."""
    if isinstance(recipe, Recipe):
        resolved = apply_overrides(recipe, list(overrides))
    else:
        resolved = load_recipe(recipe, list(overrides))
    if data_root is not None:
        resolved.data.root = str(data_root)
    return resolved


def next_run_dir(out: Path, name: str) -> Path:
    """``out/name``, or ``out/name-2``, ``-3``... when that folder already holds a run."""
    candidate = out / name
    n = 2
    while candidate.exists() and any(candidate.iterdir()):
        candidate = out / f"{name}-{n}"
        n += 1
    return candidate


def ensure_data(recipe: Recipe, *, progress: bool = True, download: bool = False) -> str | None:
    """Make sure ``recipe`` has its data, setting ``data.root`` when it was found elsewhere.

    A recipe's ``data.source`` that names a registered data source (the ``p2pkit.sources``
    entry-point group: ``synth``, the pix2pix datasets, or a plugin's) is provided through it,
    into ``data.root``, or into ``NAME`` in the data home (``data/NAME``, or
    ``$P2PKIT_DATA/NAME``) when ``data.root`` is empty:

    * a source that makes its data locally (``synth``) is provided on first use, so the
      offline default needs no step before it. ``synth`` generates at the recipe's
      ``data.crop_size`` with dataset seed 0, not ``train.seed``: runs that share the folder
      must see the same images whatever their training seed (``p2pkit data synth --seed``
      makes a different set);
    * a source that downloads is fetched only with ``download``; without it, missing data
      is an error that says how to get it.

    A folder that exists already is used as it is. Any other ``data.source`` (a description)
    needs ``data.root``, or a folder of its name in the data home.

    Args:
        recipe: the resolved recipe; its ``data.root`` is set to the folder found or
            provided.
        progress: show progress and messages while generating or downloading.
        download: download the recipe's dataset when it is missing.

    Returns:
        A line that names the folder used, when it is not the ``data.root`` given; None
        when it is.
    """
    from p2pkit.config import data_folder, source_folder
    from p2pkit.data.download import DATA_HOME_ENV
    from p2pkit.data.sources import find_source, short_name

    root = Path(recipe.data.root) if recipe.data.root else None
    if root is not None and root.exists():
        return None
    name = recipe.data.source
    home = source_folder(short_name(name))
    found = data_folder(recipe.data)  # the one lookup evaluate and the workers use too
    if root is None and found:
        recipe.data.root = found
        return f"data: {found} (the data home; set {DATA_HOME_ENV} or pass --data-root to change)"
    source = find_source(name)
    target = root if root is not None else home
    if source is not None and target is not None and (download or not source.downloads):
        provided = source.provide(target, size=recipe.data.crop_size, progress=progress)
        if root is not None and Path(provided) == root:
            return None
        recipe.data.root = str(provided)
        how = "downloaded" if source.downloads else f"made by data source {name}"
        return f"data: {provided} ({how})"
    if download:
        raise ConfigError(
            f"--download: recipe '{recipe.name}' has data.source {name!r}, which p2pkit "
            f"cannot download (it can: {', '.join(_downloadable())}); pass --data-root DIR "
            "instead"
        )
    if root is None:
        where = f", or its dataset in {home}" if home is not None else ""
        hint = ""
        if source is not None:
            command = "download" if name in _downloadable() else "get"
            hint = f": get it there with `p2pkit data {command} {name}`, or add --download"
        raise ConfigError(f"recipe '{recipe.name}' needs --data-root DIR{where}{hint}")
    raise ConfigError(f"data.root {root} does not exist; check the path given to --data-root")


def _downloadable() -> list[str]:
    """The registered sources that download their data, without importing any plugin's."""
    from p2pkit.data.download import DATASETS
    from p2pkit.registry import get_registry

    return [n for n in get_registry("sources").names() if n in DATASETS]
