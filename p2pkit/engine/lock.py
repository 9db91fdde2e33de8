"""A lock on a run folder while a training writes in it.

Two trainings in one folder would interleave their loss logs and prune each other's
checkpoints. The lock is an operating-system file lock (``flock`` on POSIX,
``msvcrt.locking`` on Windows) on ``RUN/.lock``: it is released by the kernel when the
process ends, however it ends (``kill -9`` included), so a stale lock never blocks a
resume. The file's text names the holder (pid, host, start time) for the error
message; it is informative only, the lock itself is what counts.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from p2pkit.errors import ConfigError

LOCK_FILE = ".lock"


class RunFolderLocked(ConfigError):
    """Another process trains in the run folder."""


def _try_lock(handle: IO[str]) -> bool:
    if os.name == "nt":  # pragma: no cover - Windows
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(handle: IO[str]) -> None:
    if os.name == "nt":  # pragma: no cover - Windows
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"process {info['pid']} on {info['host']} (since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class RunLock:
    """Exclusive lock on a run folder, held from `acquire` to `release`.

    Use as a context manager::

        with RunLock(run_dir):
            ...  # train

    Raises:
        RunFolderLocked: on entry, when another process holds the folder.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> RunLock:
        if self._handle is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # "a+" neither truncates the holder's text before the lock is ours nor fails
        # when the file is missing.
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open on purpose
        if not _try_lock(handle):
            handle.close()
            raise RunFolderLocked(
                f"{self.run_dir} is in use by a training in {_holder(self.path)}; wait for "
                "it to finish, stop it, or train under another --name"
            )
        handle.seek(0)
        handle.truncate()
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now().isoformat(timespec="seconds"),
        }
        handle.write(json.dumps(info) + "\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            _unlock(handle)
        finally:
            handle.close()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


__all__ = ["LOCK_FILE", "RunFolderLocked", "RunLock"]
