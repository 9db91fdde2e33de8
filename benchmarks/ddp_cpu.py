"""What a second process costs or brings on a CPU: 1 process against 2 (gloo), same global batch.

Each setting trains ``--iterations`` iterations through the command line, output redirected,
and its speed is the median it/s of the log lines after the first (start-up excluded),
turned into images per second (it/s x global batch). Settings alternate within each
repeat, so that a busy machine slows both alike. Prints the median over the repeats.

    python benchmarks/ddp_cpu.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gpu_check import p2pkit, steady_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ddp-cpu-"))
    data = work / "synth128"
    p2pkit("data", "synth", str(data), "--size", "128", "--n-train", "200", "--n-val", "4")
    common = [
        f"train.max_iterations={args.iterations}",
        f"train.log_every={args.iterations // 6}",
        "train.sample_every=0",
        "train.save_every_minutes=0",
        "train.precision=fp32",
    ]
    # (label, global batch, processes, per-process batch)
    settings = [
        ("synth-facades 128 px, 1 process x batch 4", 4, None, 4),
        ("synth-facades 128 px, 2 processes x batch 2", 4, 2, 2),
        ("synth-facades 128 px, 1 process x batch 2", 2, None, 2),
        ("synth-facades 128 px, 2 processes x batch 1", 2, 2, 1),
    ]
    rates: dict[str, list[float]] = {label: [] for label, *_ in settings}
    for repeat in range(args.repeats):
        for label, global_batch, nproc, batch in settings:
            cli = ["run", "recipe", "synth-facades", "--data-root", str(data)]
            cli += ["--out", str(work / "runs"), "--no-progress"]
            for s in [*common, f"train.batch_size={batch}"]:
                cli += ["--set", s]
            if nproc:
                cli += ["--nproc", str(nproc)]
            code, text, _ = p2pkit(*cli)
            rate, _ = steady_rate(text)
            if code or rate is None:
                sys.exit(f"{label} failed:\n{text[-2000:]}")
            rates[label].append(rate * global_batch)
            print(f"repeat {repeat + 1}: {label}: {rate * global_batch:.1f} images/s", flush=True)
    print("\nmedian images/s:")
    for label, values in rates.items():
        print(f"  {label:<48} {statistics.median(values):6.1f}")


if __name__ == "__main__":
    main()
