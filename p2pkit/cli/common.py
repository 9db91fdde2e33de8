"""Helpers shared by the command modules."""

from __future__ import annotations

from rich.console import Console


def console() -> Console:
    """Console for normal output (stdout)."""
    return Console(highlight=False)


def error_console() -> Console:
    """Console for warnings and progress that must not mix with data on stdout."""
    return Console(stderr=True, highlight=False)
