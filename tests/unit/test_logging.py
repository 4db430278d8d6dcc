from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog

from autoops.logging import configure_logging, get_logger, new_reconcile_id, reconcile_context


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_reconcile_id_is_on_every_line_inside_the_context_and_gone_after() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    log = get_logger("autoops.runtime.loop")

    log.info("before")
    with reconcile_context("abc123def456") as rid:
        log.info("read snapshot")
        get_logger("autoops.adapters.prometheus").warning("query returned nothing")
    log.info("after")

    before, inside1, inside2, after = _json_lines(out)
    assert rid == "abc123def456"
    assert "reconcile_id" not in before
    assert inside1["reconcile_id"] == "abc123def456"
    assert inside2["reconcile_id"] == "abc123def456"
    assert "reconcile_id" not in after


def test_json_line_carries_timestamp_level_logger_and_event() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out)

    get_logger("autoops.test").info("decided", replicas=6)

    (line,) = _json_lines(out)
    assert line["event"] == "decided"
    assert line["level"] == "info"
    assert line["logger"] == "autoops.test"
    assert line["replicas"] == 6
    ts = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_nested_contexts_restore_the_outer_reconcile_id() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    log = get_logger("t")

    with reconcile_context("outer0000000"):
        with reconcile_context("inner0000000", deployment="classifier"):
            log.info("inner")
        log.info("outer")

    inner, outer = _json_lines(out)
    assert inner["reconcile_id"] == "inner0000000"
    assert inner["deployment"] == "classifier"
    assert outer["reconcile_id"] == "outer0000000"
    assert "deployment" not in outer


def test_context_is_reset_when_the_block_raises() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out)

    with pytest.raises(RuntimeError), reconcile_context("boom00000000"):
        raise RuntimeError("stage failed")
    get_logger("t").info("after")

    (after,) = _json_lines(out)
    assert "reconcile_id" not in after


def test_reconcile_context_without_an_id_makes_one() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out)

    with reconcile_context() as rid:
        get_logger("t").info("x")

    (line,) = _json_lines(out)
    assert line["reconcile_id"] == rid
    assert re.fullmatch(r"[0-9a-f]{12}", rid)


def test_new_reconcile_ids_are_short_and_unique() -> None:
    ids = {new_reconcile_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in ids)


def test_level_filters_lower_levels() -> None:
    out = io.StringIO()
    configure_logging(level="warning", json=True, stream=out)
    log = get_logger("t")

    log.info("hidden")
    log.warning("shown")

    assert [line["event"] for line in _json_lines(out)] == ["shown"]


def test_non_tty_stream_defaults_to_json() -> None:
    out = io.StringIO()
    configure_logging(stream=out)

    get_logger("t").info("hello")

    assert json.loads(out.getvalue())["event"] == "hello"


def test_console_renderer_when_json_is_false() -> None:
    out = io.StringIO()
    configure_logging(json=False, stream=out)

    with reconcile_context("console00000"):
        get_logger("t").info("hello")

    text = out.getvalue()
    assert "hello" in text
    assert "reconcile_id=console00000" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level="verbose")
