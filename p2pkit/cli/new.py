"""``p2pkit plugins new``: write a ready plugin distribution."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(
    "new",
    epilog="Examples: p2pkit plugins new p2pkit-mynet   p2pkit plugins new p2pkit-mynet --to ~/src",
)
@click.argument("name")
@click.option(
    "--to",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to create the distribution's folder NAME in.",
)
def plugins_new(name: str, dest: Path) -> None:
    """Write a ready plugin distribution NAME (e.g. p2pkit-mynet): pyproject with entry
    points, a generator, a data source, two recipes, tests using p2pkit.testing and a README.

    Its tests pass as written: pip install -e NAME, then python -m pytest NAME.
    """
    from p2pkit.plugin_template import plugin_names, write_plugin

    root = write_plugin(name, dest)
    names = plugin_names(name)
    click.echo(
        f"wrote {root}: generator {names.generator}, data source {names.source}, "
        f"recipes {names.recipe} and {names.source}"
    )
    click.echo(f"next: pip install -e {root} && python -m pytest {root}")
