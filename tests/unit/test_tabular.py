"""One rule for CSV cells across every command: numbers, missing values, errors."""

from __future__ import annotations

import pytest

from autoops.tabular import parse_number


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        pytest.param("1.5", 1.5, id="number"),
        pytest.param(" -2 ", -2.0, id="padded-negative"),
        pytest.param("1e3", 1000.0, id="exponent"),
        pytest.param("", None, id="empty"),
        pytest.param("NaN", None, id="nan"),
        pytest.param("NA", None, id="na"),
        pytest.param("null", None, id="null"),
        pytest.param("None", None, id="none"),
        pytest.param("inf", None, id="infinite-is-missing"),
        pytest.param("-Infinity", None, id="negative-infinite-is-missing"),
    ],
)
def test_cells_read_as_numbers_or_missing(cell: str, expected: float | None) -> None:
    assert parse_number(cell) == expected


@pytest.mark.parametrize("cell", ["abc", "1,5", "12ms"], ids=["word", "comma", "unit"])
def test_text_that_is_neither_number_nor_missing_is_an_error(cell: str) -> None:
    with pytest.raises(ValueError):
        parse_number(cell)
