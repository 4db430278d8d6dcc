"""A retrained version becomes a rollout candidate only once Serve runs its replicas."""

from __future__ import annotations

from typing import Any

import pytest

from autoops.adapters.serve_actuator import ServeActuator
from autoops.adapters.serve_config import ServeConfigError, applied_state
from autoops.contract import version_app_name
from autoops.runtime.wiring import deploy_when_ready
from tests.unit.test_serve_actuator import APP, FakeServe, _table


class StartingServe(FakeServe):
    """A fake Serve whose newly added applications deploy for a few reads before they run."""

    def __init__(self, reads_to_start: int, fails: bool = False) -> None:
        super().__init__(_table(weights={"v1": 1.0}))
        self.reads_to_start = reads_to_start
        self.fails = fails
        self.starting: dict[str, int] = {}
        self.candidates_while_starting: list[tuple[str, ...]] = []

    def deploy(self, config: Any) -> None:
        before = {a["name"] for a in self.config["applications"]}
        super().deploy(config)
        for app in self.config["applications"]:
            if app["name"] not in before:
                self.starting[app["name"]] = self.reads_to_start

    def details(self) -> dict[str, Any]:
        details = super().details()
        for name, app in details["applications"].items():
            left = self.starting.get(name, 0)
            if left > 0:
                self.starting[name] = left - 1
                app["status"] = "DEPLOY_FAILED" if self.fails else "DEPLOYING"
                # What the controller would see as deployed at this moment.
                self.candidates_while_starting.append(applied_state(details, APP).versions)
            else:
                app["status"] = "RUNNING"
        return details


def test_a_version_is_routed_only_once_its_application_runs() -> None:
    serve = StartingServe(reads_to_start=3)
    actuator = ServeActuator(serve, APP)
    assert deploy_when_ready(serve, actuator, "v1-r1", ["eu-north"], poll_s=0.0) is True
    assert serve.candidates_while_starting, "the fake application started for a while"
    assert all("v1-r1" not in seen for seen in serve.candidates_while_starting)
    assert actuator.routing().deployments["v1-r1"] == ["eu-north"]
    assert actuator.routing().weights == {"v1": 1.0}  # no traffic until the rollout starts it
    names = [a["name"] for a in serve.config["applications"]]
    assert names.count(version_app_name(APP, "v1-r1")) == 1
    assert deploy_when_ready(serve, actuator, "v1-r1", ["eu-north"], poll_s=0.0) is False


def test_an_application_that_fails_to_deploy_is_never_routed() -> None:
    serve = StartingServe(reads_to_start=100, fails=True)
    actuator = ServeActuator(serve, APP)
    with pytest.raises(ServeConfigError, match="failed to deploy"):
        deploy_when_ready(serve, actuator, "v1-r1", ["eu-north"], poll_s=0.0)
    assert "v1-r1" not in actuator.read_applied().versions


def test_an_application_that_never_runs_times_out_unrouted() -> None:
    serve = StartingServe(reads_to_start=10**6)
    actuator = ServeActuator(serve, APP)
    with pytest.raises(ServeConfigError, match="not running"):
        deploy_when_ready(serve, actuator, "v1-r1", ["eu-north"], timeout_s=0.05, poll_s=0.01)
    assert "v1-r1" not in actuator.read_applied().versions
