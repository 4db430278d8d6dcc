"""The Serve actuator against a fake Serve that keeps a declarative config like the real one."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from autoops.adapters.serve_actuator import ServeActuator
from autoops.adapters.serve_config import ServeConfigError, applied_state
from autoops.contract import CascadeConfig, RoutingTable, version_app_name, version_deployment_name
from autoops.model import (
    Alert,
    Promote,
    Rollback,
    SetCascadeThreshold,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
)
from autoops.ports import Outcome

APP = "digits"
MODEL = "digits"
REGIONS = ("eu-north", "eu-west")


def _version_app(version: str) -> dict[str, Any]:
    return {
        "name": version_app_name(APP, version),
        "import_path": "serve_apps.app:build_version",
        "args": {"version": version, "regions": list(REGIONS)},
        "route_prefix": None,
        "deployments": [],
    }


class FakeServe:
    """A fake Serve: keeps the last PUT config and answers details derived from it."""

    def __init__(self, table: RoutingTable) -> None:
        self.puts = 0
        self.config: dict[str, Any] = {
            "http_options": {"host": "127.0.0.1", "port": 8000},
            "applications": [
                {
                    "name": APP,
                    "import_path": "serve_apps.app:build_ingress",
                    "route_prefix": "/",
                    "deployments": [{"name": "Ingress", "user_config": table.model_dump()}],
                },
                *[_version_app(v) for v in sorted(table.weights)],
            ],
        }

    def details(self) -> dict[str, Any]:
        apps: dict[str, Any] = {}
        for app in self.config["applications"]:
            deployments: dict[str, Any] = {}
            overrides = {d["name"]: d for d in app.get("deployments", [])}
            if app["name"] == APP:
                names = ["Ingress"]
            else:
                version = app["args"]["version"]
                names = [version_deployment_name(MODEL, version, r) for r in app["args"]["regions"]]
            for name in names:
                o = overrides.get(name, {})
                deployments[name] = {
                    "name": name,
                    "deployment_config": {
                        "num_replicas": o.get("num_replicas", 1),
                        "user_config": o.get("user_config"),
                    },
                    "target_num_replicas": o.get("num_replicas", 1),
                }
            apps[app["name"]] = {
                "name": app["name"],
                "deployed_app_config": copy.deepcopy(app),
                "deployments": deployments,
            }
        return {"applications": apps, "http_options": self.config["http_options"]}

    def deploy(self, config: Mapping[str, Any]) -> None:
        self.puts += 1
        self.config = copy.deepcopy(dict(config))


def _table(**update: Any) -> RoutingTable:
    base = RoutingTable(
        model=MODEL,
        stable_version="v1",
        weights={"v1": 0.9, "v2": 0.1},
        region_weights={"eu-north": 1.0, "eu-west": 0.0},
    )
    return base.model_copy(update=update)


def _actuator(table: RoutingTable | None = None) -> tuple[ServeActuator, FakeServe]:
    serve = FakeServe(table or _table())
    return ServeActuator(serve, APP), serve


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(SetTraffic({"v1": 0.5, "v2": 0.5}, "v2", 0.2), id="set-traffic"),
        pytest.param(Rollback("v2", "v1"), id="rollback"),
        pytest.param(Promote("v2"), id="promote"),
        pytest.param(SetRegionWeights({"eu-north": 0.3, "eu-west": 0.7}), id="region-weights"),
        pytest.param(SetCascadeThreshold(0.6), id="cascade"),
        pytest.param(SetReplicas({"eu-north": 3}), id="replicas"),
    ],
)
def test_an_action_applied_twice_updates_once_then_reports_unchanged(action: Any) -> None:
    actuator, serve = _actuator()
    first = actuator.apply(action)
    second = actuator.apply(action)
    assert first.outcome is Outcome.UPDATED
    assert second.outcome is Outcome.UNCHANGED
    assert serve.puts == 1


def test_rollback_sends_all_traffic_to_the_stable_version_and_makes_it_stable() -> None:
    actuator, _ = _actuator()
    actuator.apply(Rollback("v2", "v1"))
    applied = actuator.read_applied()
    assert applied.traffic == {"v1": 1.0, "v2": 0.0}
    assert actuator.routing().stable_version == "v1"
    assert applied.shadow_version is None


def test_promote_makes_the_canary_stable_with_all_traffic() -> None:
    actuator, _ = _actuator()
    actuator.apply(Promote("v2"))
    assert actuator.read_applied().traffic["v2"] == 1.0
    assert actuator.routing().stable_version == "v2"


def test_set_replicas_sizes_stable_to_target_and_canary_to_its_share() -> None:
    actuator, serve = _actuator()
    actuator.apply(SetReplicas({"eu-north": 4}))
    details = serve.details()
    apps = details["applications"]

    def n(version: str, region: str) -> int:
        dep = apps[version_app_name(APP, version)]["deployments"]
        return int(dep[version_deployment_name(MODEL, version, region)]["target_num_replicas"])

    assert n("v1", "eu-north") == 4
    assert n("v2", "eu-north") == 1  # ceil(4 * 0.1)
    assert n("v1", "eu-west") == 1  # no target there: one warm replica (Serve's floor)
    # The region without traffic counts as running none.
    assert applied_state(details, APP).replicas == {"eu-north": 4}


def test_ready_replicas_count_only_running_ones_of_stable_in_every_region() -> None:
    """Serve lists each replica with its state: only RUNNING ones serve, also in a region
    without traffic (its warm replica), and without replica lists the count is unknown."""
    _, serve = _actuator()
    details = serve.details()
    assert applied_state(details, APP).ready_replicas is None
    apps = details["applications"]
    states = {
        ("v1", "eu-north"): ["RUNNING", "RUNNING", "STARTING"],
        ("v1", "eu-west"): ["RUNNING"],
        ("v2", "eu-north"): ["RUNNING"],
        ("v2", "eu-west"): ["UPDATING"],
    }
    for (version, region), listed in states.items():
        dep = apps[version_app_name(APP, version)]["deployments"]
        dep[version_deployment_name(MODEL, version, region)]["replicas"] = [
            {"replica_id": f"r{i}", "state": state} for i, state in enumerate(listed)
        ]
    assert applied_state(details, APP).ready_replicas == {"eu-north": 2, "eu-west": 1}


def test_a_write_carries_every_other_application_unchanged() -> None:
    actuator, serve = _actuator()
    before = {a["name"]: a for a in serve.config["applications"] if a["name"] != APP}
    actuator.apply(SetRegionWeights({"eu-north": 0.5, "eu-west": 0.5}))
    after = {a["name"]: a for a in serve.config["applications"] if a["name"] != APP}
    assert after == before


def test_alerts_are_not_the_actuators_job() -> None:
    actuator, serve = _actuator()
    assert actuator.apply(Alert("warning", "x")).outcome is Outcome.SKIPPED
    assert serve.puts == 0


def test_an_unknown_application_fails_the_action_with_its_name() -> None:
    serve = FakeServe(_table())
    actuator = ServeActuator(serve, "nope")
    result = actuator.apply(SetCascadeThreshold(0.5))
    assert result.outcome is Outcome.FAILED
    assert "nope" in result.detail and "digits" in result.detail
    with pytest.raises(ServeConfigError, match="nope"):
        actuator.read_applied()


def test_deploy_version_adds_its_application_and_registers_where_it_runs() -> None:
    actuator, serve = _actuator(_table(weights={"v1": 1.0}))
    assert actuator.deploy_version("v3", ["eu-north"]) is True
    names = [a["name"] for a in serve.config["applications"]]
    assert version_app_name(APP, "v3") in names
    table = actuator.routing()
    assert table.deployments["v3"] == ["eu-north"]
    assert table.weights.get("v3", 0.0) == 0.0  # no traffic until the rollout starts it
    assert "v3" in actuator.read_applied().versions
    assert actuator.deploy_version("v3", ["eu-north"]) is False


def test_a_rollback_already_in_force_is_unchanged_even_with_implicit_deployments() -> None:
    actuator, serve = _actuator(_table(weights={"v1": 1.0}))
    assert actuator.apply(Rollback("v2", "v1")).outcome is Outcome.UNCHANGED
    assert serve.puts == 0


def test_the_cascade_small_model_is_not_a_rollout_candidate() -> None:
    table = _table(
        weights={"v1": 1.0},
        deployments={"v1": ["eu-north"], "small-v1": ["eu-north"]},
        cascade=CascadeConfig(small_version="small-v1"),
    )
    actuator, _ = _actuator(table)
    assert actuator.read_applied().versions == ("v1",)


class LaggingServe(FakeServe):
    """A fake Serve whose details show the config of ``lag`` PUTs ago (Serve answers a PUT
    before its details reflect it)."""

    def __init__(self, table: RoutingTable, lag: int) -> None:
        super().__init__(table)
        self.history = [copy.deepcopy(self.config)]
        self.lag = lag

    def deploy(self, config: Mapping[str, Any]) -> None:
        super().deploy(config)
        self.history.append(copy.deepcopy(self.config))

    def details(self) -> dict[str, Any]:
        latest = self.config
        self.config = self.history[max(0, len(self.history) - 1 - self.lag)]
        try:
            return super().details()
        finally:
            self.config = latest


def test_settling_ends_at_once_when_another_writer_changed_the_table() -> None:
    serve = LaggingServe(_table(), lag=0)
    actuator = ServeActuator(serve, APP)
    ours = _table(weights={"v1": 0.5, "v2": 0.5})
    theirs = _table(weights={"v1": 1.0, "v2": 0.0})
    actuator.write_routing(theirs)  # another writer's table is what Serve shows now
    assert actuator.settle(ours, replaced=_table(), timeout_s=30.0) == "changed_elsewhere"
    assert actuator.settle(theirs, replaced=_table(), timeout_s=30.0) == "settled"


def test_settling_waits_while_serve_still_shows_the_replaced_table() -> None:
    serve = LaggingServe(_table(), lag=1)
    actuator = ServeActuator(serve, APP)
    ours = _table(weights={"v1": 0.5, "v2": 0.5})
    with_ours = copy.deepcopy(serve.config)
    with_ours["applications"][0]["deployments"][0]["user_config"] = ours.model_dump()
    serve.deploy(with_ours)  # Serve's details still show the table it replaced
    assert actuator.settle(ours, replaced=_table(), timeout_s=0.5) == "timeout"
    serve.lag = 0
    assert actuator.settle(ours, replaced=_table(), timeout_s=0.5) == "settled"
