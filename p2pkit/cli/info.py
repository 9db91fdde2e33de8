"""``p2pkit list``, ``p2pkit plugins list``, ``p2pkit env`` and ``p2pkit recipes``."""

from __future__ import annotations

import json
from typing import Any

import click

from p2pkit.cli.common import console
from p2pkit.registry import KINDS, get_registry

FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


def _components(kinds: list[str]) -> list[dict[str, str]]:
    rows = []
    for kind in kinds:
        registry = get_registry(kind)
        for info in registry.infos():
            rows.append(
                {
                    "kind": kind,
                    "name": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "target": info.target,
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
                }
            )
    return rows


@click.command("list", epilog="Examples: p2pkit list   p2pkit list generators --format json")
@click.argument("kind", required=False, type=click.Choice(list(KINDS)))
@FORMAT
def list_command(kind: str | None, fmt: str) -> None:
    """List registered components of KIND (all kinds by default), without importing them."""
    rows = _components([kind] if kind else list(KINDS))
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("kind", "name", "provided by", box=None)
    for row in rows:
        table.add_row(row["kind"], row["name"], f"{row['distribution']} {row['version']}".strip())
    console().print(table)


@click.group("plugins")
def plugins_group() -> None:
    """Inspect installed plugins."""


@plugins_group.command("list", epilog="Example: p2pkit plugins list --format json")
@FORMAT
def plugins_list(fmt: str) -> None:
    """Every registered component with the distribution and version providing it.

    Each plugin is imported so that broken ones show up with their error (set
    P2PKIT_STRICT_PLUGINS=1 to make such a failure fatal).
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # shown in the table instead
        failures = [f for kind in KINDS for f in get_registry(kind).load_all()]
    rows = _components(list(KINDS))
    failed = {(f.group, f.name) for f in failures}
    for row in rows:
        row["status"] = "failed" if (f"p2pkit.{row['kind']}", row["name"]) in failed else "ok"
    if fmt == "json":
        payload: dict[str, Any] = {
            "components": rows,
            "failures": [f.__dict__ for f in failures],
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
    out = console()
    out.print(table)
    for failure in failures:
        out.print(f"[red]{failure.describe()}[/red]")


@click.command("env", epilog="Example: p2pkit env --format json > env.json")
@FORMAT
def env_command(fmt: str) -> None:
    """Versions, device and plugins: paste this into a bug report."""
    import warnings

    from p2pkit.engine.device import resolve_device
    from p2pkit.engine.environment import environment_info

    # Import every plugin so a broken one shows up below; its warning would repeat it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for kind in KINDS:
            get_registry(kind).load_all()
    info = environment_info()
    info["default_device"] = str(resolve_device("auto"))
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
    for failure in info["plugin_failures"]:
        out.print(f"[red]{failure}[/red]")


@click.group("recipes")
def recipes_group() -> None:
    """List and show task recipes."""


@recipes_group.command("list", epilog="Example: p2pkit recipes list")
def recipes_list() -> None:
    """Registered recipes with their descriptions (read from the TOML, without torch)."""
    from rich.markup import escape
    from rich.table import Table

    from p2pkit.config import recipe_toml

    table = Table("recipe", "description", "provided by", box=None)
    registry = get_registry("recipes")
    for info in registry.infos():
        # Only the TOML is read: building the recipe would import every component (and
        # torch), seconds spent on a listing. `recipes show` checks the recipe fully.
        try:
            description = escape(str(recipe_toml(info.name).get("description", "")))
        except Exception as exc:  # a broken third-party recipe must not hide the others
            description = f"[red]cannot load: {escape(str(exc))}[/red]"
        table.add_row(info.name, description, info.distribution)
    console().print(table)


@recipes_group.command("show", epilog="Example: p2pkit recipes show facades --set train.epochs=5")
@click.argument("name")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Apply overrides.")
def recipes_show(name: str, overrides: tuple[str, ...]) -> None:
    """Print recipe NAME, resolved, as TOML (with the paper reference it follows)."""
    from p2pkit.config import recipe_to_toml
    from p2pkit.engine.runs import resolve_recipe

    recipe = resolve_recipe(name, overrides)
    click.echo(recipe_to_toml(recipe), nl=False)
