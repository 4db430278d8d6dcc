"""Checks on what clients send: request bodies and the admin bearer token."""

from __future__ import annotations

import hmac
import json
import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from autoops.contract import INPUT_SIZE, MAX_BATCH_ROWS

MAX_ABS_VALUE = 1e6
"""Input values beyond this magnitude are refused."""
MAX_FEEDBACK_BYTES = 100_000
"""Feedback bodies beyond this size are refused."""
MAX_REQUEST_ID_CHARS = 128
"""Request ids beyond this length are refused."""
N_CLASSES = 10
"""Labels are classes 0..N_CLASSES-1 (the digits)."""


class RequestInvalid(ValueError):  # noqa: N818 -- the interface spec's name
    """A request body that the ingress refuses (422), naming the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class _NonFinite:
    """Stands for a NaN/Infinity literal, so the error can name the field that holds it."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _load(body: bytes, max_bytes: int) -> dict[str, Any]:
    if len(body) > max_bytes:
        raise RequestInvalid("body", f"{len(body)} bytes is over the limit of {max_bytes}")
    try:
        data = json.loads(body, parse_constant=_NonFinite)
    except RecursionError:
        raise RequestInvalid("body", "JSON nested too deep") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise RequestInvalid("body", f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RequestInvalid("body", f"must be a JSON object, got {type(data).__name__}")
    return data


def _number(value: object, field: str) -> float:
    if isinstance(value, _NonFinite):
        raise RequestInvalid(field, f"{value.literal} is not a finite number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestInvalid(field, f"must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RequestInvalid(field, f"{value!r} is not a finite number")
    if abs(value) > MAX_ABS_VALUE:
        raise RequestInvalid(field, f"{value!r} is outside -{MAX_ABS_VALUE:g}..{MAX_ABS_VALUE:g}")
    return float(value)


def _row(values: object, field: str) -> list[float]:
    if not isinstance(values, list):
        raise RequestInvalid(field, f"must be a list of {INPUT_SIZE} numbers")
    if len(values) != INPUT_SIZE:
        raise RequestInvalid(field, f"must hold {INPUT_SIZE} numbers, got {len(values)}")
    return [_number(v, f"{field}[{j}]") for j, v in enumerate(values)]


def parse_predict_body(body: bytes, max_bytes: int = 1_000_000) -> npt.NDArray[np.float32]:
    """The (rows, INPUT_SIZE) float32 inputs of a predict body, or RequestInvalid."""
    data = _load(body, max_bytes)
    if "inputs" not in data:
        raise RequestInvalid("inputs", "missing")
    inputs = data["inputs"]
    if not isinstance(inputs, list):
        raise RequestInvalid("inputs", "must be a list of rows (or one row) of numbers")
    if not inputs:
        raise RequestInvalid("inputs", "must not be empty")
    if not isinstance(inputs[0], list):
        rows = [_row(inputs, "inputs")]
    else:
        if len(inputs) > MAX_BATCH_ROWS:
            raise RequestInvalid("inputs", f"{len(inputs)} rows is over {MAX_BATCH_ROWS}")
        rows = [_row(row, f"inputs[{i}]") for i, row in enumerate(inputs)]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), INPUT_SIZE)


def _label(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestInvalid(field, f"must be an integer class, got {type(value).__name__}")
    if not 0 <= value < N_CLASSES:
        raise RequestInvalid(field, f"{value} is outside 0..{N_CLASSES - 1}")
    return value


def parse_feedback_body(body: bytes) -> tuple[str, list[int]]:
    """(request_id, labels) of a feedback body, or RequestInvalid."""
    data = _load(body, MAX_FEEDBACK_BYTES)
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise RequestInvalid("request_id", "must be a non-empty string")
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise RequestInvalid("request_id", f"longer than {MAX_REQUEST_ID_CHARS} characters")
    if "label" not in data:
        raise RequestInvalid("label", "missing")
    label = data["label"]
    if not isinstance(label, list):
        return request_id, [_label(label, "label")]
    if not label:
        raise RequestInvalid("label", "must not be empty")
    if len(label) > MAX_BATCH_ROWS:
        raise RequestInvalid("label", f"{len(label)} labels is over {MAX_BATCH_ROWS}")
    return request_id, [_label(v, f"label[{i}]") for i, v in enumerate(label)]


def check_bearer(
    header_value: str | None, expected: str | None
) -> Literal["ok", "missing", "wrong"]:
    """Check an Authorization header against the admin token (None: no token required)."""
    if expected is None:
        return "ok"
    if not header_value or not header_value.strip():
        return "missing"
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return "wrong"
    if not token.strip():
        return "missing"
    same = hmac.compare_digest(token.strip().encode(), expected.encode())
    return "ok" if same else "wrong"
