"""What a training shows while it runs: a live bar on a terminal, plain lines in a log file."""

from __future__ import annotations

import math
import time
from typing import Any


class TrainingDisplay:
    """What a training shows while it runs.

    On a terminal: a live bar (epoch, iteration, it/s, elapsed, ETA) with the losses
    on a line of their own, so the bar stays readable at 80 columns. Anywhere else
    (a batch job's log file, ``--no-progress``): one plain line per log row, written
    as it happens. Only rank 0 shows anything.
    """

    def __init__(self, trainer: Any, total: int, start: int) -> None:
        self.trainer = trainer
        self.loss_names = tuple(getattr(trainer.objective, "loss_names", ()))
        self.console = trainer.console
        self.total = total
        self.start = start
        self.live = trainer.show_progress and trainer.dist.is_main and self.console.is_terminal
        self.plain = trainer.dist.is_main and not self.live
        self._started = time.perf_counter()
        self._last = (self._started, start)
        self.progress = live_progress(self.console, total) if self.live else None

    def __enter__(self) -> TrainingDisplay:
        if self.progress is not None:
            self.progress.__enter__()
            self.task_id = self.progress.add_task(
                "train", total=self.total, completed=self.trainer.iteration
            )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def advance(self, epoch: int, epochs: int) -> None:
        if self.progress is not None:
            self.progress.update(
                self.task_id,
                completed=self.trainer.iteration,
                description=f"epoch {epoch}/{epochs}",
            )

    def log(self, row: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.losses = loss_text(row, self.loss_names)
            return
        if not self.plain:
            return
        now, iteration = time.perf_counter(), self.trainer.iteration
        last_time, last_iteration = self._last
        self._last = (now, iteration)
        rate = (iteration - last_iteration) / max(now - last_time, 1e-9)
        overall = (iteration - self.start) / max(now - self._started, 1e-9)
        eta = (self.total - iteration) / overall if overall > 0 else float("inf")
        epochs = self.trainer.recipe.train.epochs + self.trainer.recipe.train.epochs_decay
        self.console.print(
            f"epoch {row['epoch']}/{epochs} iteration {iteration}/{self.total} "
            f"{rate:.2f} it/s ETA {format_eta(eta)} {loss_text(row, self.loss_names)}".rstrip(),
            soft_wrap=True,
            markup=False,
            highlight=False,
        )


def live_progress(console: Any, total: int) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class TrainProgress(Progress):
        """The bar on one line, the latest losses on the next."""

        losses = ""

        def get_renderables(self) -> Any:
            yield self.make_tasks_table(self.tasks)
            if self.losses:
                yield Text(self.losses, overflow="fold")

    return TrainProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        _rate_column(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
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


_NOT_LOSSES = ("epoch", "iteration", "lr", "seconds")


def loss_text(row: dict[str, Any], order: tuple[str, ...] = ()) -> str:
    """Every loss term of a log row, a plugin objective's own terms included.

    Args:
        row: a ``losses.jsonl`` row.
        order: the objective's ``loss_names``: those terms come first, in that order.
    """
    terms = {k: v for k, v in row.items() if k not in _NOT_LOSSES}
    keys = [k for k in order if k in terms] + [k for k in terms if k not in order]
    return " ".join(f"{k} {terms[k]:.3f}" for k in keys)


def format_eta(seconds: float) -> str:
    """Seconds as ``1h02m`` / ``3m05s`` / ``12s``."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


__all__ = ["TrainingDisplay", "format_eta", "live_progress", "loss_text"]
