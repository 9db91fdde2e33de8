"""The one value every dataset layout takes: [`DatasetOptions`][p2pkit.data.options.DatasetOptions].

A layout is a registered callable ``layout(options) -> dataset`` (the built-in
[`aligned`][p2pkit.data.aligned], [`paired`][p2pkit.data.paired] and
[`single`][p2pkit.data.single], or a plugin's). It may also read one file on its own, the way
it stores a row, through a ``read_file(path, options)`` attribute
([`FileReader`][p2pkit.data.options.FileReader]); ``p2pkit translate`` reads its inputs that
way. [`reads_files`][p2pkit.data.options.reads_files] attaches one to a function and
[`file_reader`][p2pkit.data.options.file_reader] finds the one of a registered layout.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from p2pkit.config import DIRECTIONS
from p2pkit.errors import ConfigError

if TYPE_CHECKING:
    import torch

Factory = TypeVar("Factory", bound=Callable[..., Any])


@dataclass(frozen=True)
class DatasetOptions:
    """What to load and how: the settings every dataset layout shares.

    The engine builds one per split from the recipe's ``[data]`` and the task
    ([`p2pkit.engine.build.dataset_options`][p2pkit.engine.build.dataset_options]); a layout
    reads the fields it needs and ignores the others (``single`` has no ``direction`` or
    ``out_channels``). Values are checked when the object is made.

    Attributes:
        root: Dataset folder; ``root/<split>`` is read when that folder exists. A string is
            turned into a ``Path``.
        split: Sub-folder to read, e.g. ``"train"`` or ``"val"``; None reads ``root`` itself.
        direction: ``"AtoB"`` (A is the network input) or ``"BtoA"``; side ``a`` of a dataset
            is always the input, after this swap.
        in_channels: Channels of the input side ``a`` (1 or 3).
        out_channels: Channels of the target side ``b`` (1 or 3).
        resize_to: Size (an int, or ``(height, width)``) images are resized to as they load;
            None keeps their size (they must then share one).
        min_size: Smallest height or width an image may have, e.g. the crop size.
        skip_bad: Skip unusable files with one warning instead of raising.
        cache_dir: Folder for a memory-mapped cache of the decoded stacks, or None.
        max_images: Read only the first rows, in natural order; None reads all.

    Raises:
        ConfigError: A value no dataset could satisfy; the message names the option.
    """

    root: Path
    split: str | None = "train"
    direction: str = "AtoB"
    in_channels: int = 3
    out_channels: int = 3
    resize_to: int | tuple[int, int] | None = None
    min_size: int = 0
    skip_bad: bool = False
    cache_dir: Path | None = None
    max_images: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        if self.direction not in DIRECTIONS:
            allowed = " or ".join(f"'{d}'" for d in DIRECTIONS)
            raise ConfigError(f"data.direction must be {allowed}, not {self.direction!r}")
        for name in ("in_channels", "out_channels"):
            count = getattr(self, name)
            if count not in (1, 3):
                raise ConfigError(f"dataset option {name} must be 1 or 3, not {count!r}")
        if self.max_images is not None and self.max_images < 1:
            raise ConfigError(
                f"data.max_images must be a positive number or unset, not {self.max_images}"
            )
        if self.min_size < 0:
            raise ConfigError(f"dataset option min_size must be 0 or more, not {self.min_size}")

    @property
    def swap(self) -> bool:
        """Whether side B of the stored files is the network input (``direction == "BtoA"``)."""
        return self.direction == "BtoA"

    @classmethod
    def from_keywords(cls, **fields: Any) -> DatasetOptions:
        """Options from keywords, e.g. ``DatasetOptions.from_keywords(root="data", split="val")``.

        Raises:
            ConfigError: A keyword is not a field (the message names the closest ones), or
                ``root`` is missing, or a value is out of range.
        """
        known = [f.name for f in dataclasses.fields(cls)]
        for key in fields:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigError(
                    f"dataset option '{key}' does not exist{hint} (options: {', '.join(known)})"
                )
        if "root" not in fields:
            raise ConfigError("dataset options need root, the dataset folder")
        return cls(**fields)

    def replace(self, **changes: Any) -> DatasetOptions:
        """A copy with some fields changed, checked like a new one."""
        known = {f.name for f in dataclasses.fields(self)}
        for key in changes:
            if key not in known:
                raise ConfigError(f"dataset option '{key}' does not exist")
        return dataclasses.replace(self, **changes)


class FileReader(Protocol):
    """A layout's per-file read: one stored file as the layout's sides.

    ``read_file(path, options)`` reads the row that ``path`` stands for (an A|B file for
    ``aligned``; either file of an ``A/``, ``B/`` pair for ``paired``; one image for
    ``single``) with the direction and channels of ``options``, resized to
    ``options.resize_to`` when that is set. ``root``, ``split``, ``skip_bad``,
    ``cache_dir`` and ``max_images`` do not apply to one file.

    Returns ``(a, b)``: ``a`` the input side, a float32 tensor (in_channels, H, W) in [-1, 1];
    ``b`` the target side (out_channels, H, W) in [-1, 1], or None when the layout stores no
    target. Raises [`ImageProblem`][p2pkit.data.decode.ImageProblem], whose message says why
    without the path (the caller adds it), for a file that cannot be used.
    """

    def __call__(
        self, path: Path, options: DatasetOptions
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...


def reads_files(reader: FileReader) -> Callable[[Factory], Factory]:
    """Decorator giving a layout function its per-file read (its ``read_file`` attribute).

    A layout written as a class gives itself a ``read_file`` staticmethod instead.

    Args:
        reader: ``reader(path, options) -> (a, b or None)``, see
            [`FileReader`][p2pkit.data.options.FileReader].
    """

    def attach(factory: Factory) -> Factory:
        factory.read_file = reader  # type: ignore[attr-defined]
        return factory

    return attach


def file_reader(name: str) -> FileReader:
    """The per-file read of the registered dataset layout ``name``.

    Raises:
        RegistryError: No layout has that name.
        ConfigError: The layout has no ``read_file``, so it cannot read single files.
    """
    from p2pkit.registry import get_registry

    reader = getattr(get_registry("datasets").get(name), "read_file", None)
    if not callable(reader):
        raise ConfigError(
            f"dataset layout '{name}' cannot read single files (it has no read_file); "
            "read the inputs with another layout (--layout single, aligned or paired), "
            "or give the layout a read_file"
        )
    return reader


__all__ = ["DatasetOptions", "FileReader", "file_reader", "reads_files"]
