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
    resolved = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    apply_overrides(resolved, list(overrides))
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


def ensure_data(recipe: Recipe, *, progress: bool = True) -> None:
    """Check ``data.root`` exists; generate the synthetic set when the recipe asks for it.

    A recipe whose ``data.source`` is ``synth`` gets its dataset generated on first
    use, so the offline default needs no step before it. Its dataset seed is always 0,
    not ``train.seed``: runs that share the folder must see the same images whatever
    their training seed (``p2pkit data synth --seed`` makes a different set). Other
    missing data is an error that says how to get it.
    """
    root = Path(recipe.data.root) if recipe.data.root else None
    if root is not None and root.exists():
        return
    if recipe.data.source == "synth":
        if root is None:
            raise ConfigError("data.root is empty: set it to where the synthetic set should go")
        from p2pkit.data.synth import synthesize_facades

        synthesize_facades(root, size=recipe.data.crop_size, seed=0, progress=progress)
        return
    from p2pkit.data.download import DATASETS

    if root is None:
        hint = ""
        if recipe.data.source in DATASETS:
            hint = (
                f"; get it with `p2pkit data download {recipe.data.source} --to data` and pass "
                f"--data-root data/{recipe.data.source}"
            )
        raise ConfigError(f"recipe '{recipe.name}' needs --data-root DIR{hint}")
    raise ConfigError(f"data.root {root} does not exist; check the path given to --data-root")
