"""What the demo's view shows at one instant: plain data, no Ray, no rich."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

MetricsSource = Literal["prometheus", "scraper"]


@dataclass(frozen=True)
class DecisionLine:
    """One action the controller took, as the view lists it.

    ``time`` is on the same clock as :attr:`DemoFrame.time`.
    """

    time: float
    action: str
    outcome: str
    reason: str


@dataclass(frozen=True)
class DemoFrame:
    """Everything the demo's view shows at one instant; ``None`` always means "no data"."""

    time: float
    elapsed_s: float
    chapter: str
    chapter_note: str
    source: MetricsSource
    request_rate: float | None
    p99_ms: float | None
    slo_p99_ms: float
    error_ratio: float | None
    slo_error_rate: float
    accuracy: float | None
    traffic: Mapping[str, float]
    stable_version: str | None
    canary_version: str | None
    replicas: Mapping[str, int]
    region_weights: Mapping[str, float]
    carbon: Mapping[str, float | None]
    allowed_regions: tuple[str, ...]
    decisions: tuple[DecisionLine, ...]
    sent: int
    failed: int
    outage: str | None

    @property
    def regions(self) -> tuple[str, ...]:
        """Every region the frame mentions, sorted."""
        named = {*self.replicas, *self.region_weights, *self.carbon, *self.allowed_regions}
        return tuple(sorted(named))

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version the frame mentions, sorted."""
        named = {*self.traffic, self.stable_version, self.canary_version} - {None}
        return tuple(sorted(v for v in named if v is not None))

    def decision_elapsed_s(self, line: DecisionLine) -> float:
        """Seconds into the demo at which ``line`` was decided."""
        return self.elapsed_s - (self.time - line.time)
