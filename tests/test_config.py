"""Recipes: TOML loading, --set overrides and their errors, the shipped recipes."""

from __future__ import annotations

import pytest

import p2pkit
from p2pkit.config import (
    apply_overrides,
    load_recipe,
    recipe_from_dict,
    recipe_to_dict,
    recipe_to_toml,
)
from p2pkit.config import tomllib as toml
from p2pkit.errors import ConfigError

PAPER_RECIPES = [
    "facades",
    "cityscapes",
    "cityscapes-photo2labels",
    "maps2aerial",
    "aerial2maps",
    "edges2shoes",
    "edges2handbags",
    "day2night",
    "thermal2color",
    "inpainting",
    "colorization",
]


@pytest.mark.parametrize("name", [*PAPER_RECIPES, "synth-facades"])
def test_every_shipped_recipe_loads_and_names_the_paper_section_it_follows(name):
    recipe = load_recipe(name)
    assert recipe.name == name
    assert recipe.paper, "each recipe cites the part of the paper it follows"
    assert recipe.description


def test_paper_settings_of_section_6_2():
    facades = load_recipe("facades")
    assert (facades.train.epochs + facades.train.epochs_decay, facades.train.batch_size) == (200, 1)
    assert (facades.data.load_size, facades.data.crop_size, facades.data.flip) == (286, 256, True)
    assert facades.data.direction == "BtoA"
    shoes = load_recipe("edges2shoes")
    assert (shoes.train.epochs + shoes.train.epochs_decay, shoes.train.batch_size) == (15, 4)
    assert shoes.data.flip is False and shoes.data.preprocess == "resize"
    assert load_recipe("aerial2maps").data.direction == "AtoB"
    assert load_recipe("maps2aerial").data.direction == "BtoA"
    assert load_recipe("colorization").task.name == "colorization"
    assert load_recipe("inpainting").task.name == "inpainting"


def test_set_parses_values_from_the_field_types():
    recipe = apply_overrides(
        load_recipe("facades"),
        [
            "train.epochs=3",
            "train.lr=1e-3",
            "data.flip=false",
            "data.direction=AtoB",
            "generator.ngf=16",
            "generator.dropout=0.25",
        ],
    )
    assert recipe.train.epochs == 3 and recipe.train.lr == 1e-3
    assert recipe.data.flip is False and recipe.data.direction == "AtoB"
    assert recipe.generator.options == {"ngf": 16, "dropout": 0.25}


def test_set_unknown_key_names_it_and_the_closest_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'train.epoch'.*train\.epochs"):
        apply_overrides(load_recipe("facades"), ["train.epoch=3"])


def test_set_wrong_type_names_the_key_and_the_expected_type():
    with pytest.raises(ConfigError, match="train.epochs expects an integer, got 'three'"):
        apply_overrides(load_recipe("facades"), ["train.epochs=three"])
    with pytest.raises(ConfigError, match="data.flip expects true or false"):
        apply_overrides(load_recipe("facades"), ["data.flip=maybe"])
    with pytest.raises(ConfigError, match="generator.ngf expects an integer"):
        apply_overrides(load_recipe("facades"), ["generator.ngf=wide"])


def test_set_unknown_component_option_lists_that_components_options():
    with pytest.raises(ConfigError, match=r"generator 'unet_256' has no option 'nfg'.*ngf"):
        apply_overrides(load_recipe("facades"), ["generator.nfg=3"])


def test_set_choice_fields_reject_values_outside_their_choices():
    with pytest.raises(ConfigError, match="data.direction must be one of AtoB, BtoA"):
        apply_overrides(load_recipe("facades"), ["data.direction=sideways"])


def test_set_without_equals_sign_is_explained():
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides(load_recipe("facades"), ["train.epochs"])


def test_channels_are_set_by_the_engine_not_the_recipe():
    with pytest.raises(ConfigError, match="set by p2pkit from the task"):
        apply_overrides(load_recipe("facades"), ["generator.in_channels=1"])


def test_component_name_is_applied_before_its_options():
    recipe = apply_overrides(load_recipe("facades"), ["generator.depth=5", "generator.name=unet"])
    assert recipe.generator.name == "unet" and recipe.generator.options == {"depth": 5}


def test_switching_component_drops_options_the_new_one_lacks():
    recipe = load_recipe("facades")
    apply_overrides(recipe, ["discriminator.ndf=32"])
    apply_overrides(recipe, ["objective.lambda_l1=10"])
    apply_overrides(recipe, ["objective.name=gan"])
    assert recipe.objective.options == {}
    assert recipe.discriminator.options == {"ndf": 32}


def test_unknown_table_in_a_recipe_file_names_the_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n[trian]\nepochs = 3\n')
    with pytest.raises(ConfigError, match=r"mine.toml: unknown key 'trian'; did you mean train"):
        load_recipe(path)


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_recipe(path)


def test_wrong_type_in_a_file_is_reported():
    with pytest.raises(ConfigError, match="train.batch_size expects an integer"):
        recipe_from_dict({"train": {"batch_size": "four"}}, origin="x.toml")


def test_load_size_smaller_than_crop_is_rejected():
    with pytest.raises(ConfigError, match="load_size"):
        apply_overrides(load_recipe("facades"), ["data.load_size=200"])


def test_resolved_recipe_round_trips_through_toml():
    recipe = apply_overrides(load_recipe("synth-facades"), ["train.epochs=2", "generator.ngf=8"])
    text = recipe_to_toml(recipe)
    again = recipe_from_dict(toml.loads(text), origin="roundtrip")
    assert recipe_to_dict(again) == recipe_to_dict(recipe)


def test_third_party_recipe_is_found_through_its_entry_point(
    tmp_path, monkeypatch, p2pkit_registry
):
    site = tmp_path / "site"
    site.mkdir()
    (site / "my_recipes.py").write_text(
        "from pathlib import Path\nmine = Path(__file__).with_name('mine.toml')\n"
    )
    (site / "mine.toml").write_text(
        'name = "mine"\ndescription = "a plugin recipe"\n[train]\nepochs = 1\nepochs_decay = 0\n'
    )
    info = site / "my_recipes-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-recipes\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[p2pkit.recipes]\nmine = my_recipes:mine\n")
    monkeypatch.syspath_prepend(str(site))
    recipe = load_recipe("mine")
    assert recipe.description == "a plugin recipe" and recipe.train.epochs == 1
    assert "mine" in p2pkit.get_registry("recipes").names()
