"""Test helpers for plugin authors, shipped as a pytest plugin.

Installing p2pkit makes pytest load this module (``pytest11`` entry point), which
provides the ``p2pkit_registry`` fixture. The conformance checks prove that a
component fits p2pkit's interfaces; call them from your own tests::

    from p2pkit.testing import check_generator

    def test_my_generator_fits_p2pkit(p2pkit_registry):
        G = p2pkit_registry["generators"].create("my_generator")
        check_generator(G)

This module imports torch only inside the checks, so loading the pytest plugin
costs nothing for test suites that never use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from p2pkit.registry import Registry, isolated_registries

if TYPE_CHECKING:
    import torch


@pytest.fixture
def p2pkit_registry() -> Iterator[dict[str, Registry]]:
    """Fresh registries for one test: in-process registrations vanish afterwards
    and installed plugins are discovered anew. Maps kind ->
    [`Registry`][p2pkit.registry.Registry]."""
    with isolated_registries() as registries:
        yield registries


def _images(n: int, c: int, size: int, seed: int) -> torch.Tensor:
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g) * 2 - 1


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def check_generator(
    G: Any, *, size: int | None = None, batch_size: int = 2, check_range: bool = True
) -> None:
    """Assert that ``G`` behaves as a p2pkit generator.

    Checks: the ``in_channels``, ``out_channels`` and ``size_multiple`` attributes;
    an input (N, in_channels, S, S) in [-1, 1] gives a finite (N, out_channels, S, S)
    output in [-1, 1] (S = ``size`` or ``size_multiple``); every trainable
    parameter receives a gradient; eval mode is deterministic; batch size 1 works.

    Raises:
        AssertionError: naming the first broken expectation.
    """
    import torch

    for attr in ("in_channels", "out_channels", "size_multiple"):
        _require(hasattr(G, attr), f"generator has no '{attr}' attribute")
    side = size or G.size_multiple
    _require(side % G.size_multiple == 0, f"size {side} is not a multiple of size_multiple")
    x = _images(batch_size, G.in_channels, side, 0)
    G.train()
    y = G(x)
    expected = (batch_size, G.out_channels, side, side)
    _require(tuple(y.shape) == expected, f"output shape {tuple(y.shape)}, expected {expected}")
    _require(bool(torch.isfinite(y).all()), "output has NaN or inf values")
    if check_range:
        _require(y.min() >= -1 and y.max() <= 1, "output leaves [-1, 1]")
    y.float().mean().backward()
    missing = [n for n, p in G.named_parameters() if p.requires_grad and p.grad is None]
    _require(not missing, f"parameters without gradient: {', '.join(missing[:5])}")
    G.zero_grad(set_to_none=True)
    G.eval()
    with torch.no_grad():
        a, b = G(x[:1]), G(x[:1])
    _require(torch.equal(a, b), "eval mode is not deterministic")
    G.train()


def check_discriminator(
    D: Any,
    *,
    in_channels: int = 3,
    out_channels: int = 3,
    size: int = 64,
    batch_size: int = 2,
) -> None:
    """Assert that ``D`` behaves as a p2pkit discriminator.

    Checks: ``conditional`` and ``receptive_field`` attributes; ``D(x, y)`` returns
    finite logits (N, 1, H', W'); the logits depend on y, depend on x exactly when
    ``conditional`` is true, and gradients reach y.
    """
    import torch

    for attr in ("conditional", "receptive_field"):
        _require(hasattr(D, attr), f"discriminator has no '{attr}' attribute")
    D.eval()
    x = _images(batch_size, in_channels, size, 1)
    y = _images(batch_size, out_channels, size, 2).requires_grad_(True)
    logits = D(x, y)
    _require(logits.dim() == 4, f"logits have {logits.dim()} dimensions, expected 4 (NCHW)")
    _require(
        logits.shape[0] == batch_size and logits.shape[1] == 1,
        f"logits shape {tuple(logits.shape)}, expected ({batch_size}, 1, H', W')",
    )
    _require(bool(torch.isfinite(logits).all()), "logits have NaN or inf values")
    logits.sum().backward()
    _require(y.grad is not None and bool(y.grad.abs().sum() > 0), "no gradient reaches y")
    with torch.no_grad():
        base = D(x, y)
        other_y = D(x, -y)
        other_x = D(-x, y)
    _require(not torch.allclose(base, other_y), "logits do not depend on y")
    if D.conditional:
        _require(not torch.allclose(base, other_x), "conditional D ignores x")
    else:
        _require(torch.allclose(base, other_x), "unconditional D depends on x")
    D.train()


def check_objective(
    objective: Any, D: Any | None = None, *, channels: int = 3, size: int = 32
) -> None:
    """Assert that ``objective`` behaves as a p2pkit objective.

    Checks: ``uses_discriminator``, ``conditional`` and ``loss_names``; the
    generator loss is a finite scalar whose gradient reaches the fake image; the
    discriminator loss (when used) is a finite scalar that does not reach the fake
    image, whose gradient reaches D; every reported term is listed in
    ``loss_names``. ``D`` defaults to a tiny PatchGAN matching ``conditional``.
    """
    import torch

    from p2pkit.models.patchgan import PatchGAN

    for attr in ("uses_discriminator", "conditional", "loss_names"):
        _require(hasattr(objective, attr), f"objective has no '{attr}' attribute")
    if D is None and objective.uses_discriminator:
        D = PatchGAN(channels, channels, ndf=4, n_layers=1, conditional=objective.conditional)
    x = _images(2, channels, size, 3)
    real = _images(2, channels, size, 4)
    fake = _images(2, channels, size, 5).requires_grad_(True)
    g = objective.generator_loss(D, x, real, fake)
    _require(g.total.dim() == 0, "generator loss total is not a scalar")
    _require(bool(torch.isfinite(g.total)), "generator loss is not finite")
    g.total.backward()
    _require(fake.grad is not None, "generator loss does not reach the generated image")
    unknown = set(g.terms) - set(objective.loss_names)
    _require(not unknown, f"terms not in loss_names: {sorted(unknown)}")
    if objective.uses_discriminator:
        fake.grad = None
        D.zero_grad(set_to_none=True)
        d = objective.discriminator_loss(D, x, real, fake)
        _require(d.total.dim() == 0, "discriminator loss total is not a scalar")
        _require(bool(torch.isfinite(d.total)), "discriminator loss is not finite")
        d.total.backward()
        _require(fake.grad is None, "discriminator loss reaches the generator's output")
        _require(
            any(p.grad is not None for p in D.parameters()), "discriminator loss does not reach D"
        )
        unknown = set(d.terms) - set(objective.loss_names)
        _require(not unknown, f"terms not in loss_names: {sorted(unknown)}")
