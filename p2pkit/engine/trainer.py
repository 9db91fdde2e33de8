"""The training loop of section 3.3 (Goodfellow et al.'s alternation) with the choices of 6.2.

Per iteration, one gradient step on the discriminator, then one on the generator,
both with Adam (lr 2e-4, betas (0.5, 0.999)); the learning rate stays constant for
``train.epochs`` epochs, then decays linearly to zero over ``train.epochs_decay``.

A run lives in one folder (``runs/NAME`` by default)::

    recipe.toml      the resolved recipe
    env.json         versions, device and loaded plugins
    losses.jsonl     loss history, one JSON object per logged iteration
    samples/         input | output | target grids
    checkpoints/     step-XXXXXXXX/ folders and a ``latest`` pointer

Why this module is long: it is one class, the training state machine (set-up, what a
checkpoint saves and restores, the two steps, samples, and the loop with its stops and
saves), whose parts share the same state (networks, optimisers, counters, the process
group). What does not share that state lives elsewhere: building (`build`), optimisers
(`optim`), the display (`display`), the loss history (`history`), grids (`grids`),
checkpoints (`checkpoint`), processes (`distributed`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

import p2pkit
from p2pkit.config import Recipe, recipe_from_dict, recipe_to_dict, recipe_to_toml
from p2pkit.engine.build import (
    CHECKPOINT_FORMAT,
    build_dataset,
    build_networks,
    build_objective,
    build_task,
    check_resumable,
    check_run_format,
    stored_specs,
    training_dataset_options,
)
from p2pkit.engine.device import resolve_speed
from p2pkit.engine.display import TrainingDisplay
from p2pkit.engine.distributed import (
    EXIT_PREEMPTED,
    DistContext,
    check_syncbatch,
    ddp_options,
    epoch_permutation,
    epoch_shard,
    init_distributed,
    iterations_for,
    process_device,
)
from p2pkit.engine.environment import environment_info
from p2pkit.engine.grids import save_grid
from p2pkit.engine.history import LossHistory
from p2pkit.engine.optim import linear_decay, make_adam
from p2pkit.engine.tensorboard import TensorBoardLog, require_tensorboard
from p2pkit.errors import ConfigError, TrainingDiverged


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and CUDA)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    """What [`Trainer.fit`][p2pkit.engine.trainer.Trainer.fit] leaves behind.

    ``stop_signal`` names the signal that stopped the run early (``"SIGINT"`` for
    Ctrl-C, ``"SIGTERM"`` for a cluster's pre-emption), or is None.
    """

    run_dir: Path
    checkpoint: Path | None
    iterations: int
    epochs_done: int
    interrupted: bool
    seconds: float
    stop_signal: str | None = None


class Trainer:
    """Trains a recipe in a run folder; resumable bit for bit on CPU.

    Under torchrun (or ``p2pkit run recipe NAME --nproc N``) every process builds a
    Trainer; each trains on its shard of every epoch, ``DistributedDataParallel``
    averages the gradients, and rank 0 alone writes the run folder.

    Args:
        recipe: the resolved recipe (``data.root`` set).
        run_dir: the run folder; created if needed. Every process must pass the same.
        resume: continue from the run folder's latest checkpoint.
        progress: show a live progress display (on a terminal; elsewhere one plain
            line per ``train.log_every`` iterations).
        console: a ``rich.console.Console`` for messages (a quiet one if None).
        dist: the process group this process belongs to; None joins the torchrun
            job described by the environment, if any.
    """

    def __init__(
        self,
        recipe: Recipe,
        run_dir: Path,
        *,
        resume: bool = False,
        progress: bool = True,
        console: Any = None,
        dist: DistContext | None = None,
    ) -> None:
        from rich.console import Console

        self.recipe = recipe
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.show_progress = progress
        self.console = console or Console(quiet=True)
        self.dist = dist
        self._stop_signal: str | None = None

    @property
    def _stop_requested(self) -> bool:
        return self._stop_signal is not None

    # ------------------------------------------------------------------- set-up
    def _setup(self) -> None:
        from p2pkit.data.augment import PairAugment
        from p2pkit.engine.allocator import tune_allocator

        recipe, train = self.recipe, self.recipe.train
        tune_allocator()
        if not recipe.data.root:
            raise ConfigError("data.root is empty: pass --data-root DIR or set data.root")
        speed = resolve_speed(train.device, train.precision, train.channels_last, train.compile)
        if self.dist is None:
            self.dist, device = init_distributed(
                speed.device, train.dist_backend, train.dist_timeout_minutes
            )
        else:
            device = (
                process_device(speed.device, self.dist.local_rank)
                if self.dist.enabled
                else speed.device
            )
        self.speed = speed = replace(speed, device=device)
        self._check_syncbatch()
        if train.tensorboard:
            require_tensorboard()
        # The same seed everywhere: every process starts from identical weights.
        seed_everything(train.seed)
        self.task = build_task(recipe.task)
        self.objective = build_objective(recipe.objective)
        self.G, self.D = build_networks(recipe, self.task, self.objective)
        self._check_crop_size()
        # Augmentation and dropout draw from here on: different on each process,
        # reproducible for a given seed.
        seed_everything(train.seed + self.dist.rank)
        self.dataset = self._load_split(recipe.data.train_split, recipe.data.max_images or None)
        if len(self.dataset) == 0:
            raise ConfigError(f"{recipe.data.root}: no training images")
        self._check_image_size()
        self.data_on_device = self._move_data_to_device()
        self.augment = PairAugment(
            recipe.data.load_size, recipe.data.crop_size, recipe.data.flip, recipe.data.preprocess
        )
        self.eval_augment = PairAugment(
            recipe.data.load_size,
            recipe.data.crop_size,
            False,
            recipe.data.preprocess,
            deterministic=True,
        )
        memory_format = torch.channels_last if speed.channels_last else torch.preserve_format
        if self._syncbatch:
            self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
            if self.D is not None:
                self.D = nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
        self.G.to(device, memory_format=memory_format)
        self.G_ema = None
        if train.ema_decay > 0:
            from p2pkit.engine.ema import make_generator_ema

            self.G_ema = make_generator_ema(self.G, train.ema_decay, warmup=train.ema_warmup)
        self.objective.to(device)
        betas = (train.beta1, train.beta2)
        self.opt_G = make_adam(self.G.parameters(), train.lr, betas)
        self.sched_G = torch.optim.lr_scheduler.LambdaLR(
            self.opt_G, linear_decay(train.epochs, train.epochs_decay)
        )
        self.opt_D = self.sched_D = None
        if self.D is not None:
            self.D.to(device, memory_format=memory_format)
            self.opt_D = make_adam(self.D.parameters(), train.lr, betas)
            self.sched_D = torch.optim.lr_scheduler.LambdaLR(
                self.opt_D, linear_decay(train.epochs, train.epochs_decay)
            )
        # fp16 needs loss scaling; bf16 has fp32's range and does not.
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=speed.autocast_dtype is torch.float16
        )
        self._wrap_networks()
        self.history = LossHistory(self.run_dir / "losses.jsonl", write=self.dist.is_main)
        self.tensorboard = None
        self.epoch = 0
        self.iteration = 0
        self.images = 0  # images of the current epoch the whole job has trained on
        self._resumed_permutation: torch.Tensor | None = None

    def _wrap_networks(self) -> None:
        """The modules the steps call: DDP-wrapped under torchrun, compiled if asked.

        G and D get a ``DistributedDataParallel`` each, since each step updates one of
        them. ``broadcast_buffers=False`` keeps BatchNorm statistics per process (and
        lets D run twice, on real and fake pairs, before its backward pass). The
        generator's step calls the bare D: D is frozen then, and its DDP wrapper
        would otherwise wait for gradients that never come.
        """
        self.G_step: nn.Module = self.G
        self.D_step: nn.Module | None = self.D
        self.D_for_G: nn.Module | None = self.D
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            device = self.speed.device
            options = ddp_options(device)
            self.G_step = DDP(self.G, **options)
            if self.D is not None:
                self.D_step = DDP(self.D, **options)
        if self.speed.compile:
            mode = self.recipe.train.compile_mode
            options = {} if mode == "default" else {"mode": mode}
            self.G_step = torch.compile(self.G_step, **options)
            if self.D is not None:
                self.D_step = torch.compile(self.D_step, **options)
                if self.dist.enabled:
                    self.D_for_G = torch.compile(self.D, **options)
                else:
                    self.D_for_G = self.D_step

    def _check_syncbatch(self) -> None:
        self._syncbatch = check_syncbatch(self.recipe, self.speed.device)

    def _move_data_to_device(self) -> bool:
        """Keep the decoded training set on the GPU when it fits in a quarter of its memory.

        A batch is then an index select on the GPU: no host-to-device copy per
        iteration (facades' 400 pairs at 256 px are about 160 MB).
        """
        device = self.speed.device
        if device.type != "cuda":
            return False
        size = self.dataset.a.nbytes + (0 if self.dataset.b is None else self.dataset.b.nbytes)
        free, _ = torch.cuda.mem_get_info(device)
        if size > free // 4:
            return False
        self.dataset.to(device)
        return True

    def _check_crop_size(self) -> None:
        crop = self.recipe.data.crop_size
        if self.recipe.data.preprocess != "none" and crop % self._size_multiple():
            raise ConfigError(
                f"data.crop_size {crop} is not a multiple of {self._size_multiple()}, which "
                f"generator '{self.recipe.generator.name}' needs; {self._size_advice(crop)}"
            )

    def _check_image_size(self) -> None:
        """With ``preprocess = "none"`` the network sees the stored images as they are."""
        if self.recipe.data.preprocess != "none":
            return
        height, width = self.dataset.a.shape[-2:]
        multiple = self._size_multiple()
        if height % multiple or width % multiple:
            raise ConfigError(
                f"{self.dataset.root}: images are {height}x{width} but generator "
                f"'{self.recipe.generator.name}' needs sides that are multiples of {multiple}, "
                'and data.preprocess = "none" keeps them as they are; set data.preprocess = '
                f'"resize" (to data.crop_size) or {self._size_advice(min(height, width))}'
            )

    def _size_multiple(self) -> int:
        return int(getattr(self.G, "size_multiple", 1))

    def _size_advice(self, size: int) -> str:
        """What to change so a generator takes ``size`` px: its depth, else the size."""
        from p2pkit.registry import get_registry

        name, multiple = self.recipe.generator.name, self._size_multiple()
        if "depth" in get_registry("generators").options(name) and size >= 4:
            # A U-Net halves the size at each level: the deepest that divides `size`.
            depth = max(d for d in range(1, 13) if size % 2**d == 0 or d == 1)
            if depth >= 2:
                return f"set generator.depth = {depth} (multiples of {2**depth})"
        nearest = max(multiple, round(size / multiple) * multiple)
        return f"use a size that is a multiple of {multiple}, such as {nearest}"

    def _load_split(self, split: str, max_images: int | None) -> Any:
        data = self.recipe.data
        options = training_dataset_options(data)
        return build_dataset(data, self.task, split, max_images=max_images, **options)

    # ------------------------------------------------------------ checkpointing
    def _modules(self) -> dict[str, nn.Module]:
        mods = {"generator": self.G}
        if self.G_ema is not None:
            mods["generator_ema"] = self.G_ema.module
        if self.D is not None:
            mods["discriminator"] = self.D
        return mods

    @property
    def sample_generator(self) -> nn.Module:
        """The network that sample grids show: the EMA weights when they are kept."""
        return self.G if self.G_ema is None else self.G_ema.module

    def _meta(self) -> dict[str, Any]:
        """What a checkpoint records besides tensors: how the run was made, once, and where
        it stands (see [`p2pkit.engine.build`][p2pkit.engine.build])."""
        return {
            "format": CHECKPOINT_FORMAT,
            "networks": stored_specs(self._modules()),
            "recipe": recipe_to_dict(self.recipe),
            "counters": {
                "epoch": self.epoch,
                "iteration": self.iteration,
                "images": self.images,
                "world_size": self.dist.world_size,
                "batch_size": self.recipe.train.batch_size,
            },
        }

    def save(self) -> Path | None:
        """Write a checkpoint of the current state (atomic); every process must call it.

        Rank 0 writes it, with the RNG states of all processes; the others wait at a
        barrier until it is on disk. Returns the checkpoint folder (None on ranks > 0).
        """
        from p2pkit.engine.checkpoint import capture_rng_state, save_checkpoint

        self._check_finite_losses()
        self._check_finite_weights()
        states = self.dist.gather_objects(capture_rng_state()) if self.dist.world_size > 1 else []
        path = None
        if self.dist.is_main:
            extra: dict[str, torch.Tensor] = {}
            rank_rng: dict[str, Any] = {}
            for rank, (tensors, state) in enumerate(states):
                if rank == 0:
                    continue  # rank 0's own states are the checkpoint's usual ones
                extra.update({f"rank{rank}/{key}": t for key, t in tensors.items()})
                rank_rng[str(rank)] = state
            optimizers = {"generator": self.opt_G}
            schedulers = {"generator": self.sched_G}
            if self.D is not None:
                optimizers["discriminator"] = self.opt_D
                schedulers["discriminator"] = self.sched_D
            if self.scaler.is_enabled():
                schedulers["grad_scaler"] = self.scaler
            meta = self._meta()
            if rank_rng:
                meta["rank_rng"] = rank_rng
            path = save_checkpoint(
                self.run_dir,
                step=self.iteration,
                modules=self._modules(),
                optimizers=optimizers,
                schedulers=schedulers,
                meta=meta,
                keep_last=self.recipe.train.keep_last or None,
                tensors=extra,
            )
        self.dist.barrier()
        self._last_save = time.monotonic()
        return path

    def _restore(self) -> None:
        from p2pkit.engine.checkpoint import load_checkpoint

        ckpt = load_checkpoint(self.run_dir)
        check_run_format(ckpt.meta, ckpt.path / "meta.json")
        check_resumable(ckpt.meta, ckpt.path / "meta.json")
        built = self._meta()["networks"]
        modules = self._modules()
        if "generator_ema" in modules and "generator_ema" not in ckpt.meta.get("modules", {}):
            # The EMA was switched on for the resumed part: it starts from the
            # restored generator, as it would have at step 0.
            ema = modules.pop("generator_ema")
            ckpt.load_module("generator", ema, expected_options=built["generator"]["options"])
        for name, module in modules.items():
            # The options this run built the network with: a --set that changed one
            # since the checkpoint is named in the error instead of a state_dict wall.
            ckpt.load_module(name, module, expected_options=built[name]["options"])
        ckpt.load_optimizer("generator", self.opt_G)
        ckpt.load_scheduler("generator", self.sched_G)
        if self.D is not None:
            ckpt.load_optimizer("discriminator", self.opt_D)
            ckpt.load_scheduler("discriminator", self.sched_D)
        if self.scaler.is_enabled() and "grad_scaler" in ckpt.meta.get("schedulers", {}):
            ckpt.load_scheduler("grad_scaler", self.scaler)
        counters = ckpt.meta["counters"]
        self.epoch = counters["epoch"]
        self.iteration = counters["iteration"]
        saved_world = int(counters.get("world_size", 1))
        saved_batch = int(counters.get("batch_size", self.recipe.train.batch_size))
        if "images" in counters:
            self.images = int(counters["images"])
        else:  # written by p2pkit before distributed training: batches of one process
            self.images = min(counters["position"] * saved_batch, len(self.dataset))
        perm = ckpt.meta.get("permutation")
        if perm is not None and self.images:
            # Older checkpoints stored the epoch's order, drawn from the global RNG.
            self._resumed_permutation = torch.tensor(perm, dtype=torch.long)
        self._restore_rng(ckpt, saved_world)
        self.history.truncate_after(self.iteration)
        world, batch = self.dist.world_size, self.recipe.train.batch_size
        self.console.print(
            f"resumed {self.run_dir} at epoch {self.epoch + 1}, iteration {self.iteration}"
            + (f", image {self.images} of the epoch" if self.images else "")
        )
        if saved_world * saved_batch != world * batch:
            self.console.print(
                f"note: the global batch changed from {saved_world * saved_batch} "
                f"({_processes(saved_world)} x {saved_batch}) to {world * batch} "
                f"({_processes(world)} x {batch}); the run continues at the same image"
            )

    def _restore_rng(self, ckpt: Any, saved_world: int) -> None:
        """Every process gets back its own RNG state; new ranks get a fresh seed."""
        from p2pkit.engine.checkpoint import restore_rng_state

        rank = self.dist.rank
        if rank == 0:
            ckpt.restore_rng()
            return
        state = (ckpt.meta.get("rank_rng") or {}).get(str(rank))
        if state is None or saved_world != self.dist.world_size:
            # A process the saved run did not have: reproducible, though not the
            # stream an uninterrupted run would have drawn.
            seed_everything(self.recipe.train.seed + rank + 7919 * self.iteration)
            return
        prefix = f"extra/rank{rank}/"
        tensors = {k[len(prefix) :]: v for k, v in ckpt.tensors.items() if k.startswith(prefix)}
        restore_rng_state(tensors, state)

    # -------------------------------------------------------------- the steps
    def _to_device(self, t: torch.Tensor | None) -> torch.Tensor | None:
        from p2pkit.data.images import to_float

        if t is None:
            return None
        t = t.to(self.speed.device, non_blocking=True)
        return to_float(t, self.dataset.max_value)

    def _prepare(
        self, batch: dict[str, Any], augment: nn.Module
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a = self._to_device(batch["a"])
        b = self._to_device(batch.get("b"))
        a, b = augment(a, b)
        x, y = self.task.make_pair(a, b)
        if self.speed.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
            y = y.contiguous(memory_format=torch.channels_last)
        return x, y

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration: a D step, then a G step (section 3.3).

        Args:
            x: inputs (N, in_channels, H, W) in [-1, 1].
            y: targets (N, out_channels, H, W) in [-1, 1].

        Returns:
            the loss terms of both steps (detached scalars on the training device;
            reading them is left to the logger, so no step waits for the device).
        """
        speed, objective = self.speed, self.objective
        with speed.autocast():
            fake = self.G_step(x)
        terms: dict[str, torch.Tensor] = {}
        if self.D is not None:
            self.D.requires_grad_(True)
            self.opt_D.zero_grad(set_to_none=True)
            with speed.autocast():
                d = objective.discriminator_loss(self.D_step, x, y, fake)
            self.scaler.scale(d.total).backward()
            self.scaler.step(self.opt_D)
            terms.update(d.terms)
            # D's weights get no gradient from the generator's step.
            self.D.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        with speed.autocast():
            g = objective.generator_loss(self.D_for_G, x, y, fake)
        self.scaler.scale(g.total).backward()
        self.scaler.step(self.opt_G)
        self.scaler.update()
        if self.G_ema is not None:
            self.G_ema.update(self.G, step=self.iteration + 1)
        terms.update(g.terms)
        return terms

    # ------------------------------------------------------------------ samples
    def _sample_batch(self) -> dict[str, Any]:
        if not hasattr(self, "_samples"):
            n = min(4, len(self.dataset))
            split = self.recipe.data.val_split
            try:
                val = self._load_split(split, n)
                source = val if len(val) else self.dataset
                reason = "it is empty"
            except p2pkit.P2PKitError as exc:
                source, reason = self.dataset, str(exc)
            if source is self.dataset:
                # Said once, so nobody mistakes training images for held-out results.
                self.console.print(
                    f"note: sample grids show training images: data.val_split '{split}' "
                    f"cannot be used ({reason})"
                )
            self._samples = source.batch(list(range(min(n, len(source)))))
            self._samples_max = source.max_value
        return self._samples

    @torch.no_grad()
    def write_samples(self) -> Path | None:
        """Save an input | output | target grid of up to 4 validation images (rank 0 only)."""
        from p2pkit.models import inference_protocol

        if not self.dist.is_main:
            return None
        batch = self._sample_batch()
        state = torch.get_rng_state()  # samples must not perturb the training RNG
        try:
            x, y = self._prepare(batch, self.eval_augment)
            G = self.sample_generator
            with inference_protocol(G, "eval"), self.speed.autocast():
                fake = G(x).float()
        finally:
            torch.set_rng_state(state)
        x_rgb, fake_rgb = self.task.to_rgb(x.float(), fake)
        _, y_rgb = self.task.to_rgb(x.float(), y.float())
        rows = [[x_rgb[i], fake_rgb[i], y_rgb[i]] for i in range(x.shape[0])]
        name = f"iter{self.iteration:08d}.png"
        path = save_grid(rows, self.run_dir / "samples" / name)
        if self.tensorboard is not None:
            self.tensorboard.add_grid(path, self.iteration)
        return path

    # --------------------------------------------------------------------- run
    def _write_run_files(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "recipe.toml").write_text(recipe_to_toml(self.recipe))
        info = environment_info(self.speed)
        info["distributed"] = {
            "world_size": self.dist.world_size,
            "backend": self.dist.backend,
        }
        (self.run_dir / "env.json").write_text(json.dumps(info, indent=2) + "\n")

    def _install_stop_handlers(self) -> dict[int, Any]:
        """First Ctrl-C or a SIGTERM: finish the iteration, save, stop.

        A cluster's pre-emption (Slurm, Kubernetes, ``scancel``) sends SIGTERM and
        waits a grace period before SIGKILL; the run uses it to save.
        """

        def handler(signum: int, frame: Any) -> None:
            self._stop_signal = self._stop_signal or signal.Signals(signum).name
            if signum == signal.SIGINT:  # a second Ctrl-C stops at once
                signal.signal(signal.SIGINT, signal.default_int_handler)

        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not in the main thread
                break
        return previous

    def fit(self) -> TrainResult:
        """Train until the schedule ends, ``max_iterations``, Ctrl-C or SIGTERM; always checkpoints.

        Raises:
            RunFolderLocked: another process trains in the run folder.
        """
        from p2pkit.engine.lock import RunLock

        lock = RunLock(self.run_dir)
        owns_group = self.dist is None
        # Rank 0 alone writes, so it alone locks; before _setup joins the process group,
        # torchrun's RANK says which process this is.
        is_main = self.dist.is_main if self.dist else os.environ.get("RANK", "0") == "0"
        try:
            if is_main and self.run_dir.is_dir():
                lock.acquire()  # a busy folder is refused before the set-up's work
            self._setup()  # writes nothing: a bad setting leaves no run folder behind
            if is_main:
                lock.acquire()
            if owns_group and not self.dist.enabled:
                owns_group = False
            if self.dist.is_main:
                self._clean_leftovers()
            if self.resume:
                self._restore()
            if self.dist.is_main:
                self._write_run_files()
                if self.recipe.train.tensorboard:
                    self.tensorboard = TensorBoardLog(self.run_dir / "tensorboard")
            return self._fit()
        finally:
            if getattr(self, "tensorboard", None) is not None:
                self.tensorboard.close()
            lock.release()
            if owns_group and self.dist is not None and self.dist.enabled:
                from p2pkit.engine.distributed import shutdown_distributed

                shutdown_distributed()

    def _clean_leftovers(self) -> None:
        from p2pkit.engine.checkpoint import clean_leftovers

        removed = clean_leftovers(self.run_dir)
        if removed:
            self.console.print(
                f"removed {len(removed)} leftover(s) of an interrupted save in "
                f"{self.run_dir / 'checkpoints'}: {', '.join(removed)}"
            )

    def _total_iterations(self, n: int) -> int:
        """The iteration the schedule ends at, from where the run stands now."""
        train = self.recipe.train
        world, batch = self.dist.world_size, train.batch_size
        total_epochs = train.epochs + train.epochs_decay
        remaining = 0
        if self.epoch < total_epochs:
            remaining = iterations_for(n - self.images, world, batch)
            remaining += (total_epochs - self.epoch - 1) * iterations_for(n, world, batch)
        return self.iteration + remaining

    def _start_line(self, n: int, total_iterations: int, scheduled: int) -> str:
        train = self.recipe.train
        world, batch = self.dist.world_size, train.batch_size
        total_epochs = train.epochs + train.epochs_decay
        per_epoch = iterations_for(n, world, batch)
        parts = [
            f"training {self.recipe.name}: {n} images, {total_epochs} epochs "
            f"({per_epoch} iterations each)"
        ]
        if total_iterations < scheduled:
            parts.append(f"stopping at iteration {total_iterations} (train.max_iterations)")
        if self.dist.enabled:
            parts.append(
                f"{_processes(world)} ({self.dist.backend}) x batch {batch} = global batch "
                f"{world * batch}"
            )
        else:
            parts.append(f"batch {batch}")
        parts.append(self.speed.describe())
        if self.data_on_device:
            parts.append("training set on the GPU")
        if self.G_ema is not None:
            parts.append(f"generator EMA {train.ema_decay}")
        return ", ".join(parts) + f"; run folder {self.run_dir}"

    def _fit(self) -> TrainResult:
        train = self.recipe.train
        n = len(self.dataset)
        world, rank, batch = self.dist.world_size, self.dist.rank, train.batch_size
        total_epochs = train.epochs + train.epochs_decay
        scheduled = self._total_iterations(n)
        total_iterations = scheduled
        if train.max_iterations:
            total_iterations = min(total_iterations, train.max_iterations)
        self.console.print(self._start_line(n, total_iterations, scheduled))
        previous_handlers = self._install_stop_handlers()
        started = time.perf_counter()
        self._last_save = time.monotonic()
        start_iteration = self.iteration
        checkpoint: Path | None = None
        saved_at = -1
        interrupted = False
        log_every = max(train.log_every, 1)
        self.G.train()
        if self.D is not None:
            self.D.train()
        display = TrainingDisplay(self, total_iterations, start_iteration)
        try:
            with display:
                while self.epoch < total_epochs and not self._done(total_iterations):
                    if self._resumed_permutation is not None:
                        permutation = self._resumed_permutation
                        self._resumed_permutation = None
                    else:
                        permutation = epoch_permutation(train.seed, self.epoch, n)
                    shard = epoch_shard(permutation, self.images, rank, world)
                    for k in range(iterations_for(n - self.images, world, batch)):
                        if self._done(total_iterations) or self._stop_requested:
                            break
                        idx = shard[k * batch : (k + 1) * batch]
                        x, y = self._prepare(self.dataset.batch(idx), self.augment)
                        self.history.accumulate(self.train_step(x, y))
                        self.images = min(n, self.images + batch * world)
                        self.iteration += 1
                        at_log = self.iteration % log_every == 0
                        if at_log:
                            display.log(self._log_row(started, start_iteration))
                        if train.sample_every and self.iteration % train.sample_every == 0:
                            self.write_samples()
                        display.advance(self.epoch + 1, total_epochs)
                        # Processes agree on stopping and on time-based saves at log
                        # points only: agreeing is a collective, and on a GPU a wait.
                        if at_log or not self.dist.enabled:
                            save_due = self._agree_on_stop_and_save()
                            if save_due and self.images < n and not self._stop_requested:
                                checkpoint = self.save()
                                saved_at = self.iteration
                    if self.images < n:
                        break  # stopped inside the epoch: resume continues from here
                    if self.history.means():
                        display.log(self._log_row(started, start_iteration))
                    self.epoch += 1
                    self.images = 0
                    self.sched_G.step()
                    if self.sched_D is not None:
                        self.sched_D.step()
                    last = self.epoch == total_epochs
                    save_due = self._agree_on_stop_and_save()
                    if last or save_due or self.epoch % max(train.save_every, 1) == 0:
                        checkpoint = self.save()
                        saved_at = self.iteration
                    if last or not train.sample_every:
                        self.write_samples()
                    if self._stop_requested:
                        break
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
        stop_signal = self._stop_signal
        interrupted = interrupted or stop_signal is not None
        if self.history.means():
            display.log(self._log_row(started, start_iteration))
        finished_epoch = self.epoch == total_epochs and self.images == 0
        if saved_at != self.iteration:
            checkpoint = self.save()
            self.write_samples()
        if checkpoint is None and self.dist.is_main:
            from p2pkit.engine.checkpoint import find_checkpoint

            checkpoint = find_checkpoint(self.run_dir)
        seconds = time.perf_counter() - started
        done = self.iteration - start_iteration
        rate = done / seconds if seconds > 0 else float("nan")
        verb = "stopped" if interrupted else "finished"
        by = f" by {stop_signal}" if stop_signal else ""
        self.console.print(
            f"{verb}{by} at epoch {self.epoch + (not finished_epoch)}, iteration "
            f"{self.iteration} ({rate:.2f} it/s); checkpoint {checkpoint}"
        )
        return TrainResult(
            self.run_dir,
            checkpoint,
            self.iteration,
            self.epoch,
            interrupted,
            seconds,
            stop_signal,
        )

    def _agree_on_stop_and_save(self) -> bool:
        """Share this process's stop request and save clock; returns whether a save is due.

        In a single process this reads two local values. Under DDP the flags are
        summed over all processes, so that every process stops (after saving) and
        saves at the same iteration, whichever of them got the signal or saw the
        clock pass ``train.save_every_minutes``.
        """
        train = self.recipe.train
        due = bool(
            train.save_every_iterations and self.iteration % train.save_every_iterations == 0
        )
        minutes = train.save_every_minutes
        due = due or bool(minutes and time.monotonic() - self._last_save >= minutes * 60)
        if not self.dist.enabled or self.dist.world_size == 1:
            return due
        flags = torch.tensor([float(self._stop_requested), float(due)], device=self.speed.device)
        self.dist.all_reduce_sum(flags)
        stop, due_anywhere = (bool(v) for v in flags.tolist())
        if stop and not self._stop_requested:
            self._stop_signal = "SIGTERM"  # another process was asked to stop
        # Rank 0's clock decides: it writes the checkpoint.
        return due_anywhere

    def _check_finite_losses(self) -> None:
        """Stop with a one-line error when a loss since the last row is NaN or infinite.

        Read only when the losses are read anyway (a log row, a save), so the check
        costs no extra wait for the device.
        """
        bad = {k: v for k, v in self.history.means().items() if not math.isfinite(v)}
        if bad:
            key, value = next(iter(bad.items()))
            raise TrainingDiverged(
                f"training diverged at iteration {self.iteration}: {key} is {value} "
                f"(in the last {max(self.recipe.train.log_every, 1)} iterations at most); "
                f'{self._last_good()}; lower train.lr, or use train.precision = "fp32"'
            )

    def _check_finite_weights(self) -> None:
        """Never save a network whose weights are NaN or infinite."""
        for name, module in self._modules().items():
            for key, p in module.named_parameters():
                if not bool(torch.isfinite(p).all()):
                    raise TrainingDiverged(
                        f"training diverged at iteration {self.iteration}: weight {name}.{key} "
                        f"is not finite; {self._last_good()}; lower train.lr, or use "
                        'train.precision = "fp32"'
                    )

    def _last_good(self) -> str:
        from p2pkit.engine.checkpoint import list_checkpoints

        steps = list_checkpoints(self.run_dir)
        if not steps:
            return "no checkpoint was written"
        return f"nothing was saved after the last good checkpoint, {steps[-1][1].name}"

    def _done(self, total_iterations: int) -> bool:
        return self.iteration >= total_iterations

    def _log_row(self, started: float, start_iteration: int) -> dict[str, Any]:
        if self.dist.world_size > 1:
            self.history.reduce_mean(self.dist.all_reduce_sum, self.dist.world_size)
        self._check_finite_losses()
        row = self.history.write(
            epoch=self.epoch + 1,
            iteration=self.iteration,
            lr=self.opt_G.param_groups[0]["lr"],
            seconds=round(time.perf_counter() - started, 3),
        )
        if self.tensorboard is not None:
            self.tensorboard.add_row(row)
        return row


def _processes(n: int) -> str:
    return f"{n} process" + ("es" if n != 1 else "")


def load_run_recipe(run_dir: Path) -> Recipe:
    """The resolved recipe saved in a run folder."""
    from p2pkit.config import load_toml

    path = Path(run_dir) / "recipe.toml"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no recipe.toml); check the path")
    return recipe_from_dict(load_toml(path), origin=str(path))


__all__ = [
    "CHECKPOINT_FORMAT",
    "EXIT_PREEMPTED",
    "TrainResult",
    "Trainer",
    "load_run_recipe",
    "seed_everything",
]
