"""The one safe YAML loader for every AutoOps config file (policies, regions, scenarios).

Reading is bounded (file size, nesting depth, alias count and alias expansion), duplicate keys
are errors, and every mapping key and sequence item keeps its line so that a validation error
can be reported as ``FILE:LINE: field.path: message``. Nothing here lets a traceback through:
every problem becomes a :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1024 * 1024
"""Largest config file read, bytes (1 MiB)."""
MAX_ALIASES = 100
"""Most alias references (``*name``) one document may hold."""
MAX_ALIAS_EXPANSION = 100_000
"""Most nodes that aliases may add once expanded (billion-laughs guard)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences."""

PathElem = str | int
FieldPath = tuple[Any, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, located by file, line and dotted field path."""

    file: str
    line: int | None
    path: str
    message: str

    def format(self) -> str:
        """``FILE:LINE: field.path: message`` (``FILE: ...`` when the line is unknown)."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """A config file that cannot be used; ``issues`` says every reason, with file and line."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        super().__init__("\n".join(issue.format() for issue in self.issues))

    @classmethod
    def single(cls, file: str, line: int | None, message: str, path: str = "") -> ConfigError:
        """An error with one issue."""
        return cls([ConfigIssue(file=file, line=line, path=path, message=message)])


@dataclass(frozen=True)
class LineMap:
    """The 1-based line of every mapping key and sequence item, by field path."""

    lines: Mapping[FieldPath, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[Any]) -> int | None:
        """Line of ``path``, or of its nearest ancestor that the file has."""
        key = tuple(path)
        while True:
            line = self.lines.get(key)
            if line is not None:
                return line
            if not key:
                return None
            key = key[:-1]

    def has(self, path: Sequence[Any]) -> bool:
        """Whether the file itself has a node at exactly ``path``."""
        return tuple(path) in self.lines

    def sub(self, prefix: Sequence[Any]) -> LineMap:
        """The lines under ``prefix``, re-rooted there (the prefix's own line becomes the root)."""
        pre = tuple(prefix)
        n = len(pre)
        return LineMap({k[n:]: v for k, v in self.lines.items() if k[:n] == pre})


def format_path(path: Sequence[Any]) -> str:
    """Dotted field path as written in the YAML file, e.g. ``intent.allowed_regions.1``."""
    return ".".join(str(p) for p in path)


# --------------------------------------------------------------------------- parsing


class _BombError(Exception):
    """Raised inside the composer when a document is too deep or has too many aliases."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _Loader(yaml.SafeLoader):
    """SafeLoader that bounds nesting depth and alias use while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self.nodes = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _BombError(
                    f"more than {MAX_ALIASES} aliases (*name); refusing a possible YAML bomb",
                    mark.line + 1,
                )
            return super().compose_node(parent, index)
        self._depth += 1
        self.nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _BombError(f"nesting deeper than {MAX_DEPTH} levels", mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _check_expansion(root: Node, limit: int) -> None:
    """Raise _BombError when aliases expand the document past ``limit`` nodes, or recurse."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _BombError("recursive alias (a node that contains itself)", _line(node))
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        if total > limit:
            raise _BombError(
                f"aliases expand this value by more than {MAX_ALIAS_EXPANSION:,} nodes; "
                "refusing a possible YAML bomb (billion laughs)",
                _line(node),
            )
        active.discard(key)
        sizes[key] = total
        return total

    size(root)


def _scalar_key(loader: _Loader, node: Node, file: str) -> Any:
    if not isinstance(node, ScalarNode):
        raise ConfigError.single(file, _line(node), "mapping keys must be plain values")
    return loader.construct_object(node)


def _walk(
    loader: _Loader,
    node: Node,
    path: FieldPath,
    lines: dict[FieldPath, int],
    issues: list[ConfigIssue],
    file: str,
    seen: set[int],
) -> None:
    """Record the line of every key and item under ``node``; report duplicate keys once."""
    first_visit = id(node) not in seen
    seen.add(id(node))
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines.setdefault(child, _line(item))
            _walk(loader, item, child, lines, issues, file, seen)
    elif isinstance(node, MappingNode):
        own: dict[Any, int] = {}
        merged: list[tuple[int, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append((_line(key_node), value_node))
                continue
            key = _scalar_key(loader, key_node, file)
            child = (*path, key)
            if key in own:
                if first_visit:
                    issues.append(
                        ConfigIssue(
                            file,
                            _line(key_node),
                            format_path(child),
                            f"duplicate key {key!r} (first given at line {own[key]})",
                        )
                    )
                continue
            own[key] = _line(key_node)
            lines[child] = _line(key_node)
            _walk(loader, value_node, child, lines, issues, file, seen)
        for merge_line, source in merged:
            # ``<<: *base`` merges keys: they sit, for error reporting, at the ``<<`` line.
            sources = source.value if isinstance(source, SequenceNode) else [source]
            for src in sources:
                if not isinstance(src, MappingNode):
                    continue
                for key_node, value_node in src.value:
                    if key_node.tag == _MERGE_TAG:
                        continue
                    key = _scalar_key(loader, key_node, file)
                    if key in own:
                        continue
                    child = (*path, key)
                    own[key] = merge_line
                    lines[child] = merge_line
                    _walk(loader, value_node, child, lines, issues, file, seen)


def _decode(raw: bytes, file: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError.single(
            file, line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None


def _yaml_error(exc: yaml.YAMLError, file: str) -> ConfigError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else int(mark.line) + 1
        problem = exc.problem or exc.context or "syntax error"
        if "expected a single document" in str(exc.context):
            problem = "more than one YAML document in the file (one document per file)"
            return ConfigError.single(file, line, problem)
        return ConfigError.single(file, line, f"not valid YAML: {problem}")
    if isinstance(exc, yaml.reader.ReaderError):
        return ConfigError.single(file, None, f"not valid YAML text: {exc.reason}")
    return ConfigError.single(file, None, f"not valid YAML: {exc}")


def parse_yaml(
    content: str | bytes, file: str, *, max_bytes: int = MAX_BYTES
) -> tuple[Any, LineMap]:
    """Parse one YAML document whose top level is a mapping; return the data and its lines."""
    if len(content) > max_bytes:
        raise ConfigError.single(file, None, _too_large(max_bytes))
    text = _decode(content, file) if isinstance(content, bytes) else content
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise ConfigError.single(file, line, f"not valid YAML text: {exc.reason}") from None
    try:
        try:
            root = loader.get_single_node()
        except _BombError as exc:
            raise ConfigError.single(file, exc.line, exc.message) from None
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, file) from None
        if root is None:
            raise ConfigError.single(file, 1, "file is empty (expected a mapping of fields)")
        if not isinstance(root, MappingNode):
            kind = "a list" if isinstance(root, SequenceNode) else "a single value"
            raise ConfigError.single(
                file, _line(root), f"top level must be a mapping of fields, not {kind}"
            )
        try:
            _check_expansion(root, loader.nodes + MAX_ALIAS_EXPANSION)
        except _BombError as exc:
            raise ConfigError.single(file, exc.line, exc.message) from None
        lines: dict[FieldPath, int] = {(): 1}
        issues: list[ConfigIssue] = []
        try:
            _walk(loader, root, (), lines, issues, file, set())
            if issues:
                raise ConfigError(issues)
            data = loader.construct_document(root)
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, file) from None
        except TypeError as exc:  # e.g. an unhashable key built by a merge
            raise ConfigError.single(file, None, f"not valid YAML: {exc}") from None
        return data, LineMap(lines)
    except RecursionError:  # aliases can nest values deeper than MAX_DEPTH
        raise ConfigError.single(file, None, "values nest too deeply (through aliases)") from None
    finally:
        loader.dispose()


def _too_large(max_bytes: int) -> str:
    return (
        f"file is larger than the {_human(max_bytes)} limit for config files; refusing to read it"
    )


def _human(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


def read_bounded(path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES) -> bytes:
    """Read at most ``max_bytes`` of a file; larger, missing or unreadable is a ConfigError."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError.single(file, None, "no such file") from None
    except IsADirectoryError:
        raise ConfigError.single(file, None, "is a directory, not a file") from None
    except PermissionError:
        raise ConfigError.single(file, None, "permission denied") from None
    except OSError as exc:
        raise ConfigError.single(file, None, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise ConfigError.single(file, None, _too_large(max_bytes))
    return raw


def load_yaml(path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES) -> tuple[Any, LineMap]:
    """Read and parse a YAML config file safely; return the data (a mapping) and its lines."""
    return parse_yaml(read_bounded(path, max_bytes=max_bytes), os.fspath(path), max_bytes=max_bytes)


# --------------------------------------------------------------------------- validation

_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


def _data_path(loc: Sequence[Any], data: Any) -> FieldPath:
    """The part of a pydantic ``loc`` that names places in the data (drops union tags)."""
    out: list[Any] = []
    current: Any = data
    missing = object()
    for elem in loc:
        if elem == "[key]":
            continue
        if isinstance(current, Mapping):
            out.append(elem)
            current = current.get(elem, missing)
        elif isinstance(current, list | tuple) and isinstance(elem, int):
            out.append(elem)
            current = current[elem] if 0 <= elem < len(current) else missing
        # anything else is a union member tag or a validator name: not a place in the file
    return tuple(out)


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation can hold (through Optional, tuple, list, dict values)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _unwrap(arg)]
    if origin in (tuple, list, Sequence):
        return [
            m for arg in typing.get_args(annotation) if arg is not Ellipsis for m in _unwrap(arg)
        ]
    if origin in (dict, Mapping):
        args = typing.get_args(annotation)
        return _unwrap(args[1]) if len(args) == 2 else []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _fields_at(model_cls: type[BaseModel], path: Sequence[Any]) -> list[str]:
    """Field names (aliases first) of the model found at ``path`` under ``model_cls``."""
    models: list[type[BaseModel]] = [model_cls]
    for elem in path:
        if isinstance(elem, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in models:
            for name, info in m.model_fields.items():
                if elem in (name, info.alias):
                    nxt.extend(_unwrap(info.annotation))
        if not nxt:
            # a dict key (e.g. a region name): the models stay those of the dict's values
            continue
        models = nxt
    names: list[str] = []
    for m in models:
        names.extend(info.alias or name for name, info in m.model_fields.items())
    return names


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: Mapping[str, Any], model_cls: type[BaseModel], path: FieldPath) -> str:
    kind = str(err.get("type", ""))
    msg = str(err.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        known = _fields_at(model_cls, path[:-1])
        guess = difflib.get_close_matches(str(path[-1]), known, n=1) if path else []
        if guess:
            return f"unknown field (did you mean '{guess[0]}'?)"
        if known:
            return f"unknown field (known: {', '.join(known)})"
        return "unknown field"
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of fields (got {_brief(value)})"
    if kind == "too_short" and "min_length" in ctx:
        n = ctx["min_length"]
        return f"needs at least {n} item{'s' if n != 1 else ''} (got {ctx.get('actual_length')})"
    if kind == "too_long" and "max_length" in ctx:
        n = ctx["max_length"]
        return f"takes at most {n} item{'s' if n != 1 else ''} (got {ctx.get('actual_length')})"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    msg = msg[:1].lower() + msg[1:]
    if kind.startswith(("value_error", "assertion_error")) or isinstance(value, Mapping | list):
        return msg
    return f"{msg} (got {_brief(value)})"


def _named_field(path: FieldPath, message: str, line_map: LineMap) -> FieldPath:
    """A section-level check whose message starts with a field of that section points there."""
    first = message.split(" ", 1)[0].strip(",:;")
    child = (*path, first)
    return child if first and line_map.has(child) else path


def validate_model(model_cls: type[_M], data: Any, line_map: LineMap, file: str) -> _M:
    """Validate ``data`` as ``model_cls``; a ValidationError becomes a ConfigError with lines."""
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(exc, model_cls, data, line_map, file)) from None


def issues_from_validation(
    exc: ValidationError,
    model_cls: type[BaseModel],
    data: Any,
    line_map: LineMap,
    file: str,
) -> list[ConfigIssue]:
    """One ConfigIssue per pydantic error, with the YAML path and line of the offending field."""
    issues: list[ConfigIssue] = []
    for err in exc.errors(include_url=False):
        path = _data_path(err["loc"], data)
        message = _message(err, model_cls, path)
        if str(err.get("type", "")).startswith("value_error"):
            path = _named_field(path, message, line_map)
        issue = ConfigIssue(file, line_map.line_of(path), format_path(path), message)
        if issue not in issues:
            issues.append(issue)
    issues.sort(key=lambda i: i.line or 0)
    return issues
