"""``p2pkit import authors``: the authors' generator files as p2pkit runs.

The reference networks below are this test's own small re-statement of the layer order of
the authors' ``UnetGenerator`` and ``ResnetGenerator`` (their module paths give the keys of
their files): nested blocks whose ``model`` Sequential is ``[LeakyReLU(in place), conv, norm,
inner block, ReLU, transposed conv, norm(, Dropout)]``, convolutions without a bias before
BatchNorm, a biased outermost transposed convolution, an innermost block without a norm after
its convolution, and ``torch.cat([x, model(x)], 1)`` around every block but the outermost.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from p2pkit.cli import cli
from p2pkit.convert.authors import (
    AuthorsNetwork,
    convert_state_dict,
    import_authors,
    read_authors_file,
    resnet_layers,
    unet_layers,
)
from p2pkit.errors import CheckpointError, ConfigError


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels)  # affine=False, no running statistics: their setting


class RefUnetBlock(nn.Module):
    """One block of their U-Net, in their order, holding the next block inside."""

    def __init__(
        self,
        outer: int,
        inner: int,
        *,
        norm: str,
        in_ch: int | None = None,
        sub: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        down = nn.Conv2d(outer if in_ch is None else in_ch, inner, 4, 2, 1, bias=bias)
        layers: list[nn.Module]
        if outermost:
            up = nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1)  # always biased
            layers = [down, sub, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, _norm(norm, outer)]
        else:
            up = nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, _norm(norm, inner), sub]
            layers += [nn.ReLU(True), up, _norm(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        # The in-place LeakyReLU at model[0] changes x before it is concatenated.
        return torch.cat([x, self.model(x)], 1)


class RefUnet(nn.Module):
    def __init__(self, num_downs: int, in_ch: int, out_ch: int, ngf: int, norm: str, dropout: bool):
        super().__init__()
        block = RefUnetBlock(8 * ngf, 8 * ngf, norm=norm, innermost=True)
        for _ in range(num_downs - 5):
            block = RefUnetBlock(8 * ngf, 8 * ngf, norm=norm, sub=block, dropout=dropout)
        for mult in (4, 2, 1):
            block = RefUnetBlock(mult * ngf, 2 * mult * ngf, norm=norm, sub=block)
        self.model = RefUnetBlock(out_ch, ngf, norm=norm, in_ch=in_ch, sub=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class RefResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, dropout: bool) -> None:
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(norm, dim)]
        layers.append(nn.ReLU(True))
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class RefResnet(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, ngf: int, norm: str, dropout: bool, n_blocks: int):
        super().__init__()
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_ch, ngf, 7, bias=bias)]
        layers += [_norm(norm, ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(mult * ngf, 2 * mult * ngf, 3, 2, 1, bias=bias)]
            layers += [_norm(norm, 2 * mult * ngf), nn.ReLU(True)]
        layers += [RefResnetBlock(4 * ngf, norm, dropout) for _ in range(n_blocks)]
        for mult in (4, 2):
            up = nn.ConvTranspose2d(
                mult * ngf, mult * ngf // 2, 3, 2, 1, output_padding=1, bias=bias
            )
            layers += [up, _norm(norm, mult * ngf // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_ch, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def randomised(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics, so every tensor's place matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.2)
    return net


def reference(network: AuthorsNetwork) -> nn.Module:
    n = network
    if n.netG.startswith("resnet"):
        blocks = int(n.netG.removeprefix("resnet_").removesuffix("blocks"))
        ref = RefResnet(n.input_nc, n.output_nc, n.ngf, n.norm, n.dropout, blocks)
    else:
        depth = {"unet_256": 8, "unet_128": 7}[n.netG]
        ref = RefUnet(depth, n.input_nc, n.output_nc, n.ngf, n.norm, n.dropout)
    return randomised(ref)


def inputs(network: AuthorsNetwork, size: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.rand((2, network.input_nc, size, size), generator=gen) * 2 - 1


@pytest.mark.parametrize(
    ("netG", "norm", "size"),
    [
        ("unet_128", "batch", 128),
        ("unet_128", "instance", 128),
        ("unet_256", "batch", 256),
        ("resnet_6blocks", "batch", 32),
        ("resnet_9blocks", "instance", 24),
    ],
)
def test_converted_generator_reproduces_their_forward_pass(netG, norm, size):
    network = AuthorsNetwork(netG=netG, norm=norm, ngf=2, input_nc=3, output_nc=2)
    ref = reference(network).eval()
    ours = convert_state_dict(ref.state_dict(), network).eval()
    x = inputs(network, size)
    with torch.no_grad():
        expected = ref(x.clone())
        got = ours(x.clone())
    assert got.shape == expected.shape == (2, 2, size, size)
    assert (got - expected).abs().max().item() < 1e-5


def test_their_unet_layout_is_the_one_the_mapping_reads():
    """The facts the mapping relies on, checked on the reference's keys."""
    batch = RefUnet(7, 3, 3, 2, "batch", True).state_dict()
    # BatchNorm: normalised convolutions have no bias, the outermost up-convolution has one.
    assert "model.model.0.bias" not in batch and "model.model.3.bias" in batch
    assert "model.model.1.model.1.bias" not in batch
    innermost = "model.model.1" + ".model.3" * 5 + ".model"
    assert f"{innermost}.1.weight" in batch and f"{innermost}.1.bias" not in batch
    # The innermost block has no norm after its convolution: index 2 is the up-ReLU.
    assert not any(k.startswith(f"{innermost}.2.") for k in batch)
    assert f"{innermost}.4.running_mean" in batch  # the norm after its up-convolution
    instance = RefUnet(7, 3, 3, 2, "instance", True).state_dict()
    assert "model.model.0.bias" in instance and "model.model.1.model.1.bias" in instance
    assert not any("running" in k for k in instance)
    wanted = {f"{layer.theirs}.weight" for layer in unet_layers(7, "batch")}
    assert wanted <= set(batch)
    wanted = {f"{layer.theirs}.weight" for layer in resnet_layers(6, "batch", True)}
    assert wanted <= set(RefResnet(3, 3, 2, "batch", True, 6).state_dict())


def test_biases_their_batchnorm_network_lacks_are_zero():
    network = AuthorsNetwork(netG="unet_128", ngf=2)
    ours = convert_state_dict(reference(network).state_dict(), network)
    assert torch.count_nonzero(ours.down[0].bias) == 0  # their first convolution
    assert torch.count_nonzero(ours.down[6][1].bias) == 0  # their innermost convolution
    assert torch.count_nonzero(ours.head[1].bias) > 0  # their outermost up-convolution


@pytest.mark.parametrize("netG", ["unet_256", "unet_128", "resnet_6blocks"])
def test_dropout_sits_where_theirs_does(netG):
    """In training mode (the paper's test-time protocol) the same seed gives the same output."""
    network = AuthorsNetwork(netG=netG, ngf=2, dropout=True)
    ref = reference(network).train()
    ours = convert_state_dict(ref.state_dict(), network).train()
    size = 32 if netG.startswith("resnet") else int(netG[-3:])
    x = inputs(network, size)
    with torch.no_grad():
        torch.manual_seed(3)
        expected = ref(x.clone())
        torch.manual_seed(3)
        got = ours(x.clone())
    assert (got - expected).abs().max().item() < 1e-5
    assert sum(isinstance(m, nn.Dropout) for m in ours.modules()) == sum(
        isinstance(m, nn.Dropout) for m in ref.modules()
    )


def test_no_dropout_builds_no_dropout_layers():
    for netG in ("unet_128", "resnet_6blocks"):
        network = AuthorsNetwork(netG=netG, ngf=2, dropout=False)
        ours = convert_state_dict(reference(network).state_dict(), network)
        assert not any(isinstance(m, nn.Dropout) for m in ours.modules())
    # With dropout a ResNet block's second convolution moves: the flag changes the keys.
    with_dropout = reference(AuthorsNetwork(netG="resnet_6blocks", ngf=2)).state_dict()
    with pytest.raises(CheckpointError, match=r"model\.10\.conv_block\.5\.weight"):
        convert_state_dict(
            with_dropout, AuthorsNetwork(netG="resnet_6blocks", ngf=2, dropout=False)
        )


def test_data_parallel_prefix_and_old_files_are_read():
    network = AuthorsNetwork(netG="unet_128", ngf=2)
    ref = reference(network).eval()
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}
    # PyTorch before 0.4.1 did not save BatchNorm's step counter.
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    ours = convert_state_dict(state, network).eval()
    x = inputs(network, 128)
    with torch.no_grad():
        assert (ours(x.clone()) - ref(x.clone())).abs().max().item() < 1e-5


def test_stale_instancenorm_statistics_are_dropped():
    network = AuthorsNetwork(netG="unet_128", norm="instance", ngf=2)
    state = dict(reference(network).state_dict())
    state["model.model.1.model.2.running_mean"] = torch.zeros(4)  # saved by PyTorch < 0.4
    state["model.model.1.model.2.running_var"] = torch.ones(4)
    convert_state_dict(state, network)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("ngf", "model.model.0.weight is 2x3x4x4 in the file but 4x3x4x4 in unet_128"),
        ("norm", "model.model.0.bias (2) is missing from the file"),
        ("drop", "model.model.1.model.2.running_var (4) is missing from the file"),
        ("extra", "model.model.1.model.5.extra (3) is in the file but not in unet_128"),
        ("resnet", "model.1.weight (2x3x7x7) is missing from the file"),
    ],
)
def test_a_file_that_does_not_fit_names_the_first_key(tmp_path, change, needle):
    network = AuthorsNetwork(netG="unet_128", ngf=2)
    state = dict(reference(network).state_dict())
    stated = network
    if change == "ngf":
        stated = AuthorsNetwork(netG="unet_128", ngf=4)
    elif change == "norm":
        stated = AuthorsNetwork(netG="unet_128", ngf=2, norm="instance")
    elif change == "drop":
        del state["model.model.1.model.2.running_var"]
    elif change == "extra":
        state["model.model.1.model.5.extra"] = torch.zeros(3)
    else:
        stated = AuthorsNetwork(netG="resnet_6blocks", ngf=2)
    path = tmp_path / "latest_net_G.pth"
    torch.save(state, path)
    out = tmp_path / "runs" / "imported"
    with pytest.raises(CheckpointError) as info:
        import_authors(path, out, stated)
    message = str(info.value)
    assert needle in message and "\n" not in message
    assert "--netG" in message
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


class _Trap:
    """Unpickling this would create the marker file: weights_only must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_files_are_read_with_weights_only(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "latest_net_G.pth"
    torch.save({"model.model.0.weight": torch.zeros(1), "x": _Trap(marker)}, path)
    with pytest.raises(CheckpointError, match=r"weights_only=True\) refused it"):
        read_authors_file(path)
    assert not marker.exists()
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="holds a list, not a generator's state_dict"):
        read_authors_file(path)
    path.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="is not a PyTorch file"):
        read_authors_file(path)


def test_resnet_needs_the_plugin(monkeypatch):
    from p2pkit.registry import DISABLE_AUTOLOAD_ENV, isolated_registries

    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    needed = "needs the p2pkit-resnet plugin.*pip install"
    with isolated_registries(), pytest.raises(ConfigError, match=needed):
        AuthorsNetwork(netG="resnet_9blocks").build()


def test_channels_must_fit_the_task():
    with pytest.raises(ConfigError, match="--input-nc 3 does not fit task colorization"):
        import_authors("missing.pth", "nowhere", AuthorsNetwork(), task="colorization")


def _write_image(path: Path, size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def test_import_then_translate_and_evaluate_from_the_command_line(tmp_path, tiny_data):
    from p2pkit.engine.build import GENERATOR_ONLY, check_resumable
    from p2pkit.inference import load_trained

    network = AuthorsNetwork(netG="unet_128", ngf=2)
    ref = reference(network).eval()
    folder = tmp_path / "checkpoints" / "facades_label2photo_pretrained"
    folder.mkdir(parents=True)
    torch.save(ref.state_dict(), folder / "latest_net_G.pth")
    run = tmp_path / "runs" / "facades"
    runner = CliRunner()
    args = ["import", "authors", str(folder / "latest_net_G.pth"), "--netG", "unet_128"]
    args += ["--ngf", "2", "--direction", "BtoA", "--crop-size", "32", "--out", str(run)]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    meta = json.loads((run / "checkpoints" / "step-00000000" / "meta.json").read_text())
    assert meta["contents"] == GENERATOR_ONLY and meta["imported"]["options"]["netG"] == "unet_128"
    assert set(meta["modules"]) == {"generator"} and (run / "recipe.toml").is_file()
    with pytest.raises(CheckpointError, match="cannot resume"):
        check_resumable(meta, run)

    model = load_trained(run, device="cpu")
    assert model.direction == "BtoA" and model.crop_size == 32 and model.weights == "raw"

    # A second import to the same folder is refused before anything is read.
    again = runner.invoke(cli, args)
    assert again.exit_code == 2 and "already exists" in again.output

    pixels = _write_image(tmp_path / "input.png", 128)
    out = tmp_path / "translated"
    result = runner.invoke(
        cli,
        [
            "translate",
            str(run),
            str(tmp_path / "input.png"),
            "--layout",
            "single",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    translated = np.asarray(Image.open(out / "input.png").convert("RGB")).astype(np.int16)
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        y = ref(x)
    expected = ((y[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).numpy()
    assert np.abs(translated - expected.astype(np.int16)).max() <= 1

    result = runner.invoke(
        cli,
        ["evaluate", str(run), "--data", str(tiny_data), "--fcn-score", "off", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output


def test_default_run_folder_is_named_after_their_folder(tmp_path, monkeypatch):
    from p2pkit.cli.convert import default_run_dir

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "checkpoints" / "edges2shoes_pretrained" / "latest_net_G.pth"
    assert default_run_dir(path) == Path("runs") / "edges2shoes_pretrained"
    assert default_run_dir(tmp_path / "my model.pth") == Path("runs") / "my-model"
