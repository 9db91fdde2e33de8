"""The plugin proves it fits p2pkit with p2pkit's own conformance check."""

from importlib import metadata

import pytest

try:
    metadata.distribution("p2pkit-featmatch")
except metadata.PackageNotFoundError:
    pytest.skip("p2pkit-featmatch is not installed", allow_module_level=True)

# Installed, so imported for real: a broken install fails here instead of being skipped.
import p2pkit_featmatch  # noqa: F401

import p2pkit
from p2pkit.testing import check_objective


def test_feature_matching_objective_is_found_through_its_entry_point():
    info = p2pkit.get_registry("objectives").info("l1_cgan_fm")
    assert info.distribution == "p2pkit-featmatch"


def test_feature_matching_objective_passes_the_conformance_check():
    objective = p2pkit.create_objective("l1_cgan_fm", lambda_fm=5.0)
    check_objective(objective)


def test_feature_matching_term_is_zero_when_fake_equals_real():
    import torch

    objective = p2pkit.create_objective("l1_cgan_fm")
    D = p2pkit.create_discriminator("patchgan_16", ndf=4).eval()
    x = torch.rand(1, 3, 32, 32)
    y = torch.rand(1, 3, 32, 32)
    terms = objective.generator_loss(D, x, y, y.clone()).terms
    assert terms["G_FM"].item() == 0.0
