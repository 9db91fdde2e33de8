"""Checkpoints of training runs: save atomically, load, resume bit for bit.

A checkpoint is a directory ``<run>/checkpoints/step-00001234/`` holding

* ``tensors.safetensors``: every tensor (network weights and buffers, optimiser
  state, torch RNG states as uint8 tensors), under keys ``module/<name>/<key>``,
  ``optim/<name>/state/<idx>/<key>``, ``sched/<name>/...`` and ``rng/...``;
* ``meta.json``: everything else, readable by a person: format version, p2pkit and
  torch versions, creation time, step, each network's ``{"name", "options"}``, the
  resolved recipe, the non-tensor parts of optimiser and scheduler state, Python
  and numpy RNG states, the caller's own entries (counters and so on), and the
  sha256 of ``tensors.safetensors``.

Saving writes into ``step-00001234.tmp-<random>`` beside the final directory,
fsyncs, renames the directory into place and then rewrites the ``latest`` pointer
file with ``os.replace``. An exception at any point removes the temporary
directory, so the previous checkpoint and ``latest`` stay as they were; a hard
crash can leave a ``*.tmp-*`` directory, which nothing mistakes for a checkpoint.

Nested state (optimiser and scheduler ``state_dict()``) is stored by replacing
each tensor with ``{"__tensor__": key}``, tuples with ``{"__tuple__": [...]}`` and
dicts whose keys are not all strings (the optimiser's integer parameter ids) with
``{"__items__": [[key, value], ...]}``, so ``load_state_dict`` receives exactly the
types it produced: Adam's ``step`` tensor keeps its dtype and ``betas`` stays a
tuple.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import secrets
import shutil
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

import p2pkit
from p2pkit.errors import CheckpointError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "capture_rng_state",
    "checkpoint_dir_name",
    "clean_leftovers",
    "find_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

FORMAT = "p2pkit-checkpoint"
FORMAT_VERSION = 1

TENSORS_FILE = "tensors.safetensors"
META_FILE = "meta.json"
LATEST_FILE = "latest"
CHECKPOINTS_DIR = "checkpoints"

_STEP_DIR = re.compile(r"^step-(\d{8,})$")
# Named checkpoints ("best", "final") live beside the step directories; the name
# must not collide with them, with the pointer file or with temporary directories.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_MARKERS = ("__tensor__", "__tuple__", "__items__")
_RESERVED_META = frozenset(
    {
        "checkpoint_format",
        "checkpoint_format_version",
        "p2pkit_version",
        "torch_version",
        "created",
        "step",
        "modules",
        "optimizers",
        "schedulers",
        "rng",
        "tensors_sha256",
    }
)


def checkpoint_dir_name(step: int) -> str:
    """The directory name of the checkpoint at ``step``: ``step-00001234``."""
    return f"step-{step:08d}"


# --------------------------------------------------------------------------- encoding


def _storable(t: torch.Tensor, seen: set[tuple[str, int]]) -> torch.Tensor:
    """A CPU, contiguous tensor safetensors accepts, copying only when needed.

    safetensors refuses tensors that share memory (tied weights) or are not
    contiguous, so the second tensor seen on a storage, and any strided view, is
    copied; a tensor on an accelerator is copied to the CPU anyway.
    """
    t = t.detach()
    if t.device.type != "cpu":
        return t.to("cpu").contiguous()
    ptr = t.untyped_storage().data_ptr() if t.numel() else 0
    shared = ptr != 0 and ("cpu", ptr) in seen
    if ptr:
        seen.add(("cpu", ptr))
    if shared or not t.is_contiguous():
        return t.contiguous().clone()
    return t


class _Encoder:
    """Splits nested state into JSON and a flat dict of tensors (see module docstring)."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self._seen: set[tuple[str, int]] = set()

    def add_tensor(self, key: str, t: torch.Tensor) -> None:
        if key in self.tensors:
            # Two paths flattening to the same key (say int 0 and str "0") would
            # silently overwrite one another.
            raise ValueError(f"two checkpoint entries both flatten to the tensor key {key!r}")
        self.tensors[key] = _storable(t, self._seen)

    def encode(self, obj: Any, path: str) -> Any:
        if isinstance(obj, torch.Tensor):
            self.add_tensor(path, obj)
            return {"__tensor__": path}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, f"{path}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, f"{path}/{i}") for i, v in enumerate(obj)]
        if isinstance(obj, Mapping):
            plain = all(isinstance(k, str) for k in obj) and not any(k in _MARKERS for k in obj)
            if plain:
                return {k: self.encode(v, f"{path}/{k}") for k, v in obj.items()}
            return {
                "__items__": [
                    [self.encode(k, f"{path}/<key>"), self.encode(v, f"{path}/{k}")]
                    for k, v in obj.items()
                ]
            }
        raise ValueError(
            f"{path} holds a {type(obj).__name__}, which a checkpoint cannot store; "
            "state_dict() values must be tensors, numbers, strings, None, or lists, "
            "tuples and dicts of those"
        )


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor], where: Path) -> Any:
    """Inverse of :meth:`_Encoder.encode`; ``where`` names the checkpoint in errors."""
    if isinstance(obj, list):
        return [_decode(v, tensors, where) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        ((marker, value),) = obj.items()
        if marker == "__tensor__":
            if value not in tensors:
                raise CheckpointError(
                    f"checkpoint {where}: meta.json refers to tensor {value!r}, which "
                    f"{TENSORS_FILE} lacks; the checkpoint is damaged, load an earlier one"
                )
            return tensors[value]
        if marker == "__tuple__":
            return tuple(_decode(v, tensors, where) for v in value)
        if marker == "__items__":
            return {
                _hashable(_decode(k, tensors, where)): _decode(v, tensors, where) for k, v in value
            }
    return {k: _decode(v, tensors, where) for k, v in obj.items()}


def _hashable(key: Any) -> Any:
    # JSON has no tuples, but a decoded tuple key is already a tuple; lists can only
    # come from a hand-edited file and would not hash.
    return tuple(key) if isinstance(key, list) else key


def _json_default(obj: Any) -> Any:
    """Lets recipes and caller meta hold paths and numpy scalars."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"a {type(obj).__name__} cannot be written to meta.json")


# A JSON array of plain numbers as json.dumps(indent=...) lays it out. Requiring
# the newlines keeps this from touching string contents: JSON strings cannot hold a
# raw newline.
_NUMBER = r"-?[0-9][0-9.eE+-]*"
_NUMBER_LIST = re.compile(rf"\[\n\s*({_NUMBER}(?:,\n\s*{_NUMBER})*)\n\s*\]")


def _dumps(document: Mapping[str, Any]) -> str:
    """Indented JSON with lists of numbers on one line.

    RNG states are lists of hundreds of integers; one per line would bury the
    rest of meta.json.
    """

    def one_line(m: re.Match[str]) -> str:
        return "[" + ", ".join(n.strip() for n in m.group(1).split(",")) + "]"

    return _NUMBER_LIST.sub(one_line, json.dumps(document, indent=2)) + "\n"


def _plain(obj: Any, what: str) -> Any:
    """``obj`` as it will read back from JSON (tuples become lists, paths strings)."""
    try:
        return json.loads(json.dumps(obj, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: {exc}") from exc


# --------------------------------------------------------------------------- RNG


def capture_rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state of every global random number generator training draws from.

    Returns:
        ``(tensors, state)``: ``tensors`` maps ``rng/torch`` and ``rng/cuda/<i>`` to
        uint8 CPU tensors (torch CPU and per-CUDA-device generator states);
        ``state`` is JSON-ready and holds Python ``random`` and numpy's legacy global
        generator (``np.random.*``). CUDA states are captured only when CUDA has been
        initialised in this process: before that no CUDA random number was drawn, and
        querying would initialise a CUDA context on every device.
    """
    tensors = {"rng/torch": torch.get_rng_state()}
    cuda_devices = 0
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, t in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = t.cpu()
            cuda_devices += 1
    version, internal, gauss_next = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)
    state = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "bit_generator": np_name,
            "keys": [int(k) for k in np_keys],
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "cuda_devices": cuda_devices,
    }
    return tensors, state


def restore_rng_state(tensors: Mapping[str, torch.Tensor], state: Mapping[str, Any]) -> None:
    """Set every global generator from :func:`capture_rng_state`'s output.

    CUDA states are restored for the devices present in both the checkpoint and
    this process; resuming on fewer (or no) GPUs is allowed but is then not
    bit-exact.
    """
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    nps = state["numpy"]
    np.random.set_state(
        (
            nps["bit_generator"],
            np.asarray(nps["keys"], dtype=np.uint32),
            nps["pos"],
            nps["has_gauss"],
            nps["cached_gaussian"],
        )
    )
    torch.set_rng_state(tensors["rng/torch"])
    saved = int(state.get("cuda_devices", 0))
    if saved and torch.cuda.is_available():
        for i in range(min(saved, torch.cuda.device_count())):
            torch.cuda.set_rng_state(tensors[f"rng/cuda/{i}"], i)


# --------------------------------------------------------------------------- file system


def _fsync_file(path: Path) -> None:
    # "r+b": Windows refuses fsync on a read-only handle.
    with open(path, "r+b") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (POSIX only; Windows cannot open folders)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _remove_dir(path: Path) -> None:
    """Delete a checkpoint directory without ever leaving a half-deleted one in view.

    It is first renamed to a name no loader or pruner matches, so an interruption
    during the slow ``rmtree`` leaves only such a name behind.
    """
    doomed = path.with_name(f"{path.name}.del-{secrets.token_hex(4)}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _install(tmp: Path, final: Path) -> None:
    """Rename the finished ``tmp`` directory to ``final``, replacing any old one.

    A directory cannot be renamed over a non-empty one, so an existing ``final``
    (a step saved again, or ``best``) is first renamed aside and put back if the
    second rename fails; it is deleted only once the new one is in place.
    """
    if not final.exists():
        os.rename(tmp, final)
        return
    aside = final.with_name(f"{final.name}.old-{secrets.token_hex(4)}")
    os.rename(final, aside)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(aside, final)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _write_pointer(ckpt_root: Path, target: str) -> None:
    """Point ``latest`` at ``target`` (a directory name) atomically."""
    tmp = ckpt_root / f".{LATEST_FILE}.tmp-{secrets.token_hex(4)}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(target + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, ckpt_root / LATEST_FILE)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(ckpt_root)


def _checkpoints_root(path: Path) -> Path:
    return path if path.name == CHECKPOINTS_DIR else path / CHECKPOINTS_DIR


def list_checkpoints(path: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, directory)`` of every complete step checkpoint, oldest step first.

    Args:
        path: a run directory or its ``checkpoints`` directory.
    """
    root = _checkpoints_root(Path(path))
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and (child / META_FILE).is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def _prune(root: Path, keep_last: int, just_written: Path) -> None:
    """Delete all but the ``keep_last`` highest-step checkpoints.

    The checkpoint just written always survives, even when a run restarted from an
    earlier step has left higher-numbered ones behind. Named checkpoints never
    match the step pattern and are never touched.
    """
    steps = list_checkpoints(root)
    keep = {p for _, p in steps[-keep_last:]} | {just_written}
    # Never more than keep_last: when the newest save is not among the highest
    # steps it takes the place of the oldest of them.
    extra = len(keep) - keep_last
    for _, p in steps:
        if extra <= 0:
            break
        if p in keep and p != just_written:
            keep.discard(p)
            extra -= 1
    for _, p in steps:
        if p not in keep:
            _remove_dir(p)


# --------------------------------------------------------------------------- save


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    step: int,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    networks: Mapping[str, Mapping[str, Any]] | None = None,
    recipe: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    keep_last: int | None = None,
    name: str | None = None,
    rng: bool = True,
    tensors: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint atomically and return its directory.

    Args:
        path: the run directory (the checkpoint goes to ``<path>/checkpoints/``) or
            its ``checkpoints`` directory.
        step: the number of optimisation steps done; names the directory
            ``step-%08d``.
        modules: networks to save, e.g. ``{"generator": G, "discriminator": D}``;
            names must not contain ``/``. All parameters and buffers are saved.
        optimizers: optimisers by name; their full ``state_dict()`` is saved.
        schedulers: learning-rate schedulers, or any object with
            ``state_dict()``/``load_state_dict()`` (an AMP ``GradScaler`` too).
        networks: how to rebuild each network, ``{"generator": {"name": "unet_256",
            "options": {"ngf": 64, ...}}}``; lets :meth:`Checkpoint.load_module`
            explain mismatches and the CLI rebuild a network from the checkpoint.
        recipe: the resolved recipe the run was trained with.
        meta: further JSON-ready entries stored at the top level of ``meta.json``
            (counters such as ``{"counters": {"epoch": 3}}``, the caller's own
            ``"format"``); may hold ``networks`` and ``recipe`` instead of the
            arguments; must not use the keys this module writes (``step``,
            ``modules``, ``optimizers``, ``schedulers``, ``rng``, ``created``,
            ``checkpoint_format*``, ``*_version``, ``tensors_sha256``).
        keep_last: keep only this many step checkpoints (the highest steps, always
            including this one); ``None`` keeps all. Named checkpoints are never
            pruned.
        name: save as ``checkpoints/<name>/`` (e.g. ``"best"``) instead of a step
            directory, replacing an earlier one of that name; ``latest`` is then
            left alone.
        rng: also save the global RNG states (see :func:`capture_rng_state`).
        tensors: further tensors of the caller's, stored under ``extra/<key>`` (the
            RNG states of a distributed run's other processes, for example).

    Returns:
        The checkpoint directory, e.g. ``runs/x/checkpoints/step-00001234``.

    Raises:
        CheckpointError: ``keep_last`` or ``name`` is unusable, or the files cannot
            be written.
        ValueError: a module/optimiser name or ``meta`` key is invalid, or some
            state cannot be stored (programming errors).
    """
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step must be a non-negative int, not {step!r}")
    if keep_last is not None and keep_last < 1:
        raise CheckpointError(
            f"keep_last={keep_last} would delete every checkpoint; set it to 1 or more, "
            "or leave it unset to keep them all"
        )
    if name is not None and (not _NAME.match(name) or _STEP_DIR.match(name) or name == LATEST_FILE):
        raise CheckpointError(
            f"checkpoint name {name!r} is not usable; use letters, digits, '-' and '_' "
            "(such as 'best'), and not 'latest' or a step-XXXXXXXX name"
        )
    optimizers = optimizers or {}
    schedulers = schedulers or {}
    for kind, named in (("module", modules), ("optimizer", optimizers), ("scheduler", schedulers)):
        for key in named:
            if not isinstance(key, str) or not key or "/" in key:
                raise ValueError(f"{kind} name {key!r} must be a non-empty string without '/'")
    extra_meta = dict(meta or {})
    clash = sorted(_RESERVED_META.intersection(extra_meta))
    if clash:
        raise ValueError(f"meta keys {clash} are reserved by the checkpoint format; rename them")
    # "networks" and "recipe" may come either way; both at once would be ambiguous.
    for key, given in (("networks", networks), ("recipe", recipe)):
        if given is not None and key in extra_meta:
            raise ValueError(f"pass {key} either as an argument or in meta, not both")
    if networks is None:
        networks = extra_meta.pop("networks", None)
    if recipe is None:
        recipe = extra_meta.pop("recipe", None)

    enc = _Encoder()
    modules_meta: dict[str, Any] = {}
    for mod_name, module in modules.items():
        sd = module.state_dict()
        other: dict[str, Any] = {}
        for key, value in sd.items():
            if isinstance(value, torch.Tensor):
                enc.add_tensor(f"module/{mod_name}/{key}", value)
            else:
                # get_extra_state() may return anything; it lives in JSON (and its
                # tensors under a prefix load_module's key scan does not read).
                other[key] = enc.encode(value, f"module_extra/{mod_name}/{key}")
        modules_meta[mod_name] = {
            # The per-submodule versions BatchNorm and friends consult when loading.
            "versions": _plain(dict(getattr(sd, "_metadata", {}) or {}), f"module {mod_name}"),
            "extra_state": other,
        }
    optim_meta: dict[str, Any] = {}
    for opt_name, opt in optimizers.items():
        optim_meta[opt_name] = {
            "state_dict": enc.encode(opt.state_dict(), f"optim/{opt_name}"),
            # Shapes let load_optimizer catch a network whose parameters changed,
            # which torch would accept and then fail on (or worse) mid-step.
            "param_shapes": [[list(p.shape) for p in g["params"]] for g in opt.param_groups],
        }
    sched_meta = {
        s_name: enc.encode(s.state_dict(), f"sched/{s_name}") for s_name, s in schedulers.items()
    }
    rng_state = None
    if rng:
        rng_tensors, rng_state = capture_rng_state()
        for key, t in rng_tensors.items():
            enc.add_tensor(key, t)
    for key, t in (tensors or {}).items():
        enc.add_tensor(f"extra/{key}", t)

    document: dict[str, Any] = {
        "checkpoint_format": FORMAT,
        "checkpoint_format_version": FORMAT_VERSION,
        "p2pkit_version": p2pkit.__version__,
        "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "step": step,
        "networks": _plain(dict(networks or {}), "networks"),
        "recipe": _plain(dict(recipe) if recipe is not None else None, "recipe"),
        "modules": modules_meta,
        "optimizers": optim_meta,
        "schedulers": sched_meta,
        "rng": rng_state,
    }
    document.update(_plain(extra_meta, "meta"))

    root = _checkpoints_root(Path(path))
    final_name = name if name is not None else checkpoint_dir_name(step)
    final = root / final_name
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create checkpoint folder {root}: {exc.strerror}") from exc
    tmp = root / f"{final_name}.tmp-{secrets.token_hex(4)}"
    try:
        tmp.mkdir()
        tensors_path = tmp / TENSORS_FILE
        safetensors.torch.save_file(enc.tensors, tensors_path, metadata={"format": FORMAT})
        _fsync_file(tensors_path)
        document["tensors_sha256"] = _sha256(tensors_path)
        with open(tmp / META_FILE, "w", encoding="utf-8") as f:
            f.write(_dumps(document))
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        _install(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        # safetensors reports its own write failures (a full disk among them) as
        # SafetensorError, not OSError; both are the disk's fault, not a bug.
        if isinstance(exc, (OSError, safetensors.SafetensorError)):
            reason = getattr(exc, "strerror", None) or exc
            raise CheckpointError(
                f"cannot write checkpoint {final}: {reason}; check free disk "
                "space and permissions (the previous checkpoint is unchanged)"
            ) from exc
        raise
    try:
        _fsync_dir(root)
        if name is None:
            _write_pointer(root, final_name)
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint {final} was written but {root / LATEST_FILE} could not be updated "
            f"({exc.strerror or exc}); check free disk space, then load {final} directly"
        ) from exc
    if name is None and keep_last is not None:
        try:
            _prune(root, keep_last, final)
        except OSError as exc:
            # The new checkpoint is safe; failing to delete old ones must not look like
            # a failed save.
            warnings.warn(
                f"could not delete old checkpoints in {root} ({exc.strerror or exc}); "
                "remove them by hand",
                stacklevel=2,
            )
    return final


_LEFTOVER = re.compile(r"^(?P<final>.+)\.(?P<kind>tmp|del|old)-[0-9a-f]+$")


def clean_leftovers(path: str | os.PathLike[str]) -> list[str]:
    """Remove what killed saves left behind; returns the names removed.

    A process killed during :func:`save_checkpoint` can leave a half-written
    ``step-*.tmp-*`` folder, a ``*.del-*`` folder being deleted, a ``.latest.tmp-*``
    pointer file, or a ``*.old-*`` folder set aside while a named checkpoint was
    replaced. None of them is ever loaded, but they take disk space. An ``*.old-*``
    folder whose checkpoint is missing is the only complete copy and is put back
    instead. Call this only while no other process saves into the run (the trainer
    holds the run folder's lock).

    Args:
        path: a run directory or its ``checkpoints`` directory.
    """
    root = _checkpoints_root(Path(path))
    if not root.is_dir():
        return []
    removed = []
    for child in sorted(root.iterdir()):
        m = _LEFTOVER.match(child.name)
        if m is None:
            continue
        final = root / m.group("final")
        if m.group("kind") == "old" and not final.exists() and child.is_dir():
            os.rename(child, final)
            continue
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        removed.append(child.name)
    return removed


# --------------------------------------------------------------------------- load

# meta.json of the largest network p2pkit ships is about 200 KB (RNG states included); the
# pointer file holds one folder name. Anything far larger is not a p2pkit file.
META_LIMIT = 64 << 20
POINTER_LIMIT = 4096


def _read_regular(path: Path, limit: int | None, what: str) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes.

    A checkpoint folder is data from anywhere: its files may be symlinks to a device
    (``/dev/zero`` would be read until memory runs out) or absurdly large.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: it is not a regular file, or it is too large.
    """
    import stat

    info = os.stat(path)  # follows a symlink: what counts is what would be read
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(
            f"{path} is not a regular file (a device, folder or pipe, or a link to one); "
            f"the {what} is not usable, load another checkpoint"
        )
    if limit is not None and info.st_size > limit:
        raise CheckpointError(
            f"{path} is {info.st_size} bytes, far more than a {what} can be (at most "
            f"{limit}); it is not a p2pkit file, load another checkpoint"
        )
    with open(path, "rb") as f:
        data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:  # it grew after the check
        raise CheckpointError(f"{path} is larger than a {what} can be; load another checkpoint")
    return data


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint directory that ``path`` designates.

    ``path`` may be a checkpoint directory (or a file in one), a ``checkpoints``
    directory, or a run directory; the last two follow ``latest``, or take the
    highest step when there is no pointer.
    """
    p = Path(path)
    if p.name in (META_FILE, TENSORS_FILE) and p.exists() and not p.is_dir():
        p = p.parent
    if not p.exists():
        raise CheckpointError(f"checkpoint path {p} does not exist; check the spelling")
    # exists(), not is_file(): a meta.json that is a link to a device must be refused by
    # name when it is read, not make the folder look like something else.
    if (p / META_FILE).exists() or (p / TENSORS_FILE).exists():
        return p
    for root in (p, p / CHECKPOINTS_DIR):
        pointer = root / LATEST_FILE
        if pointer.exists():
            try:
                raw = _read_regular(pointer, POINTER_LIMIT, "'latest' pointer")
                target = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                target = ""
            if not target or "/" in target or "\\" in target or target in (".", ".."):
                raise CheckpointError(
                    f"{pointer} does not name a checkpoint folder; delete it or load a "
                    "step-XXXXXXXX folder directly"
                )
            if not (root / target).is_dir():
                raise CheckpointError(
                    f"{pointer} points to {target}, which is missing; load one of the "
                    "step-XXXXXXXX folders beside it directly"
                )
            return root / target
        steps = list_checkpoints(root) if root.name == CHECKPOINTS_DIR else []
        if steps:
            return steps[-1][1]
    raise CheckpointError(
        f"no checkpoint in {p}; pass a run folder, its checkpoints/ folder or a "
        "step-XXXXXXXX folder holding meta.json and tensors.safetensors"
    )


def load_checkpoint(path: str | os.PathLike[str], *, verify: bool = True) -> Checkpoint:
    """Read a checkpoint (see :func:`find_checkpoint` for what ``path`` may be).

    Args:
        path: checkpoint directory, ``checkpoints`` directory or run directory.
        verify: compare the tensors file with the sha256 recorded in meta.json.

    Returns:
        The :class:`Checkpoint`, its tensors read fully into CPU memory.

    Raises:
        CheckpointError: nothing to load there, or a file is missing or corrupt.
    """
    where = find_checkpoint(path)
    meta_path = where / META_FILE
    tensors_path = where / TENSORS_FILE
    try:
        text = _read_regular(meta_path, META_LIMIT, META_FILE).decode("utf-8")
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint {where} has no {META_FILE}; it is incomplete, load another one"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read {meta_path}: {exc}; load another checkpoint") from exc
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{meta_path} is not valid JSON (line {exc.lineno}: {exc.msg}); the file is "
            "corrupt, load another checkpoint"
        ) from None
    if not isinstance(meta, dict) or meta.get("checkpoint_format") != FORMAT:
        raise CheckpointError(
            f"{meta_path} is not a p2pkit checkpoint description; load a folder written by p2pkit"
        )
    version = meta.get("checkpoint_format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {where} has format version {version} (p2pkit "
            f"{meta.get('p2pkit_version')}) but this p2pkit {p2pkit.__version__} reads up to "
            f"version {FORMAT_VERSION}; upgrade p2pkit"
        )
    try:
        data = _read_regular(tensors_path, None, TENSORS_FILE)
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint {where} has no {TENSORS_FILE}; it is incomplete, load another one"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {tensors_path}: {exc}") from exc
    expected = meta.get("tensors_sha256")
    if verify and expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(
            f"{tensors_path} does not match the sha256 in meta.json; the file is truncated "
            "or corrupt, load another checkpoint"
        )
    try:
        # From bytes, not memory-mapped: the tensors then own their memory, which
        # matters because the optimiser adopts some of them (Adam's step) and
        # updates them in place.
        tensors = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(
            f"{tensors_path} is not a readable safetensors file ({exc}); it is corrupt, "
            "load another checkpoint"
        ) from None
    return Checkpoint(path=where, meta=meta, tensors=tensors)


def _shape(t: torch.Tensor | Any) -> str:
    if not isinstance(t, torch.Tensor):
        return type(t).__name__
    return "x".join(str(s) for s in t.shape) or "scalar"


def _brief(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _fmt(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _param_shapes_problem(saved: list[list[list[int]]], current: list[list[list[int]]]) -> str:
    """How the optimiser's parameter groups differ from the saved ones, or ``""``."""
    if len(saved) != len(current):
        return f"has {len(saved)} parameter groups but this optimizer has {len(current)}"
    for gi, (old, new) in enumerate(zip(saved, current, strict=True)):
        if len(old) != len(new):
            return f"group {gi} holds {len(old)} parameters but this optimizer's holds {len(new)}"
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                return (
                    f"group {gi} parameter {i} is {'x'.join(map(str, a))} in the checkpoint "
                    f"but {'x'.join(map(str, b))} here"
                )
    return ""


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        path: the checkpoint directory.
        meta: the parsed meta.json.
        tensors: every stored tensor by key, on the CPU.
    """

    path: Path
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor] = field(repr=False)

    @property
    def step(self) -> int:
        """Optimisation steps done when the checkpoint was written."""
        return int(self.meta["step"])

    @property
    def networks(self) -> dict[str, dict[str, Any]]:
        """``{module name: {"name": component name, "options": {...}}}``, as saved."""
        return self.meta.get("networks") or {}

    @property
    def recipe(self) -> dict[str, Any] | None:
        """The resolved recipe the run was trained with, if it was saved."""
        return self.meta.get("recipe")

    def _section(self, section: str, what: str, name: str) -> Any:
        entries = self.meta.get(section) or {}
        if name not in entries:
            held = ", ".join(sorted(entries)) or "none"
            raise CheckpointError(
                f"checkpoint {self.path} has no {what} named {name!r} (it holds: {held}); "
                "check the name"
            )
        return entries[name]

    def module_state(self, name: str) -> OrderedDict[str, Any]:
        """The ``state_dict`` of network ``name``, tensors on the CPU."""
        info = self._section("modules", "network", name)
        prefix = f"module/{name}/"
        sd: OrderedDict[str, Any] = OrderedDict(
            (k[len(prefix) :], t) for k, t in self.tensors.items() if k.startswith(prefix)
        )
        for key, value in (info.get("extra_state") or {}).items():
            sd[key] = _decode(value, self.tensors, self.path)
        # load_state_dict reads per-submodule versions from this attribute.
        sd._metadata = OrderedDict(info.get("versions") or {})  # type: ignore[attr-defined]
        return sd

    def _options_mismatch(
        self, name: str, expected_name: str | None, expected_options: Mapping[str, Any] | None
    ) -> str | None:
        """A clause naming the first setting that differs from training, or None."""
        saved = self.networks.get(name)
        if not saved:
            return None
        saved_name = saved.get("name")
        if expected_name is not None and saved_name is not None and saved_name != expected_name:
            return f"{name} was trained as {saved_name} but this network is {expected_name}"
        saved_options = saved.get("options")
        if expected_options is None or not isinstance(saved_options, dict):
            return None
        current = _plain(dict(expected_options), "expected_options")
        # Only settings both sides state are compared: the caller may pass just the
        # options it set, and older checkpoints may lack newer options.
        for key, value in saved_options.items():
            if key in current and current[key] != value:
                return (
                    f"{name} was trained with {key}={_fmt(value)} but this network has "
                    f"{key}={_fmt(current[key])}"
                )
        return None

    def load_module(
        self,
        name: str,
        module: nn.Module,
        *,
        strict: bool = True,
        expected_options: Mapping[str, Any] | None = None,
        expected_name: str | None = None,
    ) -> None:
        """Load network ``name``'s weights and buffers into ``module`` (on any device).

        Args:
            name: the name the network was saved under (``"generator"``).
            module: a network built like the saved one.
            strict: require exactly the same tensor names (shapes must always match).
            expected_options: the options ``module`` was built with; when the
                checkpoint recorded its own, a mismatch is reported by setting name.
            expected_name: the component name ``module`` was built from
                (``"unet_256"``), checked the same way.

        Raises:
            CheckpointError: one plain line naming the differing setting or, without
                options to compare, the first tensor that does not fit and any
                missing or unexpected tensors.

        Options that differ while the weights still fit (``dropout``, say) are
        allowed, with a warning: that may be a deliberate test-time change.
        """
        sd = self.module_state(name)
        own = module.state_dict()
        # In the network's own order, so "first" means first in the architecture
        # (the tensors file stores keys sorted).
        mismatched = [
            k
            for k, v in own.items()
            if k in sd
            and isinstance(v, torch.Tensor)
            and isinstance(sd[k], torch.Tensor)
            and v.shape != sd[k].shape
        ]
        missing = [k for k in own if k not in sd]
        unexpected = sorted(k for k in sd if k not in own)
        options_problem = self._options_mismatch(name, expected_name, expected_options)
        if mismatched or (strict and (missing or unexpected)):
            if options_problem:
                raise CheckpointError(
                    f"checkpoint {self.path}: {options_problem}; drop the override or "
                    "rebuild from the checkpoint"
                )
            parts = []
            if mismatched:
                k = mismatched[0]
                more = f" ({len(mismatched) - 1} more differ)" if len(mismatched) > 1 else ""
                parts.append(
                    f"tensor {k} is {_shape(sd[k])} in the checkpoint but {_shape(own[k])} "
                    f"here{more}"
                )
            if strict and missing:
                parts.append(
                    f"{len(missing)} tensors missing from the checkpoint ({_brief(missing)})"
                )
            if strict and unexpected:
                parts.append(
                    f"{len(unexpected)} checkpoint tensors not in this network "
                    f"({_brief(unexpected)})"
                )
            raise CheckpointError(
                f"checkpoint {self.path}: {name} does not fit this network: "
                + "; ".join(parts)
                + "; build the network with the options in meta.json 'networks' or load "
                "the checkpoint it was trained with"
            )
        if options_problem:
            warnings.warn(
                f"checkpoint {self.path}: {options_problem}; the weights fit, so loading "
                "anyway (drop the override unless the change is deliberate)",
                stacklevel=2,
            )
        try:
            module.load_state_dict(sd, strict=strict)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1].strip()
            raise CheckpointError(
                f"checkpoint {self.path}: {name} could not be loaded ({first}); build the "
                "network with the options in meta.json 'networks'"
            ) from None

    def load_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        """Restore optimiser ``name``'s state (moments, step counts, param groups).

        ``optimizer`` must have been built over the same parameters, in the same
        order, as the saved one; its state tensors move to its parameters' devices.
        """
        info = self._section("optimizers", "optimizer", name)
        saved_shapes = info.get("param_shapes")
        if saved_shapes is not None:
            current = [[list(p.shape) for p in g["params"]] for g in optimizer.param_groups]
            problem = _param_shapes_problem(saved_shapes, current)
            if problem:
                raise CheckpointError(
                    f"checkpoint {self.path}: optimizer {name} {problem}; build the networks "
                    "and optimizer exactly as in the saved run"
                )
        state = _decode(info["state_dict"], self.tensors, self.path)
        try:
            optimizer.load_state_dict(state)
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint {self.path}: optimizer {name} could not be restored ({exc}); "
                "use the same optimizer type and settings as the saved run"
            ) from None

    def load_scheduler(self, name: str, scheduler: Any) -> None:
        """Restore scheduler ``name`` (or any object saved under ``schedulers=``)."""
        state = _decode(self._section("schedulers", "scheduler", name), self.tensors, self.path)
        try:
            scheduler.load_state_dict(state)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"checkpoint {self.path}: scheduler {name} could not be restored ({exc}); "
                "use the same scheduler type as the saved run"
            ) from None

    def restore_rng(self) -> None:
        """Put Python, numpy, torch CPU and CUDA generators back as they were at save."""
        state = self.meta.get("rng")
        if not state:
            raise CheckpointError(
                f"checkpoint {self.path} holds no RNG state (it was saved with rng=False); "
                "resume without restoring RNG or from another checkpoint"
            )
        try:
            restore_rng_state(self.tensors, state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"checkpoint {self.path}: RNG state is damaged ({exc}); resume without "
                "restoring RNG or from another checkpoint"
            ) from None
