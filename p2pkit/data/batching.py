"""Batching a stream of images of mixed sizes, in order, for tools that process them in passes.

Images of different sizes cannot be stacked into one tensor.
[`same_shape_runs`][p2pkit.data.batching.same_shape_runs] cuts a stream into batches of
consecutive items that can: it keeps the input order and holds at most one batch at a time, so a
folder of photos that each have their own size streams through in bounded memory (``p2pkit data
edges``, palette discovery). Grouping *all* same-size items of a stream, whatever their order, is
the different job of ``p2pkit.inference.iter_batches``, which holds back every unfinished group
until the end.

[`read_ahead`][p2pkit.data.batching.read_ahead] reads the next items of a stream in a background
thread while the consumer works on the current ones: image decoding releases the interpreter
lock, so it overlaps with the network's compute.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import TypeVar

import torch

__all__ = ["read_ahead", "same_shape_runs"]

T = TypeVar("T")


def _tensor_shape(item: object) -> Hashable:
    if isinstance(item, torch.Tensor):
        return (tuple(item.shape), item.dtype, item.device)
    raise TypeError("same_shape_runs needs key= for items that are not tensors")


def same_shape_runs(
    items: Iterable[T],
    batch_size: int,
    *,
    key: Callable[[T], Hashable] = _tensor_shape,
) -> Iterator[list[T]]:
    """Consecutive items with equal keys, at most ``batch_size`` at a time.

    Args:
        items: e.g. image tensors ``(C, H, W)`` of any sizes; read lazily.
        batch_size: the most items per batch (at least 1).
        key: items go together only while their keys are equal; by default a tensor's shape,
            dtype and device, so that each batch can be ``torch.stack``-ed into
            ``(B, C, H, W)``.

    Yields:
        Non-empty lists of items in input order. A batch ends when it is full or when the next
        item's key differs, so the batches, concatenated, are ``items`` again.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    pending: list[T] = []
    pending_key: Hashable = None
    for item in items:
        item_key = key(item)
        if pending and (item_key != pending_key or len(pending) == batch_size):
            yield pending
            pending = []
        if not pending:
            pending_key = item_key
        pending.append(item)
    if pending:
        yield pending


_DONE = object()


def read_ahead(items: Iterable[T], depth: int) -> Iterator[T]:
    """``items``, in order, produced up to ``depth`` items ahead by a background thread.

    An exception raised while producing an item is raised here, at that item's place in the
    stream. Closing the returned iterator early stops the thread after the item it is on.

    Args:
        items: a lazy stream whose production is slow and releases the interpreter lock (file
            reading and decoding).
        depth: the most items produced but not yet consumed (at least 1); it bounds memory.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple[object, BaseException | None]) -> bool:
        """Queue ``entry`` unless the consumer has stopped; False once it has."""
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((_DONE, None))
        except BaseException as exc:  # handed to the consumer, raised in its thread
            offer((_DONE, exc))

    thread = threading.Thread(target=produce, name="p2pkit-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
