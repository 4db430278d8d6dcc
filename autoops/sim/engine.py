"""The fleet simulator (fluid fidelity): a controller drives a simulated fleet tick by tick.

The world: the policy's allowed regions from the catalogue, replicas that take ``cold_start_s``
to become ready and draw power (and cost money) from the moment they are asked for, versions
with their own behaviour and scheduled faults (the contract's fault schema), and a metrics
layer that shows the controller what a Prometheus would: values from ``metrics_delay_s`` ago,
refreshed every ``scrape_interval_s``, with seeded noise, or an outage. The controller sees the
same snapshot types as live and acts through the same absolute actions.

Deferrable jobs (a retraining: a duration, a power draw, a release and a deadline) are planned
at their release: a controller that is a :class:`JobPlanner` picks the start and region from the
signals it has been shown so far (a :class:`SignalHistory`, never the future); any other runs
them at release. Their energy, carbon and cost are booked with the true signals, step by step as
serving is (:func:`job_footprint`), and added to the totals.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, runtime_checkable

from autoops.contract import VersionFaults
from autoops.core.actuation import apply_actions
from autoops.core.schedule import SlotChoice
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
    jobs: tuple[DeferrableJob, ...] = ()
    """Deferrable jobs (e.g. retrainings): a JobPlanner controller picks their slot."""


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


P99_SHARE = 0.01
"""The share of requests over the p99: more of them dropped puts the p99 out of reach."""


def _over_slo(step: _Step, limit_ms: float) -> bool:
    """Whether the p99 over every offered request is over ``limit_ms``: a dropped request never
    answers, so over 1% dropped is a violation even when what was served was fast (or when
    nothing was served and there is no latency at all)."""
    if step.offered > 0 and step.dropped / step.offered > P99_SHARE:
        return True
    return step.p99_ms is not None and step.p99_ms > limit_ms


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


# --------------------------------------------------------------------------- deferrable jobs


@dataclass(frozen=True, slots=True)
class DeferrableJob:
    """Work that may start at ``release_s`` or later and must end by ``deadline_s`` (retraining)."""

    name: str
    release_s: float
    deadline_s: float
    duration_s: float
    replicas: int = 1
    """Replicas (GPUs) it holds while it runs: each costs the region's replica $/h."""
    power_kw: float | None = None
    """Total draw while it runs; None: ``replicas`` times the region's replica power."""
    region: str | None = None
    """The one region it may run in; None: any of the policy's allowed regions."""


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What a controller is asked when a job is released: where and when it may run."""

    job: DeferrableJob
    now: float
    """The decision time: the job's release."""
    regions: tuple[str, ...]
    """Where it may run (the job's region, or the policy's allowed regions in the catalogue)."""
    default_region: str
    """Where a carbon-agnostic run goes: the job's region, or the first allowed region."""
    step_s: float
    """The world's integration step (energy and carbon are booked per step)."""
    catalogue: RegionCatalogue
    """The region catalogue (power and price of a replica per region)."""


@dataclass(frozen=True, slots=True)
class JobRun:
    """One job as it ran: one line of the report."""

    name: str
    release_s: float
    deadline_s: float
    start_s: float
    end_s: float
    region: str
    energy_kwh: float
    co2_g: float
    cost_usd: float
    deadline_met: bool
    reason: str


@dataclass
class FleetResult(SimResult):
    """A run's result with the deferrable jobs it ran (``SimResult`` plus ``jobs``)."""

    jobs: list[JobRun] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class JobFootprint:
    """Energy, carbon and cost of one job run, booked from the true signals.

    ``complete`` is False where some step had no carbon intensity (booked as zero, as serving is).
    """

    energy_kwh: float
    co2_g: float
    cost_usd: float
    complete: bool


def job_slot_times(now: float, latest: float) -> tuple[float, ...]:
    """Candidate starts: ``now``, each hour boundary up to ``latest``, and ``latest`` itself."""
    if latest < now:
        return (now,)
    times = [now]
    hour = math.floor(now / 3600.0) + 1
    while hour * 3600.0 < latest:
        times.append(hour * 3600.0)
        hour += 1
    if latest > now:
        times.append(latest)
    return tuple(times)


def job_footprint(
    job: DeferrableJob,
    start: float,
    region: str,
    signals_at: Callable[[float], tuple[RegionSignals, ...]],
    catalogue: RegionCatalogue,
    step_s: float,
    until: float = math.inf,
) -> JobFootprint:
    """Book ``job`` run from ``start`` in ``region`` step by step, as the world books serving.

    Each step ``[k*step_s, (k+1)*step_s)`` the job overlaps draws its power for the overlap at
    the carbon intensity and price the signals show at the step's start; nothing is booked
    after ``until`` (the end of the run).
    """
    if region not in catalogue:
        raise ValueError(f"job {job.name!r}: region {region!r} is not in the catalogue")
    spec = catalogue[region]
    power = job.power_kw if job.power_kw is not None else job.replicas * spec.replica_power_kw
    end = min(start + job.duration_s, until)
    kwh_total = co2 = cost = 0.0
    complete = True
    k = math.floor(start / step_s)
    while k * step_s < end:
        t = k * step_s
        overlap = min(end, t + step_s) - max(start, t)
        k += 1
        if overlap <= 0:
            continue
        sig = next((s for s in signals_at(t) if s.region == region), None)
        carbon = sig.carbon_intensity if sig is not None else None
        price = sig.price_usd_per_mwh if sig is not None else None
        complete = complete and carbon is not None
        kwh = power * overlap / 3600
        kwh_total += kwh
        co2 += kwh * (carbon or 0.0)
        cost += job.replicas * spec.replica_usd_per_hour * overlap / 3600
        cost += kwh * (price or 0.0) / 1000
    return JobFootprint(kwh_total, co2, cost, complete)


class SignalHistory:
    """The carbon intensity a controller has been shown, per region and hour: the past only."""

    def __init__(self) -> None:
        self._sums: dict[tuple[str, int], tuple[float, int]] = {}
        self._latest: dict[str, float] = {}
        self.first_hour: int | None = None
        self.last_time: float | None = None

    def record(self, t: float, signals: tuple[RegionSignals, ...]) -> None:
        """Remember what the controller saw at ``t`` (times must not go backwards)."""
        if self.last_time is not None and t < self.last_time:
            raise ValueError(f"signal history goes backwards: {t} after {self.last_time}")
        hour = math.floor(t / 3600.0)
        self.first_hour = hour if self.first_hour is None else self.first_hour
        self.last_time = t
        for s in signals:
            if s.carbon_intensity is None or not math.isfinite(s.carbon_intensity):
                continue
            total, count = self._sums.get((s.region, hour), (0.0, 0))
            self._sums[(s.region, hour)] = (total + s.carbon_intensity, count + 1)
            self._latest[s.region] = s.carbon_intensity

    def hourly(self, region: str, hour: int) -> float | None:
        """Mean intensity seen in ``region`` during ``hour`` (index t // 3600), if any."""
        entry = self._sums.get((region, hour))
        return None if entry is None else entry[0] / entry[1]

    def latest(self, region: str) -> float | None:
        """The last intensity seen in ``region``."""
        return self._latest.get(region)


@runtime_checkable
class JobPlanner(Protocol):
    """A controller that schedules deferrable jobs (one without this runs them at release)."""

    def plan_job(self, request: JobRequest, seen: SignalHistory) -> SlotChoice:
        """When and where to run ``request.job``, from the signals seen so far only."""
        ...


def check_jobs(jobs: tuple[DeferrableJob, ...], duration_s: float) -> None:
    """Raise ValueError naming the job when a window cannot hold it or outlasts the run."""
    names: set[str] = set()
    for job in jobs:
        if job.name in names:
            raise ValueError(f"job {job.name!r}: duplicate name")
        names.add(job.name)
        if not job.release_s < job.deadline_s:
            raise ValueError(f"job {job.name!r}: deadline_s must be after release_s")
        if not 0 < job.duration_s <= job.deadline_s - job.release_s:
            raise ValueError(f"job {job.name!r}: duration_s does not fit release_s..deadline_s")
        if job.deadline_s > duration_s:
            raise ValueError(f"job {job.name!r}: deadline_s is after the end of the run")
        if job.replicas < 1:
            raise ValueError(f"job {job.name!r}: replicas must be at least 1")


def _job_request(
    job: DeferrableJob, policy: Policy, catalogue: RegionCatalogue, step_s: float
) -> JobRequest:
    if job.region is not None:
        regions: tuple[str, ...] = (job.region,)
    else:
        regions = tuple(r for r in policy.intent.allowed_regions if r in catalogue)
    if not regions:
        raise ValueError(f"job {job.name!r}: no region of the catalogue to run in")
    return JobRequest(job, job.release_s, regions, regions[0], step_s, catalogue)


def _run_job(
    request: JobRequest,
    controller: Controller,
    seen: SignalHistory,
    signals: SignalSource,
    catalogue: RegionCatalogue,
    until: float,
) -> JobRun:
    """Ask the controller (or run at release), then book the run with the true signals."""
    job, now = request.job, request.now
    if isinstance(controller, JobPlanner):
        choice = controller.plan_job(request, seen)
    else:
        choice = SlotChoice(now, None, request.default_region, "carbon-agnostic: run at release")
    start = max(choice.start, now)
    region = choice.region if choice.region in request.regions else request.default_region
    footprint = job_footprint(job, start, region, signals.at, catalogue, request.step_s, until)
    end = start + job.duration_s
    return JobRun(
        name=job.name,
        release_s=job.release_s,
        deadline_s=job.deadline_s,
        start_s=start,
        end_s=end,
        region=region,
        energy_kwh=footprint.energy_kwh,
        co2_g=footprint.co2_g,
        cost_usd=footprint.cost_usd,
        deadline_met=end <= job.deadline_s + 1e-6,
        reason=choice.reason,
    )


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
    check_jobs(config.jobs, config.duration_s)
    pending_jobs = sorted(config.jobs, key=lambda j: (j.release_s, j.name))
    shown = SignalHistory()
    result = FleetResult(controller.name)
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
        if _over_slo(step, policy.slo.latency_p99_ms):
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
            if pending_jobs:
                shown.record(t, sig_tuple)
        while pending_jobs and pending_jobs[0].release_s < t + dt:
            request = _job_request(pending_jobs.pop(0), policy, catalogue, dt)
            run = _run_job(request, controller, shown, signals, catalogue, config.duration_s)
            result.jobs.append(run)
        if progress is not None:
            progress(t, config.duration_s)
        t += dt
    requests = max(totals["offered"], 1e-9)
    serving_co2_g = totals["co2_g"]
    jobs = _job_totals(result.jobs)
    for key in ("energy_kwh", "co2_g", "cost_usd"):
        totals[key] += jobs[f"job_{key}"]
    result.totals = {
        **totals,
        **jobs,
        "replica_hours": totals["replica_s"] / 3600,
        "slo_violation_minutes": totals["slo_violation_s"] / 60,
        "co2_kg": totals["co2_g"] / 1000,
        "co2_g_per_1k_requests": serving_co2_g / requests * 1000,
        "failed_share": (totals["failed"] + totals["dropped"]) / requests,
    }
    return result


def _job_totals(runs: list[JobRun]) -> dict[str, float]:
    """Jobs' share of the totals (energy, carbon and cost are also in the fleet's totals)."""
    return {
        "jobs": float(len(runs)),
        "jobs_deadline_missed": float(sum(1 for r in runs if not r.deadline_met)),
        "job_energy_kwh": sum(r.energy_kwh for r in runs),
        "job_co2_g": sum(r.co2_g for r in runs),
        "job_co2_kg": sum(r.co2_g for r in runs) / 1000,
        "job_cost_usd": sum(r.cost_usd for r in runs),
    }
