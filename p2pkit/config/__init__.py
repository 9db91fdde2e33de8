"""Recipes: typed dataclasses loaded from TOML, with ``--set key=value`` overrides.

A recipe says everything a training run needs: the task, the data, the networks,
the objective and the training schedule. Component tables (``[generator]``,
``[discriminator]``, ``[objective]``, ``[task]``) hold a ``name`` from the registry
and any further keys are that component's options, checked against its factory's
signature. Everything else is a typed dataclass field.

Overrides are parsed from the field's type (or the factory parameter's annotation),
never with ``eval``: ``--set train.epochs=5``, ``--set generator.ngf=32``,
``--set data.direction=BtoA``.

The package holds three modules, each importing only the one before:

* `p2pkit.config.schema`: the dataclasses, the allowed values (``Literal`` types that the
  data, augmentation and engine code reuse) and the section tables;
* `p2pkit.config.values`: typing a value, checking its range, ``--set`` overrides;
* `p2pkit.config.loading`: reading recipes by name or file, writing them as TOML, and where a
  recipe's data lives.

Every name is imported from ``p2pkit.config`` itself; the modules are how the code is kept.
"""

from __future__ import annotations

from p2pkit.config.loading import (
    data_folder,
    load_recipe,
    load_toml,
    recipe_from_dict,
    recipe_source,
    recipe_to_dict,
    recipe_to_toml,
    recipe_toml,
    source_folder,
    tomllib,
)
from p2pkit.config.schema import (
    COMPILE_MODES,
    COMPONENT_SECTIONS,
    DIRECTIONS,
    DIST_BACKENDS,
    ENGINE_OPTIONS,
    PLAIN_SECTIONS,
    PRECISIONS,
    PREPROCESS,
    SWITCHES,
    TOP_LEVEL,
    WEIGHTS,
    CompileMode,
    ComponentConfig,
    DataConfig,
    Direction,
    DistBackend,
    Precision,
    Preprocess,
    Recipe,
    Switch,
    TrainConfig,
    Weights,
)
from p2pkit.config.values import (
    apply_overrides,
    coerce,
    component_option_types,
    set_value,
    valid_keys,
    validate,
)

__all__ = [
    "ComponentConfig",
    "DataConfig",
    "Recipe",
    "TrainConfig",
    "apply_overrides",
    "load_recipe",
    "recipe_to_dict",
    "recipe_to_toml",
]
