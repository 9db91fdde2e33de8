"""The loss history a run writes while it trains (``losses.jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


class LossHistory:
    """Appends one JSON object per logged iteration to ``losses.jsonl``.

    Each row holds ``epoch``, ``iteration``, ``lr``, ``seconds`` and the mean of
    every loss term since the previous row (``G_GAN``, ``G_L1``, ``D_real``,
    ``D_fake`` for the pix2pix objective). JSON lines survive a crash: every row is
    complete on its own and flushed as it is written.
    """

    def __init__(self, path: Path, *, write: bool = True) -> None:
        self.path = Path(path)
        # Under DDP every process keeps the sums, and rank 0 alone writes the file.
        self.writes = write
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0

    def accumulate(self, terms: dict[str, torch.Tensor]) -> None:
        """Add one iteration's loss terms (kept as tensors: no device sync here)."""
        for key, value in terms.items():
            value = value.detach().float()
            self._sums[key] = self._sums[key] + value if key in self._sums else value
        self._count += 1

    def means(self) -> dict[str, float]:
        """Means since the last [`write`][p2pkit.engine.history.LossHistory.write] (or empty)."""
        if not self._count:
            return {}
        return {k: float(v) / self._count for k, v in self._sums.items()}

    def reduce_mean(self, all_reduce_sum: Any, world_size: int) -> None:
        """Average the accumulated sums over all processes (every process must call it).

        Args:
            all_reduce_sum: sums a tensor over the processes in place
                ([`all_reduce_sum`][p2pkit.engine.distributed.DistContext.all_reduce_sum]).
            world_size: number of processes.
        """
        if not self._sums:
            return
        keys = list(self._sums)  # the same order on every process: the same code ran
        stacked = torch.stack([self._sums[k].reshape(()) for k in keys])
        all_reduce_sum(stacked)
        stacked /= world_size
        self._sums = dict(zip(keys, stacked.unbind(0), strict=True))

    def write(self, **fields: Any) -> dict[str, Any]:
        """Write a row with ``fields`` and the accumulated means, then reset them."""
        row = {**fields, **{k: round(v, 6) for k, v in self.means().items()}}
        if self.writes:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        self._sums, self._count = {}, 0
        return row

    def truncate_after(self, iteration: int) -> None:
        """Drop rows past ``iteration`` (after resuming from an earlier checkpoint)."""
        if not self.writes or not self.path.exists():
            return
        rows = [line for line in self.path.read_text().splitlines() if line.strip()]
        kept = [r for r in rows if json.loads(r).get("iteration", 0) <= iteration]
        self.path.write_text("".join(r + "\n" for r in kept))


__all__ = ["LossHistory"]
