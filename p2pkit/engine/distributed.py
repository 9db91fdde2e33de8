"""Training in several processes with PyTorch's own engine (``torch.distributed`` and torchrun).

p2pkit starts no processes of its own making: ``torchrun`` (or ``p2pkit run recipe NAME
--nproc N``, which calls the same elastic launcher through its Python API) starts one
process per device and sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous
variables. [`init_distributed`][p2pkit.engine.distributed.init_distributed] reads them, joins the
process group (``nccl`` on CUDA, ``gloo`` on a CPU) and pins the process to the device of its
``LOCAL_RANK``.

What a process does with its rank is decided in the trainer: every rank trains on its
shard of each epoch ([`epoch_shard`][p2pkit.engine.distributed.epoch_shard]), gradients are averaged
by ``DistributedDataParallel``, and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from p2pkit.config import DIST_BACKENDS
from p2pkit.errors import ConfigError

BACKENDS = DIST_BACKENDS

# Exit status of a run stopped by SIGTERM after saving its checkpoint (BSD's
# EX_TEMPFAIL, "try again later"): a batch script requeues the job on it.
EXIT_PREEMPTED = 75

# torchrun sets these for every worker; seeing them means "you are one of N processes".
_LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (or an elastic launch) as one worker."""
    return all(v in os.environ for v in _LAUNCHER_VARIABLES)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) training job.

    Attributes:
        rank: global rank, 0 .. world_size - 1.
        local_rank: rank on this machine; picks the CUDA device.
        world_size: number of processes.
        backend: the ``torch.distributed`` backend, or None when no process group
            was started (a plain single-process run).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether a process group is up (also for a torchrun job of one process)."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes run files, logs and checkpoints."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every process reaches this point (no-op without a process group)."""
        if self.enabled:
            import torch.distributed as dist

            if self.backend == "nccl":
                dist.barrier(device_ids=[torch.cuda.current_device()])
            else:
                dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all processes, in place; returned for chaining."""
        if self.enabled and self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process (picklable objects only)."""
        if not self.enabled or self.world_size == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order, on every process."""
        if not self.enabled or self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


SINGLE = DistContext()


def resolve_backend(setting: str, device: torch.device) -> str:
    """``train.dist_backend``: ``auto`` is ``nccl`` for CUDA devices and ``gloo`` otherwise."""
    if setting not in BACKENDS:
        raise ConfigError(
            f"train.dist_backend must be one of {', '.join(BACKENDS)}, not {setting!r}"
        )
    if setting == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if setting == "nccl" and device.type != "cuda":
        raise ConfigError(
            "train.dist_backend nccl needs CUDA GPUs; use gloo (or auto) to train on CPUs"
        )
    return setting


def process_device(device: torch.device, local_rank: int) -> torch.device:
    """The device a worker uses: its ``LOCAL_RANK``'s GPU for CUDA, else ``device`` itself."""
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError(
            f"this is local rank {local_rank} but only {count} CUDA GPU(s) are visible; "
            f"start at most {count} processes per machine (--nproc_per_node / --nproc)"
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def init_distributed(
    device: torch.device, backend: str = "auto", timeout_minutes: float = 10.0
) -> tuple[DistContext, torch.device]:
    """Join the torchrun job this process belongs to, or stay a single process.

    Args:
        device: the device the recipe resolved to (``cuda``, ``cpu``...).
        backend: ``train.dist_backend`` (``auto``, ``nccl``, ``gloo``...).
        timeout_minutes: how long a collective may wait for a missing process before
            the job fails, so that a process that dies or hangs stops the job
            instead of leaving the others waiting forever.

    Returns:
        ``(context, device)``: the device is this process's own (``cuda:LOCAL_RANK``).
    """
    if not launched_by_torchrun():
        return SINGLE, device
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local_rank = int(os.environ["LOCAL_RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    name = resolve_backend(backend, device)
    device = process_device(device, local_rank)
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {}
        if device.type == "cuda":
            # Binds NCCL to this GPU at once instead of guessing it at the first collective.
            kwargs["device_id"] = device
        dist.init_process_group(
            backend=name,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(minutes=timeout_minutes),
            **kwargs,
        )
    return DistContext(rank, local_rank, world_size, name), device


def shutdown_distributed() -> None:
    """Leave the process group (if one is up), so the job ends without warnings."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def iterations_for(images: int, world_size: int, batch_size: int) -> int:
    """Iterations each process runs to cover ``images`` images once (padded shards)."""
    if images <= 0:
        return 0
    per_rank = -(-images // world_size)
    return -(-per_rank // batch_size)


def epoch_shard(permutation: torch.Tensor, start: int, rank: int, world_size: int) -> torch.Tensor:
    """This process's share of the images of an epoch from position ``start`` on.

    Every process draws the same ``permutation`` of the training set (seeded by the
    run's seed and the epoch, as ``DistributedSampler.set_epoch`` does). The images
    not yet seen, ``permutation[start:]``, are padded by wrapping around to a multiple
    of ``world_size`` and dealt out round-robin: rank ``r`` takes positions
    ``r, r + W, r + 2W...``. So iteration ``k`` at ``B`` images per process covers
    exactly ``permutation[start + k*B*W : start + (k+1)*B*W]`` across the job, the
    same images one process would see at batch ``B*W``, and a run resumed with
    another number of processes continues at the same image.

    Args:
        permutation: (N,) int64, the epoch's order of the N training images.
        start: images of this epoch already trained on by the whole job.
        rank: this process's rank.
        world_size: the number of processes.

    Returns:
        (ceil((N - start) / W),) int64 indices into the training set.
    """
    rest = permutation[start:]
    if world_size == 1 or len(rest) == 0:
        return rest
    per_rank = -(-len(rest) // world_size)
    padding = per_rank * world_size - len(rest)
    if padding:
        repeats = -(-padding // len(rest))
        rest = torch.cat([rest, rest.repeat(repeats)[:padding]])
    return rest[rank::world_size]


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of the ``n`` training images in ``epoch``: the same on every process.

    Drawn from a generator of its own, seeded by ``seed`` and ``epoch``, so it does not
    depend on how many random numbers augmentation or dropout drew before.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


@contextlib.contextmanager
def main_process_first(ctx: DistContext) -> Iterator[None]:
    """Let rank 0 do something (download, generate data) while the others wait, then them."""
    if not ctx.is_main:
        ctx.barrier()
    try:
        yield
    finally:
        if ctx.is_main:
            ctx.barrier()


def check_syncbatch(recipe: Any, device: torch.device) -> bool:
    """Whether the recipe asks for ``norm = "syncbatch"``; refused off CUDA in one line."""
    wanted = [
        section
        for section in ("generator", "discriminator")
        if getattr(recipe, section).options.get("norm") == "syncbatch"
    ]
    if wanted and device.type != "cuda":
        raise ConfigError(
            f'{wanted[0]}.norm = "syncbatch" pools BatchNorm statistics over GPUs and needs '
            f'CUDA (this run uses {device.type}); use "batch" for statistics per process'
        )
    return bool(wanted)


def ddp_options(device: torch.device) -> dict[str, Any]:
    """DDP keyword arguments: this process's GPU, and no buffer sync before each forward.

    Newer torch calls the buffer switch ``forward_sync_buffers`` (the old name warns);
    either way buffers are made equal once, when DDP is built.
    """
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    options: dict[str, Any] = {"device_ids": [device.index] if device.type == "cuda" else None}
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        options["forward_sync_buffers"] = False
    else:
        options["broadcast_buffers"] = False
    return options


# ------------------------------------------------------------------------ launching


def default_threads(nproc: int) -> int:
    """Intra-op threads per worker when N processes share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(nproc, 1))


def launch(nproc: int, args: Sequence[str], *, max_restarts: int = 0) -> int:
    """Run ``python -m p2pkit ARGS`` in ``nproc`` processes on this machine.

    This is what ``torchrun --standalone --nproc_per_node=N -m p2pkit ARGS`` does, done
    through torch's elastic launcher API (``torch.distributed.launcher.api``): a c10d
    rendezvous on a free local port, one worker per process with ``RANK``,
    ``LOCAL_RANK`` and ``WORLD_SIZE`` set, and the whole job stopped as soon as one
    worker fails.

    Args:
        nproc: number of worker processes (GPUs on a CUDA machine).
        args: the p2pkit command line the workers run (without ``--nproc``).
        max_restarts: how often the elastic agent restarts a failed job.

    Returns:
        0 when every worker succeeded, else the exit code of the first that failed.
    """
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise ConfigError(f"--nproc must be 1 or more, not {nproc}")
    if "OMP_NUM_THREADS" not in os.environ:
        # Workers would otherwise each start one thread per core and fight over them.
        os.environ["OMP_NUM_THREADS"] = str(default_threads(nproc))
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=max_restarts,
        monitor_interval=0.1,
    )
    # The agent logs every worker failure with a traceback-sized record; the worker
    # has already printed its own one-line error, so only odd deaths are reported.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, sys.executable)("-m", "p2pkit", *args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode not in (2, EXIT_PREEMPTED, 130):
            how = (
                f"was killed by {signal.Signals(-failure.exitcode).name}"
                if failure.exitcode < 0
                else f"exited with code {failure.exitcode}"
            )
            print(f"error: the worker of rank {rank} {how}; see its output above", file=sys.stderr)
        return failure.exitcode if failure.exitcode > 0 else 1
    except SignalException as exc:
        # The launcher itself was signalled: the agent passed SIGTERM on to the
        # workers and gave them time to save, as torchrun does.
        return EXIT_PREEMPTED if exc.sigval == signal.SIGTERM else 128 + int(exc.sigval)
    return 0


__all__ = [
    "BACKENDS",
    "EXIT_PREEMPTED",
    "SINGLE",
    "DistContext",
    "check_syncbatch",
    "ddp_options",
    "default_threads",
    "epoch_permutation",
    "epoch_shard",
    "init_distributed",
    "iterations_for",
    "launch",
    "launched_by_torchrun",
    "main_process_first",
    "process_device",
    "resolve_backend",
    "shutdown_distributed",
]
