"""Make-before-break region moves (autoops.core.moves): traffic waits for ready replicas."""

from __future__ import annotations

from dataclasses import replace

from autoops.core.moves import plan_move
from tests.unit.fakes import CATALOGUE, applied, make_policy, row

POLICY = make_policy(scaling={"predictive": {"horizon_s": 60}})
CENTRAL = {"eu-central": 1.0}


def test_traffic_waits_for_a_cold_region_and_the_old_region_keeps_its_replicas() -> None:
    world = applied(regions={"eu-west": 1.0}, replicas={"eu-west": 2})
    plan = plan_move(POLICY, CATALOGUE, world, CENTRAL, CENTRAL, 2, (), (), 100.0)
    assert not plan.moves
    assert dict(plan.weights) == {"eu-west": 1.0}
    assert plan.replicas == {"eu-west": 2, "eu-central": 2}
    assert plan.warming == (("eu-central", 100.0),)


def test_the_move_goes_on_once_the_cold_start_horizon_has_passed() -> None:
    world = applied(regions={"eu-west": 1.0}, replicas={"eu-west": 2, "eu-central": 2})
    warming = (("eu-central", 100.0),)
    early = plan_move(POLICY, CATALOGUE, world, CENTRAL, CENTRAL, 2, (), warming, 159.0)
    late = plan_move(POLICY, CATALOGUE, world, CENTRAL, CENTRAL, 2, (), warming, 160.0)
    assert not early.moves
    assert early.warming == warming  # the clock is not restarted while replicas are asked
    assert late.moves
    assert late.replicas == {"eu-central": 2}


def test_healthy_replicas_in_the_metrics_decide_over_the_clock() -> None:
    """eu-central already serves 30%; going to 60% needs 2 replicas there, the metrics show 1."""
    world = applied(
        regions={"eu-west": 0.7, "eu-central": 0.3}, replicas={"eu-west": 2, "eu-central": 2}
    )
    step = {"eu-west": 0.4, "eu-central": 0.6}
    one = (replace(row("v1", "eu-central"), healthy_replicas=1),)
    not_ready = plan_move(POLICY, CATALOGUE, world, step, step, 3, one, (), 500.0)
    assert not not_ready.moves
    assert not_ready.replicas["eu-central"] >= 2
    assert not_ready.replicas["eu-west"] == 2  # eu-west keeps what its 70% needs of 3
    two = (row("v1", "eu-central"),)  # healthy_replicas=2
    ready = plan_move(POLICY, CATALOGUE, world, step, step, 3, two, (), 500.0)
    assert ready.moves


def test_without_room_to_run_both_the_move_goes_on_with_its_replicas() -> None:
    policy = make_policy(scaling={"max_replicas": 4})
    world = applied(regions={"eu-west": 1.0}, replicas={"eu-west": 4})
    plan = plan_move(policy, CATALOGUE, world, CENTRAL, CENTRAL, 4, (), (), 100.0)
    assert plan.moves
    assert plan.replicas == {"eu-central": 4}
    assert plan.reason is not None and "no room" in plan.reason


def test_replicas_the_serving_system_reports_running_decide_over_metrics_and_clock() -> None:
    """Live, Serve says which replicas run: a region with none running waits even after the
    cold-start horizon, and one whose replicas run takes traffic at once."""
    world = applied(regions={"eu-west": 1.0}, replicas={"eu-west": 2, "eu-central": 2})
    warming = (("eu-central", 100.0),)
    starting = replace(world, ready_replicas={"eu-west": 2, "eu-central": 0})
    waits = plan_move(POLICY, CATALOGUE, starting, CENTRAL, CENTRAL, 2, (), warming, 500.0)
    assert not waits.moves
    assert dict(waits.weights) == {"eu-west": 1.0}
    running = replace(world, ready_replicas={"eu-west": 2, "eu-central": 2})
    goes = plan_move(POLICY, CATALOGUE, running, CENTRAL, CENTRAL, 2, (), warming, 101.0)
    assert goes.moves
    assert goes.replicas == {"eu-central": 2}
