"""Frozen value types shared by the core, the adapters, the simulator and the store.

Every type here is plain data: no I/O, no clock. Missing data is ``None``, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

# --------------------------------------------------------------------------- samples


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One observation of a metric: a value, or ``None`` when nothing was observed."""

    timestamp: float
    value: float | None


@dataclass(frozen=True, slots=True)
class VersionMetrics:
    """What was observed for one (deployment, version, region) over the analysis window."""

    deployment: str
    version: str
    region: str
    request_rate: float | None = None
    """Requests per second."""
    error_ratio: float | None = None
    """Failed / all requests, in [0, 1]."""
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    ongoing_requests: float | None = None
    """Requests in flight, summed over handles."""
    healthy_replicas: int | None = None
    accuracy: float | None = None
    """Share of labelled feedback answered correctly, in [0, 1]."""
    shadow_disagreement: float | None = None
    breaker_open: bool | None = None
    request_count: float | None = None
    """Requests in the analysis window (for statistical sufficiency)."""
    error_ratio_by_window: Mapping[int, float | None] = field(default_factory=dict)
    """Error ratio over each burn-rate window the policy names, keyed by window seconds."""


@dataclass(frozen=True, slots=True)
class RegionSignals:
    """Outside signals for one region: grid carbon intensity, electricity price, health."""

    region: str
    carbon_intensity: float | None = None
    """gCO2e per kWh."""
    price_usd_per_mwh: float | None = None
    healthy: bool | None = None


@dataclass(frozen=True, slots=True)
class AppliedState:
    """What the serving system runs now (read back from it): the applied routing table."""

    versions: tuple[str, ...]
    """Versions deployed, in deployment order."""
    traffic: Mapping[str, float]
    """Traffic weight per version, summing to 1."""
    region_weights: Mapping[str, float]
    """Traffic weight per region, summing to 1."""
    replicas: Mapping[str, int]
    """Replicas of the controlled deployment per region (all versions together)."""
    ready_replicas: Mapping[str, int] | None = None
    """Replicas of the stable version that serve now (running, not starting) per region where
    it is deployed, with or without traffic; None when the serving system does not say."""
    cascade_threshold: float | None = None
    shadow_version: str | None = None
    shadow_fraction: float = 0.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the controller observed about one target at one time."""

    time: float
    application: str
    deployment: str
    applied: AppliedState
    metrics: tuple[VersionMetrics, ...] = ()
    signals: tuple[RegionSignals, ...] = ()
    metrics_outage: bool = False
    """True when the metrics source failed persistently: nothing here can be trusted."""
    outage_reason: str | None = None
    last_metrics_at: float | None = None


# --------------------------------------------------------------------------- findings


class FindingKind(StrEnum):
    """What a detector looked for."""

    ANOMALY = "anomaly"
    DRIFT = "drift"
    CANARY = "canary"


class Verdict(StrEnum):
    """What a detector concluded."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NODATA = "nodata"


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector's conclusion with the statistics behind it."""

    kind: FindingKind
    detector: str
    verdict: Verdict
    signal: str
    """The metric or feature it looked at (``error_ratio``, ``latency_p99_ms``, ``inputs``...)."""
    version: str | None = None
    region: str | None = None
    score: float | None = None
    statistics: Mapping[str, float] = field(default_factory=dict)
    critical: bool = False
    """A failure so clear that the policy may act at once (e.g. an anytime-valid test)."""


# --------------------------------------------------------------------------- actions


class ActionKind(StrEnum):
    """The kinds of action the core can ask for."""

    SET_TRAFFIC = "set_traffic"
    SET_REPLICAS = "set_replicas"
    SET_REGION_WEIGHTS = "set_region_weights"
    SET_CASCADE_THRESHOLD = "set_cascade_threshold"
    ROLLBACK = "rollback"
    PROMOTE = "promote"
    RETRAIN = "retrain"
    HOLD = "hold"
    ALERT = "alert"


MUTATING_KINDS = frozenset(
    {
        ActionKind.SET_TRAFFIC,
        ActionKind.SET_REPLICAS,
        ActionKind.SET_REGION_WEIGHTS,
        ActionKind.SET_CASCADE_THRESHOLD,
        ActionKind.ROLLBACK,
        ActionKind.PROMOTE,
        ActionKind.RETRAIN,
    }
)
"""Action kinds that change the serving system (and count against rate limits)."""


@dataclass(frozen=True, slots=True)
class SetTraffic:
    """Route this share of traffic to each version (absolute; sums to 1)."""

    weights: Mapping[str, float]
    shadow_version: str | None = None
    """Version receiving a mirror of traffic whose answers are recorded, then discarded."""
    shadow_fraction: float = 0.0
    kind: Literal[ActionKind.SET_TRAFFIC] = ActionKind.SET_TRAFFIC


@dataclass(frozen=True, slots=True)
class SetReplicas:
    """Run this many replicas of the deployment in each region (absolute: unlisted regions none)."""

    replicas: Mapping[str, int]
    kind: Literal[ActionKind.SET_REPLICAS] = ActionKind.SET_REPLICAS

    @property
    def total(self) -> int:
        """Replicas across every region."""
        return sum(self.replicas.values())


@dataclass(frozen=True, slots=True)
class SetRegionWeights:
    """Route this share of traffic to each region (absolute; sums to 1)."""

    weights: Mapping[str, float]
    kind: Literal[ActionKind.SET_REGION_WEIGHTS] = ActionKind.SET_REGION_WEIGHTS


@dataclass(frozen=True, slots=True)
class SetCascadeThreshold:
    """Escalate to the large model when the small one's confidence is under this value."""

    threshold: float
    kind: Literal[ActionKind.SET_CASCADE_THRESHOLD] = ActionKind.SET_CASCADE_THRESHOLD


@dataclass(frozen=True, slots=True)
class Rollback:
    """Send all traffic back to ``to_version`` and mark ``from_version`` as failed."""

    from_version: str
    to_version: str
    kind: Literal[ActionKind.ROLLBACK] = ActionKind.ROLLBACK


@dataclass(frozen=True, slots=True)
class Promote:
    """Make ``version`` the stable version, serving all traffic."""

    version: str
    kind: Literal[ActionKind.PROMOTE] = ActionKind.PROMOTE


@dataclass(frozen=True, slots=True)
class Retrain:
    """Train a new version from ``base_version`` on recent labelled data, by ``deadline``."""

    base_version: str
    deadline: float
    kind: Literal[ActionKind.RETRAIN] = ActionKind.RETRAIN


@dataclass(frozen=True, slots=True)
class Hold:
    """Change nothing on purpose, and say why."""

    reason: str
    kind: Literal[ActionKind.HOLD] = ActionKind.HOLD


@dataclass(frozen=True, slots=True)
class Alert:
    """Tell a human: an escalation or a notice."""

    severity: Literal["info", "warning", "critical"]
    message: str
    kind: Literal[ActionKind.ALERT] = ActionKind.ALERT
    topic: str | None = None
    """The lasting condition it is about (``fleet_fault``, ``drift:inputs``...): a notifier sends
    one alert per topic per interval while it lasts. None: every alert is news."""


Action = (
    SetTraffic
    | SetReplicas
    | SetRegionWeights
    | SetCascadeThreshold
    | Rollback
    | Promote
    | Retrain
    | Hold
    | Alert
)


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class GuardChange:
    """A guard that changed or dropped an action, and why."""

    guard: str
    action: ActionKind
    before: str
    after: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What the core decided in one pass: actions, reasons, evidence and guard changes."""

    time: float
    actions: tuple[Action, ...] = ()
    reasons: tuple[str, ...] = ()
    evidence: Mapping[str, float | str | None] = field(default_factory=dict)
    guard_changes: tuple[GuardChange, ...] = ()
    pending_approval: tuple[Action, ...] = ()
    """Actions the policy says a human must approve; not applied until approved."""
    dry_run: bool = False

    @property
    def mutating(self) -> tuple[Action, ...]:
        """The actions that change the serving system."""
        return tuple(a for a in self.actions if a.kind in MUTATING_KINDS)
