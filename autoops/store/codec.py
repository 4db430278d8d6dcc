"""JSON form of the controller's state, its actions and its decisions, with exact round trips.

The encoding follows each dataclass's fields, so a field added to ``ControllerState`` or to an
action is stored without a change here. Decoding is strict: a missing field takes its default,
while an unknown field, a value of the wrong type or an unknown enum value raises ``ValueError``
naming the field's path (``state.rollout.phase: 'nope' is not one of idle, ...``).

Floats are stored as they are, infinities and NaN included: the store writes JSON with
``allow_nan=True``, so nothing is rounded or dropped on the way.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from enum import Enum
from functools import cache
from typing import Any, TypeVar, cast

from autoops.core.state import ControllerState
from autoops.model import (
    Action,
    ActionKind,
    Alert,
    Decision,
    Finding,
    Hold,
    Promote,
    Retrain,
    Rollback,
    SetCascadeThreshold,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
    Snapshot,
)

__all__ = [
    "ACTION_TYPES",
    "action_from_json",
    "action_to_json",
    "decision_from_json",
    "decision_to_json",
    "finding_from_json",
    "snapshot_from_json",
    "state_from_json",
    "state_to_json",
    "to_json_data",
]

T = TypeVar("T")

ACTION_TYPES: Mapping[ActionKind, type[Any]] = {
    ActionKind.SET_TRAFFIC: SetTraffic,
    ActionKind.SET_REPLICAS: SetReplicas,
    ActionKind.SET_REGION_WEIGHTS: SetRegionWeights,
    ActionKind.SET_CASCADE_THRESHOLD: SetCascadeThreshold,
    ActionKind.ROLLBACK: Rollback,
    ActionKind.PROMOTE: Promote,
    ActionKind.RETRAIN: Retrain,
    ActionKind.HOLD: Hold,
    ActionKind.ALERT: Alert,
}
"""The action class of each action kind."""

_ACTION_CLASSES = frozenset(ACTION_TYPES.values())


# --------------------------------------------------------------------------- public API


def state_to_json(state: ControllerState) -> dict[str, Any]:
    """The controller state as JSON data (dicts, lists, str, numbers, bool, None)."""
    return cast(dict[str, Any], _encode(state))


def state_from_json(data: Any) -> ControllerState:
    """The controller state from ``state_to_json``'s output; ValueError naming a bad field."""
    return _decode_dataclass(ControllerState, data, "state")


def action_to_json(action: Action) -> dict[str, Any]:
    """One action as JSON data, with its ``kind`` first."""
    return cast(dict[str, Any], _encode(action))


def action_from_json(data: Any) -> Action:
    """One action from ``action_to_json``'s output; ValueError naming a bad field."""
    return cast(Action, _decode_action(data, "action"))


def decision_to_json(decision: Decision) -> dict[str, Any]:
    """A decision (actions, reasons, evidence, guard changes) as JSON data."""
    return cast(dict[str, Any], _encode(decision))


def decision_from_json(data: Any) -> Decision:
    """A decision from ``decision_to_json``'s output; ValueError naming a bad field."""
    return _decode_dataclass(Decision, data, "decision")


def to_json_data(value: Any) -> Any:
    """Any of the model's values (snapshot, finding, state...) as JSON data, exactly."""
    return _encode(value)


def snapshot_from_json(data: Any) -> Snapshot:
    """A snapshot from ``to_json_data``'s output; ValueError naming a bad field."""
    return _decode_dataclass(Snapshot, data, "snapshot")


def finding_from_json(data: Any, path: str = "finding") -> Finding:
    """A finding from ``to_json_data``'s output; ValueError naming a bad field."""
    return _decode_dataclass(Finding, data, path)


# --------------------------------------------------------------------------- encoding


def _encode(value: Any) -> Any:
    """Plain JSON data for a dataclass, enum, mapping, tuple or scalar."""
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        encoded = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if type(value) in _ACTION_CLASSES:
            return {"kind": encoded.pop("kind"), **encoded}
        return encoded
    if isinstance(value, Mapping):
        return {_encode_key(k): _encode(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot encode a {type(value).__name__} as JSON")


def _encode_key(key: Any) -> str:
    """A mapping key as a JSON object key (enum values and integers become text)."""
    if isinstance(key, Enum):
        return str(key.value)
    if isinstance(key, bool) or not isinstance(key, str | int):
        raise TypeError(f"cannot encode a {type(key).__name__} mapping key as JSON")
    return str(key)


# --------------------------------------------------------------------------- decoding


def _fail(path: str, problem: str) -> ValueError:
    """The error for a bad value at ``path``."""
    return ValueError(f"{path}: {problem}")


def _show(value: Any) -> str:
    """A short rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@cache
def _hints(cls: Any) -> dict[str, Any]:
    """The resolved type hints of a dataclass's fields."""
    return typing.get_type_hints(cls)


def _decode_dataclass(cls: type[T], data: Any, path: str) -> T:
    """An instance of dataclass ``cls`` from a JSON object, field by field."""
    if not isinstance(data, Mapping):
        raise _fail(path, f"expected an object, got {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cast(Any, cls)) if f.init}
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise _fail(f"{path}.{unknown[0]}", f"unknown field (known: {', '.join(fields)})")
    hints = _hints(cast(Any, cls))
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _decode(hints[name], data[name], f"{path}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _fail(f"{path}.{name}", "missing")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise _fail(path, str(exc)) from None


def _decode_action(data: Any, path: str) -> Any:
    """An action of the class its ``kind`` names."""
    if not isinstance(data, Mapping):
        raise _fail(path, f"expected an object, got {_show(data)}")
    if "kind" not in data:
        raise _fail(f"{path}.kind", "missing")
    try:
        kind = ActionKind(data["kind"])
    except ValueError:
        known = ", ".join(k.value for k in ActionKind)
        raise _fail(f"{path}.kind", f"{_show(data['kind'])} is not one of {known}") from None
    return _decode_dataclass(ACTION_TYPES[kind], data, path)


def _decode(hint: Any, value: Any, path: str) -> Any:
    """``value`` decoded as type ``hint``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _decode_union(args, value, path)
    if origin is typing.Literal:
        return _decode_literal(args, value, path)
    if origin is tuple:
        return _decode_tuple(args, value, path)
    if origin in (Mapping, dict, typing.Mapping):
        return _decode_mapping(args, value, path)
    if isinstance(hint, type):
        return _decode_simple(hint, value, path)
    raise _fail(path, f"cannot decode type {hint!r}")


def _decode_simple(hint: type[Any], value: Any, path: str) -> Any:
    """A scalar, an enum member or a nested dataclass."""
    if dataclasses.is_dataclass(hint):
        return _decode_dataclass(hint, value, path)
    if issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            known = ", ".join(str(m.value) for m in hint)
            raise _fail(path, f"{_show(value)} is not one of {known}") from None
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _fail(path, f"expected true or false, got {_show(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _fail(path, f"expected an integer, got {_show(value)}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _fail(path, f"expected a number, got {_show(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise _fail(path, f"expected a string, got {_show(value)}")
    if hint is type(None):
        if value is None:
            return None
        raise _fail(path, f"expected null, got {_show(value)}")
    raise _fail(path, f"cannot decode type {hint.__name__}")


def _decode_union(args: tuple[Any, ...], value: Any, path: str) -> Any:
    """The first alternative that accepts ``value`` (actions dispatch on their ``kind``)."""
    if value is None and type(None) in args:
        return None
    alternatives = [a for a in args if a is not type(None)]
    if alternatives and all(isinstance(a, type) and a in _ACTION_CLASSES for a in alternatives):
        return _decode_action(value, path)
    if len(alternatives) == 1:
        return _decode(alternatives[0], value, path)
    problems: list[str] = []
    for alternative in alternatives:
        try:
            return _decode(alternative, value, path)
        except ValueError as exc:
            problems.append(str(exc).removeprefix(f"{path}: "))
    expected = " or ".join(problems) if problems else "null"
    raise _fail(path, expected)


def _decode_literal(args: tuple[Any, ...], value: Any, path: str) -> Any:
    """The literal (or enum member) that ``value`` spells."""
    for literal in args:
        plain = literal.value if isinstance(literal, Enum) else literal
        if value == plain and type(value) is type(plain):
            return literal
    known = ", ".join(str(a.value if isinstance(a, Enum) else a) for a in args)
    raise _fail(path, f"{_show(value)} is not one of {known}")


def _decode_tuple(args: tuple[Any, ...], value: Any, path: str) -> tuple[Any, ...]:
    """A homogeneous ``tuple[X, ...]`` or a fixed ``tuple[A, B]`` from a JSON array."""
    if not isinstance(value, list | tuple):
        raise _fail(path, f"expected an array, got {_show(value)}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_decode(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise _fail(path, f"expected {len(args)} items, got {len(value)}")
    return tuple(
        _decode(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
    )


def _decode_mapping(args: tuple[Any, ...], value: Any, path: str) -> dict[Any, Any]:
    """A mapping from a JSON object (integer and enum keys are parsed back from text)."""
    if not isinstance(value, Mapping):
        raise _fail(path, f"expected an object, got {_show(value)}")
    key_hint, value_hint = args if args else (str, Any)
    out: dict[Any, Any] = {}
    for key, item in value.items():
        out[_decode_key(key_hint, key, path)] = _decode(value_hint, item, f"{path}.{key}")
    return out


def _decode_key(hint: Any, key: Any, path: str) -> Any:
    """A mapping key from its JSON text."""
    if not isinstance(key, str):
        raise _fail(path, f"expected text keys, got {_show(key)}")
    if hint is str or hint is Any:
        return key
    if hint is int:
        try:
            return int(key)
        except ValueError:
            raise _fail(path, f"key {_show(key)} is not an integer") from None
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _decode_simple(hint, key, f"{path}.{key}")
    raise _fail(path, f"cannot decode keys of type {hint!r}")
