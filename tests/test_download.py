"""Tests for p2pkit.data.download against a local HTTP server (127.0.0.1, port 0).

No test touches the network: each one serves archives built in memory from a small
``http.server`` running in a thread, which understands ``Range`` and can be told to misbehave
(ignore ranges, close the connection early).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import random
import re
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from p2pkit.data import download as dl
from p2pkit.errors import DataError

# ---------------------------------------------------------------------------------------------
# A tiny HTTP server with Range support
# ---------------------------------------------------------------------------------------------


@dataclass
class ServerState:
    """What the server serves and how; what it was asked."""

    files: dict[str, bytes] = field(default_factory=dict)
    ranges: list[str | None] = field(default_factory=list)
    ignore_range: bool = False
    truncate_after: int | None = None


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: the connection closes after each answer, so a short body reaches the client as
    # an early end of stream, exactly like a dropped connection.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        range_header = self.headers.get("Range")
        state.ranges.append(range_header)
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and not state.ignore_range:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            payload = body[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            payload = body
            self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Content-Type", "application/gzip")
        self.end_headers()
        if state.truncate_after is not None:
            payload = payload[: state.truncate_after]
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@dataclass
class Server:
    url: str
    state: ServerState


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        host, port = httpd.server_address[:2]
        yield Server(url=f"http://{host}:{port}", state=httpd.state)  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# Archive builders
# ---------------------------------------------------------------------------------------------


def _tar(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    """Build a .tar.gz in memory from ``(name, data)`` files and ready-made TarInfo members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _link(name: str, target: str, *, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def _folder(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info


# Random bytes do not compress, so the archive is big enough (~200 KB) to cut in the middle.
_PAYLOAD = random.Random(0).randbytes(200_000)
GOOD = _tar([("tiny/train/1.bin", _PAYLOAD), ("tiny/val/1.txt", b"hello\n")])


def _serve(server: Server, name: str, body: bytes) -> str:
    server.state.files[f"/{name}"] = body
    return f"{server.url}/{name}"


def _check_tiny(root: Path) -> None:
    assert (root / "train" / "1.bin").read_bytes() == _PAYLOAD
    assert (root / "val" / "1.txt").read_bytes() == b"hello\n"


def _leftovers(folder: Path) -> list[str]:
    """Temporary or partial things a run must not leave behind."""
    return sorted(p.name for p in folder.iterdir() if ".unpacking-" in p.name)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_table_lists_official_datasets() -> None:
    names = {"facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day"}
    assert names <= set(dl.DATASETS)
    for name, source in dl.DATASETS.items():
        assert source.name == name
        assert source.url == f"http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"
        assert source.recipes and source.license and source.approx_size > 0
        # We publish no checksum we have not computed ourselves.
        assert source.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", source.sha256)


def test_full_download_and_extraction(server: Server, tmp_path: Path) -> None:
    url = _serve(server, "tiny.tar.gz", GOOD)
    out = dl.download(url, tmp_path, progress=False)
    assert out == tmp_path / "tiny"
    _check_tiny(out)
    assert server.state.ranges == [None]
    assert not (tmp_path / "tiny.tar.gz.part").exists()
    assert (tmp_path / "tiny.tar.gz").read_bytes() == GOOD
    # No published checksum: the digest is recorded for later runs.
    sidecar = (tmp_path / "tiny.tar.gz.sha256").read_text().split()
    assert sidecar == [hashlib.sha256(GOOD).hexdigest(), "tiny.tar.gz"]
    assert _leftovers(tmp_path) == []
    # A second run finds the folder and does not touch the network.
    assert dl.download(url, tmp_path, progress=False) == out
    assert len(server.state.ranges) == 1


def test_named_dataset_with_mirror_and_known_checksum(server: Server, tmp_path: Path) -> None:
    url = _serve(server, "mirror/facades.tar.gz", _tar([("facades/train/1.jpg", b"jpeg")]))
    digest = hashlib.sha256(server.state.files["/mirror/facades.tar.gz"]).hexdigest()
    out = dl.download("facades", tmp_path, url=url, sha256=digest, progress=False)
    assert out == tmp_path / "facades"
    assert (out / "train" / "1.jpg").read_bytes() == b"jpeg"
    archive = dl.download("facades", tmp_path, url=url, progress=False, extract=False)
    assert archive == tmp_path / "facades.tar.gz"


def test_resume_partial_download(server: Server, tmp_path: Path) -> None:
    url = _serve(server, "tiny.tar.gz", GOOD)
    (tmp_path / "tiny.tar.gz.part").write_bytes(GOOD[:100_000])
    _check_tiny(dl.download(url, tmp_path, progress=False))
    assert server.state.ranges == ["bytes=100000-"]
    assert (tmp_path / "tiny.tar.gz").read_bytes() == GOOD


def test_server_ignoring_range_restarts(server: Server, tmp_path: Path) -> None:
    url = _serve(server, "tiny.tar.gz", GOOD)
    server.state.ignore_range = True
    # Garbage that would corrupt the archive if the 200 answer were appended to it.
    (tmp_path / "tiny.tar.gz.part").write_bytes(b"x" * 5000)
    _check_tiny(dl.download(url, tmp_path, progress=False))
    assert server.state.ranges == ["bytes=5000-"]
    assert (tmp_path / "tiny.tar.gz").read_bytes() == GOOD


def test_416_means_the_part_file_is_complete(server: Server, tmp_path: Path) -> None:
    url = _serve(server, "tiny.tar.gz", GOOD)
    (tmp_path / "tiny.tar.gz.part").write_bytes(GOOD)
    _check_tiny(dl.download(url, tmp_path, progress=False))
    assert server.state.ranges == [f"bytes={len(GOOD)}-"]


def test_truncated_download_is_kept_and_resumed(server: Server, tmp_path: Path) -> None:
    url = _serve(server, "tiny.tar.gz", GOOD)
    server.state.truncate_after = 60_000
    with pytest.raises(DataError, match=r"tiny\.tar\.gz\.part is kept.*resume"):
        dl.download(url, tmp_path, progress=False)
    part = tmp_path / "tiny.tar.gz.part"
    assert part.read_bytes() == GOOD[:60_000]
    assert not (tmp_path / "tiny.tar.gz").exists()
    assert not (tmp_path / "tiny").exists()
    # The server recovers: the next run asks only for the rest.
    server.state.truncate_after = None
    _check_tiny(dl.download(url, tmp_path, progress=False))
    assert server.state.ranges == [None, "bytes=60000-"]
    assert not part.exists()


def test_checksum_mismatch_moves_the_file_aside(server: Server, tmp_path: Path) -> None:
    url = _serve(server, "tiny.tar.gz", GOOD)
    with pytest.raises(DataError, match=r"tiny\.tar\.gz has sha256 .*moved to .*\.corrupt"):
        dl.download(url, tmp_path, sha256="0" * 64, progress=False)
    assert not (tmp_path / "tiny.tar.gz").exists()
    assert (tmp_path / "tiny.tar.gz.corrupt").read_bytes() == GOOD
    assert not (tmp_path / "tiny").exists()


def test_recorded_checksum_is_verified_on_later_runs(server: Server, tmp_path: Path) -> None:
    url = _serve(server, "tiny.tar.gz", GOOD)
    archive = dl.download(url, tmp_path, progress=False, extract=False)
    assert (tmp_path / "tiny.tar.gz.sha256").exists()
    archive.write_bytes(GOOD[:-1] + b"!")  # bit rot, or a different file from a mirror
    with pytest.raises(DataError, match=r"recorded in .*tiny\.tar\.gz\.sha256"):
        dl.download(url, tmp_path, progress=False, extract=False)
    assert (tmp_path / "tiny.tar.gz.corrupt").exists()
    # A fresh download of the right file verifies against the same record.
    assert dl.download(url, tmp_path, progress=False, extract=False).read_bytes() == GOOD


def test_bad_input_gives_plain_errors(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'facade'.*facades"):
        dl.download("facade", tmp_path, progress=False)
    with pytest.raises(DataError, match="HTTP 404"):
        dl.download(f"{server.url}/missing.tar.gz", tmp_path, progress=False)
    url = _serve(server, "page.tar.gz", b"<html>not found</html>")
    with pytest.raises(DataError, match=r"page\.tar\.gz is not a tar archive"):
        dl.download(url, tmp_path, progress=False)
    with pytest.raises(DataError, match="only http"):
        dl.download("ftp://example.invalid/x.tar.gz", tmp_path, progress=False)


EVIL = {
    "traversal": ([("ok/a.txt", b"a"), ("../evil", b"boom")], "'../evil'"),
    "absolute": ([("/tmp/p2pkit-evil-abs", b"boom")], "absolute path"),
    "symlink_to_etc": ([_folder("bad"), _link("bad/etc", "/etc")], "'/etc'"),
    "relative_symlink_out": ([_link("bad/up", "../../..")], "outside the target"),
    "hardlink_out": ([_link("bad/passwd", "../etc/passwd", hard=True)], "outside the target"),
}


@pytest.mark.parametrize("case", sorted(EVIL))
def test_unsafe_archives_are_refused(server: Server, tmp_path: Path, case: str) -> None:
    entries, message = EVIL[case]
    dest = tmp_path / "downloads"
    url = _serve(server, "bad.tar.gz", _tar(entries))
    with pytest.raises(DataError, match=re.escape(message)):
        dl.download(url, dest, progress=False)
    # Nothing unpacked, nothing half-done, nothing outside, and no digest trusted.
    assert not (dest / "bad").exists()
    assert _leftovers(dest) == []
    assert not (dest / "evil").exists() and not (tmp_path / "evil").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["bad.tar.gz"]


def test_device_file_is_refused(tmp_path: Path) -> None:
    dev = tarfile.TarInfo("bad/null")
    dev.type = tarfile.CHRTYPE
    archive = tmp_path / "dev.tar.gz"
    archive.write_bytes(_tar([dev]))
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match="'bad/null' is a device file"):
        dl.safe_extract(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("use_filter", [True, False], ids=["data_filter", "manual"])
def test_safe_extract_both_ways(tmp_path: Path, use_filter: bool) -> None:
    if use_filter and not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile data filter")
    # Allowed: links that stay inside.
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(
        _tar(
            [
                ("d/file.txt", b"data"),
                _link("d/alias.txt", "file.txt"),
                _link("d/copy.txt", "d/file.txt", hard=True),
            ]
        )
    )
    out = tmp_path / "ok"
    out.mkdir()
    dl.safe_extract(archive, out, use_filter=use_filter)
    assert (out / "d" / "alias.txt").read_bytes() == b"data"
    assert (out / "d" / "copy.txt").read_bytes() == b"data"

    # Refused: each link looks harmless alone, but together 'c' resolves above the target.
    chain = tmp_path / "chain.tar"
    chain.write_bytes(_tar([_folder("a"), _link("c", "a/b/.."), _link("a/b", "..")]))
    out = tmp_path / "chain"
    out.mkdir()
    with pytest.raises(DataError, match="'c'"):
        dl.safe_extract(chain, out, use_filter=use_filter)

    for case, (entries, message) in EVIL.items():
        archive = tmp_path / f"{case}.tar.gz"
        archive.write_bytes(_tar(entries))
        out = tmp_path / case
        out.mkdir()
        with pytest.raises(DataError, match=re.escape(message)):
            dl.safe_extract(archive, out, use_filter=use_filter)
        assert list(out.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# A first download that is no archive
# ---------------------------------------------------------------------------------------------


NOT_ARCHIVES = {
    "html": (b"<!DOCTYPE html><html><body>Quota exceeded</body></html>\n", "like an HTML page"),
    "cut_off": (GOOD[: len(GOOD) // 2], "it breaks off"),
}


@pytest.mark.parametrize("case", sorted(NOT_ARCHIVES))
def test_a_first_download_that_is_no_archive_is_not_recorded_and_a_rerun_retries(
    server: Server, tmp_path: Path, case: str
) -> None:
    body, why = NOT_ARCHIVES[case]
    url = _serve(server, "tiny.tar.gz", body)
    message = rf"tiny\.tar\.gz is not a tar archive \(.*{why}.*run the same command again to retry"
    with pytest.raises(DataError, match=message):
        dl.download(url, tmp_path, progress=False)
    # Nothing trusted, the page kept aside for the curious, nothing unpacked.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.tar.gz.bad"]
    assert (tmp_path / "tiny.tar.gz.bad").read_bytes() == body
    # The server recovers: the same command, run again, downloads and verifies the real file.
    server.state.files["/tiny.tar.gz"] = GOOD
    _check_tiny(dl.download(url, tmp_path, progress=False))
    assert server.state.ranges == [None, None]
    digest = (tmp_path / "tiny.tar.gz.sha256").read_text().split()[0]
    assert digest == hashlib.sha256(GOOD).hexdigest()


# ---------------------------------------------------------------------------------------------
# Limits on what an archive may unpack to
# ---------------------------------------------------------------------------------------------


def _huge_header_tar(declared: int) -> bytes:
    """A tiny .tar.gz whose only header claims ``declared`` bytes of data (it holds 512)."""
    info = tarfile.TarInfo("liar/huge.bin")
    info.size = declared
    return gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT) + b"x" * 512 + bytes(1024))


def test_unpacked_size_is_capped_before_anything_is_written(tmp_path: Path) -> None:
    # 8 MB of zeros pack to a few KB: a small zip bomb.
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(_tar([("bomb/zeros.bin", bytes(8_000_000))]))
    assert archive.stat().st_size < 50_000
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match=r"bomb\.tar\.gz unpacks to more than 1\.0 MB.*max_bytes"):
        dl.safe_extract(archive, out, max_bytes=1_000_000)
    assert list(out.iterdir()) == []
    dl.safe_extract(archive, out, max_bytes=8_000_000)
    assert (out / "bomb" / "zeros.bin").stat().st_size == 8_000_000


@pytest.mark.parametrize("use_filter", [True, False], ids=["data_filter", "manual"])
def test_a_header_declaring_a_huge_size_is_refused_at_once(
    tmp_path: Path, use_filter: bool
) -> None:
    if use_filter and not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile data filter")
    archive = tmp_path / "liar.tar.gz"
    archive.write_bytes(_huge_header_tar(1 << 40))
    out = tmp_path / "out"
    out.mkdir()
    # The default limit, judged from the header alone: nothing is read past it.
    with pytest.raises(DataError, match=r"liar\.tar\.gz unpacks to more than 68\.7 GB"):
        dl.safe_extract(archive, out, use_filter=use_filter)
    assert list(out.iterdir()) == []


def test_hard_links_count_as_copies_toward_the_size_cap(tmp_path: Path) -> None:
    links = [_link(f"d/copy{i}.bin", "d/file.bin", hard=True) for i in range(5)]
    archive = tmp_path / "links.tar.gz"
    archive.write_bytes(_tar([("d/file.bin", b"x" * 1000), *links]))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match=r"links\.tar\.gz unpacks to more than"):
        dl.safe_extract(archive, out, max_bytes=5_999)
    dl.safe_extract(archive, out, max_bytes=6_000)
    assert (out / "d" / "copy4.bin").read_bytes() == b"x" * 1000


def test_member_count_is_capped(tmp_path: Path) -> None:
    archive = tmp_path / "many.tar.gz"
    archive.write_bytes(_tar([(f"many/{i}.txt", b"") for i in range(30)]))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match=r"many\.tar\.gz holds more than 20 members.*max_members"):
        dl.safe_extract(archive, out, max_members=20)
    assert list(out.iterdir()) == []
    dl.safe_extract(archive, out, max_members=30)
    assert len(list((out / "many").iterdir())) == 30


def test_limits_can_be_raised_from_the_environment(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command line has no option for the limits: the variables are how its users raise them.
    url = _serve(server, "tiny.tar.gz", GOOD)
    monkeypatch.setenv("P2PKIT_MAX_UNPACK_BYTES", "100K")
    with pytest.raises(
        DataError, match=r"tiny\.tar\.gz unpacks to more.*P2PKIT_MAX_UNPACK_BYTES=1G"
    ):
        dl.download(url, tmp_path, progress=False)
    assert not (tmp_path / "tiny").exists()
    assert not (tmp_path / "tiny.tar.gz.sha256").exists()
    monkeypatch.setenv("P2PKIT_MAX_UNPACK_BYTES", "1MiB")
    monkeypatch.setenv("P2PKIT_MAX_UNPACK_MEMBERS", "1")
    with pytest.raises(DataError, match=r"more than 1 members.*P2PKIT_MAX_UNPACK_MEMBERS=2"):
        dl.download(url, tmp_path, progress=False)
    monkeypatch.setenv("P2PKIT_MAX_UNPACK_MEMBERS", "2")
    _check_tiny(dl.download(url, tmp_path, progress=False))
    assert server.state.ranges == [None]  # the archive was kept, never fetched again
    monkeypatch.setenv("P2PKIT_MAX_UNPACK_BYTES", "lots")
    with pytest.raises(DataError, match=r"P2PKIT_MAX_UNPACK_BYTES='lots' is not a positive size"):
        dl.download(url, tmp_path, progress=False)


# ---------------------------------------------------------------------------------------------
# A full disk
# ---------------------------------------------------------------------------------------------


class _FullDisk:
    """A file that takes ``room`` more bytes, then fails as a full disk does."""

    def __init__(self, fh: io.BufferedWriter, room: int) -> None:
        self.fh = fh
        self.room = room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.fh.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.fh.write(data)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self.fh, name)


def test_full_disk_while_downloading_says_so_and_a_rerun_resumes(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _serve(server, "tiny.tar.gz", GOOD)

    def open_on_a_full_disk(path: Path, mode: str = "r", *args: object, **kwargs: object):
        fh = open(path, mode, *args, **kwargs)  # noqa: SIM115 - closed by _FullDisk
        return _FullDisk(fh, room=50_000) if str(path).endswith(".part") else fh

    monkeypatch.setattr(dl, "open", open_on_a_full_disk, raising=False)
    with pytest.raises(DataError) as info:
        dl.download(url, tmp_path, progress=False)
    message = str(info.value)
    assert f"the disk holding {tmp_path} is full" in message
    assert f"needs {dl._fmt_bytes(len(GOOD) - 50_000)} more" in message
    assert "free some space and run the same command again to resume" in message
    assert "delete" not in message
    assert (tmp_path / "tiny.tar.gz.part").read_bytes() == GOOD[:50_000]
    monkeypatch.undo()
    _check_tiny(dl.download(url, tmp_path, progress=False))
    assert server.state.ranges == [None, "bytes=50000-"]


def _no_room(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_while_unpacking_says_so_and_keeps_the_archive(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _serve(server, "tiny.tar.gz", GOOD)
    # Where each extraction path writes file data.
    monkeypatch.setattr(tarfile, "copyfileobj", _no_room)
    monkeypatch.setattr(dl.shutil, "copyfileobj", _no_room)
    with pytest.raises(DataError) as info:
        dl.download(url, tmp_path, progress=False)
    message = str(info.value)
    assert f"the disk holding {tmp_path} is full while unpacking tiny.tar.gz" in message
    assert "needs about 200.0 KB; free some space and run again" in message
    assert "delete" not in message
    assert not (tmp_path / "tiny").exists() and _leftovers(tmp_path) == []
    assert (tmp_path / "tiny.tar.gz").read_bytes() == GOOD
    monkeypatch.undo()
    _check_tiny(dl.download(url, tmp_path, progress=False))
    assert server.state.ranges == [None]


@pytest.mark.parametrize("use_filter", [True, False], ids=["data_filter", "manual"])
def test_full_disk_in_either_extraction_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_filter: bool
) -> None:
    if use_filter and not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile data filter")
    archive = tmp_path / "tiny.tar.gz"
    archive.write_bytes(GOOD)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(tarfile, "copyfileobj", _no_room)
    monkeypatch.setattr(dl.shutil, "copyfileobj", _no_room)
    with pytest.raises(DataError, match=rf"disk holding {re.escape(str(out))} is full"):
        dl.safe_extract(archive, out, use_filter=use_filter)


def test_too_little_free_space_to_unpack_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "tiny.tar.gz"
    archive.write_bytes(GOOD)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    with pytest.raises(DataError, match=r"not enough disk space in .*out to unpack tiny\.tar\.gz"):
        dl.safe_extract(archive, out)
    assert list(out.iterdir()) == []
