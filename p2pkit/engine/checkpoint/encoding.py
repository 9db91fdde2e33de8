"""Nested ``state_dict()`` values as JSON plus a flat dict of tensors, and back.

Optimiser and scheduler state is nested: tensors inside dicts inside lists. A
checkpoint keeps the tensors in safetensors and the rest in ``meta.json`` by replacing
each tensor with ``{"__tensor__": key}``, tuples with ``{"__tuple__": [...]}`` and dicts
whose keys are not all strings (the optimiser's integer parameter ids) with
``{"__items__": [[key, value], ...]}``, so ``load_state_dict`` receives exactly the
types it produced: Adam's ``step`` tensor keeps its dtype and ``betas`` stays a tuple.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from p2pkit.errors import CheckpointError

TENSORS_FILE = "tensors.safetensors"
_MARKERS = ("__tensor__", "__tuple__", "__items__")


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


class Encoder:
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


def decode(obj: Any, tensors: Mapping[str, torch.Tensor], where: Path) -> Any:
    """Inverse of `_Encoder.encode`; ``where`` names the checkpoint in errors."""
    if isinstance(obj, list):
        return [decode(v, tensors, where) for v in obj]
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
            return tuple(decode(v, tensors, where) for v in value)
        if marker == "__items__":
            return {
                _hashable(decode(k, tensors, where)): decode(v, tensors, where) for k, v in value
            }
    return {k: decode(v, tensors, where) for k, v in obj.items()}


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


def dumps(document: Mapping[str, Any]) -> str:
    """Indented JSON with lists of numbers on one line.

    RNG states are lists of hundreds of integers; one per line would bury the
    rest of meta.json.
    """

    def one_line(m: re.Match[str]) -> str:
        return "[" + ", ".join(n.strip() for n in m.group(1).split(",")) + "]"

    return _NUMBER_LIST.sub(one_line, json.dumps(document, indent=2)) + "\n"


def plain(obj: Any, what: str) -> Any:
    """``obj`` as it will read back from JSON (tuples become lists, paths strings)."""
    try:
        return json.loads(json.dumps(obj, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: {exc}") from exc


__all__ = ["Encoder", "decode", "dumps", "plain"]
