"""What the closed-loop e2e modules share: the live stack, a controller in a thread, load, polls.

A module imports the ``stack`` and ``control`` fixtures from here (one stack per module: Ray,
Serve with the digits apps, a real Prometheus at a 1 s scrape) and starts a fresh controller,
with its own store, per test, on a routing table the test sets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoops.adapters.carbon import SignalsSpec
from autoops.adapters.prometheus_server import PrometheusNotInstalledError, find_prometheus
from autoops.contract import RoutingTable, VersionFaults
from autoops.demo.controlled import StackController
from autoops.demo.stack import LocalStack, start_stack
from autoops.demo.story import POLICY_FILE, LoadDriver
from autoops.runtime.wiring import Running

REGIONS = ["eu-west", "eu-central"]
DEPLOYMENTS = {"small-v1": ["eu-west"], "v1": REGIONS, "v2": REGIONS}
"""The module stack: the cascade's small model, the stable v1 and the candidate v2."""


def prometheus_installed() -> bool:
    """True when the prometheus binary can be found."""
    try:
        find_prometheus()
    except PrometheusNotInstalledError:
        return False
    return True


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One live stack with a real Prometheus, shared by the tests of one module."""
    if not prometheus_installed():
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus)")
    workdir = tmp_path_factory.mktemp("e2e")
    local = start_stack(workdir, DEPLOYMENTS)
    try:
        yield local
    finally:
        local.close()


def wait_for(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    explain: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition`` every 0.5 s until it holds; fail naming ``what`` at the deadline,
    with what ``explain`` says then (e.g. the controller's last reasons)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    message = f"timed out after {timeout_s:.0f} s waiting for {what}"
    if explain is not None:
        message += f"; {explain()}"
    raise AssertionError(message)


def compressed_policy(tmp_dir: Path, **sections: dict[str, Any]) -> Path:
    """The demo policy with ``sections`` merged in (e.g. ``rollout={"steps": [50]}``)."""
    data = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = tmp_dir / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Controlled:
    """A controller running in a thread against the module's stack, with load."""

    controller: StackController
    load: LoadDriver
    stopped: bool = field(default=False)

    @property
    def running(self) -> Running:
        """What the controller was built with (its store, its loop)."""
        return self.controller.running

    @property
    def policy_name(self) -> str:
        """The policy's name: the key of its records in the store."""
        return self.controller.policy_name

    @property
    def reconciler(self) -> Any:
        """The one policy's reconciler."""
        return self.controller.reconciler

    def routing(self) -> RoutingTable:
        """The routing table Serve holds now."""
        return self.reconciler.actuator.routing()  # type: ignore[no-any-return]

    def applied(self) -> Any:
        """The applied state (traffic, replicas, region weights) Serve holds now."""
        return self.reconciler.actuator.read_applied()

    def outcomes(self) -> list[Mapping[str, Any]]:
        """Every outcome record's body, in order."""
        return [r.body for r in self.running.store.records(self.policy_name, kinds=["outcome"])]

    def applied_kinds(self) -> list[str]:
        """The kinds of the actions applied (outcome ``updated``), in order."""
        return [b["action"]["kind"] for b in self.outcomes() if b["outcome"] == "updated"]

    def settle(self, timeout_s: float = 60.0) -> None:
        """Wait for a pass that begins after now to end: the state then holds every action
        already recorded (a pass writes its outcome records before it saves its state)."""
        began = time.time()

        def later_pass_done() -> bool:
            report = self.reconciler.last
            return report is not None and report.time >= began

        wait_for(later_pass_done, timeout_s, "the controller's next pass")

    def last_reasons(self) -> str:
        """The last pass's reasons and canary/rollout evidence, for a failure message."""
        report = self.reconciler.last
        decision = getattr(report, "decision", None)
        if decision is None:
            return f"last pass: no decision ({getattr(report, 'error', None)})"
        evidence = {
            k: v
            for k, v in decision.evidence.items()
            if k.startswith(("canary.", "baseline.", "rollout.", "scaling."))
        }
        return f"last pass: reasons={list(decision.reasons)} evidence={evidence}"

    def stop(self) -> None:
        """Stop the load and the controller, and close what it holds; safe to call twice."""
        if self.stopped:
            return
        self.stopped = True
        self.load.stop()
        self.controller.close()


StartControl = Callable[..., Controlled]


@pytest.fixture
def control(stack: LocalStack, tmp_path: Path) -> Iterator[StartControl]:
    """Start a controller (its own store under tmp_path) on a routing table, with load; it
    posts every action and alert to ``webhook_url`` when one is given."""
    started: list[Controlled] = []

    def start(
        table: RoutingTable,
        policy: Path = POLICY_FILE,
        signals: SignalsSpec | None = None,
        rate: float | None = None,
        store_path: Path | None = None,
        webhook_url: str | None = None,
    ) -> Controlled:
        controller = StackController(
            stack,
            policy,
            store_path or tmp_path / "autoops.db",
            regions=REGIONS,
            signals=signals,
            webhook_url=webhook_url,
        )
        load = LoadDriver(stack.http_url, stack.inference_token)
        if rate is not None:
            load.rate = rate
        controller.start(table, load)
        controlled = Controlled(controller, load)
        started.append(controlled)
        return controlled

    yield start
    for c in started:
        c.stop()


def table(
    faults: dict[str, VersionFaults] | None = None,
    weights: dict[str, float] | None = None,
    deployments: dict[str, list[str]] | None = None,
) -> RoutingTable:
    """A routing table on the module stack: v1 stable at 100% unless ``weights`` say else."""
    return RoutingTable(
        model="digits",
        stable_version="v1",
        weights=weights or {"v1": 1.0},
        region_weights={"eu-west": 1.0, "eu-central": 1.0},
        deployments=deployments or DEPLOYMENTS,
        cascade={"enabled": False, "small_version": "small-v1"},
        faults=faults or {},
    )
