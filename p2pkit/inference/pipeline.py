"""Translating files as a pipeline: reading ahead, batching, two streams on a CPU, writing behind.

[`translate_files`][p2pkit.inference.translate_files] reads inputs a few files ahead in a
background thread, groups consecutive images of one size into batches, runs the batches
(two at once on a CPU, see [`cpu_streams`][p2pkit.inference.pipeline.cpu_streams]) through
[`translate_tensor`][p2pkit.inference.translate_tensor] and yields the results in input order;
[`WriteBehind`][p2pkit.inference.WriteBehind] encodes the outputs in another thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from p2pkit.inference.files import _read_sides, input_reader
from p2pkit.inference.model import TrainedModel

AUTO_BATCH_PIXELS = 8 * 256 * 256
"""With ``batch_size=None``, a batch holds at most this many input pixels: eight 256 x 256
images, where batching stops paying on a CPU (the network's weights are read once per batch
instead of once per image), and far less memory than one 2048 x 2048 image needs."""

AUTO_MAX_BATCH = 8
"""With ``batch_size=None``, the most images in one batch."""


def auto_batch_size(height: int, width: int) -> int:
    """Images of ``height`` x ``width`` per batch with ``batch_size=None`` (1 to 8)."""
    return max(1, min(AUTO_MAX_BATCH, AUTO_BATCH_PIXELS // max(1, height * width)))


def cpu_streams(model: TrainedModel, protocol: str = "eval") -> int:
    """How many batches [`translate_files`][p2pkit.inference.translate_files] runs at once.

    Two on a CPU with at least two torch threads, each batch in its own thread with half the
    threads: translating 96 facades val images with ``unet_256`` on a 2-core CPU, two batches
    of 4 images at once with one thread each did 12.6-12.9 images/s against 11.5-11.7 for one
    batch of 8 with two threads (files read and written as ``translate`` does;
    docs/performance.md). The network alone is no faster this way (12.5 against 13.0 images/s
    without files); the gain is that a two-thread convolution's threads meet at the end of
    every layer, so decoding or encoding a file on one core held the other up each time, and a
    single-threaded stream does not wait for the other core. One stream elsewhere: GPUs, other
    engines (which have their own threading), the paper's protocol, whose dropout draws would
    depend on which batch ran first, and a generator with a module in training mode (each batch
    switches it to eval mode and back, which two threads must not interleave).
    """
    generator = model.generator
    if (
        protocol != "eval"
        or model.device.type != "cpu"
        or not isinstance(generator, torch.nn.Module)
        or any(m.training for m in generator.modules())
        or torch.get_num_threads() < 2
    ):
        return 1
    return 2


def translate_files(
    model: TrainedModel,
    files: list[Path],
    *,
    layout: str = "single",
    resize: int | None = None,
    batch_size: int | None = 1,
    tile: int | None = None,
    overlap: int = 32,
    protocol: str = "eval",
    autocast_dtype: torch.dtype | None = None,
    streams: int | None = None,
) -> Iterator[tuple[Path, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Translate ``files``; yields ``(path, input_rgb, output_rgb, target_rgb | None)``.

    Each file is read through the dataset layout ``layout`` (default ``single``: each file is
    one input image; see [`read_input`][p2pkit.inference.read_input]), a few files ahead in a
    background thread, so decoding overlaps with the network. Consecutive images of one size are
    batched ``batch_size`` at a time (None:
    [`auto_batch_size`][p2pkit.inference.auto_batch_size] for their size, split between the
    streams); batching changes the output only by float rounding. ``streams`` batches run at
    once, each in its own thread with an equal share of torch's threads (None:
    [`cpu_streams`][p2pkit.inference.pipeline.cpu_streams], and 1 for a single file), and are
    yielded in input order. Any
    size works (the generator's input is padded to its multiple and cropped back). Each tensor
    is (3, H, W) in [-1, 1] on the CPU; the target is None unless the layout stores one and
    the task has a target side.
    """
    from p2pkit.data.batching import read_ahead, same_shape_runs
    from p2pkit.inference.tensors import translate_tensor
    from p2pkit.models import inference_protocol

    multiple = getattr(model.generator, "size_multiple", 1)
    if streams is None:  # one file (an upload to serve) keeps every thread for itself
        streams = cpu_streams(model, protocol) if len(files) > 1 else 1
    if streams < 1:
        raise ValueError(f"streams must be at least 1, not {streams}")

    Batch = list[tuple[Path, torch.Tensor, torch.Tensor | None]]
    Result = list[tuple[Path, torch.Tensor, torch.Tensor, torch.Tensor | None]]

    def translate_batch(batch: Batch, size: int) -> Result:
        x = torch.cat([model.task.make_input(a) for _, a, _ in batch]).to(model.device)
        with inference_protocol(model.generator, protocol):
            y = translate_tensor(
                model.generator,
                x,
                multiple=multiple,
                tile=tile,
                overlap=overlap,
                autocast_dtype=autocast_dtype,
                batch_size=size,
            )
        x, y = x.float().cpu(), y.float().cpu()
        x_rgb, y_rgb = model.task.to_rgb(x, y)
        results = []
        for i, (path, _, b) in enumerate(batch):
            target = None
            if b is not None and model.task.needs_target:
                target = model.task.to_rgb(x[i : i + 1], b)[1][0]
            results.append((path, x_rgb[i], y_rgb[i], target))
        return results

    def batch_size_for(run: Batch) -> int:
        if batch_size is not None:
            return batch_size
        return max(1, auto_batch_size(*run[0][1].shape[-2:]) // streams)

    limit = batch_size or AUTO_MAX_BATCH
    read = input_reader(model, layout)
    inputs = read_ahead(
        ((path, *_read_sides(read, path, resize)) for path in files), depth=2 * limit
    )
    batches = (
        (run[start : start + size], size)
        for run in same_shape_runs(inputs, limit, key=lambda item: tuple(item[1].shape))
        for size in [batch_size_for(run)]
        for start in range(0, len(run), size)
    )
    if streams == 1:
        for batch, size in batches:
            yield from translate_batch(batch, size)
        return

    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(
        max_workers=streams,
        thread_name_prefix="p2pkit-translate",
        initializer=torch.set_num_threads,
        initargs=(max(1, threads // streams),),
    )
    running: deque[Future[Result]] = deque()
    try:
        for batch, size in batches:
            running.append(pool.submit(translate_batch, batch, size))
            while len(running) > streams:
                yield from running.popleft().result()
        while running:
            yield from running.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        # The workers' set_num_threads also set the default a new thread starts with.
        torch.set_num_threads(threads)


class WriteBehind:
    """Runs output writes in one background thread, in order, a bounded number behind.

    PNG encoding releases the interpreter lock, so writing image ``i`` overlaps with
    translating image ``i + 1``. A failed write is raised by the next
    [`submit`][p2pkit.inference.WriteBehind.submit] or by leaving the ``with`` block, which
    waits for every write.

    Args:
        depth: the most writes queued but not finished; it bounds the images held in memory.
    """

    def __init__(self, depth: int = 16) -> None:
        self.depth = depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="p2pkit-write")
        self._queued: deque[Future[None]] = deque()

    def submit(self, write: Callable[..., None], *args: object) -> None:
        """Queue ``write(*args)``; waits while ``depth`` writes are queued."""
        while self._queued and (self._queued[0].done() or len(self._queued) >= self.depth):
            self._queued.popleft().result()
        self._queued.append(self._pool.submit(write, *args))

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                while self._queued:
                    self._queued.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
