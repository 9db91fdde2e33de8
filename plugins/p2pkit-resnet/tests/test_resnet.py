"""The plugin proves it fits p2pkit with p2pkit's own checks, through its installed entry points."""

from importlib import metadata

import pytest

try:
    metadata.distribution("p2pkit-resnet")
except metadata.PackageNotFoundError:
    pytest.skip("p2pkit-resnet is not installed", allow_module_level=True)

# Installed, so imported for real: a broken install fails here instead of being skipped.
import p2pkit_resnet  # noqa: F401
import torch

import p2pkit
from p2pkit.errors import OptionValueError
from p2pkit.models import count_parameters
from p2pkit.registry import get_registry
from p2pkit.testing import (
    check_generator,
    check_recipe,
    check_source,
    smoke_train_and_translate,
)

GENERATORS = ("resnet_9blocks", "resnet_6blocks", "resnet")
RECIPES = ("facades-resnet", "synth-facades-resnet", "stripes-resnet")


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
    expected = "resnet_6blocks" if name == "stripes-resnet" else "resnet_9blocks"
    assert recipe.generator.name == expected


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


def test_the_stripes_source_is_found_and_passes_check_source(tmp_path):
    assert get_registry("sources").info("stripes").distribution == "p2pkit-resnet"
    source = get_registry("sources").create("stripes", n_train=3, n_val=1)
    assert source.downloads is False
    folder = check_source(source, tmp_path, size=16)
    assert len(list((folder / "train").glob("*.png"))) == 3
    assert len(list((folder / "val").glob("*.png"))) == 1


def test_a_recipe_gets_its_data_from_the_plugins_source_like_synth(tmp_path, monkeypatch):
    # No data.root: the source provides data/stripes in the data home, on first use.
    from p2pkit.config import load_recipe
    from p2pkit.engine.runs import ensure_data

    monkeypatch.setenv("P2PKIT_DATA", str(tmp_path / "home"))
    recipe = load_recipe("stripes-resnet")
    assert recipe.data.root == ""
    message = ensure_data(recipe, progress=False)
    assert recipe.data.root == str(tmp_path / "home" / "stripes")
    assert message == f"data: {recipe.data.root} (made by data source stripes)"
    assert len(list((tmp_path / "home" / "stripes" / "train").glob("*.png"))) == 32
    again = load_recipe("stripes-resnet")
    assert ensure_data(again, progress=False).endswith(
        "(the data home; set P2PKIT_DATA or pass --data-root to change)"
    )


def test_the_stripes_recipe_trains_and_translates(tmp_path):
    tiny = ("generator.ngf=4", "discriminator.ndf=4", "data.load_size=36", "data.crop_size=32")
    written = smoke_train_and_translate("stripes-resnet", tmp_path, overrides=tiny)
    assert written and all(p.is_file() for p in written)
    assert (tmp_path / "data" / "stripes.json").is_file()  # made in the scratch folder


def test_data_get_provides_the_plugins_source(tmp_path):
    from click.testing import CliRunner

    from p2pkit.cli import cli

    result = CliRunner().invoke(
        cli, ["data", "get", "stripes", "--to", str(tmp_path), "--size", "16"]
    )
    assert result.exit_code == 0, result.output
    assert f"stripes: ready in {tmp_path / 'stripes'}" in result.output
    assert (tmp_path / "stripes" / "train" / "1.png").is_file()
