"""The U-Net with a timm backbone encoder (generator ``timm_unet``)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import p2pkit
from p2pkit.config import load_recipe
from p2pkit.engine.trainer import Trainer
from p2pkit.errors import ConfigError
from p2pkit.inference import load_trained
from p2pkit.testing import check_generator

BACKBONE = "resnet10t"  # the smallest ResNet in timm: keeps these tests fast


def test_timm_unet_fits_the_generator_interface_at_any_multiple_of_its_stride():
    G = p2pkit.create_generator("timm_unet", backbone=BACKBONE, ngf=4)
    assert G.size_multiple == 32
    check_generator(G, size=64)
    assert G(torch.zeros(2, 3, 64, 96)).shape == (2, 3, 64, 96)


def test_timm_unet_maps_one_channel_to_two_for_colorization():
    G = p2pkit.create_generator(
        "timm_unet", backbone=BACKBONE, in_channels=1, out_channels=2, ngf=4
    )
    y = G(torch.rand(2, 1, 64, 64) * 2 - 1)
    assert y.shape == (2, 2, 64, 64) and y.abs().max() <= 1


def test_the_input_itself_is_the_skip_of_the_full_resolution_block():
    # Cut the encoder off (it returns constant features): the output still depends
    # on the input, through the last decoder block alone, and only within that
    # block's and the head's three 3x3 convolutions: a 7x7 window.
    G = p2pkit.create_generator("timm_unet", backbone=BACKBONE, ngf=4, dropout=0.0).eval()
    with torch.no_grad():
        shapes = [f.shape for f in G.encoder(torch.zeros(1, 3, 64, 64))]
    G.encoder.forward = lambda x: [torch.zeros(s) for s in shapes]
    torch.manual_seed(0)
    x = (torch.rand(1, 3, 64, 64) * 2 - 1).requires_grad_(True)
    G(x)[0, :, 40, 40].sum().backward()
    touched = (x.grad.abs().sum(dim=1)[0] > 0).nonzero()
    assert len(touched) > 0
    assert touched.min().item() >= 37 and touched.max().item() <= 43


def test_pretrained_weights_come_from_a_local_file_only(tmp_path):
    import timm
    from safetensors.torch import save_file

    reference = timm.create_model(BACKBONE)
    with torch.no_grad():
        reference.conv1[0].weight.fill_(0.125)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    G = p2pkit.create_generator("timm_unet", backbone=BACKBONE, pretrained_path=str(path))
    assert torch.all(G.encoder.conv1[0].weight == 0.125)
    fresh = p2pkit.create_generator("timm_unet", backbone=BACKBONE)
    assert not torch.all(fresh.encoder.conv1[0].weight == 0.125)


def test_a_missing_weights_file_or_unknown_backbone_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="generator.pretrained_path: .* is not a file"):
        p2pkit.create_generator("timm_unet", backbone=BACKBONE, pretrained_path=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="timm has no model 'resnet181'.*similar: .*resnet18"):
        p2pkit.create_generator("timm_unet", backbone="resnet181")


def test_a_corrupt_or_mismatched_weights_file_is_blamed_by_name(tmp_path):
    import timm
    from safetensors.torch import save_file

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError) as info:
        p2pkit.create_generator("timm_unet", backbone=BACKBONE, pretrained_path=str(corrupt))
    message = str(info.value)
    assert message.startswith(f"generator.pretrained_path: cannot load {corrupt}")
    assert "\n" not in message

    other = tmp_path / "other.safetensors"
    save_file(timm.create_model(BACKBONE).state_dict(), str(other))
    with pytest.raises(ConfigError) as info:
        p2pkit.create_generator("timm_unet", backbone="resnet18", pretrained_path=str(other))
    message = str(info.value)
    assert message.startswith(f"generator.pretrained_path: cannot load {other} into timm's")
    assert "size mismatch" in message and "\n" not in message


def test_listing_generators_does_not_import_timm():
    code = (
        "import sys, p2pkit\n"
        "names = p2pkit.list_generators()\n"
        "print('timm_unet' in names, 'timm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_a_run_with_a_timm_backbone_trains_and_translates_without_its_weights_file(
    tiny_recipe, tmp_path
):
    import timm
    from safetensors.torch import save_file

    weights = tmp_path / "backbone.safetensors"
    save_file(timm.create_model(BACKBONE).state_dict(), str(weights))
    text = tiny_recipe.read_text().replace(
        'name = "unet"\ndepth = 5\nngf = 4',
        f'name = "timm_unet"\nbackbone = "{BACKBONE}"\nngf = 4\npretrained_path = "{weights}"',
    )
    tiny_recipe.write_text(text)
    result = Trainer(load_recipe(tiny_recipe), tmp_path / "run", progress=False).fit()
    assert result.iterations == 6
    weights.unlink()  # translation rebuilds from the checkpoint alone
    model = load_trained(tmp_path / "run", "cpu")
    assert type(model.generator).__name__ == "TimmUNet"
    with torch.no_grad():
        assert model.generator(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
