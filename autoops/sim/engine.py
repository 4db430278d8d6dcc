"""The fleet simulator (fluid fidelity): a controller drives a simulated fleet tick by tick.

The world: the policy's allowed regions from the catalogue, replicas that take ``cold_start_s``
to become ready and draw power (and cost money) from the moment they are asked for, versions
with their own behaviour and scheduled faults (the contract's fault schema), and a metrics
layer that shows the controller what a Prometheus would: values from ``metrics_delay_s`` ago,
refreshed every ``scrape_interval_s``, with seeded noise, or an outage. The controller sees the
same snapshot types as live and acts through the same absolute actions.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from autoops.contract import VersionFaults
from autoops.core.actuation import apply_actions
from autoops.core.state import ControllerState, DecisionContext
from autoops.model import AppliedState, RegionSignals, Snapshot, VersionMetrics
from autoops.policy.schema import Policy
from autoops.regions.model import RegionCatalogue
from autoops.sim.api import (
    Controller,
    Request,
    SignalSource,
    SimResult,
    TickRecord,
    TrafficSource,
)
from autoops.sim.queueing import pool_load


@dataclass(frozen=True, slots=True)
class VersionBehaviour:
    """How a model version behaves when healthy."""

    error_ratio: float = 0.001
    accuracy: float = 0.95
    service_s: float = 0.04


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    """Faults applied to one version between ``start_s`` and ``start_s + duration_s``."""

    version: str
    start_s: float
    duration_s: float
    faults: VersionFaults


@dataclass(frozen=True, slots=True)
class MetricsOutage:
    """The metrics source fails between ``start_s`` and ``start_s + duration_s``."""

    start_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Knobs of the simulated world (defaults: a small CPU-served model)."""

    duration_s: float
    step_s: float = 1.0
    """Fluid integration step, seconds."""
    replica_slots: int = 4
    """Requests one replica serves at once."""
    cold_start_s: float = 30.0
    scrape_interval_s: float = 5.0
    metrics_delay_s: float = 2.0
    metrics_noise: float = 0.02
    """Relative standard deviation of the noise on observed rates and loads."""
    seed: int = 0
    start_versions: tuple[str, ...] = ("v1",)
    start_replicas: int = 2
    versions: Mapping[str, VersionBehaviour] = field(default_factory=dict)
    new_versions: Mapping[float, str] = field(default_factory=dict)
    """Versions deployed during the run (time -> version), e.g. a canary."""
    faults: tuple[ScheduledFault, ...] = ()
    outages: tuple[MetricsOutage, ...] = ()
    fidelity: Literal["fluid", "request"] = "fluid"
    """fluid: queueing formulas on rates; request: every request of the trace queued."""


@dataclass
class _World:
    applied: AppliedState
    ready: dict[str, list[float]]
    """Per region, when each replica is (or becomes) ready."""
    versions: tuple[str, ...]


def _behaviour(config: SimConfig, version: str) -> VersionBehaviour:
    return config.versions.get(version, VersionBehaviour())


def _active_faults(config: SimConfig, version: str, t: float) -> VersionFaults | None:
    for fault in config.faults:
        if fault.version == version and fault.start_s <= t < fault.start_s + fault.duration_s:
            return fault.faults
    return None


def _in_outage(config: SimConfig, t: float) -> bool:
    return any(o.start_s <= t < o.start_s + o.duration_s for o in config.outages)


@dataclass(frozen=True, slots=True)
class _Step:
    """The fleet over one integration step."""

    offered: float
    served: float
    failed: float
    dropped: float
    p99_ms: float | None
    rows: tuple[VersionMetrics, ...]
    ready: Mapping[str, int]


def _step(
    policy: Policy,
    config: SimConfig,
    world: _World,
    signals: Mapping[str, RegionSignals],
    offered: float,
    t: float,
) -> _Step:
    """Serve one step of offered load: per region, queueing; per version, errors and accuracy."""
    rows: list[VersionMetrics] = []
    served = failed = dropped = 0.0
    worst: float | None = None
    ready_now: dict[str, int] = {}
    traffic = world.applied.traffic
    for region, weight in world.applied.region_weights.items():
        rate = offered * weight
        ready = sum(1 for at in world.ready.get(region, []) if at <= t)
        ready_now[region] = ready
        if rate <= 0:
            continue
        healthy = signals.get(region, RegionSignals(region)).healthy is not False
        service = max(
            (_behaviour(config, v).service_s for v, w in traffic.items() if w > 0), default=0.04
        )
        pool = pool_load(rate, ready if healthy else 0, service, config.replica_slots)
        dropped += pool.dropped_rps
        p99_ms = pool.p99_s * 1000 if math.isfinite(pool.p99_s) else None
        if p99_ms is not None:
            worst = p99_ms if worst is None else max(worst, p99_ms)
        for version, share in traffic.items():
            if share <= 0:
                continue
            behaviour = _behaviour(config, version)
            fault = _active_faults(config, version, t)
            err = behaviour.error_ratio + (fault.error_rate if fault else 0.0)
            extra = fault.extra_latency_ms if fault else 0.0
            accuracy = behaviour.accuracy - (fault.wrong_answer_rate if fault else 0.0)
            v_rate = rate * share
            v_served = pool.served_rps * share
            v_failed = v_served * min(err, 1.0) + pool.dropped_rps * share
            served += v_served * (1 - min(err, 1.0))
            failed += v_served * min(err, 1.0)
            v_p99 = None if p99_ms is None else p99_ms + extra
            if v_p99 is not None:
                worst = max(worst or 0.0, v_p99)
            rows.append(
                VersionMetrics(
                    deployment=policy.target.deployment,
                    version=version,
                    region=region,
                    request_rate=v_rate,
                    error_ratio=min(v_failed / v_rate, 1.0) if v_rate > 0 else 0.0,
                    latency_p50_ms=None if v_p99 is None else v_p99 / 4.6 * 0.69,
                    latency_p95_ms=None if v_p99 is None else v_p99 * 0.65,
                    latency_p99_ms=v_p99 if v_p99 is not None else 30_000.0,
                    ongoing_requests=_in_flight(pool.in_flight * share, v_rate, v_served, extra),
                    healthy_replicas=ready if healthy else 0,
                    accuracy=max(accuracy, 0.0),
                    request_count=v_rate * policy.rollout.analysis_interval_s,
                )
            )
    return _Step(offered, served, failed, dropped, worst, tuple(rows), ready_now)


class _Pools:
    """Per region, when each server (replica slot) is next free: queues that persist."""

    def __init__(self) -> None:
        self.free_at: dict[str, list[float]] = {}

    def sync(self, region: str, servers: int, t: float) -> list[float]:
        """Match the region's servers to its ready replicas (new ones free now)."""
        heap = self.free_at.setdefault(region, [])
        if len(heap) < servers:
            for _ in range(servers - len(heap)):
                heapq.heappush(heap, t)
        elif len(heap) > servers:
            # Stopped replicas go first from those that would be free last.
            keep = heapq.nsmallest(servers, heap)
            heap[:] = keep
            heapq.heapify(heap)
        return heap


def _pick(weights: Mapping[str, float], u: float) -> str | None:
    """The key whose cumulative weight first exceeds ``u`` (in [0, 1))."""
    total = 0.0
    last = None
    for key, weight in weights.items():
        if weight <= 0:
            continue
        last = key
        total += weight
        if u < total:
            return key
    return last


REQUEST_WINDOW_S = 30.0
"""Per-request metrics are rates over this trailing window, as a Prometheus ``rate()`` is."""


@dataclass
class _RequestWindow:
    """Per (version, region): recent request outcomes, kept for ``REQUEST_WINDOW_S``."""

    entries: list[tuple[float, str, str, float | None, bool]] = field(default_factory=list)
    """(time, version, region, latency or None when dropped, failed)."""

    def add(self, t: float, version: str, region: str, latency: float | None, bad: bool) -> None:
        """Record one request's outcome."""
        self.entries.append((t, version, region, latency, bad))

    def trim(self, t: float) -> None:
        """Forget outcomes older than the window."""
        cut = 0
        while cut < len(self.entries) and self.entries[cut][0] <= t - REQUEST_WINDOW_S:
            cut += 1
        del self.entries[:cut]


def _step_requests(
    policy: Policy,
    config: SimConfig,
    world: _World,
    signals: Mapping[str, RegionSignals],
    requests: list[Request],
    pools: _Pools,
    window: _RequestWindow,
    rng: random.Random,
    t: float,
    dt: float,
) -> _Step:
    """Serve one step's requests one by one: route, queue FIFO, fail or answer each."""
    ready_now = {region: sum(1 for at in times if at <= t) for region, times in world.ready.items()}
    served = failed = dropped = 0
    step_worst: float | None = None
    traffic = world.applied.traffic
    for request in requests:
        region = _pick(world.applied.region_weights, rng.random())
        version = _pick(traffic, rng.random())
        if region is None or version is None:
            dropped += 1
            continue
        healthy = signals.get(region, RegionSignals(region)).healthy is not False
        servers = ready_now.get(region, 0) * config.replica_slots if healthy else 0
        heap = pools.sync(region, servers, t)
        start = max(request.time, heap[0]) if heap else math.inf
        if start - request.time > TIMEOUT_S:
            dropped += 1
            window.add(request.time, version, region, None, True)
            continue
        behaviour = _behaviour(config, version)
        fault = _active_faults(config, version, request.time)
        service = rng.expovariate(1.0 / (behaviour.service_s * request.size))
        heapq.heapreplace(heap, start + service)
        extra = fault.extra_latency_ms / 1000 if fault else 0.0
        latency = start + service - request.time + extra
        step_worst = latency if step_worst is None else max(step_worst, latency)
        err = behaviour.error_ratio + (fault.error_rate if fault else 0.0)
        bad = rng.random() < err
        if bad:
            failed += 1
        else:
            served += 1
        window.add(request.time, version, region, latency, bad)
    window.trim(t + dt)
    rows = _window_rows(policy, config, window, ready_now, t)
    worst = max((r.latency_p99_ms for r in rows if r.latency_p99_ms is not None), default=None)
    del step_worst
    return _Step(len(requests) / dt, served / dt, failed / dt, dropped / dt, worst, rows, ready_now)


def _window_rows(
    policy: Policy,
    config: SimConfig,
    window: _RequestWindow,
    ready_now: Mapping[str, int],
    t: float,
) -> tuple[VersionMetrics, ...]:
    """Rates, error ratios and latency quantiles per (version, region) over the window."""
    span = min(REQUEST_WINDOW_S, max(t, 1.0))
    grouped: dict[tuple[str, str], list[tuple[float | None, bool]]] = {}
    for _, version, region, latency, failed in window.entries:
        grouped.setdefault((version, region), []).append((latency, failed))
    rows: list[VersionMetrics] = []
    for (version, region), outcomes in grouped.items():
        count = len(outcomes)
        latencies = sorted(x for x, _ in outcomes if x is not None)
        bad_count = sum(1 for x, b in outcomes if b or x is None)

        def q(p: float, values: list[float] = latencies) -> float | None:
            return values[min(int(p * len(values)), len(values) - 1)] * 1000 if values else None

        behaviour = _behaviour(config, version)
        fault = _active_faults(config, version, t)
        rate = count / span
        rows.append(
            VersionMetrics(
                deployment=policy.target.deployment,
                version=version,
                region=region,
                request_rate=rate,
                error_ratio=bad_count / count,
                latency_p50_ms=q(0.5),
                latency_p95_ms=q(0.95),
                latency_p99_ms=q(0.99),
                ongoing_requests=sum(latencies) / span,
                healthy_replicas=ready_now.get(region, 0),
                accuracy=max(behaviour.accuracy - (fault.wrong_answer_rate if fault else 0.0), 0.0),
                request_count=rate * policy.rollout.analysis_interval_s,
            )
        )
    return tuple(rows)


TIMEOUT_S = 30.0
"""How long a request nobody serves stays in flight before it fails."""


def _in_flight(queued: float, rate: float, served: float, extra_ms: float) -> float:
    """Requests in flight for one version: its share of the pool, plus injected latency."""
    if served <= 0:
        return rate * TIMEOUT_S
    return queued + served * extra_ms / 1000


def _observe(
    rows: tuple[VersionMetrics, ...], rng: random.Random, noise: float
) -> tuple[VersionMetrics, ...]:
    """What a scrape would show: rates and loads with seeded multiplicative noise."""
    if noise <= 0:
        return rows
    out = []
    for row in rows:
        k = max(0.0, 1.0 + rng.gauss(0.0, noise))
        out.append(
            replace(
                row,
                request_rate=None if row.request_rate is None else row.request_rate * k,
                ongoing_requests=None if row.ongoing_requests is None else row.ongoing_requests * k,
            )
        )
    return tuple(out)


class _Windows:
    """Cumulative requests and errors per (version, region), to answer any window in O(1)."""

    def __init__(self, windows: tuple[int, ...], dt: float) -> None:
        self.windows = windows
        self.dt = dt
        self.cum: dict[tuple[str, str], list[tuple[float, float]]] = {}
        self.steps = 0

    def add(self, rows: tuple[VersionMetrics, ...]) -> None:
        """Record one step of every (version, region)."""
        self.steps += 1
        seen = set()
        for row in rows:
            key = (row.version, row.region)
            seen.add(key)
            series = self.cum.setdefault(key, [(0.0, 0.0)] * self.steps)
            req, err = series[-1]
            rate = row.request_rate or 0.0
            series.append((req + rate * self.dt, err + rate * (row.error_ratio or 0.0) * self.dt))
        for key, series in self.cum.items():
            if key not in seen:
                series.append(series[-1])

    def ratios(self, version: str, region: str) -> dict[int, float | None]:
        """Error ratio over each window (None where the window saw no request)."""
        series = self.cum.get((version, region))
        if not series:
            return {}
        out: dict[int, float | None] = {}
        for window in self.windows:
            back = max(len(series) - 1 - int(window / self.dt), 0)
            req = series[-1][0] - series[back][0]
            err = series[-1][1] - series[back][1]
            out[window] = err / req if req > 0 else None
        return out


def _resize(world: _World, replicas: Mapping[str, int], t: float, cold_start_s: float) -> None:
    """Start new replicas cold; stop surplus ones (the not-yet-ready first).

    Targets are absolute: a region the mapping leaves out runs no replica.
    """
    for region in world.ready:
        if region not in replicas:
            world.ready[region] = []
    for region, want in replicas.items():
        have = world.ready.setdefault(region, [])
        if want > len(have):
            have.extend([t + cold_start_s] * (want - len(have)))
        elif want < len(have):
            have.sort()
            del have[want:]


def simulate(
    policy: Policy,
    catalogue: RegionCatalogue,
    traffic: TrafficSource,
    signals: SignalSource,
    controller: Controller,
    config: SimConfig,
    progress: Callable[[float, float], None] | None = None,
) -> SimResult:
    """Run ``controller`` over the simulated fleet for ``config.duration_s``."""
    rng = random.Random(config.seed)
    pools = _Pools()
    request_window = _RequestWindow()
    first = policy.intent.allowed_regions[0]
    applied = AppliedState(
        versions=config.start_versions,
        traffic={config.start_versions[0]: 1.0},
        region_weights={first: 1.0},
        replicas={first: config.start_replicas},
        cascade_threshold=None,
    )
    world = _World(applied, {first: [0.0] * config.start_replicas}, config.start_versions)
    result = SimResult(controller.name)
    history: list[tuple[float, tuple[VersionMetrics, ...]]] = []
    gate_windows = {
        int(w)
        for gate in policy.rollout.burn_rate_gates
        for w in (gate.long_window_s, gate.short_window_s)
    }
    windows = _Windows(tuple(sorted(gate_windows)), config.step_s)
    observed: tuple[VersionMetrics, ...] = ()
    observed_at: float | None = None
    next_scrape = 0.0
    next_tick = 0.0
    pending_versions = dict(sorted(config.new_versions.items()))
    totals = {
        "served": 0.0,
        "failed": 0.0,
        "dropped": 0.0,
        "offered": 0.0,
        "replica_s": 0.0,
        "cost_usd": 0.0,
        "energy_kwh": 0.0,
        "co2_g": 0.0,
        "slo_violation_s": 0.0,
        "actions": 0.0,
    }
    t = 0.0
    dt = config.step_s
    while t < config.duration_s:
        for at in [a for a in pending_versions if a <= t]:
            version = pending_versions.pop(at)
            applied = world.applied
            world.applied = replace(applied, versions=(*applied.versions, version))
        sig_tuple = signals.at(t)
        sig = {s.region: s for s in sig_tuple}
        if config.fidelity == "request":
            step = _step_requests(
                policy,
                config,
                world,
                sig,
                list(traffic.requests(t, t + dt)),
                pools,
                request_window,
                rng,
                t,
                dt,
            )
        else:
            step = _step(policy, config, world, sig, traffic.rate(t + dt / 2), t)
        if windows.windows:
            windows.add(step.rows)
            rows = tuple(
                replace(row, error_ratio_by_window=windows.ratios(row.version, row.region))
                for row in step.rows
            )
        else:
            rows = step.rows
        history.append((t, rows))
        # energy, cost, carbon: every replica asked for draws power, ready or not
        for region, times in world.ready.items():
            n = len(times)
            if n == 0 or region not in catalogue:
                continue
            r = catalogue[region]
            kwh = n * r.replica_power_kw * dt / 3600
            s = sig.get(region)
            price = s.price_usd_per_mwh if s and s.price_usd_per_mwh is not None else 0.0
            carbon = s.carbon_intensity if s and s.carbon_intensity is not None else 0.0
            totals["replica_s"] += n * dt
            totals["energy_kwh"] += kwh
            totals["co2_g"] += kwh * carbon
            totals["cost_usd"] += n * r.replica_usd_per_hour * dt / 3600 + kwh * price / 1000
        totals["offered"] += step.offered * dt
        totals["served"] += step.served * dt
        totals["failed"] += step.failed * dt
        totals["dropped"] += step.dropped * dt
        if step.p99_ms is not None and step.p99_ms > policy.slo.latency_p99_ms:
            totals["slo_violation_s"] += dt
        # the metrics layer: a scrape shows the world metrics_delay_s ago
        if t >= next_scrape:
            next_scrape += config.scrape_interval_s
            if not _in_outage(config, t):
                seen = [rows for at, rows in history if at <= t - config.metrics_delay_s]
                if seen:
                    observed = _observe(seen[-1], rng, config.metrics_noise)
                    observed_at = t
            keep = int(config.metrics_delay_s / dt) + 2
            del history[:-keep]
        if t >= next_tick:
            next_tick += policy.tick_interval_s
            outage = _in_outage(config, t)
            snapshot = Snapshot(
                time=t,
                application=policy.target.application,
                deployment=policy.target.deployment,
                applied=world.applied,
                metrics=() if outage else observed,
                signals=sig_tuple,
                metrics_outage=outage,
                outage_reason="simulated metrics outage" if outage else None,
                last_metrics_at=observed_at,
            )
            ctx = DecisionContext(t, policy, snapshot, ControllerState(), catalogue)
            decision = controller.decide(ctx)
            result.decisions.append(decision)
            if not decision.dry_run:
                world.applied = apply_actions(world.applied, decision.mutating)
                _resize(world, world.applied.replicas, t, config.cold_start_s)
            totals["actions"] += len(decision.mutating)
            result.ticks.append(
                TickRecord(
                    time=t,
                    offered_rps=step.offered,
                    served_rps=step.served,
                    failed_rps=step.failed,
                    dropped_rps=step.dropped,
                    p50_ms=None if step.p99_ms is None else step.p99_ms / 4.6 * 0.69,
                    p99_ms=step.p99_ms,
                    replicas={r: len(v) for r, v in world.ready.items()},
                    traffic=dict(world.applied.traffic),
                    region_weights=dict(world.applied.region_weights),
                    carbon_g_per_kwh={r: s.carbon_intensity for r, s in sig.items()},
                    cost_usd_per_hour=sum(
                        len(v) * catalogue[r].replica_usd_per_hour
                        for r, v in world.ready.items()
                        if r in catalogue
                    ),
                    power_kw=sum(
                        len(v) * catalogue[r].replica_power_kw
                        for r, v in world.ready.items()
                        if r in catalogue
                    ),
                    actions=tuple(a.kind.value for a in decision.mutating),
                )
            )
        if progress is not None:
            progress(t, config.duration_s)
        t += dt
    requests = max(totals["offered"], 1e-9)
    result.totals = {
        **totals,
        "replica_hours": totals["replica_s"] / 3600,
        "slo_violation_minutes": totals["slo_violation_s"] / 60,
        "co2_kg": totals["co2_g"] / 1000,
        "co2_g_per_1k_requests": totals["co2_g"] / requests * 1000,
        "failed_share": (totals["failed"] + totals["dropped"]) / requests,
    }
    return result
