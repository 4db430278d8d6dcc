"""The protocols the controller's shell talks to: metrics, samples, actions, signals, store, clock.

Adapters implement these; the runtime loop and the tests depend only on them, so a real
Prometheus and the built-in scraper, or Ray Serve and a fake actuator, are interchangeable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from autoops.contract import SampleRecord
from autoops.model import Action, AppliedState, RegionSignals, VersionMetrics


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    """What one read of the metrics covers: one application's model, over one window."""

    application: str
    model: str
    window_s: float = 30.0
    """Rates and quantiles are computed over this trailing window, seconds."""
    burn_windows_s: tuple[int, ...] = ()
    """Extra windows for error-ratio burn rates (VersionMetrics.error_ratio_by_window)."""
    stale_after_s: float = 60.0
    """Series whose newest sample is older than this are dropped."""


@dataclass(frozen=True, slots=True)
class MetricsReading:
    """The result of one read: per (version, region) metrics, or an explicit outage."""

    metrics: tuple[VersionMetrics, ...] = ()
    outage: bool = False
    """True once reads have failed persistently: nothing here can be trusted."""
    reason: str | None = None
    last_success_at: float | None = None
    warnings: tuple[str, ...] = ()
    """Values or series that were ignored (NaN, negative, unexpected labels), said once each."""


class MetricsSource(Protocol):
    """Serving metrics for the controller (Prometheus, or the built-in scraper)."""

    def check(self) -> None:
        """Fail at start-up with one clear line when the source cannot be reached."""
        ...

    def read(self, query: MetricsQuery, now: float) -> MetricsReading:
        """Instant metrics per (version, region) over the query's window; never raises."""
        ...


class SampleSource(Protocol):
    """Raw recent inputs and outputs per version (the ingress's admin route), for drift tests."""

    def samples(self, version: str, limit: int) -> Sequence[SampleRecord]:
        """The most recent ``limit`` samples of ``version`` (fewer when there are fewer)."""
        ...


class Outcome(StrEnum):
    """What applying one absolute action did."""

    UNCHANGED = "unchanged"
    UPDATED = "updated"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Not applied on purpose (dry run, or an action this actuator does not carry out)."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of one action, with a human-readable detail."""

    action: Action
    outcome: Outcome
    detail: str = ""


class Actuator(Protocol):
    """Applies absolute targets to a serving system and reads back what it runs."""

    def read_applied(self) -> AppliedState:
        """The routing table and replicas the serving system applies now."""
        ...

    def apply(self, action: Action) -> ApplyResult:
        """Apply one absolute action idempotently (applying it twice changes nothing)."""
        ...


class SignalsProvider(Protocol):
    """Carbon intensity, electricity price and health per region."""

    def at(self, t: float) -> tuple[RegionSignals, ...]:
        """The signals known at wall time ``t``."""
        ...


class Clock(Protocol):
    """Time for the shell (the core gets it inside its context)."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One append-only, hash-chained record of what the controller saw, decided and did."""

    seq: int
    time: float
    policy: str
    reconcile_id: str
    kind: str
    """intent | outcome | decision | note."""
    body: Mapping[str, Any] = field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""


class Store(Protocol):
    """Durable desired state and the audit log (SQLite in WAL mode by default)."""

    def load_state(self, policy: str) -> Mapping[str, Any] | None:
        """The last saved controller state of ``policy`` (JSON-able), or None."""
        ...

    def save_state(self, policy: str, state: Mapping[str, Any]) -> None:
        """Replace the saved controller state of ``policy``."""
        ...

    def append(
        self, policy: str, reconcile_id: str, kind: str, body: Mapping[str, Any], time: float
    ) -> AuditRecord:
        """Append one audit record, chained to the previous one."""
        ...

    def records(self, policy: str | None = None, since: float | None = None) -> list[AuditRecord]:
        """Audit records in order, optionally for one policy and from a time on."""
        ...
