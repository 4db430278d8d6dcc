"""The simulator's interfaces: traffic, signals, controllers, and what a run returns.

Everything a replay needs crosses these types, so the engine, the data loaders, the baselines
and the reports can be built and tested apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from autoops.core.state import DecisionContext
from autoops.model import Decision, RegionSignals


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a request trace: when it arrives and how big it is."""

    time: float
    """Seconds since the start of the trace."""
    size: float = 1.0
    """Relative work (e.g. tokens / mean tokens); service time scales with it."""


class TrafficSource(Protocol):
    """Load offered to the fleet over simulated time."""

    @property
    def duration_s(self) -> float:
        """How long the source lasts, seconds."""
        ...

    def rate(self, t: float) -> float:
        """Requests per second offered at simulated time ``t`` (fluid fidelity)."""
        ...

    def requests(self, start: float, end: float) -> Iterator[Request]:
        """Requests arriving in [start, end), in time order (per-request fidelity)."""
        ...


class SignalSource(Protocol):
    """Carbon intensity, electricity price and health per region over simulated time."""

    def at(self, t: float) -> tuple[RegionSignals, ...]:
        """The signals known at ``t`` (only the past: the current hour's value at most)."""
        ...


class Controller(Protocol):
    """Something that decides each tick: AutoOps' decide(), or a baseline."""

    @property
    def name(self) -> str:
        """Short name for reports (``autoops``, ``ray_serve_default``, ``hpa``...)."""
        ...

    def decide(self, ctx: DecisionContext) -> Decision:
        """Decide one tick; a controller keeps whatever state it needs between ticks."""
        ...


@dataclass(frozen=True, slots=True)
class TickRecord:
    """What the simulated world looked like at one controller tick."""

    time: float
    offered_rps: float
    served_rps: float
    failed_rps: float
    dropped_rps: float
    p50_ms: float | None
    p99_ms: float | None
    replicas: Mapping[str, int]
    traffic: Mapping[str, float]
    region_weights: Mapping[str, float]
    carbon_g_per_kwh: Mapping[str, float | None]
    cost_usd_per_hour: float
    power_kw: float
    actions: tuple[str, ...] = ()


@dataclass
class SimResult:
    """A whole run: every tick, the decisions, and the totals a report needs."""

    controller: str
    ticks: list[TickRecord] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    totals: dict[str, float] = field(default_factory=dict)
