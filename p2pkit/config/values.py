"""Typing, checking and overriding a recipe's values.

Values are parsed from the field's type (or the factory parameter's annotation), never
with ``eval``: ``--set train.epochs=5``, ``--set generator.ngf=32``,
``--set data.direction=BtoA``. A component's options are looked up in its factory's
signature, so checking them imports the component.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import sys
import types
import typing
from typing import Any, Literal, Union

from p2pkit.config.schema import (
    _CHOICES,
    COMPONENT_SECTIONS,
    ENGINE_OPTIONS,
    PLAIN_SECTIONS,
    TOP_LEVEL,
    ComponentConfig,
    Recipe,
)
from p2pkit.errors import ConfigError, RegistryError
from p2pkit.ranges import annotations_of, type_problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


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
