"""The fluid fleet simulator: deterministic, and each fault has the effect it claims."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoops.contract import VersionFaults
from autoops.core.decide import decide
from autoops.core.state import ControllerState, DecisionContext
from autoops.model import Decision, RegionSignals
from autoops.sim.engine import MetricsOutage, ScheduledFault, SimConfig, simulate
from tests.sim.fakes import Flat
from tests.unit.fakes import CATALOGUE, make_policy

POLICY = make_policy(
    slo={"latency_p99_ms": 400},
    scaling={"max_replicas": 12, "upscale_stabilization_s": 0, "downscale_stabilization_s": 120},
    rollout={"steps": [10, 50], "analysis_interval_s": 20, "min_requests": 50},
)


class Grid:
    """Fixed signals, with one region unhealthy inside a window (a test signal source)."""

    def __init__(self, down: str | None = None, start: float = 0.0, end: float = 0.0) -> None:
        self.down, self.start, self.end = down, start, end

    def at(self, t: float) -> tuple[RegionSignals, ...]:
        out = []
        for name in ("eu-west", "eu-central"):
            healthy = not (name == self.down and self.start <= t < self.end)
            out.append(
                RegionSignals(name, carbon_intensity=200.0, price_usd_per_mwh=60.0, healthy=healthy)
            )
        return tuple(out)


class AutoOps:
    """The real decide(), with its state carried between ticks."""

    name = "autoops"

    def __init__(self) -> None:
        self.state = ControllerState()

    def decide(self, ctx: DecisionContext) -> Decision:
        decision, self.state = decide(replace(ctx, state=self.state))
        return decision


def run(config: SimConfig, rps: float = 150.0, grid: Grid | None = None):  # type: ignore[no-untyped-def]
    return simulate(
        POLICY, CATALOGUE, Flat(rps, config.duration_s), grid or Grid(), AutoOps(), config
    )


def test_same_seed_same_run() -> None:
    config = SimConfig(duration_s=300, seed=3)
    first, second = run(config), run(config)
    assert first.totals == second.totals
    assert [t.actions for t in first.ticks] == [t.actions for t in second.ticks]


def test_load_above_capacity_is_scaled_out_after_the_cold_start() -> None:
    result = run(SimConfig(duration_s=300, cold_start_s=30), rps=400)
    ups = [t for t in result.ticks if "set_replicas" in t.actions]
    assert ups, "no scale-out"
    first_up = ups[0].time
    late = [t for t in result.ticks if t.time > first_up + 60]
    assert all(t.dropped_rps == 0 for t in late)
    assert result.totals["dropped"] > 0  # before the new replicas were ready


def test_error_fault_on_a_canary_fails_requests_and_is_rolled_back() -> None:
    fault = ScheduledFault("v2", 60, 1_000, VersionFaults(error_rate=0.5))
    config = SimConfig(duration_s=400, new_versions={60.0: "v2"}, faults=(fault,))
    result = run(config)
    assert result.totals["failed"] > 0
    rollback = [t.time for t in result.ticks if "rollback" in t.actions]
    assert rollback and rollback[0] > 60
    assert result.ticks[-1].traffic == {"v1": 1.0}


def test_healthy_canary_is_promoted() -> None:
    result = run(SimConfig(duration_s=400, new_versions={60.0: "v2"}))
    assert any("promote" in t.actions for t in result.ticks)
    assert result.ticks[-1].traffic == {"v2": 1.0}


def test_extra_latency_fault_shows_in_p99() -> None:
    fault = ScheduledFault("v1", 100, 100, VersionFaults(extra_latency_ms=500))
    result = run(SimConfig(duration_s=300, faults=(fault,)))
    during = [t.p99_ms for t in result.ticks if 110 <= t.time < 190]
    after = [t.p99_ms for t in result.ticks if t.time >= 210]
    assert min(p for p in during if p is not None) > 500
    assert max(p for p in after if p is not None) < 500


def test_metrics_outage_makes_the_controller_hold() -> None:
    outage = MetricsOutage(60, 120)
    result = run(SimConfig(duration_s=300, outages=(outage,)), rps=400)
    during = [t for t in result.ticks if 60 <= t.time < 180]
    assert during and all(not t.actions for t in during)
    held = [d for d in result.decisions if 60 <= d.time < 180]
    assert all(any("metrics outage" in r for r in d.reasons) for d in held)


def test_region_outage_fails_its_share_until_traffic_is_rerouted() -> None:
    grid = Grid(down="eu-west", start=100, end=10_000)
    result = run(SimConfig(duration_s=400), grid=grid)
    assert result.totals["dropped"] > 0
    assert result.ticks[-1].region_weights.get("eu-west", 0.0) == 0.0
    late = [t for t in result.ticks if t.time > 250]
    assert all(t.dropped_rps == 0 for t in late)


@pytest.mark.parametrize("rps", [50.0, 300.0], ids=["light", "heavy"])
def test_requests_are_conserved(rps: float) -> None:
    result = run(SimConfig(duration_s=200), rps=rps)
    totals = result.totals
    assert totals["served"] + totals["failed"] + totals["dropped"] == pytest.approx(
        totals["offered"], rel=1e-9
    )


def test_replicas_never_exceed_the_policy_maximum_when_traffic_moves_regions() -> None:
    grid = Grid(down="eu-west", start=100, end=10_000)
    result = run(SimConfig(duration_s=400), rps=900, grid=grid)
    assert max(sum(t.replicas.values()) for t in result.ticks) <= POLICY.scaling.max_replicas
    assert result.ticks[-1].replicas.get("eu-west", 0) == 0


def test_fluid_and_per_request_fidelities_agree_on_a_short_slice() -> None:
    from statistics import median

    from autoops.sim.baselines import StaticReplicas
    from autoops.sim.traffic import SyntheticTraffic

    traffic = SyntheticTraffic(600.0, peak_rps=200.0, seed=11, burst_rate_per_hour=0.0)
    results = {}
    for fidelity in ("fluid", "request"):
        config = SimConfig(duration_s=600, start_replicas=3, fidelity=fidelity, seed=5)
        results[fidelity] = simulate(POLICY, CATALOGUE, traffic, Grid(), StaticReplicas(), config)
    fluid, request = results["fluid"].totals, results["request"].totals
    assert request["offered"] == pytest.approx(fluid["offered"], rel=0.03)
    assert request["served"] == pytest.approx(fluid["served"], rel=0.03)
    p99 = {
        name: median(t.p99_ms for t in r.ticks if t.p99_ms is not None)
        for name, r in results.items()
    }
    assert p99["request"] == pytest.approx(p99["fluid"], rel=0.3)


def test_per_request_fidelity_heals_a_bad_canary_too() -> None:
    from autoops.sim.traffic import SyntheticTraffic

    fault = ScheduledFault("v2", 60, 1_000, VersionFaults(error_rate=0.5))
    config = SimConfig(
        duration_s=400, new_versions={60.0: "v2"}, faults=(fault,), fidelity="request"
    )
    traffic = SyntheticTraffic(400.0, peak_rps=150.0, seed=2, burst_rate_per_hour=0.0)
    result = simulate(POLICY, CATALOGUE, traffic, Grid(), AutoOps(), config)
    assert any("rollback" in t.actions for t in result.ticks)
    assert result.ticks[-1].traffic == {"v1": 1.0}


class _Idle:
    """A fake controller that never acts."""

    name = "idle"

    def decide(self, ctx: DecisionContext) -> Decision:
        return Decision(time=ctx.now)


def test_a_fleet_that_serves_nothing_violates_its_slo_the_whole_time() -> None:
    """No replica ever starts: every request is dropped, there is no latency to measure, and
    every second of it counts as over the latency SLO (a dropped request never answers)."""
    config = SimConfig(duration_s=120, start_replicas=0)
    result = simulate(POLICY, CATALOGUE, Flat(50.0, 120), Grid(), _Idle(), config)
    assert result.totals["served"] == 0
    assert result.totals["dropped"] > 0
    assert result.totals["slo_violation_minutes"] == pytest.approx(2.0)
