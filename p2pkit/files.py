"""Files and names from outside: synced writes, bounded reads, hashes, names that stay names.

Shared by checkpoints (``p2pkit.engine.checkpoint``), downloads (``p2pkit.data.download``),
run folders and the commands that write results.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from p2pkit.errors import ConfigError


class NotARegularFile(OSError):
    """A path that should be a regular file is a device, folder, pipe or link to one."""


class FileTooLarge(OSError):
    """A file is larger than the limit a reader set for it."""


def fsync_file(path: Path) -> None:
    # "r+b": Windows refuses fsync on a read-only handle.
    with open(path, "r+b") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (POSIX only; Windows cannot open folders)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes.

    Files that come from elsewhere may be links to a device (``/dev/zero`` would be
    read until memory runs out) or absurdly large.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        NotARegularFile: it is a device, folder or pipe, or a link to one.
        FileTooLarge: it holds more than ``limit`` bytes.
    """
    info = os.stat(path)  # follows a symlink: what counts is what would be read
    if not stat.S_ISREG(info.st_mode):
        raise NotARegularFile(f"{path} is not a regular file")
    if limit is not None and info.st_size > limit:
        raise FileTooLarge(f"{path} is {info.st_size} bytes")
    with open(path, "rb") as f:
        data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:  # it grew after the check
        raise FileTooLarge(f"{path} is over {limit} bytes")
    return data


def plain_name(
    value: Any, key: str, where: str | os.PathLike[str] | None = None, *, example: str = "val"
) -> str:
    """``value`` if it is a single file or folder name, to be joined to a folder.

    Args:
        value: the name as read (a split, an image name...).
        key: what the value is, for the message (``recipe data.val_split``, ``--split``).
        where: the file the value was read from; None for a command-line option.
        example: a good value, for the message.

    Returns:
        ``value``, unchanged.

    Raises:
        ConfigError: ``value`` is not a string, is empty, ``.`` or ``..``, holds ``/`` or ``\\``,
            or is an absolute path or a drive (``C:``).
    """
    bad = (
        not isinstance(value, str)
        or value.strip() in ("", ".", "..")
        or any(c in value for c in "/\\\0")
        or PureWindowsPath(value).drive != ""
        or PurePosixPath(value).is_absolute()
    )
    if bad:
        prefix = f"{where}: " if where is not None else ""
        raise ConfigError(
            f"{prefix}{key} = {value!r} must be a single folder or file name (no '/', '\\', "
            f"'..', drive or absolute path); change it to a plain name such as {example!r}"
        )
    return value


__all__ = [
    "FileTooLarge",
    "NotARegularFile",
    "fsync_dir",
    "fsync_file",
    "plain_name",
    "read_regular",
    "sha256_file",
]
