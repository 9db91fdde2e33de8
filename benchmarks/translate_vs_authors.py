"""Time ``p2pkit translate`` against the pix2pix authors' own ``test.py``, process for process.

Both programs translate the same facades images with the same generator: a randomly
initialised ``unet_256`` (BatchNorm, dropout) built and saved by the authors' own
``models/networks.py`` in their checkpoint layout, then converted into a p2pkit run folder
by ``p2pkit import authors``. Each measurement is one whole process, start to exit, as a
user would run it (interpreter start, imports, model load, reading, translating and
writing every image), timed from outside:

* the authors: ``python test.py --model pix2pix --direction BtoA --phase val --num_test N``
  in a copy of https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix (BSD licence; it is
  not part of p2pkit and is never committed here: point ``--authors-dir`` at it);
* p2pkit: ``p2pkit translate RUN INPUTS --layout aligned --out OUT`` (its defaults: the torch
  engine, ``--batch-size auto``; ``--engine`` and ``--batch-size`` here change them).

Processes alternate (the order flips every repeat) and all get the same environment: the
thread variables (``OMP_NUM_THREADS`` and friends) are removed for every process, or all
set to ``--threads``. Each repeat runs N images (``--images``) and K images (``--short``):
whole-process images/s is N / t(N); steady-state images/s, which leaves out start-up, is
(N - K) / (t(N) - t(K)) of the same repeat; start-up is what t(K) has left after K
steady-state images.

Test-time mode. The authors' ``test.py`` calls ``model.eval()`` only with ``--eval``;
without it BatchNorm normalises with each test image's own statistics and dropout stays on
(the paper's protocol). ``p2pkit translate`` runs in eval mode unless ``--paper-protocol``.
The speed comparison pairs their ``--eval`` with p2pkit's default (``--modes eval``);
``--modes both`` also times their default against ``--paper-protocol``. In eval mode the
outputs are compared image by image: the authors write ``uint8((y + 1) / 2 * 255)``
(truncation) where p2pkit rounds, so an exact translation differs by 0 or 1 per channel.

Run it on an idle machine, and quote medians::

    python benchmarks/translate_vs_authors.py \\
        --authors-dir /work/authors-pix2pix --authors-python /work/authors-venv/bin/python \\
        --data /work/shared/datasets/facades --repeats 5

``--quick`` (10 and 2 images, no warm-up run) checks that everything works end to end; its
numbers mean little.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}
EXPERIMENT = "facades_bench"  # the authors' --name: checkpoints/<name>/latest_net_G.pth

# Run with the authors' interpreter inside their folder: builds the generator with their
# define_G and init_weights (normal, gain 0.02, as their train.py does), gives its BatchNorm
# layers running statistics from a few training images (so that eval-mode outputs are
# not near-constant), and saves the state_dict where their test.py looks for it.
MAKE_GENERATOR = r"""
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models import networks

out, train_dir = Path(sys.argv[1]), Path(sys.argv[2])
direction, seed = sys.argv[3], int(sys.argv[4])
torch.manual_seed(seed)
net = networks.define_G(3, 3, 64, "unet_256", "batch", True, "normal", 0.02)
networks.init_weights(net, "normal", 0.02)

def side(path):
    ab = np.asarray(Image.open(path).convert("RGB").resize((512, 256), Image.BICUBIC))
    half = ab[:, 256:] if direction == "BtoA" else ab[:, :256]
    return torch.from_numpy(half.copy()).permute(2, 0, 1).float() / 127.5 - 1.0

files = sorted(p for p in train_dir.iterdir() if p.suffix.lower() in {".jpg", ".png"})[:16]
batch = torch.stack([side(p) for p in files])
norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
for m in norms:
    m.reset_running_stats()
    m.momentum = None  # cumulative average over the calibration passes
net.train()
with torch.no_grad():
    for chunk in batch.split(4):
        net(chunk)
for m in norms:
    m.momentum = 0.1
out.parent.mkdir(parents=True, exist_ok=True)
torch.save(net.state_dict(), out)
net.eval()
with torch.no_grad():
    y = net(batch[:1])
print(f"generator saved: {out} (eval output std {y.std().item():.3f})")
"""

THREAD_PROBE = "import torch; print(torch.__version__, torch.get_num_threads())"


class BenchmarkError(RuntimeError):
    """A setup step failed; the message says which and why."""


@dataclass
class Tool:
    name: str
    mode: str  # "eval" or "paper"
    engine: str = ""  # p2pkit's --engine; "" for the authors
    command: str = ""  # another p2pkit command than the main one (--compare-p2pkit)
    precision: str = "fp32"  # p2pkit's --precision
    times: dict[int, list[float]] = field(default_factory=dict)  # images -> seconds per repeat


def program_name(tool: Tool) -> str:
    """A program's name in logs and output folders: ``authors``, ``p2pkit-torch-bf16``..."""
    name = f"{tool.name}-{tool.engine}" if tool.engine else tool.name
    name += f"-{tool.precision}" if tool.precision != "fp32" else ""
    return name + ("-compared" if tool.command else "")


def cpu_info() -> dict[str, object]:
    info: dict[str, object] = {
        "model_name": platform.processor() or "unknown",
        "avx512_bf16": None,
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            info["model_name"] = value.strip()
        elif key.strip() == "Flags":
            info["avx512_bf16"] = "avx512_bf16" in value.split()
    if info["avx512_bf16"] is None:
        try:
            flags = Path("/proc/cpuinfo").read_text()
            info["avx512_bf16"] = "avx512_bf16" in flags.split()
        except OSError:
            pass
    return info


def child_environment(threads: int | None, device: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env.pop(name, None)
        if threads is not None:
            env[name] = str(threads)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # their test.py takes cuda:0 whenever it sees one
    env["WANDB_MODE"] = "disabled"  # their util/visualizer.py imports wandb; nothing logs
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_checked(cmd: list[str], what: str, **kwargs: object) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BenchmarkError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout


def find_p2pkit(given: str | None) -> str:
    if given:
        return given
    beside = Path(sys.executable).parent / "p2pkit"
    if beside.exists():
        return str(beside)
    found = shutil.which("p2pkit")
    if not found:
        raise BenchmarkError("no p2pkit command found: install p2pkit or pass --p2pkit PATH")
    return found


def check_import_command(p2pkit: str, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [p2pkit, "import", "authors", "--help"], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise BenchmarkError(
            "this p2pkit has no working `p2pkit import authors` command, which converts the "
            "authors' generator into a run folder; the benchmark needs it to translate the "
            f"same network with both programs ({p2pkit} import authors --help said: "
            f"{(proc.stdout + proc.stderr).strip().splitlines()[-1:]})"
        )


def check_authors(authors_dir: Path, authors_python: Path) -> None:
    needed = ["test.py", "models/networks.py", "models/pix2pix_model.py", "data/aligned_dataset.py"]
    missing = [n for n in needed if not (authors_dir / n).is_file()]
    if missing:
        raise BenchmarkError(
            f"{authors_dir} is not a copy of pytorch-CycleGAN-and-pix2pix: no {', '.join(missing)}"
        )
    if not authors_python.exists():
        raise BenchmarkError(f"--authors-python {authors_python} does not exist")


def subset(data_split: Path, root: Path, n: int) -> Path:
    """Copy the first n images, in the order their test.py reads them (sorted paths)."""
    files = sorted((p for p in data_split.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=str)
    if len(files) < n:
        raise BenchmarkError(f"{data_split} holds {len(files)} images; {n} are needed")
    folder = root / f"n{n}" / "val"  # their --phase val reads DATAROOT/val
    folder.mkdir(parents=True)
    for p in files[:n]:
        shutil.copy2(p, folder / p.name)
    return folder


def authors_command(
    args: argparse.Namespace, dataroot: Path, checkpoints: Path, results: Path, n: int, mode: str
) -> list[str]:
    cmd = [
        str(args.authors_python),
        "test.py",
        "--dataroot",
        str(dataroot),
        "--phase",
        "val",
        "--name",
        EXPERIMENT,
        "--model",
        "pix2pix",
        "--direction",
        args.direction,
        "--netG",
        "unet_256",
        "--norm",
        "batch",
        "--num_test",
        str(n),
        "--checkpoints_dir",
        str(checkpoints),
        "--results_dir",
        str(results),
    ]
    if mode == "eval":
        cmd.append("--eval")
    return cmd


def p2pkit_command(
    args: argparse.Namespace,
    p2pkit: str,
    run: Path,
    inputs: Path,
    out: Path,
    mode: str,
    engine: str = "torch",
    precision: str = "fp32",
) -> list[str]:
    cmd = [
        p2pkit,
        "translate",
        str(run),
        str(inputs),
        "--out",
        str(out),
        "--layout",
        "aligned",
        "--device",
        args.device,
        "--engine",
        engine,
    ]
    if precision != "fp32":  # an older p2pkit (--compare-p2pkit) may not know the option
        cmd += ["--precision", precision]
    if args.batch_size is not None:
        cmd += ["--batch-size", args.batch_size]
    if mode == "paper":
        cmd.append("--paper-protocol")
    if args.save_triplets:
        cmd.append("--save-triplets")
    return cmd


def timed(cmd: list[str], cwd: Path | None, env: dict[str, str], log: Path) -> float:
    with log.open("w") as fh:
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-25:])
        raise BenchmarkError(f"exit {proc.returncode}: {' '.join(cmd)}\n{tail}")
    return elapsed


def authors_outputs(results: Path) -> Path:
    return results / EXPERIMENT / "val_latest" / "images"


def count_outputs(tool: str, out: Path) -> int:
    if tool == "authors":
        return len(list(authors_outputs(out).glob("*_fake_B.png")))
    return len(list(out.glob("*.png")))


def compare_outputs(authors_results: Path, p2pkit_out: Path) -> dict[str, object]:
    """Per-pixel comparison of their fake_B PNGs with p2pkit's outputs."""
    import numpy as np
    from PIL import Image

    theirs = sorted(authors_outputs(authors_results).glob("*_fake_B.png"))
    diffs: list[np.ndarray] = []
    missing = []
    for path in theirs:
        stem = path.name[: -len("_fake_B.png")]
        ours = p2pkit_out / f"{stem}.png"
        if not ours.exists():
            missing.append(stem)
            continue
        a = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
        b = np.asarray(Image.open(ours).convert("RGB"), dtype=np.int16)
        if a.shape != b.shape:
            raise BenchmarkError(f"{stem}: authors' output is {a.shape}, p2pkit's {b.shape}")
        diffs.append(b - a)
    if not diffs:
        raise BenchmarkError("no pair of outputs to compare")
    d = np.concatenate([x.ravel() for x in diffs])
    values, counts = np.unique(d, return_counts=True)
    return {
        "images": len(diffs),
        "missing_in_p2pkit": missing,
        "max_abs_diff": int(np.abs(d).max()),
        "mean_abs_diff": float(np.abs(d).mean()),
        "diff_histogram": {int(v): int(c) for v, c in zip(values, counts, strict=True)},
    }


def summary(values: list[float]) -> dict[str, float | None]:
    good = [v for v in values if v == v]  # drop NaN
    if not good:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(good), "min": min(good), "max": max(good)}


def fmt(s: dict[str, float | None], digits: int = 2) -> str:
    if s["median"] is None:
        return "n/a"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def analyse(tool: Tool, n: int, k: int) -> dict[str, object]:
    tn, tk = tool.times[n], tool.times[k]
    whole = [n / t for t in tn]
    steady, startup = [], []
    for a, b in zip(tn, tk, strict=True):
        if a > b:
            rate = (n - k) / (a - b)
            steady.append(rate)
            startup.append(b - k / rate)
        else:  # noise swamped the difference
            steady.append(float("nan"))
            startup.append(float("nan"))
    return {
        "tool": tool.name,
        "mode": tool.mode,
        "engine": tool.engine,
        "precision": tool.precision,
        "command": tool.command,
        "seconds": {str(n): tn, str(k): tk},
        "whole_process_images_per_s": summary(whole),
        "steady_state_images_per_s": summary(steady),
        "startup_s": summary(startup),
        "whole_process_s": summary(tn),
    }


def markdown(rows: list[dict[str, object]], n: int, repeats: int) -> str:
    lines = [
        f"| program | test-time mode | {n} images, s | whole process, images/s "
        "| steady state, images/s | start-up, s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    labels = {
        ("authors", "eval"): ("authors' test.py --eval", "eval"),
        ("authors", "paper"): ("authors' test.py", "paper (train-mode BN, dropout)"),
        ("p2pkit", "eval"): ("p2pkit translate", "eval"),
        ("p2pkit", "paper"): (
            "p2pkit translate --paper-protocol",
            "paper (train-mode BN, dropout)",
        ),
    }
    for r in rows:
        name, mode = labels[(str(r["tool"]), str(r["mode"]))]
        if r.get("engine") not in (None, "", "torch"):
            name += f" --engine {r['engine']}"
        if r.get("precision") not in (None, "fp32"):
            name += f" --precision {r['precision']}"
        if r.get("command"):
            name += f" (`{r['command']}`)"
        lines.append(
            f"| {name} | {mode} | {fmt(r['whole_process_s'])} "  # type: ignore[arg-type]
            f"| {fmt(r['whole_process_images_per_s'])} "  # type: ignore[arg-type]
            f"| {fmt(r['steady_state_images_per_s'])} "  # type: ignore[arg-type]
            f"| {fmt(r['startup_s'])} |"  # type: ignore[arg-type]
        )
    lines.append("")
    lines.append(f"Median (min-max) of {repeats} repeat(s).")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--authors-dir",
        type=Path,
        required=True,
        help="copy of junyanz/pytorch-CycleGAN-and-pix2pix (holds test.py)",
    )
    p.add_argument(
        "--authors-python",
        type=Path,
        required=True,
        help="interpreter with what their code imports (torch, torchvision, dominate, wandb)",
    )
    p.add_argument(
        "--data", type=Path, required=True, help="an aligned A|B dataset folder, such as facades"
    )
    p.add_argument("--split", default="val", help="its sub-folder to translate")
    p.add_argument("--direction", default="BtoA", choices=["AtoB", "BtoA"])
    p.add_argument("--images", type=int, default=100, help="N: images per long run")
    p.add_argument(
        "--short",
        type=int,
        default=10,
        help="K: images per short run (steady state = (N-K) / (t(N)-t(K)))",
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed K-image runs of each program first (file cache, compiled code)",
    )
    p.add_argument(
        "--modes",
        choices=["eval", "paper", "both"],
        default="eval",
        help="eval: their --eval vs p2pkit's default; paper: their default vs --paper-protocol",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="set OMP_NUM_THREADS and friends to this for every process "
        "(default: unset for every process)",
    )
    p.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="cpu hides GPUs from both programs"
    )
    p.add_argument(
        "--generator",
        type=Path,
        help="use this latest_net_G.pth (unet_256, batch norm, with dropout) instead "
        "of a random one, e.g. their published facades_label2photo",
    )
    p.add_argument(
        "--save-triplets",
        action="store_true",
        help="make p2pkit also write input|output|target strips (the authors' "
        "test.py writes real_A, fake_B and real_B and an HTML page)",
    )
    p.add_argument("--p2pkit", help="the p2pkit command (default: the one beside this Python)")
    p.add_argument(
        "--compare-p2pkit",
        metavar="COMMAND",
        help="also time this other p2pkit command (e.g. a wrapper running an older checkout) "
        "with the torch engine, side by side with the others, to measure a change",
    )
    p.add_argument(
        "--batch-size",
        help="p2pkit translate's --batch-size (default: its own default, auto)",
    )
    p.add_argument(
        "--engine",
        nargs="+",
        default=["torch"],
        choices=["torch", "onnxruntime"],
        help="p2pkit translate's --engine, one or several (timed side by side, alternating); "
        "onnxruntime exports the run once first (untimed) and runs in eval mode only",
    )
    p.add_argument(
        "--precision",
        nargs="+",
        default=["fp32"],
        choices=["fp32", "bf16", "fp16"],
        help="p2pkit translate's --precision: each one other than fp32 (which the --engine "
        "programs use) adds a program, the torch engine in eval mode at that precision; its "
        "outputs are compared with the authors' too",
    )
    p.add_argument(
        "--work", type=Path, help="working folder, new or empty (default: a temporary one)"
    )
    p.add_argument("--keep", action="store_true", help="keep the working folder")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--quick",
        action="store_true",
        help="10 and 2 images, no warm-up: checks the set-up, not a measurement",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.short, args.warmup = 10, 2, 0
    if not 0 < args.short < args.images:
        p.error("need 0 < --short < --images")
    args.authors_dir = args.authors_dir.resolve()
    args.authors_python = args.authors_python.absolute()  # keep a venv's symlink: no resolve()
    args.data = args.data.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = child_environment(args.threads, args.device)
    check_authors(args.authors_dir, args.authors_python)
    p2pkit = find_p2pkit(args.p2pkit)
    check_import_command(p2pkit, env)
    split = args.data / args.split
    if not split.is_dir():
        raise BenchmarkError(f"no folder {split}")

    if args.work:
        work = args.work.resolve()
        if work.exists() and any(work.iterdir()):
            raise BenchmarkError(f"--work {work} is not empty")
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="p2pkit-vs-authors-"))
    print(f"working folder: {work}")
    try:
        return benchmark(args, env, p2pkit, split, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def benchmark(
    args: argparse.Namespace, env: dict[str, str], p2pkit: str, split: Path, work: Path
) -> int:
    n, k = args.images, args.short
    cpu = cpu_info()
    load_before = os.getloadavg()

    # The generator, in the authors' layout, and the same network as a p2pkit run folder.
    checkpoints = work / "checkpoints"
    ckpt = checkpoints / EXPERIMENT / "latest_net_G.pth"
    if args.generator:
        ckpt.parent.mkdir(parents=True)
        shutil.copy2(args.generator, ckpt)
        print(f"generator: {args.generator}")
    else:
        train = args.data / "train"
        calib = train if train.is_dir() else split
        print(
            run_checked(
                [
                    str(args.authors_python),
                    "-c",
                    MAKE_GENERATOR,
                    str(ckpt),
                    str(calib),
                    args.direction,
                    str(args.seed),
                ],
                "making the generator with the authors' networks.define_G",
                cwd=args.authors_dir,
                env={**env, "PYTHONPATH": str(args.authors_dir)},
            ).strip()
        )
    run = work / "run"
    run_checked(
        [
            p2pkit,
            "import",
            "authors",
            str(ckpt),
            "--netG",
            "unet_256",
            "--norm",
            "batch",
            "--direction",
            args.direction,
            "--out",
            str(run),
        ],
        "p2pkit import authors",
        env=env,
    )
    print(f"p2pkit run folder: {run}")
    if "onnxruntime" in args.engine:
        # Like training, the export is done once per model, so it is not timed.
        run_checked([p2pkit, "export", str(run), "--format", "onnx"], "p2pkit export", env=env)

    probes = {
        "authors": run_checked([str(args.authors_python), "-c", THREAD_PROBE], "probe", env=env),
        "p2pkit": run_checked([sys.executable, "-c", THREAD_PROBE], "probe", env=env),
    }
    threads = {name: out.split() for name, out in probes.items()}  # [torch version, threads]

    inputs = {size: subset(split, work / "inputs", size) for size in (n, k)}
    modes = ["eval", "paper"] if args.modes == "both" else [args.modes]
    tools = []
    for mode in modes:
        tools.append(Tool("authors", mode))
        # The paper's protocol is not an exported graph: onnxruntime runs eval mode only.
        tools += [Tool("p2pkit", mode, e) for e in args.engine if mode == "eval" or e == "torch"]
        if mode == "eval":
            extra = [p for p in args.precision if p != "fp32"]
            tools += [Tool("p2pkit", mode, "torch", precision=p) for p in extra]
        if args.compare_p2pkit:
            tools.append(Tool("p2pkit", mode, "torch", args.compare_p2pkit))
    for t in tools:
        t.times = {n: [], k: []}
    logs = work / "logs"
    logs.mkdir()
    comparison: dict[str, object] | None = None

    def one(tool: Tool, size: int, label: str) -> float:
        name = program_name(tool)
        out = work / "out" / f"{name}-{tool.mode}-n{size}-{label.replace(' ', '')}"
        if tool.name == "authors":
            cmd = authors_command(args, inputs[size].parent, checkpoints, out, size, tool.mode)
            cwd: Path | None = args.authors_dir
        else:
            command = tool.command or p2pkit
            cmd = p2pkit_command(
                args, command, run, inputs[size], out, tool.mode, tool.engine, tool.precision
            )
            cwd = None
        seconds = timed(cmd, cwd, env, logs / f"{out.name}.log")
        made = count_outputs(tool.name, out)
        if made != size:
            raise BenchmarkError(f"{' '.join(cmd)} wrote {made} outputs, not {size}")
        print(f"  {name:18s} {tool.mode:5s} {size:4d} images  {seconds:7.2f} s  ({label})")
        return seconds

    print("commands:")
    for mode in modes:
        print(
            "  "
            + " ".join(
                authors_command(args, Path("DATAROOT"), checkpoints, Path("RESULTS"), n, mode)
            )
        )
        for t in tools:
            if t.name == "p2pkit" and t.mode == mode:
                command = t.command or p2pkit
                cmd = p2pkit_command(
                    args, command, run, Path("INPUTS"), Path("OUT"), mode, t.engine, t.precision
                )
                print("  " + " ".join(cmd))
    print(f"    (run from {args.authors_dir} for the authors' test.py)")

    for w in range(args.warmup):
        for t in tools if w % 2 == 0 else tools[::-1]:
            one(t, k, f"warm-up {w + 1}")
    for r in range(args.repeats):
        order = tools if r % 2 == 0 else tools[::-1]
        for size in (n, k):
            for t in order:
                t.times[size].append(one(t, size, f"repeat {r + 1}"))
        if comparison is None and "eval" in modes:
            comparison = {
                program_name(t): compare_outputs(
                    work / "out" / f"authors-eval-n{n}-repeat{r + 1}",
                    work / "out" / f"{program_name(t)}-eval-n{n}-repeat{r + 1}",
                )
                for t in tools
                if t.name == "p2pkit" and t.mode == "eval"
            }
        if not args.keep:  # outputs of later repeats are not looked at
            for d in (work / "out").iterdir():
                shutil.rmtree(d)

    load_after = os.getloadavg()
    rows = [analyse(t, n, k) for t in tools]
    table = markdown(rows, n, args.repeats)
    results = {
        "cpu": cpu,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "device": args.device,
        "threads_setting": args.threads if args.threads is not None else "unset",
        "torch_and_threads": threads,
        "images": n,
        "short": k,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "modes": modes,
        "engines": args.engine,
        "precisions": args.precision,
        "generator": str(args.generator) if args.generator else f"random, seed {args.seed}",
        "save_triplets": args.save_triplets,
        "output_comparison_eval": comparison,
        "rows": rows,
    }
    print()
    print(
        f"CPU: {cpu['model_name']}; avx512_bf16: {cpu['avx512_bf16']}; "
        f"{cpu['affinity_cpus']} usable of {cpu['logical_cpus']} logical CPUs"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    print(
        f"device: {args.device}; thread variables: "
        f"{'unset' if args.threads is None else args.threads} for every process; torch "
        f"threads: authors {threads['authors'][1]} (torch {threads['authors'][0]}), "
        f"p2pkit {threads['p2pkit'][1]} (torch {threads['p2pkit'][0]})"
    )
    if comparison is not None:
        results["outputs_match"] = True
        precision_of = {program_name(t): t.precision for t in tools}
        for name, c in comparison.items():
            ok = c["max_abs_diff"] <= 1 and not c["missing_in_p2pkit"]  # type: ignore[operator]
            exact = precision_of[name] == "fp32"
            verdict = "MATCH (within their truncation vs rounding)" if ok else "MISMATCH"
            if not exact:  # a lower precision is not expected to match to the last level
                verdict = "compared (a lower precision; not required to match)"
            print(
                f"outputs ({name}, eval mode, {c['images']} images): max |p2pkit - authors| "
                f"= {c['max_abs_diff']}, mean {c['mean_abs_diff']:.4f}, differences "
                f"{c['diff_histogram']} -> {verdict}"
            )
            if exact:
                results["outputs_match"] = results["outputs_match"] and ok
    if "paper" in modes:
        print("paper mode: outputs not compared (dropout draws differ from run to run)")
    print()
    print(table)
    results["markdown"] = table
    (work / "results.json").write_text(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nresults: {args.json}")
    return 0 if results.get("outputs_match", True) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
