"""What a run is made of, built from its recipe: the task, the objective, the networks, the data.

One module builds all of it, for every reader: the trainer builds from the recipe it
trains, and loading a trained model (``translate``, ``evaluate``) rebuilds from what the
checkpoint stored. A checkpoint stores two things about how a run was made, once each:

* ``meta["recipe"]``: the resolved recipe as plain data
  ([`p2pkit.config.recipe_to_dict`][p2pkit.config.recipe_to_dict]);
* ``meta["networks"]``: each network's spec as
  [`p2pkit.registry.Registry.create`][p2pkit.registry.Registry.create] recorded it
  (``{"name", "options"}``, the options the engine filled in included), with the distribution and
  version that provided the component (``"provider"``).

Everything else a reader needs (the task, the direction, the crop size) comes from the
recipe through [`recipe_task`][p2pkit.engine.build.recipe_task] and
[`recipe_data`][p2pkit.engine.build.recipe_data].

A run folder may also hold only a generator: one imported from elsewhere
([`p2pkit.convert.authors`][p2pkit.convert.authors]) has no discriminator, optimiser state or
counters. Its meta says so with ``meta["contents"] = "generator"``
([`GENERATOR_ONLY`][p2pkit.engine.build.GENERATOR_ONLY]) and is otherwise laid out as above, so
everything that reads a trained generator reads it; only resuming training refuses it
([`check_resumable`][p2pkit.engine.build.check_resumable]).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from p2pkit.config import ComponentConfig, DataConfig, Recipe
from p2pkit.data.options import DatasetOptions
from p2pkit.registry import component_spec, get_registry

# The layout of a training run's checkpoint meta (``meta["format"]``): the recipe, the
# network specs and the counters. A reader refuses a newer layout instead of misreading it.
RUN_FORMAT = "p2pkit-run"
RUN_FORMAT_VERSION = 1
CHECKPOINT_FORMAT = f"{RUN_FORMAT}/{RUN_FORMAT_VERSION}"

#: ``meta["contents"]`` of a checkpoint that holds only the generator's weights (an imported
#: model); a training run's meta has no ``contents`` key, since it holds everything.
GENERATOR_ONLY = "generator"

# Settings that only initialised a network for training (a pretrained backbone file): the
# checkpoint holds every weight, so a reader does not need the file.
INIT_ONLY_OPTIONS = ("pretrained_path",)


def build_task(task: ComponentConfig) -> Any:
    """The task component (``translation``, ``colorization``, ``inpainting``, a plugin's)."""
    return get_registry("tasks").create(task.name, **task.options)


def build_objective(objective: ComponentConfig) -> Any:
    """The objective (eq. 4 and its Table 1 ablations, or a plugin's)."""
    return get_registry("objectives").create(objective.name, **objective.options)


def network_specs(recipe: Recipe, task: Any, objective: Any) -> dict[str, dict[str, Any]]:
    """``{"generator": {"name", "options"}, "discriminator": ...}`` as the run builds them.

    The engine sets the channel counts from the task and ``conditional`` from the
    objective, so a recipe cannot get them out of step (a mismatch would otherwise only
    show as a shape error deep inside training). No discriminator when the objective has
    no adversarial term.
    """
    channels = {"in_channels": task.in_channels, "out_channels": task.out_channels}
    specs = {
        "generator": {
            "name": recipe.generator.name,
            "options": {**recipe.generator.options, **channels},
        }
    }
    if objective.uses_discriminator:
        specs["discriminator"] = {
            "name": recipe.discriminator.name,
            "options": {
                **recipe.discriminator.options,
                **channels,
                "conditional": objective.conditional,
            },
        }
    return specs


def build_network(kind: str, spec: Mapping[str, Any], *, for_inference: bool = False) -> nn.Module:
    """A network from its spec (``{"name", "options"}``).

    Args:
        kind: ``"generators"`` or ``"discriminators"``.
        spec: the component's name and options.
        for_inference: leave out options that only initialise weights for training
            (`INIT_ONLY_OPTIONS`), whose files need not exist where the model is used.
    """
    options = dict(spec["options"])
    if for_inference:
        options = {k: v for k, v in options.items() if k not in INIT_ONLY_OPTIONS}
    return get_registry(kind).create(spec["name"], **options)


def build_networks(recipe: Recipe, task: Any, objective: Any) -> tuple[nn.Module, nn.Module | None]:
    """Generator and (when the objective needs one) discriminator, sized for ``task``."""
    specs = network_specs(recipe, task, objective)
    G = build_network("generators", specs["generator"])
    D = (
        build_network("discriminators", specs["discriminator"])
        if "discriminator" in specs
        else None
    )
    return G, D


def stored_specs(modules: Mapping[str, nn.Module]) -> dict[str, dict[str, Any]]:
    """What a checkpoint records about each network: its spec and who provided it.

    The spec is the one [`Registry.create`][p2pkit.registry.Registry.create] recorded
    on the object, so a reader rebuilds exactly what was trained.
    """
    stored: dict[str, dict[str, Any]] = {}
    for name, module in modules.items():
        spec = component_spec(module)
        if spec is None:
            raise ValueError(f"network {name!r} was not built by the registry; build it by name")
        info = get_registry(spec["kind"]).info(spec["name"])
        stored[name] = {
            "name": spec["name"],
            "options": dict(spec["options"]),
            "provider": {"distribution": info.distribution, "version": info.version},
        }
    return stored


def dataset_options(
    data: DataConfig,
    task: Any,
    split: str | None,
    *,
    root: str | Path | None = None,
    max_images: int | None = None,
    resize_to: int | None = None,
    min_size: int = 0,
) -> DatasetOptions:
    """The [`DatasetOptions`][p2pkit.data.options.DatasetOptions] a run reads data with.

    One place turns the recipe and the task into what a layout receives, for loading a split
    ([`build_dataset`][p2pkit.engine.build.build_dataset]) and for reading single input files
    (``p2pkit translate``).

    Args:
        data: the recipe's data settings (direction, bad-file policy, cache).
        task: the task, which says how many channels each side has and whether the
            layout must provide a target side (when it need not, the direction is ``AtoB``).
        split: the sub-folder to read (``train``, ``val``...), or None for ``root`` itself.
        root: the dataset folder (default ``data.root``).
        max_images: read at most this many.
        resize_to: store the images at this size; None keeps the stored size.
        min_size: refuse images smaller than this (a random crop must fit).
    """
    ch_a, ch_b = task.image_channels
    return DatasetOptions(
        root=Path(root if root is not None else data.root),
        split=split,
        direction=data.direction if task.needs_target else "AtoB",
        in_channels=ch_a,
        out_channels=ch_b if task.needs_target else 3,
        resize_to=resize_to,
        min_size=min_size,
        skip_bad=data.skip_bad,
        cache_dir=Path(data.cache_dir) if data.cache_dir else None,
        max_images=max_images,
    )


def build_dataset(
    data: DataConfig,
    task: Any,
    split: str,
    *,
    root: str | None = None,
    max_images: int | None = None,
    resize_to: int | None = None,
    min_size: int = 0,
) -> Any:
    """The images of one split, decoded once, in the recipe's dataset layout.

    The layout ``data.dataset`` receives the
    [`dataset_options`][p2pkit.engine.build.dataset_options] of these arguments.

    Args:
        data: the recipe's data settings (layout, direction, bad-file policy, cache).
        task: the task, which says how many channels each side has and whether the
            layout must provide a target side.
        split: the sub-folder to read (``train``, ``val``...).
        root: the dataset folder (default ``data.root``).
        max_images: read at most this many.
        resize_to: store the images at this size (the training scale, ``load_size``,
            for training; the crop size for evaluation); None keeps the stored size.
        min_size: refuse images smaller than this (a random crop must fit).

    Returns:
        The layout's dataset ([`p2pkit.data.base.ImageDataset`][p2pkit.data.base.ImageDataset]):
        integer images, input side first (after the direction swap).

    Raises:
        RegistryError: the layout is unknown, or still takes the keyword options of older
            p2pkit versions instead of one ``options``.
    """
    from p2pkit.errors import RegistryError

    registry = get_registry("datasets")
    if "options" not in registry.options(data.dataset):
        raise RegistryError(
            f"dataset layout '{data.dataset}' does not take options: p2pkit calls a layout "
            "with one DatasetOptions value (layout(options)); update the layout's signature "
            "(see Writing plugins, Dataset layouts)"
        )
    options = dataset_options(
        data, task, split, root=root, max_images=max_images, resize_to=resize_to,
        min_size=min_size,
    )  # fmt: skip
    return registry.create(data.dataset, options=options)


def training_dataset_options(data: DataConfig) -> dict[str, int | None]:
    """How training stores its images: at ``load_size`` (the jitter's scale), crops fitting."""
    return {
        "resize_to": data.load_size if data.preprocess != "none" else None,
        "min_size": data.crop_size if data.preprocess == "crop" else 0,
    }


def check_run_format(meta: Mapping[str, Any], where: Any) -> None:
    """Refuse the meta of a training run written in a newer layout than this p2pkit reads.

    Args:
        meta: a checkpoint's ``meta.json``.
        where: the file, for the message.

    Raises:
        CheckpointError: ``meta["format"]`` names another layout or a newer version.
    """
    from p2pkit.errors import CheckpointError

    fmt = meta.get("format")
    if fmt is None:
        return  # saved by save_checkpoint directly: no run layout to check
    name, _, version = str(fmt).partition("/")
    if name != RUN_FORMAT or not version.isdigit():
        raise CheckpointError(
            f"{where}: format {fmt!r} is not a p2pkit training run's; load a checkpoint "
            "written by p2pkit run/train"
        )
    if int(version) > RUN_FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: written in run format {version} by a newer p2pkit "
            f"({meta.get('p2pkit_version')}); this p2pkit reads up to {RUN_FORMAT_VERSION}, "
            "upgrade it"
        )


def check_resumable(meta: Mapping[str, Any], where: Any) -> None:
    """Refuse to resume training from a checkpoint that holds only a generator.

    Args:
        meta: a checkpoint's ``meta.json``.
        where: the file, for the message.

    Raises:
        CheckpointError: ``meta["contents"]`` is
            [`GENERATOR_ONLY`][p2pkit.engine.build.GENERATOR_ONLY].
    """
    from p2pkit.errors import CheckpointError

    if meta.get("contents") == GENERATOR_ONLY:
        raise CheckpointError(
            f"{where}: this run holds only a generator (no discriminator, optimiser state or "
            "counters), so training cannot resume from it; translate or evaluate with it, or "
            "start a new run without --resume"
        )


def recipe_data(meta: Mapping[str, Any]) -> DataConfig:
    """The data settings a checkpoint's run was trained with (typed, unknown keys ignored)."""
    stored = (meta.get("recipe") or {}).get("data") or {}
    known = {f.name for f in dataclasses.fields(DataConfig)}
    return DataConfig(**{k: v for k, v in stored.items() if k in known})


def recipe_task(meta: Mapping[str, Any]) -> ComponentConfig:
    """The task a checkpoint's run was trained with."""
    stored = dict((meta.get("recipe") or {}).get("task") or {"name": "translation"})
    name = stored.pop("name")
    return ComponentConfig(name, stored)


__all__ = [
    "CHECKPOINT_FORMAT",
    "GENERATOR_ONLY",
    "INIT_ONLY_OPTIONS",
    "RUN_FORMAT_VERSION",
    "build_dataset",
    "build_network",
    "build_networks",
    "build_objective",
    "build_task",
    "check_resumable",
    "check_run_format",
    "network_specs",
    "recipe_data",
    "recipe_task",
    "stored_specs",
    "training_dataset_options",
]
