"""Download and safely unpack the official pix2pix datasets.

``p2pkit data download NAME`` calls [`download`][p2pkit.data.download.download]. The archives are
the ones the pix2pix authors publish at
``http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/<name>.tar.gz``; each unpacks to
``<name>/{train,val,test}/*.jpg``, every file one aligned ``A|B`` image.

What the function guarantees:

* Streaming into ``<archive>.part``; an interrupted download is resumed with an HTTP ``Range``
  request the next time (a server that answers ``200`` instead of ``206`` is handled by starting
  over, ``416`` means the part file is already complete).
* The body is checked against ``Content-Length``: a connection closed early leaves the ``.part``
  file in place for the next run and is never unpacked.
* Integrity: where a SHA-256 is known it is verified, a mismatch moves the file aside to
  ``<archive>.corrupt`` and raises [`DataError`][p2pkit.errors.DataError]. Where none is known (we
  publish none we have not computed ourselves) the digest is computed, printed and recorded in
  ``<archive>.sha256`` so every later run verifies the archive against it (trust on first use).
  It is recorded only once the file proved to be a readable tar archive that would be unpacked:
  anything else (an HTML error page, a cut-off file) is moved to ``<archive>.bad`` unrecorded, so
  the next run downloads afresh.
* Safe extraction: absolute paths, ``..`` components, links that leave the target and device
  files are refused, naming the member. Members are unpacked into a temporary folder beside the
  destination, which is renamed into place only when everything succeeded.
* Bounded extraction: an archive whose headers declare more than
  [`MAX_UNPACK_BYTES`][p2pkit.data.archive.MAX_UNPACK_BYTES] unpacked or more than
  [`MAX_UNPACK_MEMBERS`][p2pkit.data.archive.MAX_UNPACK_MEMBERS] members is refused before
  anything is written (``$P2PKIT_MAX_UNPACK_BYTES`` and ``$P2PKIT_MAX_UNPACK_MEMBERS`` raise the
  limits), as is one that would not fit in the free disk space.
* A full disk, while downloading or unpacking, is reported as such: the partial download and
  the archive are kept, and running again resumes once space was freed.

The unpacking itself lives in [`p2pkit.data.archive`][p2pkit.data.archive]; this module fetches,
resumes, verifies and puts the unpacked dataset in place.

Why this module is long: those steps are one protocol over the same files (``.part``,
``.sha256``, ``.bad``, ``.corrupt``): what each step does and says depends on what the others
leave behind, so they are read together; the dataset table is most of the rest.
"""

from __future__ import annotations

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

# The message helpers are archive.py's: both modules word sizes and full disks the same way.
from p2pkit.data.archive import (
    MAX_UNPACK_BYTES,
    MAX_UNPACK_MEMBERS,
    READ_ERRORS,
    _fmt_bytes,
    _no_space,
    _one_line,
    check_members,
    safe_extract,
    unpack_limits,
)
from p2pkit.errors import DataError
from p2pkit.files import sha256_file

__all__ = [
    "DATASETS",
    "DATA_HOME_ENV",
    "MAX_UNPACK_BYTES",
    "MAX_UNPACK_MEMBERS",
    "PIX2PIX_BASE_URL",
    "DatasetSource",
    "data_home",
    "download",
    "safe_extract",
    "sha256_file",
]

log = logging.getLogger(__name__)

PIX2PIX_BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
"""Where the pix2pix authors publish the datasets (plain HTTP: the host serves no HTTPS)."""

DATA_HOME_ENV = "P2PKIT_DATA"
"""Environment variable naming the data home, the folder that holds one folder per dataset."""


def data_home() -> Path:
    """Where ``p2pkit data download`` unpacks datasets and recipes look for them.

    ``$P2PKIT_DATA`` if set, else ``data`` in the working directory: dataset ``NAME`` is then
    ``data/NAME``, which a recipe whose ``data.source`` is ``NAME`` finds without
    ``--data-root``.
    """
    return Path(os.environ.get(DATA_HOME_ENV, "").strip() or "data").expanduser()


# Bytes read from the network per write to the part file.
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
    raises [`DataError`][p2pkit.errors.DataError] otherwise, leaving ``part`` in place to resume
    from.
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
    with _progress_bar(progress) as bar:
        task = bar.add_task(label, total=expected, completed=offset)
        try:
            # The file is closed inside the try: closing flushes the buffer, which is where a
            # full disk often shows first.
            with open(part, mode) as fh:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    fh.write(chunk)
                    bar.advance(task, len(chunk))
        except (http.client.HTTPException, OSError) as err:
            # Whatever failed, the bytes on disk are a valid prefix of the body (writes land in
            # order): keep them for the next run.
            have = part.stat().st_size if part.exists() else 0
            if _no_space(err):
                short = expected - have if expected is not None else 0
                more = f", it needs {_fmt_bytes(short)} more" if short > 0 else ""
                raise DataError(
                    f"the disk holding {part.parent} is full: the download of {url} stopped "
                    f"after {_fmt_bytes(have)}{more}; free some space and run the same command "
                    f"again to resume (the partial file {part.name} is kept)"
                ) from err
            # A reset connection, a timeout or http.client's IncompleteRead all mean the same.
            raise DataError(
                f"download of {url} was interrupted ({err.__class__.__name__}) after "
                f"{_fmt_bytes(have)}; the partial file {part} is kept, run the same "
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


def _record(sidecar: Path, digest: str, archive: Path) -> None:
    """Write ``digest`` to the sidecar file of ``archive``."""
    try:
        sidecar.write_text(f"{digest}  {archive.name}\n", encoding="utf-8")
    except OSError as err:
        if not _no_space(err):
            raise
        # A cut-off record would stop every later run with "does not hold a digest".
        sidecar.unlink(missing_ok=True)
        raise DataError(
            f"the disk holding {sidecar.parent} is full: cannot record {sidecar.name}; free some "
            f"space and run again ({archive.name} is kept)"
        ) from err


def _reject_download(archive: Path, why: str) -> DataError:
    """Move a downloaded file that is no usable archive aside; return the error to raise."""
    with open(archive, "rb") as fh:
        head = fh.read(512)
    if not head:
        why = "it is empty"
    elif head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        why = "it starts with '<' like an HTML page, probably an error or login page"
    aside = archive.with_name(archive.name + ".bad")
    os.replace(archive, aside)
    return DataError(
        f"{archive} is not a tar archive ({why}): the server did not send one; no checksum was "
        f"recorded and the file was moved to {aside.name} (its content may say why), run the "
        "same command again to retry"
    )


def _check_first_download(archive: Path, max_bytes: int, max_members: int) -> None:
    """Make sure ``archive``, whose digest is about to be trusted, is an archive we would unpack.

    Raises:
        DataError: the file is not a readable tar archive (it is moved to ``<archive>.bad``), a
            member is unsafe, or the archive exceeds the unpacking limits (it stays in place).
    """
    opened = False
    try:
        with tarfile.open(archive, "r:*") as tar:
            opened = True
            check_members(tar, archive.name, max_bytes, max_members)
    except READ_ERRORS as err:
        if opened:
            why = f"it breaks off: {_one_line(err)}"
        else:
            why = "it is none of .tar, .tar.gz, .tar.bz2, .tar.xz"
        raise _reject_download(archive, why) from err


def _verify(
    archive: Path, expected: str | None, progress: bool, max_bytes: int, max_members: int
) -> None:
    """Check ``archive`` against ``expected`` or its sidecar; record the digest if neither."""
    sidecar = archive.with_name(archive.name + ".sha256")
    recorded = _read_sidecar(sidecar)
    want = expected.lower() if expected else recorded
    got = sha256_file(archive)
    if want is None:
        # Trust on first use, but only of an archive: the recorded digest of an error page would
        # make every later download of the real file fail the check.
        _check_first_download(archive, max_bytes, max_members)
        _record(sidecar, got, archive)
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
        _record(sidecar, got, archive)
    _say(f"sha256 of {archive.name} verified", progress)


# --------------------------------------------------------------------------------------------
# Unpacking into place
# --------------------------------------------------------------------------------------------


def _extract_into(
    archive: Path, target: Path, progress: bool, max_bytes: int, max_members: int
) -> Path:
    """Unpack ``archive`` so that its dataset ends up at ``target``, atomically."""
    if not tarfile.is_tarfile(archive):
        # Only reached when a digest was known: a sidecar recorded by an older p2pkit may hold
        # the digest of an error page, and would fail the next download of the real archive.
        sidecar = archive.with_name(archive.name + ".sha256")
        also = f" and {sidecar.name}" if sidecar.exists() else ""
        raise DataError(
            f"{archive} is not a tar archive (perhaps an error page was saved); delete it{also} "
            "and run again"
        )
    _say(f"unpacking {archive.name} into {target}", progress)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.unpacking-", dir=target.parent))
    except OSError as err:
        if not _no_space(err):
            raise
        raise DataError(
            f"the disk holding {target.parent} is full: cannot unpack {archive.name}; free some "
            "space and run again (the archive itself is fine)"
        ) from err
    try:
        safe_extract(
            archive, tmp, max_bytes=max_bytes, max_members=max_members, shown=target.parent
        )
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
    max_bytes: int | None = None,
    max_members: int | None = None,
) -> Path:
    """Download (and by default unpack) a pix2pix dataset archive.

    Args:
        name_or_url: A name from `DATASETS` (``"facades"``, ...) or a full http(s) URL of
            a tar archive.
        dest_dir: Folder for the archive and the unpacked dataset (created if missing).
        url: Mirror to use instead of the official address of a named dataset.
        sha256: Expected hex SHA-256 of the archive; overrides the table and the sidecar.
        progress: Show a progress bar and messages on stderr.
        extract: Unpack the archive after download.
        timeout: Seconds to wait for the server on connect and on each read.
        max_bytes: Refuse an archive that unpacks to more bytes (see
            [`safe_extract`][p2pkit.data.archive.safe_extract]; default
            ``$P2PKIT_MAX_UNPACK_BYTES``, else
            [`MAX_UNPACK_BYTES`][p2pkit.data.archive.MAX_UNPACK_BYTES]).
        max_members: Refuse an archive with more members (default
            ``$P2PKIT_MAX_UNPACK_MEMBERS``, else
            [`MAX_UNPACK_MEMBERS`][p2pkit.data.archive.MAX_UNPACK_MEMBERS]).

    Returns:
        ``dest_dir/<name>`` (the unpacked dataset) if ``extract``, else the archive's path. If
        the unpacked folder already exists it is returned at once, without network access.

    Raises:
        DataError: unknown name, network or HTTP failure, truncated download or full disk (the
            ``.part`` file is kept for resuming), checksum mismatch (the file is moved to
            ``.corrupt``), a first download that is no archive (moved to ``.bad``, nothing
            recorded), or an unsafe, unreadable or too large archive (nothing is left
            half-unpacked).
    """
    max_bytes, max_members = unpack_limits(max_bytes, max_members)
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
    _verify(archive, expected, progress, max_bytes, max_members)

    if not extract:
        return archive
    return _extract_into(archive, target, progress, max_bytes, max_members)
