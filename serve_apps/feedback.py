"""Labelled feedback: remembers what each request was answered, to score it when labels come."""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass


class UnknownRequest(KeyError):  # noqa: N818 -- the interface spec's name
    """The request id was never answered here, or it has expired from the book."""

    def __init__(self, request_id: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id

    def __str__(self) -> str:
        return f"request_id {self.request_id!r} is unknown, expired or already scored"


class LabelMismatch(ValueError):  # noqa: N818 -- the interface spec's name
    """The feedback carries a different number of labels than the request had rows."""

    def __init__(self, request_id: str, expected: int, got: int) -> None:
        super().__init__(
            f"label: request {request_id!r} had {expected} row(s), feedback has {got} label(s)"
        )
        self.request_id = request_id
        self.expected = expected
        self.got = got


@dataclass(frozen=True)
class FeedbackOutcome:
    """How one request's answers compare with its labels."""

    version: str
    region: str
    correct: int
    total: int


@dataclass(frozen=True)
class _Answer:
    version: str
    region: str
    predictions: tuple[int, ...]


class FeedbackBook:
    """A bounded LRU of request id -> the version, region and predictions that answered it."""

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._answers: OrderedDict[str, _Answer] = OrderedDict()

    def remember(
        self, request_id: str, version: str, region: str, predictions: Sequence[int]
    ) -> None:
        """Record a request's answer, evicting the least recently used one when full."""
        self._answers[request_id] = _Answer(version, region, tuple(int(p) for p in predictions))
        self._answers.move_to_end(request_id)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)

    def resolve(self, request_id: str, labels: Sequence[int]) -> FeedbackOutcome:
        """Score a request's answer against its labels (once: the request is then forgotten)."""
        answer = self._answers.get(request_id)
        if answer is None:
            raise UnknownRequest(request_id)
        if len(labels) != len(answer.predictions):
            raise LabelMismatch(request_id, len(answer.predictions), len(labels))
        del self._answers[request_id]
        correct = sum(1 for p, y in zip(answer.predictions, labels, strict=True) if p == y)
        return FeedbackOutcome(answer.version, answer.region, correct, len(labels))

    def __len__(self) -> int:
        return len(self._answers)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._answers


def new_request_id(rng: random.Random) -> str:
    """A fresh 128-bit request id as 32 hex digits."""
    return f"{rng.getrandbits(128):032x}"
