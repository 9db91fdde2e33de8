"""``stripes``: a data source that makes a tiny aligned dataset locally, without torch.

Each pair is a stripe pattern: B is a two-colour label map of bands at a random angle and
width, A the "photo" rendered from it (the same bands, shaded and with noise). Labels ->
photo is ``BtoA``, as in the facades layout, so the recipe ``stripes-resnet`` trains the
ResNet generator on it in a minute on a CPU. p2pkit provides the set whenever a recipe
whose ``data.source`` is ``stripes`` needs it, as it does for its own ``synth``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
from PIL import Image

from p2pkit.errors import DataError
from p2pkit.ranges import Range

#: Pairs in a split.
Count = Annotated[int, Range(1, 10_000)]

_MARKER = "stripes.json"


def _pair(rng: np.random.Generator, size: int) -> np.ndarray:
    """One ``size`` x ``2 * size`` RGB pair: photo (A) | labels (B)."""
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(size / 8, size / 2)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = (x * np.cos(angle) + y * np.sin(angle)) / period
    band = (np.floor(phase) % 2).astype(bool)
    colours = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
    labels = np.where(band[..., None], colours[1], colours[0])
    shade = 0.75 + 0.25 * np.cos(2 * np.pi * phase)[..., None]
    photo = labels * shade + rng.normal(0, 8, size=labels.shape)
    pair = np.concatenate([photo, labels], axis=1)
    return np.clip(pair, 0, 255).astype(np.uint8)


class StripesSource:
    """Writes ``n_train`` + ``n_val`` stripe pairs (seed 0) into ``train/`` and ``val/``."""

    downloads = False

    def __init__(self, n_train: int = 32, n_val: int = 4) -> None:
        self.n_train = n_train
        self.n_val = n_val
        self.description = (
            f"stripe patterns, made locally: {n_train} train + {n_val} val aligned pairs "
            "(photo | labels) at the recipe's crop size"
        )

    def provide(self, folder: Path, *, size: int | None = None, progress: bool = True) -> Path:
        """Write the set into ``folder`` at ``size`` px (default 64); a folder that holds
        exactly this set is left as it is."""
        folder = Path(folder)
        side = 64 if size is None else int(size)
        settings = {"source": "stripes", "n_train": self.n_train, "n_val": self.n_val}
        settings["size"] = side
        marker = folder / _MARKER
        if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == settings:
            return folder
        if folder.is_dir() and any(folder.iterdir()) and not marker.is_file():
            raise DataError(f"{folder} is not empty and holds no stripes set; choose a new folder")
        rng = np.random.default_rng(0)
        for split, count in (("train", self.n_train), ("val", self.n_val)):
            (folder / split).mkdir(parents=True, exist_ok=True)
            for i in range(1, count + 1):
                Image.fromarray(_pair(rng, side)).save(folder / split / f"{i}.png")
        marker.write_text(json.dumps(settings), encoding="utf-8")
        return folder


def stripes(n_train: Count = 32, n_val: Count = 4) -> StripesSource:
    """``stripes``: a tiny aligned stripe-pattern dataset, made locally on first use."""
    return StripesSource(n_train, n_val)
