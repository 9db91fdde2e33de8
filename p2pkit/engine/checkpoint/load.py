"""Reading a checkpoint back: bounded reads, a verified digest, loaders that explain mismatches."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

import p2pkit
from p2pkit.engine.checkpoint.encoding import decode, plain
from p2pkit.engine.checkpoint.layout import (
    FORMAT,
    FORMAT_VERSION,
    META_FILE,
    TENSORS_FILE,
    find_checkpoint,
    read_checkpoint_file,
)
from p2pkit.engine.checkpoint.rng import restore_rng_state
from p2pkit.errors import CheckpointError

# meta.json of the largest network p2pkit ships is about 200 KB (RNG states included); the
# pointer file holds one folder name. Anything far larger is not a p2pkit file.
META_LIMIT = 64 << 20


def load_checkpoint(
    path: str | os.PathLike[str], *, verify: bool = True, tensors: bool = True
) -> Checkpoint:
    """Read a checkpoint (see [`find_checkpoint`][p2pkit.engine.checkpoint.find_checkpoint] for what
    ``path`` may be).

    Args:
        path: checkpoint directory, ``checkpoints`` directory or run directory.
        verify: compare the tensors file with the sha256 recorded in meta.json.
        tensors: False reads meta.json only (the recipe, the networks' specs) and leaves
            ``Checkpoint.tensors`` empty: for a caller that takes the weights from
            elsewhere, such as an exported ONNX file.

    Returns:
        The [`Checkpoint`][p2pkit.engine.checkpoint.Checkpoint], its tensors read fully into CPU
        memory unless ``tensors`` is False.

    Raises:
        CheckpointError: nothing to load there, or a file is missing or corrupt.
    """
    where = find_checkpoint(path)
    meta_path = where / META_FILE
    tensors_path = where / TENSORS_FILE
    try:
        text = read_checkpoint_file(meta_path, META_LIMIT, META_FILE).decode("utf-8")
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
    if not tensors:
        return Checkpoint(path=where, meta=meta, tensors={})
    try:
        data = read_checkpoint_file(tensors_path, None, TENSORS_FILE)
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
        tensors: every stored tensor by key, on the CPU (empty when loaded with
            ``tensors=False``).
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
            sd[key] = decode(value, self.tensors, self.path)
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
        current = plain(dict(expected_options), "expected_options")
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
        state = decode(info["state_dict"], self.tensors, self.path)
        try:
            optimizer.load_state_dict(state)
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint {self.path}: optimizer {name} could not be restored ({exc}); "
                "use the same optimizer type and settings as the saved run"
            ) from None

    def load_scheduler(self, name: str, scheduler: Any) -> None:
        """Restore scheduler ``name`` (or any object saved under ``schedulers=``)."""
        state = decode(self._section("schedulers", "scheduler", name), self.tensors, self.path)
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
