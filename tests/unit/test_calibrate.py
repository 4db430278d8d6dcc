"""Calibration: the fit recovers known parameters, ignores bad passes, and the comparison
replays a recording through the simulator (no Ray)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from autoops.calibrate_commands import calibrate_command
from autoops.core.state import ControllerState, DecisionContext
from autoops.model import (
    Action,
    AppliedState,
    Decision,
    RegionSignals,
    SetReplicas,
    Snapshot,
    VersionMetrics,
)
from autoops.policy.loader import load_policy
from autoops.policy.schema import Policy
from autoops.regions.loader import load_catalogue
from autoops.runtime.record import Recorder
from autoops.sim.calibrate import CalibrationError, compare, fit
from autoops.sim.incident import SERVICE_S as INCIDENT_SERVICE_S
from autoops.sim.queueing import P99_OF_MEAN, pool_load
from autoops.sim.replay import RecordedPass, read_recording
from tests.unit.recordings import POLICY, alert_only_policy, record_incident

TICK_S = 2.0
SLOTS = 4


# --------------------------------------------------------------------------- a known world


@dataclass(frozen=True)
class World:
    """A recorded world whose latency follows the simulator's queueing model exactly."""

    service_s: float = 0.025
    cold_start_s: float = 13.0
    duration_s: float = 400.0
    scale_ups: tuple[tuple[float, int], ...] = ((100.0, 4), (250.0, 6))
    """(time decided, new replica target) in eu-west."""
    start_replicas: int = 2
    p99_factor: float = 1.0
    """Recorded p99 = this x the model's p99 (1: the model is right)."""
    noise: float = 0.03
    """Relative noise on the observed rate and in-flight requests."""

    def rate(self, t: float) -> float:
        return 60.0 + 240.0 * t / self.duration_s


def _target_and_healthy(world: World, t: float) -> tuple[int, int]:
    target = healthy = world.start_replicas
    for at, n in world.scale_ups:
        if t > at:
            target = n
        if t >= at + world.cold_start_s:
            healthy = n
    return target, healthy


def _signals() -> tuple[RegionSignals, ...]:
    carbon = {"eu-west": 50.0, "eu-central": 400.0, "ca-central": 400.0}
    return tuple(RegionSignals(r, c, 80.0, True) for r, c in carbon.items())


def _row(world: World, t: float, rng: random.Random, healthy: int) -> VersionMetrics:
    true_rate = world.rate(t)
    pool = pool_load(true_rate, healthy, world.service_s, SLOTS)
    return VersionMetrics(
        deployment="classifier",
        version="v1",
        region="eu-west",
        request_rate=true_rate * (1 + rng.gauss(0, world.noise)),
        error_ratio=0.001,
        latency_p50_ms=math.log(2) * pool.mean_s * 1000,
        latency_p95_ms=3.0 * pool.mean_s * 1000,
        latency_p99_ms=world.p99_factor * pool.p99_s * 1000,
        ongoing_requests=pool.in_flight * (1 + rng.gauss(0, world.noise)),
        healthy_replicas=healthy,
        accuracy=0.95,
        request_count=true_rate * 30,
    )


def _snapshot(t: float, replicas: int, rows: tuple[VersionMetrics, ...]) -> Snapshot:
    applied = AppliedState(("v1",), {"v1": 1.0}, {"eu-west": 1.0}, {"eu-west": replicas})
    return Snapshot(t, "digits", "classifier", applied, rows, _signals(), last_metrics_at=t)


def _world_passes(world: World) -> Iterator[tuple[float, Snapshot, tuple[Action, ...]]]:
    rng = random.Random(7)
    t = 0.0
    while t <= world.duration_s:
        target, healthy = _target_and_healthy(world, t)
        rows = (_row(world, t, rng, healthy),)
        actions = tuple(
            SetReplicas({"eu-west": n}) for at, n in world.scale_ups if abs(t - at) < 1e-9
        )
        yield t, _snapshot(t, target, rows), actions
        t += TICK_S


def _junk(world: World, t: float) -> Iterator[Snapshot]:
    """Passes the fit must ignore: an outage, NaN, missing values, too little traffic."""
    target, _ = _target_and_healthy(world, t)
    liar = VersionMetrics(
        "classifier", "v1", "eu-west", request_rate=300.0, ongoing_requests=9e3,
        latency_p50_ms=9e4, latency_p99_ms=9e5, healthy_replicas=99,
    )  # fmt: skip
    outage = replace(_snapshot(t, target, (liar,)), metrics_outage=True, outage_reason="down")
    nan = float("nan")
    broken = (
        VersionMetrics("classifier", "v1", "eu-west", request_rate=nan, ongoing_requests=5.0),
        VersionMetrics(
            "classifier", "v1", "eu-west", request_rate=100.0, ongoing_requests=nan,
            latency_p50_ms=nan, latency_p99_ms=float("inf"),
        ),
        VersionMetrics("classifier", "v1", "eu-west", request_rate=100.0),
        VersionMetrics(
            "classifier", "v1", "eu-west", request_rate=0.1, ongoing_requests=50.0,
            latency_p50_ms=5e5, latency_p99_ms=5e6,
        ),
    )  # fmt: skip
    yield outage
    yield _snapshot(t, target, broken)


def _record(
    path: Path,
    passes: list[tuple[float, Snapshot, tuple[Action, ...]]],
    policy: Policy | None = None,
) -> Path:
    policy = policy or load_policy(POLICY)
    catalogue = load_catalogue()
    recorder = Recorder(path)
    try:
        for t, snapshot, actions in sorted(passes, key=lambda p: p[0]):
            ctx = DecisionContext(t, policy, snapshot, ControllerState(), catalogue)
            recorder(ctx, Decision(t, actions))
    finally:
        recorder.close()
    return path


def _recorded(tmp_path: Path, world: World, with_junk: bool = False) -> list[RecordedPass]:
    passes = list(_world_passes(world))
    if with_junk:
        # right after each scale-up (where a false "healthy" would cut the cold start short)
        # and through the run
        for t in [at + 1.0 for at, _ in world.scale_ups] + [7.0, 151.0, 333.0]:
            passes.extend((t, snap, ()) for snap in _junk(world, t))
    name = f"world-{len(passes)}-{world.p99_factor}-{len(world.scale_ups)}.jsonl"
    return read_recording(_record(tmp_path / name, passes))


# --------------------------------------------------------------------------- the fit


def test_the_fit_recovers_a_known_service_time_and_cold_start(tmp_path: Path) -> None:
    world = World()
    calibration = fit(_recorded(tmp_path, world), replica_slots=SLOTS)
    # tolerance: 3% on the service time (3% noise per point, median over ~200 points)
    assert calibration.service_s.value == pytest.approx(world.service_s, rel=0.03)
    assert calibration.service_s.method == "littles_law"
    assert calibration.service_s.points == len(list(_world_passes(world)))
    assert calibration.service_s_p50.value == pytest.approx(world.service_s, rel=0.03)
    # tolerance: half a pass interval on the cold start (readiness is seen once per pass)
    assert calibration.cold_start_s.value is not None
    assert abs(calibration.cold_start_s.value - world.cold_start_s) <= TICK_S / 2
    assert calibration.cold_start_s.points == len(world.scale_ups)
    assert [(c.from_replicas, c.to_replicas) for c in calibration.cold_starts] == [(2, 4), (4, 6)]
    assert calibration.censored_scale_ups == 0
    fitted = calibration.p99_fit()
    assert fitted["points"] == calibration.service_s.points
    assert fitted["median_abs"] is not None and fitted["median_abs"] < 0.05


def test_a_wrong_tail_shows_in_the_per_pass_p99_error(tmp_path: Path) -> None:
    calibration = fit(_recorded(tmp_path, World(p99_factor=2.0)), replica_slots=SLOTS)
    fitted = calibration.p99_fit()
    # the recorded p99 is twice the model's: the model is about 50% low on every pass
    assert fitted["bias"] == pytest.approx(-0.5, abs=0.05)
    assert fitted["median_abs"] == pytest.approx(0.5, abs=0.05)
    assert all(e.relative < -0.4 for e in calibration.p99)


def test_outage_nan_missing_and_idle_passes_are_ignored(tmp_path: Path) -> None:
    world = World()
    clean = fit(_recorded(tmp_path, world), replica_slots=SLOTS)
    dirty_passes = _recorded(tmp_path, world, with_junk=True)
    assert sum(p.snapshot.metrics_outage for p in dirty_passes) == 5
    dirty = fit(dirty_passes, replica_slots=SLOTS)
    assert dirty.service_s == clean.service_s
    assert dirty.service_s_p50 == clean.service_s_p50
    assert dirty.cold_start_s == clean.cold_start_s
    assert dirty.p99 == clean.p99
    assert dirty.outage_passes == 5


def test_cold_start_is_none_without_a_scale_up(tmp_path: Path) -> None:
    calibration = fit(_recorded(tmp_path, World(scale_ups=())), replica_slots=SLOTS)
    assert calibration.cold_start_s.value is None
    assert calibration.cold_start_s.points == 0
    assert calibration.censored_scale_ups == 0
    assert calibration.service_s.value is not None


def test_a_scale_up_still_short_at_the_end_is_censored(tmp_path: Path) -> None:
    world = World(scale_ups=((396.0, 4),), cold_start_s=30.0)
    calibration = fit(_recorded(tmp_path, world), replica_slots=SLOTS)
    assert calibration.cold_start_s.value is None
    assert calibration.censored_scale_ups == 1


def test_the_fit_refuses_an_empty_recording() -> None:
    with pytest.raises(CalibrationError, match="no pass"):
        fit([])


# --------------------------------------------------------------------------- the comparison


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dry run's synthetic incident, recorded live-style."""
    return record_incident(tmp_path_factory.mktemp("rec") / "recording.jsonl")


def test_the_fit_of_the_dry_run_incident_is_near_its_service_time(incident: Path) -> None:
    calibration = fit(read_recording(incident))
    # tolerance 15%: the dry run queues on one replica's slots, the simulator on every
    # replica's, so its latency at load reads as a slightly slower service
    assert calibration.service_s.value == pytest.approx(INCIDENT_SERVICE_S, rel=0.15)
    assert calibration.cold_start_s.points > 0  # it scaled up during the ramp


def test_compare_times_the_recorded_and_simulated_rollback(incident: Path) -> None:
    passes = read_recording(incident)
    policy = load_policy(POLICY)
    comparison = compare(passes, fit(passes), policy, load_catalogue())
    recorded, simulated = comparison.recorded_rollback, comparison.predicted_rollback
    assert recorded is not None and simulated is not None
    assert (recorded.from_version, recorded.to_version) == ("v2", "v1")
    assert (simulated.from_version, simulated.to_version) == ("v2", "v1")
    assert recorded.seconds is not None and recorded.seconds >= 0
    assert recorded.failing_at is not None and recorded.failing_at <= recorded.rollback_at
    # the same policy over the canary's inferred fault: within two passes of the recording
    assert simulated.seconds is not None
    assert abs(simulated.seconds - recorded.seconds) <= 2 * policy.tick_interval_s
    canary_faults = [f for f in comparison.faults if f.version == "v2"]
    assert canary_faults and all(f.wrong_answer_rate > 0.2 for f in canary_faults)
    assert comparison.recorded_p99.points > 0 and comparison.predicted_p99.points > 0


def test_compare_runs_the_given_policy_not_the_recorded_one(incident: Path, tmp_path: Path) -> None:
    passes = read_recording(incident)
    comparison = compare(passes, fit(passes), load_policy(alert_only_policy(tmp_path)))
    assert comparison.recorded_rollback is not None
    assert comparison.predicted_rollback is None
    assert any("alert-only" in note for note in comparison.notes)


def test_compare_reproduces_the_p99_of_a_world_built_on_its_own_model(tmp_path: Path) -> None:
    passes = _recorded(tmp_path, World())
    comparison = compare(passes, fit(passes, replica_slots=SLOTS), load_policy(POLICY))
    assert comparison.recorded_rollback is None and comparison.predicted_rollback is None
    rec, sim = comparison.recorded_p99.median_ms, comparison.predicted_p99.median_ms
    assert rec is not None and sim is not None
    assert sim == pytest.approx(rec, rel=0.10)  # tolerance 10%: its own scaling decisions
    assert rec > P99_OF_MEAN * World().service_s * 1000 * 0.9


def test_compare_refuses_a_recording_without_any_request_rate(tmp_path: Path) -> None:
    down = replace(_snapshot(0.0, 2, ()), metrics_outage=True)
    passes = read_recording(
        _record(tmp_path / "down.jsonl", [(t, replace(down, time=t), ()) for t in (0.0, 2.0)])
    )
    with pytest.raises(CalibrationError, match="no pass shows a request rate"):
        compare(passes, fit(passes), load_policy(POLICY))


# --------------------------------------------------------------------------- the command


def _cli() -> Callable[[list[str]], tuple[int, str]]:
    app = typer.Typer()
    app.command("calibrate")(calibrate_command)
    app.command("other")(lambda: None)  # two commands, so "calibrate" is a subcommand
    runner = CliRunner()

    def invoke(args: list[str]) -> tuple[int, str]:
        result = runner.invoke(app, ["calibrate", *args])
        return result.exit_code, result.output

    return invoke


def test_the_command_prints_the_fit_and_the_comparison(incident: Path) -> None:
    code, out = _cli()([str(incident), "--policy", str(POLICY), "--json"])
    assert code == 0, out
    data = json.loads(out)
    assert data["calibration"]["service_s"]["points"] > 0
    assert data["comparison"]["recorded_rollback"]["from_version"] == "v2"
    code, out = _cli()([str(incident), "--policy", str(POLICY)])
    assert code == 0, out
    assert "time to rollback" in out and "service time" in out


def test_the_command_exits_1_naming_a_bad_recording_or_policy(
    incident: Path, tmp_path: Path
) -> None:
    invoke = _cli()
    code, out = invoke([str(tmp_path / "nope.jsonl"), "--policy", str(POLICY)])
    assert code == 1 and "nope.jsonl" in out
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text("{not json\n", encoding="utf-8")
    code, out = invoke([str(garbled), "--policy", str(POLICY)])
    assert code == 1 and "garbled.jsonl:1: not JSON" in out
    code, out = invoke([str(incident), "--policy", str(tmp_path / "missing-policy.yaml")])
    assert code == 1 and "missing-policy.yaml" in out
    invalid = tmp_path / "invalid-policy.yaml"
    invalid.write_text("apiVersion: autoops/v1\nkind: Policy\nmetadata: {name: x}\n", "utf-8")
    code, out = invoke([str(incident), "--policy", str(invalid)])
    assert code == 1 and "invalid-policy.yaml" in out and len(out.strip().splitlines()) == 1
    down = replace(_snapshot(0.0, 2, ()), metrics_outage=True)
    silent = _record(tmp_path / "silent.jsonl", [(0.0, down, ())])
    code, out = invoke([str(silent), "--policy", str(POLICY)])
    assert code == 1 and "silent.jsonl" in out and "request rate" in out
