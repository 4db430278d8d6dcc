"""Structured logging for AutoOps: one configuration, one reconcile id per control-loop pass."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO, cast

import structlog

__all__ = ["configure_logging", "get_logger", "new_reconcile_id", "reconcile_context"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _add_logger_name(
    logger: Any, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Copy the name given to ``get_logger`` into the event as ``logger``."""
    name = event_dict.pop("_logger_name", None)
    if name is not None:
        event_dict.setdefault("logger", name)
    return event_dict


def configure_logging(
    level: str = "info", json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Configure structlog: JSON lines off a tty (or when ``json``), coloured console on one."""
    try:
        min_level = _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}; expected one of {sorted(_LEVELS)}"
        ) from None
    out = stream if stream is not None else sys.stderr
    if json is None:
        json = not (hasattr(out, "isatty") and out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if json:
        processors.append(structlog.processors.dict_tracebacks)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        context_class=dict,
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """Return a structlog logger whose every line carries ``logger=name``."""
    return cast(
        structlog.typing.FilteringBoundLogger,
        structlog.get_logger().bind(_logger_name=name),
    )


def new_reconcile_id() -> str:
    """Return a short, unique id for one control-loop pass."""
    return uuid.uuid4().hex[:12]


@contextmanager
def reconcile_context(reconcile_id: str | None = None, **extra: Any) -> Iterator[str]:
    """Bind ``reconcile_id`` (and any extra keys) to every log line inside the block."""
    rid = reconcile_id if reconcile_id is not None else new_reconcile_id()
    tokens = structlog.contextvars.bind_contextvars(reconcile_id=rid, **extra)
    try:
        yield rid
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
