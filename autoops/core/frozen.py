"""Fast builders for the frozen, slotted dataclasses a pass over a fleet creates by the dozen.

A frozen dataclass's ``__init__`` sets each field with ``object.__setattr__`` (its own
``__setattr__`` refuses): one call through a slot wrapper per field, with its arguments packed
and unpacked. ``decide`` builds several such objects per target on every pass (states, steps,
verdicts, the decision), and building them was about a sixth of the pass.

``builder(cls)`` returns a function with the constructor's parameters, defaults and default
factories that builds the same instance another way: it creates an instance of a plain twin
class with the same slots (the same memory layout), assigns the fields as ordinary attributes,
and then switches the instance's class to ``cls``. What comes out is an instance of ``cls``
like any other: frozen, equal, hashed, printed and pickled as one built by ``cls(...)``. The
class itself is not changed; code on the hot path calls the builder instead of the class.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

P = ParamSpec("P")
T = TypeVar("T")

_NO_VALUE: Any = object()
"""Stands for an argument not given, where the field has a default factory."""


def _parameter(index: int, field: dataclasses.Field[Any], namespace: dict[str, Any]) -> str:
    """The parameter of one field, with its default bound in ``namespace``."""
    if field.default is not dataclasses.MISSING:
        namespace[f"_default_{index}"] = field.default
        return f"{field.name}=_default_{index}"
    if field.default_factory is not dataclasses.MISSING:
        return f"{field.name}=_NO_VALUE"
    return field.name


def _store(index: int, field: dataclasses.Field[Any], namespace: dict[str, Any]) -> str:
    """The statement that stores one field (calling its default factory when not given)."""
    name = field.name
    if field.default_factory is dataclasses.MISSING:
        return f"    self.{name} = {name}"
    namespace[f"_factory_{index}"] = field.default_factory
    return f"    self.{name} = _factory_{index}() if {name} is _NO_VALUE else {name}"


def _fields(cls: type[Any]) -> tuple[dataclasses.Field[Any], ...]:
    """The class's fields, if a builder can build it exactly as its constructor does."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: builder needs a frozen dataclass with slots")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: builder does not run __post_init__")
    fields = dataclasses.fields(cls)
    if any(not f.init or f.kw_only for f in fields):
        raise TypeError(f"{cls.__name__}: builder needs positional init fields only")
    if tuple(f.name for f in fields) != tuple(cls.__dict__["__slots__"]):
        raise TypeError(f"{cls.__name__}: builder needs exactly one slot per field")
    return fields


def builder(cls: Callable[P, T]) -> Callable[P, T]:
    """A function that builds ``cls(...)``, a frozen slotted dataclass, without setattr calls."""
    kind = cast(type[Any], cls)
    fields = _fields(kind)
    # Same base, same slots in the same order: the same layout, so the class may be switched.
    twin = type(f"_Mutable{kind.__name__}", (), {"__slots__": kind.__dict__["__slots__"]})
    namespace: dict[str, Any] = {"_NO_VALUE": _NO_VALUE, "_cls": kind, "_twin": twin}
    params = ", ".join(_parameter(i, f, namespace) for i, f in enumerate(fields))
    lines = [
        f"def build({params}):",
        "    self = _twin()",
        *(_store(i, f, namespace) for i, f in enumerate(fields)),
        "    self.__class__ = _cls",
        "    return self",
    ]
    exec("\n".join(lines) + "\n", namespace)
    build: Callable[P, T] = namespace["build"]
    build.__name__ = build.__qualname__ = f"build_{kind.__name__}"
    build.__module__ = kind.__module__
    build.__doc__ = f"Build a {kind.__name__} (as {kind.__name__}(...) does)."
    build.__signature__ = inspect.signature(kind)  # type: ignore[attr-defined]
    return build
