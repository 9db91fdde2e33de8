"""The state of every global random-number generator training draws from."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


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
    """Set every global generator from
    [`capture_rng_state`][p2pkit.engine.checkpoint.capture_rng_state]'s output.

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


__all__ = ["capture_rng_state", "restore_rng_state"]
