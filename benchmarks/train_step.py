"""Time training iterations and inference of unet_256 + the 70x70 PatchGAN.

Measures the engine's own ``Trainer.train_step`` (one D step and one G step of
Algorithm 1) on random 256x256 data at batch size 1 by default, for each speed
setting given, and reports the median of several timed runs. Run it on an idle
machine; quote medians, not single runs.

    python benchmarks/train_step.py --settings fp32 bf16 bf16+cl --iters 10 --repeats 5
    python benchmarks/train_step.py --inference --settings fp32 bf16

A setting is a precision (fp32, bf16, fp16) with optional ``+cl`` (channels_last),
``+compile`` and ``+ema`` (a moving average of the generator, ``train.ema_decay``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import p2pkit
from p2pkit.engine.allocator import tune_allocator
from p2pkit.engine.device import SpeedSettings, resolve_device
from p2pkit.engine.ema import make_generator_ema
from p2pkit.engine.optim import make_adam
from p2pkit.engine.trainer import Trainer
from p2pkit.models import layers


def make_trainer(
    setting: str, device: torch.device, ngf: int, ndf: int, baseline: bool = False
) -> Trainer:
    parts = setting.split("+")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[parts[0]]
    speed = SpeedSettings(device, dtype, "cl" in parts, "compile" in parts)
    trainer = Trainer.__new__(Trainer)  # only what train_step needs, no data or run folder
    trainer.speed = speed
    trainer.objective = p2pkit.create_objective("l1_cgan").to(device)
    fmt = torch.channels_last if speed.channels_last else torch.preserve_format
    trainer.G = p2pkit.create_generator("unet_256", ngf=ngf).to(device, memory_format=fmt)
    trainer.D = p2pkit.create_discriminator("patchgan_70", ndf=ndf).to(device, memory_format=fmt)
    adam = (lambda p, lr, betas: torch.optim.Adam(p, lr=lr, betas=betas)) if baseline else make_adam
    trainer.opt_G = adam(trainer.G.parameters(), 2e-4, (0.5, 0.999))
    trainer.opt_D = adam(trainer.D.parameters(), 2e-4, (0.5, 0.999))
    trainer.scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    trainer.G_step = torch.compile(trainer.G) if speed.compile else trainer.G
    trainer.G_ema = make_generator_ema(trainer.G, 0.999) if "ema" in parts else None
    trainer.iteration = 10_000  # past the EMA's warm-up, so every step averages
    trainer.D_step = torch.compile(trainer.D) if speed.compile else trainer.D
    trainer.D_for_G = trainer.D_step
    return trainer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10, help="iterations per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per setting")
    parser.add_argument("--inference", action="store_true", help="time G forward only")
    parser.add_argument("--json", action="store_true", help="print one JSON line per setting")
    parser.add_argument(
        "--default-malloc", action="store_true", help="leave glibc malloc untuned (for comparison)"
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="turn off p2pkit's CPU speed-ups (fused Adam, matmul path of the innermost "
        "convolutions) to measure what they bring",
    )
    args = parser.parse_args()
    if not args.default_malloc:
        tune_allocator()
    if args.baseline:
        layers._MATMUL_DOWN_MAX_PIXELS = 0
        layers._MATMUL_UP_MAX_PIXELS = 0
        layers._MATMUL_UP_MAX_PIXELS_NO_GRAD = 0
    device = resolve_device(args.device)
    torch.manual_seed(0)
    for setting in args.settings:
        trainer = make_trainer(setting, device, args.ngf, args.ndf, args.baseline)
        shape = (args.batch_size, 3, args.size, args.size)
        fmt = torch.channels_last if trainer.speed.channels_last else torch.contiguous_format
        x = torch.rand(shape, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
        y = torch.rand(shape, device=device).mul(2).sub(1).contiguous(memory_format=fmt)

        def step(trainer: Trainer = trainer, x: torch.Tensor = x, y: torch.Tensor = y) -> None:
            if args.inference:
                with torch.no_grad(), trainer.speed.autocast():
                    trainer.G_step(x)
            else:
                trainer.train_step(x, y)

        if args.inference:
            trainer.G.eval()
        for _ in range(args.warmup):
            step()
        sync(device)
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(args.iters):
                step()
            sync(device)
            runs.append((time.perf_counter() - start) / args.iters)
        median = statistics.median(runs)
        unit = "images/s" if args.inference else "s/iteration"
        value = args.batch_size / median if args.inference else median
        result = {
            "setting": setting,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "batch_size": args.batch_size,
            "size": args.size,
            "median_s": round(median, 4),
            "runs_s": [round(r, 4) for r in runs],
            unit: round(value, 3),
        }
        if args.json:
            print(json.dumps(result))
        else:
            spread = f"min {min(runs):.3f} max {max(runs):.3f}"
            print(f"{setting:16} {value:8.3f} {unit}  (median of {args.repeats}; {spread})")


if __name__ == "__main__":
    main()
