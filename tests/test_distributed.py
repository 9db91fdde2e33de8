"""Training in several processes (torchrun, gloo on a CPU); runs a cluster can stop, restart."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from p2pkit.config import apply_overrides, load_recipe
from p2pkit.engine.checkpoint import list_checkpoints, load_checkpoint
from p2pkit.engine.distributed import (
    EXIT_PREEMPTED,
    epoch_permutation,
    epoch_shard,
    iterations_for,
)
from p2pkit.engine.trainer import Trainer

HELPERS = Path(__file__).parent / "helpers"


def torchrun(nproc: int, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``torchrun --standalone --nproc_per_node=N ARGS`` as a user would."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def p2pkit_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "p2pkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "losses.jsonl").read_text().splitlines()]


def with_settings(recipe: Path, tmp_path: Path, name: str, **train: object) -> Path:
    """A copy of the tiny recipe with [train] keys replaced."""
    text = recipe.read_text()
    lines = []
    for line in text.splitlines():
        key = line.split("=")[0].strip()
        if key in train:
            continue
        lines.append(line)
        if line.strip() == "[train]":
            lines += [f"{k} = {json.dumps(v)}" for k, v in train.items()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class LongJob:
    """``p2pkit run recipe`` (``--nproc N`` if given) on a schedule far too long to finish.

    Its stdout is read by a thread into ``lines`` (nothing is lost to read-ahead
    buffers); stderr goes to a file.
    """

    def __init__(self, tiny_data: Path, tmp_path: Path, nproc: int | None = 2) -> None:
        import threading

        recipe = tmp_path / "long.toml"
        recipe.write_text(
            EQUIVALENCE.format(root=tiny_data.as_posix(), batch=1).replace(
                "epochs = 1", "epochs = 500"
            )
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "p2pkit", "run", "recipe", str(recipe)]
        self.err_path = tmp_path / "stderr.txt"
        with open(self.err_path, "w") as err:
            self.process = subprocess.Popen(
                [*command, "--out", str(tmp_path / "runs")]
                + (["--nproc", str(nproc)] if nproc else []),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
                start_new_session=True,
            )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for_line(self, prefix: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.startswith(prefix) for line in self.lines):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no line {prefix!r}; stderr: {self.stderr()[-2000:]}")

    def finish(self, timeout: float = 120) -> tuple[str, str]:
        self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return "".join(self.lines), self.stderr()

    def stderr(self) -> str:
        return self.err_path.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)


# ------------------------------------------------------------------ sharding


def test_each_iteration_of_w_processes_covers_the_next_block_of_the_permutation():
    perm = epoch_permutation(seed=3, epoch=0, n=10)
    world, batch = 2, 2
    shards = [epoch_shard(perm, 0, r, world) for r in range(world)]
    for k in range(iterations_for(10, world, batch)):
        seen = torch.cat([s[k * batch : (k + 1) * batch] for s in shards])
        block = perm[k * batch * world : (k + 1) * batch * world]
        assert sorted(seen.tolist()) == sorted(block.tolist())


def test_shards_are_disjoint_padded_to_equal_length_and_cover_every_image():
    perm = epoch_permutation(seed=0, epoch=1, n=7)
    shards = [epoch_shard(perm, 0, r, 3) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    assert set(torch.cat(shards).tolist()) == set(range(7))
    # Two images are dealt twice as padding, no more.
    assert len(torch.cat(shards)) - 7 == 2


def test_a_resumed_epoch_continues_at_the_same_image_with_another_world_size():
    perm = epoch_permutation(seed=0, epoch=0, n=9)
    rest = [epoch_shard(perm, 4, r, 2) for r in range(2)]
    assert sorted(torch.cat(rest).tolist()[:5]) == sorted(perm[4:].tolist())
    assert iterations_for(9 - 4, 2, 1) == 3


def test_the_epoch_order_depends_on_seed_and_epoch_only():
    torch.manual_seed(123)
    a = epoch_permutation(0, 2, 50)
    torch.rand(1000)
    assert torch.equal(a, epoch_permutation(0, 2, 50))
    assert not torch.equal(a, epoch_permutation(0, 3, 50))


# ----------------------------------------------------------- DDP correctness

EQUIVALENCE = """
name = "ddp-equivalence"
[data]
dataset = "aligned"
root = "{root}"
direction = "BtoA"
load_size = 32
crop_size = 32
preprocess = "none"
flip = false
max_images = 8
[generator]
name = "unet"
depth = 5
ngf = 4
norm = "instance"
dropout = 0.0
[discriminator]
name = "patchgan_16"
ndf = 4
norm = "instance"
[train]
epochs = 1
epochs_decay = 0
batch_size = {batch}
precision = "fp32"
log_every = 1
sample_every = 0
save_every = 1
"""


def cancelled_biases(prefix: str, network: torch.nn.Module) -> set[str]:
    """Biases of convolutions followed by InstanceNorm, which subtracts them right away.

    Their true gradient is zero, so Adam turns mere rounding noise into full-size
    steps: they differ between any two runs that round differently, and say nothing.
    """
    leaves = [(n, m) for n, m in network.named_modules() if not list(m.children())]
    return {
        f"{prefix}/{name}.bias"
        for (name, module), (_, after) in itertools.pairwise(leaves)
        if isinstance(module, torch.nn.modules.conv._ConvNd)
        and module.bias is not None
        and isinstance(after, torch.nn.InstanceNorm2d)
    }


def test_two_processes_at_batch_1_train_exactly_like_one_process_at_batch_2(tiny_data, tmp_path):
    import p2pkit

    for batch in (1, 2):
        text = EQUIVALENCE.format(root=tiny_data.as_posix(), batch=batch)
        (tmp_path / f"b{batch}.toml").write_text(text)
    worker = str(HELPERS / "ddp_worker.py")
    two = torchrun(2, worker, *(str(tmp_path / n) for n in ("b1.toml", "run2", "w2")))
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [sys.executable, worker, *(str(tmp_path / n) for n in ("b2.toml", "run1", "w1"))],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    rank0 = safetensors.torch.load_file(tmp_path / "w2" / "rank0.safetensors")
    rank1 = safetensors.torch.load_file(tmp_path / "w2" / "rank1.safetensors")
    single = safetensors.torch.load_file(tmp_path / "w1" / "rank0.safetensors")
    assert rank0.keys() == rank1.keys() == single.keys()
    assert any(k.startswith("D_grad/") for k in rank0)
    G = p2pkit.create_generator("unet", depth=5, ngf=4, norm="instance", dropout=0.0)
    D = p2pkit.create_discriminator("patchgan_16", ndf=4, norm="instance")
    ignored = cancelled_biases("G", G) | cancelled_biases("D", D)
    ignored |= {k.replace("D/", "D_grad/") for k in ignored}
    assert len(ignored) > 4 and ignored < set(rank0)
    for key in rank0:
        # Both processes hold the very same weights, and D's gradients of its own step.
        assert torch.equal(rank0[key], rank1[key]), key
        if key in ignored:
            continue
        # The same as one process that saw both images at once, within float rounding.
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-4, atol=1e-5, msg=key)
    assert rows(tmp_path / "run2")[-1]["iteration"] == 4 == rows(tmp_path / "run1")[-1]["iteration"]


def test_torchrun_trains_one_run_that_resumes_with_two_processes_and_with_one(
    tiny_recipe, tmp_path
):
    # With the generator's EMA, bf16 autocast and channels_last, which must work under DDP too.
    recipe = with_settings(
        tiny_recipe,
        tmp_path,
        "tiny",
        batch_size=1,
        max_iterations=2,
        ema_decay=0.9,
        precision="bf16",
        channels_last="on",
    )
    out = tmp_path / "runs"
    first = torchrun(2, "-m", "p2pkit", "run", "recipe", str(recipe), "--out", str(out))
    assert first.returncode == 0, first.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == ["tiny"]
    run = out / "tiny"
    assert "2 processes (gloo) x batch 1 = global batch 2" in first.stdout
    assert first.stdout.count("training tiny:") == 1  # rank 0 alone speaks
    assert [r["iteration"] for r in rows(run)] == [1, 2]
    assert [s for s, _ in list_checkpoints(run)] == [2]
    meta = load_checkpoint(run).meta
    assert meta["counters"]["images"] == 4 and meta["counters"]["world_size"] == 2
    assert "1" in meta["rank_rng"]  # rank 1's RNG is kept for an exact resume
    assert "generator_ema" in meta["modules"]

    second = p2pkit_cli(
        "run", "recipe", "tiny", "--resume", "--out", str(out), "--nproc", "2",
        "--set", "train.max_iterations=3", "--no-progress",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert [r["iteration"] for r in rows(run)] == [1, 2, 3]
    counters = load_checkpoint(run).meta["counters"]
    assert (counters["epoch"], counters["images"]) == (1, 0)  # the first epoch is done

    third = p2pkit_cli(
        "run", "recipe", "tiny", "--resume", "--out", str(out),
        "--set", "train.max_iterations=0", "--no-progress",
    )  # fmt: skip
    assert third.returncode == 0, third.stderr[-3000:]
    assert "global batch changed from 2 (2 processes x 1) to 1 (1 process x 1)" in third.stdout
    iterations = [r["iteration"] for r in rows(run)]
    assert iterations == list(range(1, 10))  # 3 at global batch 2, then 6 at batch 1
    meta = load_checkpoint(run).meta
    assert meta["counters"] == {
        "epoch": 2,
        "iteration": 9,
        "images": 0,
        "world_size": 1,
        "batch_size": 1,
    }
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert all(n == "latest" or (n.startswith("step-") and "." not in n) for n in names), names


def test_a_failing_process_stops_the_whole_job_with_its_error(tiny_recipe, tmp_path):
    result = p2pkit_cli(
        "run", "recipe", str(tiny_recipe), "--out", str(tmp_path / "runs"), "--nproc", "2",
        "--set", "data.root=" + str(tmp_path / "missing"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_syncbatch_is_refused_on_a_cpu_in_one_line(tiny_recipe, tmp_path):
    from p2pkit.errors import ConfigError

    recipe = apply_overrides(load_recipe(tiny_recipe), ["generator.norm=syncbatch"])
    with pytest.raises(ConfigError, match=r'generator.norm = "syncbatch" .* needs CUDA'):
        Trainer(recipe, tmp_path / "run", progress=False).fit()


# ------------------------------------------------------- stop and restart


def train(recipe_path, run_dir, *overrides, resume=False, console=None):
    recipe = apply_overrides(load_recipe(recipe_path), list(overrides))
    return Trainer(recipe, run_dir, resume=resume, progress=False, console=console).fit()


def test_sigterm_mid_epoch_saves_a_checkpoint_and_resume_continues_exactly(
    tiny_recipe, tmp_path, monkeypatch
):
    train(tiny_recipe, tmp_path / "straight", "train.batch_size=1")
    original = Trainer.train_step
    calls = {"n": 0}

    def preempted_step(self, x, y):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as a cluster's scheduler does
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "train_step", preempted_step)
    result = train(tiny_recipe, tmp_path / "run", "train.batch_size=1")
    assert result.stop_signal == "SIGTERM" and result.iterations == 2
    assert load_checkpoint(tmp_path / "run").meta["counters"]["images"] == 2  # mid-epoch
    monkeypatch.setattr(Trainer, "train_step", original)
    train(tiny_recipe, tmp_path / "run", "train.batch_size=1", resume=True)
    a = load_checkpoint(tmp_path / "straight").tensors
    b = load_checkpoint(tmp_path / "run").tensors
    for key in a:
        if not key.startswith("rng"):
            assert torch.equal(a[key], b[key]), key


def test_sigterm_to_the_command_saves_and_exits_with_the_preemption_code(tiny_data, tmp_path):
    job = LongJob(tiny_data, tmp_path, nproc=None)
    try:
        # Lines arrive while it trains (stdout is a pipe here, as in a batch job).
        job.wait_for_line("epoch 1/500 iteration 3/")
        job.process.send_signal(signal.SIGTERM)
        out, err = job.finish()
    finally:
        job.kill()
    assert job.process.returncode == EXIT_PREEMPTED, err[-2000:]
    assert "stopped by SIGTERM" in out and "resume with:" in out
    run = tmp_path / "runs" / "ddp-equivalence"
    assert list_checkpoints(run), "no checkpoint after SIGTERM"


def test_a_second_training_in_a_locked_run_folder_is_refused_naming_the_holder(
    tiny_recipe, tmp_path
):
    from p2pkit.engine.lock import RunFolderLocked, RunLock

    with RunLock(tmp_path / "run"):
        holder = rf"in use by a training in process {os.getpid()}"
        with pytest.raises(RunFolderLocked, match=holder):
            train(tiny_recipe, tmp_path / "run")
        assert not (tmp_path / "run" / "losses.jsonl").exists()
    train(tiny_recipe, tmp_path / "run", "train.max_iterations=1")  # free again


def test_the_lock_dies_with_its_process(tiny_recipe, tmp_path):
    code = (
        "import os, sys; from p2pkit.engine.lock import RunLock; "
        f"RunLock({str(tmp_path / 'run')!r}).acquire(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    train(tiny_recipe, tmp_path / "run", "train.max_iterations=1")


def test_leftovers_of_killed_saves_are_removed_when_the_run_starts_again(tiny_recipe, tmp_path):
    from rich.console import Console

    run = tmp_path / "run"
    train(tiny_recipe, run, "train.max_iterations=2")
    ckpts = run / "checkpoints"
    (ckpts / "step-00000003.tmp-0a1b2c3d").mkdir()
    (ckpts / "step-00000003.tmp-0a1b2c3d" / "tensors.safetensors").write_bytes(b"half")
    (ckpts / "step-00000001.del-deadbeef").mkdir()
    (ckpts / ".latest.tmp-12345678").write_text("step-00000003\n")
    console = Console(record=True, width=200)
    train(tiny_recipe, run, "train.max_iterations=0", resume=True, console=console)
    assert "removed 3 leftover(s)" in console.export_text()
    assert not [p for p in ckpts.iterdir() if ".tmp-" in p.name or ".del-" in p.name]


@pytest.mark.parametrize(
    ("setting", "iterations", "steps"),
    [
        ("train.save_every_minutes=0.000001", 3, [1, 2, 3]),  # a save is due at once
        ("train.save_every_iterations=2", 5, [2, 4, 5]),
    ],
)
def test_checkpoints_by_time_and_by_iterations_need_no_epoch_boundary(
    tiny_recipe, tmp_path, setting, iterations, steps
):
    run = tmp_path / "run"
    options = ["train.batch_size=1", "train.save_every=100", "train.keep_last=10"]
    train(tiny_recipe, run, *options, setting, f"train.max_iterations={iterations}")
    assert [s for s, _ in list_checkpoints(run)] == steps
    first = load_checkpoint(run / "checkpoints" / f"step-{steps[0]:08d}").meta["counters"]
    assert first["epoch"] == 0 and first["images"] == steps[0]  # inside the first epoch


# ------------------------------------------------------------------ logs


def test_a_redirected_log_gets_one_plain_line_per_logged_row(tiny_recipe, tmp_path):
    out = tmp_path / "runs"
    result = p2pkit_cli(
        "run", "recipe", str(tiny_recipe), "--out", str(out),
        "--set", "train.log_every=3", "--set", "train.batch_size=1",
        "--set", "train.max_iterations=9",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [r["iteration"] for r in rows(out / "tiny")] == [3, 6, 9]
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/2 iteration 3/9 ")
    for word in ("it/s", "ETA", "G_GAN", "G_L1", "D_real", "D_fake"):
        assert word in lines[0]
    assert "stopping at iteration 9 (train.max_iterations)" in result.stdout


def test_plugin_loss_terms_appear_in_the_plain_log_line():
    from p2pkit.engine.display import loss_text as _loss_text

    row = {"epoch": 1, "iteration": 4, "lr": 2e-4, "seconds": 1.0, "G_L1": 0.5, "G_feat": 0.25}
    assert _loss_text(row) == "G_L1 0.500 G_feat 0.250"


def test_the_live_display_keeps_iteration_rate_and_eta_readable_at_80_columns():
    from rich.console import Console

    from p2pkit.engine.display import live_progress as _progress

    console = Console(width=80, record=True, force_terminal=True, color_system=None)
    progress = _progress(console, 80_000)
    task = progress.add_task("epoch 12/200", total=80_000, completed=4_800)
    progress.losses = "D_real 0.713 D_fake 0.678 G_L1 0.401 G_GAN 0.711 G_feat 0.123 G_extra 0.5"
    progress.update(task, completed=4_812)
    console.print(progress.get_renderable())
    text = console.export_text()
    first = text.splitlines()[0]
    assert "4812/80000" in first and "ETA" in first and "epoch 12/200" in first
    assert "G_extra 0.5" in text


# ----------------------------------------------------------- TensorBoard


def test_tensorboard_gets_scalars_and_sample_grids(tiny_recipe, tmp_path):
    pytest.importorskip("tensorboard", reason='needs the extra: pip install "p2pkit[tensorboard]"')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny_recipe, tmp_path / "run", "train.tensorboard=true")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert {"loss/G_L1", "loss/D_real", "train/lr"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("loss/G_L1")] == list(range(1, 7))
    assert "samples" in tags["images"]


def test_tensorboard_without_the_extra_is_a_one_line_error_naming_the_fix(
    tiny_recipe, tmp_path, monkeypatch
):
    import builtins

    from p2pkit.errors import ConfigError

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(ConfigError, match=r'pip install "p2pkit\[tensorboard\]"'):
        train(tiny_recipe, tmp_path / "run", "train.tensorboard=true")


def test_the_lock_file_names_its_holder(tmp_path):
    from p2pkit.engine.lock import RunLock

    with RunLock(tmp_path) as lock:
        info = json.loads(lock.path.read_text())
        assert info["pid"] == os.getpid()
        assert time.strftime("%Y") in info["since"]


def test_sigterm_to_a_two_process_job_stops_both_after_one_checkpoint(tiny_data, tmp_path):
    job = LongJob(tiny_data, tmp_path)
    try:
        job.wait_for_line("epoch 1/500 iteration 3/")
        job.process.send_signal(signal.SIGTERM)  # what srun or scancel sends the launcher
        out, err = job.finish()
    finally:
        job.kill()
    assert job.process.returncode == EXIT_PREEMPTED, err[-2000:]
    assert "stopped by SIGTERM" in out
    run = tmp_path / "runs" / "ddp-equivalence"
    meta = load_checkpoint(run).meta
    assert meta["counters"]["world_size"] == 2
    assert meta["counters"]["iteration"] == rows(run)[-1]["iteration"]


def test_a_worker_killed_outright_ends_the_job_quickly_with_a_clear_message(tiny_data, tmp_path):
    job = LongJob(tiny_data, tmp_path)
    try:
        job.wait_for_line("epoch 1/500 iteration 3/")
        pid = job.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 2, children
        started = time.monotonic()
        os.kill(int(children[-1]), signal.SIGKILL)
        _, err = job.finish()
        elapsed = time.monotonic() - started
    finally:
        job.kill()
    assert job.process.returncode != 0
    assert "was killed by SIGKILL" in err, err[-2000:]
    assert elapsed < 60


def test_the_log_line_follows_the_objectives_loss_names():
    from p2pkit.engine.display import loss_text

    row = {"iteration": 1, "D_fake": 0.5, "G_FM": 0.25, "G_L1": 0.125, "G_GAN": 1.0}
    order = ("G_GAN", "G_L1", "D_real", "D_fake", "G_FM")
    assert loss_text(row, order) == "G_GAN 1.000 G_L1 0.125 D_fake 0.500 G_FM 0.250"
