"""Request validation: predict and feedback bodies, and the admin bearer token."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoops.contract import INPUT_SIZE, MAX_BATCH_ROWS
from serve_apps.validation import (
    RequestInvalid,
    check_bearer,
    parse_feedback_body,
    parse_predict_body,
)

ROW = [float(i % 17) for i in range(INPUT_SIZE)]


def body(obj: object) -> bytes:
    return json.dumps(obj).encode()


def row_with(index: int, literal: str) -> str:
    """A one-row body whose value at ``index`` is a raw JSON literal."""
    values = [str(v) for v in ROW]
    values[index] = literal
    return '{"inputs": [[' + ", ".join(values) + "]]}"


def test_single_row_becomes_a_one_row_batch() -> None:
    x = parse_predict_body(body({"inputs": ROW}))
    assert x.shape == (1, INPUT_SIZE)
    assert x.dtype == np.float32
    assert x[0].tolist() == ROW


def test_batch_keeps_rows_in_order() -> None:
    rows = [ROW, [1] * INPUT_SIZE, [0.5] * INPUT_SIZE]
    x = parse_predict_body(body({"inputs": rows}))
    assert x.shape == (3, INPUT_SIZE)
    np.testing.assert_array_equal(x, np.asarray(rows, dtype=np.float32))


def test_full_batch_is_accepted() -> None:
    assert parse_predict_body(body({"inputs": [ROW] * MAX_BATCH_ROWS})).shape[0] == MAX_BATCH_ROWS


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(b"not json", "body", id="not-json"),
        pytest.param(b"\xff\xfe\x00", "body", id="not-utf8"),
        pytest.param(body([ROW]), "body", id="not-an-object"),
        pytest.param(body({"rows": [ROW]}), "inputs", id="missing-inputs"),
        pytest.param(body({"inputs": "x"}), "inputs", id="inputs-not-a-list"),
        pytest.param(body({"inputs": []}), "inputs", id="empty-list"),
        pytest.param(body({"inputs": ROW[:-1]}), "inputs", id="short-single-row"),
        pytest.param(body({"inputs": [ROW, [*ROW, 1.0]]}), "inputs[1]", id="long-row-in-batch"),
        pytest.param(body({"inputs": [ROW, 3]}), "inputs[1]", id="row-not-a-list"),
        pytest.param(body({"inputs": [[*ROW[:5], "7", *ROW[6:]]]}), "inputs[0][5]", id="string"),
        pytest.param(body({"inputs": [[*ROW[:5], True, *ROW[6:]]]}), "inputs[0][5]", id="bool"),
        pytest.param(body({"inputs": [[*ROW[:5], None, *ROW[6:]]]}), "inputs[0][5]", id="null"),
        pytest.param(row_with(12, "NaN").encode(), "inputs[0][12]", id="nan-literal"),
        pytest.param(row_with(3, "Infinity").encode(), "inputs[0][3]", id="infinity-literal"),
        pytest.param(row_with(3, "-Infinity").encode(), "inputs[0][3]", id="minus-infinity"),
        pytest.param(row_with(3, "1e999").encode(), "inputs[0][3]", id="overflowing-float"),
        pytest.param(row_with(3, "1" + "0" * 400).encode(), "inputs[0][3]", id="huge-integer"),
        pytest.param(row_with(0, "1000001").encode(), "inputs[0][0]", id="out-of-range"),
        pytest.param(body({"inputs": [ROW] * (MAX_BATCH_ROWS + 1)}), "inputs", id="too-many-rows"),
        pytest.param(body({"inputs": [[ROW]]}), "inputs[0]", id="nested-one-level-too-deep"),
        pytest.param(
            b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "body",
            id="nested-far-too-deep",
        ),
    ],
)
def test_bad_predict_body_is_refused_naming_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(RequestInvalid) as err:
        parse_predict_body(raw, max_bytes=10_000_000)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}:")


def test_body_over_the_byte_limit_is_refused() -> None:
    raw = body({"inputs": ROW})
    with pytest.raises(RequestInvalid) as err:
        parse_predict_body(raw, max_bytes=len(raw) - 1)
    assert err.value.field == "body"
    assert parse_predict_body(raw, max_bytes=len(raw)).shape == (1, INPUT_SIZE)


@settings(deadline=None, max_examples=100)
@given(
    st.lists(
        st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=INPUT_SIZE, max_size=INPUT_SIZE),
        min_size=1,
        max_size=4,
    )
)
def test_any_finite_in_range_batch_round_trips(rows: list[list[float]]) -> None:
    x = parse_predict_body(body({"inputs": rows}))
    np.testing.assert_array_equal(x, np.asarray(rows, dtype=np.float32))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param({"request_id": "r1", "label": 3}, ("r1", [3]), id="single-label"),
        pytest.param({"request_id": "r1", "label": [0, 9]}, ("r1", [0, 9]), id="label-list"),
    ],
)
def test_good_feedback_body(payload: object, expected: tuple[str, list[int]]) -> None:
    assert parse_feedback_body(body(payload)) == expected


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(b"{", "body", id="not-json"),
        pytest.param(body({"label": 1}), "request_id", id="missing-request-id"),
        pytest.param(body({"request_id": "", "label": 1}), "request_id", id="empty-request-id"),
        pytest.param(body({"request_id": 7, "label": 1}), "request_id", id="request-id-not-str"),
        pytest.param(body({"request_id": "r" * 129, "label": 1}), "request_id", id="long-id"),
        pytest.param(body({"request_id": "r1"}), "label", id="missing-label"),
        pytest.param(body({"request_id": "r1", "label": 10}), "label", id="label-out-of-range"),
        pytest.param(body({"request_id": "r1", "label": -1}), "label", id="negative-label"),
        pytest.param(body({"request_id": "r1", "label": "3"}), "label", id="label-string"),
        pytest.param(body({"request_id": "r1", "label": 3.0}), "label", id="label-float"),
        pytest.param(body({"request_id": "r1", "label": True}), "label", id="label-bool"),
        pytest.param(body({"request_id": "r1", "label": []}), "label", id="empty-label-list"),
        pytest.param(body({"request_id": "r1", "label": [1, 11]}), "label[1]", id="bad-in-list"),
    ],
)
def test_bad_feedback_body_is_refused_naming_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(RequestInvalid) as err:
        parse_feedback_body(raw)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("header", "expected", "result"),
    [
        pytest.param(None, None, "ok", id="no-token-required"),
        pytest.param("Bearer anything", None, "ok", id="no-token-required-header-ignored"),
        pytest.param(None, "s3cret", "missing", id="missing-header"),
        pytest.param("", "s3cret", "missing", id="empty-header"),
        pytest.param("Bearer ", "s3cret", "missing", id="bearer-without-token"),
        pytest.param("Bearer wrong", "s3cret", "wrong", id="wrong-token"),
        pytest.param("Basic s3cret", "s3cret", "wrong", id="wrong-scheme"),
        pytest.param("s3cret", "s3cret", "wrong", id="no-scheme"),
        pytest.param("Bearer s3cret", "s3cret", "ok", id="right-token"),
        pytest.param("bearer  s3cret ", "s3cret", "ok", id="scheme-case-and-spaces"),
        pytest.param("Bearer s3cret", "", "wrong", id="empty-expected-token-locks"),
    ],
)
def test_check_bearer(header: str | None, expected: str | None, result: str) -> None:
    assert check_bearer(header, expected) == result
