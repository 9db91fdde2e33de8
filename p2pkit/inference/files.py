"""Image files for translation: naming outputs, checking inputs, reading them.

``p2pkit translate`` works in three steps, so a problem stops it before it writes
anything: [`plan_outputs`][p2pkit.inference.plan_outputs] names every output and refuses names that
would replace an input; [`check_inputs`][p2pkit.inference.check_inputs] reads every input once (one
at a time, keeping nothing) and lists all unusable files together;
[`translate_files`][p2pkit.inference.translate_files] (in `p2pkit.inference.pipeline`) then
translates the usable ones, reading each with the layout reader made here.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from p2pkit.errors import DataError
from p2pkit.inference.model import TrainedModel

if TYPE_CHECKING:
    from p2pkit.data.preflight import Problem

TRIPLETS_DIR = "triplets"
"""Sub-folder of the output folder for ``--save-triplets`` strips."""


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Image files from a mix of files and folders (folders: natural order).

    A file named twice (``photos/`` and ``photos/a.png``) is kept once, where it first appears.
    """
    from p2pkit.data.images import IMAGE_EXTENSIONS, is_image_file, list_images

    files: list[Path] = []
    kinds = ", ".join(ext.lstrip(".") for ext in sorted(IMAGE_EXTENSIONS))
    for item in inputs:
        if item.is_dir():
            found = list_images(item)
            if not found:
                raise DataError(f"{item}: no images ({kinds}) in folder")
            files += found
        elif item.is_file():
            if not is_image_file(item):
                raise DataError(f"{item}: not an image file ({kinds})")
            files.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for path in files:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def output_names(files: list[Path]) -> list[str]:
    """The name each input's translation is saved under, relative to the output folder.

    The rule, which ``p2pkit translate --out`` states too:

    1. ``DIR/NAME.EXT`` is saved as ``NAME.png``.
    2. Inputs of one folder that would share a name keep their extension (repeatedly, until
       none do): ``a.jpg`` and ``a.png`` give ``a.jpg.png`` and ``a.png.png``.
    3. Inputs of different folders that would share a name go into sub-folders named after
       their folders, with as many trailing folder names as it takes to tell them apart:
       ``train/1.png`` and ``val/1.png``; ``x/val/1.png`` and ``y/val/1.png``.

    Names are compared ignoring case, as macOS and Windows file systems do.

    Args:
        files: the inputs, each named once (see [`expand_inputs`][p2pkit.inference.expand_inputs]).

    Returns:
        Relative POSIX paths ending in ``.png``, in the order of ``files``.

    Raises:
        DataError: two inputs still share a name (``A.png`` and ``a.png`` in one folder).
    """
    folders = [path.resolve().parent for path in files]
    keep_suffix = [False] * len(files)

    def name(i: int) -> str:
        return (files[i].name if keep_suffix[i] else files[i].stem) + ".png"

    changed = True
    while changed:  # each input changes at most once, so this ends
        changed = False
        groups: dict[tuple[Path, str], list[int]] = defaultdict(list)
        for i in range(len(files)):
            groups[(folders[i], name(i).casefold())].append(i)
        for members in (m for m in groups.values() if len(m) > 1):
            for i in members:
                changed = changed or not keep_suffix[i]
                keep_suffix[i] = True
    names = [name(i) for i in range(len(files))]
    shared: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(names):
        shared[text.casefold()].append(i)
    for members in (m for m in shared.values() if len(m) > 1):
        parts = [folders[i].parts[1:] for i in members]  # without the root ("/" or "C:\\")
        for depth in range(1, max(len(p) for p in parts) + 1):
            tails = [tuple(part.casefold() for part in p[-depth:]) for p in parts]
            if len(set(tails)) == len(tails):
                for i, p in zip(members, parts, strict=True):
                    names[i] = "/".join([*p[-depth:], names[i]])
                break
    first: dict[str, int] = {}
    for i, text in enumerate(names):
        other = first.setdefault(text.casefold(), i)
        if other != i:
            raise DataError(
                f"{files[other]} and {files[i]} would both be saved as {text}; rename one of them"
            )
    return names


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file, so two names for one file compare equal."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def plan_outputs(
    files: list[Path], out: Path, *, triplets: bool = False
) -> list[tuple[Path, Path | None]]:
    """Where each input's translation (and triplet strip) goes, checked before any work.

    Args:
        files: the inputs, from [`expand_inputs`][p2pkit.inference.expand_inputs].
        out: the output folder (it need not exist yet).
        triplets: also plan ``out/triplets/<name>`` strips.

    Returns:
        ``(output, triplet or None)`` per input, in order; names follow
        [`output_names`][p2pkit.inference.output_names].

    Raises:
        DataError: two inputs would share an output, or an output would replace an input
            file (``out`` is, holds or lies inside an input folder).
    """
    names = output_names(files)
    if triplets:
        strips = {f"{TRIPLETS_DIR}/{name}".casefold() for name in names}
        mixed = [name for name in names if name.casefold() in strips]
        if mixed:
            raise DataError(
                f"{out / mixed[0]}: an input folder named {TRIPLETS_DIR!r} would mix its "
                "outputs with the --save-triplets strips; rename that folder or drop the flag"
            )
    plan = [(out / n, out / TRIPLETS_DIR / n if triplets else None) for n in names]
    inputs = {_identity(path) for path in files} - {None}
    hits = [p for pair in plan for p in pair if p is not None and _identity(p) in inputs]
    if hits:
        more = f" and {len(hits) - 1} more" if len(hits) > 1 else ""
        raise DataError(
            f"--out {out}: the translations would overwrite the input {hits[0]}{more}; choose "
            "an output folder that is not an input folder and holds none of the inputs"
        )
    return plan


def input_reader(
    model: TrainedModel, layout: str = "single"
) -> Callable[[Path], tuple[torch.Tensor, torch.Tensor | None]]:
    """Read one input file the way ``layout`` stores a row, with the run's direction and channels.

    Args:
        model: gives the data settings and the task (channels, whether there is a target).
        layout: a registered dataset layout (a plugin's too); ``single`` reads each file as
            one input image.

    Returns:
        ``read(path) -> (a, b or None)``, float32 (C, H, W) tensors in [-1, 1]; it raises
        [`ImageProblem`][p2pkit.data.decode.ImageProblem] for a file that cannot be used.

    Raises:
        RegistryError: no layout has that name.
        ConfigError: the layout cannot read single files (it has no ``read_file``).
    """
    from p2pkit.data.options import file_reader
    from p2pkit.engine.build import dataset_options

    reader = file_reader(layout)
    base = dataset_options(model.data, model.task, None, root=Path("."))

    def read(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
        return reader(path, base.replace(root=path.parent))

    return read


def check_inputs(
    model: TrainedModel,
    files: list[Path],
    layout: str = "single",
    advance: Callable[[], None] | None = None,
) -> list[Problem]:
    """Read every input as [`translate_files`][p2pkit.inference.translate_files] will, and return
    why each bad one fails.

    Files are decoded one at a time and dropped, so memory stays that of one image however
    many there are.

    Args:
        model: gives the channel counts and the direction.
        files: the inputs.
        layout: the registered dataset layout that reads each file (``single``, ``aligned``,
            ``paired`` or a plugin's); None: the run's ``data.dataset``.
        advance: called after each file (a progress bar).

    Returns:
        One [`Problem`][p2pkit.data.preflight.Problem] per unusable file, in input order.

    Raises:
        RegistryError: no layout has that name.
        ConfigError: the layout cannot read single files.
    """
    from p2pkit.data.decode import ImageProblem
    from p2pkit.data.preflight import Problem

    read = input_reader(model, layout)
    problems = []
    for path in files:
        try:
            read(path)
        except ImageProblem as problem:
            problems.append(Problem(path, str(problem)))
        if advance is not None:
            advance()
    return problems


def read_input(
    path: Path, model: TrainedModel, layout: str, resize: int | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One input image as (1, C, H, W) in [-1, 1], and the target side when the layout
    stores one (``aligned``, ``paired``), read through the layout's per-file read.

    Args:
        path: the input file.
        model: gives the data settings and the task.
        layout: the registered dataset layout that reads the file.
        resize: resize both sides to ``resize`` x ``resize`` (bicubic, antialiased).

    Raises:
        DataError: the file cannot be used; the message names it.
        RegistryError: no layout has that name.
        ConfigError: the layout cannot read single files.
    """
    return _read_sides(input_reader(model, layout), path, resize)


def _read_sides(
    read: Callable[[Path], tuple[torch.Tensor, torch.Tensor | None]],
    path: Path,
    resize: int | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """[`read_input`][p2pkit.inference.read_input] with the layout's reader already made, so
    a stream of files looks the layout up and builds its options once."""
    from p2pkit.data.decode import ImageProblem

    try:
        a, b = read(path)
    except ImageProblem as exc:
        raise DataError(f"{path}: {exc}") from None

    def tensor(side: torch.Tensor) -> torch.Tensor:
        t = side.unsqueeze(0)
        if resize:
            t = torch.nn.functional.interpolate(
                t, size=(resize, resize), mode="bicubic", align_corners=False, antialias=True
            ).clamp(-1, 1)
        return t

    return tensor(a), (None if b is None else tensor(b))
