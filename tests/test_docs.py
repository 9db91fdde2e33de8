"""The documentation cannot drift from the code.

* docs/api.md has a mkdocstrings block for every public module, and docstrings link with
  Markdown cross-references (which mkdocstrings renders), not reST roles (which it shows raw).
* docs/cli.md mentions every command of ``p2pkit`` and every long option of each.
* The Python blocks of docs/library.md and docs/plugins.md run as written, each in a fresh
  subprocess in an empty folder; a block that cannot run says why in an HTML comment before it.
* What docs/cli.md says about ``--resume`` without ``--name`` is what the code does.
* Every picture in the docs is small and names the command that made it.

``mkdocs build --strict`` (in .ci/run) checks the rest: links, anchors and cross-references.
"""

from __future__ import annotations

import ast
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "p2pkit"

# --------------------------------------------------------------------------- API reference

# Modules that docs/api.md leaves out on purpose, and why ("pkg.*": the package and its modules).
NOT_IN_API_REFERENCE = {
    "p2pkit": "its re-exports are the table at the top of docs/api.md",
    "p2pkit.__main__": "`python -m p2pkit`, the command line",
    "p2pkit.cli.*": "the command line, documented in docs/cli.md",
    "p2pkit.recipe_files": "entry-point targets that locate the shipped recipe files",
    "p2pkit.models": "re-exports names documented under p2pkit.models.*",
    "p2pkit.data": "re-exports names documented under p2pkit.data.*",
    "p2pkit.engine": "an empty package",
    "p2pkit.evaluation": "an empty package",
}

# Packages documented as one page section: their __init__ re-exports their modules' names.
DOCUMENTED_AS_PACKAGE = ("p2pkit.config", "p2pkit.engine.checkpoint", "p2pkit.inference")

ROLE = re.compile(r":(?:class|mod|meth|func|attr|data|exc|obj|const|ref):`[^`]+`")


def all_modules() -> list[str]:
    names = ["p2pkit"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="p2pkit."):
        names.append(info.name)
    return sorted(names)


def documented_modules() -> set[str]:
    text = (DOCS / "api.md").read_text()
    return set(re.findall(r"^::: *([\w.]+) *$", text, flags=re.M))


def explained(module: str) -> bool:
    for name in NOT_IN_API_REFERENCE:
        package = name.removesuffix(".*")
        if module == package or (name.endswith(".*") and module.startswith(package + ".")):
            return True
    return any(module.startswith(package + ".") for package in DOCUMENTED_AS_PACKAGE)


def test_api_reference_documents_every_public_module():
    documented = documented_modules()
    missing = [m for m in all_modules() if m not in documented and not explained(m)]
    assert not missing, (
        "docs/api.md has no `::: module` block for these modules; add one, or add the module "
        f"to NOT_IN_API_REFERENCE in tests/test_docs.py with the reason: {missing}"
    )


def test_api_reference_blocks_name_existing_modules():
    existing = set(all_modules())
    unknown = sorted(m for m in documented_modules() if m not in existing)
    assert not unknown, f"docs/api.md documents modules that do not exist: {unknown}"


def docstrings(tree: ast.Module):
    """Every bare string statement: the docstrings of modules, classes, functions and attributes."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for statement in body:
            if (
                isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                yield statement.lineno, statement.value.value


def test_docstrings_cross_reference_in_markdown_not_rest_roles():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, text in docstrings(ast.parse(path.read_text())):
            found += [f"{path.relative_to(ROOT)}:{line}: {r}" for r in ROLE.findall(text)]
    assert not found, (
        "mkdocstrings reads docstrings as Markdown and shows reST roles as raw text; write "
        "[`Name`][p2pkit.module.Name] (or `Name` where the target is not documented):\n"
        + "\n".join(found)
    )


# --------------------------------------------------------------------------- CLI reference


def slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def cli_sections() -> dict[str, str]:
    """Heading anchor -> text of that section (up to the next heading of any level)."""
    text = (DOCS / "cli.md").read_text()
    parts = re.split(r"^#{1,6} +(.+)$", text, flags=re.M)
    return {slug(heading): body for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


def walk_commands(command: click.Command, path: tuple[str, ...], ctx: click.Context):
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)  # LazyGroup imports the module here
            assert sub is not None, f"{' '.join(path)} lists {name} but cannot load it"
            yield from walk_commands(sub, (*path, name), click.Context(sub, ctx, name))


def cli_commands() -> list[tuple[tuple[str, ...], click.Command]]:
    from p2pkit.cli import cli

    return list(walk_commands(cli, ("p2pkit",), click.Context(cli, info_name="p2pkit")))


def long_options(command: click.Command, ctx_help: list[str]) -> list[str]:
    names = []
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            names += [o for o in param.opts + param.secondary_opts if o.startswith("--")]
    return [n for n in names if n not in ctx_help]


def test_cli_reference_mentions_every_command_and_option():
    """Each command has a section in docs/cli.md that mentions each of its long options, itself
    or in a section of the page it links to (``p2pkit train`` points to ``run recipe``'s)."""
    sections = cli_sections()
    text = (DOCS / "cli.md").read_text()
    gaps = []
    for path, command in cli_commands():
        name = " ".join(path)
        if f"`{name}" not in text:
            gaps.append(f"{name}: not mentioned")
        if isinstance(command, click.Group) and len(path) > 1:
            continue  # a group's options (none today) would go with its subcommands
        anchor = "global-options" if len(path) == 1 else slug(name)
        if anchor not in sections:
            gaps.append(f"{name}: no section (a heading `{name}`)")
            continue
        body = sections[anchor]
        for linked in re.findall(r"\]\(#([\w-]+)\)", body):
            body += sections.get(linked, "")
        # Every command takes -h/--help; the page says so once, at the top.
        for option in long_options(command, ["--help"]):
            if not re.search(rf"{re.escape(option)}(?![\w-])", body):
                gaps.append(f"{name}: {option} not in its section")
    assert not gaps, "docs/cli.md is out of date:\n" + "\n".join(gaps)


def test_cli_reference_walk_reaches_every_leaf_command():
    names = {" ".join(path) for path, command in cli_commands()}
    # Guards the walk itself: lazy groups must have been opened.
    for leaf in ("p2pkit run recipe", "p2pkit data synth", "p2pkit plugins list"):
        assert leaf in names


def test_resume_without_name_uses_the_toml_name_else_the_file_stem(tmp_path):
    """docs/cli.md: without --name, --resume looks for the TOML's `name`, else the file name
    without .toml; a registered recipe name is used as given."""
    from p2pkit.cli.train import _recipe_name

    named = tmp_path / "my-file.toml"
    named.write_text('name = "my-run"\n')
    unnamed = tmp_path / "other.toml"
    unnamed.write_text('description = "no name"\n')
    number = tmp_path / "number.toml"
    number.write_text("name = 3\n")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    assert _recipe_name(named) == "my-run"
    assert _recipe_name(unnamed) == "other"
    assert _recipe_name(number) == "number"
    assert _recipe_name(broken) == "broken"
    assert _recipe_name("facades") == "facades"
    cli_text = " ".join((DOCS / "cli.md").read_text().split())
    assert "the file's top-level `name` field, or the file name without `.toml`" in cli_text


# --------------------------------------------------------------------------- pictures

PICTURE = re.compile(r"!\[[^\]]*\]\((images/[^)]+)\)")


def test_docs_pictures_are_small_and_say_which_command_made_them():
    pictures = 0
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        for m in PICTURE.finditer(text):
            pictures += 1
            path = DOCS / m.group(1)
            assert path.is_file(), f"{page.name}: {m.group(1)} does not exist"
            assert path.stat().st_size < 300_000, f"{m.group(1)} is over 300 KB"
            caption = text[m.end() : m.end() + 300]
            assert "Made by `python docs/make_pictures.py`" in caption, (
                f"{page.name}: say under {m.group(1)} which command made it"
            )
    assert pictures >= 3


# --------------------------------------------------------------------------- code blocks

BLOCK = re.compile(
    r"(?:<!--(?P<marker>(?:(?!-->).)*)-->[ \t]*\n)?^```python\n(?P<code>.*?)^```", re.S | re.M
)
NOT_RUN = "not run:"
RUN_AFTER = "run after:"


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str
    marker: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def defines(self, name: str) -> bool:
        pattern = rf"^(?:class|def) {re.escape(name)}\b|^{re.escape(name)}(?:, *\w+)* *="
        return re.search(pattern, self.code, flags=re.M) is not None


def python_blocks(page: str) -> list[Block]:
    text = (DOCS / page).read_text()
    return [
        Block(
            page,
            text.count("\n", 0, m.start("code")) + 1,
            m.group("code"),
            " ".join((m.group("marker") or "").split()),
        )
        for m in BLOCK.finditer(text)
    ]


RUN_PAGES = ("library.md", "plugins.md")
BLOCKS = [b for page in RUN_PAGES for b in python_blocks(page)]


def program(block: Block) -> str:
    """The block's code, after the earlier block of its page that it says it runs after."""
    if not block.marker.startswith(RUN_AFTER):
        return block.code
    name = block.marker[len(RUN_AFTER) :].strip()
    earlier = [b for b in BLOCKS if b.page == block.page and b.line < block.line]
    defining = [b for b in earlier if b.defines(name)]
    assert defining, f"{block.id}: no earlier block defines {name!r}"
    return program(defining[-1]) + "\n" + block.code


def test_docs_blocks_that_do_not_run_say_why():
    for block in BLOCKS:
        if block.marker.startswith(NOT_RUN):
            reason = block.marker[len(NOT_RUN) :].strip()
            assert len(reason.split()) >= 3, f"{block.id}: say why the block is not run"
        else:
            assert not block.marker or block.marker.startswith(RUN_AFTER), (
                f"{block.id}: unknown marker {block.marker!r} before a python block"
            )


def test_docs_blocks_are_found():
    assert len([b for b in BLOCKS if b.page == "library.md"]) >= 10
    assert len([b for b in BLOCKS if b.page == "plugins.md"]) >= 5


def p2pkit_command(*args: str, cwd: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "p2pkit", *args], capture_output=True, text=True, cwd=cwd
    )
    assert out.returncode == 0, out.stdout + out.stderr


def make_synth_run(root: Path) -> Path:
    """``data/synth-facades`` (8 + 2 images, 32 px) and ``runs/synth-facades``, a 2-iteration run
    of the synth-facades recipe with a tiny U-Net: what the docs' blocks expect to find after
    ``p2pkit run recipe synth-facades``."""
    synth = "data synth data/synth-facades --n-train 8 --n-val 2 --size 32"
    p2pkit_command(*synth.split(), cwd=root)
    tiny = (
        "generator.name=unet generator.depth=5 generator.ngf=8 discriminator.ndf=8 "
        "data.load_size=36 data.crop_size=32 train.epochs=1 train.epochs_decay=0"
    )
    sets = [arg for setting in tiny.split() for arg in ("--set", setting)]
    p2pkit_command("run", "recipe", "synth-facades", "--no-progress", *sets, cwd=root)
    return root


def uses_fixture(code: str) -> bool:
    return "runs/synth-facades" in code or "data/synth-facades" in code


def run_block(block: Block, folder: Path, synth: Future | None) -> subprocess.CompletedProcess:
    """Run one block in a fresh interpreter in ``folder``; blocks that define tests run under
    pytest."""
    code = program(block)
    if uses_fixture(code):
        assert synth is not None
        for name in ("data", "runs"):
            shutil.copytree(synth.result() / name, folder / name, symlinks=True)
    if re.search(r"^def test_", code, flags=re.M):
        (folder / "test_block.py").write_text(code)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_block.py"]
    else:
        (folder / "block.py").write_text(code)
        command = [sys.executable, "block.py"]
    # One thread each: the blocks run side by side, and idle OpenMP threads spin.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, cwd=folder, env=env, timeout=300)


RUNNABLE = [b for b in BLOCKS if not b.marker.startswith(NOT_RUN)]


@pytest.fixture(scope="module")
def block_runs(request, tmp_path_factory):
    """Start the selected blocks' subprocesses a few at a time, so the whole set takes a fraction
    of the time one after the other would; each test then waits for its own block."""
    selected = [
        item.callspec.params["block"]
        for item in request.session.items
        if item.originalname == "test_docs_python_block_runs_as_written"
    ]
    workers = min(4, max(2, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        synth = None
        if any(uses_fixture(program(b)) for b in selected):
            synth = pool.submit(make_synth_run, tmp_path_factory.mktemp("docs-synth"))
        # Blocks that need the trained run go last, so they rarely wait for it.
        order = sorted(selected, key=lambda b: uses_fixture(program(b)))
        runs = {
            b.id: pool.submit(run_block, b, tmp_path_factory.mktemp("docs-block"), synth)
            for b in order
        }
        yield runs


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_docs_python_block_runs_as_written(block, block_runs):
    out = block_runs[block.id].result()
    assert out.returncode == 0, f"{block.id} failed:\n{out.stdout}\n{out.stderr}"
