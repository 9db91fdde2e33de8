"""Tests for p2pkit.engine.checkpoint: format, atomicity, resume and error messages."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from p2pkit.engine import checkpoint as ckpt_mod
from p2pkit.engine.checkpoint import (
    Checkpoint,
    capture_rng_state,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from p2pkit.errors import CheckpointError


def tiny(width: int = 8, extra: bool = False) -> nn.Module:
    """A 4 -> 2 MLP with BatchNorm buffers (an int64 counter too) and dropout."""
    layers: list[nn.Module] = [
        nn.Linear(4, width),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(width, 2),
    ]
    if extra:
        layers.append(nn.Linear(2, 2))
    return nn.Sequential(*layers)


def make_objects(width: int = 8):
    model = tiny(width)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 / (1 + 0.1 * i))
    return model, opt, sched


def train_step(model: nn.Module, opt: torch.optim.Optimizer, sched) -> None:
    """One step drawing from every global RNG, as data loading and dropout would."""
    x = torch.randn(6, 4)
    scale = random.random() + float(np.random.rand())
    loss = (model(x) * scale).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def save(run: Path, step: int, model, opt, sched, **kw) -> Path:
    return save_checkpoint(
        run,
        step=step,
        modules={"generator": model},
        optimizers={"G": opt},
        schedulers={"G": sched},
        networks={"generator": {"name": "tiny", "options": {"width": 8}}},
        **kw,
    )


def assert_nested_equal(a, b) -> None:
    """Equal values and equal types all the way down (tuples stay tuples)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_nested_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            assert_nested_equal(u, v)
    else:
        assert a == b


def test_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, opt, sched = make_objects()
    for _ in range(2):
        train_step(model, opt, sched)
    path = save(
        tmp_path,
        7,
        model,
        opt,
        sched,
        recipe={"lr": 0.01, "size": (256, 256)},
        meta={"counters": {"epoch": 3}},
    )
    assert path == tmp_path / "checkpoints" / "step-00000007"
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "tensors.safetensors"]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step-00000007"

    ck = load_checkpoint(tmp_path)
    assert ck.path == path and ck.step == 7
    assert ck.meta["p2pkit_version"] and ck.meta["checkpoint_format_version"] == 1
    assert ck.networks == {"generator": {"name": "tiny", "options": {"width": 8}}}
    assert ck.recipe == {"lr": 0.01, "size": [256, 256]}
    assert ck.meta["counters"] == {"epoch": 3}
    assert ck.tensors["rng/torch"].dtype == torch.uint8

    model2, opt2, sched2 = make_objects()
    ck.load_module("generator", model2)
    ck.load_optimizer("G", opt2)
    ck.load_scheduler("G", sched2)
    assert_nested_equal(model.state_dict(), model2.state_dict())
    assert_nested_equal(opt.state_dict(), opt2.state_dict())
    assert opt2.state_dict()["state"][0]["step"].dtype == opt.state_dict()["state"][0]["step"].dtype
    assert isinstance(opt2.param_groups[0]["betas"], tuple)
    assert_nested_equal(sched.state_dict(), sched2.state_dict())
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_rng_round_trip() -> None:
    tensors, state = capture_rng_state()
    json.dumps(state)  # must be storable as it is
    first = (random.random(), np.random.rand(3).tolist(), torch.rand(3))
    restore_rng_state(tensors, json.loads(json.dumps(state)))
    second = (random.random(), np.random.rand(3).tolist(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])


def test_resume_is_bit_exact(tmp_path: Path) -> None:
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    ref = make_objects()
    for _ in range(6):
        train_step(*ref)

    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    first = make_objects()
    for _ in range(3):
        train_step(*first)
    save(tmp_path, 3, *first)
    # The run that saved carries on too: saving must not disturb anything.
    for _ in range(3):
        train_step(*first)

    # A new process: different seeds, fresh objects (whose init draws random numbers).
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    resumed = make_objects()
    ck = load_checkpoint(tmp_path)
    ck.load_module("generator", resumed[0])
    ck.load_optimizer("G", resumed[1])
    ck.load_scheduler("G", resumed[2])
    ck.restore_rng()
    for _ in range(3):
        train_step(*resumed)

    for other in (first, resumed):
        for (name, a), b in zip(
            ref[0].state_dict().items(), other[0].state_dict().values(), strict=True
        ):
            assert torch.equal(a, b), name
        assert other[1].param_groups[0]["lr"] == ref[1].param_groups[0]["lr"]


def _names(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def test_failed_tensor_write_keeps_previous(tmp_path: Path, monkeypatch) -> None:
    model, opt, sched = make_objects()
    save(tmp_path, 1, model, opt, sched)

    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save(tmp_path, 2, model, opt, sched)
    assert _names(tmp_path) == ["latest", "step-00000001"]
    assert load_checkpoint(tmp_path).step == 1


def test_failed_rename_keeps_previous(tmp_path: Path, monkeypatch) -> None:
    model, opt, sched = make_objects()
    save(tmp_path, 1, model, opt, sched)

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", broken)
    with pytest.raises(CheckpointError, match=r"step-00000002: No space left on device"):
        save(tmp_path, 2, model, opt, sched)
    monkeypatch.undo()
    assert _names(tmp_path) == ["latest", "step-00000001"]
    ck = load_checkpoint(tmp_path)
    assert ck.step == 1
    ck.load_module("generator", tiny())


def test_resave_same_step_and_named(tmp_path: Path) -> None:
    model, opt, sched = make_objects()
    save(tmp_path, 5, model, opt, sched, meta={"note": "first"})
    save(tmp_path, 5, model, opt, sched, meta={"note": "second"})
    save(tmp_path, 5, model, opt, sched, name="best", meta={"note": "best"})
    assert _names(tmp_path) == ["best", "latest", "step-00000005"]
    assert load_checkpoint(tmp_path).meta["note"] == "second"
    assert load_checkpoint(tmp_path / "checkpoints" / "best").meta["note"] == "best"
    with pytest.raises(CheckpointError, match="checkpoint name 'latest' is not usable"):
        save(tmp_path, 5, model, opt, sched, name="latest")


def test_failed_replace_puts_the_old_one_back(tmp_path: Path, monkeypatch) -> None:
    model, opt, sched = make_objects()
    save(tmp_path, 5, model, opt, sched, meta={"note": "first"})
    real_rename = os.rename

    def rename(src, dst):
        # The old directory moves aside fine; moving the new one in fails.
        if ".tmp-" in os.fspath(src):
            raise OSError(5, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(CheckpointError, match="Input/output error"):
        save(tmp_path, 5, model, opt, sched, meta={"note": "second"})
    monkeypatch.undo()
    assert _names(tmp_path) == ["latest", "step-00000005"]
    assert load_checkpoint(tmp_path).meta["note"] == "first"


def test_pruning(tmp_path: Path) -> None:
    model = tiny()
    for step in (1, 2):
        save_checkpoint(tmp_path, step=step, modules={"g": model}, keep_last=2)
    save_checkpoint(tmp_path, step=2, modules={"g": model}, name="best")
    for step in (3, 4):
        save_checkpoint(tmp_path, step=step, modules={"g": model}, keep_last=2)
    assert _names(tmp_path) == ["best", "latest", "step-00000003", "step-00000004"]
    # A run restarted from an earlier step: its new checkpoint survives pruning.
    save_checkpoint(tmp_path, step=2, modules={"g": model}, keep_last=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 4]
    assert load_checkpoint(tmp_path).step == 2
    with pytest.raises(CheckpointError, match="keep_last=0"):
        save_checkpoint(tmp_path, step=9, modules={"g": model}, keep_last=0)


def test_path_forms(tmp_path: Path) -> None:
    model = tiny()
    for step in (10, 20):
        save_checkpoint(tmp_path, step=step, modules={"g": model})
    step_dir = tmp_path / "checkpoints" / "step-00000020"
    assert find_checkpoint(tmp_path) == step_dir
    assert find_checkpoint(tmp_path / "checkpoints") == step_dir
    assert find_checkpoint(step_dir / "meta.json") == step_dir
    assert find_checkpoint(tmp_path / "checkpoints" / "step-00000010").name == "step-00000010"
    # Saving into the checkpoints folder itself works the same way.
    save_checkpoint(tmp_path / "checkpoints", step=30, modules={"g": model})
    assert find_checkpoint(tmp_path).name == "step-00000030"
    # Without the pointer the highest step is taken.
    (tmp_path / "checkpoints" / "latest").unlink()
    assert find_checkpoint(tmp_path).name == "step-00000030"


def test_mismatched_options_message(tmp_path: Path) -> None:
    save_checkpoint(
        tmp_path,
        step=100,
        modules={"generator": tiny(8)},
        networks={"generator": {"name": "tiny", "options": {"width": 8, "norm": "batch"}}},
    )
    ck = load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError) as err:
        ck.load_module("generator", tiny(4), expected_options={"width": 4, "norm": "batch"})
    msg = str(err.value)
    assert msg == (
        f"checkpoint {ck.path}: generator was trained with width=8 but this network has "
        "width=4; drop the override or rebuild from the checkpoint"
    )
    with pytest.raises(CheckpointError, match="trained as tiny but this network is huge"):
        ck.load_module("generator", tiny(4), expected_name="huge")

    # Without options: the first mismatched tensor with both shapes, no torch wall.
    with pytest.raises(CheckpointError) as err:
        ck.load_module("generator", tiny(4))
    msg = str(err.value)
    assert "tensor 0.weight is 8x4 in the checkpoint but 4x4 here" in msg
    assert "more differ" in msg
    assert "Error(s) in loading state_dict" not in msg and "\n" not in msg

    missing = r"2 tensors missing from the checkpoint \(5\.weight, 5\.bias\)"
    with pytest.raises(CheckpointError, match=missing):
        ck.load_module("generator", tiny(8, extra=True))
    ck.load_module("generator", tiny(8, extra=True), strict=False)

    # A setting that does not change the weights loads, with a warning.
    with pytest.warns(UserWarning, match="norm=batch but this network has norm=instance"):
        ck.load_module("generator", tiny(8), expected_options={"norm": "instance"})

    with pytest.raises(CheckpointError, match=r"no network named 'critic' \(it holds: generator\)"):
        ck.load_module("critic", tiny(8))


def test_optimizer_mismatch_message(tmp_path: Path) -> None:
    model, opt, sched = make_objects(8)
    train_step(model, opt, sched)
    save(tmp_path, 1, model, opt, sched)
    small = tiny(4)
    with pytest.raises(
        CheckpointError, match="group 0 parameter 0 is 8x4 in the checkpoint but 4x4"
    ):
        load_checkpoint(tmp_path).load_optimizer("G", torch.optim.Adam(small.parameters()))


def test_corrupt_files(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, step=1, modules={"g": tiny()})
    tensors = path / "tensors.safetensors"
    data = tensors.read_bytes()

    tensors.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"tensors\.safetensors does not match the sha256"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(path, verify=False)
    tensors.write_bytes(data)
    load_checkpoint(path)

    meta = path / "meta.json"
    good = meta.read_text()
    meta.write_text(good[:40])
    with pytest.raises(CheckpointError, match=r"meta\.json is not valid JSON \(line"):
        load_checkpoint(path)
    meta.write_text(json.dumps({**json.loads(good), "checkpoint_format_version": 99}))
    with pytest.raises(CheckpointError, match=r"format version 99.*upgrade p2pkit"):
        load_checkpoint(path)
    meta.write_text(good)

    tensors.unlink()
    with pytest.raises(CheckpointError, match=r"has no tensors\.safetensors"):
        load_checkpoint(tmp_path)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=f"no checkpoint in {empty}"):
        load_checkpoint(empty)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")

    (tmp_path / "checkpoints" / "latest").write_text("step-00000999\n")
    with pytest.raises(CheckpointError, match="points to step-00000999, which is missing"):
        load_checkpoint(tmp_path)


def test_tied_and_strided_tensors_are_saved(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False))
    model[1].weight = model[0].weight  # tied weights share one storage
    model.register_buffer("view", torch.arange(12.0).reshape(3, 4).t())  # not contiguous
    save_checkpoint(tmp_path, step=0, modules={"m": model}, rng=False)
    ck = load_checkpoint(tmp_path)
    assert isinstance(ck, Checkpoint)
    state = ck.module_state("m")
    assert torch.equal(state["view"], model.view)
    with pytest.raises(CheckpointError, match="holds no RNG state"):
        ck.restore_rng()


def test_reserved_meta_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path, step=0, modules={"g": tiny()}, meta={"step": 3})
    # Refused before anything was written.
    assert not (tmp_path / "checkpoints").exists()
    assert ckpt_mod.checkpoint_dir_name(1234) == "step-00001234"


def test_networks_and_recipe_may_come_in_meta(tmp_path: Path) -> None:
    # The trainer hands over one meta dict with its own "format" tag.
    nets = {"generator": {"name": "tiny", "options": {"width": 8}}}
    meta = {"format": "p2pkit-run/1", "networks": nets, "recipe": {"lr": 2e-4}}
    save_checkpoint(tmp_path, step=1, modules={"generator": tiny()}, meta=meta)
    ck = load_checkpoint(tmp_path)
    assert ck.networks == nets and ck.recipe == {"lr": 2e-4}
    assert ck.meta["format"] == "p2pkit-run/1"
    with pytest.raises(CheckpointError, match="width=8 but this network has width=4"):
        ck.load_module("generator", tiny(4), expected_options={"width": 4})
    with pytest.raises(ValueError, match="either as an argument or in meta"):
        save_checkpoint(tmp_path, step=2, modules={}, networks=nets, meta=meta)
