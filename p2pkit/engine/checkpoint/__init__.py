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

The package's modules: `save` and `load` (the two directions), `encoding` (nested
state as JSON plus tensors), `rng` (random-number generator states) and `layout` (step
folders, ``latest``, pruning, leftovers). Everything public is importable from here.
"""

from __future__ import annotations

from p2pkit.engine.checkpoint.layout import (
    CHECKPOINTS_DIR,
    FORMAT,
    FORMAT_VERSION,
    LATEST_FILE,
    META_FILE,
    TENSORS_FILE,
    checkpoint_dir_name,
    clean_leftovers,
    find_checkpoint,
    list_checkpoints,
)
from p2pkit.engine.checkpoint.load import META_LIMIT, Checkpoint, load_checkpoint
from p2pkit.engine.checkpoint.rng import capture_rng_state, restore_rng_state
from p2pkit.engine.checkpoint.save import save_checkpoint

__all__ = [
    "CHECKPOINTS_DIR",
    "FORMAT",
    "FORMAT_VERSION",
    "LATEST_FILE",
    "META_FILE",
    "META_LIMIT",
    "TENSORS_FILE",
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
