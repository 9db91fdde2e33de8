"""The plugin proves it fits p2pkit with p2pkit's own checks, through its installed entry points."""

import pytest

resnet_plugin = pytest.importorskip("p2pkit_resnet", reason="p2pkit-resnet is not installed")

import torch  # noqa: E402

import p2pkit  # noqa: E402
from p2pkit.errors import OptionValueError  # noqa: E402
from p2pkit.models import count_parameters  # noqa: E402
from p2pkit.registry import get_registry  # noqa: E402
from p2pkit.testing import (  # noqa: E402
    check_generator,
    check_recipe,
    smoke_train_and_translate,
)

GENERATORS = ("resnet_9blocks", "resnet_6blocks", "resnet")
RECIPES = ("facades-resnet", "synth-facades-resnet")


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_is_found_through_its_entry_point(name):
    assert get_registry("generators").info(name).distribution == "p2pkit-resnet"


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_is_found_through_its_entry_point(name):
    assert get_registry("recipes").info(name).distribution == "p2pkit-resnet"


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_passes_the_conformance_check(name):
    G = p2pkit.create_generator(name, ngf=8)
    assert (G.in_channels, G.out_channels, G.size_multiple, G.min_size) == (3, 3, 4, 8)
    check_generator(G)  # at min_size, 8 px
    check_generator(G, size=32, batch_size=1)


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_other_norms_and_dropout_pass_the_conformance_check(norm):
    G = p2pkit.create_generator("resnet_6blocks", ngf=4, norm=norm, dropout=0.5)
    assert any(isinstance(m, torch.nn.Dropout) for m in G.modules())
    check_generator(G, size=16)


def test_colorization_channels_are_taken_from_the_engine():
    G = p2pkit.create_generator("resnet_6blocks", in_channels=1, out_channels=2, ngf=4)
    check_generator(G, size=16)


def test_block_counts_are_the_names():
    assert p2pkit.create_generator("resnet_9blocks", ngf=4).n_blocks == 9
    assert p2pkit.create_generator("resnet_6blocks", ngf=4).n_blocks == 6
    assert len(p2pkit.create_generator("resnet", ngf=4, n_blocks=3).blocks) == 3


def test_parameter_counts_at_ngf_64():
    # 3 -> 3 channels, BatchNorm (convolutions before a BatchNorm have no bias):
    #   stem   7x7 conv 3->64         9,408 + BN 128
    #   down   3x3 conv 64->128      73,728 + BN 256,   3x3 conv 128->256  294,912 + BN 512
    #   block  2 x 3x3 conv 256->256  2 x 589,824 + 2 x BN 512 = 1,180,672 per block
    #   up     3x3 tconv 256->128   294,912 + BN 256,   3x3 tconv 128->64   73,728 + BN 128
    #   head   7x7 conv 64->3         9,408 + bias 3
    # Without the blocks: 756,419; 9 blocks add 10,626,048, 6 blocks add 7,084,032.
    G9 = p2pkit.create_generator("resnet_9blocks")
    G6 = p2pkit.create_generator("resnet_6blocks")
    assert count_parameters(G9) == 11_383_427  # "about 11.4 M"
    assert count_parameters(G6) == 7_841_411
    # Instance norm (no affine) puts a bias on each convolution instead of BatchNorm's scale
    # and shift: 5,248 fewer, 11,378,179, the "11.378 M" usually quoted for this network.
    G9_instance = p2pkit.create_generator("resnet_9blocks", norm="instance")
    assert count_parameters(G9_instance) == 11_378_179


def test_min_size_is_what_the_reflection_padding_allows():
    # At 4 px the residual blocks see 1x1 maps, which a reflection pad of 1 cannot pad;
    # 8 px gives them 2x2 maps, the least that works. Run the layers without forward's guard
    # (and without BatchNorm, which at batch 1 would fail first on the 1x1 maps).
    G = p2pkit.create_generator("resnet_9blocks", ngf=4, norm="none")

    def layers(x):
        return G.head(G.up(G.blocks(G.down(G.stem(x)))))

    with pytest.raises(RuntimeError, match="[Pp]adding size"):
        layers(torch.zeros(1, 3, 4, 4))
    assert layers(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    assert G.min_size == 8
    with pytest.raises(ValueError, match="at least 8x8"):
        G(torch.zeros(1, 3, 4, 4))


def test_options_out_of_range_are_refused_before_building():
    with pytest.raises(OptionValueError, match="n_blocks"):
        p2pkit.create_generator("resnet", n_blocks=0)
    with pytest.raises(OptionValueError, match="dropout"):
        p2pkit.create_generator("resnet_9blocks", dropout=1.0)
    with pytest.raises(OptionValueError, match="ngf"):
        p2pkit.create_generator("resnet_9blocks", ngf=10**6)
    with pytest.raises(OptionValueError, match="norm"):
        p2pkit.create_generator("resnet_9blocks", norm="group")


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_passes_check_recipe(name):
    recipe = check_recipe(name)
    assert recipe.name == name
    assert recipe.generator.name == "resnet_9blocks"


def test_synth_recipe_trains_and_translates(tmp_path):
    tiny = (
        "generator.ngf=4", "discriminator.ndf=4", "data.load_size=36", "data.crop_size=32",
        "train.batch_size=2", "train.precision=fp32",
    )  # fmt: skip
    written = smoke_train_and_translate("synth-facades-resnet", tmp_path, overrides=tiny)
    assert written and all(p.is_file() for p in written)


def test_synth_recipe_takes_the_six_block_generator(tmp_path):
    tiny = (
        "generator.name=resnet_6blocks", "generator.ngf=4", "discriminator.ndf=4",
        "data.load_size=36", "data.crop_size=32", "train.precision=fp32",
    )  # fmt: skip
    written = smoke_train_and_translate(
        "synth-facades-resnet", tmp_path, overrides=tiny, iterations=1
    )
    assert written and all(p.is_file() for p in written)


def test_listing_the_recipes_does_not_import_torch():
    # `p2pkit recipes list` imports the recipe entry points and must stay torch-free.
    import subprocess
    import sys

    code = (
        "import sys, p2pkit_resnet.recipes as r; "
        "assert r.synth_facades_resnet().is_file(); print('TORCH', 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "TORCH False"
