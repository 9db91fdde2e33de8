"""Where ``evaluate``, ``report`` and ``sweep`` may write.

Two rules, one helper each (``translate``, whose output names come from its input files,
checks them with [`p2pkit.inference.plan_outputs`][p2pkit.inference.plan_outputs]):

* A name read from a file (a split in a checkpoint's ``meta.json``, an image name in a
  ``metrics.json``) is data, not a path: [`plain_name`][p2pkit.files.plain_name] accepts it only as
  one plain file or folder name, so joining it to a folder can never reach outside that folder.
* A folder the user points a command at may hold their own files:
  [`claim_outputs`][p2pkit.evaluation.paths.claim_outputs] lets a command replace only files that
  p2pkit wrote there before, and lists the ones it writes in ``.p2pkit-outputs.json`` inside the
  folder. Nothing is ever deleted.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from p2pkit.errors import DataError

OUTPUTS_FILE = ".p2pkit-outputs.json"
"""The list of files p2pkit commands wrote in a folder (relative POSIX paths)."""

# Conflicts named in one error; the rest are counted.
_SHOWN = 5


def _relative(name: str) -> str:
    # Names are built by the commands themselves from checked parts; this guards the join.
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts or "\\" in name:
        raise ValueError(f"output name {name!r} must be a relative path inside the folder")
    return PurePosixPath(*parts).as_posix()


def _listed(folder: Path) -> set[str] | None:
    """The names in the folder's outputs file; None when it has none (or it is unreadable)."""
    try:
        recorded = json.loads((folder / OUTPUTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = recorded.get("files") if isinstance(recorded, dict) else None
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _files_under(folder: Path, sub: str) -> set[str]:
    root = folder / sub
    if not root.is_dir():
        return set()
    return {p.relative_to(folder).as_posix() for p in root.rglob("*") if p.is_file()}


def _earlier_outputs(folder: Path) -> set[str]:
    """Files an older p2pkit (one that kept no outputs file) wrote here, told by their content.

    An evaluation folder has a ``metrics.json`` with ``p2pkit_version``; a report page's title
    starts with "p2pkit "; a sweep's comparison JSON holds its ``varies`` and ``rows``.
    """
    found: set[str] = set()
    metrics = _read_json(folder / "metrics.json")
    if isinstance(metrics, dict) and "p2pkit_version" in metrics:
        found |= {"metrics.json", "index.html", "losses.png"} | _files_under(folder, "images")
    try:
        head = (folder / "index.html").read_text(encoding="utf-8", errors="replace")[:2000]
    except OSError:
        head = ""
    if "<title>p2pkit " in head:
        found |= {"index.html", "losses.png"} | _files_under(folder, "thumbs")
    if folder.is_dir():
        for table in folder.glob("*.json"):
            content = _read_json(table)
            if isinstance(content, dict) and {"recipe", "varies", "rows"} <= set(content):
                found |= {table.name, f"{table.stem}.md"}
    return found


def claim_outputs(folder: str | os.PathLike[str], names: Iterable[str], *, option: str) -> Path:
    """Check that a command may write ``names`` in ``folder``, then record them as p2pkit's.

    A name may be written when no file has it yet or when an earlier p2pkit command wrote it
    (it is in the folder's [`OUTPUTS_FILE`][p2pkit.evaluation.paths.OUTPUTS_FILE], or, in a folder
    from before that file, `_earlier_outputs` recognises it). A file of the user's is never
    replaced. Call this before any work, with every file the command will write.

    Args:
        folder: the output folder; created when the check passes.
        names: relative POSIX paths of the files the command writes (``images/1_output.png``).
        option: how the user chose the folder, for the message (``--out``, ``the run folder``).

    Returns:
        The folder, resolved.

    Raises:
        DataError: Files with some of these names exist and p2pkit did not write them; the
            message names them and says what to do.
    """
    root = Path(folder).resolve()
    wanted = [_relative(n) for n in names]
    listed = _listed(root)
    owned = listed if listed is not None else _earlier_outputs(root)
    # A symbolic link inside the folder would carry a write elsewhere.
    escaping = [n for n in wanted if not (root / n).resolve().is_relative_to(root)]
    if escaping:
        raise DataError(
            f"{root} ({option}): {escaping[0]} leads outside the folder through a symbolic "
            "link; remove the link or choose another folder"
        )
    taken = [n for n in wanted if n not in owned and os.path.lexists(root / n)]
    if taken:
        more = len(taken) - _SHOWN
        shown = ", ".join(taken[:_SHOWN]) + (f" and {more} more" if more > 0 else "")
        raise DataError(
            f"{root} ({option}): would replace {len(taken)} file(s) that p2pkit did not write "
            f"({shown}); move them away or choose another folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    record = {
        "note": "files written by p2pkit commands; later p2pkit commands may replace them",
        "files": sorted(owned | set(wanted)),
    }
    # Recorded before the files are written: a command stopped half-way has only claimed names
    # that were free or already p2pkit's, so a rerun may replace them.
    tmp = root / f"{OUTPUTS_FILE}.tmp-{secrets.token_hex(4)}"
    try:
        tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, root / OUTPUTS_FILE)
    finally:
        tmp.unlink(missing_ok=True)  # only this call's own temporary file
    return root
