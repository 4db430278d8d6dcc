"""The control loop with fakes for Serve and metrics, and the real SQLite store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from autoops.core.actuation import apply_actions
from autoops.core.state import Phase
from autoops.model import (
    Action,
    ActionKind,
    AppliedState,
    RegionSignals,
    Rollback,
    VersionMetrics,
)
from autoops.policy.schema import Policy
from autoops.ports import ApplyResult, MetricsQuery, MetricsReading, Outcome
from autoops.runtime.detection import Detection
from autoops.runtime.loop import Reconciler
from autoops.runtime.metrics import ControllerMetrics
from autoops.sim.signals import StaticSignals
from autoops.store.codec import action_to_json
from autoops.store.sqlite import SQLiteStore
from tests.unit.fakes import applied, fake_catalogue, make_policy, row

REGIONS = ("eu-west", "eu-central")
Rows = Callable[[AppliedState], tuple[VersionMetrics, ...]]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1_000.0

    def now(self) -> float:
        return self.t


class FakeActuator:
    """A fake serving system: the core's pure applier over an AppliedState, counting writes."""

    def __init__(self, world: AppliedState) -> None:
        self.world = world
        self.writes: list[Action] = []

    def read_applied(self) -> AppliedState:
        return self.world

    def apply(self, action: Action) -> ApplyResult:
        after = apply_actions(self.world, [action])
        if after == self.world:
            return ApplyResult(action, Outcome.UNCHANGED)
        self.world = after
        self.writes.append(action)
        return ApplyResult(action, Outcome.UPDATED)


class FakeMetrics:
    """Fake metrics: rows computed from the fake world, or an outage when switched off."""

    def __init__(self, actuator: FakeActuator, rows: Rows) -> None:
        self.actuator = actuator
        self.rows = rows
        self.down = False
        self.fail_with: Exception | None = None

    def check(self) -> None:
        return None

    def read(self, query: MetricsQuery, now: float) -> MetricsReading:
        if self.fail_with is not None:
            raise self.fail_with
        if self.down:
            return MetricsReading(outage=True, reason="prometheus unreachable")
        return MetricsReading(metrics=self.rows(self.actuator.world), last_success_at=now)


def healthy(world: AppliedState) -> tuple[VersionMetrics, ...]:
    return tuple(row(v, rate=50 * max(w, 0.01)) for v, w in world.traffic.items())


def bad_canary(world: AppliedState) -> tuple[VersionMetrics, ...]:
    del world
    return (row("v1"), row("v2", errors=0.2, rate=10, count=100))


def make_reconciler(
    tmp_path: Path,
    rows: Rows,
    world: AppliedState | None = None,
    policy: Policy | None = None,
    store: SQLiteStore | None = None,
    actuator: FakeActuator | None = None,
) -> tuple[Reconciler, FakeActuator, FakeMetrics, FakeClock]:
    actuator = actuator or FakeActuator(world or applied(versions=("v1", "v2")))
    metrics = FakeMetrics(actuator, rows)
    clock = FakeClock()
    policy = policy or make_policy()
    reconciler = Reconciler(
        policy=policy,
        catalogue=fake_catalogue(),
        metrics=metrics,
        actuator=actuator,
        signals=StaticSignals({r: RegionSignals(r, healthy=True) for r in REGIONS}),
        store=store or SQLiteStore(tmp_path / "state.db"),
        controller_metrics=ControllerMetrics(),
        detection=Detection(policy),
        clock=clock,
    )
    reconciler.load()
    return reconciler, actuator, metrics, clock


def run(reconciler: Reconciler, clock: FakeClock, ticks: int, step: float = 5.0) -> None:
    for _ in range(ticks):
        reconciler.tick()
        clock.t += step


def test_a_failing_canary_is_rolled_back_with_its_evidence_in_the_audit_log(
    tmp_path: Path,
) -> None:
    reconciler, actuator, _, clock = make_reconciler(tmp_path, bad_canary)
    run(reconciler, clock, 3)
    assert actuator.world.traffic == {"v1": 1.0}
    assert any(isinstance(a, Rollback) for a in actuator.writes)
    records = reconciler.store.records("test")
    intents = [r for r in records if r.kind == "intent"]
    rollback_intent = next(
        r for r in intents if any(a["kind"] == "rollback" for a in r.body["actions"])
    )
    assert rollback_intent.body["reasons"]
    assert rollback_intent.body["evidence"]
    outcomes = [r for r in records if r.kind == "outcome"]
    assert any(o.body["intent_seq"] == rollback_intent.seq for o in outcomes)
    assert reconciler.store.verify().ok


def test_metrics_outage_holds_applies_nothing_and_says_why(tmp_path: Path) -> None:
    reconciler, actuator, metrics, clock = make_reconciler(
        tmp_path, healthy, world=applied(versions=("v1",))
    )
    run(reconciler, clock, 2)
    writes_before = len(actuator.writes)
    metrics.down = True
    run(reconciler, clock, 3)
    assert len(actuator.writes) == writes_before
    status = reconciler.status()
    assert status["metrics_outage"] is True
    assert status["outage_reason"] == "prometheus unreachable"
    assert reconciler.last is not None and reconciler.last.decision is not None
    assert any(a.kind is ActionKind.HOLD for a in reconciler.last.decision.actions)
    metrics.down = False
    run(reconciler, clock, 1)
    assert reconciler.status()["metrics_outage"] is False


def test_a_stage_that_raises_is_logged_and_the_next_pass_carries_on(tmp_path: Path) -> None:
    reconciler, actuator, metrics, clock = make_reconciler(tmp_path, bad_canary)
    metrics.fail_with = RuntimeError("boom")
    report = reconciler.tick()
    assert "observe" in report.stage_errors and "boom" in report.stage_errors["observe"]
    assert actuator.writes == []
    metrics.fail_with = None
    clock.t += 5
    run(reconciler, clock, 3)
    assert actuator.world.traffic == {"v1": 1.0}


def test_dry_run_decides_and_audits_but_applies_nothing(tmp_path: Path) -> None:
    reconciler, actuator, _, clock = make_reconciler(tmp_path, bad_canary)
    reconciler.dry_run = True
    run(reconciler, clock, 3)
    assert actuator.writes == []
    decisions = [r for r in reconciler.store.records("test") if r.kind == "decision"]
    assert decisions and all(d.body["dry_run"] for d in decisions)


def test_an_intent_left_by_a_killed_controller_is_finished_once_on_restart(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    world = applied(versions=("v1", "v2"), traffic={"v1": 0.9, "v2": 0.1})
    # The first controller wrote its intent, then died before applying it.
    intent = store.append(
        "test",
        "dead-controller",
        "intent",
        {"actions": [action_to_json(Rollback("v2", "v1"))], "reasons": ["canary failed"]},
        999.0,
    )
    actuator = FakeActuator(world)
    make_reconciler(tmp_path, healthy, store=store, actuator=actuator)
    assert actuator.world.traffic == {"v1": 1.0}
    assert len(actuator.writes) == 1
    outcomes = [r for r in store.records("test") if r.kind == "outcome"]
    assert [o.body["intent_seq"] for o in outcomes] == [intent.seq]
    assert store.pending_intents("test") == []
    # A third controller finds nothing left to do: nothing is applied twice.
    make_reconciler(tmp_path, healthy, store=store, actuator=actuator)
    assert len(actuator.writes) == 1


def test_state_survives_a_restart_mid_rollout(tmp_path: Path) -> None:
    def canary_ok(world: AppliedState) -> tuple[VersionMetrics, ...]:
        share = world.traffic.get("v2", 0.0)
        return (row("v1", rate=100 * (1 - share)), row("v2", rate=100 * share, count=1000))

    store = SQLiteStore(tmp_path / "state.db")
    first, actuator, _, clock = make_reconciler(tmp_path, canary_ok, store=store)
    run(first, clock, 2)
    phase = first.state.rollout
    assert phase.canary_version == "v2"
    second, _, _, _ = make_reconciler(tmp_path, canary_ok, store=store, actuator=actuator)
    assert second.state.rollout == phase


@pytest.mark.parametrize("paused", [True, False], ids=["paused", "running"])
def test_pause_stops_actions_and_resume_lets_them_through(tmp_path: Path, paused: bool) -> None:
    reconciler, actuator, _, clock = make_reconciler(tmp_path, bad_canary)
    reconciler.paused = paused
    run(reconciler, clock, 3)
    assert (actuator.writes == []) is paused


class Killed(BaseException):
    """The process dying (SIGKILL): nothing after it runs, no stage catches it."""


class DyingActuator(FakeActuator):
    """A fake serving system whose controller dies while applying one kind of action."""

    def __init__(self, world: AppliedState, dies_on: ActionKind) -> None:
        super().__init__(world)
        self.dies_on = dies_on

    def apply(self, action: Action) -> ApplyResult:
        if action.kind is self.dies_on:
            raise Killed
        return super().apply(action)


def canary_erring(world: AppliedState) -> tuple[VersionMetrics, ...]:
    """v2 fails while it serves; like real metrics, it has no row without traffic."""
    share = world.traffic.get("v2", 0.0)
    rows = [row("v1", rate=100 * (1 - share))]
    if share > 0:
        rows.append(row("v2", errors=0.2, rate=100 * share, count=1000))
    return tuple(rows)


def test_a_controller_killed_mid_rollback_resumes_rolled_back_and_never_reroutes_to_the_canary(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    dying = DyingActuator(applied(versions=("v1", "v2")), ActionKind.ROLLBACK)
    first, _, _, clock = make_reconciler(tmp_path, canary_erring, store=store, actuator=dying)
    with pytest.raises(Killed):
        run(first, clock, 10)
    assert dying.world.traffic.get("v2", 0.0) > 0  # killed after the intent, before applying
    assert [r.seq for r in store.pending_intents("test")]

    actuator = FakeActuator(dying.world)
    second, _, _, clock2 = make_reconciler(tmp_path, canary_erring, store=store, actuator=actuator)
    clock2.t = clock.t + 5
    assert actuator.world.traffic == {"v1": 1.0}  # the intent was finished on start
    assert second.state.rollout.phase is Phase.IDLE
    assert "v2" in second.state.rollout.rejected_versions
    run(second, clock2, 5)
    assert actuator.world.traffic == {"v1": 1.0}
    assert [a.kind for a in actuator.writes].count(ActionKind.ROLLBACK) == 1
    assert not any(a.kind is ActionKind.SET_TRAFFIC for a in actuator.writes)
    assert store.pending_intents("test") == []
    assert store.verify().ok
