"""Running a trained generator on images of any size.

Generators are fully convolutional but need H and W to be multiples of their
``size_multiple`` (a U-Net with 8 stride-2 downsamplings needs multiples of 256).
[`translate_tensor`][p2pkit.inference.translate_tensor] pads with reflection to the next multiple,
runs the network and crops back to the input size. Images too large for memory are cut
into overlapping windows (``tile``) whose outputs are blended with a smooth
weight, so no seams show.

Two things to know about tiling:

* Windows start at multiples of ``multiple`` in the padded image so every window
  sees the same stride-2 sampling grid as the whole image would; the step between
  windows is therefore ``tile - overlap`` rounded down to a multiple, and the real
  overlap can be larger than asked.
* Blending hides seams from the network's zero padding at window borders, but
  anything computed from a whole window (training-mode BatchNorm under the paper's
  test protocol, instance norm) differs from window to window; use the ``"eval"``
  protocol, or no tiling, when that matters.

Nothing here changes the module's train/eval mode: see
[`inference_protocol`][p2pkit.models.protocol.inference_protocol] for that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from p2pkit.errors import ConfigError, P2PKitError

__all__ = [
    "crop_padding",
    "iter_batches",
    "pad_to_multiple",
    "translate_images",
    "translate_tensor",
]

T = TypeVar("T")

Pads = tuple[int, int, int, int]


def _check_image(x: torch.Tensor, what: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} must be a float tensor (N, C, H, W), not {shape}")


def _pad_axis(x: torch.Tensor, before: int, after: int, dim: int) -> torch.Tensor:
    """Pad one spatial axis (``dim`` -1 for W, -2 for H), by reflection when possible."""
    if before == 0 and after == 0:
        return x
    pad = (before, after, 0, 0) if dim == -1 else (0, 0, before, after)
    # Reflection needs each pad to be smaller than the axis; a tiny image padded to
    # a large multiple falls back to repeating its edge pixels.
    mode = "reflect" if max(before, after) < x.shape[dim] else "replicate"
    return F.pad(x, pad, mode=mode)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, Pads]:
    """Pad H and W up to the next multiple of ``multiple``.

    Args:
        x: float (N, C, H, W), any range.
        multiple: the size multiple the network needs (1 pads nothing).

    Returns:
        ``(padded, (top, bottom, left, right))``: padded is (N, C, H', W') with H'
        and W' the next multiples; the padding is split between both sides (the
        extra pixel, if odd, at the bottom/right) and mirrors the image (reflect
        padding, or edge replication on an axis shorter than its padding).
    """
    _check_image(x)
    if multiple < 1:
        raise ConfigError(f"size multiple must be at least 1, not {multiple}")
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    top, left = ph // 2, pw // 2
    pads = (top, ph - top, left, pw - left)
    x = _pad_axis(x, pads[0], pads[1], -2)
    x = _pad_axis(x, pads[2], pads[3], -1)
    return x, pads


def crop_padding(y: torch.Tensor, pads: Pads) -> torch.Tensor:
    """Undo [`pad_to_multiple`][p2pkit.inference.pad_to_multiple]: y (N, C, H', W') -> (N, C, H, W)
    (a view)."""
    top, bottom, left, right = pads
    h, w = y.shape[-2:]
    return y[..., top : h - bottom, left : w - right]


def _ramp(overlap: int, device: torch.device) -> torch.Tensor:
    """Blend weight rising from 0 to 1 across ``overlap`` pixels, float32 (overlap,).

    The outer quarter is exactly 0: those pixels are the ones most affected by the
    network's zero padding at the window border, and the neighbouring window (which
    overlaps by at least ``overlap``) covers them with full context. The rest rises
    as a raised cosine, strictly between 0 and 1, so weights sum to a positive,
    smoothly varying total.
    """
    margin = overlap // 4
    rise = overlap - margin
    i = torch.arange(1, rise + 1, dtype=torch.float32, device=device)
    ramp = 0.5 - 0.5 * torch.cos(math.pi * i / (rise + 1))
    return torch.cat([torch.zeros(margin, device=device), ramp])


def _axis_weight(
    start: int, size: int, length: int, overlap: int, device: torch.device
) -> torch.Tensor:
    """1-D blend weight (size,) of a window at ``start`` on an axis of ``length``.

    Sides on the image border keep weight 1: no other window covers them.
    """
    w = torch.ones(size, device=device)
    if overlap == 0:
        return w
    ramp = _ramp(min(overlap, size), device)
    n = ramp.numel()
    if start > 0:
        w[:n] = torch.minimum(w[:n], ramp)
    if start + size < length:
        w[size - n :] = torch.minimum(w[size - n :], ramp.flip(0))
    return w


def _starts(length: int, tile: int, stride: int) -> list[int]:
    """Window starts covering [0, length); the last window ends flush with the axis."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _run(
    generator: nn.Module,
    x: torch.Tensor,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> torch.Tensor:
    """One forward pass on ``device``; returns float32 on ``x``'s device.

    ``x`` is cast to the generator's floating-point dtype (a bf16 or fp16 copy from
    ``load_trained(precision=...)`` takes inputs of its own dtype).
    """
    inp = x.to(device=device, dtype=_module_dtype(generator, x.dtype))
    if autocast_dtype is None:
        out = generator(inp)
    else:
        with torch.autocast(device_type=device.type, dtype=autocast_dtype):
            out = generator(inp)
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[-2:] != x.shape[-2:]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise P2PKitError(
            f"the generator returned {got} for an input of {tuple(x.shape)}; translating "
            "needs a generator whose output has its input's height and width"
        )
    return out.to(device=x.device, dtype=torch.float32)


def _module_dtype(module: nn.Module, fallback: torch.dtype) -> torch.dtype:
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return fallback


def _module_device(module: nn.Module, fallback: torch.device) -> torch.device:
    p = next(module.parameters(), None)
    if p is None:
        p = next(module.buffers(), None)
    return fallback if p is None else p.device


def translate_tensor(
    generator: nn.Module,
    x: torch.Tensor,
    *,
    multiple: int | None = None,
    tile: int | None = None,
    overlap: int = 32,
    batch_size: int = 1,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Run ``generator`` on images of any size.

    Args:
        generator: a fully convolutional network mapping (B, Cin, h, w) to
            (B, Cout, h, w) for h, w multiples of ``multiple``; its train/eval mode
            is used as it is.
        x: float (N, Cin, H, W) in [-1, 1], any H and W, on any device (windows are
            moved to the generator's device one batch at a time, so a huge image
            can stay on the CPU).
        multiple: the size multiple the generator needs; defaults to its
            ``size_multiple`` attribute, else 1.
        tile: cut images larger than ``tile`` x ``tile`` (after padding) into
            windows of that size; must be a multiple of ``multiple``. ``None`` runs
            whole images.
        overlap: pixels by which neighbouring windows overlap at least, blended
            with a smooth ramp; ignored without ``tile``.
        batch_size: windows (or whole images, without ``tile``) per forward pass.
            With training-mode BatchNorm (the paper's test protocol) this changes
            the statistics images are normalised with; 1 matches the paper.
        autocast_dtype: run under ``torch.autocast`` with this dtype
            (``torch.bfloat16``, ``torch.float16``); ``None`` runs in ``x``'s dtype.

    Returns:
        y float (N, Cout, H, W) on ``x``'s device with ``x``'s dtype, in the
        generator's output range ([-1, 1] for a tanh output).

    Raises:
        ConfigError: ``tile``, ``overlap``, ``multiple`` or ``batch_size`` is
            unusable.
    """
    _check_image(x)
    if multiple is None:
        multiple = int(getattr(generator, "size_multiple", 1) or 1)
    if multiple < 1:
        raise ConfigError(f"size multiple must be at least 1, not {multiple}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, not {batch_size}")
    if tile is not None:
        if tile < multiple or tile % multiple:
            raise ConfigError(
                f"tile={tile} is not a multiple of {multiple}, the size this generator "
                f"needs; use a tile such as {max(1, round(tile / multiple)) * multiple}"
            )
        if not 0 <= overlap < tile:
            raise ConfigError(f"overlap={overlap} must be at least 0 and less than tile={tile}")
        if (tile - overlap) // multiple < 1:
            raise ConfigError(
                f"tile={tile} with overlap={overlap} leaves windows less than {multiple} "
                f"pixels apart (the generator's size multiple); use tile={2 * multiple} or "
                "larger"
            )
    device = _module_device(generator, x.device)

    with torch.no_grad():
        padded, pads = pad_to_multiple(x, multiple)
        hp, wp = padded.shape[-2:]
        if tile is None or (hp <= tile and wp <= tile):
            outs = [
                _run(generator, padded[i : i + batch_size], device, autocast_dtype)
                for i in range(0, padded.shape[0], batch_size)
            ]
            return crop_padding(torch.cat(outs), pads).to(x.dtype)

        # Window steps rounded down to the size multiple keep every window on the
        # whole image's downsampling grid (see module docstring).
        stride = (tile - overlap) // multiple * multiple
        th, tw = min(tile, hp), min(tile, wp)
        ys, xs = _starts(hp, th, stride), _starts(wp, tw, stride)
        windows = [(n, y0, x0) for n in range(padded.shape[0]) for y0 in ys for x0 in xs]
        acc: torch.Tensor | None = None
        wsum = torch.zeros(1, hp, wp, device=x.device)
        for i in range(0, len(windows), batch_size):
            chunk = windows[i : i + batch_size]
            batch = torch.stack([padded[n, :, y0 : y0 + th, x0 : x0 + tw] for n, y0, x0 in chunk])
            out = _run(generator, batch, device, autocast_dtype)
            if acc is None:
                acc = torch.zeros(padded.shape[0], out.shape[1], hp, wp, device=x.device)
            for o, (n, y0, x0) in zip(out, chunk, strict=True):
                wy = _axis_weight(y0, th, hp, overlap, x.device)
                wx = _axis_weight(x0, tw, wp, overlap, x.device)
                weight = wy[:, None] * wx[None, :]
                acc[n, :, y0 : y0 + th, x0 : x0 + tw] += o * weight
                if n == 0:
                    # Every image has the same windows, so one weight map serves all.
                    wsum[:, y0 : y0 + th, x0 : x0 + tw] += weight
        assert acc is not None
        return crop_padding(acc / wsum, pads).to(x.dtype)


def _default_key(item: object) -> Hashable:
    if isinstance(item, torch.Tensor):
        return (tuple(item.shape), item.dtype, item.device)
    raise TypeError("iter_batches needs key= for items that are not tensors")


def iter_batches(
    items: Iterable[T],
    batch_size: int,
    *,
    key: Callable[[T], Hashable] = _default_key,
) -> Iterator[list[tuple[int, T]]]:
    """Group items that can share a batch, remembering where each came from.

    Args:
        items: e.g. image tensors (C, H, W) of different sizes; read lazily, so a
            dataset can stream through.
        batch_size: the most items per batch.
        key: items with equal keys go together; by default a tensor's shape, dtype
            and device, so a group can be ``torch.stack``-ed.

    Yields:
        Lists of ``(index in items, item)``, all with one key, at most
        ``batch_size`` long. A group is yielded as soon as it is full; the partial
        groups left at the end follow in the order their first item arrived. Use
        the indices to put results back in the original order.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, not {batch_size}")
    # dicts keep insertion order, which gives the documented order of leftovers.
    pending: dict[Hashable, list[tuple[int, T]]] = {}
    for index, item in enumerate(items):
        k = key(item)
        group = pending.setdefault(k, [])
        group.append((index, item))
        if len(group) == batch_size:
            del pending[k]
            yield group
    yield from pending.values()


def translate_images(
    generator: nn.Module,
    images: Sequence[torch.Tensor] | Iterable[torch.Tensor],
    *,
    multiple: int | None = None,
    tile: int | None = None,
    overlap: int = 32,
    batch_size: int = 1,
    autocast_dtype: torch.dtype | None = None,
) -> list[torch.Tensor]:
    """Translate images of different sizes, batching same-size ones.

    Args:
        generator: as for [`translate_tensor`][p2pkit.inference.translate_tensor].
        images: float tensors (Cin, H, W) in [-1, 1], sizes may differ.
        multiple: as for [`translate_tensor`][p2pkit.inference.translate_tensor].
        tile: as for [`translate_tensor`][p2pkit.inference.translate_tensor].
        overlap: as for [`translate_tensor`][p2pkit.inference.translate_tensor].
        batch_size: images of one size that share a forward pass.
        autocast_dtype: as for [`translate_tensor`][p2pkit.inference.translate_tensor].

    Returns:
        One float (Cout, H, W) tensor per image, in the order of ``images``.
    """
    results: dict[int, torch.Tensor] = {}
    for group in iter_batches(images, batch_size):
        indices = [i for i, _ in group]
        batch = torch.stack([img for _, img in group])
        out = translate_tensor(
            generator,
            batch,
            multiple=multiple,
            tile=tile,
            overlap=overlap,
            # Tiles of this batch's images are again grouped batch_size at a time.
            batch_size=batch_size,
            autocast_dtype=autocast_dtype,
        )
        results.update(zip(indices, out, strict=True))
    return [results[i] for i in range(len(results))]
