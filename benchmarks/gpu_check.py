"""The CUDA paths, timed: fp16 + GradScaler, bf16, channels_last, compile, DDP over NCCL, translate.

Runs ``p2pkit`` exactly as a user would (``python -m p2pkit run recipe ...`` in a subprocess,
output redirected, so the trainer prints one plain line per ``log_every`` iterations) and
reads the iterations per second from those lines, leaving out the first interval
(start-up, cuDNN autotuning, compilation). Every step is independent: one that fails is
reported and the rest still run. Results go to stdout as they come and to
``OUT/gpu_check.json``.

Data: the synthetic facades set at 256 px (400 train, 100 val: facades' size and count, so
the arithmetic per iteration is the paper's) and at 128 px for ``synth-facades``; nothing
is downloaded. ``--data DIR`` uses a real aligned dataset (``train/`` and ``val/``) instead
for the 256 px runs.

Usage (on a GPU machine; see benchmarks/gpu_check.sh for the device tool's wrapper)::

    python benchmarks/gpu_check.py --out /tmp/gpu-check
    python benchmarks/gpu_check.py --smoke --out /tmp/smoke     # CPU, tiny: checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

LINE = re.compile(r"^epoch \d+/\d+ iteration (\d+)/(\d+) ([0-9.]+) it/s")
PAPER_ITERATIONS = 80_000  # facades: 200 epochs x 400 images at batch 1


def p2pkit(*args: str, timeout: float = 900, env: dict | None = None) -> tuple[int, str, float]:
    """Run ``python -m p2pkit ARGS``; returns (exit code, stdout + stderr, seconds)."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "p2pkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    return result.returncode, result.stdout + result.stderr, time.perf_counter() - started


def steady_rate(output: str) -> tuple[float | None, int]:
    """Median it/s of the log lines after the first (which holds start-up and compilation)."""
    rates = [float(m.group(3)) for m in map(LINE.match, output.splitlines()) if m]
    steady = rates[1:] or rates
    return (statistics.median(steady) if steady else None), len(rates)


def train_case(
    name: str, recipe: str, data: Path, out: Path, iterations: int, sets: list[str], **kw
) -> dict:
    args = ["run", "recipe", recipe, "--data-root", str(data), "--out", str(out / "runs")]
    args += ["--name", name, "--no-progress"]
    for s in [
        f"train.max_iterations={iterations}",
        f"train.log_every={max(iterations // 6, 1)}",
        "train.sample_every=0",
        "train.save_every=1000",
        "train.save_every_minutes=0",
        *sets,
    ]:
        args += ["--set", s]
    args += kw.get("extra", [])
    code, text, seconds = p2pkit(*args)
    rate, lines = steady_rate(text)
    start = next((line for line in text.splitlines() if line.startswith("training ")), "")
    result = {
        "case": name,
        "ok": code == 0,
        "it_per_s": rate,
        "log_lines": lines,
        "wall_s": round(seconds, 1),
        "settings": sets + kw.get("extra", []),
        "start_line": start,
    }
    if code != 0:
        result["error"] = text[-1500:]
    if rate and recipe == "facades":
        result["paper_schedule_min"] = round(PAPER_ITERATIONS / rate / 60, 1)
    return result


def sync_audit(recipe: str, data: Path, out: Path, sets: list[str]) -> dict:
    """Count the host-device synchronisations inside training iterations.

    ``torch.cuda.set_sync_debug_mode("warn")`` warns at every call that waits for the
    GPU; it is switched on only inside ``_prepare`` and ``train_step``, so start-up,
    logging and checkpoints are not counted.
    """
    import torch

    from p2pkit.config import apply_overrides, load_recipe
    from p2pkit.engine.trainer import Trainer

    resolved = apply_overrides(
        load_recipe(recipe),
        [f"data.root={data}", "train.max_iterations=40", "train.log_every=20", *sets],
    )
    originals = {name: getattr(Trainer, name) for name in ("_prepare", "train_step")}

    def audited(name):
        def run(self, *args, **kwargs):
            torch.cuda.set_sync_debug_mode("warn")
            try:
                return originals[name](self, *args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")

        return run

    sources: dict[str, int] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in originals:
            setattr(Trainer, name, audited(name))
        try:
            Trainer(resolved, out / "runs" / "sync-audit", progress=False).fit()
        finally:
            for name, fn in originals.items():
                setattr(Trainer, name, fn)
    for w in caught:
        if "synchroniz" in str(w.message):
            key = f"{Path(w.filename).name}:{w.lineno}"
            sources[key] = sources.get(key, 0) + 1
    return {"case": "sync audit (40 iterations)", "syncs": sum(sources.values()), "where": sources}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check")))
    parser.add_argument("--data", type=Path, help="aligned dataset for the 256 px runs")
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run that checks the script")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []

    def report(result: dict) -> None:
        results.append(result)
        print(json.dumps(result), flush=True)
        (out / "gpu_check.json").write_text(json.dumps(results, indent=2) + "\n")

    import torch

    cuda = torch.cuda.is_available() and not args.smoke
    report(
        {
            "case": "environment",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "python": sys.version.split()[0],
        }
    )
    size = 32 if args.smoke else 256
    iterations = 12 if args.smoke else args.iterations
    data = args.data
    if data is None:
        data = out / "data" / f"synth{size}"
        if not data.is_dir():
            n_train, n_val = (8, 4) if args.smoke else (400, 100)
            code, text, _ = p2pkit(
                "data", "synth", str(data), "--size", str(size),
                "--n-train", str(n_train), "--n-val", str(n_val),
            )  # fmt: skip
            if code:
                sys.exit(f"could not make the synthetic data: {text[-800:]}")
    small = data
    if not args.smoke:
        small = out / "data" / "synth128"
        if not small.is_dir():
            p2pkit("data", "synth", str(small), "--size", "128")

    one_process = {"extra": ["--nproc", "1"]}  # torchrun's path: DDP over NCCL, world size 1
    if args.smoke:
        tiny = [
            "generator.name=unet",
            "generator.depth=5",
            "generator.ngf=8",
            "discriminator.ndf=8",
            "data.crop_size=32",
            "data.load_size=36",
            "train.device=cpu",
            "train.precision=fp32",
        ]
        cases = [("fp32", "facades", tiny, {}), ("ddp-1-process", "facades", tiny, one_process)]
    else:
        bf16, nchw, compiled = "train.precision=bf16", "train.channels_last=off", "train.compile=on"
        cases = [
            ("synth-facades-bf16", "synth-facades", [bf16], {}),
            ("facades-fp32", "facades", ["train.precision=fp32", nchw], {}),
            ("facades-fp16-gradscaler", "facades", ["train.precision=fp16"], {}),
            ("facades-bf16", "facades", [bf16], {}),
            ("facades-bf16-nchw", "facades", [bf16, nchw], {}),
            ("facades-bf16-compile", "facades", [bf16, compiled], {}),
            (
                "facades-bf16-compile-cudagraphs",
                "facades",
                [bf16, compiled, "train.compile_mode=reduce-overhead"],
                {},
            ),
            ("facades-bf16-ddp-nccl-1-process", "facades", [bf16], one_process),
            ("facades-bf16-compile-ddp-1-process", "facades", [bf16, compiled], one_process),
            (
                "facades-fp16-ema-ddp-1-process",
                "facades",
                ["train.precision=fp16", "train.ema_decay=0.999"],
                one_process,
            ),
            ("facades-bf16-ema", "facades", [bf16, "train.ema_decay=0.999"], {}),
        ]
    for name, recipe, sets, kw in cases:
        root = small if recipe == "synth-facades" else data
        try:
            report(train_case(name, recipe, root, out, iterations, sets, **kw))
        except Exception as exc:  # one broken case must not hide the others
            report({"case": name, "ok": False, "error": repr(exc)})

    run = out / "runs" / ("fp32" if args.smoke else "facades-bf16")
    device = "cuda" if cuda else "cpu"
    settings = [("batch 1", ["--batch-size", "1"]), ("batch 8", ["--batch-size", "8"])]
    if cuda:  # the smoke run's CPU may have no native bf16, where the option is refused
        settings.append(("batch 8, bf16", ["--batch-size", "8", "--precision", "bf16"]))
    for label, extra in settings:
        try:
            code, text, seconds = p2pkit(
                "translate", str(run), str(data / "val"), "--layout", "aligned",
                "--out", str(out / "translated"), "--device", device, *extra,
            )  # fmt: skip
            n = len(list((data / "val").iterdir()))
            report(
                {
                    "case": f"translate val ({n} images, {label}, wall incl. start-up)",
                    "ok": code == 0,
                    "images_per_s": round(n / seconds, 2),
                    "wall_s": round(seconds, 1),
                    **({} if code == 0 else {"error": text[-1500:]}),
                }
            )
        except Exception as exc:
            report({"case": f"translate {label}", "ok": False, "error": repr(exc)})
    try:
        code, text, seconds = p2pkit(
            "evaluate", str(run), "--data", str(data), "--split", "val", "--device", device,
            "--fcn-score", "off", "--no-progress",
        )  # fmt: skip
        report(
            {
                "case": "evaluate val (no FCN-score)",
                "ok": code == 0,
                "wall_s": round(seconds, 1),
                **({} if code == 0 else {"error": text[-1500:]}),
            }
        )
    except Exception as exc:
        report({"case": "evaluate", "ok": False, "error": repr(exc)})
    if cuda:
        try:
            report(sync_audit("facades", data, out, ["train.precision=bf16"]))
        except Exception as exc:
            report({"case": "sync audit", "ok": False, "error": repr(exc)})

    print("\nsummary (steady it/s; facades at the paper's 80 000 iterations):")
    for r in results:
        if "it_per_s" in r:
            eta = f"  -> {r['paper_schedule_min']} min" if "paper_schedule_min" in r else ""
            print(f"  {r['case']:<36} {r['it_per_s'] or 'failed'}{eta}")


if __name__ == "__main__":
    main()
