"""Component registries and entry-point plugin discovery.

There is one [`Registry`][p2pkit.registry.Registry] per kind of component (generators,
discriminators, objectives, datasets, tasks, recipes, metrics, segmenters, data sources and
realism judges: `KINDS`). Components come from two places:

* Python entry points in the group ``p2pkit.<kind>`` (for example
  ``p2pkit.generators``), read with the standard library's `importlib.metadata`
  (each installed distribution's ``entry_points``, first copy on ``sys.path`` wins, as
  `importlib.metadata.entry_points` does). p2pkit's own built-ins are declared in
  its ``pyproject.toml`` the same way, so they are plugins like any other.
* [`Registry.register`][p2pkit.registry.Registry.register], a decorator for code living in the
  running process (notebooks, tests, a training script).

Finding components reads distribution metadata only; a plugin is imported on the
first use of one of its names, and the result is cached, failures included. A
plugin that fails to import (whatever it raises) becomes a
[`PluginFailure`][p2pkit.registry.PluginFailure] record: using its name is one
[`PluginLoadError`][p2pkit.errors.PluginLoadError] (no warning besides), and
[`Registry.load_all`][p2pkit.registry.Registry.load_all] warns once; everything else keeps
working. ``P2PKIT_STRICT_PLUGINS=1`` makes ``load_all`` fail on such a failure, or on a name
provided twice, and ``P2PKIT_DISABLE_PLUGIN_AUTOLOAD=1`` limits discovery to p2pkit's own
distribution.

A name declared by two distributions is a conflict: the bare name is an error, and the
qualified ``distribution:name`` (``p2pkit-resnet:unet_256``) picks one provider wherever a
name is taken.

This module must not import torch: ``p2pkit --help`` and ``p2pkit list`` stay fast.

Why this module is long: discovery, lazy loading, failure records, conflict reporting and
option checking are one mechanism around one `_Entry` table; about half of it is the
messages that make a broken or ambiguous plugin a one-line, actionable error.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from p2pkit.errors import OptionValueError, P2PKitError, PluginLoadError, RegistryError

__all__ = [
    "CORE_DISTRIBUTION",
    "DISABLE_AUTOLOAD_ENV",
    "IN_PROCESS",
    "KINDS",
    "STRICT_ENV",
    "ComponentInfo",
    "PluginFailure",
    "Registry",
    "all_failures",
    "component_spec",
    "get_registry",
    "isolated_registries",
    "qualified_name",
    "refresh_plugins",
]

#: The kinds of component, each with its entry-point group ``p2pkit.<kind>``.
KINDS: tuple[str, ...] = (
    "generators",
    "discriminators",
    "objectives",
    "datasets",
    "tasks",
    "recipes",
    "metrics",
    "segmenters",
    "sources",
    "judges",
)

#: The distribution that provides the built-in components.
CORE_DISTRIBUTION = "p2pkit"

#: Where a component registered in-process (not through an entry point) comes from.
IN_PROCESS = "<in-process>"

STRICT_ENV = "P2PKIT_STRICT_PLUGINS"
DISABLE_AUTOLOAD_ENV = "P2PKIT_DISABLE_PLUGIN_AUTOLOAD"

_SINGULAR = {
    "generators": "generator",
    "discriminators": "discriminator",
    "objectives": "objective",
    "datasets": "dataset",
    "tasks": "task",
    "recipes": "recipe",
    "metrics": "metric",
    "segmenters": "segmenter",
    "sources": "data source",
    "judges": "judge",
}

# How a user names a component where a name is taken, for the advice in a conflict error.
_HOW_TO_NAME = {
    "generators": "--set generator.name={}",
    "discriminators": "--set discriminator.name={}",
    "objectives": "--set objective.name={}",
    "tasks": "--set task.name={}",
    "datasets": "--set data.dataset={}",
    "recipes": "p2pkit run recipe {}",
    "sources": "--set data.source={}",
}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class PluginFailure:
    """A plugin entry point that could not be loaded.

    Attributes:
        name: the component name the entry point declares.
        group: the entry-point group, e.g. ``p2pkit.generators``.
        distribution: the distribution that declares it.
        version: that distribution's version.
        error: the exception, as ``Type: message``.
        traceback: the formatted traceback of the exception, for ``--debug``.
    """

    name: str
    group: str
    distribution: str
    version: str
    error: str
    traceback: str = field(default="", repr=False, compare=False)

    def as_dict(self) -> dict[str, str]:
        """The record without its traceback, as the JSON of ``p2pkit plugins list`` shows it."""
        return {
            "name": self.name,
            "group": self.group,
            "distribution": self.distribution,
            "version": self.version,
            "error": self.error,
        }

    def describe(self) -> str:
        """One line naming the plugin, its distribution and the error."""
        return (
            f"plugin '{self.name}' (entry point in group {self.group} of "
            f"{self.distribution} {self.version}) failed to load: {self.error}"
        )


@dataclass
class ComponentInfo:
    """Where a registered component comes from; reading it never imports the plugin.

    Attributes:
        name: the registered name.
        kind: the registry kind, e.g. ``generators``.
        distribution: the providing distribution, or ``<in-process>``.
        version: that distribution's version ('' for in-process components).
        target: ``module:attribute`` of the entry point, or the object's qualified name.
    """

    name: str
    kind: str
    distribution: str
    version: str
    target: str


def qualified_name(info: ComponentInfo) -> str:
    """``distribution:name``: the name that picks this provider when two declare ``name``."""
    return f"{info.distribution}:{info.name}"


class _Entry:
    __slots__ = ("entry_point", "failure", "info", "loaded", "obj")

    def __init__(
        self, info: ComponentInfo, entry_point: metadata.EntryPoint | None, obj: Any = None
    ):
        self.info = info
        self.entry_point = entry_point
        self.obj = obj
        self.loaded = entry_point is None
        self.failure: PluginFailure | None = None


# The scan of installed distributions is shared by all registries and redone
# when sys.path changes, so a plugin put on sys.path at run time is found.
_scan_lock = threading.Lock()
_scan_cache: dict[tuple[tuple[str, ...], bool], dict[str, list[metadata.EntryPoint]]] = {}


def _scan_entry_points() -> dict[str, list[metadata.EntryPoint]]:
    core_only = _env_flag(DISABLE_AUTOLOAD_ENV)
    key = (tuple(sys.path), core_only)
    with _scan_lock:
        cached = _scan_cache.get(key)
        if cached is not None:
            return cached
        groups: dict[str, list[metadata.EntryPoint]] = {}
        seen: set[str] = set()
        for dist in metadata.distributions():
            # Like importlib.metadata.entry_points(): the first copy of a distribution
            # on sys.path wins, so a package installed twice is one provider.
            name = _canonical(dist.metadata["Name"] or "")
            if name in seen:
                continue
            seen.add(name)
            if core_only and name != CORE_DISTRIBUTION:
                continue
            for ep in dist.entry_points:
                if ep.group.startswith("p2pkit."):
                    groups.setdefault(ep.group, []).append(ep)
        _scan_cache.clear()
        _scan_cache[key] = groups
        return groups


def refresh_plugins() -> None:
    """Forget the cached scan of installed plugins and every registry's discoveries."""
    with _scan_lock:
        _scan_cache.clear()
    for registry in _REGISTRIES.values():
        registry._reset_discovery()


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "<unknown distribution>"
    return _canonical(dist.metadata["Name"] or "<unknown distribution>")


def _canonical(name: str) -> str:
    return name.replace("_", "-").lower()


def _dist_version(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return "" if dist is None else (dist.version or "")


def _qualname(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or "?"
    return f"{module}:{getattr(obj, '__qualname__', repr(obj))}"


class Registry:
    """Named factories of one kind of component.

    Args:
        kind: one of `KINDS`; the entry-point group is ``p2pkit.<kind>``.

    A factory is any callable (a function or a class). [`create`][p2pkit.registry.Registry.create]
    calls it with keyword options after checking them against its signature.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self.group = f"p2pkit.{kind}"
        self.singular = _SINGULAR.get(kind, kind)
        self._lock = threading.RLock()
        self._local: dict[str, _Entry] = {}
        self._discovered: dict[str, _Entry] | None = None
        # name -> distribution -> entry, for every entry point (qualified names look here)
        self._providers: dict[str, dict[str, _Entry]] = {}
        self._conflicts: dict[str, list[ComponentInfo]] = {}
        self._failures: dict[str, PluginFailure] = {}

    # ----------------------------------------------------------------- discovery
    def _reset_discovery(self) -> None:
        with self._lock:
            self._discovered = None
            self._providers = {}
            self._conflicts = {}
            self._failures = {}

    def _discover(self) -> dict[str, _Entry]:
        with self._lock:
            if self._discovered is not None:
                return self._discovered
            found: dict[str, _Entry] = {}
            providers: dict[str, dict[str, _Entry]] = {}
            for ep in _scan_entry_points().get(self.group, []):
                info = ComponentInfo(
                    name=ep.name,
                    kind=self.kind,
                    distribution=_dist_name(ep),
                    version=_dist_version(ep),
                    target=ep.value,
                )
                # The same distribution seen twice on sys.path is one provider.
                by_dist = providers.setdefault(ep.name, {})
                if info.distribution not in by_dist:
                    by_dist[info.distribution] = _Entry(info, ep)
                    found.setdefault(ep.name, by_dist[info.distribution])
            self._discovered = found
            self._providers = providers
            self._conflicts = {
                name: [by_dist[d].info for d in sorted(by_dist)]
                for name, by_dist in providers.items()
                if len(by_dist) > 1
            }
            return found

    # -------------------------------------------------------------- registration
    def register(
        self, name: str | None = None, *, override: bool = False
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a factory under ``name`` (default: its ``__name__``).

        Args:
            name: the component name.
            override: replace a component of the same name instead of failing.

        Raises:
            RegistryError: the name is taken and ``override`` is false.
        """

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            key = name or factory.__name__
            info = ComponentInfo(key, self.kind, IN_PROCESS, "", _qualname(factory))
            with self._lock:
                existing = self._local.get(key) or self._discover().get(key)
                if existing is not None and not override:
                    raise RegistryError(
                        f"{self.singular} '{key}' is provided twice: by "
                        f"{_provider(existing.info)} and by {_provider(info)}; "
                        "rename one, or pass override=True to replace it"
                    )
                self._local[key] = _Entry(info, None, factory)
            return factory

        return decorator

    def unregister(self, name: str) -> None:
        """Remove an in-process registration (entry points are not affected)."""
        with self._lock:
            self._local.pop(name, None)

    # ------------------------------------------------------------------- queries
    def names(self) -> list[str]:
        """All component names, sorted; reads metadata only, imports nothing."""
        with self._lock:
            return sorted(set(self._discover()) | set(self._local))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self.names():
            return True
        try:
            self._entry(name)  # a qualified distribution:name
        except RegistryError:
            return False
        return True

    def info(self, name: str) -> ComponentInfo:
        """Where ``name`` comes from, without importing it."""
        return self._entry(name).info

    def infos(self) -> list[ComponentInfo]:
        """[`ComponentInfo`][p2pkit.registry.ComponentInfo] for every name, sorted by name."""
        return [self._entry(n).info for n in self.names() if n not in self._conflicts]

    def conflicts(self) -> dict[str, list[ComponentInfo]]:
        """Names declared by more than one distribution, with every provider."""
        with self._lock:
            self._discover()
            return {k: list(v) for k, v in self._conflicts.items()}

    def providers(self) -> list[ComponentInfo]:
        """Every entry point of this kind, one per name and distribution, conflicting ones
        included, sorted by name then distribution; reads metadata only."""
        with self._lock:
            self._discover()
            entries = [e for by_dist in self._providers.values() for e in by_dist.values()]
        return sorted((e.info for e in entries), key=lambda i: (i.name, i.distribution))

    def conflict_message(self, name: str) -> str:
        """The one-line error for a name two distributions declare, with how to pick one."""
        infos = self.conflicts().get(name, [])
        providers = " and ".join(_provider(i) for i in infos)
        choices = " or ".join(qualified_name(i) for i in infos)
        example = _HOW_TO_NAME.get(self.kind)
        # The example picks a third-party provider: the usual reason to install it.
        picked = next((i for i in reversed(infos) if i.distribution != CORE_DISTRIBUTION), None)
        hint = f" (e.g. {example.format(qualified_name(picked))})" if example and picked else ""
        return (
            f"{self.singular} '{name}' is provided by both {providers}; "
            f"name one as distribution:name, {choices}{hint}, or uninstall one of them"
        )

    def failures(self) -> list[PluginFailure]:
        """Plugins of this kind that failed to load so far."""
        with self._lock:
            return list(self._failures.values())

    def _entry(self, name: str) -> _Entry:
        with self._lock:
            entry = self._local.get(name)
            if entry is not None:
                return entry
            discovered = self._discover()
            if name in self._conflicts:
                raise RegistryError(self.conflict_message(name))
            entry = discovered.get(name)
            if entry is None:
                entry = self._qualified_entry(name)
            return entry

    def _qualified_entry(self, name: str) -> _Entry:
        """The provider a ``distribution:name`` picks; the registry lock is held."""
        dist, sep, short = name.partition(":")
        by_dist = self._providers.get(short) if sep else None
        if by_dist is None:
            raise RegistryError(self._unknown_message(short if sep else name))
        entry = by_dist.get(_canonical(dist))
        if entry is None:
            raise RegistryError(
                f"{self.singular} '{short}' is not provided by {dist} (provided by "
                f"{', '.join(sorted(by_dist))}); write one of "
                f"{', '.join(qualified_name(e.info) for e in by_dist.values())}"
            )
        return entry

    def _unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if known else "none are installed"
        return f"unknown {self.singular} '{name}'{hint} (known: {listing})"

    # ------------------------------------------------------------------- loading
    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as ``name``, importing its plugin on first use.

        ``name`` may be qualified as ``distribution:name`` to pick one provider. Using a
        broken plugin is this one error, with no warning besides: the caller shows it once.

        Raises:
            RegistryError: unknown or ambiguous name.
            PluginLoadError: the plugin providing ``name`` failed to import.
        """
        entry = self._entry(name)
        with self._lock:
            if entry.loaded:
                if entry.obj is None:
                    assert entry.failure is not None
                    raise PluginLoadError(entry.failure.describe())
                return entry.obj
            assert entry.entry_point is not None
            try:
                entry.obj = entry.entry_point.load()
            except BaseException as exc:  # a broken binary dependency may raise anything
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                failure = PluginFailure(
                    name=entry.info.name,
                    group=self.group,
                    distribution=entry.info.distribution,
                    version=entry.info.version,
                    error=f"{type(exc).__name__}: {exc}".strip(),
                    traceback="".join(traceback.format_exception(exc)),
                )
                entry.loaded = True
                entry.obj = None
                entry.failure = failure
                self._failures[qualified_name(entry.info)] = failure
                raise PluginLoadError(failure.describe()) from exc
            entry.loaded = True
            return entry.obj

    def load_all(self) -> list[PluginFailure]:
        """Import every component of this kind (each provider of a conflicting name too);
        returns the ones that failed.

        Used by ``p2pkit plugins list`` to show broken plugins. Each new failure is one
        ``RuntimeWarning``. In strict mode a name provided twice, or the first failure,
        raises instead.

        Raises:
            RegistryError: strict mode, and a name is provided twice.
            PluginLoadError: strict mode, and a plugin fails to import.
        """
        strict = _env_flag(STRICT_ENV)
        conflicts = self.conflicts()
        if strict and conflicts:
            raise RegistryError(self.conflict_message(min(conflicts)))
        for name in self.names():
            keys = [qualified_name(i) for i in conflicts[name]] if name in conflicts else [name]
            for key in keys:
                known = len(self._failures)
                try:
                    self.get(key)
                except PluginLoadError as exc:
                    if strict:
                        raise
                    if len(self._failures) > known:
                        warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
        return self.failures()

    def options(self, name: str) -> dict[str, inspect.Parameter]:
        """The keyword options ``name`` accepts, from its factory's signature."""
        return _keyword_parameters(self.get(name))

    def create(self, name: str, /, **options: Any) -> Any:
        """Build the component ``name`` with keyword ``options``.

        Unknown options fail with a [`RegistryError`][p2pkit.errors.RegistryError] naming the
        component and the option, with the closest valid option names. Each option is checked
        against the factory's annotation (its type, and a
        [`p2pkit.ranges.Range`][p2pkit.ranges.Range] in an ``Annotated`` one) before the factory
        runs; a ``ValueError`` the factory raises for an option's value becomes an
        [`OptionValueError`][p2pkit.errors.OptionValueError] naming the component. The result
        remembers how it was built (see [`component_spec`][p2pkit.registry.component_spec]).
        """
        factory = self.get(name)
        params = _keyword_parameters(factory)
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        if not accepts_any:
            for key in options:
                if key not in params:
                    raise RegistryError(self._unknown_option_message(name, key, params))
        from p2pkit.ranges import option_problems

        # Types and declared ranges are checked before the factory runs, so a value
        # from a recipe, a checkpoint or a call can never start a huge allocation.
        for key, problem in option_problems(factory, options):
            raise OptionValueError(f"{self.singular} '{name}': option {key} {problem}")
        try:
            obj = factory(**options)
        except ValueError as exc:
            if not options or isinstance(exc, P2PKitError):
                raise
            # A factory rejecting a value is the user's option at fault, not a bug:
            # name the component so the one-line error says where to look.
            raise OptionValueError(f"{self.singular} '{name}': {exc}") from exc
        # Objects with __slots__ or builtins cannot remember their spec; that is fine.
        with contextlib.suppress(AttributeError, TypeError):
            obj._p2pkit_spec = {"kind": self.kind, "name": name, "options": dict(options)}
        return obj

    def _unknown_option_message(
        self, name: str, key: str, params: dict[str, inspect.Parameter]
    ) -> str:
        valid = sorted(params)
        close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return (
            f"{self.singular} '{name}' has no option '{key}'{hint} "
            f"(its options: {', '.join(valid) or 'none'})"
        )


def _provider(info: ComponentInfo) -> str:
    if info.distribution == IN_PROCESS:
        return f"{info.target} (registered in-process)"
    version = f" {info.version}" if info.version else ""
    return f"{info.distribution}{version} ({info.target})"


def _keyword_parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return {"kwargs": inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)}
    return {
        n: p
        for n, p in signature.parameters.items()
        if p.kind
        in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.VAR_KEYWORD,
        )
    }


def component_spec(obj: Any) -> dict[str, Any] | None:
    """``{"kind", "name", "options"}`` for an object built by
    [`Registry.create`][p2pkit.registry.Registry.create]."""
    return getattr(obj, "_p2pkit_spec", None)


# The registries are the only global mutable state in p2pkit.
_REGISTRIES: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}


def get_registry(kind: str) -> Registry:
    """The registry of ``kind`` (one of `KINDS`; the singular is accepted too)."""
    plural = {v: k for k, v in _SINGULAR.items()}.get(kind, kind)
    try:
        return _REGISTRIES[plural]
    except KeyError:
        raise RegistryError(
            f"unknown component kind '{kind}' (kinds: {', '.join(KINDS)})"
        ) from None


def missing_provider_message(
    kind: str, name: str, provider: Mapping[str, Any] | None
) -> str | None:
    """What to install for a component a file names (a checkpoint's network) but no installed
    distribution provides, from the ``{"distribution", "version"}`` the file recorded.

    Returns None when ``name`` is available, or when the file recorded no provider.
    """
    registry = get_registry(kind)
    if name in registry or not isinstance(provider, Mapping):
        return None
    dist = str(provider.get("distribution") or "")
    version = str(provider.get("version") or "")
    short = name.partition(":")[2] or name
    what = f"{registry.singular} '{short}'"
    if not dist:
        return None
    if dist == IN_PROCESS:
        return f"{what} was registered in-process when this was trained; register it again first"
    try:
        installed = metadata.version(dist)
    except metadata.PackageNotFoundError:
        trained = f" ({version} trained this)" if version else ""
        return f"{what} comes from {dist}, which is not installed; install {dist}{trained}"
    if _env_flag(DISABLE_AUTOLOAD_ENV) and _canonical(dist) != CORE_DISTRIBUTION:
        return f"{what} comes from {dist}, ignored while {DISABLE_AUTOLOAD_ENV} is set; unset it"
    return (
        f"{what} is not provided by the installed {dist} {installed}; "
        f"install {dist} {version} (the version that trained this)"
    )


def all_failures() -> list[PluginFailure]:
    """Every plugin failure recorded so far, across kinds."""
    return [f for r in _REGISTRIES.values() for f in r.failures()]


@contextmanager
def isolated_registries() -> Iterator[dict[str, Registry]]:
    """Fresh registries for the duration of the block, then the old ones back.

    In-process registrations made inside the block vanish afterwards, and plugins
    are discovered anew (so a plugin placed on ``sys.path`` inside the block is seen).
    """
    saved = dict(_REGISTRIES)
    with _scan_lock:
        _scan_cache.clear()
    _REGISTRIES.update({kind: Registry(kind) for kind in KINDS})
    try:
        yield _REGISTRIES
    finally:
        _REGISTRIES.clear()
        _REGISTRIES.update(saved)
        with _scan_lock:
            _scan_cache.clear()


# ---------------------------------------------------------------- timm-style API
def register_generator(name: str | None = None, **kw: Any) -> Callable[..., Any]:
    """Decorator registering a generator factory in-process."""
    return get_registry("generators").register(name, **kw)


def register_discriminator(name: str | None = None, **kw: Any) -> Callable[..., Any]:
    """Decorator registering a discriminator factory in-process."""
    return get_registry("discriminators").register(name, **kw)


def register_objective(name: str | None = None, **kw: Any) -> Callable[..., Any]:
    """Decorator registering an objective factory in-process."""
    return get_registry("objectives").register(name, **kw)


def register_dataset(name: str | None = None, **kw: Any) -> Callable[..., Any]:
    """Decorator registering a dataset factory in-process."""
    return get_registry("datasets").register(name, **kw)


def register_task(name: str | None = None, **kw: Any) -> Callable[..., Any]:
    """Decorator registering a task factory in-process."""
    return get_registry("tasks").register(name, **kw)


def register_metric(name: str | None = None, **kw: Any) -> Callable[..., Any]:
    """Decorator registering a metric function in-process."""
    return get_registry("metrics").register(name, **kw)


def create_generator(name: str, /, **options: Any) -> Any:
    """Build a generator, e.g. ``create_generator("unet_256", ngf=32)``."""
    return get_registry("generators").create(name, **options)


def create_discriminator(name: str, /, **options: Any) -> Any:
    """Build a discriminator, e.g. ``create_discriminator("patchgan_70")``."""
    return get_registry("discriminators").create(name, **options)


def create_objective(name: str, /, **options: Any) -> Any:
    """Build an objective, e.g. ``create_objective("l1_cgan", lambda_l1=100)``."""
    return get_registry("objectives").create(name, **options)


def create_dataset(name: str, /, options: Any = None, **fields: Any) -> Any:
    """Load a dataset, e.g. ``create_dataset("aligned", root="data/facades", split="val")``.

    Args:
        name: the layout.
        options: a [`DatasetOptions`][p2pkit.data.options.DatasetOptions]; or leave it out
            and give its fields as keywords.
        **fields: the fields of a new ``DatasetOptions`` (``root`` at least).

    Raises:
        ConfigError: both ``options`` and keywords given, or an unknown keyword.
    """
    from p2pkit.data.options import DatasetOptions
    from p2pkit.errors import ConfigError

    if options is not None and fields:
        raise ConfigError("create_dataset takes a DatasetOptions or keywords, not both")
    if options is None:
        options = DatasetOptions.from_keywords(**fields)
    return get_registry("datasets").create(name, options=options)


def create_task(name: str, /, **options: Any) -> Any:
    """Build a task, e.g. ``create_task("colorization")``."""
    return get_registry("tasks").create(name, **options)


def list_generators() -> list[str]:
    """Names of all generators, without importing any plugin."""
    return get_registry("generators").names()


def list_discriminators() -> list[str]:
    """Names of all discriminators, without importing any plugin."""
    return get_registry("discriminators").names()


def list_objectives() -> list[str]:
    """Names of all objectives, without importing any plugin."""
    return get_registry("objectives").names()


def list_datasets() -> list[str]:
    """Names of all dataset layouts, without importing any plugin."""
    return get_registry("datasets").names()


def list_tasks() -> list[str]:
    """Names of all tasks, without importing any plugin."""
    return get_registry("tasks").names()
