"""Collect every problem with a dataset's files, then report them together before training.

One run over the data finds all problems; the user then sees them in a single error (or, with
``skip_bad``, a single warning) instead of fixing one file per attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from p2pkit.errors import DataError

logger = logging.getLogger("p2pkit.data")

# Long lists are cut here so one bad folder cannot flood the terminal.
MAX_LISTED = 50


@dataclass(frozen=True)
class Problem:
    """Why one sample (the file at ``path``) cannot be used."""

    path: Path
    message: str

    def line(self) -> str:
        """``  <path>: <message>``, the form used in reports."""
        return f"  {self.path}: {self.message}"


def listing(lines: Sequence[str]) -> str:
    """Problem lines joined for a message, cut after MAX_LISTED."""
    shown = list(lines[:MAX_LISTED])
    if len(lines) > MAX_LISTED:
        shown.append(f"  ... and {len(lines) - MAX_LISTED} more")
    return "\n".join(shown)


def report(
    label: str, problems: Sequence[Problem], total: int, noun: str, *, skip_bad: bool
) -> list[str]:
    """Raise one error listing every problem, or (with ``skip_bad``) warn once and carry on.

    Args:
        label: The folder, as the user named it, for the summary line.
        problems: All problems found, one per unusable sample, in the order to list them.
        total: Number of samples examined.
        noun: What a sample is called in messages ("files", "pairs").
        skip_bad: Warn and skip instead of raising.

    Returns:
        The warning messages emitted (empty when there were no problems), so a cache can replay
        them.

    Raises:
        DataError: There are problems and ``skip_bad`` is false, or nothing usable is left.
    """
    if not problems:
        return []
    lines = [problem.line() for problem in problems]
    if not skip_bad:
        raise DataError(
            f"{label}: {len(problems)} of {total} {noun} cannot be used "
            f"(fix them, or set data.skip_bad = true to skip them):\n{listing(lines)}"
        )
    if len(problems) >= total:
        raise DataError(
            f"{label}: none of the {total} {noun} can be used; fix them:\n{listing(lines)}"
        )
    message = f"{label}: skipping {len(problems)} of {total} {noun} that cannot be used:\n"
    message += listing(lines)
    logger.warning(message)
    return [message]


def summarise_replicated(label: str, paths: Sequence[Path]) -> list[str]:
    """Warn once that grey files were replicated to 3 channels; returns the messages emitted."""
    if not paths:
        return []
    names = ", ".join(str(path) for path in paths[:5])
    more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
    message = (
        f"{label}: {len(paths)} greyscale files were copied to 3 equal channels because 3 are "
        f"expected ({names}{more}); set the channel count to 1 if the data is grey"
    )
    logger.warning(message)
    return [message]
