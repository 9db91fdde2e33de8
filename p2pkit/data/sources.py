"""Data sources: the components that provide a recipe's dataset folder.

A recipe's ``data.source`` names where its images come from. When that name is registered in
the ``p2pkit.sources`` entry-point group, p2pkit can fetch or make the folder itself:
``p2pkit run recipe`` does so for a missing ``data.root`` (see
[`ensure_data`][p2pkit.engine.runs.ensure_data]) and ``p2pkit data get NAME`` does so on
request. The built-in sources are:

* ``synth``: the synthetic facades set of [`p2pkit.data.synth`][p2pkit.data.synth], generated
  on the spot (no network) at the size asked for, with seed 0;
* ``facades``, ``cityscapes``, ``maps``, ``edges2shoes``, ``edges2handbags`` and
  ``night2day``: the pix2pix authors' archives of
  [`DATASETS`][p2pkit.data.download.DATASETS], downloaded and unpacked by
  [`download`][p2pkit.data.download.download].

A source's entry point names a factory that takes keyword options only (all with defaults)
and returns an object with the members of [`DataSource`][p2pkit.data.sources.DataSource].
[`p2pkit.testing.check_source`][p2pkit.testing.check_source] checks one.

This module does not import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Protocol, runtime_checkable

from p2pkit.errors import ConfigError, DataError
from p2pkit.ranges import Range

__all__ = [
    "DataSource",
    "DownloadSource",
    "SynthSource",
    "cityscapes",
    "edges2handbags",
    "edges2shoes",
    "facades",
    "find_source",
    "maps",
    "night2day",
    "short_name",
    "synth",
]


@runtime_checkable
class DataSource(Protocol):
    """What a ``p2pkit.sources`` factory returns.

    Attributes:
        description: one line for listings and messages: what the data is.
        downloads: True when providing the data needs the network. p2pkit then fetches it
            only when asked (``run recipe --download``, ``p2pkit data get``); a source that
            makes its data locally (False) is provided whenever a recipe needs it.
    """

    description: str
    downloads: bool

    def provide(self, folder: Path, *, size: int | None = None, progress: bool = True) -> Path:
        """Put the dataset into ``folder`` (created if missing) and return the folder that
        holds it, normally ``folder``.

        Args:
            folder: where the dataset goes: the recipe's ``data.root``, else ``NAME`` in the
                data home.
            size: the recipe's ``data.crop_size``, for a source that generates images at a
                size; None means the source's own default. A download ignores it.
            progress: show progress and messages on stderr.

        Raises:
            DataError: the data cannot be provided there (a network failure, a folder that
                holds something else); one line that says what to do.
        """
        ...


def short_name(name: str) -> str:
    """``synth`` for ``synth`` and for a qualified ``p2pkit:synth``: the folder name."""
    return name.partition(":")[2] or name


def find_source(name: str) -> DataSource | None:
    """The registered source ``name`` (built with its defaults), or None when no
    ``p2pkit.sources`` entry point declares it: a ``data.source`` that is a description.

    Raises:
        RegistryError: the name is provided by two distributions, or its plugin is broken.
    """
    from p2pkit.registry import get_registry

    registry = get_registry("sources")
    if not name or name not in registry:
        return None
    return registry.create(name)


#: Number of image pairs in a split: at least one, at most a million.
Count = Annotated[int, Range(0, 1_000_000)]


class SynthSource:
    """The synthetic facades set, generated locally (see [`p2pkit.data.synth`][p2pkit.data.synth]).

    ``provide`` writes ``n_train`` training and ``n_val`` validation pairs of ``size`` x
    ``2 * size`` pixels (photo | labels) with seed 0; ``size`` defaults to 128. A folder that
    already holds exactly this set is left as it is.
    """

    downloads = False

    def __init__(self, n_train: int = 400, n_val: int = 50) -> None:
        if n_train < 1:
            raise ValueError(f"n_train must be at least 1, not {n_train}")
        self.n_train = n_train
        self.n_val = n_val
        self.description = (
            f"synthetic facades, generated locally: {n_train} train + {n_val} val pairs at "
            "the recipe's crop size, seed 0"
        )

    def provide(self, folder: Path, *, size: int | None = None, progress: bool = True) -> Path:
        """Generate the set into ``folder`` at ``size`` (default 128) px with seed 0."""
        from p2pkit.data.synth import synthesize_facades

        return synthesize_facades(
            folder,
            n_train=self.n_train,
            n_val=self.n_val,
            size=128 if size is None else size,
            seed=0,
            progress=progress,
        )


def synth(n_train: Count = 400, n_val: Count = 50) -> SynthSource:
    """``synth``: the synthetic facades set (400 + 50 pairs by default), made on first use."""
    return SynthSource(n_train, n_val)


class DownloadSource:
    """One of the pix2pix authors' datasets, downloaded by
    [`download`][p2pkit.data.download.download].

    Args:
        name: a key of [`DATASETS`][p2pkit.data.download.DATASETS]; the archive unpacks to a
            folder of that name, so ``provide`` needs a ``folder`` named ``name``.
    """

    downloads = True

    def __init__(self, name: str) -> None:
        from p2pkit.data.download import DATASETS

        if name not in DATASETS:
            raise ValueError(f"no pix2pix dataset '{name}' (known: {', '.join(DATASETS)})")
        self.name = name
        entry = DATASETS[name]
        self.description = f"pix2pix dataset {name}, downloaded: {entry.layout}"

    def provide(self, folder: Path, *, size: int | None = None, progress: bool = True) -> Path:
        """Download and unpack the archive into ``folder.parent``, which makes ``folder``.

        Offline, the error names the address to save the archive from by hand.
        """
        from p2pkit.data.download import DATASETS, download

        folder = Path(folder)
        if folder.name != self.name:
            # download() unpacks NAME.tar.gz into DIR/NAME; any other folder name would miss it.
            raise ConfigError(
                f"{self.name} unpacks into a folder named {self.name}, not {folder}; "
                f"pass --data-root DIR/{self.name} or leave --data-root out"
            )
        archive = folder.parent / f"{self.name}.tar.gz"
        try:
            return download(self.name, folder.parent, progress=progress)
        except DataError as exc:
            if archive.is_file():
                raise  # it was fetched: the archive itself is wrong, as the error says
            reason = " ".join(str(exc).split())
            raise DataError(
                f"{reason}; to get it by hand, save {DATASETS[self.name].url} as {archive} and "
                "run the same command again"
            ) from None


def facades() -> DownloadSource:
    """``facades``: CMP facades, 400 training pairs (about 30 MB)."""
    return DownloadSource("facades")


def cityscapes() -> DownloadSource:
    """``cityscapes``: Cityscapes labels and photos, 2975 training pairs (about 100 MB)."""
    return DownloadSource("cityscapes")


def maps() -> DownloadSource:
    """``maps``: Google maps and aerial photos, 1096 training pairs (about 250 MB)."""
    return DownloadSource("maps")


def edges2shoes() -> DownloadSource:
    """``edges2shoes``: shoe edges and photos, 50k training pairs (about 2.2 GB)."""
    return DownloadSource("edges2shoes")


def edges2handbags() -> DownloadSource:
    """``edges2handbags``: handbag edges and photos, 137k training pairs (about 8.6 GB)."""
    return DownloadSource("edges2handbags")


def night2day() -> DownloadSource:
    """``night2day``: webcam night and day images, 17823 training pairs (about 1.9 GB)."""
    return DownloadSource("night2day")
