"""Run folders: resolving a recipe and its data for a run, and naming the folder."""

from __future__ import annotations

from pathlib import Path

from p2pkit.config import Recipe, apply_overrides, load_recipe
from p2pkit.errors import ConfigError, DataError


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

    A recipe whose ``data.source`` is ``synth`` gets its dataset generated on first
    use, so the offline default needs no step before it. Its dataset seed is always 0,
    not ``train.seed``: runs that share the folder must see the same images whatever
    their training seed (``p2pkit data synth --seed`` makes a different set).

    A recipe without ``data.root`` whose source is a dataset's name finds it in the data
    home (``data/NAME``, or ``$P2PKIT_DATA/NAME``), where ``p2pkit data download NAME``
    puts it. With ``download`` a dataset p2pkit knows is downloaded there first when it
    is missing (into the parent of ``data.root`` when that is given). Other missing data
    is an error that says how to get it.

    Args:
        recipe: the resolved recipe; its ``data.root`` is set to the folder found or
            downloaded.
        progress: show progress and messages while generating or downloading.
        download: download the recipe's dataset when it is missing.

    Returns:
        A line that names the folder used, when it is not the ``data.root`` given; None
        when it is.
    """
    from p2pkit.config import data_folder, source_folder
    from p2pkit.data.download import DATA_HOME_ENV, DATASETS

    root = Path(recipe.data.root) if recipe.data.root else None
    if root is not None and root.exists():
        return None
    if recipe.data.source == "synth":
        if root is None:
            raise ConfigError("data.root is empty: set it to where the synthetic set should go")
        from p2pkit.data.synth import synthesize_facades

        synthesize_facades(root, size=recipe.data.crop_size, seed=0, progress=progress)
        return None
    source, home = recipe.data.source, source_folder(recipe.data.source)
    found = data_folder(recipe.data)  # the one lookup evaluate and the workers use too
    if root is None and found:
        recipe.data.root = found
        return f"data: {found} (the data home; set {DATA_HOME_ENV} or pass --data-root to change)"
    if download:
        if source not in DATASETS:
            raise ConfigError(
                f"--download: recipe '{recipe.name}' has data.source {source!r}, which p2pkit "
                f"cannot download (it can: {', '.join(DATASETS)}); pass --data-root DIR instead"
            )
        target = root if root is not None else home
        if target is None or target.name != source:
            # download() unpacks NAME.tar.gz into DIR/NAME; any other folder name would miss it.
            raise ConfigError(
                f"--download unpacks {source} into a folder named {source}, not {target}; "
                f"pass --data-root DIR/{source} or leave --data-root out"
            )
        fetched = _fetch_dataset(source, target.parent, progress=progress)
        recipe.data.root = str(fetched)
        return f"data: {fetched} (downloaded)"
    if root is None:
        where = f", or its dataset in {home}" if home is not None else ""
        hint = ""
        if source in DATASETS:
            hint = f": get it there with `p2pkit data download {source}`, or add --download"
        raise ConfigError(f"recipe '{recipe.name}' needs --data-root DIR{where}{hint}")
    raise ConfigError(f"data.root {root} does not exist; check the path given to --data-root")


def _fetch_dataset(source: str, dest: Path, *, progress: bool) -> Path:
    """Download dataset ``source`` into ``dest/source``; offline, say where the archive goes."""
    from p2pkit.data.download import DATASETS, download

    archive = dest / f"{source}.tar.gz"
    try:
        return download(source, dest, progress=progress)
    except DataError as exc:
        if archive.is_file():
            raise  # it was fetched: the archive itself is wrong, as the error says
        reason = " ".join(str(exc).split())
        raise DataError(
            f"{reason}; to get it by hand, save {DATASETS[source].url} as {archive} and run "
            "the same command again"
        ) from None
