"""The ingress circuit breaker: trips on errors in its window, waits, probes, closes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoops.contract import BreakerConfig
from serve_apps.breaker import BreakerBoard, CircuitBreaker

CONFIG = BreakerConfig(
    enabled=True, window_s=10.0, min_requests=4, error_ratio=0.5, open_s=2.0, probe_fraction=1.0
)


def feed(breaker: CircuitBreaker, outcomes: str, start: float = 0.0, step: float = 0.25) -> float:
    """Record "o" (ok) / "x" (error) outcomes a step apart (exact binary times); the last time."""
    now = start
    for i, outcome in enumerate(outcomes):
        now = start + i * step
        breaker.record(outcome == "o", now)
    return now


def tripped(config: BreakerConfig = CONFIG) -> tuple[CircuitBreaker, float]:
    breaker = CircuitBreaker(config)
    now = feed(breaker, "x" * config.min_requests)
    assert breaker.state(now) == "open"
    return breaker, now


@pytest.mark.parametrize(
    ("outcomes", "state"),
    [
        pytest.param("xxx", "closed", id="errors-below-min-requests"),
        pytest.param("xxxx", "open", id="all-errors-at-min-requests"),
        pytest.param("ooxx", "open", id="ratio-equal-to-limit-trips"),
        pytest.param("ooox", "closed", id="ratio-under-limit"),
        pytest.param("oooooooxxx", "closed", id="many-requests-ratio-under-limit"),
        pytest.param("oooooxxxxx", "open", id="many-requests-ratio-at-limit"),
    ],
)
def test_trips_only_with_min_requests_and_error_ratio_at_limit(outcomes: str, state: str) -> None:
    breaker = CircuitBreaker(CONFIG)
    now = feed(breaker, outcomes)
    assert breaker.state(now) == state


def test_open_breaker_refuses_traffic() -> None:
    breaker, now = tripped()
    assert breaker.allow(now + 0.1, random.Random(0)) is False


def test_failures_older_than_the_window_do_not_count() -> None:
    breaker = CircuitBreaker(CONFIG)
    feed(breaker, "xxx", start=0.0)
    later = CONFIG.window_s + 1.0
    breaker.record(False, later)
    assert breaker.window(later) == (1, 1)
    assert breaker.state(later) == "closed"


def test_open_turns_half_open_after_open_s() -> None:
    breaker, now = tripped()
    assert breaker.state(now + CONFIG.open_s - 0.01) == "open"
    assert breaker.state(now + CONFIG.open_s) == "half_open"


def test_half_open_lets_probe_fraction_through() -> None:
    config = CONFIG.model_copy(update={"probe_fraction": 0.2})
    breaker, now = tripped(config)
    rng = random.Random(7)
    n = 5000
    allowed = sum(breaker.allow(now + config.open_s, rng) for _ in range(n))
    sigma = (n * 0.2 * 0.8) ** 0.5
    assert abs(allowed - n * 0.2) < 5 * sigma


def test_probe_success_closes_and_clears_the_window() -> None:
    breaker, now = tripped()
    probe_at = now + CONFIG.open_s
    assert breaker.allow(probe_at, random.Random(0))
    breaker.record(True, probe_at)
    assert breaker.state(probe_at) == "closed"
    assert breaker.window(probe_at) == (0, 0)


def test_probe_failure_reopens_for_a_fresh_open_s() -> None:
    breaker, now = tripped()
    probe_at = now + CONFIG.open_s
    breaker.record(False, probe_at)
    assert breaker.state(probe_at + CONFIG.open_s - 0.01) == "open"
    assert breaker.state(probe_at + CONFIG.open_s) == "half_open"


def test_outcomes_arriving_while_open_do_not_extend_it() -> None:
    breaker, now = tripped()
    breaker.record(False, now + 1.0)
    assert breaker.state(now + CONFIG.open_s) == "half_open"


def test_disabled_breaker_never_opens() -> None:
    breaker = CircuitBreaker(CONFIG.model_copy(update={"enabled": False}))
    now = feed(breaker, "x" * 50)
    assert breaker.state(now) == "closed"
    assert breaker.allow(now, random.Random(0))


def test_disabling_an_open_breaker_closes_it() -> None:
    breaker, now = tripped()
    breaker.reconfigure(CONFIG.model_copy(update={"enabled": False}))
    assert breaker.state(now) == "closed"
    assert breaker.allow(now, random.Random(0))


def test_reconfigure_keeps_the_window() -> None:
    breaker = CircuitBreaker(CONFIG)
    now = feed(breaker, "xxx")
    breaker.reconfigure(CONFIG.model_copy(update={"min_requests": 3}))
    assert breaker.window(now) == (3, 3)
    breaker.record(False, now + 0.1)
    assert breaker.state(now + 0.1) == "open"


def test_board_keeps_one_breaker_per_version() -> None:
    board = BreakerBoard(CONFIG)
    for i in range(CONFIG.min_requests):
        board.record("v2", False, i * 0.1)
        board.record("v1", True, i * 0.1)
    now = 1.0
    assert board.states(now) == {"v1": "closed", "v2": "open"}
    assert board.allow("v1", now, random.Random(0))
    assert not board.allow("v2", now, random.Random(0))
    assert board.state("never-seen", now) == "closed"


def test_board_reconfigure_reaches_every_breaker() -> None:
    board = BreakerBoard(CONFIG)
    for i in range(CONFIG.min_requests):
        board.record("v2", False, i * 0.1)
    board.reconfigure(CONFIG.model_copy(update={"enabled": False}))
    assert board.states(1.0) == {"v2": "closed"}


@settings(deadline=None, max_examples=200)
@given(st.lists(st.booleans(), max_size=60))
def test_closed_breaker_with_errors_under_the_ratio_stays_closed(outcomes: list[bool]) -> None:
    breaker = CircuitBreaker(CONFIG)
    errors = 0
    for i, ok in enumerate(outcomes):
        errors += not ok
        breaker.record(ok, i * 0.01)
        if breaker.state(i * 0.01) == "open":
            # it may only have opened once the trip rule held
            assert i + 1 >= CONFIG.min_requests
            assert errors / (i + 1) >= CONFIG.error_ratio
            return
    if len(outcomes) >= CONFIG.min_requests and errors / len(outcomes) >= CONFIG.error_ratio:
        pytest.fail("the window met the trip rule but the breaker stayed closed")
