"""BatchNorm folding, ``p2pkit export --format onnx`` and ``translate --engine onnxruntime``.

Folding is checked against eval mode on the paper's U-Nets and small ones (and the ResNet plugin
when it is installed). The export is checked as a user meets it: the command on a copy of the
tiny trained run, the file's metadata and its named, dynamic input and output, onnxruntime's
output against p2pkit's at two sizes, and ``translate`` with both engines on the same files.
Tests that run onnxruntime skip when the optional ``onnx`` extra is absent.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from p2pkit.cli import cli
from p2pkit.errors import ConfigError, P2PKitError
from p2pkit.models.fold import fold_batchnorm, is_folded
from p2pkit.models.protocol import inference_protocol
from p2pkit.models.unet import encoder_decoder, unet, unet_128, unet_256

EXTRA = 'pip install "p2pkit[onnx]"'


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def needs_onnx() -> None:
    for name in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(name, reason=f"{name} is absent: the optional extra {EXTRA}")


def randomize(module: nn.Module, seed: int = 0, side: int = 32, std: float = 0.05) -> nn.Module:
    """Weights far from their initial values and BatchNorm statistics of real activations.

    The running statistics are measured on random inputs of ``side`` pixels, as training would
    have left them, so every layer's activations are of order 1 and the output spans [-1, 1].
    Returns ``module`` in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * std)
        for m in norms:
            m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.copy_(torch.rand(m.num_features, generator=gen) * 0.4 - 0.2)
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
        if norms:
            module.train()
            channels = next(m for m in module.modules() if isinstance(m, nn.Conv2d)).in_channels
            for _ in range(2):
                module(torch.rand(4, channels, side, side, generator=gen) * 2 - 1)
        for m in norms:
            m.momentum = 0.1
    return module.eval()


def count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


# --------------------------------------------------------------------------- folding


@pytest.mark.parametrize(
    ("make", "side"),
    [
        (lambda: unet_256(), 256),
        (lambda: unet_128(), 128),
        (lambda: unet(ngf=4, depth=5), 64),
        (lambda: unet(in_channels=1, out_channels=2, ngf=8, depth=3), 24),
        (lambda: encoder_decoder(ngf=4, depth=4), 32),
        (lambda: unet(ngf=4, depth=4, norm="instance"), 32),
    ],
    ids=[
        "unet_256",
        "unet_128",
        "unet-ngf4-depth5",
        "unet-1to2-ngf8",
        "encoder_decoder",
        "instance",
    ],
)
def test_folded_generator_matches_eval_mode_to_float_rounding(make, side):
    torch.manual_seed(0)
    G = randomize(make(), side=side)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    F = fold_batchnorm(G)
    x = torch.rand(2, G.in_channels, side, side) * 2 - 1
    with torch.no_grad():
        expected, got = G(x), F(x)
    assert (got - expected).abs().max() < 1e-5
    assert expected.std() > 0.05  # the check compares real signal, not outputs near 0
    assert count(F, nn.BatchNorm2d) == 0 and count(F, nn.Dropout) == 0
    assert not F.training and is_folded(F) and not is_folded(G)
    assert F.size_multiple == G.size_multiple
    # The original is untouched: it still trains and runs the paper's protocol.
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert count(G, nn.Dropout) == min(3, G.depth - 1) and not G.training


def test_folded_resnet_generator_matches_eval_mode():
    network = pytest.importorskip(
        "p2pkit_resnet.network", reason="the p2pkit-resnet plugin is not installed"
    )
    G = randomize(network.resnet_6blocks(ngf=8, dropout=0.5))
    F = fold_batchnorm(G)
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        diff = (F(x) - G(x)).abs().max()
    assert diff < 1e-5
    assert count(F, nn.BatchNorm2d) == 0 and count(F, nn.Dropout) == 0


def test_folded_timm_unet_matches_eval_mode():
    import p2pkit

    G = p2pkit.create_generator("timm_unet", backbone="resnet10t", ngf=4)
    G = randomize(G, side=64)
    F = fold_batchnorm(G)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert (F(x) - G(x)).abs().max() < 1e-5
    # The decoder's Sequential blocks fold; the timm backbone keeps its attribute-style norms.
    assert 0 < count(F, nn.BatchNorm2d) < count(G, nn.BatchNorm2d)


def test_folding_leaves_batchnorm_that_does_not_follow_a_convolution():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(4),  # after an activation: not foldable
        nn.ConvTranspose2d(4, 6, 4, 2, 1, groups=2, bias=False),
        nn.BatchNorm2d(6),  # after a grouped transposed convolution: folded
        nn.Conv2d(6, 5, 1),
        nn.BatchNorm2d(5, track_running_stats=False),  # batch statistics always: kept
    )
    net = randomize(net, side=8)
    F = fold_batchnorm(net)
    subclass = type("NormAct", (nn.BatchNorm2d,), {})  # may compute more than BatchNorm
    assert isinstance(fold_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 1), subclass(4)))[1], subclass)
    assert [type(m).__name__ for m in F] == [
        "Conv2d", "ReLU", "BatchNorm2d", "ConvTranspose2d", "Identity", "Conv2d", "BatchNorm2d"
    ]  # fmt: skip
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        assert (F(x) - net(x)).abs().max() < 1e-5


def test_a_folded_copy_refuses_the_paper_protocol():
    F = fold_batchnorm(unet(ngf=4, depth=3))
    with pytest.raises(ConfigError, match="folded"), inference_protocol(F, "paper"):
        pass


def test_load_trained_folds_on_request(tiny_run):
    from p2pkit.inference import load_trained

    plain = load_trained(tiny_run, "cpu")
    folded = load_trained(tiny_run, "cpu", fold=True)
    assert count(plain.generator, nn.BatchNorm2d) > 0
    assert count(folded.generator, nn.BatchNorm2d) == 0
    x = torch.rand(2, 3, 32, 64) * 2 - 1
    with torch.no_grad():
        assert (folded.generator(x) - plain.generator(x)).abs().max() < 1e-5


# --------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the tiny run, exported through the command line: (run folder, output)."""
    needs_onnx()
    run = Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("export") / "tiny"))
    result = invoke("export", run, "--format", "onnx")
    assert result.exit_code == 0, result.output
    return run, result.output


def test_export_writes_a_checked_file_with_metadata(exported):
    import onnx

    run, output = exported
    path = run / "generator.onnx"
    assert "checked with onnxruntime on 1x3x32x32" in output and "2x3x32x64" in output
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["p2pkit_version"] == __import__("p2pkit").__version__
    assert meta["recipe"] == "tiny" and meta["task"] == "translation"
    assert meta["direction"] == "BtoA" and meta["generator"] == "unet"
    assert (meta["in_channels"], meta["out_channels"]) == ("3", "3")
    assert meta["value_range"] == "[-1, 1]" and meta["size_multiple"] == "32"
    assert meta["checkpoint"] == "step-00000002" and meta["weights"] == "raw"
    assert "reflect" in meta["padding"]


def test_export_has_one_named_input_and_output_with_free_batch_height_width(exported):
    import onnx

    run, _ = exported
    graph = onnx.load(str(run / "generator.onnx")).graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    for values, name in ((inputs, "input"), (graph.output, "output")):
        assert [v.name for v in values] == [name]
        dims = [d.dim_param or d.dim_value for d in values[0].type.tensor_type.shape.dim]
        assert dims == ["batch", 3, "height", "width"]


def test_onnxruntime_matches_p2pkit_at_two_sizes_and_odd_sizes(exported):
    from p2pkit.inference import load_trained, translate_tensor
    from p2pkit.inference.onnx import OnnxGenerator

    run, _ = exported
    model = load_trained(run, "cpu")
    ort = OnnxGenerator(run / "generator.onnx", threads=1)
    assert ort.size_multiple == 32 and (ort.in_channels, ort.out_channels) == (3, 3)
    for shape in ((1, 3, 32, 32), (3, 3, 64, 96), (2, 3, 45, 37)):
        x = torch.rand(*shape) * 2 - 1
        with inference_protocol(model.generator, "eval"):
            expected = translate_tensor(model.generator, x)
        got = translate_tensor(ort, x)
        assert (got - expected).abs().max() <= 1e-4


def test_export_check_catches_a_network_far_from_p2pkits(tiny_run, tmp_path):
    """Weights far from their initial values make the outputs span [-1, 1]: the export still
    matches; a different reference network is caught."""
    needs_onnx()
    from p2pkit.inference import load_trained
    from p2pkit.inference.onnx import check_onnx_file, export_onnx

    model = load_trained(tiny_run, "cpu")
    randomize(model.generator, seed=1)
    result = export_onnx(model, tmp_path / "random.onnx")
    assert [shape for shape, _ in result.checks] == [(1, 3, 32, 32), (2, 3, 32, 64)]
    assert max(diff for _, diff in result.checks) <= 1e-4
    with torch.no_grad():
        spread = model.generator.eval()(torch.rand(1, 3, 32, 32) * 2 - 1).std()
    assert spread > 0.1
    other = randomize(model.generator, seed=2).eval()
    with pytest.raises(P2PKitError, match="differs from p2pkit's eval-mode output"):
        check_onnx_file(
            tmp_path / "random.onnx", other, in_channels=3, out_channels=3, sizes=[(1, 32, 32)]
        )


def test_a_graph_without_the_declared_input_is_refused(tmp_path):
    needs_onnx()
    import onnx
    from onnx import TensorProto, helper

    from p2pkit.inference.onnx import check_onnx_file

    # A graph whose output is a constant: the failure of an export that lost its input.
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    value = helper.make_tensor("c", TensorProto.FLOAT, [1, 3, 32, 32], [0.0] * 3072)
    node = helper.make_node("Constant", [], ["output"], value=value)
    graph = helper.make_graph([node], "no-inputs", [], [out])
    onnx.save(helper.make_model(graph), str(tmp_path / "bad.onnx"))
    with pytest.raises(P2PKitError, match=r"has inputs \[\], not \['input'\]"):
        check_onnx_file(
            tmp_path / "bad.onnx", nn.Identity(), in_channels=3, out_channels=3, sizes=[]
        )


def test_a_failed_check_keeps_the_previous_file(exported, tmp_path, monkeypatch):
    import p2pkit.inference.onnx as onnx_module

    run, _ = exported
    target = tmp_path / "kept.onnx"
    target.write_bytes(b"previous")

    def failing_check(*args, **kwargs):
        raise P2PKitError("check failed on purpose")

    monkeypatch.setattr(onnx_module, "check_onnx_file", failing_check)
    result = invoke("export", run, "--format", "onnx", "--out", target)
    assert result.exit_code == 2 and "check failed on purpose" in result.output
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.onnx"]


# --------------------------------------------------------------------------- translate


def read_pngs(folder: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    return {p.name: np.asarray(Image.open(p), dtype=np.int16) for p in sorted(folder.glob("*.png"))}


def test_translate_with_onnxruntime_equals_the_torch_engine(exported, tiny_data, tmp_path):
    run, _ = exported
    common = [run, tiny_data / "val", "--layout", "aligned", "--batch-size", "2"]
    assert invoke("translate", *common, "--out", tmp_path / "torch").exit_code == 0
    result = invoke("translate", *common, "--out", tmp_path / "ort", "--engine", "onnxruntime")
    assert result.exit_code == 0, result.output
    torch_out, ort_out = read_pngs(tmp_path / "torch"), read_pngs(tmp_path / "ort")
    assert list(torch_out) == list(ort_out) == ["1.png", "2.png"]
    for name, pixels in torch_out.items():
        assert np.abs(pixels - ort_out[name]).max() <= 1  # 8-bit rounding of equal floats


def test_the_onnxruntime_engine_reads_no_weights_from_the_checkpoint(exported, tiny_data, tmp_path):
    """The exported file carries the weights: translating with it builds no torch network
    and never reads the checkpoint's tensors file (that start-up time is saved)."""
    from p2pkit.inference import load_trained

    run, _ = exported
    copy = Path(shutil.copytree(run, tmp_path / "tiny"))
    for tensors in copy.glob("checkpoints/*/tensors.safetensors"):
        tensors.write_bytes(b"not read")
    model = load_trained(copy, "cpu", network=False)
    assert model.generator is None and model.task is not None and model.weights == "raw"
    args = ["translate", copy, tiny_data / "val", "--layout", "aligned", "--out", tmp_path / "o"]
    result = invoke(*args, "--engine", "onnxruntime")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == ["1.png", "2.png"]
    result = invoke(*args[:-1], tmp_path / "t")  # the torch engine does read them
    assert result.exit_code == 2 and "tensors.safetensors" in result.output


def test_translate_refuses_a_default_file_exported_from_another_checkpoint(
    exported, tiny_data, tmp_path
):
    import onnx

    run, _ = exported
    stale = onnx.load(str(run / "generator.onnx"))
    for prop in stale.metadata_props:
        if prop.key == "checkpoint":
            prop.value = "step-00000001"
    copy = Path(shutil.copytree(run, tmp_path / "tiny"))
    onnx.save(stale, str(copy / "generator.onnx"))
    args = ["translate", copy, tiny_data / "val", "--layout", "aligned", "--engine", "onnxruntime"]
    result = invoke(*args, "--out", tmp_path / "a")
    assert result.exit_code == 2
    assert "was exported from step-00000001 (raw weights)" in result.output
    assert "p2pkit export" in result.output
    result = invoke(*args, "--out", tmp_path / "b", "--onnx", copy / "generator.onnx")
    assert result.exit_code == 0, result.output


def test_translate_refuses_the_paper_protocol_with_onnxruntime(tiny_run, tiny_data, tmp_path):
    result = invoke(
        "translate", tiny_run, tiny_data / "val", "--out", tmp_path / "o", "--engine",
        "onnxruntime", "--paper-protocol",
    )  # fmt: skip
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "--paper-protocol cannot run with --engine onnxruntime" in line
    assert "dropout" in line and "statistics" in line
    assert not (tmp_path / "o").exists()


def test_translate_without_the_engine_refuses_onnx_file(tiny_run, tiny_data, tmp_path):
    result = invoke(
        "translate", tiny_run, tiny_data / "val", "--out", tmp_path / "o", "--onnx", "g.onnx"
    )
    assert result.exit_code == 2 and "only with --engine onnxruntime" in result.output


@pytest.mark.parametrize("command", ["export", "translate"])
def test_a_missing_extra_is_one_line_naming_it(command, tiny_run, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    if command == "export":
        result = invoke("export", tiny_run, "--format", "onnx", "--out", tmp_path / "g.onnx")
    else:
        result = invoke(
            "translate", tiny_run, tiny_data / "val", "--out", tmp_path / "o", "--engine",
            "onnxruntime",
        )  # fmt: skip
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "onnxruntime" in line and EXTRA in line
    assert not (tmp_path / "g.onnx").exists() and not (tmp_path / "o").exists()


def test_export_help_has_examples_and_names_the_extra():
    result = invoke("export", "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and "p2pkit[onnx]" in result.output


def test_an_opset_newer_than_onnx_knows_is_refused_before_exporting(tiny_run, tmp_path):
    needs_onnx()
    result = invoke(
        "export", tiny_run, "--format", "onnx", "--opset", "999", "--out", tmp_path / "g"
    )
    assert result.exit_code == 2 and "--opset 999 is newer than" in result.output
    assert not any(tmp_path.iterdir())
