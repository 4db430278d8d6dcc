"""Baseline controllers for replays, each a faithful copy of a published rule, cited at its class.

Every baseline implements :class:`autoops.sim.api.Controller`: the simulator calls ``decide(ctx)``
once a tick with ``ctx.now`` increasing; the baseline keeps its own state as attributes and emits
absolute actions only when its target differs from the applied state.

Missing metrics: a baseline whose rule needs a metric holds (no action, its timers untouched) on
a tick whose snapshot has no usable metrics. Ray Serve's autoscaler reads metrics pushed by its
own handles, not Prometheus, and Kubernetes' HPA skips a sync whose metrics query fails, so a
Prometheus outage in a replay must not read as zero load for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from autoops.core.aggregate import aggregate_version, rows_by_version, total_load
from autoops.core.decide import decide, metrics_usable
from autoops.core.placement import place, signal_map, split_replicas
from autoops.core.schedule import SlotChoice, greenest_slot
from autoops.core.state import ControllerState, DecisionContext
from autoops.model import (
    Action,
    Decision,
    Promote,
    RegionSignals,
    Rollback,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
    Snapshot,
)
from autoops.policy.schema import Objective, Policy
from autoops.regions.model import RegionCatalogue
from autoops.sim.api import Controller
from autoops.sim.engine import JobRequest, SignalHistory, job_footprint, job_slot_times

_EPS = 1e-9
_DELAY_ELAPSED_EPS_S = 1e-6
"""Ray's own tolerance for delay comparisons (``_DELAY_ELAPSED_EPS_S``, autoscaling_policy.py)."""

# --------------------------------------------------------------------------- shared helpers


def _usable(ctx: DecisionContext) -> bool:
    """Whether the snapshot's metrics can be read this tick (the core's own test)."""
    ok, _ = metrics_usable(ctx.policy, ctx.snapshot, ctx.now)
    return ok


def _region_load(snapshot: Snapshot, region: str) -> float:
    """Requests in flight in one region (0 where no row reports: no traffic there)."""
    total = 0.0
    for row in snapshot.metrics:
        value = row.ongoing_requests
        if row.region == region and value is not None and 0.0 <= value < math.inf:
            total += value
    return total


def _region_running(snapshot: Snapshot, region: str, applied_count: int) -> int:
    """Running (ready) replicas in one region: its rows' healthy count, else the applied count."""
    seen = [
        r.healthy_replicas
        for r in snapshot.metrics
        if r.region == region and r.healthy_replicas is not None
    ]
    return max(seen) if seen else applied_count


def _deployed_regions(snapshot: Snapshot) -> list[str]:
    """Regions where the deployment runs: replicas there, or traffic routed there."""
    applied = snapshot.applied
    names = {r for r, n in applied.replicas.items() if n > 0}
    names |= {r for r, w in applied.region_weights.items() if w > 0}
    return sorted(names)


def _changed_counts(target: Mapping[str, int], applied: Mapping[str, int]) -> bool:
    keys = set(target) | set(applied)
    return any(target.get(k, 0) != applied.get(k, 0) for k in keys)


def _changed_weights(target: Mapping[str, float], applied: Mapping[str, float]) -> bool:
    keys = set(target) | set(applied)
    return any(abs(target.get(k, 0.0) - applied.get(k, 0.0)) > 1e-6 for k in keys)


def _replicas_decision(
    ctx: DecisionContext, target: Mapping[str, int], reasons: list[str]
) -> Decision:
    """A decision setting ``target`` replicas (merged over the applied map) when they differ."""
    applied = ctx.snapshot.applied.replicas
    merged = {**applied, **target}
    if not _changed_counts(merged, applied):
        return Decision(ctx.now, (), tuple(reasons))
    return Decision(ctx.now, (SetReplicas(merged),), tuple(reasons))


# --------------------------------------------------------------------------- static


class StaticReplicas:
    """A fixed fleet that never reacts to load, faults or signals.

    Source: the "no autoscaling" deployment (``num_replicas: N`` in a Ray Serve config). With
    ``replicas_per_region`` given, it pins that absolute target (acting only when the applied
    state differs, normally on the first tick); with None it never acts at all.
    """

    def __init__(self, replicas_per_region: Mapping[str, int] | None = None) -> None:
        self.replicas_per_region = dict(replicas_per_region) if replicas_per_region else None

    @property
    def name(self) -> str:
        """Report name."""
        return "static"

    def decide(self, ctx: DecisionContext) -> Decision:
        """Hold the fleet as it is (or as pinned)."""
        if self.replicas_per_region is None:
            return Decision(ctx.now)
        return _replicas_decision(ctx, self.replicas_per_region, ["static replicas"])


# --------------------------------------------------------------------------- Ray Serve default


@dataclass(frozen=True, slots=True)
class RayAutoscalingConfig:
    """The fields of Ray Serve's ``AutoscalingConfig`` (ray/serve/config.py) the policy reads."""

    target_ongoing_requests: float = 2.0
    """``DEFAULT_TARGET_ONGOING_REQUESTS = 2`` (ray/serve/_private/constants.py)."""
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    downscale_to_zero_delay_s: float | None = None
    upscaling_factor: float | None = None
    downscaling_factor: float | None = None
    smoothing_factor: float = 1.0
    """Deprecated in Ray; the fallback of both factors (``get_upscaling_factor``)."""
    look_back_period_s: float = 30.0
    min_replicas: int = 1
    max_replicas: int = 100

    def get_upscaling_factor(self) -> float:
        """``AutoscalingConfig.get_upscaling_factor``: upscaling_factor, else smoothing_factor."""
        return self.upscaling_factor or self.smoothing_factor

    def get_downscaling_factor(self) -> float:
        """``AutoscalingConfig.get_downscaling_factor``: downscaling_factor, else smoothing."""
        return self.downscaling_factor or self.smoothing_factor


@dataclass(slots=True)
class RayPolicyState:
    """Ray's internal policy state: the decision counter and the first-decision timestamp."""

    decision_counter: int = 0
    """>0 while upscaling is wanted, <0 while downscaling is (Ray's decision-counters key)."""
    decision_timestamp: float | None = None
    """When the current run of same-direction decisions began."""


def _apply_scaling_factors(desired: float, current: int, config: RayAutoscalingConfig) -> int:
    """Ray's ``_apply_scaling_factors``: ceil(current + factor * (desired - current))."""
    if current == 0:
        return math.ceil(desired)
    delta = desired - current
    factor = config.get_upscaling_factor() if delta > 0 else config.get_downscaling_factor()
    scaled = math.ceil(current + factor * delta)
    if math.ceil(float(desired)) < current and scaled == current:
        scaled -= 1
    return scaled


def _apply_delay_logic(
    desired: int,
    curr_target: int,
    config: RayAutoscalingConfig,
    state: RayPolicyState,
    now: float,
) -> int:
    """Ray's ``_apply_delay_logic``: act only once a same-direction run has lasted the delay."""
    decision = curr_target
    if desired > curr_target:
        if state.decision_counter < 0:
            state.decision_counter, state.decision_timestamp = 0, None
        state.decision_counter += 1
        if state.decision_timestamp is None:
            state.decision_timestamp = now
        if now - state.decision_timestamp + _DELAY_ELAPSED_EPS_S >= config.upscale_delay_s:
            state.decision_counter, state.decision_timestamp = 0, None
            decision = desired
    elif desired < curr_target:
        if state.decision_counter > 0:
            state.decision_counter, state.decision_timestamp = 0, None
        state.decision_counter -= 1
        if curr_target == 1:
            delay = (
                config.downscale_to_zero_delay_s
                if config.downscale_to_zero_delay_s is not None
                else config.downscale_delay_s
            )
        else:
            delay = config.downscale_delay_s
            desired = max(1, desired)
        if state.decision_timestamp is None:
            state.decision_timestamp = now
        if now - state.decision_timestamp + _DELAY_ELAPSED_EPS_S >= delay:
            state.decision_counter, state.decision_timestamp = 0, None
            decision = desired
    else:
        state.decision_counter, state.decision_timestamp = 0, None
    return decision


def ray_serve_decision(
    config: RayAutoscalingConfig,
    state: RayPolicyState,
    total_num_requests: float,
    current_num_replicas: int,
    target_num_replicas: int,
    now: float,
) -> int:
    """One pass of Ray Serve's default autoscaler: policy, factors, delay, then bounds.

    The chain of ray 2.60 ``AutoscalingState.get_decision_num_replicas``: the policy wrapped by
    ``_apply_autoscaling_config`` (cold-start fast path, ``_core_replica_queue_length_policy``,
    ``_apply_default_params``), then ``math.ceil`` and ``apply_bounds``.
    """
    lo, hi = config.min_replicas, config.max_replicas
    # _get_cold_start_scale_up_replicas
    if current_num_replicas == 0 and total_num_requests > 0:
        cold = max(math.ceil(1 * config.get_upscaling_factor()), target_num_replicas)
        return max(lo, min(hi, cold))
    # _core_replica_queue_length_policy
    desired: float
    if current_num_replicas == 0:
        desired = float(target_num_replicas)
    else:
        target_num_requests = config.target_ongoing_requests * current_num_replicas
        error_ratio = total_num_requests / target_num_requests
        desired = current_num_replicas * error_ratio
    # _apply_default_params
    scaled = _apply_scaling_factors(desired, current_num_replicas, config)
    if current_num_replicas == 0 and scaled > 0:
        final = scaled
    else:
        final = _apply_delay_logic(max(0, scaled), target_num_replicas, config, state, now)
    # AutoscalingState.apply_bounds
    return max(lo, min(hi, final))


@dataclass(slots=True)
class _LookBack:
    """Ongoing-request samples over Ray's ``look_back_period_s`` (aggregation ``mean``)."""

    samples: list[tuple[float, float]] = field(default_factory=list)

    def mean(self, now: float, value: float, period_s: float) -> float:
        """Add ``value`` at ``now`` and return the mean of the samples inside the window."""
        self.samples.append((now, value))
        self.samples = [(t, v) for t, v in self.samples if t > now - period_s - _EPS]
        return sum(v for _, v in self.samples) / len(self.samples)


class RayServeDefault:
    """Ray Serve's default autoscaler, one per region (one Ray cluster per region).

    Source: ray 2.60, python/ray/serve/autoscaling_policy.py
    ``replica_queue_length_autoscaling_policy`` -> ``_core_replica_queue_length_policy``:
    desired = current * total_ongoing / (target * current);
    ``_apply_scaling_factors``: ceil(current + factor * (desired - current)), one less when a
    downscale would otherwise stick; ``_apply_delay_logic``: scale only once decisions in the
    same direction have lasted ``upscale_delay_s`` (30 s) / ``downscale_delay_s`` (600 s) of
    clock time, a reversal or a hold resetting the run; ``_get_cold_start_scale_up_replicas``
    for 0 running replicas; then _private/autoscaling_state.py ``get_decision_num_replicas``:
    ceil and ``apply_bounds`` to [min_replicas, max_replicas]. ``total_num_requests`` is the
    mean over ``look_back_period_s`` (``aggregation_function`` MEAN). Bounds default to the
    policy's.
    """

    def __init__(
        self,
        target_ongoing_requests: float = 2.0,
        upscale_delay_s: float = 30.0,
        downscale_delay_s: float = 600.0,
        upscaling_factor: float = 1.0,
        downscaling_factor: float = 1.0,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        look_back_period_s: float = 30.0,
        downscale_to_zero_delay_s: float | None = None,
    ) -> None:
        self.target_ongoing_requests = target_ongoing_requests
        self.upscale_delay_s = upscale_delay_s
        self.downscale_delay_s = downscale_delay_s
        self.upscaling_factor = upscaling_factor
        self.downscaling_factor = downscaling_factor
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.look_back_period_s = look_back_period_s
        self.downscale_to_zero_delay_s = downscale_to_zero_delay_s
        self.states: dict[str, RayPolicyState] = {}
        self.windows: dict[str, _LookBack] = {}

    @property
    def name(self) -> str:
        """Report name."""
        return "ray_serve_default"

    def config(self, policy: Policy) -> RayAutoscalingConfig:
        """The Ray config this baseline runs, bounds filled from the policy when not given."""
        return RayAutoscalingConfig(
            target_ongoing_requests=self.target_ongoing_requests,
            upscale_delay_s=self.upscale_delay_s,
            downscale_delay_s=self.downscale_delay_s,
            downscale_to_zero_delay_s=self.downscale_to_zero_delay_s,
            upscaling_factor=self.upscaling_factor,
            downscaling_factor=self.downscaling_factor,
            look_back_period_s=self.look_back_period_s,
            min_replicas=(
                self.min_replicas if self.min_replicas is not None else policy.scaling.min_replicas
            ),
            max_replicas=(
                self.max_replicas if self.max_replicas is not None else policy.scaling.max_replicas
            ),
        )

    def step(
        self,
        key: str,
        config: RayAutoscalingConfig,
        load: float,
        running: int,
        target: int,
        now: float,
    ) -> int:
        """One autoscaler pass for one deployment (``key``), keeping its state."""
        window = self.windows.setdefault(key, _LookBack())
        total = window.mean(now, load, config.look_back_period_s)
        state = self.states.setdefault(key, RayPolicyState())
        return ray_serve_decision(config, state, total, running, target, now)

    def decide(self, ctx: DecisionContext) -> Decision:
        """Run each region's autoscaler and set the replicas that changed."""
        if not _usable(ctx):
            return Decision(ctx.now, (), ("ray_serve_default: no metrics, autoscaler holds",))
        config = self.config(ctx.policy)
        snap = ctx.snapshot
        target: dict[str, int] = {}
        reasons: list[str] = []
        for region in _deployed_regions(snap):
            applied = snap.applied.replicas.get(region, 0)
            running = _region_running(snap, region, applied)
            load = _region_load(snap, region)
            target[region] = self.step(region, config, load, running, applied, ctx.now)
            if target[region] != applied:
                reasons.append(f"ray_serve_default: {region} {applied} -> {target[region]}")
        return _replicas_decision(ctx, target, reasons)


# --------------------------------------------------------------------------- Kubernetes HPA


@dataclass(slots=True)
class _HpaRegion:
    """One HPA's memory: its recommendations and scale-up events (horizontal.go)."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    scale_up_events: list[tuple[float, int]] = field(default_factory=list)
    last_sync: float | None = None


class KubernetesHPA:
    """The Kubernetes HorizontalPodAutoscaler (autoscaling/v2, default behaviour), per region.

    Source: kubernetes.io "Horizontal Pod Autoscaling" → "Algorithm details": desired =
    ceil(current * metric / target), skipped while |metric/target - 1| ≤ tolerance (0.1);
    "Stabilization window": scale-down takes the highest recommendation of the last 300 s;
    "Default Behavior": scale-up at most max(+100 %, +4 pods) per 15 s; the controller syncs
    every 15 s (``--horizontal-pod-autoscaler-sync-period``). Code: pkg/controller/podautoscaler
    replica_calculator.go ``calcPlainMetricReplicas`` (ready pods; unready ones count as 0 load
    on scale-up) and horizontal.go ``stabilizeRecommendationWithBehaviors`` /
    ``calculateScaleUpLimitWithScalingRules``. The metric is requests in flight per replica
    (an ``AverageValue`` Pods metric); the default 100 %/15 s scale-down policy never binds.
    """

    def __init__(
        self,
        target_per_replica: float = 2.0,
        tolerance: float = 0.1,
        scale_down_stabilization_s: float = 300.0,
        sync_period_s: float = 15.0,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        scale_up_stabilization_s: float = 0.0,
        scale_up_pods: int = 4,
        scale_up_percent: float = 100.0,
        scale_up_period_s: float = 15.0,
    ) -> None:
        self.target_per_replica = target_per_replica
        self.tolerance = tolerance
        self.scale_down_stabilization_s = scale_down_stabilization_s
        self.sync_period_s = sync_period_s
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.scale_up_stabilization_s = scale_up_stabilization_s
        self.scale_up_pods = scale_up_pods
        self.scale_up_percent = scale_up_percent
        self.scale_up_period_s = scale_up_period_s
        self.regions: dict[str, _HpaRegion] = {}

    @property
    def name(self) -> str:
        """Report name."""
        return "hpa"

    def recommend(self, current: int, ready: int, load: float) -> int:
        """``calcPlainMetricReplicas``: the raw replica recommendation from the metric."""
        ratio = (load / ready) / self.target_per_replica
        unready = max(0, current - ready)
        if unready > 0 and ratio > 1.0:
            # Unready pods are assumed to carry no load while scaling up.
            new_ratio = load / (current * self.target_per_replica)
            if abs(new_ratio - 1.0) <= self.tolerance or new_ratio < 1.0:
                return current
            return math.ceil(new_ratio * current)
        if abs(ratio - 1.0) <= self.tolerance:
            return current
        return math.ceil(ratio * ready)

    def normalize(
        self, memory: _HpaRegion, now: float, current: int, desired: int, lo: int, hi: int
    ) -> int:
        """``normalizeDesiredReplicasWithBehaviors``: stabilise, then rate-limit and bound."""
        up_rec = down_rec = desired
        for t, rec in memory.recommendations:
            if t > now - self.scale_up_stabilization_s:
                up_rec = min(up_rec, rec)
            if t > now - self.scale_down_stabilization_s:
                down_rec = max(down_rec, rec)
        keep = max(self.scale_up_stabilization_s, self.scale_down_stabilization_s)
        memory.recommendations = [(t, r) for t, r in memory.recommendations if t > now - keep]
        memory.recommendations.append((now, desired))
        stabilized = min(max(current, up_rec), down_rec)
        if stabilized > current:
            added = sum(d for t, d in memory.scale_up_events if t > now - self.scale_up_period_s)
            start = current - added
            limit = max(
                start + self.scale_up_pods, math.ceil(start * (1 + self.scale_up_percent / 100))
            )
            return min(stabilized, min(hi, limit))
        if stabilized < current:
            return max(stabilized, lo)
        return stabilized

    def decide(self, ctx: DecisionContext) -> Decision:
        """Sync each region's HPA when its sync period has passed."""
        if not _usable(ctx):
            return Decision(ctx.now, (), ("hpa: metrics unavailable, no scaling",))
        snap, now = ctx.snapshot, ctx.now
        lo = self.min_replicas if self.min_replicas is not None else ctx.policy.scaling.min_replicas
        hi = self.max_replicas if self.max_replicas is not None else ctx.policy.scaling.max_replicas
        target: dict[str, int] = {}
        reasons: list[str] = []
        for region in _deployed_regions(snap):
            memory = self.regions.setdefault(region, _HpaRegion())
            if memory.last_sync is not None and now - memory.last_sync < self.sync_period_s - _EPS:
                continue
            memory.last_sync = now
            current = snap.applied.replicas.get(region, 0)
            if current == 0:
                continue  # HPA is disabled while the target is scaled to zero
            if current > hi or current < lo:
                desired = min(hi, max(lo, current))
            else:
                ready = min(_region_running(snap, region, current), current)
                if ready == 0:
                    continue  # no pod metrics: the sync fails and nothing scales
                raw = self.recommend(current, ready, _region_load(snap, region))
                desired = self.normalize(memory, now, current, raw, lo, hi)
            if desired > current:
                memory.scale_up_events.append((now, desired - current))
            memory.scale_up_events = [
                (t, d) for t, d in memory.scale_up_events if t > now - self.scale_up_period_s
            ]
            target[region] = desired
            if desired != current:
                reasons.append(f"hpa: {region} {current} -> {desired}")
        return _replicas_decision(ctx, target, reasons)


# --------------------------------------------------------------------------- Flagger canary


class FlaggerCanary:
    """A Flagger canary analysis with fixed thresholds (scaling left as it is).

    Source: fluxcd/flagger pkg/controller/scheduler.go ``advanceCanary`` and
    scheduler_deployment... ``runCanary``; docs "Canary analysis". Every ``interval_s``: a new
    revision is detected (phase Progressing) and nothing else happens that interval; while
    ``failedChecks ≥ threshold`` the canary is rolled back; the first pass at weight 0 runs no
    analysis; otherwise the built-in checks run (error ratio ≤ ``error_rate_max`` i.e.
    request-success-rate ≥ 99 %, p99 ≤ ``latency_p99_max_ms``; "no values found" fails the
    check), a failure adds one to ``failedChecks``, a pass adds ``step_weight`` while the weight
    is under ``max_weight`` and promotes once it has reached it. So a failing canary is rolled
    back ``threshold`` intervals after its first failed check, and a healthy one is promoted on
    its ``max_weight / step_weight``-th passed analysis. Promotion here is instant (Flagger then
    copies the spec to the primary and routes 100 % to it one interval later).
    """

    def __init__(
        self,
        interval_s: float = 60.0,
        threshold: int = 5,
        step_weight: float = 10.0,
        max_weight: float = 50.0,
        error_rate_max: float = 0.01,
        latency_p99_max_ms: float = 500.0,
    ) -> None:
        self.interval_s = interval_s
        self.threshold = threshold
        self.step_weight = step_weight
        self.max_weight = max_weight
        self.error_rate_max = error_rate_max
        self.latency_p99_max_ms = latency_p99_max_ms
        self.stable: str | None = None
        self.canary: str | None = None
        self.weight = 0.0
        self.failed_checks = 0
        self.iterations = 0
        self.last_run: float | None = None
        self.rejected: set[str] = set()

    @property
    def name(self) -> str:
        """Report name."""
        return "flagger"

    def check(self, snapshot: Snapshot, version: str) -> tuple[bool, str]:
        """The built-in metric checks on ``version``; missing values fail, as in Flagger."""
        rows = rows_by_version(snapshot).get(version, [])
        agg = aggregate_version(rows)
        if snapshot.metrics_outage or agg.error_ratio is None or agg.latency_p99_ms is None:
            return False, f"no values found for {version}"
        if agg.error_ratio > self.error_rate_max:
            return False, f"error ratio {agg.error_ratio:.2%} > {self.error_rate_max:.2%}"
        if agg.latency_p99_ms > self.latency_p99_max_ms:
            return False, f"p99 {agg.latency_p99_ms:.0f} ms > {self.latency_p99_max_ms:g} ms"
        return True, "checks passed"

    def _reset(self) -> None:
        self.canary, self.weight, self.failed_checks, self.iterations = None, 0.0, 0, 0

    def decide(self, ctx: DecisionContext) -> Decision:
        """Run one analysis interval when it is due."""
        now, snap = ctx.now, ctx.snapshot
        applied = snap.applied
        if self.stable is None:
            stable = ctx.policy.target.stable_version
            if stable is None or stable not in applied.versions:
                stable = max(applied.traffic, key=lambda v: (applied.traffic[v], v))
            self.stable = stable
        if self.last_run is not None and now - self.last_run < self.interval_s - _EPS:
            return Decision(now)
        self.last_run = now
        stable = self.stable
        if self.canary is None:
            for version in reversed(applied.versions):
                if version != stable and version not in self.rejected:
                    self.canary = version
                    return Decision(now, (), (f"flagger: new revision {version} detected",))
            return Decision(now)
        canary = self.canary
        if canary not in applied.versions:
            self._reset()
            return Decision(now, (), (f"flagger: {canary} is gone",))
        if self.failed_checks >= self.threshold:
            self.rejected.add(canary)
            self._reset()
            reason = f"flagger: {canary} failed {self.threshold} checks: rolling back"
            return Decision(now, (Rollback(canary, stable),), (reason,))
        reasons: list[str] = []
        if not (self.weight == 0 and self.iterations == 0):
            ok, why = self.check(snap, canary)
            if not ok:
                self.failed_checks += 1
                return Decision(now, (), (f"flagger: check {self.failed_checks} failed: {why}",))
            reasons.append(f"flagger: {why}")
        self.iterations += 1
        if self.weight < self.max_weight:
            self.weight = min(self.weight + self.step_weight, 100.0)
            w = self.weight / 100.0
            split = {stable: round(1.0 - w, 6), canary: round(w, 6)}
            reasons.append(f"flagger: canary weight {self.weight:g}%")
            return Decision(now, (SetTraffic(split),), tuple(reasons))
        self.rejected.add(stable)  # the old primary is retired, not a new revision
        self.stable = canary
        self._reset()
        reasons.append(f"flagger: {canary} reached {self.max_weight:g}%: promoting")
        return Decision(now, (Promote(canary),), tuple(reasons))


# --------------------------------------------------------------------------- placement


def _healthy_allowed(ctx: DecisionContext) -> list[str]:
    """Allowed regions in the catalogue whose health signal is not False."""
    signals = signal_map(ctx.snapshot.signals)
    return [
        r
        for r in ctx.policy.intent.allowed_regions
        if r in ctx.catalogue and (r not in signals or signals[r].healthy is not False)
    ]


class CarbonAgnosticPlacement:
    """Placement by latency or cost only (carbon ignored), with Ray Serve's default scaling.

    Source: the core's own ``place`` (autoops/core/placement.py) with the policy's objective
    replaced by ``latency`` or ``cost`` and its carbon ceiling dropped: the best
    ``min_regions`` allowed, healthy regions by latency to users or $/h (replica price plus
    energy at the grid price). The fleet total follows :func:`ray_serve_decision` on the total
    load, split over the chosen regions by largest remainder.
    """

    def __init__(
        self,
        objective: str = "latency",
        target_ongoing_requests: float = 2.0,
        upscale_delay_s: float = 30.0,
        downscale_delay_s: float = 600.0,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
    ) -> None:
        if objective not in ("latency", "cost"):
            raise ValueError(f"objective must be 'latency' or 'cost', not {objective!r}")
        self.objective = Objective(objective)
        self.scaler = RayServeDefault(
            target_ongoing_requests=target_ongoing_requests,
            upscale_delay_s=upscale_delay_s,
            downscale_delay_s=downscale_delay_s,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
        )
        self._policy: Policy | None = None
        self._agnostic: Policy | None = None

    @property
    def name(self) -> str:
        """Report name."""
        return "carbon_agnostic"

    def _intent_policy(self, policy: Policy) -> Policy:
        if self._policy is not policy or self._agnostic is None:
            intent = policy.intent.model_copy(
                update={"objective": self.objective, "carbon_ceiling_g_per_kwh": None}
            )
            self._policy, self._agnostic = policy, policy.model_copy(update={"intent": intent})
        return self._agnostic

    def decide(self, ctx: DecisionContext) -> Decision:
        """Place by latency/cost and scale the total reactively."""
        if not _usable(ctx):
            return Decision(ctx.now, (), ("carbon_agnostic: no metrics, holding",))
        snap, policy = ctx.snapshot, self._intent_policy(ctx.policy)
        signals = signal_map(snap.signals)
        degraded = {r: "region marked unhealthy" for r, s in signals.items() if s.healthy is False}
        placement = place(
            policy.intent, policy.slo.latency_p99_ms, ctx.catalogue, signals, degraded
        )
        weights = dict(placement.weights) or dict(snap.applied.region_weights)
        applied = snap.applied
        current = sum(applied.replicas.values())
        running = sum(_region_running(snap, r, n) for r, n in applied.replicas.items() if n > 0)
        load, _ = total_load(snap)
        config = self.scaler.config(ctx.policy)
        total = self.scaler.step("*", config, load or 0.0, running, current, ctx.now)
        actions: list[Action] = []
        reasons: list[str] = []
        if _changed_weights(weights, applied.region_weights):
            actions.append(SetRegionWeights(weights))
            reasons.append(f"carbon_agnostic: {'; '.join(placement.reasons)}")
        replicas = split_replicas(total, weights)
        merged = {**dict.fromkeys(applied.replicas, 0), **replicas}
        if _changed_counts(merged, applied.replicas):
            actions.append(SetReplicas(merged))
            reasons.append(f"carbon_agnostic: replicas {current} -> {total}")
        return Decision(ctx.now, tuple(actions), tuple(reasons))


FutureSignals = (
    Callable[[float], tuple[RegionSignals, ...]] | Mapping[int, tuple[RegionSignals, ...]]
)
"""True signals at a time: a function of seconds, or a table keyed by hour index (t // 3600)."""


class CarbonOracle:
    """An UPPER BOUND, not a competitor: perfect knowledge, no delay, all in the greenest region.

    Source: the oracle of issue 7 item 5. Each tick it reads the true signals of the current
    hour (not the lagged ones a controller sees), routes all traffic to the allowed, healthy
    region with the lowest carbon intensity, sizes replicas exactly to the load (ceil(in flight
    / target_ongoing_requests), within the policy's bounds, no stabilisation), and, knowing the
    future, starts the same replicas ``prewarm_s`` ahead in the region that will be greenest
    next, so its moves cost no cold start.
    """

    def __init__(self, future_signals: FutureSignals, prewarm_s: float = 120.0) -> None:
        self.future_signals = future_signals
        self.prewarm_s = prewarm_s

    @property
    def name(self) -> str:
        """Report name."""
        return "oracle"

    def signals_at(self, t: float) -> tuple[RegionSignals, ...]:
        """The true signals at ``t``."""
        if callable(self.future_signals):
            return self.future_signals(t)
        return self.future_signals.get(int(t // 3600), ())

    def greenest(self, ctx: DecisionContext, t: float) -> str | None:
        """The allowed, healthy region with the lowest carbon intensity at ``t``."""
        signals = {s.region: s for s in self.signals_at(t)}
        best: tuple[float, str] | None = None
        for region in ctx.policy.intent.allowed_regions:
            sig = signals.get(region)
            if region not in ctx.catalogue or sig is None or sig.healthy is False:
                continue
            if sig.carbon_intensity is None:
                continue
            if best is None or (sig.carbon_intensity, region) < best:
                best = (sig.carbon_intensity, region)
        return None if best is None else best[1]

    def decide(self, ctx: DecisionContext) -> Decision:
        """Put everything in the greenest region, sized exactly to the load."""
        now, snap = ctx.now, ctx.snapshot
        region = self.greenest(ctx, now)
        if region is None:
            return Decision(now, (), ("oracle: no allowed region with carbon data",))
        applied = snap.applied
        actions: list[Action] = []
        weights = {region: 1.0}
        if _changed_weights(weights, applied.region_weights):
            actions.append(SetRegionWeights(weights))
        load, _ = total_load(snap)
        scaling = ctx.policy.scaling
        if load is None:
            need = max(1, sum(applied.replicas.values()))
        else:
            need = math.ceil(load / scaling.target_ongoing_requests - _EPS)
        need = max(scaling.min_replicas, min(scaling.max_replicas, need), 1)
        replicas = dict.fromkeys(applied.replicas, 0)
        replicas[region] = need
        upcoming = self.greenest(ctx, now + self.prewarm_s) if self.prewarm_s > 0 else None
        if upcoming is not None and upcoming != region:
            replicas[upcoming] = need
        if _changed_counts(replicas, applied.replicas):
            actions.append(SetReplicas(replicas))
        return Decision(now, tuple(actions), (f"oracle: greenest region {region}",))

    def plan_job(self, request: JobRequest, seen: SignalHistory) -> SlotChoice:
        """The start and region of least true carbon (booked as the world books it)."""
        job, now = request.job, request.now
        best: tuple[float, float, str] | None = None
        for start in job_slot_times(now, job.deadline_s - job.duration_s):
            for region in request.regions:
                footprint = job_footprint(
                    job, start, region, self.signals_at, request.catalogue, request.step_s
                )
                if not footprint.complete:
                    continue
                if best is None or (footprint.co2_g, start, region) < best:
                    best = (footprint.co2_g, start, region)
        if best is None:
            reason = "oracle: no carbon data for the job's window: run at release"
            return SlotChoice(now, None, request.default_region, reason)
        co2_g, start, region = best
        kwh = job_footprint(
            job, start, region, self.signals_at, request.catalogue, request.step_s
        ).energy_kwh
        intensity = co2_g / kwh if kwh > 0 else None
        return SlotChoice(start, intensity, region, f"oracle: least true carbon in {region}")


# --------------------------------------------------------------------------- AutoOps


class AutoOpsController:
    """The controller under test: ``autoops.core.decide.decide`` with its state carried."""

    def __init__(
        self, policy: Policy | None = None, catalogue: RegionCatalogue | None = None
    ) -> None:
        self.policy = policy
        self.catalogue = catalogue
        self.state = ControllerState()

    @property
    def name(self) -> str:
        """Report name."""
        return "autoops"

    def decide(self, ctx: DecisionContext) -> Decision:
        """Decide with the carried state (and this controller's policy/catalogue, if set)."""
        ctx = replace(
            ctx,
            state=self.state,
            policy=self.policy if self.policy is not None else ctx.policy,
            catalogue=self.catalogue if self.catalogue is not None else ctx.catalogue,
        )
        decision, self.state = decide(ctx)
        return decision

    def plan_job(self, request: JobRequest, seen: SignalHistory) -> SlotChoice:
        """The live rule (``greenest_slot``) on a forecast built from past signals only."""
        job, now = request.job, request.now
        slots = [
            (start, region, forecast_window(seen, region, start, job.duration_s, now))
            for start in job_slot_times(now, job.deadline_s - job.duration_s)
            for region in request.regions
        ]
        return greenest_slot(now, job.deadline_s, slots, job.duration_s)


def forecast_intensity(seen: SignalHistory, region: str, hour: int, now: float) -> float | None:
    """Carbon intensity of ``region`` in ``hour`` (index t // 3600) as known at ``now``.

    Seasonal naive, from the past only: the current hour (or an earlier one) is the last value
    seen; a later hour is the mean seen in the same hour of the most recent day before ``now``
    that has one; with no such day, the last value seen (persistence).
    """
    now_hour = math.floor(now / 3600.0)
    if hour <= now_hour:
        return seen.latest(region)
    back = now_hour - (now_hour - hour) % 24
    first = seen.first_hour
    while first is not None and back >= first:
        value = seen.hourly(region, back)
        if value is not None:
            return value
        back -= 24
    return seen.latest(region)


def forecast_window(
    seen: SignalHistory, region: str, start: float, duration_s: float, now: float
) -> float | None:
    """Mean forecast intensity of ``region`` over [start, start + duration_s) (None: unknown)."""
    end = start + duration_s
    if duration_s <= 0:
        return forecast_intensity(seen, region, math.floor(start / 3600.0), now)
    total = 0.0
    t = start
    while t < end:
        hour = math.floor(t / 3600.0)
        upto = min(end, (hour + 1) * 3600.0)
        value = forecast_intensity(seen, region, hour, now)
        if value is None:
            return None
        total += value * (upto - t)
        t = upto
    return total / duration_s


BASELINES: dict[str, Callable[..., Controller]] = {
    "static": StaticReplicas,
    "ray_serve_default": RayServeDefault,
    "hpa": KubernetesHPA,
    "flagger": FlaggerCanary,
    "carbon_agnostic": CarbonAgnosticPlacement,
    "oracle": CarbonOracle,
}
"""Baseline factories by report name (``autoops simulate --baseline NAME``)."""


__all__ = [
    "BASELINES",
    "AutoOpsController",
    "CarbonAgnosticPlacement",
    "CarbonOracle",
    "FlaggerCanary",
    "FutureSignals",
    "KubernetesHPA",
    "RayAutoscalingConfig",
    "RayPolicyState",
    "RayServeDefault",
    "StaticReplicas",
    "forecast_intensity",
    "forecast_window",
    "ray_serve_decision",
]
