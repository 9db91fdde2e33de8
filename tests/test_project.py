"""Project-level promises: the README's code runs as written, CI runs its test command,
and the code is lint-clean."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_custom_training_step_runs_as_written():
    (step,) = [b for b in code_blocks("python") if "create_generator" in b]
    assert len(step.strip().splitlines()) <= 20
    out = subprocess.run(
        [sys.executable, "-c", step], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "G_L1" in out.stdout and "D_real" in out.stdout


def test_ci_runs_exactly_the_readmes_test_command():
    (tests_section,) = re.findall(r"## Tests\n\n```bash\n(.*?)\n```", README, flags=re.S)
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == tests_section.strip()


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
    reason="ruff is not installed (pip install -e '.[dev]')",
)
def test_code_is_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        out = subprocess.run([ruff, *args], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0, out.stdout + out.stderr


# A module this long holds more than one thing unless its docstring says why it is one.
LONG_MODULE_LINES = 400
WHY_LONG = "Why this module is long:"


def test_long_modules_state_why_they_are_one_module():
    import ast

    unexplained = []
    for path in sorted((ROOT / "p2pkit").rglob("*.py")):
        text = path.read_text()
        if text.count("\n") <= LONG_MODULE_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if WHY_LONG not in docstring:
            unexplained.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not unexplained, (
        f"modules over {LONG_MODULE_LINES} lines: split them along their sections, or add a "
        f"paragraph starting {WHY_LONG!r} to the module docstring: {unexplained}"
    )
