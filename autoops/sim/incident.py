"""A scripted synthetic incident for one target: the decision core's dry run.

A tiny, deterministic world (one application, a few regions from the catalogue, queueing
latency from utilisation) is driven through ``decide(ctx)`` exactly as a live shell would:
snapshot in, absolute actions out, actions applied to the world. It is not the fleet
simulator; it shows what the controller decides, and why, on a story a reader can follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from autoops.core.actuation import apply_actions
from autoops.core.decide import decide
from autoops.core.state import ControllerState, DecisionContext
from autoops.model import (
    Action,
    AppliedState,
    Decision,
    RegionSignals,
    Snapshot,
    VersionMetrics,
)
from autoops.policy.schema import Policy
from autoops.regions.model import RegionCatalogue

SERVICE_S = 0.04
"""Mean service time of one request, seconds."""
REPLICA_SLOTS = 4
"""Requests one replica serves at once (batching/concurrency)."""
REPLICA_RPS = REPLICA_SLOTS / SERVICE_S
"""Requests per second one replica serves at full utilisation."""
BASE_CARBON = (60.0, 180.0, 380.0, 450.0, 520.0)
"""Grid carbon intensity given to the allowed regions, in policy order (gCO2e/kWh)."""


@dataclass(frozen=True, slots=True)
class IncidentScript:
    """When each incident of the story starts (seconds from the start)."""

    duration_s: float = 660.0
    canary_at: float = 60.0
    canary_accuracy: float = 0.70
    stable_accuracy: float = 0.96
    ramp_at: float = 200.0
    ramp_s: float = 120.0
    base_share: float = 0.15
    """Base load as a share of the capacity of max_replicas."""
    peak_share: float = 0.6
    """Peak load as a share of the capacity of max_replicas."""
    carbon_spike_at: float = 420.0
    carbon_spike: float = 650.0


@dataclass(frozen=True, slots=True)
class Tick:
    """One pass: what the world looked like, what the core decided, what the world became."""

    time: float
    rate: float
    p99_ms: float | None
    replicas: int
    traffic: dict[str, float]
    region_weights: dict[str, float]
    decision: Decision


@dataclass
class IncidentRun:
    """Every tick of a dry run, plus the questions a reader asks afterwards."""

    policy: Policy
    ticks: list[Tick] = field(default_factory=list)

    def actions(self) -> list[tuple[float, Action]]:
        """Every applied action with its time."""
        return [(t.time, a) for t in self.ticks for a in t.decision.mutating]

    def first(self, kind: type) -> tuple[float, Action] | None:
        """The first action of a kind, with its time."""
        return next(((t, a) for t, a in self.actions() if isinstance(a, kind)), None)

    def slo_violation_s(self) -> float:
        """Seconds during which p99 was above the SLO."""
        interval = self.policy.tick_interval_s
        limit = self.policy.slo.latency_p99_ms
        return sum(interval for t in self.ticks if t.p99_ms is not None and t.p99_ms > limit)


def _rate(policy: Policy, script: IncidentScript, t: float) -> float:
    capacity = policy.scaling.max_replicas * REPLICA_RPS
    base, peak = script.base_share * capacity, script.peak_share * capacity
    if t < script.ramp_at:
        return base
    progress = min((t - script.ramp_at) / script.ramp_s, 1.0)
    return base + (peak - base) * progress


def _signals(
    policy: Policy, script: IncidentScript, t: float, spiked: str | None
) -> tuple[RegionSignals, ...]:
    out = []
    for i, region in enumerate(policy.intent.allowed_regions):
        carbon = BASE_CARBON[i % len(BASE_CARBON)]
        if spiked == region and t >= script.carbon_spike_at:
            carbon = script.carbon_spike
        out.append(
            RegionSignals(region, carbon_intensity=carbon, price_usd_per_mwh=80.0, healthy=True)
        )
    return tuple(out)


def _observe(
    policy: Policy, script: IncidentScript, world: AppliedState, t: float
) -> tuple[tuple[VersionMetrics, ...], float | None]:
    """Metrics of the world at ``t`` (M/M/1-style queueing per region)."""
    rate = _rate(policy, script, t)
    window = policy.rollout.analysis_interval_s
    rows = []
    worst_p99: float | None = None
    for region, rweight in world.region_weights.items():
        if rweight <= 0:
            continue
        region_rate = rate * rweight
        replicas = world.replicas.get(region, 0)
        if replicas <= 0:
            mean_s, p99, errors = 30.0, 30_000.0, 1.0  # no replica: requests time out
        else:
            rho = min(region_rate / (replicas * REPLICA_RPS), 0.98)
            # M/M/c waiting time (Sakasegawa's approximation), p99 of an exponential tail.
            wait = (
                SERVICE_S * rho ** ((2 * (REPLICA_SLOTS + 1)) ** 0.5) / (REPLICA_SLOTS * (1 - rho))
            )
            mean_s = SERVICE_S + wait
            p99 = mean_s * 4.6 * 1000
            errors = 0.001
        worst_p99 = p99 if worst_p99 is None else max(worst_p99, p99)
        for version, vweight in world.traffic.items():
            if vweight <= 0:
                continue
            version_rate = region_rate * vweight
            accuracy = script.canary_accuracy if version == "v2" else script.stable_accuracy
            rows.append(
                VersionMetrics(
                    deployment=policy.target.deployment,
                    version=version,
                    region=region,
                    request_rate=version_rate,
                    error_ratio=errors,
                    latency_p50_ms=p99 / 6.6,
                    latency_p95_ms=p99 / 1.5,
                    latency_p99_ms=p99,
                    ongoing_requests=version_rate * mean_s,
                    healthy_replicas=replicas,
                    accuracy=accuracy,
                    request_count=version_rate * window,
                )
            )
    return tuple(rows), worst_p99


def run_incident(
    policy: Policy,
    catalogue: RegionCatalogue,
    script: IncidentScript | None = None,
    on_tick: Callable[[Tick], None] | None = None,
    on_pass: Callable[[DecisionContext, Decision], None] | None = None,
) -> IncidentRun:
    """Drive the decision core through the scripted incident and return every tick.

    ``on_pass`` sees each pass's context and decision, as a live loop's ``--record`` does.
    """
    script = script or IncidentScript()
    first_region = policy.intent.allowed_regions[0]
    world = AppliedState(
        versions=("v1",),
        traffic={"v1": 1.0},
        region_weights={first_region: 1.0},
        replicas={first_region: max(policy.scaling.min_replicas, 2)},
        cascade_threshold=policy.degradation.normal_threshold,
    )
    state = ControllerState()
    run = IncidentRun(policy)
    spiked: str | None = None
    t = 0.0
    while t <= script.duration_s:
        if t >= script.canary_at and "v2" not in world.versions:
            world = replace(world, versions=(*world.versions, "v2"))
        if spiked is None and t >= script.carbon_spike_at:
            spiked = max(world.region_weights, key=lambda r: world.region_weights[r])
        rows, p99 = _observe(policy, script, world, t)
        snapshot = Snapshot(
            time=t,
            application=policy.target.application,
            deployment=policy.target.deployment,
            applied=world,
            metrics=rows,
            signals=_signals(policy, script, t, spiked),
            last_metrics_at=t,
        )
        ctx = DecisionContext(
            now=t, policy=policy, snapshot=snapshot, state=state, catalogue=catalogue
        )
        decision, state = decide(ctx)
        if on_pass is not None:
            on_pass(ctx, decision)
        tick = Tick(
            time=t,
            rate=_rate(policy, script, t),
            p99_ms=p99,
            replicas=sum(world.replicas.values()),
            traffic=dict(world.traffic),
            region_weights=dict(world.region_weights),
            decision=decision,
        )
        run.ticks.append(tick)
        if on_tick is not None:
            on_tick(tick)
        world = apply_actions(world, decision.mutating)
        t += policy.tick_interval_s
    return run
