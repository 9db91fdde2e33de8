"""Recipes: typed dataclasses loaded from TOML, with ``--set key=value`` overrides.

A recipe says everything a training run needs: the task, the data, the networks,
the objective and the training schedule. Component tables (``[generator]``,
``[discriminator]``, ``[objective]``, ``[task]``) hold a ``name`` from the registry
and any further keys are that component's options, checked against its factory's
signature. Everything else is a typed dataclass field.

Overrides are parsed from the field's type (or the factory parameter's annotation),
never with ``eval``: ``--set train.epochs=5``, ``--set generator.ngf=32``,
``--set data.direction=BtoA``.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from p2pkit.errors import ConfigError, RegistryError
from p2pkit.ranges import Range, annotations_of, type_problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Allowed values, as types the dataclasses use and as tuples the data, augmentation,
# engine and command-line code check against: one definition each.
Direction = Literal["AtoB", "BtoA"]
Preprocess = Literal["resize_and_crop", "crop", "resize", "none"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Switch = Literal["auto", "on", "off"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
DistBackend = Literal["auto", "nccl", "gloo", "mpi", "xccl"]
Weights = Literal["auto", "ema", "raw"]

DIRECTIONS: tuple[str, ...] = typing.get_args(Direction)
PREPROCESS: tuple[str, ...] = typing.get_args(Preprocess)
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
SWITCHES: tuple[str, ...] = typing.get_args(Switch)
COMPILE_MODES: tuple[str, ...] = typing.get_args(CompileMode)
DIST_BACKENDS: tuple[str, ...] = typing.get_args(DistBackend)
WEIGHTS: tuple[str, ...] = typing.get_args(Weights)


@dataclass
class ComponentConfig:
    """A registered component: its ``name`` and the options passed to its factory."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where the images come from and how they are prepared (section 6.2).

    Attributes:
        dataset: dataset layout from the registry: ``aligned`` (A|B side by side),
            ``paired`` (``A/`` and ``B/`` folders) or ``single`` (one folder).
        root: the dataset folder; ``--data-root`` overrides it.
        source: where the data comes from: a name for ``p2pkit data download``,
            ``synth`` for the generated toy set, or a short description.
        train_split: sub-folder used for training (the root itself if absent).
        val_split: sub-folder used for the training sample grids and scored by
            ``evaluate`` unless ``--split`` names another.
        direction: ``AtoB`` or ``BtoA``: which side is the network's input.
        load_size: images are resized to this before the random crop (286).
        crop_size: training crop (256); must be a multiple of the U-Net's size.
        preprocess: ``resize_and_crop`` (the paper's jitter), ``crop``, ``resize``
            or ``none``.
        flip: random horizontal mirroring (section 6.2).
        skip_bad: warn and skip unusable files instead of stopping.
        cache_dir: optional folder for an on-disk cache of decoded images.
        max_images: use at most this many training images (0: all).
    """

    dataset: str = "aligned"
    root: str = ""
    source: str = ""
    train_split: str = "train"
    val_split: str = "val"
    direction: Direction = "AtoB"
    load_size: Annotated[int, Range(1, 16384)] = 286
    crop_size: Annotated[int, Range(1, 16384)] = 256
    preprocess: Preprocess = "resize_and_crop"
    flip: bool = True
    skip_bad: bool = False
    cache_dir: str = ""
    max_images: Annotated[int, Range(0)] = 0


@dataclass
class TrainConfig:
    """The optimisation schedule (sections 3.3 and 6.2) and speed settings.

    Attributes:
        epochs: epochs at the initial learning rate.
        epochs_decay: further epochs with the rate decaying linearly to zero.
        batch_size: images per iteration (1 in most of the paper's experiments).
        lr: Adam learning rate (2e-4).
        beta1, beta2: Adam momentum terms (0.5, 0.999).
        seed: seeds Python, NumPy and torch; the same seed gives the same run on CPU.
        device: ``auto`` (cuda, then mps, then cpu) or an explicit torch device.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` autocast.
        channels_last: ``auto``, ``on`` or ``off``: NHWC memory format.
        compile: ``auto``, ``on`` or ``off``: ``torch.compile`` the networks.
        compile_mode: ``torch.compile``'s mode when compiling: ``default``,
            ``reduce-overhead`` (CUDA graphs: removes the kernel-launch cost that
            dominates small batches on a fast GPU), ``max-autotune`` or
            ``max-autotune-no-cudagraphs``.
        log_every: iterations between loss-history rows.
        sample_every: iterations between sample grids (0: only at epoch ends).
        save_every: epochs between checkpoints (the last epoch is always saved).
        save_every_minutes: also save when this many minutes have passed since the
            last checkpoint (0: off), so a run killed at any moment loses at most
            that much work; 30 by default.
        save_every_iterations: also save every this many iterations (0: off).
        keep_last: step checkpoints kept on disk (older ones are pruned).
        max_iterations: stop after this many iterations in total (0: no limit); for
            quick checks.
        ema_decay: keep an exponential moving average of the generator's weights
            with this decay (``timm.utils.ModelEmaV3``; 0 turns it off, 0.999 is
            usual). Checkpoints then hold ``generator_ema`` as well, and sample
            grids, ``translate`` and ``evaluate`` use it. Not in the paper.
        ema_warmup: ramp the decay up from 0 over the first iterations (decay at
            step t is ``1 - (1 + t) ** -0.75``, capped at ``ema_decay``), so short
            runs do not average in the random initial weights.
        dist_backend: ``torch.distributed`` backend when the run is started by
            torchrun or ``--nproc``: ``auto`` (``nccl`` on CUDA, ``gloo`` on CPUs),
            ``nccl``, ``gloo``, ``mpi`` or ``xccl``.
        dist_timeout_minutes: how long a process waits for the others at a
            collective before the job fails (a process that hangs or dies stops the
            job within this time instead of freezing it).
        tensorboard: also write TensorBoard event files to ``RUN/tensorboard``
            (needs ``pip install "p2pkit[tensorboard]"``).
    """

    epochs: Annotated[int, Range(0)] = 100
    epochs_decay: Annotated[int, Range(0)] = 100
    batch_size: Annotated[int, Range(1, 65536)] = 1
    lr: Annotated[float, Range(0, 1, low_open=True)] = 2e-4
    beta1: Annotated[float, Range(0, 1, high_open=True)] = 0.5
    beta2: Annotated[float, Range(0, 1, high_open=True)] = 0.999
    seed: int = 0
    device: str = "auto"
    precision: Precision = "auto"
    channels_last: Switch = "auto"
    compile: Switch = "auto"
    compile_mode: CompileMode = "default"
    log_every: Annotated[int, Range(0)] = 20
    sample_every: Annotated[int, Range(0)] = 500
    save_every: Annotated[int, Range(0)] = 5
    keep_last: Annotated[int, Range(0)] = 3
    max_iterations: Annotated[int, Range(0)] = 0
    ema_decay: Annotated[float, Range(0, 1, high_open=True)] = 0.0
    ema_warmup: bool = True
    save_every_minutes: Annotated[float, Range(0)] = 30.0
    save_every_iterations: Annotated[int, Range(0)] = 0
    dist_backend: DistBackend = "auto"
    dist_timeout_minutes: Annotated[float, Range(0, low_open=True)] = 10.0
    tensorboard: bool = False


@dataclass
class Recipe:
    """A complete training recipe.

    Attributes:
        name: the recipe's name (also the default run name).
        description: one line for ``p2pkit recipes list``.
        paper: the paper's section, figure or table the recipe follows.
        task: how inputs and targets are made from the images (``translation``,
            ``colorization``, ``inpainting``).
        data: the dataset and its loading, a [`DataConfig`][p2pkit.config.DataConfig].
        train: the schedule and the engine's settings, a
            [`TrainConfig`][p2pkit.config.TrainConfig].
        generator: the registered generator and its options.
        discriminator: the registered discriminator and its options.
        objective: the registered objective and its options.
    """

    name: str = "custom"
    description: str = ""
    paper: str = ""
    task: ComponentConfig = field(default_factory=lambda: ComponentConfig("translation"))
    data: DataConfig = field(default_factory=DataConfig)
    generator: ComponentConfig = field(default_factory=lambda: ComponentConfig("unet_256"))
    discriminator: ComponentConfig = field(default_factory=lambda: ComponentConfig("patchgan_70"))
    objective: ComponentConfig = field(default_factory=lambda: ComponentConfig("l1_cgan"))
    train: TrainConfig = field(default_factory=TrainConfig)


COMPONENT_SECTIONS = {
    "task": "tasks",
    "generator": "generators",
    "discriminator": "discriminators",
    "objective": "objectives",
}
PLAIN_SECTIONS = {"data": DataConfig, "train": TrainConfig}
TOP_LEVEL = ("name", "description", "paper")

# Options the engine fills in from the task and the objective; a recipe may not set
# them, because a mismatch would only surface as a shape error deep in training.
ENGINE_OPTIONS = {
    "generator": ("in_channels", "out_channels"),
    "discriminator": ("in_channels", "out_channels", "conditional"),
}

_CHOICES = {
    "data.direction": DIRECTIONS,
    "data.preprocess": PREPROCESS,
    "train.precision": PRECISIONS,
    "train.channels_last": SWITCHES,
    "train.compile": SWITCHES,
    "train.compile_mode": (
        "default",
        "reduce-overhead",
        "max-autotune",
        "max-autotune-no-cudagraphs",
    ),
    "train.dist_backend": DIST_BACKENDS,
}


# --------------------------------------------------------------------- values
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if tp in names:
        return names[tp]
    if tp is type(None):
        return "nothing (none)"
    if origin in (tuple, list):
        return "a list"
    return getattr(tp, "__name__", str(tp))


def _parse_literal(text: str) -> Any:
    """A TOML literal (number, bool, quoted string, array), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def coerce(value: Any, tp: Any, key: str, *, from_text: bool) -> Any:
    """Convert ``value`` to type ``tp`` or raise a ConfigError naming ``key``.

    ``from_text`` is true for ``--set`` strings, which are parsed; values read
    from TOML already have types and are only checked (ints widen to floats).
    """
    if tp is Any or tp is inspect.Parameter.empty:
        return _parse_literal(value) if from_text and isinstance(value, str) else value
    origin = typing.get_origin(tp)
    if origin is Literal:
        # The value's type is checked here; which of the choices it is, by the caller.
        kinds = {type(choice) for choice in typing.get_args(tp)}
        return coerce(value, kinds.pop() if len(kinds) == 1 else Any, key, from_text=from_text)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and from_text and str(value).lower() in ("none", "null", ""):
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, key, from_text=from_text)
            except ConfigError:
                continue
        raise ConfigError(f"{key} expects {_type_name(tp)}, got {value!r}")
    if origin in (tuple, list):
        items = value
        if from_text and isinstance(value, str):
            parsed = _parse_literal(value)
            items = parsed if isinstance(parsed, list) else [s for s in value.split(",") if s]
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{key} expects a list, got {value!r}")
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = args[0] if args else Any
        out = [coerce(v, inner, key, from_text=from_text) for v in items]
        return tuple(out) if origin is tuple else out
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).strip().lower() in ("true", "1", "yes", "on"):
            return True
        if from_text and str(value).strip().lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key} expects true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key} expects an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if from_text:
            try:
                return int(str(value).strip())
            except ValueError:
                pass
        raise ConfigError(f"{key} expects an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_text:
            try:
                return float(str(value).strip())
            except ValueError:
                pass
        raise ConfigError(f"{key} expects a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} expects a string, got {value!r}")
    return value


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _check_range(key: str, value: Any, annotation: Any, origin: str) -> None:
    """A ConfigError naming ``origin`` and ``key`` when ``value`` is outside its declared range."""
    problem = type_problem(value, annotation)
    if problem:
        raise ConfigError(f"{origin}: {key} {problem}")


def component_option_types(section: str, name: str) -> dict[str, Any]:
    """Option name -> type annotation of the factory registered as ``name``."""
    from p2pkit.registry import get_registry

    registry = get_registry(COMPONENT_SECTIONS[section])
    try:
        factory = registry.get(name)
    except RegistryError as exc:
        raise ConfigError(f"{section}.name: {exc}") from None
    params = registry.options(name)
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: fall back to TOML literals
        hints = {}
    return {
        n: hints.get(n, Any)
        for n, p in params.items()
        if p.kind is not inspect.Parameter.VAR_KEYWORD and n != "self"
    }


def _component_annotations(section: str, name: str) -> dict[str, Any]:
    """Option annotations of component ``name``, with ``Annotated`` ranges kept."""
    from p2pkit.registry import get_registry

    return annotations_of(get_registry(COMPONENT_SECTIONS[section]).get(name))


def _accepts_any_option(section: str, name: str) -> bool:
    from p2pkit.registry import get_registry

    params = get_registry(COMPONENT_SECTIONS[section]).options(name)
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _closest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.4)
    return f"; did you mean {', '.join(close)}?" if close else ""


# ---------------------------------------------------------------------- keys
def valid_keys(recipe: Recipe) -> list[str]:
    """Every dotted key ``--set`` accepts for this recipe."""
    keys = list(TOP_LEVEL)
    for section, cls in PLAIN_SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    for section in COMPONENT_SECTIONS:
        keys.append(f"{section}.name")
        comp: ComponentConfig = getattr(recipe, section)
        try:
            options = component_option_types(section, comp.name)
        except ConfigError:
            options = {}
        reserved = ENGINE_OPTIONS.get(section, ())
        keys += [f"{section}.{o}" for o in options if o not in reserved]
    return keys


def _check_choice(key: str, value: Any) -> None:
    choices = _CHOICES.get(key)
    if choices is not None and value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, not {value!r}")


def set_value(
    recipe: Recipe,
    key: str,
    value: Any,
    *,
    from_text: bool,
    origin: str,
    check_range: bool = True,
) -> None:
    """Set dotted ``key`` of ``recipe`` to ``value``, checking key and type.

    Args:
        origin: where the value comes from, for error messages (a file, ``--set``).
    """
    parts = key.split(".")
    if len(parts) == 1 and key in TOP_LEVEL:
        setattr(recipe, key, coerce(value, str, key, from_text=from_text))
        return
    if len(parts) == 2 and parts[0] in PLAIN_SECTIONS:
        section, name = parts
        types_ = _field_types(PLAIN_SECTIONS[section])
        if name in types_:
            typed = coerce(value, types_[name], key, from_text=from_text)
            _check_choice(key, typed)
            annotation = annotations_of(PLAIN_SECTIONS[section]).get(name)
            if check_range:
                _check_range(key, typed, annotation, origin)
            setattr(getattr(recipe, section), name, typed)
            return
    if len(parts) == 2 and parts[0] in COMPONENT_SECTIONS:
        section, name = parts
        comp: ComponentConfig = getattr(recipe, section)
        if name == "name":
            comp.name = coerce(value, str, key, from_text=from_text)
            return
        if name in ENGINE_OPTIONS.get(section, ()):
            raise ConfigError(
                f"{origin}: {key} is set by p2pkit from the task and the objective; "
                "remove it (set task options or objective.name instead)"
            )
        option_types = component_option_types(section, comp.name)
        if name in option_types or _accepts_any_option(section, comp.name):
            typed = coerce(value, option_types.get(name, Any), key, from_text=from_text)
            if check_range:
                annotation = _component_annotations(section, comp.name).get(name)
                _check_range(key, typed, annotation, origin)
            comp.options[name] = typed
            return
        settable = [o for o in option_types if o not in ENGINE_OPTIONS.get(section, ())]
        valid = [f"{section}.{o}" for o in settable]
        raise ConfigError(
            f"{origin}: {section} '{comp.name}' has no option '{name}'{_closest(key, valid)} "
            f"(its options: {', '.join(settable) or 'none'})"
        )
    raise ConfigError(f"{origin}: unknown key '{key}'{_closest(key, valid_keys(recipe))}")


def apply_overrides(
    recipe: Recipe, overrides: list[str] | tuple[str, ...], *, origin: str = "recipe"
) -> Recipe:
    """Apply ``key=value`` strings (from ``--set``) in order, component names first.

    A component's ``name`` is applied before its options, so
    ``--set generator.name=unet_128 --set generator.ngf=32`` checks ``ngf`` against
    ``unet_128``. Changing a component's name drops options the new one lacks.
    """
    pairs = []
    for text in overrides:
        if "=" not in text:
            raise ConfigError(f"--set {text!r}: expected key=value, e.g. train.epochs=5")
        key, value = text.split("=", 1)
        pairs.append((key.strip(), value.strip()))
    for key, value in sorted(pairs, key=lambda kv: not kv[0].endswith(".name")):
        section = key.split(".")[0]
        if key.endswith(".name") and section in COMPONENT_SECTIONS:
            comp: ComponentConfig = getattr(recipe, section)
            before = comp.name
            set_value(recipe, key, value, from_text=True, origin=f"--set {key}")
            if comp.name != before and not _accepts_any_option(section, comp.name):
                allowed = component_option_types(section, comp.name)
                comp.options = {k: v for k, v in comp.options.items() if k in allowed}
            continue
        set_value(recipe, key, value, from_text=True, origin=f"--set {key}")
    validate(recipe, origin=origin)
    return recipe


# --------------------------------------------------------------------- loading
def recipe_from_dict(
    data: dict[str, Any], *, origin: str, check: bool = True, components: bool = True
) -> Recipe:
    """Build a [`Recipe`][p2pkit.config.Recipe] from parsed TOML, checking every key and type.

    Args:
        check: also check every value's range and the cross-field rules; False leaves that
            to the caller, who applies overrides first and then calls
            [`validate`][p2pkit.config.validate].
        components: type and check each component's options against its factory, which
            imports the component (and so torch). False keeps them as the TOML types them,
            unchecked: for showing a registered recipe, whose options its conformance check
            (`check_recipe`) covers.
    """
    recipe = Recipe()
    for key, value in data.items():
        if key in TOP_LEVEL:
            set_value(recipe, key, value, from_text=False, origin=origin)
        elif key in PLAIN_SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: [{key}] must be a table")
            for sub, v in value.items():
                set_value(
                    recipe, f"{key}.{sub}", v, from_text=False, origin=origin, check_range=check
                )
        elif key in COMPONENT_SECTIONS:
            if not isinstance(value, dict) or "name" not in value:
                raise ConfigError(f"{origin}: [{key}] must be a table with a name")
            comp: ComponentConfig = getattr(recipe, key)
            comp.name = coerce(value["name"], str, f"{key}.name", from_text=False)
            comp.options = {}
            for sub, v in value.items():
                if sub == "name":
                    continue
                if not components:
                    comp.options[sub] = v
                    continue
                set_value(
                    recipe, f"{key}.{sub}", v, from_text=False, origin=origin, check_range=check
                )
        else:
            valid = list(TOP_LEVEL) + list(PLAIN_SECTIONS) + list(COMPONENT_SECTIONS)
            raise ConfigError(f"{origin}: unknown key '{key}'{_closest(key, valid)}")
    if check:
        validate(recipe, origin=origin, components=components)
    return recipe


def validate(recipe: Recipe, *, origin: str = "recipe", components: bool = True) -> None:
    """Every field within its declared range, and the checks that span fields.

    Runs when a recipe is loaded and after ``--set``, so a bad value stops the command
    before any work (``--print-config`` included).
    """
    for section, cls in PLAIN_SECTIONS.items():
        annotations = annotations_of(cls)
        for f in dataclasses.fields(cls):
            value = getattr(getattr(recipe, section), f.name)
            _check_range(f"{section}.{f.name}", value, annotations.get(f.name), origin)
    for section in COMPONENT_SECTIONS if components else ():
        comp: ComponentConfig = getattr(recipe, section)
        try:
            annotations = _component_annotations(section, comp.name)
        except RegistryError:
            continue  # an unknown name is reported where the component is built
        for key, value in comp.options.items():
            _check_range(f"{section}.{key}", value, annotations.get(key), origin)
    data, train = recipe.data, recipe.train
    if data.preprocess == "resize_and_crop" and data.load_size < data.crop_size:
        raise ConfigError(
            f"{origin}: data.load_size ({data.load_size}) is smaller than data.crop_size "
            f"({data.crop_size}); the random crop needs load_size >= crop_size"
        )
    if train.epochs + train.epochs_decay < 1:
        raise ConfigError(f"{origin}: train.epochs + train.epochs_decay must be at least 1")


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, with errors that name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recipe file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); TOML files must be UTF-8, so save "
            "it again in that encoding"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def load_recipe(
    name_or_path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    components: bool = True,
) -> Recipe:
    """A recipe by registered name (``p2pkit.recipes`` entry points) or TOML path.

    ``overrides`` (``--set`` strings) are applied before the result is checked, so an
    override can replace what the file gets wrong: a component the file names that is not
    installed (``--set generator.name=unet``), or a value out of range.

    ``components=False`` (only without overrides) leaves the components' options as the
    file types them and imports no component: see
    [`recipe_from_dict`][p2pkit.config.recipe_from_dict].
    """
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        data, origin = load_toml(path), str(path)
    else:
        source = recipe_source(str(name_or_path))
        if isinstance(source, dict):
            data, origin = source, f"recipe '{name_or_path}'"
        else:
            data, origin = load_toml(source), str(source)
    if not overrides:
        return recipe_from_dict(data, origin=origin, components=components)
    recipe = recipe_from_dict(_with_component_names(data, overrides), origin=origin, check=False)
    return apply_overrides(recipe, overrides, origin=origin)


def _with_component_names(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``data`` with the component names that ``overrides`` set, and only the options the
    new components accept: the file's own name is never looked up when it is replaced."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for text in overrides:
        key, _, value = text.partition("=")
        section, _, sub = key.strip().partition(".")
        if sub != "name" or section not in COMPONENT_SECTIONS:
            continue
        table = merged.setdefault(section, {})
        if not isinstance(table, dict):
            continue
        name = value.strip()
        if table.get("name") != name:
            try:
                accepted = component_option_types(section, name)
                keep_all = _accepts_any_option(section, name)
            except ConfigError:
                accepted, keep_all = {}, True  # reported by name when the recipe is built
            table = {k: v for k, v in table.items() if keep_all or k in accepted}
        merged[section] = {**table, "name": name}
    return merged


def recipe_source(name: str) -> Path | dict[str, Any]:
    """What the ``p2pkit.recipes`` entry point ``name`` provides: a TOML path or a dict.

    A plugin's entry point may point at a path (``str``/``Path``/importlib
    ``Traversable``), a dict, or a callable returning one of those.
    """
    from p2pkit.registry import get_registry

    try:
        obj = get_registry("recipes").get(name)
    except RegistryError as exc:
        raise ConfigError(f"{exc}; or give a path to a .toml file") from None
    if callable(obj) and not isinstance(obj, (str, Path)):
        obj = obj()
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "read_text") and not isinstance(obj, Path):
        return tomllib.loads(obj.read_text(encoding="utf-8"))
    return Path(obj)


def recipe_toml(name_or_path: str | Path) -> dict[str, Any]:
    """A recipe's TOML as parsed, without building or checking it: for listing recipes.

    Unlike [`load_recipe`][p2pkit.config.load_recipe] this imports no component (and so
    not torch); its keys and values are only as good as the file.
    """
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        return load_toml(path)
    source = recipe_source(str(name_or_path))
    return source if isinstance(source, dict) else load_toml(source)


# A data.source that is a dataset's folder name (not a description such as "a folder of photos").
_SOURCE_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def source_folder(source: str) -> Path | None:
    """Where dataset ``source`` lives in the data home (``data/NAME``, or ``$P2PKIT_DATA/NAME``).

    None when ``source`` is empty or a description rather than a folder name. A registered
    data source (``synth``, ``facades``, a plugin's) with an empty ``data.root`` is provided
    here.
    """
    from p2pkit.data.download import data_home

    if not _SOURCE_FOLDER.fullmatch(source):
        return None
    return data_home() / source


def data_folder(data: DataConfig) -> str:
    """The dataset folder of a recipe: ``data.root``, else its source in the data home.

    The data home is searched only when ``data.root`` is empty and the folder is there;
    otherwise the result is ``data.root`` as it is (possibly ``""``).
    """
    if data.root:
        return data.root
    folder = source_folder(data.source)
    return str(folder) if folder is not None and folder.is_dir() else ""


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data (component options flattened into their tables)."""
    out: dict[str, Any] = {k: getattr(recipe, k) for k in TOP_LEVEL}
    for section in ("task", "data", "generator", "discriminator", "objective", "train"):
        value = getattr(recipe, section)
        if isinstance(value, ComponentConfig):
            out[section] = {"name": value.name, **value.options}
        else:
            out[section] = dataclasses.asdict(value)
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if value is None:
        raise ConfigError("TOML has no null; leave the key out instead")
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def recipe_to_toml(recipe: Recipe) -> str:
    """The recipe as TOML text that [`recipe_from_dict`][p2pkit.config.recipe_from_dict] reads back
    unchanged."""
    data = recipe_to_dict(recipe)
    lines = [f"{k} = {_toml_value(data[k])}" for k in TOP_LEVEL]
    for section in ("task", "data", "generator", "discriminator", "objective", "train"):
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in data[section].items() if v is not None]
    return "\n".join(lines) + "\n"
