"""The ``p2pkit`` command line (click + rich).

Subcommands live in their own modules and are imported only when invoked, so
``p2pkit --help`` starts instantly and never imports torch. A user error (a
[`P2PKitError`][p2pkit.errors.P2PKitError]) prints one line on stderr and exits with
status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from p2pkit import __version__
from p2pkit.errors import P2PKitError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

# name -> (module:attribute, one-line help shown by `p2pkit --help` without importing)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("p2pkit.cli.train:run_group", "Train a registered recipe: p2pkit run recipe NAME."),
    "train": ("p2pkit.cli.train:train_command", "Train from a recipe TOML file."),
    "translate": ("p2pkit.cli.translate:translate_command", "Translate images with a checkpoint."),
    "export": ("p2pkit.cli.export:export_command", "Export a generator to ONNX, checked."),
    "serve": ("p2pkit.cli.serve:serve_command", "Web page and HTTP API to translate images."),
    "evaluate": ("p2pkit.cli.evaluate:evaluate_command", "Score a checkpoint on a data split."),
    "import": ("p2pkit.cli.convert:import_group", "Convert a generator trained elsewhere."),
    "report": ("p2pkit.cli.evaluate:report_command", "Write the HTML results page of a run."),
    "sweep": ("p2pkit.cli.evaluate:sweep_command", "Train and compare recipe variants."),
    "data": ("p2pkit.cli.data:data_group", "Download, generate and prepare datasets."),
    "recipes": ("p2pkit.cli.info:recipes_group", "List and show task recipes."),
    "list": ("p2pkit.cli.info:list_command", "List registered components."),
    "plugins": ("p2pkit.cli.info:plugins_group", "Inspect installed plugins."),
    "env": ("p2pkit.cli.info:env_command", "Versions, device and plugins, for bug reports."),
}


class UserError(click.ClickException):
    """A P2PKitError shown as one plain line with exit status 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def debug_enabled(ctx: click.Context | None) -> bool:
    """Whether ``--debug`` (or P2PKIT_DEBUG=1, true, yes or on) asks for tracebacks."""
    root = ctx.find_root() if ctx is not None else None
    if root is not None and isinstance(root.obj, dict) and root.obj.get("debug"):
        return True
    return os.environ.get("P2PKIT_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module, attr = self.lazy[name][0].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            # click suggests close names from the commands imported so far, which here is
            # none of them: offer the whole table instead ("Did you mean 'train'?").
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        # click's own completion imports each matching command for its help; the table
        # has the help, so pressing TAB imports no subcommand (nor torch).
        from click.shell_completion import CompletionItem

        items = [
            CompletionItem(name, help=self.lazy[name][1] if name in self.lazy else None)
            for name in self.list_commands(ctx)
            if name.startswith(incomplete)
        ]
        return items + click.Command.shell_complete(self, ctx, incomplete)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table above, so --help imports nothing.
        rows = [(name, self.lazy[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except P2PKitError as exc:
            if debug_enabled(ctx):
                raise
            raise UserError(str(exc)) from exc
        except KeyboardInterrupt:
            # click's standalone mode would print "Aborted!" and exit 1; a shell
            # expects 128 + SIGINT, and scripts around a sweep test for it.
            if debug_enabled(ctx):
                raise
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if debug_enabled(ctx):
                raise
            raise click.ClickException(
                f"{type(exc).__name__}: {exc} (this looks like a bug in p2pkit or a plugin; "
                "run again with --debug for the traceback and report it)"
            ) from exc


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: p2pkit run recipe synth-facades",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.version_option(__version__, prog_name="p2pkit")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """p2pkit: image-to-image translation with conditional adversarial networks (pix2pix)."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="p2pkit")
    except KeyboardInterrupt:  # pragma: no cover - interactive
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
