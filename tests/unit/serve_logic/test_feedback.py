"""The feedback book: scores a request's answer against labels, bounded by LRU eviction."""

from __future__ import annotations

import random

import pytest

from serve_apps.feedback import (
    FeedbackBook,
    FeedbackOutcome,
    LabelMismatch,
    UnknownRequest,
    new_request_id,
)


@pytest.mark.parametrize(
    ("predictions", "labels", "correct"),
    [
        pytest.param([3], [3], 1, id="single-right"),
        pytest.param([3], [4], 0, id="single-wrong"),
        pytest.param([1, 2, 3, 4], [1, 0, 3, 0], 2, id="batch-half-right"),
    ],
)
def test_resolve_counts_correct_rows(
    predictions: list[int], labels: list[int], correct: int
) -> None:
    book = FeedbackBook()
    book.remember("r1", "v2", "eu-west", predictions)
    assert book.resolve("r1", labels) == FeedbackOutcome("v2", "eu-west", correct, len(labels))


def test_unknown_request_is_reported_as_unknown_or_expired() -> None:
    with pytest.raises(UnknownRequest, match="unknown, expired"):
        FeedbackBook().resolve("nope", [1])


def test_a_request_is_scored_only_once() -> None:
    book = FeedbackBook()
    book.remember("r1", "v1", "eu-west", [1])
    book.resolve("r1", [1])
    with pytest.raises(UnknownRequest):
        book.resolve("r1", [1])


def test_label_count_mismatch_is_an_error_and_keeps_the_request() -> None:
    book = FeedbackBook()
    book.remember("r1", "v1", "eu-west", [1, 2])
    with pytest.raises(LabelMismatch, match="2 row"):
        book.resolve("r1", [1])
    assert book.resolve("r1", [1, 2]).correct == 2


def test_least_recently_used_request_is_evicted_when_full() -> None:
    book = FeedbackBook(capacity=2)
    book.remember("a", "v1", "eu-west", [1])
    book.remember("b", "v1", "eu-west", [1])
    book.remember("a", "v1", "eu-west", [1])  # refreshes a
    book.remember("c", "v1", "eu-west", [1])  # evicts b
    assert len(book) == 2
    assert "a" in book and "c" in book and "b" not in book
    with pytest.raises(UnknownRequest):
        book.resolve("b", [1])


def test_request_ids_are_unique_hex_and_seeded() -> None:
    ids = [new_request_id(random.Random(1)) for _ in range(2)]
    assert ids[0] == ids[1]
    rng = random.Random(2)
    many = {new_request_id(rng) for _ in range(1000)}
    assert len(many) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in many)
