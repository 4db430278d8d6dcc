"""The controller's persisted state for one target, and the context ``decide`` receives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from autoops.core.forecast import TrendSums
from autoops.model import Finding, Snapshot
from autoops.policy.schema import Policy
from autoops.regions.model import RegionCatalogue


class Phase(StrEnum):
    """Where a rollout stands."""

    IDLE = "idle"
    """Only the stable version serves; no rollout in progress."""
    PROGRESSING = "progressing"
    WAITING_APPROVAL = "waiting_approval"
    PAUSED = "paused"
    """Metrics outage with ``fallback_to_stable``: all traffic on stable, step kept."""


@dataclass(frozen=True, slots=True)
class RolloutState:
    """The durable state of progressive delivery (Flagger's CanaryStatus, in spirit)."""

    phase: Phase = Phase.IDLE
    stable_version: str | None = None
    canary_version: str | None = None
    step: int = -1
    """Index into the policy's steps; -1 before the first step."""
    failed_checks: int = 0
    step_started_at: float | None = None
    last_check_at: float | None = None
    last_progress_at: float | None = None
    rejected_versions: tuple[str, ...] = ()
    """Versions rolled back: never canaried again automatically."""


@dataclass(frozen=True, slots=True)
class ScalingState:
    """The durable state of the scaling rule: stabilisation timers and rate history."""

    above_since: float | None = None
    below_since: float | None = None
    last_scale_at: float | None = None
    last_direction: int = 0
    """+1 after a scale-up, -1 after a scale-down, 0 before any."""
    rate_history: tuple[tuple[float, float], ...] = ()
    """Recent (time, total request rate) points for the forecast."""
    trend: TrendSums | None = None
    """Least-squares sums over ``rate_history`` (kept in step with it; rebuilt when absent)."""
    below_peak: float = 0.0
    """The most requests in flight since ``below_since`` (read only while that is set)."""
    service_s: float | None = None
    """Requests in flight per request/s (Little's law) while no replica queued: the service
    time the sizing uses while new replicas start (None until measured)."""


@dataclass(frozen=True, slots=True)
class ControllerState:
    """Everything ``decide`` remembers between passes; persisted by the shell."""

    rollout: RolloutState = field(default_factory=RolloutState)
    scaling: ScalingState = field(default_factory=ScalingState)
    action_times: tuple[float, ...] = ()
    """When each mutating action of the last hour was decided (for the rate limit)."""
    last_region_change_at: float | None = None
    retrain_requested_at: float | None = None
    retrain_base_version: str | None = None
    warming: tuple[tuple[str, float], ...] = ()
    """Regions starting replicas before a move sends traffic there, with when they were asked."""
    warming_fleet: int = 0
    """While ``warming``: the replicas the fleet itself needs (the warming ones come on top)."""


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """All ``decide`` may look at: no hidden state, no clock, no I/O."""

    now: float
    policy: Policy
    snapshot: Snapshot
    state: ControllerState
    catalogue: RegionCatalogue
    findings: tuple[Finding, ...] = ()
    approvals: frozenset[str] = frozenset()
    """Ids of pending actions a human approved (``POST /approve/{id}``)."""
    paused: bool = False
    """Paused by an operator: decide, explain, but change nothing."""
    extra: Mapping[str, str] = field(default_factory=dict)
