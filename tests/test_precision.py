"""``translate --precision``: the generator in bf16 (or fp16 on GPUs), BatchNorm folded first.

bf16 is checked on any CPU (the check for native instructions is patched where a test needs
the path to run): outputs stay within a few 8-bit levels of fp32, the network really runs in
bf16 with no BatchNorm left, and each combination that cannot work is one plain line before
any output is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from p2pkit.cli import cli
from p2pkit.errors import ConfigError


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def pngs(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p), dtype=np.int16) for p in sorted(folder.glob("*.png"))}


@pytest.fixture
def native_bf16(monkeypatch):
    monkeypatch.setattr("p2pkit.engine.device.cpu_has_fast_bf16", lambda: True)


def test_load_trained_in_bf16_folds_batchnorm_then_casts_every_weight(tiny_run, native_bf16):
    from p2pkit.inference import load_trained, translate_tensor

    fp32 = load_trained(tiny_run, "cpu")
    bf16 = load_trained(tiny_run, "cpu", precision="bf16")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in fp32.generator.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in bf16.generator.modules())
    assert {p.dtype for p in bf16.generator.parameters()} == {torch.bfloat16}
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y32 = translate_tensor(fp32.generator, x)
    y16 = translate_tensor(bf16.generator, x)  # takes and returns float32
    assert y16.dtype == torch.float32 and y16.shape == y32.shape
    assert (y16 - y32).abs().max() < 0.05  # bf16 keeps 8 bits of mantissa
    assert not torch.equal(y16, y32)  # it did run in bf16


def test_translate_in_bf16_stays_within_a_few_levels_of_fp32(
    tiny_run, tiny_data, tmp_path, native_bf16
):
    common = ["translate", tiny_run, tiny_data / "val", "--layout", "aligned"]
    assert invoke(*common, "--out", tmp_path / "fp32").exit_code == 0
    result = invoke(*common, "--out", tmp_path / "bf16", "--precision", "bf16")
    assert result.exit_code == 0, result.output
    exact, low = pngs(tmp_path / "fp32"), pngs(tmp_path / "bf16")
    assert list(exact) == list(low) == ["1.png", "2.png"]
    for name, pixels in exact.items():
        assert np.abs(pixels - low[name]).max() <= 4, name


def test_bf16_is_refused_on_a_cpu_without_native_bf16(tiny_run, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr("p2pkit.engine.device.cpu_has_fast_bf16", lambda: False)
    result = invoke(
        "translate", tiny_run, tiny_data / "val", "--out", tmp_path / "o", "--precision", "bf16"
    )
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "no native bf16" in line and "use fp32" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--precision", "fp16"], "fp16 is for GPUs"),
        (["--precision", "bf16", "--paper-protocol"], "cannot run with --paper-protocol"),
        (["--precision", "bf16", "--engine", "onnxruntime"], "the exported ONNX file is fp32"),
    ],
)
def test_precisions_that_cannot_run_are_one_line_before_any_work(
    extra, expected, tiny_run, tiny_data, tmp_path, native_bf16
):
    result = invoke("translate", tiny_run, tiny_data / "val", "--out", tmp_path / "o", *extra)
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and expected in line
    assert not (tmp_path / "o").exists()


def test_check_precision_names_the_choices():
    from p2pkit.inference.model import check_precision

    assert check_precision("fp32", torch.device("cpu")) is torch.float32
    with pytest.raises(ConfigError, match="fp32, bf16, fp16"):
        check_precision("int8", torch.device("cpu"))


def test_serve_loads_its_runs_at_the_precision_asked(tiny_run, tiny_data, native_bf16):
    """``p2pkit serve --precision bf16`` serves the bf16 network; its page's outputs stay
    within a few levels of the fp32 ones."""
    from p2pkit.serve import served_runs

    (exact,) = served_runs([tiny_run], device="cpu")
    (low,) = served_runs([tiny_run], device="cpu", precision="bf16")
    assert {p.dtype for p in low.model.generator.parameters()} == {torch.bfloat16}
    image = sorted((tiny_data / "val").iterdir())[0]
    a, b = exact.translator.translate_file(image), low.translator.translate_file(image)
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 4
