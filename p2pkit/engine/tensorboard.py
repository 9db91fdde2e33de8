"""TensorBoard event files for a run (the optional ``p2pkit[tensorboard]`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from p2pkit.errors import ConfigError


def require_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ConfigError(
            'train.tensorboard needs TensorBoard: pip install "p2pkit[tensorboard]"'
        ) from None


class TensorBoardLog:
    """Scalars and sample grids of a run, as TensorBoard event files (rank 0 only).

    Args:
        folder: where the event files go (``RUN/tensorboard``); point
            ``tensorboard --logdir`` at it or at the folder holding many runs.
    """

    def __init__(self, folder: Path) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder))

    def add_row(self, row: dict[str, Any]) -> None:
        """One loss-history row: every loss term, and the learning rate."""
        step = int(row["iteration"])
        for key, value in row.items():
            if key in ("epoch", "iteration", "seconds"):
                continue
            tag = "train/lr" if key == "lr" else f"loss/{key}"
            self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    def add_grid(self, path: Path, step: int) -> None:
        """A sample grid PNG (input | output | target rows)."""
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self.writer.add_image("samples", pixels, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


__all__ = ["TensorBoardLog", "require_tensorboard"]
