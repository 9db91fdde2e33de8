"""Tests for p2pkit.inference: padding, cropping, tiling and batching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from p2pkit.errors import ConfigError
from p2pkit.inference import (
    crop_padding,
    iter_batches,
    pad_to_multiple,
    translate_images,
    translate_tensor,
)


class TinyUNet(nn.Module):
    """Two stride-2 downsamplings with a skip: H and W must be multiples of 4."""

    size_multiple = 4

    def __init__(self, cin: int = 3, cout: int = 2, width: int = 8) -> None:
        super().__init__()
        self.down1 = nn.Conv2d(cin, width, 3, stride=2, padding=1)
        self.down2 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)
        self.up1 = nn.ConvTranspose2d(2 * width, cout, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = F.leaky_relu(self.down1(x), 0.2)
        d2 = F.leaky_relu(self.down2(d1), 0.2)
        u2 = F.relu(self.up2(d2))
        # torch.cat fails on sizes that are not multiples of 4, as a real U-Net would.
        return torch.tanh(self.up1(torch.cat([u2, d1], dim=1)))


def conv_stack() -> nn.Module:
    """Two 3x3 convolutions: a receptive field radius of 2 pixels, no size multiple."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 2, 3, padding=1), nn.Tanh()
    )


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def image(n: int, h: int, w: int, c: int = 3) -> torch.Tensor:
    return torch.rand(n, c, h, w) * 2 - 1


def test_pad_is_reflect_and_crop_undoes_it() -> None:
    x = torch.arange(30.0).reshape(1, 1, 5, 6)
    padded, pads = pad_to_multiple(x, 4)
    assert pads == (1, 2, 1, 1)
    assert padded.shape == (1, 1, 8, 8)
    assert torch.equal(padded, F.pad(x, (1, 1, 1, 2), mode="reflect"))
    # Reflection mirrors about the edge pixel: the row above row 0 is row 1.
    assert torch.equal(padded[0, 0, 0, 1:-1], x[0, 0, 1])
    assert torch.equal(crop_padding(padded, pads), x)

    same, none = pad_to_multiple(x, 1)
    assert none == (0, 0, 0, 0) and torch.equal(same, x)


def test_pad_falls_back_to_replicate_on_tiny_images() -> None:
    x = torch.tensor([[[[1.0, 2.0]]]])  # 1 x 2, padded to 8 x 8
    padded, pads = pad_to_multiple(x, 8)
    assert padded.shape == (1, 1, 8, 8)
    assert torch.equal(padded, F.pad(x, (3, 3, 3, 4), mode="replicate"))
    assert torch.equal(crop_padding(padded, pads), x)


@pytest.mark.parametrize(("h", "w"), [(13, 22), (4, 8), (1, 3), (37, 5)])
def test_any_size_comes_back_at_input_size(h: int, w: int) -> None:
    g = TinyUNet().eval()
    with pytest.raises(RuntimeError):
        g(image(1, 13, 22))  # the network itself refuses such sizes
    x = image(2, h, w)
    y = translate_tensor(g, x)  # multiple taken from g.size_multiple
    assert y.shape == (2, 2, h, w)
    assert y.dtype == x.dtype and not y.requires_grad
    assert y.abs().max() <= 1
    # Equal to running the padded image by hand.
    padded, pads = pad_to_multiple(x, 4)
    with torch.no_grad():
        assert torch.allclose(y, crop_padding(g(padded), pads), atol=1e-6)


def test_batch_size_splits_untiled_batches() -> None:
    g = TinyUNet().eval()
    x = image(5, 12, 20)
    a = translate_tensor(g, x, multiple=4, batch_size=1)
    b = translate_tensor(g, x, multiple=4, batch_size=5)
    assert torch.allclose(a, b, atol=1e-6)


def test_tiled_equals_untiled_for_a_pointwise_network() -> None:
    g = nn.Conv2d(3, 2, 1)
    x = image(2, 50, 70)
    full = translate_tensor(g, x, multiple=4)
    for tile, overlap, batch in [(16, 4, 1), (24, 8, 3), (32, 0, 2)]:
        tiled = translate_tensor(g, x, multiple=4, tile=tile, overlap=overlap, batch_size=batch)
        assert tiled.shape == full.shape
        assert torch.allclose(tiled, full, atol=1e-5), (tile, overlap)


def test_tiled_agrees_with_untiled_for_convolutions() -> None:
    x = image(1, 70, 90)
    stack = conv_stack()
    full = translate_tensor(stack, x, multiple=1)
    tiled = translate_tensor(stack, x, multiple=1, tile=32, overlap=16, batch_size=4)
    # Blending weights are 0 on the outer quarter of each overlap (4 px here), wider
    # than the stack's 2 px receptive radius, so the windows' zero padding never shows.
    assert torch.allclose(tiled, full, atol=1e-5)

    unet = TinyUNet().eval()
    full = translate_tensor(unet, x)
    tiled = translate_tensor(unet, x, tile=32, overlap=16, batch_size=4)
    assert tiled.shape == full.shape == (1, 2, 70, 90)
    # The U-Net sees further than the zeroed margin: close, not equal; and far closer
    # than butting windows together without blending, which leaves visible seams.
    seams = translate_tensor(unet, x, tile=32, overlap=0, batch_size=4)
    assert (tiled - full).abs().max() < 0.01
    assert (tiled - full).abs().mean() < 1e-3
    assert (seams - full).abs().max() > 10 * (tiled - full).abs().max()


def test_tile_must_fit_the_multiple() -> None:
    g = TinyUNet()
    x = image(1, 40, 40)
    with pytest.raises(ConfigError, match="tile=30 is not a multiple of 4"):
        translate_tensor(g, x, tile=30)
    with pytest.raises(ConfigError, match="overlap=32 must be at least 0 and less than tile=32"):
        translate_tensor(g, x, tile=32, overlap=32)
    with pytest.raises(ConfigError, match="tile=256 with overlap=32"):
        translate_tensor(g, x, multiple=256, tile=256, overlap=32)


def test_mode_is_left_alone() -> None:
    g = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Dropout(0.5))
    x = image(1, 8, 8)
    g.train()
    translate_tensor(g, x, tile=4, overlap=0)
    assert all(m.training for m in g.modules())
    g.eval()
    translate_tensor(g, x)
    assert not any(m.training for m in g.modules())


def test_autocast_runs_in_lower_precision() -> None:
    g = conv_stack()
    x = image(1, 16, 16)
    y = translate_tensor(g, x, multiple=1, autocast_dtype=torch.bfloat16)
    assert y.dtype == torch.float32
    assert torch.allclose(y, translate_tensor(g, x, multiple=1), atol=0.05)


def test_iter_batches_groups_same_sizes_in_order() -> None:
    a, b = torch.zeros(3, 8, 8), torch.zeros(3, 4, 4)
    items = [a, b, a, a, b, a]
    batches = [[i for i, _ in group] for group in iter_batches(items, 2)]
    assert batches == [[0, 2], [1, 4], [3, 5]]
    assert [[i for i, _ in g] for g in iter_batches(items, 3)] == [[0, 2, 3], [1, 4], [5]]
    names = ["x.png", "yy.png", "z.png"]
    assert [[i for i, _ in g] for g in iter_batches(names, 2, key=len)] == [[0, 2], [1]]
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        list(iter_batches(items, 0))


def test_translate_images_keeps_order() -> None:
    g = TinyUNet().eval()
    images = [image(1, h, w)[0] for h, w in [(12, 16), (7, 9), (12, 16), (7, 9), (20, 4)]]
    out = translate_images(g, images, batch_size=2)
    assert [tuple(o.shape) for o in out] == [
        (2, 12, 16),
        (2, 7, 9),
        (2, 12, 16),
        (2, 7, 9),
        (2, 20, 4),
    ]
    for img, o in zip(images, out, strict=True):
        assert torch.allclose(o, translate_tensor(g, img[None])[0], atol=1e-6)


def test_read_ahead_keeps_order_and_raises_where_the_stream_failed():
    from p2pkit.data.batching import read_ahead

    assert list(read_ahead(iter(range(20)), depth=3)) == list(range(20))

    def failing():
        yield 1
        yield 2
        raise ValueError("bad file 3")

    got = []
    with pytest.raises(ValueError, match="bad file 3"):
        for item in read_ahead(failing(), depth=2):
            got.append(item)
    assert got == [1, 2]


def test_read_ahead_stops_producing_when_the_consumer_stops():
    import threading
    import time

    from p2pkit.data.batching import read_ahead

    produced = []

    def stream():
        for i in range(1000):
            produced.append(i)
            yield i

    ahead = read_ahead(stream(), depth=2)
    assert next(ahead) == 0
    ahead.close()
    time.sleep(0.5)
    assert len(produced) < 10
    assert not any(t.name == "p2pkit-read-ahead" for t in threading.enumerate())


def test_auto_batch_size_batches_small_images_and_not_large_ones():
    from p2pkit.inference import auto_batch_size

    assert auto_batch_size(256, 256) == 8
    assert auto_batch_size(64, 64) == 8
    assert auto_batch_size(512, 512) == 2
    assert auto_batch_size(2048, 2048) == 1


def test_write_behind_writes_everything_and_raises_a_failed_write(tmp_path):
    from p2pkit.inference import WriteBehind

    def write(path, text):
        if text == "fail":
            raise OSError("disk full")
        path.write_text(text)

    with WriteBehind(depth=2) as writer:
        for i in range(10):
            writer.submit(write, tmp_path / f"{i}.txt", str(i))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.txt" for i in range(10))
    with pytest.raises(OSError, match="disk full"), WriteBehind(depth=2) as writer:
        writer.submit(write, tmp_path / "x.txt", "fail")
