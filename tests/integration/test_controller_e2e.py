"""The closed loop on real parts: Ray Serve, a real Prometheus (1 s scrape), the controller.

One stack for the module; each test starts a fresh controller (its own store) on a routing
table it sets, sends bounded loopback load, and waits for the remediation with a deadline.
"""

from __future__ import annotations

import pytest

from autoops.contract import VersionFaults
from autoops.demo.stack import LocalStack
from tests.integration import e2e
from tests.integration.e2e import REGIONS, StartControl, table, wait_for

pytestmark = pytest.mark.integration

stack = e2e.stack
control = e2e.control


def test_a_canary_returning_errors_is_rolled_back_with_evidence(
    control: StartControl,
) -> None:
    c = control(table({"v2": VersionFaults(error_rate=0.2)}))
    wait_for(lambda: "rollback" in c.applied_kinds(), 120, "the rollback of v2")
    routing = c.routing()
    assert routing.weights.get("v2", 0.0) == 0.0
    assert routing.stable_version == "v1"
    intents = [
        r
        for r in c.running.store.records("demo", kinds=["intent"])
        if any(a["kind"] == "rollback" for a in r.body["actions"])
    ]
    assert intents, "the rollback's intent is in the audit log"
    evidence = intents[0].body["evidence"]
    assert any("error" in key for key in evidence), evidence
    assert c.running.store.verify().ok


def test_a_canary_answering_wrongly_fast_and_200_ok_is_rolled_back(
    control: StartControl,
) -> None:
    c = control(table({"v2": VersionFaults(wrong_answer_rate=0.6)}))
    wait_for(lambda: "rollback" in c.applied_kinds(), 120, "the rollback of v2")
    assert c.routing().weights.get("v2", 0.0) == 0.0
    assert c.load.totals.failed == 0  # the defect never showed as an HTTP error


def test_prometheus_stopped_holds_the_controller_and_it_carries_on_when_back(
    stack: LocalStack, control: StartControl
) -> None:
    assert stack.prometheus is not None
    routing = table().model_copy(update={"deployments": {"small-v1": ["eu-west"], "v1": REGIONS}})
    c = control(routing)
    wait_for(lambda: c.reconciler.last_reading is not None, 60, "a first metrics read")
    stack.prometheus.stop()
    try:
        wait_for(lambda: c.reconciler.status()["metrics_outage"] is True, 60, "an outage state")
        outcomes_before = len(c.running.store.records("demo", kinds=["outcome"]))
        status = c.reconciler.status()
        assert status["outage_reason"]
        # Holding: several passes, no action applied on missing data.
        ticks = c.reconciler.last.reconcile_id
        wait_for(lambda: c.reconciler.last.reconcile_id != ticks, 30, "another pass")
        assert len(c.running.store.records("demo", kinds=["outcome"])) == outcomes_before
    finally:
        stack.prometheus.start()
    wait_for(lambda: c.reconciler.status()["metrics_outage"] is False, 90, "metrics to return")
