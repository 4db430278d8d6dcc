"""The closed loop on real parts: Ray Serve, a real Prometheus (1 s scrape), the controller.

One stack for the module; each test starts a fresh controller (its own store) on a routing
table it sets, sends bounded loopback load, and waits for the remediation with a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from autoops.adapters.carbon import SignalsSpec
from autoops.adapters.prometheus_server import PrometheusNotInstalledError, find_prometheus
from autoops.adapters.samples import HttpSampleSource
from autoops.contract import RoutingTable, VersionFaults
from autoops.demo.stack import LocalStack, start_stack
from autoops.demo.story import POLICY_FILE, LoadDriver
from autoops.regions.loader import load_catalogue
from autoops.runtime.wiring import Running, RunSettings, build

pytestmark = pytest.mark.integration

REGIONS = ["eu-west", "eu-central"]


def _prometheus_installed() -> bool:
    try:
        find_prometheus()
    except PrometheusNotInstalledError:
        return False
    return True


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    if not _prometheus_installed():
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus)")
    workdir = tmp_path_factory.mktemp("e2e")
    local = start_stack(workdir, {"small-v1": ["eu-west"], "v1": REGIONS, "v2": REGIONS})
    try:
        yield local
    finally:
        local.close()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@dataclass
class Controlled:
    """A controller running in a thread against the module's stack, with load."""

    running: Running
    load: LoadDriver
    thread: threading.Thread

    @property
    def reconciler(self):  # type: ignore[no-untyped-def]
        return self.running.controller.managed[0].reconciler

    def routing(self) -> RoutingTable:
        return self.reconciler.actuator.routing()  # type: ignore[no-any-return]

    def applied_kinds(self) -> list[str]:
        return [
            r.body["action"]["kind"]
            for r in self.running.store.records("demo", kinds=["outcome"])
            if r.body["outcome"] == "updated"
        ]

    def stop(self) -> None:
        self.load.stop()
        self.running.controller.stop()
        self.thread.join(timeout=30)
        self.running.close()


@pytest.fixture
def control(stack: LocalStack, tmp_path: Path) -> Iterator[Callable[[RoutingTable], Controlled]]:
    started: list[Controlled] = []

    def start(table: RoutingTable) -> Controlled:
        settings = RunSettings(
            policies=[POLICY_FILE],
            dashboard_url=stack.dashboard_url,
            metrics=stack.metrics,
            samples=HttpSampleSource(stack.http_url, stack.admin_token),
            signals=SignalsSpec(source="static", regions=tuple(REGIONS)),
            store_path=tmp_path / "autoops.db",
            api_port=None,
            registry_root=stack.registry_root,
        )
        running = build(settings, load_catalogue())
        actuator = running.controller.managed[0].reconciler.actuator
        actuator.write_routing(table)
        thread = threading.Thread(target=running.controller.run, daemon=True)
        load = LoadDriver(stack.http_url, stack.inference_token)
        load.start()
        thread.start()
        controlled = Controlled(running, load, thread)
        started.append(controlled)
        return controlled

    yield start
    for c in started:
        c.stop()


def _table(faults: dict[str, VersionFaults] | None = None) -> RoutingTable:
    return RoutingTable(
        model="digits",
        stable_version="v1",
        weights={"v1": 1.0},
        region_weights={"eu-west": 1.0, "eu-central": 1.0},
        deployments={"small-v1": ["eu-west"], "v1": REGIONS, "v2": REGIONS},
        cascade={"enabled": False, "small_version": "small-v1"},  # type: ignore[arg-type]
        faults=faults or {},
    )


def test_a_canary_returning_errors_is_rolled_back_with_evidence(
    control: Callable[[RoutingTable], Controlled],
) -> None:
    c = control(_table({"v2": VersionFaults(error_rate=0.2)}))
    wait_for(lambda: "rollback" in c.applied_kinds(), 120, "the rollback of v2")
    table = c.routing()
    assert table.weights.get("v2", 0.0) == 0.0
    assert table.stable_version == "v1"
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
    control: Callable[[RoutingTable], Controlled],
) -> None:
    c = control(_table({"v2": VersionFaults(wrong_answer_rate=0.6)}))
    wait_for(lambda: "rollback" in c.applied_kinds(), 120, "the rollback of v2")
    assert c.routing().weights.get("v2", 0.0) == 0.0
    assert c.load.totals.failed == 0  # the defect never showed as an HTTP error


def test_prometheus_stopped_holds_the_controller_and_it_carries_on_when_back(
    stack: LocalStack, control: Callable[[RoutingTable], Controlled]
) -> None:
    assert stack.prometheus is not None
    table = _table().model_copy(update={"deployments": {"small-v1": ["eu-west"], "v1": REGIONS}})
    c = control(table)
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
