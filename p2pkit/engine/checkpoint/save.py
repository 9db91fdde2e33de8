"""Writing a checkpoint: every tensor in safetensors, the rest in ``meta.json``, atomically."""

from __future__ import annotations

import os
import secrets
import shutil
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

import p2pkit
from p2pkit.engine.checkpoint.encoding import Encoder, dumps, plain
from p2pkit.engine.checkpoint.layout import (
    FORMAT,
    FORMAT_VERSION,
    LATEST_FILE,
    META_FILE,
    NAME,
    STEP_DIR,
    TENSORS_FILE,
    checkpoint_dir_name,
    checkpoints_root,
    install,
    prune,
    write_pointer,
)
from p2pkit.engine.checkpoint.rng import capture_rng_state
from p2pkit.errors import CheckpointError
from p2pkit.files import fsync_dir, fsync_file, sha256_file

# Keys of meta.json that save_checkpoint writes itself.
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
            "options": {"ngf": 64, ...}}}``; lets
            [`Checkpoint.load_module`][p2pkit.engine.checkpoint.Checkpoint.load_module] explain
            mismatches and the CLI rebuild a network from the checkpoint.
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
        rng: also save the global RNG states (see
            [`capture_rng_state`][p2pkit.engine.checkpoint.capture_rng_state]).
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
    if name is not None and (not NAME.match(name) or STEP_DIR.match(name) or name == LATEST_FILE):
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

    enc = Encoder()
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
            "versions": plain(dict(getattr(sd, "_metadata", {}) or {}), f"module {mod_name}"),
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
        "networks": plain(dict(networks or {}), "networks"),
        "recipe": plain(dict(recipe) if recipe is not None else None, "recipe"),
        "modules": modules_meta,
        "optimizers": optim_meta,
        "schedulers": sched_meta,
        "rng": rng_state,
    }
    document.update(plain(extra_meta, "meta"))

    root = checkpoints_root(Path(path))
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
        fsync_file(tensors_path)
        document["tensors_sha256"] = sha256_file(tensors_path)
        with open(tmp / META_FILE, "w", encoding="utf-8") as f:
            f.write(dumps(document))
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(tmp)
        install(tmp, final)
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
        fsync_dir(root)
        if name is None:
            write_pointer(root, final_name)
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint {final} was written but {root / LATEST_FILE} could not be updated "
            f"({exc.strerror or exc}); check free disk space, then load {final} directly"
        ) from exc
    if name is None and keep_last is not None:
        try:
            prune(root, keep_last, final)
        except OSError as exc:
            # The new checkpoint is safe; failing to delete old ones must not look like
            # a failed save.
            warnings.warn(
                f"could not delete old checkpoints in {root} ({exc.strerror or exc}); "
                "remove them by hand",
                stacklevel=2,
            )
    return final


__all__ = ["save_checkpoint"]
