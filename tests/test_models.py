"""The paper's networks: layer lists, parameter counts, shapes, receptive fields."""

from __future__ import annotations

import pytest
import torch

import p2pkit
from p2pkit.models import count_parameters, inference_protocol
from p2pkit.testing import check_discriminator, check_generator


def conv(cin: int, cout: int, bias: bool, k: int = 4) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def test_unet_256_parameter_count_matches_the_layer_list_of_appendix_6_1():
    # Encoder C64(no BN)-C128-C256-C512-C512-C512-C512-C512(no BN, errata 6.3);
    # convolutions followed by BatchNorm carry no bias.
    encoder = (
        conv(3, 64, True)
        + conv(64, 128, False) + bn(128)
        + conv(128, 256, False) + bn(256)
        + conv(256, 512, False) + bn(512)
        + 3 * (conv(512, 512, False) + bn(512))
        + conv(512, 512, True)
    )  # fmt: skip
    # Decoder CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128: input channels
    # including the concatenated skips, then the output convolution to 3 channels.
    decoder = (
        conv(512, 512, False) + bn(512)
        + 3 * (conv(1024, 512, False) + bn(512))
        + conv(1024, 256, False) + bn(256)
        + conv(512, 128, False) + bn(128)
        + conv(256, 64, False) + bn(64)
        + conv(128, 3, True)
    )  # fmt: skip
    G = p2pkit.create_generator("unet_256")
    assert count_parameters(G) == encoder + decoder == 54_414_531


def test_patchgan_70_parameter_count_matches_c64_c128_c256_c512():
    expected = (
        conv(6, 64, True)
        + conv(64, 128, False) + bn(128)
        + conv(128, 256, False) + bn(256)
        + conv(256, 512, False) + bn(512)
        + conv(512, 1, True)
    )  # fmt: skip
    D = p2pkit.create_discriminator("patchgan_70")
    assert count_parameters(D) == expected == 2_768_705


def test_unconditional_patchgan_sees_only_the_output_channels():
    D = p2pkit.create_discriminator("patchgan_70", conditional=False)
    assert D.net[0].in_channels == 3
    assert p2pkit.create_discriminator("patchgan_70").net[0].in_channels == 6


@pytest.mark.parametrize("side", [256, 512])
def test_unet_256_is_fully_convolutional(side):
    G = p2pkit.create_generator("unet_256", ngf=4).eval()
    with torch.no_grad():
        y = G(torch.zeros(1, 3, side, side))
    assert y.shape == (1, 3, side, side)


@pytest.mark.parametrize(("name", "side"), [("unet_128", 128), ("encoder_decoder_128", 128)])
def test_generators_pass_the_conformance_check(name, side):
    check_generator(p2pkit.create_generator(name, ngf=4), size=side)


def test_colorization_generator_maps_one_channel_to_two():
    G = p2pkit.create_generator("unet_128", ngf=4, in_channels=1, out_channels=2).eval()
    with torch.no_grad():
        assert G(torch.zeros(2, 1, 128, 128)).shape == (2, 2, 128, 128)


def test_general_unet_depth_sets_the_size_multiple():
    G = p2pkit.create_generator("unet", depth=5, ngf=4)
    assert G.size_multiple == 32
    check_generator(G, size=64)


def _bottleneck_zeroed_outputs(G: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    G.eval()
    handle = G.down[-1].register_forward_hook(lambda m, i, out: torch.zeros_like(out))
    try:
        with torch.no_grad():
            a = G(torch.rand(1, 3, 128, 128) * 2 - 1)
            b = G(torch.rand(1, 3, 128, 128) * 2 - 1)
    finally:
        handle.remove()
    return a, b


def test_unet_skip_connections_carry_information_past_the_bottleneck():
    a, b = _bottleneck_zeroed_outputs(p2pkit.create_generator("unet_128", ngf=4))
    assert not torch.allclose(a, b)


def test_encoder_decoder_has_no_path_around_the_bottleneck():
    a, b = _bottleneck_zeroed_outputs(p2pkit.create_generator("encoder_decoder_128", ngf=4))
    assert torch.equal(a, b)


def test_innermost_encoder_layer_has_no_batchnorm_errata_6_3():
    G = p2pkit.create_generator("unet_256", ngf=4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in G.down[-1].modules())
    assert not isinstance(G.down[0], torch.nn.Sequential)  # first layer: conv only


def test_weights_are_initialised_from_a_normal_with_std_0_02():
    G = p2pkit.create_generator("unet_256")
    w = G.down[3][1].weight
    assert abs(w.mean().item()) < 1e-3
    assert w.std().item() == pytest.approx(0.02, rel=0.02)
    scale = G.down[3][2].weight
    assert scale.mean().item() == pytest.approx(1.0, abs=0.01)
    assert scale.std().item() == pytest.approx(0.02, rel=0.2)


@pytest.mark.parametrize(
    ("name", "field", "side"),
    [
        ("pixelgan", 1, 16),
        ("patchgan_16", 16, 64),
        ("patchgan_70", 70, 256),
        ("patchgan_286", 286, 512),
    ],
)
def test_patchgan_receptive_field_is_measured_from_gradients(name, field, side):
    D = p2pkit.create_discriminator(name, ndf=2, conditional=False).double().eval()
    assert D.receptive_field == field
    y = torch.randn(1, 3, side, side, dtype=torch.float64, requires_grad=True)
    logits = D(None, y)
    i, j = logits.shape[2] // 2, logits.shape[3] // 2
    logits[0, 0, i, j].backward()
    support = y.grad.abs().sum(dim=(0, 1)) > 0
    rows = support.any(dim=1).nonzero().flatten()
    cols = support.any(dim=0).nonzero().flatten()
    height = int(rows.max() - rows.min() + 1)
    width = int(cols.max() - cols.min() + 1)
    assert rows.min() > 0 and rows.max() < side - 1, "window must lie inside the image"
    assert (height, width) == (field, field)
    assert int(support.sum()) == field * field  # non-zero everywhere inside the window


@pytest.mark.parametrize("name", ["pixelgan", "patchgan_16", "patchgan_70", "patchgan"])
@pytest.mark.parametrize("conditional", [True, False])
def test_discriminators_pass_the_conformance_check(name, conditional):
    D = p2pkit.create_discriminator(name, ndf=4, conditional=conditional)
    check_discriminator(D, size=64)


def test_patchgan_70_gives_30x30_logits_at_256_px():
    D = p2pkit.create_discriminator("patchgan_70", ndf=4)
    x = torch.zeros(2, 3, 256, 256)
    assert D(x, x).shape == (2, 1, 30, 30)


def test_paper_protocol_keeps_dropout_on_and_uses_test_batch_statistics():
    G = p2pkit.create_generator("unet_128", ngf=4)
    G.train()
    with torch.no_grad():
        G(torch.randn(4, 3, 128, 128))  # give the running statistics non-trivial values
    x = torch.randn(2, 3, 128, 128)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    with inference_protocol(G, "paper"), torch.no_grad():
        torch.manual_seed(0)
        a = G(x)
        torch.manual_seed(1)
        b = G(x)
    assert not torch.equal(a, b), "dropout must stay on"
    for key, value in G.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed under the paper protocol"
    assert G.training, "the previous mode must be restored"
    with inference_protocol(G, "eval"), torch.no_grad():
        assert torch.equal(G(x), G(x))


@pytest.mark.parametrize("side", [1, 2, 4, 8, 16])
def test_matmul_fast_path_of_the_convolutions_matches_torch(side):
    from p2pkit.models.layers import DownConv, UpConv

    torch.manual_seed(0)
    for layer, reference in [
        (DownConv(8, 6), torch.nn.functional.conv2d),
        (UpConv(8, 6), torch.nn.functional.conv_transpose2d),
    ]:
        if isinstance(layer, DownConv) and side < 2:
            continue
        x = torch.randn(2, 8, side, side, requires_grad=True)
        y = layer(x)
        expected = reference(x, layer.weight, layer.bias, stride=2, padding=1)
        torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
        (grad_x,) = torch.autograd.grad(y.sum(), x)
        (expected_grad,) = torch.autograd.grad(expected.sum(), x)
        torch.testing.assert_close(grad_x, expected_grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("out_channels", [1, 3, 4, 5])
def test_up_convolution_to_an_image_takes_the_matmul_path_without_autograd(out_channels, batch):
    """The U-Net's last layer (a few output channels) runs as matmul + fold at any size
    without autograd (a batch one image at a time), with the results of nn.ConvTranspose2d."""
    from p2pkit.models import layers

    torch.manual_seed(0)
    layer = layers.UpConv(16, out_channels)
    x = torch.randn(batch, 16, 32, 32)
    calls = []
    original = torch.nn.functional.fold
    try:
        torch.nn.functional.fold = lambda *a, **k: calls.append(1) or original(*a, **k)
        with torch.no_grad():
            y = layer(x)
    finally:
        torch.nn.functional.fold = original
    expected = torch.nn.functional.conv_transpose2d(
        x, layer.weight, layer.bias, stride=2, padding=1
    )
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    fast = out_channels <= layers._MATMUL_UP_MAX_OUT_CHANNELS_NO_GRAD
    assert bool(calls) == fast


def test_unet_decoder_relus_in_place_keep_outputs_and_gradients():
    """The decoder's in-place ReLUs change neither the outputs nor the gradients."""
    from p2pkit.models.unet import unet

    torch.manual_seed(0)
    G = unet(3, 3, ngf=4, depth=5)
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)  # the same dropout masks in both passes
    y = G(x)
    grads = torch.autograd.grad(y.square().sum(), list(G.parameters()))
    for module in G.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    torch.manual_seed(1)
    y_ref = G(x)
    grads_ref = torch.autograd.grad(y_ref.square().sum(), list(G.parameters()))
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    for g, r in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-7)
