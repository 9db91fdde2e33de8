"""Safe, bounded unpacking of tar archives from outside (the downloaded datasets).

[`safe_extract`][p2pkit.data.archive.safe_extract] is what
[`p2pkit.data.download`][p2pkit.data.download] unpacks with; it guarantees:

* Safe members: absolute paths, ``..`` components, links that leave the target and device files
  are refused, naming the member. Python's ``tarfile`` ``"data"`` filter is used where it exists
  and an equivalent manual extraction elsewhere. Links are written last, so nothing is ever
  written through a link, and symlink chains are checked on disk afterwards.
* Bounds: an archive whose headers declare more than
  [`MAX_UNPACK_BYTES`][p2pkit.data.archive.MAX_UNPACK_BYTES] unpacked or more than
  [`MAX_UNPACK_MEMBERS`][p2pkit.data.archive.MAX_UNPACK_MEMBERS] members is refused before
  anything is written (``$P2PKIT_MAX_UNPACK_BYTES`` and ``$P2PKIT_MAX_UNPACK_MEMBERS`` raise the
  limits), as is one that would not fit in the free disk space.
* A full disk while unpacking is reported as such, not as a broken archive.

[`check_members`][p2pkit.data.archive.check_members] is the judgement alone, which a download
also passes before it trusts a new archive's digest. The message helpers ``_fmt_bytes``,
``_no_space`` and ``_one_line`` are shared with the download module, which words its errors the
same way.

Why this module is long: the judgement (which members are safe, what fits) and the extraction
that acts on it must agree member by member; kept together, a change to one rule is read next to
the code that relies on it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from p2pkit.errors import DataError

__all__ = [
    "MAX_UNPACK_BYTES",
    "MAX_UNPACK_MEMBERS",
    "READ_ERRORS",
    "check_members",
    "safe_extract",
    "unpack_limits",
]

MAX_UNPACK_BYTES = 64 * 1024**3
"""Default limit on the bytes one archive may unpack to (64 GiB; edges2handbags needs ~9 GB)."""

MAX_UNPACK_MEMBERS = 2_000_000
"""Default limit on the members (files, folders, links) of one archive."""

READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)
"""What reading a broken, cut-off or unreadable archive raises (a full disk is an ``OSError``
too: tell it apart with ``_no_space``)."""

_BYTES_VARIABLE = "P2PKIT_MAX_UNPACK_BYTES"
_MEMBERS_VARIABLE = "P2PKIT_MAX_UNPACK_MEMBERS"

# "No room to write": a full disk, or (where the platform has it) an exhausted quota.
_NO_SPACE = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None
)

# Buffer of the manual extraction's file copies.
_COPY_BUFFER = 1 << 20


# --------------------------------------------------------------------------------------------
# Messages and disk space
# --------------------------------------------------------------------------------------------


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "unknown size"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover - loop always returns


def _no_space(err: BaseException) -> bool:
    """Whether ``err`` says the disk (or the user's quota) is full."""
    return isinstance(err, OSError) and err.errno in _NO_SPACE


def _one_line(err: BaseException) -> str:
    # tarfile.open's "could not be opened" lists one line per compression method it tried.
    return " ".join(str(err).split()) or err.__class__.__name__


def _free_space(folder: Path) -> int:
    """Free bytes on the disk that holds ``folder`` (or its nearest existing parent)."""
    folder = folder.absolute()
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return shutil.disk_usage(folder).free


# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------


_SIZE = re.compile(r"([0-9]+)\s*(?:([KMGT])(i?)B?|B)?", re.IGNORECASE)


def _parse_size(text: str) -> int | None:
    """``"200G"`` -> 200 * 1000**3, ``"64GiB"`` -> 64 * 1024**3, ``"5000"`` -> 5000; else None."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        return None
    number, prefix, binary = match.groups()
    if prefix is None:
        return int(number)
    return int(number) * (1024 if binary else 1000) ** ("KMGT".index(prefix.upper()) + 1)


def _limit(value: int | None, variable: str, default: int, argument: str) -> int:
    """An unpacking limit: the argument if given, else ``$variable``, else ``default``."""
    if value is not None:
        if value < 1:
            raise DataError(f"{argument} must be 1 or more, not {value}")
        return value
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    sizes = variable == _BYTES_VARIABLE
    parsed = _parse_size(text) if sizes else (int(text) if re.fullmatch(r"[0-9]+", text) else None)
    if not parsed:
        example = "200G" if sizes else "5000000"
        raise DataError(
            f"{variable}={text!r} is not a positive {'size' if sizes else 'whole number'}: set "
            f"it like {variable}={example}, or unset it for the default"
        )
    return parsed


def unpack_limits(max_bytes: int | None, max_members: int | None) -> tuple[int, int]:
    """The unpacking limits ``(bytes, members)`` from the arguments, environment or defaults."""
    return (
        _limit(max_bytes, _BYTES_VARIABLE, MAX_UNPACK_BYTES, "max_bytes"),
        _limit(max_members, _MEMBERS_VARIABLE, MAX_UNPACK_MEMBERS, "max_members"),
    )


# --------------------------------------------------------------------------------------------
# Judging the members
# --------------------------------------------------------------------------------------------


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Return why ``member`` must not be extracted, judging by the archive alone, or ``None``."""
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path"
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "climbs out of the target folder with '..'"
    if member.ischr() or member.isblk() or member.isfifo():
        return "is a device file or pipe"
    if member.issym() or member.islnk():
        link = member.linkname
        if not link or link.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", link):
            return f"is a link to the absolute path {link!r}"
        # Symlinks resolve from their own folder, hard links from the archive root.
        base = PurePosixPath(*parts[:-1]) if member.issym() else PurePosixPath()
        depth = 0
        for part in (*base.parts, *PurePosixPath(link.replace("\\", "/")).parts):
            depth = depth - 1 if part == ".." else depth + (part not in {"", "."})
            if depth < 0:
                return f"is a link to {link!r}, outside the target folder"
        return None
    if not (member.isfile() or member.isdir()):
        return "is of a type that is not a file, folder or link"
    return None


def _over_size_limit(label: str, max_bytes: int) -> DataError:
    bigger = -(-2 * max_bytes // 1000**3)  # twice the limit, in whole GB
    return DataError(
        f"{label} unpacks to more than {_fmt_bytes(max_bytes)}, the limit on unpacked size; "
        f"nothing was extracted. If you trust the archive, raise the limit: set "
        f"{_BYTES_VARIABLE}={bigger}G (or pass max_bytes)"
    )


def check_members(
    tar: tarfile.TarFile, label: str, max_bytes: int, max_members: int
) -> tuple[list[tarfile.TarInfo], int]:
    """Judge every member of an open archive before anything is written.

    Args:
        tar: The archive, opened for reading.
        label: What messages call it (its file name).
        max_bytes: The most bytes its members may unpack to.
        max_members: The most members it may have.

    Returns:
        The members, and the bytes extracting them writes.

    Raises:
        DataError: a member is unsafe, or the archive exceeds ``max_bytes`` or ``max_members``.
        tarfile.TarError, EOFError, zlib.error, OSError: the archive cannot be read.
    """
    members: list[tarfile.TarInfo] = []
    sizes: dict[str, int] = {}
    later: list[str] = []
    total = 0
    # One header at a time, so a limit stops the scan at the first member past it: listing a
    # compressed bomb to its end would mean decompressing all of it. The declared sizes are what
    # gets written: tarfile copies exactly ``size`` bytes per file, whatever the stream holds.
    for member in tar:
        members.append(member)
        if len(members) > max_members:
            raise DataError(
                f"{label} holds more than {max_members:,} members, the limit; nothing was "
                "extracted. If you trust the archive, raise the limit: set "
                f"{_MEMBERS_VARIABLE}={2 * max_members} (or pass max_members)"
            )
        problem = _member_problem(member)
        if problem:
            raise DataError(
                f"{label}: archive member {member.name!r} {problem}; the archive is refused, "
                "nothing was extracted"
            )
        if member.isfile():
            sizes[str(PurePosixPath(member.name))] = member.size
            total += member.size
        elif member.islnk():
            # A hard link is written as a copy by the manual path (and by tarfile where the file
            # system has no hard links), so it weighs as much as its target.
            target = str(PurePosixPath(member.linkname))
            if target in sizes:
                total += sizes[target]
            else:
                later.append(target)
        if total > max_bytes:
            raise _over_size_limit(label, max_bytes)
    total += sum(sizes.get(target, 0) for target in later)
    if total > max_bytes:
        raise _over_size_limit(label, max_bytes)
    return members, total


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _extract_manually(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path, label: str
) -> None:
    """Extract pre-checked members without the ``tarfile`` data filter (Python < 3.10.12).

    Order matters for safety: folders and regular files first, then hard links (copied, never
    linked), then symbolic links. No file is written after the first symlink exists, so nothing
    can be written through a link; every link target is checked against the real on-disk paths.
    """
    root = os.path.realpath(dest)

    def target_of(member: tarfile.TarInfo) -> str:
        rel = PurePosixPath(member.name.replace("\\", "/"))
        path = os.path.realpath(os.path.join(root, *rel.parts))
        if not _inside(path, root):
            raise DataError(
                f"{label}: archive member {member.name!r} would be written outside {dest}"
            )
        return path

    for member in members:
        if member.isdir():
            os.makedirs(target_of(member), exist_ok=True)
        elif member.isfile():
            path = target_of(member)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            source = tar.extractfile(member)
            if source is None:  # pragma: no cover - isfile() members always have data
                continue
            with source, open(path, "wb") as fh:
                shutil.copyfileobj(source, fh, _COPY_BUFFER)
            # Like the data filter: keep only the owner-execute bit, drop setuid & co.
            os.chmod(path, 0o755 if member.mode & 0o100 else 0o644)
    for member in members:
        if member.islnk():
            path = target_of(member)
            source_path = os.path.realpath(
                os.path.join(root, *PurePosixPath(member.linkname).parts)
            )
            if not _inside(source_path, root) or not os.path.isfile(source_path):
                raise DataError(
                    f"{label}: archive member {member.name!r} links to {member.linkname!r}, "
                    "which is not a file inside the archive; the archive is refused"
                )
            os.makedirs(os.path.dirname(path), exist_ok=True)
            shutil.copyfile(source_path, path)
    for member in members:
        if member.issym():
            path = target_of(member)
            link_target = os.path.realpath(os.path.join(os.path.dirname(path), member.linkname))
            if not _inside(link_target, root):
                raise DataError(
                    f"{label}: archive member {member.name!r} links to {member.linkname!r}, "
                    "outside the target folder; the archive is refused"
                )
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(member.linkname, path)


def _check_links_on_disk(dest: Path, label: str) -> None:
    """Refuse the result if any symlink now resolves outside ``dest`` (chains of links)."""
    root = os.path.realpath(dest)
    for folder, dirnames, filenames in os.walk(dest):
        for entry in (*dirnames, *filenames):
            path = os.path.join(folder, entry)
            if os.path.islink(path) and not _inside(os.path.realpath(path), root):
                rel = os.path.relpath(path, dest)
                raise DataError(
                    f"{label}: archive member {rel!r} resolves to a path outside the target "
                    "folder; the archive is refused"
                )


def safe_extract(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    use_filter: bool | None = None,
    max_bytes: int | None = None,
    max_members: int | None = None,
    shown: str | os.PathLike[str] | None = None,
) -> None:
    """Extract a tar archive into the existing folder ``dest``, refusing unsafe members.

    Args:
        archive: A ``.tar``, ``.tar.gz``, ``.tar.bz2`` or ``.tar.xz`` file.
        dest: Folder to extract into; should be empty (callers pass a fresh temporary folder).
        use_filter: Use ``tarfile``'s ``"data"`` filter (default: when this Python has it).
            ``False`` forces the manual equivalent; tests use it to cover old Pythons.
        max_bytes: Refuse an archive whose members unpack to more bytes (hard links count as
            copies). Default: ``$P2PKIT_MAX_UNPACK_BYTES`` (``200G``, ``64GiB`` or bytes), else
            [`MAX_UNPACK_BYTES`][p2pkit.data.archive.MAX_UNPACK_BYTES].
        max_members: Refuse an archive with more members. Default:
            ``$P2PKIT_MAX_UNPACK_MEMBERS``, else
            [`MAX_UNPACK_MEMBERS`][p2pkit.data.archive.MAX_UNPACK_MEMBERS].
        shown: The folder that messages about disk space name (default ``dest``): a caller that
            unpacks into a temporary folder names the folder the user chose.

    Raises:
        DataError: naming the first offending member, the limit exceeded, a full disk, or if the
            archive is unreadable. Unsafe members and exceeded limits are found before anything
            is written; what a later failure already wrote stays in ``dest`` for the caller to
            remove.
    """
    max_bytes, max_members = unpack_limits(max_bytes, max_members)
    archive, dest = Path(archive), Path(dest)
    shown = dest if shown is None else Path(shown)
    if use_filter is None:
        use_filter = hasattr(tarfile, "data_filter")
    size: int | None = None
    try:
        with tarfile.open(archive, "r:*") as tar:
            # Judge the whole archive before writing anything, so a bad member at the end does
            # not leave a half-extracted tree and the message names the member plainly.
            members, size = check_members(tar, archive.name, max_bytes, max_members)
            free = _free_space(dest)
            if free < size:
                raise DataError(
                    f"not enough disk space in {shown} to unpack {archive.name}: need "
                    f"{_fmt_bytes(size)}, {_fmt_bytes(free)} free; free some space and run again"
                )
            if use_filter:
                # Links last, as in the manual path: once a link exists no file is written after
                # it, so nothing can be written through a link, whatever the archive's order.
                ordered = sorted(members, key=lambda m: 2 if m.issym() else int(m.islnk()))
                try:
                    tar.extractall(dest, members=ordered, filter="data")
                except tarfile.FilterError as err:
                    bad = err.tarinfo.name if getattr(err, "tarinfo", None) else "?"
                    raise DataError(
                        f"{archive.name}: archive member {bad!r} is unsafe ({err}); the archive "
                        "is refused"
                    ) from err
            else:
                _extract_manually(tar, members, dest, archive.name)
    except DataError:
        raise
    except READ_ERRORS as err:
        if _no_space(err):
            # The archive is fine: only the space is missing, so do not advise deleting it.
            needs = f", which needs about {_fmt_bytes(size)}" if size is not None else ""
            raise DataError(
                f"the disk holding {shown} is full while unpacking {archive.name}{needs}; free "
                "some space and run again (the archive itself is fine)"
            ) from err
        raise DataError(
            f"{archive} cannot be unpacked ({_one_line(err)}); delete it and run again to "
            "download it afresh"
        ) from err
    _check_links_on_disk(dest, archive.name)
