"""Reading recipes (registered names, TOML files) and writing them back as TOML.

Also where a recipe's data lives: [`data_folder`][p2pkit.config.data_folder] is the one
lookup of ``data.root`` and the data home that ``run``, ``evaluate`` and ``sweep`` share.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from p2pkit.config.schema import (
    COMPONENT_SECTIONS,
    PLAIN_SECTIONS,
    TOP_LEVEL,
    ComponentConfig,
    DataConfig,
    Recipe,
)
from p2pkit.config.values import (
    _accepts_any_option,
    _closest,
    apply_overrides,
    coerce,
    component_option_types,
    set_value,
    validate,
)
from p2pkit.errors import ConfigError, RegistryError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


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
