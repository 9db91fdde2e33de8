"""Every registered component passes the checks p2pkit.testing gives plugin authors.

Parametrised over the registries themselves (``list_generators()`` and friends), so a new
built-in, or an installed plugin, is checked without a line here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import p2pkit
from p2pkit.registry import get_registry
from p2pkit.testing import (
    check_dataset,
    check_discriminator,
    check_generator,
    check_objective,
    check_recipe,
    check_source,
    check_task,
    smoke_train_and_translate,
)


def small(kind: str, name: str, **options: object) -> object:
    """The component with narrow layers where it has a width option: the same checks, faster."""
    accepted = get_registry(kind).options(name)
    for key, value in (("ngf", 8), ("ndf", 8)):
        if key in accepted:
            options.setdefault(key, value)
    return get_registry(kind).create(name, **options)


@pytest.mark.parametrize("name", p2pkit.list_generators())
def test_every_generator_passes_check_generator(name):
    check_generator(small("generators", name), batch_size=1)


@pytest.mark.parametrize("name", p2pkit.list_discriminators())
def test_every_discriminator_passes_check_discriminator(name):
    for conditional in (True, False):
        # 128 px: the 286x286 PatchGAN's five downsamplings need room.
        check_discriminator(small("discriminators", name, conditional=conditional), size=128)


@pytest.mark.parametrize("name", p2pkit.list_objectives())
def test_every_objective_passes_check_objective(name):
    check_objective(p2pkit.create_objective(name))


@pytest.mark.parametrize("name", p2pkit.list_tasks())
def test_every_task_passes_check_task(name):
    check_task(p2pkit.create_task(name))


@pytest.fixture(scope="module")
def layouts_data(tmp_path_factory, tiny_data) -> dict[str, Path]:
    """The same images in each built-in layout: aligned A|B files, A/ and B/ folders, one folder."""
    root = tmp_path_factory.mktemp("layouts")
    for side in ("A", "B"):
        (root / "paired" / "train" / side).mkdir(parents=True)
    (root / "single" / "train").mkdir(parents=True)
    for path in sorted((tiny_data / "train").glob("*.png"))[:3]:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        half = pixels.shape[1] // 2
        Image.fromarray(pixels[:, :half]).save(root / "paired" / "train" / "A" / path.name)
        Image.fromarray(pixels[:, half:]).save(root / "paired" / "train" / "B" / path.name)
        Image.fromarray(pixels[:, :half]).save(root / "single" / "train" / path.name)
    return {"aligned": tiny_data, "paired": root / "paired", "single": root / "single"}


@pytest.mark.parametrize("name", p2pkit.list_datasets())
def test_every_dataset_layout_passes_check_dataset(name, layouts_data):
    if name not in layouts_data:
        pytest.skip(f"no sample data in the layout of plugin '{name}'; its package checks it")
    options = {"root": layouts_data[name], "split": "train"}
    if name != "single":
        options["direction"] = "AtoB"
    check_dataset(p2pkit.create_dataset(name, **options))


@pytest.mark.parametrize("name", get_registry("recipes").names())
def test_every_recipe_passes_check_recipe(name):
    assert check_recipe(name).name


@pytest.mark.parametrize("name", get_registry("sources").names())
def test_every_data_source_passes_check_source(name, tmp_path):
    """A source that makes its data locally is run, small; a download is checked without
    the network."""
    accepted = get_registry("sources").options(name)
    small = {option: 2 for option in ("n_train", "n_val") if option in accepted}
    source = get_registry("sources").create(name, **small)
    provided = check_source(source, tmp_path, size=32)
    assert (provided is None) == source.downloads


def test_check_source_names_what_a_source_lacks(tmp_path):
    class NoDescription:
        downloads = False

        def provide(self, folder, *, size=None, progress=True):
            return folder

    class MakesNothing:
        description = "an empty folder"
        downloads = False

        def provide(self, folder, *, size=None, progress=True):
            folder.mkdir(parents=True, exist_ok=True)
            return folder

    with pytest.raises(AssertionError, match="no 'description'"):
        check_source(NoDescription(), tmp_path)
    with pytest.raises(AssertionError, match="without files"):
        check_source(MakesNothing(), tmp_path)


def test_a_generator_that_needs_more_than_its_multiple_declares_min_size(p2pkit_registry):
    import torch
    from torch import nn

    class NeedsEight(nn.Module):
        in_channels = out_channels = 3
        size_multiple = 4
        min_size = 8

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-1] < self.min_size:
                raise RuntimeError("Padding size should be less than the input dimension")
            return torch.tanh(self.conv(nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")))

    check_generator(NeedsEight())  # checked at 8 px, not at its multiple of 4
    with pytest.raises(AssertionError, match="below the generator's min_size 8"):
        check_generator(NeedsEight(), size=4)


def test_a_generator_that_crashes_is_an_assertion_not_a_raw_error():
    import torch
    from torch import nn

    class Crashes(nn.Module):
        in_channels = out_channels = 3
        size_multiple = 4

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("Padding size should be less than the corresponding input dimension")

    with pytest.raises(AssertionError, match="declare min_size"):
        check_generator(Crashes())


def test_smoke_check_trains_a_recipe_and_translates_in_one_line(tmp_path):
    tiny = (
        "generator.name=unet", "generator.depth=5", "generator.ngf=4", "discriminator.ndf=4",
        "data.crop_size=32", "data.load_size=36", "train.precision=fp32",
    )  # fmt: skip
    written = smoke_train_and_translate("synth-facades", tmp_path, overrides=tiny)
    assert written and all(p.is_file() for p in written)
