"""``p2pkit run recipe NAME`` and ``p2pkit train --config FILE``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from p2pkit.cli.common import console


def training_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``run recipe`` and ``train``."""
    options = [
        click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override a recipe field, e.g. --set train.epochs=5 (repeatable).",
        ),
        click.option(
            "--data-root",
            type=click.Path(file_okay=False, path_type=Path),
            help="Dataset folder (overrides data.root).",
        ),
        click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("runs"),
            show_default=True,
            help="Folder that holds run folders.",
        ),
        click.option("--name", help="Run name (default: the recipe's name, made unique)."),
        click.option(
            "--resume",
            is_flag=True,
            help="Continue the run OUT/NAME from its latest checkpoint.",
        ),
        click.option(
            "--print-config", is_flag=True, help="Print the resolved recipe as TOML and exit."
        ),
        click.option("--no-progress", is_flag=True, help="No live progress display."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def start_training(
    recipe_ref: str | Path,
    overrides: tuple[str, ...],
    data_root: Path | None,
    out: Path,
    name: str | None,
    resume: bool,
    print_config: bool,
    no_progress: bool,
) -> None:
    """Resolve the recipe, pick the run folder and train."""
    from p2pkit.config import recipe_to_toml
    from p2pkit.engine.runs import ensure_data, next_run_dir, resolve_recipe
    from p2pkit.errors import ConfigError

    if resume:
        from p2pkit.engine.trainer import load_run_recipe

        run_dir = out / (name or _recipe_name(recipe_ref))
        recipe = resolve_recipe(load_run_recipe(run_dir), overrides, data_root)
    else:
        recipe = resolve_recipe(recipe_ref, overrides, data_root)
        run_dir = next_run_dir(out, name or recipe.name)
    if print_config:
        click.echo(recipe_to_toml(recipe), nl=False)
        return
    if resume and not (run_dir / "checkpoints").is_dir():
        raise ConfigError(f"{run_dir} has no checkpoints to resume; drop --resume to start it")
    ensure_data(recipe, progress=not no_progress)
    from p2pkit.engine.trainer import Trainer

    out_console = console()
    trainer = Trainer(recipe, run_dir, resume=resume, progress=not no_progress, console=out_console)
    result = trainer.fit()
    if result.interrupted:
        where = "" if out == Path("runs") else f" --out {out}"
        out_console.print(
            f"resume with: p2pkit run recipe {recipe.name} --resume --name {run_dir.name}{where}"
        )


def _recipe_name(recipe_ref: str | Path) -> str:
    """The run name a new run of ``recipe_ref`` gets: the TOML's ``name``, else its stem."""
    from p2pkit.config import tomllib

    path = Path(recipe_ref)
    if path.suffix != ".toml":
        return str(recipe_ref)
    try:
        name = tomllib.loads(path.read_text()).get("name")
    except (OSError, tomllib.TOMLDecodeError):
        name = None
    return name if isinstance(name, str) and name else path.stem


@click.group("run")
def run_group() -> None:
    """Run a registered recipe (see `p2pkit recipes list`)."""


@run_group.command(
    "recipe",
    epilog=(
        "Examples:\n\n"
        "  p2pkit run recipe synth-facades\n\n"
        "  p2pkit run recipe facades --data-root ../shared/datasets/facades "
        "--set train.epochs=5"
    ),
)
@click.argument("recipe")
@training_options
def run_recipe(recipe: str, **options: Any) -> None:
    """Train RECIPE (a registered name or a .toml path) in a new run folder."""
    start_training(recipe, **options)


@click.command(
    "train",
    epilog="Example: p2pkit train --config my_recipe.toml --data-root data/mine",
)
@click.option(
    "--config",
    "config",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Recipe TOML file.",
)
@training_options
def train_command(config: Path, **options: Any) -> None:
    """Train from the recipe in a TOML file."""
    start_training(config, **options)
