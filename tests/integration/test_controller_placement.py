"""Scaling and placement closed on real parts: Ray Serve, a real Prometheus, the controller.

A load spike is met by scaling out within the policy's maximum and in again after the
stabilisation window, without flapping; a carbon spike moves traffic and replicas to the other
allowed region, never to a cleaner region outside the compliance boundary; a region failing
during a canary is routed around while the canary carries on to its promotion.

The module's stack adds a third region (ca-central) that is deployed and the cleanest of all,
but that no policy here allows, so "never outside the boundary" has something to refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from autoops.adapters.carbon import SignalsSpec, write_overrides
from autoops.adapters.serve_config import replica_counts, routing_table
from autoops.contract import RoutingTable, VersionFaults
from autoops.core.state import Phase
from autoops.demo.stack import LocalStack, start_stack
from autoops.demo.story import BASE_RATE
from tests.integration import e2e
from tests.integration.e2e import (
    Controlled,
    StartControl,
    compressed_policy,
    wait_for,
)

pytestmark = pytest.mark.integration

control = e2e.control

WEST, CENTRAL, CLEAN = "eu-west", "eu-central", "ca-central"
"""Two allowed regions, and a deployed, cleaner one that the policies leave out."""
DEPLOYMENTS = {"v1": [WEST, CENTRAL, CLEAN], "v2": [WEST, CENTRAL]}
"""Six model replicas and the ingress: kept small for 2 busy cores."""
SIGNAL_REGIONS = (WEST, CENTRAL, CLEAN)
STABLE_ONLY = {"v1": DEPLOYMENTS["v1"]}
"""The routing table's deployments when no canary should start (v2 stays unknown to it)."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One live stack with the third, disallowed region, shared by the module's tests."""
    if not e2e.prometheus_installed():
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus)")
    local = start_stack(tmp_path_factory.mktemp("placement"), DEPLOYMENTS)
    try:
        yield local
    finally:
        local.close()


def routing(
    region_weights: Mapping[str, float],
    deployments: Mapping[str, list[str]] = STABLE_ONLY,
    faults: Mapping[str, VersionFaults] | None = None,
) -> RoutingTable:
    """A routing table on the module stack: v1 stable at 100%, no cascade."""
    return RoutingTable(
        model="digits",
        stable_version="v1",
        weights={"v1": 1.0},
        region_weights=dict(region_weights),
        deployments={v: list(r) for v, r in deployments.items()},
        faults=dict(faults or {}),
    )


def serve_replicas(c: Controlled) -> dict[tuple[str, str], int]:
    """num_replicas Serve holds now for each deployed (version, region)."""
    actuator: Any = c.reconciler.actuator
    details = actuator.client.details()
    table = routing_table(details, actuator.application)
    return replica_counts(details, actuator.application, table)


def applied_actions(c: Controlled, kind: str) -> list[tuple[float, Mapping[str, Any]]]:
    """(record time, action) of every applied (outcome ``updated``) action of ``kind``."""
    return [
        (r.time, r.body["action"])
        for r in c.running.store.records(c.policy_name, kinds=["outcome"])
        if r.body["outcome"] == "updated" and r.body["action"]["kind"] == kind
    ]


def decided_actions(c: Controlled, kind: str) -> list[Mapping[str, Any]]:
    """Every action of ``kind`` the controller wrote ahead (its intents), applied or not."""
    return [
        a
        for r in c.running.store.records(c.policy_name, kinds=["intent"])
        for a in r.body["actions"]
        if a["kind"] == kind
    ]


def set_faults(c: Controlled, faults: Mapping[str, VersionFaults]) -> None:
    """Replace the injected faults in the routing table Serve holds (nothing else changes)."""
    actuator: Any = c.reconciler.actuator
    actuator.write_routing(actuator.routing().model_copy(update={"faults": dict(faults)}))


def ran_through(c: Controlled, since: float, seconds: float) -> Callable[[], bool]:
    """A condition: the controller has run a pass ``seconds`` after ``since`` (its clock)."""

    def done() -> bool:
        last = c.reconciler.last
        return last is not None and last.time >= since + seconds

    return done


def watch(c: Controlled, seen: list[Any], condition: Callable[[Any], bool]) -> Callable[[], bool]:
    """A condition on the applied state that also keeps every state it saw in ``seen``."""

    def check() -> bool:
        applied = c.applied()
        seen.append(applied)
        return condition(applied)

    return check


def trace_scaling(c: Controlled) -> None:
    """Print one line per pass (load per pair, replicas, actions): shown when a test fails."""

    def record(*args: Any) -> None:
        decision = args[-1]  # the recorder's other arguments are the pass's inputs
        snapshot = getattr(args[0], "snapshot", args[0])
        in_flight = {f"{r.version}@{r.region}": r.ongoing_requests for r in snapshot.metrics}
        kinds = ",".join(a.kind.value for a in decision.actions)
        scaling = [r for r in decision.reasons if r.startswith("scaling")]
        replicas = decision.evidence.get("replicas")
        print(f"{decision.time:.1f} in_flight={in_flight} replicas={replicas} [{kinds}] {scaling}")

    c.reconciler.recorder = record


def unimodal(totals: list[int]) -> bool:
    """True when the sequence only rises, then only falls (no down-then-up anywhere)."""
    fell = False
    for before, after in pairwise(totals):
        if after < before:
            fell = True
        elif after > before and fell:
            return False
    return True


# --------------------------------------------------------------------------- (d) scaling


def test_a_load_spike_scales_out_within_the_maximum_and_back_in_without_flapping(
    control: StartControl, tmp_path: Path
) -> None:
    settle_s = 10.0
    policy = compressed_policy(tmp_path, scaling={"downscale_stabilization_s": settle_s})
    c = control(routing({WEST: 1.0}), policy=policy)
    max_replicas = c.reconciler.policy.scaling.max_replicas
    trace_scaling(c)
    wait_for(lambda: c.reconciler.last_reading is not None, 60, "a first metrics read")
    assert sum(c.applied().replicas.values()) == 1

    # The spike: four times the requests, each 150 ms heavier, so the load needs replicas
    # (about 7 in flight at a target of 2 each: the policy's maximum of 4, just under the band).
    set_faults(c, {"v1": VersionFaults(extra_latency_ms=150)})
    c.load.rate = BASE_RATE * 4
    seen: list[Any] = []
    wait_for(
        watch(c, seen, lambda a: sum(a.replicas.values()) >= max_replicas),
        150,
        f"a scale-out to {max_replicas} replicas",
    )
    peak_at = c.reconciler.last.time
    # Steady spike for twice the downscale window: a flapping rule would scale in here.
    wait_for(ran_through(c, peak_at, 2 * settle_s), 90, "passes through the steady spike")

    set_faults(c, {})
    c.load.rate = BASE_RATE
    spike_end = c.reconciler.last.time
    wait_for(
        watch(c, seen, lambda a: sum(a.replicas.values()) == 1), 150, "a scale-in to 1 replica"
    )
    low_at = c.reconciler.last.time
    wait_for(ran_through(c, low_at, 2 * settle_s), 90, "passes through the steady low load")

    assert max(sum(a.replicas.values()) for a in seen) <= max_replicas
    assert serve_replicas(c)[("v1", WEST)] == 1
    scaled = applied_actions(c, "set_replicas")
    totals = [1] + [sum(a["replicas"].values()) for _, a in scaled]
    assert max(totals) == max_replicas, totals
    assert all(t <= max_replicas for t in totals), totals
    assert unimodal(totals), f"replica targets flapped: {totals}"
    assert totals[-1] == 1, totals
    downs = [t for i, (t, _) in enumerate(scaled) if totals[i + 1] < totals[i]]
    assert downs[0] >= spike_end + settle_s, "scaled in before the stabilisation window"
    assert c.running.store.verify().ok


# --------------------------------------------------------------------------- (g) carbon


def test_a_carbon_spike_moves_traffic_and_replicas_to_the_other_allowed_region_only(
    control: StartControl, tmp_path: Path
) -> None:
    overrides = tmp_path / "signals.yaml"
    # ca-central is the cleanest grid of the three, but the policy does not allow it.
    write_overrides(
        overrides,
        {
            WEST: {"carbon_intensity": 120.0, "healthy": True},
            CENTRAL: {"carbon_intensity": 60.0, "healthy": True},
            CLEAN: {"carbon_intensity": 20.0, "healthy": True},
        },
    )
    policy = compressed_policy(tmp_path, scaling={"min_replicas": 2})
    signals = SignalsSpec(source="static", regions=SIGNAL_REGIONS, override_file=overrides)
    c = control(routing({WEST: 1.0, CENTRAL: 1.0, CLEAN: 0.0}), policy=policy, signals=signals)
    seen: list[Any] = []

    # First the cleanest allowed region takes the traffic, and the replicas follow it.
    wait_for(
        watch(c, seen, lambda a: a.region_weights.get(CENTRAL, 0.0) > 0.99),
        90,
        f"traffic on {CENTRAL}",
    )
    wait_for(lambda: serve_replicas(c)[("v1", CENTRAL)] == 2, 60, f"2 replicas in {CENTRAL}")

    write_overrides(
        overrides,
        {
            WEST: {"carbon_intensity": 120.0, "healthy": True},
            CENTRAL: {"carbon_intensity": 650.0, "healthy": True},
            CLEAN: {"carbon_intensity": 20.0, "healthy": True},
        },
    )
    wait_for(
        watch(c, seen, lambda a: a.region_weights.get(WEST, 0.0) > 0.99),
        90,
        f"traffic moved to {WEST}",
    )
    wait_for(
        lambda: serve_replicas(c)[("v1", WEST)] == 2 and serve_replicas(c)[("v1", CENTRAL)] == 1,
        60,
        f"the replicas moved to {WEST} ({CENTRAL} keeps its one warm replica)",
    )

    assert all(a.region_weights.get(CLEAN, 0.0) == 0.0 for a in seen)
    assert all(a.replicas.get(CLEAN, 0) == 0 for a in seen)
    assert serve_replicas(c)[("v1", CLEAN)] == 1  # the floor it started with, never raised
    assert c.routing().region_weights.get(CLEAN, 0.0) == 0.0
    for action in decided_actions(c, "set_region_weights"):
        assert action["weights"].get(CLEAN, 0.0) == 0.0, action
    for action in decided_actions(c, "set_replicas"):
        assert action["replicas"].get(CLEAN, 0) == 0, action
    moves = [a["weights"] for _, a in applied_actions(c, "set_region_weights")]
    assert moves and moves[-1].get(WEST, 0.0) > 0.99, moves
    assert any(w.get(CENTRAL, 0.0) > 0.99 for w in moves[:-1]), moves
    assert c.running.store.verify().ok


# --------------------------------------------------------------------------- (h) region failure


def test_a_region_failing_during_a_canary_is_routed_around_and_the_canary_goes_on(
    control: StartControl, tmp_path: Path
) -> None:
    overrides = tmp_path / "signals.yaml"
    write_overrides(overrides, {WEST: {"healthy": True}, CENTRAL: {"healthy": True}})
    # Several steps, each long enough to see the region fail while the canary is under way.
    # The canary is judged on errors and accuracy here: the p99 of a few dozen requests on 2
    # shared cores is one scheduling stall, and this test is about the region, not latency.
    # Neither the relative limit nor the SLO may turn such a stall into a failed check (the
    # reroute starts replicas in the surviving region: a run saw the canary's p99 at 396 ms
    # against stable's 200 ms over its few requests, and rolled it back).
    policy = compressed_policy(
        tmp_path,
        rollout={"steps": [30, 40, 50], "analysis_interval_s": 8, "max_latency_increase": 9.0},
        slo={"latency_p99_ms": 5000},
    )
    signals = SignalsSpec(source="static", regions=SIGNAL_REGIONS, override_file=overrides)
    c = control(
        routing({WEST: 1.0, CENTRAL: 1.0}, deployments=DEPLOYMENTS), policy=policy, signals=signals
    )
    wait_for(
        lambda: (
            c.reconciler.state.rollout.phase is Phase.PROGRESSING
            and c.applied().traffic.get("v2", 0.0) > 0.0
            and c.applied().region_weights.get(CENTRAL, 0.0) > 0.0
        ),
        90,
        f"the canary of v2 serving traffic, with {CENTRAL} taking some of it",
    )

    write_overrides(overrides, {WEST: {"healthy": True}, CENTRAL: {"healthy": False}})
    wait_for(
        lambda: c.applied().region_weights.get(CENTRAL, 0.0) == 0.0,
        60,
        f"traffic rerouted away from {CENTRAL}",
    )
    c.settle()  # Serve shows the new weights before the pass records its outcome
    rerouted_seq = max(
        r.seq
        for r in c.running.store.records(c.policy_name, kinds=["outcome"])
        if r.body["action"]["kind"] == "set_region_weights" and r.body["outcome"] == "updated"
    )
    assert c.applied().region_weights.get(WEST, 0.0) > 0.99

    wait_for(lambda: "promote" in c.applied_kinds(), 150, "the canary's promotion")
    assert "rollback" not in c.applied_kinds()
    c.settle()
    rollout = c.reconciler.state.rollout
    assert rollout.stable_version == "v2"
    assert "v2" not in rollout.rejected_versions
    promoted_seq = next(
        r.seq
        for r in c.running.store.records(c.policy_name, kinds=["outcome"])
        if r.body["action"]["kind"] == "promote"
    )
    assert rerouted_seq < promoted_seq, "the region failed while the canary was under way"
    reroute_reasons = [
        reason
        for r in c.running.store.records(c.policy_name, kinds=["intent"])
        if any(a["kind"] == "set_region_weights" for a in r.body["actions"])
        for reason in r.body["reasons"]
    ]
    assert any(f"rerouting away from {CENTRAL}" in reason for reason in reroute_reasons)
    # The canary was judged on the healthy region only, from the failure on.
    judged = [
        r.body["evidence"]
        for r in c.running.store.records(c.policy_name, kinds=["intent"])
        if rerouted_seq < r.seq < promoted_seq
    ]
    assert judged and all(e.get("excluded_regions") == CENTRAL for e in judged), judged
    assert c.running.store.verify().ok
