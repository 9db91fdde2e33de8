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
"""

from __future__ import annotations

import json
import platform
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import p2pkit
from p2pkit.config import Recipe, recipe_from_dict, recipe_to_dict, recipe_to_toml
from p2pkit.engine.checkpoint import checkpoint_dir_name
from p2pkit.engine.device import SpeedSettings, resolve_speed
from p2pkit.engine.logging import LossHistory, save_grid
from p2pkit.errors import ConfigError
from p2pkit.registry import KINDS, get_registry

CHECKPOINT_FORMAT = "p2pkit-run/1"


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and CUDA)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_task(recipe: Recipe) -> Any:
    """The task component the recipe names."""
    return get_registry("tasks").create(recipe.task.name, **recipe.task.options)


def build_networks(recipe: Recipe, task: Any, objective: Any) -> tuple[nn.Module, nn.Module | None]:
    """Generator and (when the objective needs one) discriminator, sized for ``task``.

    The engine sets the channel counts from the task and ``conditional`` from the
    objective, so recipes cannot get them out of step.
    """
    G = get_registry("generators").create(
        recipe.generator.name,
        **{**recipe.generator.options, "in_channels": task.in_channels},
        out_channels=task.out_channels,
    )
    if not objective.uses_discriminator:
        return G, None
    D = get_registry("discriminators").create(
        recipe.discriminator.name,
        **recipe.discriminator.options,
        in_channels=task.in_channels,
        out_channels=task.out_channels,
        conditional=objective.conditional,
    )
    return G, D


def make_adam(params: Any, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam as in section 3.3, fused into one kernel where torch supports it.

    The fused kernel does the same arithmetic in one pass over the parameters; on a
    CPU it is about 6x faster than the default for the 54M-parameter ``unet_256``
    (see docs/performance.md), and the optimiser step was a third of an iteration.
    """
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or an unsupported device
        return torch.optim.Adam(params, lr=lr, betas=betas)


def linear_decay(epochs: int, epochs_decay: int):
    """Learning-rate factor for epoch e: 1 for e < epochs, then linearly down to 0.

    Epoch e (0-based) trains at ``1 - max(0, e + 1 - epochs) / (epochs_decay + 1)`` of
    the initial rate, as in the authors' code: the last epoch runs at
    ``1 / (epochs_decay + 1)`` and the rate would reach 0 one epoch later.
    """

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)

    return factor


def environment_info(speed: SpeedSettings | None = None) -> dict[str, Any]:
    """Versions, device and plugins: what a bug report needs (``p2pkit env``)."""
    from importlib import metadata

    versions: dict[str, str] = {"python": platform.python_version()}
    for dist in ("p2pkit", "torch", "kornia", "timm", "safetensors", "numpy", "pillow"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    info: dict[str, Any] = {
        "versions": versions,
        "platform": platform.platform(),
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu_threads": torch.get_num_threads(),
        "plugins": {
            kind: {
                i.name: f"{i.distribution} {i.version}".strip()
                for i in get_registry(kind).infos()
                if i.distribution != "p2pkit"
            }
            for kind in KINDS
        },
        "plugin_failures": [f.describe() for k in KINDS for f in get_registry(k).failures()],
    }
    if speed is not None:
        info["speed"] = speed.describe()
    return info


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` leaves behind."""

    run_dir: Path
    checkpoint: Path | None
    iterations: int
    epochs_done: int
    interrupted: bool
    seconds: float


class Trainer:
    """Trains a recipe in a run folder; resumable bit for bit on CPU.

    Args:
        recipe: the resolved recipe (``data.root`` set).
        run_dir: the run folder; created if needed.
        resume: continue from the run folder's latest checkpoint.
        progress: show a rich progress display.
        console: a ``rich.console.Console`` for messages (a quiet one if None).
    """

    def __init__(
        self,
        recipe: Recipe,
        run_dir: Path,
        *,
        resume: bool = False,
        progress: bool = True,
        console: Any = None,
    ) -> None:
        from rich.console import Console

        self.recipe = recipe
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.show_progress = progress
        self.console = console or Console(quiet=True)
        self._stop_requested = False

    # ------------------------------------------------------------------- set-up
    def _setup(self) -> None:
        from p2pkit.data.augment import PairAugment
        from p2pkit.engine.allocator import tune_allocator

        recipe, train = self.recipe, self.recipe.train
        tune_allocator()
        if not recipe.data.root:
            raise ConfigError("data.root is empty: pass --data-root DIR or set data.root")
        seed_everything(train.seed)
        self.speed = resolve_speed(
            train.device, train.precision, train.channels_last, train.compile
        )
        self.task = build_task(recipe)
        self.objective = get_registry("objectives").create(
            recipe.objective.name, **recipe.objective.options
        )
        self.G, self.D = build_networks(recipe, self.task, self.objective)
        self._check_crop_size()
        self.dataset = self._load_split(recipe.data.train_split, recipe.data.max_images or None)
        if len(self.dataset) == 0:
            raise ConfigError(f"{recipe.data.root}: no training images")
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
        device = self.speed.device
        memory_format = torch.channels_last if self.speed.channels_last else torch.preserve_format
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
            device.type, enabled=self.speed.autocast_dtype is torch.float16
        )
        self.G_step = self.G
        self.D_step = self.D
        if self.speed.compile:
            self.G_step = torch.compile(self.G)
            self.D_step = torch.compile(self.D) if self.D is not None else None
        self.history = LossHistory(self.run_dir / "losses.jsonl")
        self.epoch = 0
        self.iteration = 0
        self.position = 0  # batches done in the current epoch
        self.permutation: torch.Tensor | None = None

    def _check_crop_size(self) -> None:
        multiple = getattr(self.G, "size_multiple", 1)
        crop = self.recipe.data.crop_size
        if crop % multiple:
            raise ConfigError(
                f"data.crop_size {crop} is not a multiple of {multiple}, which generator "
                f"'{self.recipe.generator.name}' needs; use e.g. "
                f"{max(multiple, crop // multiple * multiple)}"
            )

    def _load_split(self, split: str, max_images: int | None) -> Any:
        data = self.recipe.data
        ch_a, ch_b = self.task.image_channels
        options: dict[str, Any] = dict(
            root=data.root,
            split=split,
            in_channels=ch_a,
            resize_to=data.load_size if data.preprocess != "none" else None,
            min_size=data.crop_size if data.preprocess == "crop" else 0,
            skip_bad=data.skip_bad,
            cache_dir=data.cache_dir or None,
            max_images=max_images,
        )
        if self.task.needs_target:
            options.update(direction=data.direction, out_channels=ch_b)
        return get_registry("datasets").create(data.dataset, **options)

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
        recipe = self.recipe
        G_options = {
            **recipe.generator.options,
            "in_channels": self.task.in_channels,
            "out_channels": self.task.out_channels,
        }
        nets: dict[str, Any] = {"generator": {"name": recipe.generator.name, "options": G_options}}
        if self.G_ema is not None:
            nets["generator_ema"] = nets["generator"]
        if self.D is not None:
            nets["discriminator"] = {
                "name": recipe.discriminator.name,
                "options": {
                    **recipe.discriminator.options,
                    "in_channels": self.task.in_channels,
                    "out_channels": self.task.out_channels,
                    "conditional": self.objective.conditional,
                },
            }
        return {
            "format": CHECKPOINT_FORMAT,
            "networks": nets,
            "task": {"name": recipe.task.name, "options": recipe.task.options},
            "objective": {"name": recipe.objective.name, "options": recipe.objective.options},
            "data": {
                "direction": recipe.data.direction,
                "crop_size": recipe.data.crop_size,
                "load_size": recipe.data.load_size,
                "preprocess": recipe.data.preprocess,
                "max_value": int(self.dataset.max_value),
            },
            "recipe": recipe_to_dict(recipe),
            "counters": {
                "epoch": self.epoch,
                "iteration": self.iteration,
                "position": self.position,
            },
            "permutation": None if self.permutation is None else self.permutation.tolist(),
        }

    def save(self) -> Path:
        """Write a checkpoint of the current state (atomic)."""
        from p2pkit.engine.checkpoint import save_checkpoint

        optimizers = {"generator": self.opt_G}
        schedulers = {"generator": self.sched_G}
        if self.D is not None:
            optimizers["discriminator"] = self.opt_D
            schedulers["discriminator"] = self.sched_D
        if self.scaler.is_enabled():
            schedulers["grad_scaler"] = self.scaler
        return save_checkpoint(
            self.run_dir,
            step=self.iteration,
            modules=self._modules(),
            optimizers=optimizers,
            schedulers=schedulers,
            meta=self._meta(),
            keep_last=self.recipe.train.keep_last or None,
        )

    def _restore(self) -> None:
        from p2pkit.engine.checkpoint import load_checkpoint

        ckpt = load_checkpoint(self.run_dir)
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
        self.position = counters["position"]
        perm = ckpt.meta.get("permutation")
        self.permutation = None if perm is None else torch.tensor(perm, dtype=torch.long)
        ckpt.restore_rng()
        self.history.truncate_after(self.iteration)
        self.console.print(
            f"resumed {self.run_dir} at epoch {self.epoch + 1}, iteration {self.iteration}"
        )

    # -------------------------------------------------------------- the steps
    def _to_device(self, t: torch.Tensor | None) -> torch.Tensor | None:
        from p2pkit.data.io import to_float

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
            the loss terms of both steps (detached scalars).
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
            g = objective.generator_loss(self.D_step, x, y, fake)
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
    def write_samples(self) -> Path:
        """Save an input | output | target grid of up to 4 validation images."""
        from p2pkit.models import inference_protocol

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
        return save_grid(rows, self.run_dir / "samples" / name)

    # --------------------------------------------------------------------- run
    def _write_run_files(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "recipe.toml").write_text(recipe_to_toml(self.recipe))
        (self.run_dir / "env.json").write_text(
            json.dumps(environment_info(self.speed), indent=2) + "\n"
        )

    def _install_interrupt_handler(self) -> Any:
        def handler(signum, frame):  # first Ctrl-C: finish the iteration, save, stop
            self._stop_requested = True
            signal.signal(signal.SIGINT, signal.default_int_handler)

        try:
            return signal.signal(signal.SIGINT, handler)
        except ValueError:  # not in the main thread
            return None

    def fit(self) -> TrainResult:
        """Train until the schedule ends, ``max_iterations`` or Ctrl-C; always checkpoints."""
        self._setup()
        if self.resume:
            self._restore()
        self._write_run_files()
        train = self.recipe.train
        total_epochs = train.epochs + train.epochs_decay
        batches_per_epoch = -(-len(self.dataset) // train.batch_size)
        total_iterations = total_epochs * batches_per_epoch
        if train.max_iterations:
            total_iterations = min(total_iterations, train.max_iterations)
        self.console.print(
            f"training {self.recipe.name}: {len(self.dataset)} images, {total_epochs} epochs "
            f"({batches_per_epoch} iterations each), {self.speed.describe()}"
            + (f", generator EMA {train.ema_decay}" if self.G_ema is not None else "")
            + f"; run folder {self.run_dir}"
        )
        previous_handler = self._install_interrupt_handler()
        started = time.perf_counter()
        start_iteration = self.iteration
        checkpoint: Path | None = None
        interrupted = False
        self.G.train()
        if self.D is not None:
            self.D.train()
        progress = self._progress(total_iterations)
        try:
            with progress:
                task_id = progress.add_task(
                    "train", total=total_iterations, completed=self.iteration, losses=""
                )
                while self.epoch < total_epochs and not self._done(total_iterations):
                    if self.permutation is None or self.position == 0:
                        self.permutation = torch.randperm(len(self.dataset))
                    while self.position < batches_per_epoch:
                        if self._done(total_iterations) or self._stop_requested:
                            break
                        start = self.position * train.batch_size
                        idx = self.permutation[start : start + train.batch_size]
                        x, y = self._prepare(self.dataset.batch(idx), self.augment)
                        self.history.accumulate(self.train_step(x, y))
                        self.position += 1
                        self.iteration += 1
                        if self.iteration % max(train.log_every, 1) == 0:
                            row = self._log_row(started, start_iteration)
                            progress.update(task_id, losses=_loss_text(row))
                        if train.sample_every and self.iteration % train.sample_every == 0:
                            self.write_samples()
                        progress.update(
                            task_id,
                            completed=self.iteration,
                            description=f"epoch {self.epoch + 1}/{total_epochs}",
                        )
                    if self.position < batches_per_epoch:
                        break  # stopped inside the epoch: resume continues from here
                    if self.history.means():
                        self._log_row(started, start_iteration)
                    self.epoch += 1
                    self.position = 0
                    self.sched_G.step()
                    if self.sched_D is not None:
                        self.sched_D.step()
                    last = self.epoch == total_epochs
                    if last or self.epoch % max(train.save_every, 1) == 0:
                        checkpoint = self.save()
                    if last or not train.sample_every:
                        self.write_samples()
                    if self._stop_requested:
                        break
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
        interrupted = interrupted or self._stop_requested
        if self.history.means():
            self._log_row(started, start_iteration)
        finished_epoch = self.epoch == total_epochs and self.position == 0
        if checkpoint is None or checkpoint.name != checkpoint_dir_name(self.iteration):
            checkpoint = self.save()
            self.write_samples()
        seconds = time.perf_counter() - started
        done = self.iteration - start_iteration
        rate = done / seconds if seconds > 0 else float("nan")
        verb = "stopped" if interrupted else "finished"
        self.console.print(
            f"{verb} at epoch {self.epoch + (not finished_epoch)}, iteration {self.iteration} "
            f"({rate:.2f} it/s); checkpoint {checkpoint}"
        )
        return TrainResult(
            self.run_dir, checkpoint, self.iteration, self.epoch, interrupted, seconds
        )

    def _done(self, total_iterations: int) -> bool:
        return self.iteration >= total_iterations

    def _log_row(self, started: float, start_iteration: int) -> dict[str, Any]:
        return self.history.write(
            epoch=self.epoch + 1,
            iteration=self.iteration,
            lr=self.opt_G.param_groups[0]["lr"],
            seconds=round(time.perf_counter() - started, 3),
        )

    def _progress(self, total: int) -> Any:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _rate_column(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=self.console,
            disable=not self.show_progress,
            transient=False,
        )


def _rate_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Iterations per second, blank until rich has measured a speed."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:.2f} it/s")

    return RateColumn()


def _loss_text(row: dict[str, Any]) -> str:
    keys = ("G_GAN", "G_L1", "D_real", "D_fake")
    return " ".join(f"{k} {row[k]:.3f}" for k in keys if k in row)


def load_run_recipe(run_dir: Path) -> Recipe:
    """The resolved recipe saved in a run folder."""
    from p2pkit.config import load_toml

    path = Path(run_dir) / "recipe.toml"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no recipe.toml); check the path")
    return recipe_from_dict(load_toml(path), origin=str(path))


__all__ = [
    "TrainResult",
    "Trainer",
    "build_networks",
    "build_task",
    "environment_info",
    "linear_decay",
    "load_run_recipe",
    "seed_everything",
]
