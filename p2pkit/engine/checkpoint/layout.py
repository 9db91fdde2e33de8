"""Where checkpoints live in a run folder: step folders, the ``latest`` pointer, pruning.

``<run>/checkpoints/`` holds ``step-00001234/`` folders (and named ones such as
``best/``) and a ``latest`` file naming the newest. Folders are replaced and removed
so that a reader never sees half of one: a new folder is renamed into place, an old
one is renamed to ``*.del-<random>`` before it is deleted.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

from p2pkit.errors import CheckpointError
from p2pkit.files import FileTooLarge, NotARegularFile, fsync_dir, read_regular

FORMAT = "p2pkit-checkpoint"
FORMAT_VERSION = 1

TENSORS_FILE = "tensors.safetensors"
META_FILE = "meta.json"
LATEST_FILE = "latest"
CHECKPOINTS_DIR = "checkpoints"
POINTER_LIMIT = 4096  # the pointer holds one folder name

STEP_DIR = re.compile(r"^step-(\d{8,})$")
# Named checkpoints ("best", "final") live beside the step directories; the name
# must not collide with them, with the pointer file or with temporary directories.
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


def read_checkpoint_file(path: Path, limit: int | None, what: str) -> bytes:
    """The bytes of a checkpoint's ``path``, a regular file of at most ``limit`` bytes.

    A checkpoint folder is data from anywhere: a file in it may be a link to a device
    or absurdly large, and is then refused by name instead of read.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: it is not a regular file, or it is too large.
    """
    try:
        return read_regular(path, limit)
    except NotARegularFile:
        raise CheckpointError(
            f"{path} is not a regular file (a device, folder or pipe, or a link to one); "
            f"the {what} is not usable, load another checkpoint"
        ) from None
    except FileTooLarge:
        raise CheckpointError(
            f"{path} is {path.stat().st_size} bytes, far more than a {what} can be (at most "
            f"{limit}); it is not a p2pkit file, load another checkpoint"
        ) from None


def checkpoint_dir_name(step: int) -> str:
    """The directory name of the checkpoint at ``step``: ``step-00001234``."""
    return f"step-{step:08d}"


def remove_dir(path: Path) -> None:
    """Delete a checkpoint directory without ever leaving a half-deleted one in view.

    It is first renamed to a name no loader or pruner matches, so an interruption
    during the slow ``rmtree`` leaves only such a name behind.
    """
    doomed = path.with_name(f"{path.name}.del-{secrets.token_hex(4)}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def install(tmp: Path, final: Path) -> None:
    """Rename the finished ``tmp`` directory to ``final``, replacing any old one.

    A directory cannot be renamed over a non-empty one, so an existing ``final``
    (a step saved again, or ``best``) is first renamed aside and put back if the
    second rename fails; it is deleted only once the new one is in place.
    """
    if not final.exists():
        os.rename(tmp, final)
        return
    aside = final.with_name(f"{final.name}.old-{secrets.token_hex(4)}")
    os.rename(final, aside)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(aside, final)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def write_pointer(ckpt_root: Path, target: str) -> None:
    """Point ``latest`` at ``target`` (a directory name) atomically."""
    tmp = ckpt_root / f".{LATEST_FILE}.tmp-{secrets.token_hex(4)}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(target + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, ckpt_root / LATEST_FILE)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(ckpt_root)


def checkpoints_root(path: Path) -> Path:
    return path if path.name == CHECKPOINTS_DIR else path / CHECKPOINTS_DIR


def list_checkpoints(path: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, directory)`` of every complete step checkpoint, oldest step first.

    Args:
        path: a run directory or its ``checkpoints`` directory.
    """
    root = checkpoints_root(Path(path))
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = STEP_DIR.match(child.name)
        if m and (child / META_FILE).is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def prune(root: Path, keep_last: int, just_written: Path) -> None:
    """Delete all but the ``keep_last`` highest-step checkpoints.

    The checkpoint just written always survives, even when a run restarted from an
    earlier step has left higher-numbered ones behind. Named checkpoints never
    match the step pattern and are never touched.
    """
    steps = list_checkpoints(root)
    keep = {p for _, p in steps[-keep_last:]} | {just_written}
    # Never more than keep_last: when the newest save is not among the highest
    # steps it takes the place of the oldest of them.
    extra = len(keep) - keep_last
    for _, p in steps:
        if extra <= 0:
            break
        if p in keep and p != just_written:
            keep.discard(p)
            extra -= 1
    for _, p in steps:
        if p not in keep:
            remove_dir(p)


_LEFTOVER = re.compile(r"^(?P<final>.+)\.(?P<kind>tmp|del|old)-[0-9a-f]+$")


def clean_leftovers(path: str | os.PathLike[str]) -> list[str]:
    """Remove what killed saves left behind; returns the names removed.

    A process killed during [`save_checkpoint`][p2pkit.engine.checkpoint.save_checkpoint] can leave
    a half-written ``step-*.tmp-*`` folder, a ``*.del-*`` folder being deleted, a ``.latest.tmp-*``
    pointer file, or a ``*.old-*`` folder set aside while a named checkpoint was
    replaced. None of them is ever loaded, but they take disk space. An ``*.old-*``
    folder whose checkpoint is missing is the only complete copy and is put back
    instead. Call this only while no other process saves into the run (the trainer
    holds the run folder's lock).

    Args:
        path: a run directory or its ``checkpoints`` directory.
    """
    root = checkpoints_root(Path(path))
    if not root.is_dir():
        return []
    removed = []
    for child in sorted(root.iterdir()):
        m = _LEFTOVER.match(child.name)
        if m is None:
            continue
        final = root / m.group("final")
        if m.group("kind") == "old" and not final.exists() and child.is_dir():
            os.rename(child, final)
            continue
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        removed.append(child.name)
    return removed


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint directory that ``path`` designates.

    ``path`` may be a checkpoint directory (or a file in one), a ``checkpoints``
    directory, or a run directory; the last two follow ``latest``, or take the
    highest step when there is no pointer.
    """
    p = Path(path)
    if p.name in (META_FILE, TENSORS_FILE) and p.exists() and not p.is_dir():
        p = p.parent
    if not p.exists():
        raise CheckpointError(f"checkpoint path {p} does not exist; check the spelling")
    # exists(), not is_file(): a meta.json that is a link to a device must be refused by
    # name when it is read, not make the folder look like something else.
    if (p / META_FILE).exists() or (p / TENSORS_FILE).exists():
        return p
    for root in (p, p / CHECKPOINTS_DIR):
        pointer = root / LATEST_FILE
        if pointer.exists():
            try:
                raw = read_checkpoint_file(pointer, POINTER_LIMIT, "'latest' pointer")
                target = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                target = ""
            if not target or "/" in target or "\\" in target or target in (".", ".."):
                raise CheckpointError(
                    f"{pointer} does not name a checkpoint folder; delete it or load a "
                    "step-XXXXXXXX folder directly"
                )
            if not (root / target).is_dir():
                raise CheckpointError(
                    f"{pointer} points to {target}, which is missing; load one of the "
                    "step-XXXXXXXX folders beside it directly"
                )
            return root / target
        steps = list_checkpoints(root) if root.name == CHECKPOINTS_DIR else []
        if steps:
            return steps[-1][1]
    raise CheckpointError(
        f"no checkpoint in {p}; pass a run folder, its checkpoints/ folder or a "
        "step-XXXXXXXX folder holding meta.json and tensors.safetensors"
    )


__all__ = [
    "CHECKPOINTS_DIR",
    "FORMAT",
    "FORMAT_VERSION",
    "LATEST_FILE",
    "META_FILE",
    "TENSORS_FILE",
    "checkpoint_dir_name",
    "checkpoints_root",
    "clean_leftovers",
    "find_checkpoint",
    "install",
    "list_checkpoints",
    "prune",
    "read_checkpoint_file",
    "remove_dir",
    "write_pointer",
]
