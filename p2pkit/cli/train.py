"""``p2pkit run recipe NAME`` and ``p2pkit train --config FILE``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
            help="Dataset folder (overrides data.root). Default: data.root, else the recipe's "
            "data.source in the data home (data/NAME, or $P2PKIT_DATA/NAME).",
        ),
        click.option(
            "--download",
            is_flag=True,
            help="Download the recipe's dataset first when it is missing (into the data home, "
            "as `p2pkit data download NAME` does).",
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
        click.option(
            "--no-progress",
            is_flag=True,
            help="No live progress display: one plain line per train.log_every iterations.",
        ),
        click.option(
            "--nproc",
            type=click.IntRange(min=1),
            default=None,
            metavar="N",
            help="Train with N processes on this machine (one per GPU; gloo on CPUs), "
            "started by torch's elastic launcher as `torchrun --standalone "
            "--nproc_per_node=N` would.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@dataclass(frozen=True)
class TrainingRequest:
    """What ``run recipe`` and ``train`` were asked to do (their shared options).

    Attributes:
        command: the words that name the recipe (``["run", "recipe", NAME]`` or
            ``["train", "--config", FILE]``), for ``--nproc`` to hand to its workers.
        recipe_ref: the recipe name or TOML path.
    """

    command: list[str]
    recipe_ref: str | Path
    overrides: tuple[str, ...]
    data_root: Path | None
    out: Path
    name: str | None
    resume: bool
    no_progress: bool
    download: bool = False

    def resolve(self) -> tuple[Any, Path | None]:
        """The recipe to train and, when resuming, the run folder (None for a new run)."""
        from p2pkit.engine.runs import resolve_recipe
        from p2pkit.engine.trainer import load_run_recipe
        from p2pkit.files import plain_name

        if self.name is not None:
            plain_name(self.name, "--name", example="facades-2")
        if self.resume:
            run_dir = self.out / plain_name(
                self.name or _recipe_name(self.recipe_ref), "the run name", example="facades"
            )
            recipe = load_run_recipe(run_dir)
            return resolve_recipe(recipe, self.overrides, self.data_root), run_dir
        return resolve_recipe(self.recipe_ref, self.overrides, self.data_root), None

    def worker_args(self) -> list[str]:
        """The command line each ``--nproc`` worker runs: this one without ``--nproc``."""
        from p2pkit.cli import debug_enabled

        args = ["--debug"] if debug_enabled(click.get_current_context(silent=True)) else []
        args += self.command
        for override in self.overrides:
            args += ["--set", override]
        if self.data_root is not None:
            args += ["--data-root", str(self.data_root)]
        if self.download:
            args.append("--download")
        args += ["--out", str(self.out)]
        if self.name:
            args += ["--name", self.name]
        if self.resume:
            args.append("--resume")
        if self.no_progress:
            args.append("--no-progress")
        return args


def start_training(
    command: list[str],
    recipe_ref: str | Path,
    overrides: tuple[str, ...],
    data_root: Path | None,
    out: Path,
    name: str | None,
    resume: bool,
    print_config: bool,
    no_progress: bool,
    nproc: int | None,
    download: bool = False,
) -> None:
    """Resolve the recipe, pick the run folder and train (in this process or N of them)."""
    from p2pkit.config import recipe_to_toml
    from p2pkit.engine.distributed import launched_by_torchrun
    from p2pkit.errors import ConfigError

    request = TrainingRequest(
        command, recipe_ref, overrides, data_root, out, name, resume, no_progress, download
    )
    if print_config:
        recipe, _ = request.resolve()
        click.echo(recipe_to_toml(recipe), nl=False)
        return
    if nproc is None:
        _train(request)
        return
    if launched_by_torchrun():
        raise ConfigError(
            "--nproc starts its own processes; under torchrun leave it out and use "
            "torchrun's --nproc_per_node"
        )
    # Checked here, once, so a bad recipe is one line and not one per worker.
    from p2pkit.engine.device import resolve_device
    from p2pkit.engine.distributed import check_syncbatch

    recipe, _ = request.resolve()
    check_syncbatch(recipe, resolve_device(recipe.train.device))
    _launch(nproc, request.worker_args())


def _train(request: TrainingRequest) -> None:
    """Train in this process, which may be one of a torchrun job's workers."""
    from rich.console import Console

    from p2pkit.config import data_folder
    from p2pkit.engine.device import resolve_device
    from p2pkit.engine.distributed import (
        init_distributed,
        main_process_first,
        shutdown_distributed,
    )
    from p2pkit.engine.runs import ensure_data, next_run_dir
    from p2pkit.engine.trainer import EXIT_PREEMPTED, Trainer
    from p2pkit.errors import ConfigError
    from p2pkit.files import plain_name

    recipe, run_dir = request.resolve()
    train, out = recipe.train, request.out
    ctx, _ = init_distributed(
        resolve_device(train.device), train.dist_backend, train.dist_timeout_minutes
    )
    try:
        if run_dir is None:
            # Rank 0 picks the folder, so that every process writes to the same one.
            name = plain_name(request.name or recipe.name, "the recipe's name", example="facades")
            run_dir = ctx.broadcast_object(next_run_dir(out, name) if ctx.is_main else None)
        if request.resume and not (run_dir / "checkpoints").is_dir():
            raise ConfigError(f"{run_dir} has no checkpoints to resume; drop --resume to start it")
        found = None
        with main_process_first(ctx):
            if ctx.is_main:
                found = ensure_data(
                    recipe, progress=not request.no_progress, download=request.download
                )
            else:
                # Rank 0 has found or fetched the data by now, where this lookup finds it too.
                recipe.data.root = data_folder(recipe.data)
        out_console = console() if ctx.is_main else Console(quiet=True)
        if found:
            # Said before the start line, so the log shows which copy of the data trained.
            out_console.print(found, highlight=False, markup=False, soft_wrap=True)
        trainer = Trainer(
            recipe,
            run_dir,
            resume=request.resume,
            progress=not request.no_progress,
            console=out_console,
            dist=ctx,
        )
        result = trainer.fit()
    finally:
        shutdown_distributed()
    if result.interrupted:
        where = "" if out == Path("runs") else f" --out {out}"
        launcher = " (started the same way, e.g. by the same torchrun line)" if ctx.enabled else ""
        out_console.print(
            f"resume with: p2pkit run recipe {recipe.name} --resume --name {run_dir.name}"
            f"{where}{launcher}"
        )
    if result.stop_signal == "SIGTERM":
        raise click.exceptions.Exit(EXIT_PREEMPTED)


def _launch(nproc: int, args: list[str]) -> None:
    from p2pkit.engine.distributed import launch

    code = launch(nproc, args)
    if code:
        # The failing worker has already said why on stderr.
        raise click.exceptions.Exit(code)


def _recipe_name(recipe_ref: str | Path) -> str:
    """The run name a new run of ``recipe_ref`` gets: the TOML's ``name``, else its stem;
    for a registered recipe, its own ``name``, else the name without a ``distribution:``."""
    from p2pkit.config import recipe_toml, tomllib
    from p2pkit.errors import P2PKitError

    path = Path(recipe_ref)
    if path.suffix != ".toml":
        short = str(recipe_ref).partition(":")[2] or str(recipe_ref)
        try:
            name = recipe_toml(str(recipe_ref)).get("name")
        except (P2PKitError, OSError, tomllib.TOMLDecodeError):
            name = None  # reported when the run's own recipe.toml is read
        return name if isinstance(name, str) and name else short
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
        "  p2pkit run recipe maps2aerial --download\n\n"
        "  p2pkit run recipe facades --data-root ../shared/datasets/facades "
        "--set train.epochs=5\n\n"
        "  p2pkit run recipe facades --data-root data/facades --nproc 4\n\n"
        "  torchrun --nproc_per_node=4 -m p2pkit run recipe facades --data-root data/facades"
    ),
)
@click.argument("recipe")
@training_options
def run_recipe(recipe: str, **options: Any) -> None:
    """Train RECIPE (a registered name or a .toml path) in a new run folder."""
    start_training(["run", "recipe", recipe], recipe, **options)


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
    start_training(["train", "--config", str(config)], config, **options)
