"""Images/s and peak memory of each translate engine, at each batch size (unet_256, 256 px).

Engines:

* ``torch-eval``: the network as trained, in eval mode (BatchNorm layers and dropout kept;
  what ``p2pkit translate`` runs by default);
* ``torch-folded``: BatchNorm folded into the convolutions, dropout removed
  (``p2pkit.models.fold.fold_batchnorm``);
* ``torch-folded-cl``: the same in channels_last memory format;
* ``torch-folded-bf16``: folded, then weights cast to bfloat16 (``p2pkit translate --precision
  bf16``; for CPUs with AVX512-BF16 or AMX);
* ``onnxruntime``: the folded network exported by ``p2pkit export``, run by onnxruntime
  (``p2pkit translate --engine onnxruntime``).

Each engine and batch size runs in a fresh process, so its peak resident memory (``VmHWM``, which
includes the interpreter and torch, about 0.3 GiB) is its own. Times are those of
``translate_tensor`` on random 256 x 256 inputs in [-1, 1] with random weights (the speed does
not depend on the values), after warm-up: the median of ``--repeats`` timed runs of ``--images``
images each; decoding and writing files are not included. Run it on an idle machine.

    python benchmarks/translate_engines.py                       # batch 1 and 8, 5 runs each
    python benchmarks/translate_engines.py --quick               # a smoke test, not a measurement
    python benchmarks/translate_engines.py --engines torch-folded onnxruntime --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENGINES = ("torch-eval", "torch-folded", "torch-folded-cl", "torch-folded-bf16", "onnxruntime")


def make_generator(ngf: int):
    """unet_256 with the seed-0 initial weights, in eval mode."""
    import torch

    import p2pkit

    torch.manual_seed(0)
    return p2pkit.create_generator("unet_256", ngf=ngf).eval()


def export(path: Path, ngf: int) -> None:
    """Export the benchmark's generator with p2pkit's exporter (which also checks it)."""
    import torch

    from p2pkit.inference.model import TrainedModel
    from p2pkit.inference.onnx import export_onnx

    meta = {
        "networks": {"generator": {"name": "unet_256", "options": {"ngf": ngf}}},
        "recipe": {"name": "benchmark", "data": {}},
    }
    model = TrainedModel(make_generator(ngf), None, meta, path.parent, torch.device("cpu"))
    export_onnx(model, path)


def peak_rss_kib() -> float:
    """This process's peak resident memory in KiB.

    ``VmHWM`` of /proc/self/status where there is one: ``ru_maxrss`` survives ``exec`` on Linux,
    so a worker started by a parent that had exported a model would report the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    scale = 1 / 1024 if sys.platform == "darwin" else 1  # bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def worker(args: argparse.Namespace) -> dict[str, object]:
    """Time one engine at one batch size in this process; returns the JSON row."""
    import torch

    from p2pkit.engine.allocator import tune_allocator
    from p2pkit.inference.tensors import translate_tensor
    from p2pkit.models.fold import fold_batchnorm

    tune_allocator()  # as load_trained does for p2pkit translate
    if args.threads:
        torch.set_num_threads(args.threads)
    engine, batch = args.worker, args.batch_size
    if engine == "onnxruntime":
        from p2pkit.inference.onnx import OnnxGenerator

        generator = OnnxGenerator(args.onnx, threads=args.threads or None)
    else:
        generator = make_generator(args.ngf)
        if engine != "torch-eval":
            generator = fold_batchnorm(generator, inplace=True)  # as load_trained(fold=True)
        if engine == "torch-folded-bf16":
            generator = generator.to(torch.bfloat16)  # as load_trained(precision="bf16")
    x = torch.rand(batch, 3, args.size, args.size) * 2 - 1
    if engine == "torch-folded-cl":
        generator = generator.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    calls = max(1, args.images // batch)

    def run() -> None:
        for _ in range(calls):
            translate_tensor(generator, x, batch_size=batch)

    for _ in range(args.warmup):
        translate_tensor(generator, x, batch_size=batch)
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run()
        rates.append(calls * batch / (time.perf_counter() - start))
    peak_kib = peak_rss_kib()
    return {
        "engine": engine,
        "batch": batch,
        "images_per_s": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "peak_rss_mib": peak_kib / 1024,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--size", type=int, default=256, help="image side (a multiple of 256)")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--images", type=int, default=16, help="images per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--onnx", type=Path, help="an exported file to reuse (else exported)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per row")
    parser.add_argument(
        "--quick", action="store_true", help="batch 1 only, 2 runs of 2 images: a smoke test"
    )
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.quick:
        args.batch_sizes, args.images, args.repeats, args.warmup = [1], 2, 2, 1

    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = args.onnx
        if "onnxruntime" in args.engines and onnx_file is None:
            onnx_file = Path(tmp) / "unet_256.onnx"
            print(f"exporting unet_256 (ngf {args.ngf}) to ONNX...", file=sys.stderr)
            export(onnx_file, args.ngf)
        rows = []
        for batch in args.batch_sizes:
            for engine in args.engines:
                command = [
                    sys.executable, __file__, "--worker", engine, "--batch-size", str(batch),
                    "--size", str(args.size), "--ngf", str(args.ngf),
                    "--images", str(args.images), "--repeats", str(args.repeats),
                    "--warmup", str(args.warmup), "--threads", str(args.threads),
                ]  # fmt: skip
                if engine == "onnxruntime":
                    command += ["--onnx", str(onnx_file)]
                done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
                if done.returncode != 0:
                    sys.exit(f"{engine} at batch {batch} failed:\n{done.stderr}")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(row)
                if args.json:
                    print(json.dumps(row), flush=True)
                else:
                    print(
                        f"{engine} batch {batch}: {row['images_per_s']:.2f} images/s",
                        file=sys.stderr,
                    )
    if args.json:
        return
    print(
        f"\nunet_256 (ngf {args.ngf}), {args.size} px, {rows[0]['threads']} threads; median of "
        f"{args.repeats} runs of {args.images} images\n"
    )
    print("| engine | batch | images/s (median) | min - max | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['engine']} | {row['batch']} | {row['images_per_s']:.2f} | "
            f"{row['min']:.2f} - {row['max']:.2f} | {row['peak_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
