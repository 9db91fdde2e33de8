"""On-disk cache of decoded pixel stacks: repeated runs and larger-than-memory data skip decoding.

Each dataset configuration gets a JSON index plus one ``.npy`` stack per side in ``cache_dir``. The
index records every source file's path, size and modification time; when any of them changes,
or the settings differ, the cache is stale and is rebuilt. Stacks are opened memory-mapped, so
only the rows a batch touches are read from disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("p2pkit.data")

# Bump when the stored layout or decoding policy changes, so old caches are rebuilt.
CACHE_VERSION = 1


@dataclass
class Stacks:
    """Decoded data for one dataset.

    Attributes:
        sides: One array (N, C, H, W) per side, uint8 (0..255) or int32 (0..65535).
        names: Each row's reported path, relative to the dataset folder.
        max_value: 255 or 65535.
        messages: Warnings emitted while building, replayed when the cache is reused.
    """

    sides: list[np.ndarray]
    names: list[str]
    max_value: int
    messages: list[str]


def fingerprint(files: Sequence[Path]) -> list[list[Any]]:
    """``[path, size, mtime_ns]`` for each file, the identity the cache is checked against."""
    rows = []
    for path in files:
        stat = path.stat()
        rows.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
    return rows


class DiskCache:
    """One cache entry: where it lives, whether it is fresh, and how to write it.

    Args:
        cache_dir: Folder for cache files (created if missing).
        settings: Everything that shapes the decoded data (folder, layout, channels, sizes...).
        files: Every source file the data depends on.
    """

    def __init__(self, cache_dir: str | Path, settings: dict[str, Any], files: Sequence[Path]):
        self.folder = Path(cache_dir)
        self.settings = {**settings, "version": CACHE_VERSION}
        digest = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()
        self.stem = f"{settings.get('layout', 'data')}-{digest[:20]}"
        self.files = list(files)
        self._temps: list[Path] = []
        self._maps: list[np.memmap] = []

    @property
    def index_path(self) -> Path:
        """The JSON index; its presence marks a complete entry."""
        return self.folder / f"{self.stem}.json"

    def side_path(self, side: int) -> Path:
        """The ``.npy`` stack of one side."""
        return self.folder / f"{self.stem}-{side}.npy"

    def load(self) -> Stacks | None:
        """The cached stacks, memory-mapped, or None when missing or stale."""
        try:
            index = json.loads(self.index_path.read_text())
        except (OSError, ValueError):
            return None
        try:
            current = fingerprint(self.files)
        except OSError:
            current = None
        if index.get("settings") != self.settings or index.get("files") != current:
            logger.info("%s: cache is stale, decoding the images again", self.index_path)
            return None
        try:
            # Copy-on-write: pages are shared read-only with the file, yet an in-place write by a
            # caller changes only its own copy instead of crashing on a read-only mapping.
            sides = [
                np.load(self.side_path(side), mmap_mode="c")[: index["rows"]]
                for side in range(index["sides"])
            ]
        except (OSError, ValueError, KeyError):
            return None
        for message in index["messages"]:
            logger.warning(message)
        return Stacks(sides, index["names"], index["max_value"], index["messages"])

    def allocate(self, side: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A writable memory-mapped stack to decode into, kept under a temporary name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index_path.unlink(missing_ok=True)
        temp = self.folder / f"{self.stem}-{side}.{os.getpid()}.tmp.npy"
        self._temps.append(temp)
        stack = np.lib.format.open_memmap(temp, mode="w+", dtype=dtype, shape=shape)
        self._maps.append(stack)
        return stack

    def commit(self, stacks: Stacks) -> Stacks:
        """Move the built stacks into place, write the index, and reopen them memory-mapped."""
        for stack in self._maps:
            stack.flush()
        self._maps.clear()
        # Renaming a file that is still mapped is fine on POSIX; the old mapping stays valid.
        for side, temp in enumerate(self._temps):
            os.replace(temp, self.side_path(side))
        self._temps.clear()
        index = {
            "settings": self.settings,
            "files": fingerprint(self.files),
            "sides": len(stacks.sides),
            "rows": len(stacks.names),
            "names": stacks.names,
            "max_value": stacks.max_value,
            "messages": stacks.messages,
        }
        temp_index = self.index_path.with_suffix(f".{os.getpid()}.tmp")
        temp_index.write_text(json.dumps(index))
        os.replace(temp_index, self.index_path)
        reopened = [
            np.load(self.side_path(side), mmap_mode="c")[: index["rows"]]
            for side in range(len(stacks.sides))
        ]
        return Stacks(reopened, stacks.names, stacks.max_value, stacks.messages)

    def discard(self) -> None:
        """Remove temporary files after a failed build."""
        self._maps.clear()
        for temp in self._temps:
            temp.unlink(missing_ok=True)
        self._temps.clear()
