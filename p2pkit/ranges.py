"""Declared types and bounds of options, checked before anything is built.

A component's factory (or a configuration dataclass) declares the range of a numeric
option with ``typing.Annotated``::

    def unet(ngf: Annotated[int, Range(1, 256)] = 64, depth: Annotated[int, Range(1, 12)] = 8):
        ...

[`p2pkit.registry.Registry.create`][p2pkit.registry.Registry.create] checks every option against its
annotation (type and range) before calling the factory, whether the value comes from a recipe,
``--set``, a checkpoint's ``meta.json`` or a library call, so a plugin's options get the
same protection as the built-ins. The bounds are sanity limits, not advice: they stop a
typo (``ngf = 10**9`` would try to allocate 192 GB; ``depth = 10**6`` would hang) with a
one-line error instead of exhausting the machine.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union


@dataclass(frozen=True)
class Range:
    """Bounds of a numeric option, for ``Annotated[int, Range(...)]``.

    Args:
        low: smallest allowed value (None: no lower bound).
        high: largest allowed value (None: no upper bound).
        low_open: exclude ``low`` itself (``Range(0, low_open=True)`` means > 0).
        high_open: exclude ``high`` itself (``Range(0, 1, high_open=True)`` is [0, 1)).

    Non-finite numbers (nan, inf) are always out of range.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        """The range in words, e.g. ``between 1 and 256`` or ``> 0``."""
        low = None if self.low is None else _number(self.low)
        high = None if self.high is None else _number(self.high)
        if low is not None and high is not None:
            if not self.low_open and not self.high_open:
                return f"between {low} and {high}"
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"in {left}{low}, {high}{right}"
        if low is not None:
            return f"{'>' if self.low_open else '>='} {low}"
        if high is not None:
            return f"{'<' if self.high_open else '<='} {high}"
        return "a finite number"

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the range (and is finite)."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (
            self.high is not None and (value > self.high or (self.high_open and value == self.high))
        )


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def type_problem(value: Any, annotation: Any) -> str | None:
    """Why ``value`` does not fit ``annotation`` (None when it does).

    Understands ``int``, ``float`` (ints widen), ``bool``, ``str``, ``Literal``,
    ``Optional``/unions, lists and tuples of those, and ``Annotated[..., Range]``;
    anything else (a class, ``Any``, no annotation) is accepted as it is.
    """
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        problem = type_problem(value, base)
        if problem:
            return problem
        for extra in extras:
            if isinstance(extra, Range) and not extra.contains(value):
                return f"must be {extra.describe()}, not {value!r}"
        return None
    if origin in (Union, types.UnionType):
        args = typing.get_args(annotation)
        problems = [type_problem(value, a) for a in args]
        if any(p is None for p in problems):
            return None
        # The value had the right type for one member: its range problem is the useful one.
        ranged = [p for p in problems if p and p.startswith("must be")]
        return ranged[0] if ranged else f"expects {_type_name(annotation)}, got {value!r}"
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value in choices:
            return None
        return f"must be one of {', '.join(repr(c) for c in choices)}, not {value!r}"
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return f"expects a list, got {value!r}"
        inner = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        for item in value:
            problem = type_problem(item, inner[0]) if inner else None
            if problem:
                return problem
        return None
    if annotation is type(None):
        return None if value is None else f"expects nothing (none), got {value!r}"
    if annotation is bool:
        return None if isinstance(value, bool) else f"expects true or false, got {value!r}"
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expects an integer, got {value!r}"
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            return f"expects a number, got {value!r}"
        return None if math.isfinite(value) else f"must be a finite number, not {value!r}"
    if annotation is str:
        return None if isinstance(value, str) else f"expects a string, got {value!r}"
    return None


def _type_name(annotation: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "nothing (none)"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def annotations_of(factory: Callable[..., Any]) -> dict[str, Any]:
    """Parameter name -> annotation (``Annotated`` kept) of a factory or class."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # unresolvable annotations: nothing to check against
        return {}


def option_problems(factory: Callable[..., Any], options: dict[str, Any]) -> list[tuple[str, str]]:
    """``(option, why)`` for each option whose value does not fit its annotation."""
    hints = annotations_of(factory)
    problems = []
    for key, value in options.items():
        if key in hints:
            problem = type_problem(value, hints[key])
            if problem:
                problems.append((key, problem))
    return problems


__all__ = ["Range", "annotations_of", "option_problems", "type_problem"]
