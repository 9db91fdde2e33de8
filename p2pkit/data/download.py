"""Download and safely unpack the official pix2pix datasets.

``p2pkit data download NAME`` calls :func:`download`. The archives are the ones the pix2pix
authors publish at ``http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/<name>.tar.gz``; each
unpacks to ``<name>/{train,val,test}/*.jpg``, every file one aligned ``A|B`` image.

What the function guarantees:

* Streaming into ``<archive>.part``; an interrupted download is resumed with an HTTP ``Range``
  request the next time (a server that answers ``200`` instead of ``206`` is handled by starting
  over, ``416`` means the part file is already complete).
* The body is checked against ``Content-Length``: a connection closed early leaves the ``.part``
  file in place for the next run and is never unpacked.
* Integrity: where a SHA-256 is known it is verified, a mismatch moves the file aside to
  ``<archive>.corrupt`` and raises :class:`~p2pkit.errors.DataError`. Where none is known (we
  publish none we have not computed ourselves) the digest is computed, printed and recorded in
  ``<archive>.sha256`` so every later run verifies the archive against it (trust on first use).
* Safe extraction: absolute paths, ``..`` components, links that leave the target and device
  files are refused, naming the member. Python's ``tarfile`` ``"data"`` filter is used where it
  exists and an equivalent manual extraction elsewhere. Members are unpacked into a temporary
  folder beside the destination, which is renamed into place only when everything succeeded.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from p2pkit.errors import DataError

__all__ = [
    "DATASETS",
    "PIX2PIX_BASE_URL",
    "DatasetSource",
    "download",
    "safe_extract",
    "sha256_file",
]

log = logging.getLogger(__name__)

PIX2PIX_BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
"""Where the pix2pix authors publish the datasets (plain HTTP: the host serves no HTTPS)."""

_CHUNK = 1 << 20
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar")
_PIX2PIX_CITATION = (
    "Isola et al., Image-to-Image Translation with Conditional Adversarial Networks, CVPR 2017"
)


@dataclass(frozen=True)
class DatasetSource:
    """One downloadable dataset.

    Attributes:
        name: Short name, also the folder the archive unpacks to.
        url: Official download address.
        approx_size: Approximate archive size in bytes, for messages only (the server's
            ``Content-Length`` is what is checked).
        sha256: Hex SHA-256 of the archive if known; ``None`` means "record on first download".
        license: Origin, licence and what to cite, in one line.
        recipes: The p2pkit recipes that train on this dataset.
        layout: How the images are laid out (which half is A, which B).
    """

    name: str
    url: str
    approx_size: int
    sha256: str | None
    license: str
    recipes: tuple[str, ...]
    layout: str


def _source(
    name: str, approx_size: int, license: str, recipes: tuple[str, ...], layout: str
) -> DatasetSource:
    # No checksum is published for these archives and we do not make one up: ``None`` makes
    # the first download record the digest it saw (see module docstring).
    return DatasetSource(
        name=name,
        url=f"{PIX2PIX_BASE_URL}/{name}.tar.gz",
        approx_size=approx_size,
        sha256=None,
        license=f"{license} Cite also: {_PIX2PIX_CITATION}.",
        recipes=recipes,
        layout=layout,
    )


DATASETS: dict[str, DatasetSource] = {
    s.name: s
    for s in (
        _source(
            "facades",
            30_000_000,
            "CMP Facade Database (Tylecek and Sara, GCPR 2013); research use.",
            ("facades",),
            "A = photo (left), B = label map (right); labels -> photo is BtoA",
        ),
        _source(
            "cityscapes",
            100_000_000,
            "Cityscapes (Cordts et al., CVPR 2016); non-commercial research licence of "
            "cityscapes-dataset.com applies.",
            ("cityscapes", "cityscapes-photo2labels"),
            "A = photo (left), B = label map (right); labels -> photo is BtoA",
        ),
        _source(
            "maps",
            250_000_000,
            "Google Maps tiles and aerial photos scraped by Isola et al.; Google Maps terms "
            "apply, research use.",
            ("maps2aerial", "aerial2maps"),
            "A = aerial photo (left), B = map (right); map -> aerial is BtoA",
        ),
        _source(
            "edges2shoes",
            2_200_000_000,
            "UT Zappos50K (Yu and Grauman, CVPR 2014) with HED edges (Xie and Tu, ICCV 2015); "
            "research use.",
            ("edges2shoes",),
            "A = edges (left), B = photo (right); edges -> photo is AtoB",
        ),
        _source(
            "edges2handbags",
            8_600_000_000,
            "Amazon handbags of iGAN (Zhu et al., ECCV 2016) with HED edges (Xie and Tu, "
            "ICCV 2015); research use.",
            ("edges2handbags",),
            "A = edges (left), B = photo (right); edges -> photo is AtoB",
        ),
        _source(
            "night2day",
            1_900_000_000,
            "Transient Attributes webcams (Laffont et al., SIGGRAPH 2014); research use.",
            ("day2night",),
            "A = night (left), B = day (right); night -> day is AtoB",
        ),
    )
}


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _say(message: str, enabled: bool) -> None:
    """Tell the user something (stderr, so piped stdout stays clean) and log it."""
    log.info(message)
    if enabled:
        # soft_wrap: never break a digest or a path across lines on a narrow terminal.
        Console(stderr=True, soft_wrap=True).print(message, highlight=False, markup=False)


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "unknown size"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover - loop always returns


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the lowercase hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _archive_stem(filename: str) -> str:
    """``facades.tar.gz`` -> ``facades``."""
    for suffix in _ARCHIVE_SUFFIXES:
        if filename.lower().endswith(suffix):
            return filename[: -len(suffix)]
    return Path(filename).stem


def _resolve(
    name_or_url: str, url: str | None, sha256: str | None
) -> tuple[str, str, str, str | None]:
    """Work out ``(dataset name, url, archive file name, expected sha256)``."""
    if name_or_url in DATASETS:
        source = DATASETS[name_or_url]
        return source.name, url or source.url, f"{source.name}.tar.gz", sha256 or source.sha256
    if "://" not in name_or_url:
        known = ", ".join(sorted(DATASETS))
        raise DataError(
            f"unknown dataset {name_or_url!r}: use one of {known}, or give a full http(s) URL"
        )
    if url is not None and url != name_or_url:
        raise DataError(f"two URLs given ({name_or_url} and {url}): pass only one")
    path = urllib.parse.urlsplit(name_or_url).path
    filename = urllib.parse.unquote(PurePosixPath(path).name)
    if not filename or "/" in filename or "\\" in filename or filename in {".", ".."}:
        raise DataError(
            f"cannot tell the archive's file name from {name_or_url}: "
            "give a URL ending in NAME.tar.gz"
        )
    return _archive_stem(filename), name_or_url, filename, sha256


def _check_url(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in {"http", "https"}:
        raise DataError(f"cannot download {url}: only http:// and https:// URLs are supported")


_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)", re.IGNORECASE)


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """Parse ``Content-Range: bytes START-END/TOTAL`` (or ``bytes */TOTAL``) to (start, total)."""
    if not value:
        return None, None
    match = _CONTENT_RANGE.match(value.strip())
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    return start, total


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Download with resume
# --------------------------------------------------------------------------------------------


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def _fetch(url: str, part: Path, *, timeout: float, progress: bool, label: str) -> None:
    """Download ``url`` into ``part``, resuming what is already there.

    Returns only when ``part`` holds the whole body (as far as the server told us its length);
    raises :class:`DataError` otherwise, leaving ``part`` in place to resume from.
    """
    # Two rounds at most: the second only happens after we discarded an unusable part file.
    for _ in range(2):
        offset = part.stat().st_size if part.exists() else 0
        headers = {
            "User-Agent": "p2pkit-downloader",
            # Byte offsets must refer to the stored file, not to a re-compressed stream.
            "Accept-Encoding": "identity",
        }
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as err:
            with err:
                if err.code == 416 and offset:
                    # "Range not satisfiable": we asked for bytes past the end, i.e. the part file
                    # is already complete -- unless the server says the file is shorter.
                    _, total = _parse_content_range(err.headers.get("Content-Range"))
                    if total is None or total == offset:
                        return
                    part.unlink()
                    continue
                raise DataError(
                    f"download of {url} failed: HTTP {err.code} {err.reason}; check the URL "
                    "or try again later"
                ) from err
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise DataError(
                f"cannot reach {url} ({reason}); check the network or pass --url with a mirror"
                + ("; run again to resume" if offset else "")
            ) from err

        with response:
            length = _int_header(response.headers.get("Content-Length"))
            if offset and response.status == 206:
                start, total = _parse_content_range(response.headers.get("Content-Range"))
                if start is not None and start != offset:
                    # The server sent a different range from the one asked for: start over.
                    part.unlink()
                    continue
                mode = "ab"
                expected = (
                    total
                    if total is not None
                    else (offset + length if length is not None else None)
                )
            else:
                # A plain 200 is the whole file, even if we asked for a range (some servers and
                # proxies ignore Range): overwrite the part file instead of appending.
                if offset:
                    _say(f"{url} does not support resuming; starting over", progress)
                offset = 0
                mode = "wb"
                expected = length
            if expected is not None:
                free = shutil.disk_usage(part.parent).free
                if free < expected - offset:
                    raise DataError(
                        f"not enough disk space in {part.parent} for {url}: need "
                        f"{_fmt_bytes(expected - offset)}, {_fmt_bytes(free)} free; free some "
                        "space or choose another folder"
                    )
            _stream(response, part, mode, offset, expected, url, progress, label)

        size = part.stat().st_size
        if expected is not None and size < expected:
            raise DataError(
                f"download of {url} ended early ({_fmt_bytes(size)} of {_fmt_bytes(expected)}); "
                f"the partial file {part} is kept, run the same command again to resume"
            )
        if expected is not None and size > expected:
            aside = part.with_name(part.name + ".bad")
            os.replace(part, aside)
            raise DataError(
                f"{part} grew larger than the server's {_fmt_bytes(expected)}; it was moved to "
                f"{aside}, delete it and run again"
            )
        return
    raise DataError(f"the server of {url} answered range requests inconsistently; run again")


def _stream(
    response: http.client.HTTPResponse,
    part: Path,
    mode: str,
    offset: int,
    expected: int | None,
    url: str,
    progress: bool,
    label: str,
) -> None:
    """Copy the response body to ``part`` chunk by chunk, showing a progress bar."""
    with _progress_bar(progress) as bar, open(part, mode) as fh:
        task = bar.add_task(label, total=expected, completed=offset)
        try:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                fh.write(chunk)
                bar.advance(task, len(chunk))
        except (http.client.HTTPException, OSError) as err:
            # A reset connection, a timeout or http.client's IncompleteRead all mean the same:
            # what we have is a valid prefix, keep it for the next run.
            fh.flush()
            raise DataError(
                f"download of {url} was interrupted ({err.__class__.__name__}) after "
                f"{_fmt_bytes(fh.tell())}; the partial file {part} is kept, run the same "
                "command again to resume"
            ) from err


# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------


def _read_sidecar(sidecar: Path) -> str | None:
    if not sidecar.is_file():
        return None
    text = sidecar.read_text(encoding="utf-8").strip()
    digest = text.split()[0].lower() if text else ""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise DataError(f"{sidecar} does not hold a SHA-256 digest; delete it and run again")
    return digest


def _verify(archive: Path, expected: str | None, progress: bool) -> None:
    """Check ``archive`` against ``expected`` or its sidecar; record the digest if neither."""
    sidecar = archive.with_name(archive.name + ".sha256")
    recorded = _read_sidecar(sidecar)
    want = expected.lower() if expected else recorded
    got = sha256_file(archive)
    if want is None:
        sidecar.write_text(f"{got}  {archive.name}\n", encoding="utf-8")
        _say(
            f"sha256 of {archive.name}: {got} (no published checksum; recorded in {sidecar.name} "
            "so later runs verify against it)",
            progress,
        )
        return
    if got != want:
        aside = archive.with_name(archive.name + ".corrupt")
        os.replace(archive, aside)
        source = "the expected value" if expected else f"the digest recorded in {sidecar}"
        raise DataError(
            f"{archive} has sha256 {got}, not {want} ({source}); the file was moved to "
            f"{aside.name}: delete it and run again"
            + ("" if expected else f" (or delete {sidecar.name} if the server's file changed)")
        )
    if recorded != got:
        sidecar.write_text(f"{got}  {archive.name}\n", encoding="utf-8")
    _say(f"sha256 of {archive.name} verified", progress)


# --------------------------------------------------------------------------------------------
# Safe extraction
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
                shutil.copyfileobj(source, fh, _CHUNK)
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
    archive: str | os.PathLike[str], dest: str | os.PathLike[str], *, use_filter: bool | None = None
) -> None:
    """Extract a tar archive into the existing folder ``dest``, refusing unsafe members.

    Args:
        archive: A ``.tar``, ``.tar.gz``, ``.tar.bz2`` or ``.tar.xz`` file.
        dest: Folder to extract into; should be empty (callers pass a fresh temporary folder).
        use_filter: Use ``tarfile``'s ``"data"`` filter (default: when this Python has it).
            ``False`` forces the manual equivalent; tests use it to cover old Pythons.

    Raises:
        DataError: naming the first offending member, or if the archive is unreadable. What was
            already written to ``dest`` stays there for the caller to remove.
    """
    archive = Path(archive)
    dest = Path(dest)
    if use_filter is None:
        use_filter = hasattr(tarfile, "data_filter")
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            # Judge the whole archive before writing anything, so a bad member at the end does
            # not leave a half-extracted tree and the message names the member plainly.
            for member in members:
                problem = _member_problem(member)
                if problem:
                    raise DataError(
                        f"{archive.name}: archive member {member.name!r} {problem}; the archive "
                        "is refused, nothing was extracted"
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
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(
            f"{archive} cannot be unpacked ({err}); delete it and run again to download it afresh"
        ) from err
    _check_links_on_disk(dest, archive.name)


def _extract_into(archive: Path, target: Path, progress: bool) -> Path:
    """Unpack ``archive`` so that its dataset ends up at ``target``, atomically."""
    if not tarfile.is_tarfile(archive):
        raise DataError(
            f"{archive} is not a tar archive (perhaps an error page was saved); delete it and run "
            "again"
        )
    _say(f"unpacking {archive.name} into {target}", progress)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.unpacking-", dir=target.parent))
    try:
        safe_extract(archive, tmp)
        entries = list(tmp.iterdir())
        # The pix2pix archives hold one top folder (facades/...): that folder becomes the target.
        # Anything else is kept as it is, inside the target folder.
        if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
            source = entries[0]
        else:
            source = tmp
        if target.exists():
            raise DataError(f"{target} appeared while unpacking; remove it and run again")
        os.replace(source, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def download(
    name_or_url: str,
    dest_dir: str | os.PathLike[str],
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    extract: bool = True,
    timeout: float = 30,
) -> Path:
    """Download (and by default unpack) a pix2pix dataset archive.

    Args:
        name_or_url: A name from :data:`DATASETS` (``"facades"``, ...) or a full http(s) URL of
            a tar archive.
        dest_dir: Folder for the archive and the unpacked dataset (created if missing).
        url: Mirror to use instead of the official address of a named dataset.
        sha256: Expected hex SHA-256 of the archive; overrides the table and the sidecar.
        progress: Show a progress bar and messages on stderr.
        extract: Unpack the archive after download.
        timeout: Seconds to wait for the server on connect and on each read.

    Returns:
        ``dest_dir/<name>`` (the unpacked dataset) if ``extract``, else the archive's path. If
        the unpacked folder already exists it is returned at once, without network access.

    Raises:
        DataError: unknown name, network or HTTP failure, truncated download (the ``.part`` file
            is kept for resuming), checksum mismatch (the file is moved to ``.corrupt``), or an
            unsafe/unreadable archive (nothing is left half-unpacked).
    """
    name, url, filename, expected = _resolve(name_or_url, url, sha256)
    _check_url(url)
    if expected is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", expected):
        raise DataError(f"{expected!r} is not a SHA-256 hex digest (64 hex characters)")
    dest = Path(dest_dir).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    archive = dest / filename

    if extract and target.exists():
        _say(f"{target} already exists; nothing to do (delete it to unpack again)", progress)
        return target

    if not archive.is_file():
        part = archive.with_name(archive.name + ".part")
        size = f" (about {_fmt_bytes(DATASETS[name].approx_size)})" if name in DATASETS else ""
        resuming = ", resuming" if part.exists() else ""
        _say(f"downloading {url}{size}{resuming}", progress)
        _fetch(url, part, timeout=timeout, progress=progress, label=filename)
        os.replace(part, archive)
    _verify(archive, expected, progress)

    if not extract:
        return archive
    return _extract_into(archive, target, progress)
