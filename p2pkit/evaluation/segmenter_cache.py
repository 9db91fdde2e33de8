"""Saving, loading and caching the FCN-score's segmenter, so it is trained once per dataset.

A segmenter is stored as two files: ``<name>.safetensors`` (the weights) and ``<name>.json`` (how
to rebuild it: its component in the ``p2pkit.segmenters`` entry-point group and that factory's
arguments, plus the palette, training settings and a fingerprint of the training data).
[`segmenter_cache_path`][p2pkit.evaluation.segmenter_cache.segmenter_cache_path] names the cache
entry of one dataset, split and set of settings;
[`load_cached_segmenter`][p2pkit.evaluation.segmenter_cache.load_cached_segmenter] reuses it while
[`data_fingerprint`][p2pkit.evaluation.segmenter_cache.data_fingerprint] of the data still matches.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from p2pkit.errors import CheckpointError, DataError
from p2pkit.registry import get_registry

__all__ = [
    "data_fingerprint",
    "default_cache_dir",
    "load_cached_segmenter",
    "load_segmenter",
    "save_segmenter",
    "segmenter_cache_path",
]

_META_VERSION = 1


def _meta_path(weights: Path) -> Path:
    """The JSON file that describes a ``.safetensors`` segmenter."""
    return weights.with_suffix(".json")


def save_segmenter(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    component: str = "fcn_small",
    component_kwargs: Mapping[str, Any] | None = None,
    palette: torch.Tensor | list[list[int]] | None = None,
    image_size: tuple[int, int] | None = None,
    training: Mapping[str, Any] | None = None,
    fingerprint: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a segmenter as ``<path>`` (safetensors weights) and ``<path>.json`` (metadata).

    Both files are written to temporary names and renamed into place, so a reader never sees a
    half-written cache entry.

    Args:
        path: the weights file, conventionally ending in ``.safetensors``.
        model: the segmenter.
        component: its factory's name in the ``p2pkit.segmenters`` group.
        component_kwargs: the factory's arguments; defaults to ``model.config`` (``FCNSmall``
            carries one).
        palette: the ``(K, 3)`` colours of the classes, if the labels came from colours.
        image_size: ``(H, W)`` of the training photos.
        training: training settings (steps, batch size, lr, seed, ...).
        fingerprint: [`data_fingerprint`][p2pkit.evaluation.segmenter_cache.data_fingerprint] of the
            training data.
        extra: anything else worth keeping (must be JSON-serialisable).

    Returns:
        The weights path.
    """
    from safetensors.torch import save_file

    path = Path(path)
    kwargs = dict(
        component_kwargs if component_kwargs is not None else getattr(model, "config", {})
    )
    if not kwargs:
        raise ValueError("save_segmenter: pass component_kwargs for a model without .config")
    if isinstance(palette, torch.Tensor):
        palette = [[int(v) for v in row] for row in palette.tolist()]
    from p2pkit import __version__

    meta = {
        "format_version": _META_VERSION,
        "component": component,
        "component_kwargs": kwargs,
        "num_classes": kwargs.get("num_classes"),
        "palette": palette,
        "image_size": list(image_size) if image_size is not None else None,
        "training": dict(training or {}),
        "data_fingerprint": fingerprint,
        "p2pkit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **dict(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp_weights = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp_meta = path.with_name(path.name + f".json.tmp{os.getpid()}")
    save_file(tensors, str(tmp_weights), metadata={"component": component})
    tmp_meta.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp_weights, path)
    os.replace(tmp_meta, _meta_path(path))
    return path


def load_segmenter(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a segmenter written by
    [`save_segmenter`][p2pkit.evaluation.segmenter_cache.save_segmenter].

    Args:
        path: the ``.safetensors`` weights file (its ``.json`` must sit beside it).
        device: where to put the model.

    Returns:
        ``(model in eval mode, metadata dict)``.

    Raises:
        CheckpointError: when a file is missing, unreadable, or does not fit the network.
        RegistryError: when no installed plugin provides the recorded component.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta_file = _meta_path(path)
    if not path.is_file() or not meta_file.is_file():
        missing = path if not path.is_file() else meta_file
        raise CheckpointError(f"{missing}: segmenter file not found; train the segmenter again")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        # Built-in or plugin, the component is found through the p2pkit.segmenters group.
        factory = get_registry("segmenters").get(meta["component"])
        kwargs = dict(meta["component_kwargs"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{meta_file}: segmenter metadata is unreadable ({exc}); delete it and train again"
        ) from None
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(
            f"{path}: segmenter weights are unreadable ({exc}); delete and retrain"
        ) from None
    model = factory(**kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{path}: weights do not fit {meta['component']}({kwargs}) ({first}); "
            f"delete it and retrain"
        ) from None
    return model.to(device).eval(), meta


def default_cache_dir() -> Path:
    """Where cached segmenters live: ``$P2PKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/p2pkit``,
    else ``~/.cache/p2pkit``. Never the dataset folder, which may be shared or read-only."""
    if os.environ.get("P2PKIT_CACHE_DIR"):
        return Path(os.environ["P2PKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "p2pkit"


def segmenter_cache_path(
    dataset_root: str | os.PathLike[str],
    *,
    split: str = "train",
    component: str = "fcn_small",
    settings: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The cache file for the segmenter of one dataset, split and set of training settings.

    The name is readable (dataset folder, split, component) and ends in a hash of the resolved
    dataset path, split, component and ``settings``, so different datasets or settings never share
    an entry. The data itself is checked on load through the fingerprint stored in the metadata
    (see [`load_cached_segmenter`][p2pkit.evaluation.segmenter_cache.load_cached_segmenter]), so
    edited data invalidates the entry without a new name.

    Args:
        dataset_root: the dataset folder.
        split: the split the segmenter is trained on.
        component: the segmenter component.
        settings: anything else that changes the result (image size, steps, direction, palette).
        cache_dir: overrides
            [`default_cache_dir`][p2pkit.evaluation.segmenter_cache.default_cache_dir].

    Returns:
        ``<cache_dir>/segmenters/<dataset>-<split>-<component>-<hash16>.safetensors``.
    """
    root = Path(dataset_root).expanduser().resolve()
    key = json.dumps(
        {"root": str(root), "split": split, "component": component, "settings": settings or {}},
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    safe = "".join(
        c if c.isalnum() or c in "-_." else "_" for c in f"{root.name}-{split}-{component}"
    )
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / "segmenters" / f"{safe}-{digest}.safetensors"


def load_cached_segmenter(
    path: str | os.PathLike[str],
    *,
    fingerprint: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]] | None:
    """Load a cached segmenter if it exists and was trained on the same data.

    Args:
        path: from [`segmenter_cache_path`][p2pkit.evaluation.segmenter_cache.segmenter_cache_path].
        fingerprint: the current
            [`data_fingerprint`][p2pkit.evaluation.segmenter_cache.data_fingerprint]; ``None`` skips
            the check.
        device: where to put the model.

    Returns:
        ``(model, metadata)``, or ``None`` when there is no entry or it is stale (then train and
        [`save_segmenter`][p2pkit.evaluation.segmenter_cache.save_segmenter] to the same path). A
        corrupt entry raises [`CheckpointError`][p2pkit.errors.CheckpointError].
    """
    path = Path(path)
    if not path.is_file() or not _meta_path(path).is_file():
        return None
    model, meta = load_segmenter(path, device=device)
    if fingerprint is not None and meta.get("data_fingerprint") != fingerprint:
        return None
    return model, meta


def data_fingerprint(items: Iterable[str | os.PathLike[str] | torch.Tensor]) -> str:
    """A SHA-256 over training data, to tell whether a cached segmenter is still valid.

    Args:
        items: files (hashed by name and content, in sorted order, so the listing order does not
            matter) or tensors (hashed by dtype, shape and values, in the given order).

    Returns:
        ``"sha256:<64 hex digits>"``.
    """
    digest = hashlib.sha256()
    paths: list[Path] = []
    for item in items:
        if isinstance(item, torch.Tensor):
            t = item.detach().cpu().contiguous()
            digest.update(f"tensor {t.dtype} {tuple(t.shape)}\n".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            paths.append(Path(item))
    for p in sorted(paths, key=lambda q: (q.name, str(q))):
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise DataError(
                f"{p}: cannot read it to fingerprint the data ({exc.strerror})"
            ) from None
        digest.update(f"file {p.name} {len(data)}\n".encode())
        digest.update(data)
    return "sha256:" + digest.hexdigest()
