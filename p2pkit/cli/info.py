"""``p2pkit list``, ``p2pkit plugins list|check``, ``p2pkit env`` and ``p2pkit recipes``."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

import click

from p2pkit.cli.common import console
from p2pkit.registry import (
    KINDS,
    ComponentInfo,
    PluginFailure,
    get_registry,
    qualified_name,
)

if TYPE_CHECKING:
    from rich.console import Console

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


def _components(kinds: list[str]) -> list[dict[str, Any]]:
    """One row per name; a name two distributions declare is one row with status conflict."""
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        registry = get_registry(kind)
        start = len(rows)
        for info in registry.infos():
            rows.append(
                {
                    "kind": kind,
                    "name": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "target": info.target,
                    "status": "found",
                }
            )
        for name, providers in registry.conflicts().items():
            rows.append(
                {
                    "kind": kind,
                    "name": name,
                    "distribution": " + ".join(p.distribution for p in providers),
                    "version": "",
                    "target": "CONFLICT: provided twice",
                    "status": "conflict",
                    "providers": [qualified_name(p) for p in providers],
                }
            )
        rows[start:] = sorted(rows[start:], key=lambda row: row["name"])
    return rows


def _providers_text(kind: str, name: str) -> str:
    """``a 1.0 + b 2.0`` for a conflicting name."""
    infos = get_registry(kind).conflicts()[name]
    return " + ".join(f"{i.distribution} {i.version}".strip() for i in infos)


def _conflict_lines(kinds: list[str]) -> list[str]:
    """The conflict error of every name provided twice: both providers and how to pick one."""
    return [
        get_registry(kind).conflict_message(name)
        for kind in kinds
        for name in sorted(get_registry(kind).conflicts())
    ]


def _table_console() -> Console:
    """The stdout console, not cut at 80 columns when stdout is a file or a pipe: a table
    row (and an error in it) stays one line in a log."""
    out = console()
    if not out.is_terminal:
        out.width = 10_000
    return out


def _print_problems(out: Console, lines: list[str], failures: list[PluginFailure]) -> None:
    """Conflicts and failures, one unwrapped line each; with --debug each failure's traceback."""
    from rich.markup import escape

    from p2pkit.cli import debug_enabled

    for line in lines:
        out.print(escape(line), style="red")
    debug = debug_enabled(click.get_current_context(silent=True))
    for failure in failures:
        out.print(escape(failure.describe()), style="red")
        if debug and failure.traceback:
            click.echo(failure.traceback.rstrip(), err=True)


def _load_everything() -> list[PluginFailure]:
    """Import every plugin (strict mode raises); the failures are shown by the caller, once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # each failure is printed instead
        return [f for kind in KINDS for f in get_registry(kind).load_all()]


@click.command("list", epilog="Examples: p2pkit list   p2pkit list generators --format json")
@click.argument("kind", required=False, type=click.Choice(list(KINDS)))
@FORMAT
def list_command(kind: str | None, fmt: str) -> None:
    """List registered components of KIND (all kinds by default), without importing them.

    A name two distributions provide is listed once with both and status conflict.
    """
    kinds = [kind] if kind else list(KINDS)
    rows = _components(kinds)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("kind", "name", "provided by", "status", box=None)
    for row in rows:
        conflict = row["status"] == "conflict"
        provided = (
            _providers_text(row["kind"], row["name"])
            if conflict
            else f"{row['distribution']} {row['version']}".strip()
        )
        table.add_row(
            row["kind"], row["name"], provided, row["status"], style="red" if conflict else None
        )
    out = _table_console()
    out.print(table)
    _print_problems(out, _conflict_lines(kinds), [])


@click.group("plugins")
def plugins_group() -> None:
    """Inspect installed plugins."""


@plugins_group.command("list", epilog="Example: p2pkit plugins list --format json")
@FORMAT
def plugins_list(fmt: str) -> None:
    """Every registered component with the distribution and version providing it.

    Each plugin is imported so that broken ones show up with their error, and a name two
    distributions provide shows as a conflict (set P2PKIT_STRICT_PLUGINS=1 to make either
    fatal). --debug adds each failure's traceback.
    """
    failures = _load_everything()
    rows = _components(list(KINDS))
    failed = {(f.group, f.name) for f in failures}
    for row in rows:
        if row["status"] != "conflict":
            row["status"] = "failed" if (f"p2pkit.{row['kind']}", row["name"]) in failed else "ok"
    if fmt == "json":
        payload: dict[str, Any] = {
            "components": rows,
            "failures": [f.as_dict() for f in failures],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    from rich.table import Table

    table = Table("kind", "name", "distribution", "version", "status", box=None)
    for row in rows:
        style = "red" if row["status"] != "ok" else None
        table.add_row(
            row["kind"], row["name"], row["distribution"], row["version"], row["status"],
            style=style,
        )  # fmt: skip
    out = _table_console()
    out.print(table)
    _print_problems(out, _conflict_lines(list(KINDS)), failures)


# Kinds whose components p2pkit.testing can check without data; the others are only imported.
CHECKED_KINDS = ("generators", "discriminators", "objectives", "tasks", "recipes", "sources")


def _narrow(kind: str, key: str) -> dict[str, int]:
    """Narrow layers where the factory has a width option: the same checks, much faster."""
    accepted = get_registry(kind).options(key)
    return {option: 8 for option in ("ngf", "ndf") if option in accepted}


def _check_component(info: ComponentInfo) -> None:
    """Import one entry point and run the conformance check of its kind (AssertionError)."""
    from p2pkit import testing

    registry = get_registry(info.kind)
    key = qualified_name(info)  # this provider, even when another declares the name too
    registry.get(key)
    if info.kind == "generators":
        testing.check_generator(registry.create(key, **_narrow(info.kind, key)), batch_size=1)
    elif info.kind == "discriminators":
        # 128 px: a 286x286 PatchGAN's five downsamplings need room.
        testing.check_discriminator(registry.create(key, **_narrow(info.kind, key)), size=128)
    elif info.kind == "objectives":
        testing.check_objective(registry.create(key))
    elif info.kind == "tasks":
        testing.check_task(registry.create(key))
    elif info.kind == "recipes":
        testing.check_recipe(key)
    elif info.kind == "sources":
        import tempfile

        # A source that makes its data locally is run once, small; a download is not.
        accepted = registry.options(key)
        small = {option: 2 for option in ("n_train", "n_val") if option in accepted}
        with tempfile.TemporaryDirectory(prefix="p2pkit-check-") as folder:
            testing.check_source(registry.create(key, **small), folder, size=32)


def _plugin_components(distribution: str | None) -> list[ComponentInfo]:
    """Every entry point of ``distribution`` (all distributions when None), by kind."""
    from p2pkit.errors import RegistryError

    infos = [i for kind in KINDS for i in get_registry(kind).providers()]
    if distribution is None:
        return infos
    wanted = distribution.replace("_", "-").lower()
    chosen = [i for i in infos if i.distribution == wanted]
    if not chosen:
        known = ", ".join(sorted({i.distribution for i in infos})) or "none"
        raise RegistryError(
            f"distribution '{distribution}' declares no p2pkit entry points (those that do: "
            f"{known}); install it, or give one of those names"
        )
    return chosen


@plugins_group.command(
    "check",
    epilog="Examples: p2pkit plugins check p2pkit-featmatch   p2pkit --debug plugins check",
)
@click.argument("distribution", required=False)
def plugins_check(distribution: str | None) -> None:
    """Import every entry point of DISTRIBUTION (default: of every distribution declaring
    p2pkit entry points) and run p2pkit.testing's check on each component that needs no data.

    Prints one line per component, ok or failed with the reason, and exits with status 1
    when a plugin fails to import, fails its check or declares a name another distribution
    declares too: a step for a plugin's CI. --debug adds each failure's traceback.
    """
    import traceback

    from p2pkit.cli import debug_enabled
    from p2pkit.errors import P2PKitError

    debug = debug_enabled(click.get_current_context())
    infos = _plugin_components(distribution)
    try:
        import p2pkit.testing  # noqa: F401  (a pytest plugin module: it imports pytest)
    except ImportError as exc:
        raise P2PKitError(
            f"p2pkit plugins check runs the checks of p2pkit.testing, which need pytest ({exc}); "
            "pip install pytest"
        ) from exc
    failed = 0
    for info in infos:
        where = f"{info.kind}.{info.name} ({info.distribution} {info.version})".replace(" )", ")")
        error: BaseException | None = None
        try:
            _check_component(info)
        except (AssertionError, P2PKitError) as exc:
            problem, error = str(exc) or type(exc).__name__, exc
        except Exception as exc:  # a plugin's own bug is its author's failure, not ours
            problem, error = f"{type(exc).__name__}: {exc}", exc
        else:
            registry = get_registry(info.kind)
            problem = (
                registry.conflict_message(info.name) if info.name in registry.conflicts() else ""
            )
        if not problem:
            note = "" if info.kind in CHECKED_KINDS else " (imported; its check needs data)"
            click.echo(f"{where}: ok{note}")
            continue
        failed += 1
        click.echo(f"{where}: failed: {problem}")
        if debug and error is not None:
            click.echo("".join(traceback.format_exception(error)).rstrip(), err=True)
    distributions = len({i.distribution for i in infos})
    summary = (
        f"{len(infos)} component{'s' * (len(infos) != 1)} of {distributions} "
        f"distribution{'s' * (distributions != 1)} checked"
    )
    click.echo(f"{summary}, {failed} failed" if failed else f"{summary}, all ok")
    if failed:
        raise click.exceptions.Exit(1)


@click.command("env", epilog="Example: p2pkit env --format json > env.json")
@FORMAT
def env_command(fmt: str) -> None:
    """Versions, device and plugins: paste this into a bug report."""
    from p2pkit.engine.device import resolve_device
    from p2pkit.engine.environment import environment_info

    failures = _load_everything()  # a broken plugin shows up below
    info = environment_info()
    info["default_device"] = str(resolve_device("auto"))
    info["plugin_conflicts"] = _conflict_lines(list(KINDS))
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
        return
    out = console()
    for name, version in info["versions"].items():
        out.print(f"{name:12} {version}")
    out.print(f"{'platform':12} {info['platform']}")
    out.print(f"{'device':12} {info['default_device']} (cuda {info['cuda']}, gpus {info['gpus']})")
    out.print(f"{'cpu threads':12} {info['cpu_threads']}")
    for kind, plugins in info["plugins"].items():
        for name, dist in plugins.items():
            out.print(f"{'plugin':12} {kind}.{name} from {dist}")
    _print_problems(out, _conflict_lines(list(KINDS)), failures)


@click.group("recipes")
def recipes_group() -> None:
    """List and show task recipes."""


@recipes_group.command("list", epilog="Example: p2pkit recipes list")
def recipes_list() -> None:
    """Registered recipes with their descriptions (read from the TOML, without torch)."""
    from rich.markup import escape
    from rich.table import Table

    from p2pkit.config import recipe_toml

    table = Table("recipe", "description", "provided by", "status", box=None)
    registry = get_registry("recipes")
    conflicts = registry.conflicts()
    rows: list[tuple[str, str, str, str]] = []
    for info in registry.infos():
        # Only the TOML is read: building the recipe would import every component (and
        # torch), seconds spent on a listing. `recipes show` checks the recipe fully.
        try:
            description = escape(str(recipe_toml(info.name).get("description", "")))
            status = "ok"
        except Exception as exc:  # a broken third-party recipe must not hide the others
            description = f"[red]cannot load: {escape(str(exc))}[/red]"
            status = "[red]failed[/red]"
        rows.append((info.name, description, info.distribution, status))
    for name in conflicts:
        choices = " or ".join(qualified_name(i) for i in conflicts[name])
        rows.append(
            (
                name,
                f"[red]run it as {choices}[/red]",
                _providers_text("recipes", name),
                "[red]conflict[/red]",
            )
        )
    for row in sorted(rows):
        table.add_row(*row)
    out = _table_console()
    out.print(table)
    _print_problems(out, _conflict_lines(["recipes"]), [])


@recipes_group.command("show", epilog="Example: p2pkit recipes show facades --set train.epochs=5")
@click.argument("name")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Apply overrides.")
def recipes_show(name: str, overrides: tuple[str, ...]) -> None:
    """Print recipe NAME, resolved, as TOML (with the paper reference it follows).

    A registered recipe shown as it ships imports no component (and so not torch): its
    component options are covered by its conformance check. A TOML file, or any ``--set``,
    is checked in full, component options included, as ``run`` would check it.
    """
    from pathlib import Path

    from p2pkit.config import load_recipe, recipe_to_toml

    is_file = Path(name).suffix == ".toml" or Path(name).is_file()
    recipe = load_recipe(name, overrides, components=bool(overrides) or is_file)
    click.echo(recipe_to_toml(recipe), nl=False)


# `plugins new` lives in its own module; it joins the group here, where the group is made.
from p2pkit.cli.new import plugins_new  # noqa: E402

plugins_group.add_command(plugins_new)
