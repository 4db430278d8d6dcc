"""Fakes shared by the simulator tests (named as fakes: not the real traffic sources)."""

from __future__ import annotations

from collections.abc import Iterator

from autoops.sim.api import Request


class Flat:
    """Constant offered load (a fake traffic source with no per-request trace)."""

    def __init__(self, rps: float, duration_s: float = 600.0) -> None:
        self.rps = rps
        self.duration_s = duration_s

    def rate(self, t: float) -> float:
        """The same rate at every time."""
        return self.rps

    def requests(self, start: float, end: float) -> Iterator[Request]:
        """No per-request trace."""
        return iter(())
