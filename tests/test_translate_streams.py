"""``translate_files`` runs two batches at once on a CPU, each in its own thread.

Checked: the outputs and their order are those of one stream; the batches run on the worker
threads with a share of torch's threads, which the caller gets back afterwards; the cases where
order or training mode matter stay at one stream; a failing batch is raised, not lost.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from p2pkit.inference import load_trained, translate_files
from p2pkit.inference.pipeline import cpu_streams


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def inputs(tiny_data: Path) -> list[Path]:
    return sorted((tiny_data / "train").iterdir()) + sorted((tiny_data / "val").iterdir())


def record_threads(model) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    model.generator.register_forward_pre_hook(
        lambda *_: seen.append((threading.current_thread().name, torch.get_num_threads()))
    )
    return seen


def test_two_streams_give_the_outputs_of_one_in_input_order(tiny_run, tiny_data, two_threads):
    model = load_trained(tiny_run, "cpu")
    files = inputs(tiny_data)
    one = list(translate_files(model, files, layout="aligned", batch_size=None, streams=1))
    two = list(translate_files(model, files, layout="aligned", batch_size=None, streams=2))
    assert [r[0] for r in one] == [r[0] for r in two] == files
    for a, b in zip(one, two, strict=True):
        for x, y in zip(a[1:], b[1:], strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=1e-5)


def test_batches_run_on_worker_threads_with_a_share_of_the_threads(
    tiny_run, tiny_data, two_threads
):
    model = load_trained(tiny_run, "cpu")
    seen = record_threads(model)
    results = list(translate_files(model, inputs(tiny_data), layout="aligned", batch_size=2))
    assert len(results) == 10 and len(seen) == 5  # auto streams: 2 on a CPU with 2 threads
    assert {name.split("_")[0] for name, _ in seen} == {"p2pkit-translate"}
    assert {threads for _, threads in seen} == {1}
    assert torch.get_num_threads() == 2  # the caller's threads are its own again


def test_one_file_keeps_every_thread_in_the_calling_thread(tiny_run, tiny_data, two_threads):
    """serve translates one upload at a time: it must not run on half the threads."""
    model = load_trained(tiny_run, "cpu")
    seen = record_threads(model)
    list(translate_files(model, inputs(tiny_data)[:1], layout="aligned"))
    assert seen == [(threading.current_thread().name, 2)]


def test_one_stream_where_order_or_training_mode_matters(tiny_run, two_threads):
    model = load_trained(tiny_run, "cpu")
    assert cpu_streams(model, "eval") == 2
    assert cpu_streams(model, "paper") == 1  # dropout draws would follow the thread timing
    model.generator.up[0].train()
    assert cpu_streams(model, "eval") == 1  # each batch switches modes; threads would race
    model.generator.eval()
    torch.set_num_threads(1)
    assert cpu_streams(model, "eval") == 1


def test_a_failing_batch_is_raised_in_the_caller(tiny_run, tiny_data, two_threads):
    model = load_trained(tiny_run, "cpu")
    calls = []

    def fail_on_the_third(*_):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("batch three failed")

    model.generator.register_forward_pre_hook(fail_on_the_third)
    results = translate_files(model, inputs(tiny_data), layout="aligned", batch_size=2, streams=2)
    with pytest.raises(RuntimeError, match="batch three failed"):
        list(results)
    assert torch.get_num_threads() == 2
