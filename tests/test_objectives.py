"""The objective of section 3: loss values on hand-computed cases and Table 1 rows."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import p2pkit
from p2pkit.objectives import gan_loss
from p2pkit.testing import check_objective


class ConstantD(nn.Module):
    """A stand-in discriminator returning fixed logits, recording what it saw."""

    def __init__(self, value: float, conditional: bool = True):
        super().__init__()
        self.value = value
        self.conditional = conditional
        self.receptive_field = 1
        self.scale = nn.Parameter(torch.ones(()))
        self.calls: list[tuple[torch.Tensor | None, torch.Tensor]] = []

    def forward(self, x, y):
        self.calls.append((x, y))
        return self.scale * torch.full((y.shape[0], 1, 2, 2), self.value) + 0 * y.sum()


def test_vanilla_losses_at_zero_logits_are_log_2():
    logits = torch.zeros(1, 1, 4, 4)
    assert gan_loss(logits, True, "vanilla").item() == pytest.approx(math.log(2))
    assert gan_loss(logits, False, "vanilla").item() == pytest.approx(math.log(2))


def test_lsgan_and_hinge_losses_on_a_known_logit():
    logits = torch.full((1, 1, 3, 3), 0.25)
    assert gan_loss(logits, True, "lsgan").item() == pytest.approx(0.75**2)
    assert gan_loss(logits, False, "lsgan").item() == pytest.approx(0.25**2)
    assert gan_loss(logits, True, "hinge").item() == pytest.approx(0.75)
    assert gan_loss(logits, False, "hinge").item() == pytest.approx(1.25)


def test_full_objective_is_gan_plus_lambda_times_l1_and_d_is_halved():
    objective = p2pkit.create_objective("l1_cgan")
    D = ConstantD(0.0)
    real = torch.zeros(1, 3, 4, 4)
    fake = torch.full((1, 3, 4, 4), 0.5)
    x = torch.ones(1, 3, 4, 4)
    g = objective.generator_loss(D, x, real, fake)
    assert g.terms["G_L1"].item() == pytest.approx(0.5)
    assert g.terms["G_GAN"].item() == pytest.approx(math.log(2))
    assert g.total.item() == pytest.approx(math.log(2) + 100 * 0.5)
    d = objective.discriminator_loss(D, x, real, fake)
    assert d.total.item() == pytest.approx(0.5 * (math.log(2) + math.log(2)))


def test_non_saturating_generator_loss_is_minus_log_d():
    objective = p2pkit.create_objective("cgan")
    value = -1.5
    g = objective.generator_loss(
        ConstantD(value), torch.zeros(1, 3, 2, 2), *[torch.zeros(1, 3, 2, 2)] * 2
    )
    expected = -math.log(1 / (1 + math.exp(-value)))
    assert g.total.item() == pytest.approx(expected, rel=1e-5)


def test_hinge_generator_loss_is_minus_mean_logit():
    objective = p2pkit.create_objective("pix2pix", gan_mode="hinge", lambda_l1=0)
    g = objective.generator_loss(ConstantD(0.3), *[torch.zeros(1, 3, 2, 2)] * 3)
    assert g.total.item() == pytest.approx(-0.3)


def test_discriminator_step_does_not_reach_the_generator():
    objective = p2pkit.create_objective("l1_cgan")
    fake = torch.zeros(1, 3, 4, 4, requires_grad=True)
    d = objective.discriminator_loss(
        ConstantD(0.0), torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), fake
    )
    d.total.backward()
    assert fake.grad is None


@pytest.mark.parametrize(
    ("name", "uses_d", "conditional", "lambda_l1"),
    [
        ("l1", False, False, 100.0),
        ("gan", True, False, 0.0),
        ("cgan", True, True, 0.0),
        ("l1_gan", True, False, 100.0),
        ("l1_cgan", True, True, 100.0),
    ],
)
def test_table_1_rows_are_settings_of_one_objective(name, uses_d, conditional, lambda_l1):
    objective = p2pkit.create_objective(name)
    assert objective.uses_discriminator is uses_d
    assert objective.conditional is conditional
    assert objective.lambda_l1 == lambda_l1
    check_objective(objective)


def test_l1_alone_needs_no_discriminator_and_reports_only_l1():
    objective = p2pkit.create_objective("l1")
    g = objective.generator_loss(
        None, torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    )
    assert set(g.terms) == {"G_L1"}
    assert g.total.item() == pytest.approx(100.0)


def test_gan_alone_still_logs_l1_but_does_not_minimise_it():
    objective = p2pkit.create_objective("gan")
    g = objective.generator_loss(
        ConstantD(0.0, conditional=False), *[torch.zeros(1, 3, 2, 2)] * 2, torch.ones(1, 3, 2, 2)
    )
    assert g.terms["G_L1"].item() == pytest.approx(1.0)
    assert g.total.item() == pytest.approx(math.log(2))


def test_lsgan_and_hinge_modes_pass_the_conformance_check():
    check_objective(p2pkit.create_objective("pix2pix", gan_mode="lsgan"))
    check_objective(p2pkit.create_objective("pix2pix", gan_mode="hinge"))


def test_bad_gan_mode_is_rejected_with_the_valid_modes():
    with pytest.raises(ValueError, match="vanilla, lsgan, hinge, none"):
        p2pkit.create_objective("pix2pix", gan_mode="wgan")
