"""Rebuilding a trained generator from a checkpoint and translating image files.

Used by ``p2pkit translate`` and ``p2pkit evaluate``. A checkpoint records the
generator's and the task's names and options, so nothing has to be repeated on
the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from p2pkit.errors import ConfigError, DataError
from p2pkit.registry import get_registry

LAYOUTS = ("single", "aligned")


@dataclass
class TrainedModel:
    """A generator rebuilt from a checkpoint, with its task and data settings.

    Attributes:
        generator: the network, on ``device``, in eval mode.
        task: the task component (makes inputs, turns outputs into images).
        meta: the checkpoint's metadata.
        checkpoint: the checkpoint folder.
        device: where ``generator`` runs.
        weights: ``"ema"`` when the generator holds the moving average of its
            weights (``train.ema_decay``), ``"raw"`` for the trained weights.
    """

    generator: nn.Module
    task: Any
    meta: dict[str, Any]
    checkpoint: Path
    device: torch.device
    weights: str = "raw"

    @property
    def direction(self) -> str:
        return self.meta.get("data", {}).get("direction", "AtoB")

    @property
    def crop_size(self) -> int:
        return int(self.meta.get("data", {}).get("crop_size", 256))


WEIGHTS = ("auto", "ema", "raw")
INIT_ONLY_OPTIONS = ("pretrained_path",)


def load_trained(
    checkpoint: str | Path, device: str = "auto", weights: str = "auto"
) -> TrainedModel:
    """Rebuild the generator and task recorded in ``checkpoint`` (run or step folder).

    Args:
        checkpoint: a run folder (its latest checkpoint) or a checkpoint folder.
        device: ``auto``, ``cpu``, ``cuda``...
        weights: ``auto`` takes the moving average of the generator's weights when
            the run kept one (``train.ema_decay > 0``) and the trained weights
            otherwise; ``ema`` and ``raw`` choose explicitly.

    Raises:
        ConfigError: ``weights="ema"`` for a run that kept no average.
        CheckpointError: the checkpoint is missing, damaged or does not fit.
    """
    from p2pkit.engine.allocator import tune_allocator
    from p2pkit.engine.checkpoint import load_checkpoint
    from p2pkit.engine.device import resolve_device

    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    tune_allocator()
    ckpt = load_checkpoint(checkpoint)
    has_ema = "generator_ema" in (ckpt.meta.get("modules") or {})
    if weights == "ema" and not has_ema:
        raise ConfigError(
            f"checkpoint {ckpt.path} holds no EMA weights (the run had train.ema_decay = 0); "
            "use --weights raw"
        )
    chosen = "ema" if has_ema and weights != "raw" else "raw"
    spec = ckpt.meta["networks"]["generator"]
    # The checkpoint holds every weight, so a file that only initialised the
    # network for training (a pretrained backbone) is not read again, and need
    # not exist on this machine.
    options = {k: v for k, v in spec["options"].items() if k not in INIT_ONLY_OPTIONS}
    G = get_registry("generators").create(spec["name"], **options)
    module = "generator_ema" if chosen == "ema" else "generator"
    ckpt.load_module(module, G, expected_options=spec["options"])
    task_spec = ckpt.meta["task"]
    task = get_registry("tasks").create(task_spec["name"], **task_spec["options"])
    dev = resolve_device(device)
    G.to(dev).eval()
    return TrainedModel(G, task, ckpt.meta, Path(ckpt.path), dev, chosen)


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Image files from a mix of files and folders (folders: natural order)."""
    from p2pkit.data.io import is_image_file, list_images

    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = list_images(item)
            if not found:
                raise DataError(f"{item}: no images (png, jpg, jpeg, tif, tiff, bmp) in folder")
            files += found
        elif item.is_file():
            if not is_image_file(item):
                raise DataError(f"{item}: not an image file (png, jpg, jpeg, tif, tiff, bmp)")
            files.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    return files


def read_input(
    path: Path, model: TrainedModel, layout: str, resize: int | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One input image as (1, C, H, W) in [-1, 1], and the target side if ``aligned``."""
    from p2pkit.data.io import read_image, to_float

    channels_a, channels_b = model.task.image_channels
    if layout == "aligned":
        from p2pkit.data.decode import ImageProblem, fit_channels

        pixels = read_image(path, 3)
        w = pixels.shape[1]
        if w % 2:
            raise DataError(f"{path}: aligned image width {w} is odd; A|B halves must be equal")
        left, right = pixels[:, : w // 2], pixels[:, w // 2 :]
        a, b = (right, left) if model.direction == "BtoA" else (left, right)
        try:
            a, b = fit_channels(a, channels_a)[0], fit_channels(b, channels_b)[0]
        except ImageProblem as exc:
            raise DataError(f"{path}: {exc}") from None
    else:
        a, b = read_image(path, channels_a), None
    max_value = 65535 if a.dtype.name == "uint16" else 255

    def tensor(arr: Any) -> torch.Tensor:
        t = torch.from_numpy(arr.astype("int32") if arr.dtype.name == "uint16" else arr.copy())
        t = to_float(t.permute(2, 0, 1).unsqueeze(0), max_value)
        if resize:
            t = torch.nn.functional.interpolate(
                t, size=(resize, resize), mode="bicubic", align_corners=False, antialias=True
            ).clamp(-1, 1)
        return t

    return tensor(a), (None if b is None else tensor(b))


def translate_files(
    model: TrainedModel,
    files: list[Path],
    *,
    layout: str = "single",
    resize: int | None = None,
    batch_size: int = 1,
    tile: int | None = None,
    overlap: int = 32,
    protocol: str = "eval",
    autocast_dtype: torch.dtype | None = None,
) -> Iterator[tuple[Path, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Translate ``files``; yields ``(path, input_rgb, output_rgb, target_rgb | None)``.

    Images of one size are batched ``batch_size`` at a time; any size works (the
    generator's input is padded to its multiple and cropped back). Each tensor is
    (3, H, W) in [-1, 1] on the CPU.
    """
    from p2pkit.inference import translate_tensor
    from p2pkit.models import inference_protocol

    multiple = getattr(model.generator, "size_multiple", 1)
    pending: list[tuple[Path, torch.Tensor, torch.Tensor | None]] = []

    def flush() -> Iterator[tuple[Path, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        x = torch.cat([model.task.make_input(a) for _, a, _ in pending]).to(model.device)
        with inference_protocol(model.generator, protocol):
            y = translate_tensor(
                model.generator,
                x,
                multiple=multiple,
                tile=tile,
                overlap=overlap,
                batch_size=batch_size,
                autocast_dtype=autocast_dtype,
            )
        x, y = x.float().cpu(), y.float().cpu()
        x_rgb, y_rgb = model.task.to_rgb(x, y)
        for i, (path, _, b) in enumerate(pending):
            target = None
            if b is not None and model.task.needs_target:
                target = model.task.to_rgb(x[i : i + 1], b)[1][0]
            yield path, x_rgb[i], y_rgb[i], target
        pending.clear()

    for path in files:
        a, b = read_input(path, model, layout, resize)
        if pending and (pending[0][1].shape != a.shape or len(pending) >= batch_size):
            yield from flush()
        pending.append((path, a, b))
    if pending:
        yield from flush()
