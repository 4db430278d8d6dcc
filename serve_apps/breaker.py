"""The ingress's circuit breaker: keeps traffic off a failing version within milliseconds.

Pure: the time arrives as ``now`` (seconds) and randomness as a ``random.Random``.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Literal

from autoops.contract import BreakerConfig

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """One version's breaker: a sliding error window that trips, waits, then probes."""

    def __init__(self, config: BreakerConfig) -> None:
        self._config = config
        self._window: deque[tuple[float, bool]] = deque()
        self._state: BreakerState = "closed"
        self._opened_at = 0.0

    @property
    def config(self) -> BreakerConfig:
        """The settings applied now."""
        return self._config

    def reconfigure(self, config: BreakerConfig) -> None:
        """Apply new settings, keeping the window (a disabled breaker closes)."""
        self._config = config
        if not config.enabled:
            self._state = "closed"

    def record(self, ok: bool, now: float) -> None:
        """Count one request's outcome and move the state machine."""
        self._advance(now)
        if self._state == "open":
            return  # a straggler sent before the trip: the open period stands as it is
        if self._state == "half_open":
            if ok:
                self._state = "closed"
                self._window.clear()
            else:
                self._trip(now)
            return
        self._window.append((now, ok))
        self._prune(now)
        if self._config.enabled and self._should_trip():
            self._trip(now)

    def allow(self, now: float, rng: random.Random) -> bool:
        """Whether a request may go to this version now (a probe share while half open)."""
        if not self._config.enabled:
            return True
        self._advance(now)
        if self._state == "closed":
            return True
        if self._state == "open":
            return False
        return rng.random() < self._config.probe_fraction

    def state(self, now: float) -> BreakerState:
        """The state at ``now`` (always "closed" while disabled)."""
        if not self._config.enabled:
            return "closed"
        self._advance(now)
        return self._state

    def window(self, now: float) -> tuple[int, int]:
        """(requests, errors) in the sliding window at ``now``."""
        self._prune(now)
        return len(self._window), sum(1 for _, ok in self._window if not ok)

    def _should_trip(self) -> bool:
        total = len(self._window)
        if total < self._config.min_requests:
            return False
        errors = sum(1 for _, ok in self._window if not ok)
        return errors / total >= self._config.error_ratio

    def _trip(self, now: float) -> None:
        self._state = "open"
        self._opened_at = now
        self._window.clear()

    def _advance(self, now: float) -> None:
        if self._state == "open" and now - self._opened_at >= self._config.open_s:
            self._state = "half_open"

    def _prune(self, now: float) -> None:
        horizon = now - self._config.window_s
        while self._window and self._window[0][0] <= horizon:
            self._window.popleft()


class BreakerBoard:
    """One circuit breaker per version, created on first use, sharing one configuration."""

    def __init__(self, config: BreakerConfig) -> None:
        self._config = config
        self._breakers: dict[str, CircuitBreaker] = {}

    def reconfigure(self, config: BreakerConfig) -> None:
        """Apply new settings to every breaker, keeping their windows."""
        self._config = config
        for breaker in self._breakers.values():
            breaker.reconfigure(config)

    def record(self, version: str, ok: bool, now: float) -> None:
        """Count one request's outcome against ``version``."""
        self._breaker(version).record(ok, now)

    def allow(self, version: str, now: float, rng: random.Random) -> bool:
        """Whether a request may go to ``version`` now."""
        return self._breaker(version).allow(now, rng)

    def state(self, version: str, now: float) -> BreakerState:
        """The state of ``version``'s breaker ("closed" for a version never seen)."""
        breaker = self._breakers.get(version)
        return "closed" if breaker is None else breaker.state(now)

    def states(self, now: float) -> dict[str, BreakerState]:
        """The state of every version seen so far."""
        return {v: b.state(now) for v, b in sorted(self._breakers.items())}

    def _breaker(self, version: str) -> CircuitBreaker:
        breaker = self._breakers.get(version)
        if breaker is None:
            breaker = self._breakers[version] = CircuitBreaker(self._config)
        return breaker
