"""The serving stack's config and builders, without a Ray cluster (Serve builds apps locally)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ray._common.utils import import_attr
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
from ray.serve._private.build_app import build_app as serve_build
from ray.serve.schema import ServeDeploySchema

from autoops.contract import INGRESS_DEPLOYMENT, parse_deployment_name, version_app_name
from serve_apps.app import (
    CONFIG_HEADER,
    IngressArgs,
    StackSpec,
    build_app,
    ensure_registry,
    stack_config,
)
from serve_apps.loadgen import LoadConfig

CONFIG_FILE = Path(__file__).resolve().parents[2] / "serve_apps" / "config.yaml"


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registry")
    ensure_registry(root)
    return root


def _built(app_config: dict[str, Any], registry_root: Path) -> dict[str, Any]:
    """Deployments of one app config as Serve's own builder makes them: name -> options."""
    args = dict(app_config.get("args") or {})
    if app_config["import_path"].endswith("build_version_app"):
        args["registry_root"] = str(registry_root)
    app = call_user_app_builder_with_args_if_necessary(import_attr(app_config["import_path"]), args)
    built = serve_build(app, name=app_config["name"])
    return {d.name: (d.num_replicas, d.ray_actor_options, d.user_config) for d in built.deployments}


def test_config_file_is_the_default_stack_config() -> None:
    text = CONFIG_FILE.read_text(encoding="utf-8")
    assert text.startswith(CONFIG_HEADER)
    assert yaml.safe_load(text) == stack_config(StackSpec())
    ServeDeploySchema.model_validate(yaml.safe_load(text))


def test_every_version_app_holds_one_deployment_per_region_named_by_the_contract(
    registry_root: Path,
) -> None:
    spec = StackSpec()
    config = stack_config(spec)
    for app_config in config["applications"][1:]:
        deployments = _built(app_config, registry_root)
        version = app_config["args"]["version"]
        assert app_config["name"] == version_app_name(spec.application, version)
        parsed = {parse_deployment_name(name) for name in deployments}
        assert parsed == {(spec.model, version, r) for r in spec.deployments[version]}
        assert all(options["num_cpus"] == 0.1 for _, options, _ in deployments.values())


def test_python_builder_and_config_file_build_the_same_ingress(registry_root: Path) -> None:
    spec = StackSpec()
    ingress_config = stack_config(spec)["applications"][0]
    from_config = _built(ingress_config, registry_root)
    table = spec.routing_table()
    from_python = serve_build(
        build_app(IngressArgs(model=spec.model, routing=table, settings=spec.settings)),
        name=spec.application,
    )
    (deployment,) = from_python.deployments
    assert list(from_config) == [INGRESS_DEPLOYMENT] == [deployment.name]
    assert ingress_config["deployments"][0]["user_config"] == deployment.user_config
    assert from_config[INGRESS_DEPLOYMENT][1] == deployment.ray_actor_options


def test_gpu_and_region_placement_reach_the_replica_options(registry_root: Path) -> None:
    spec = StackSpec(registry_root=str(registry_root), deployments={"v1": ["eu-west"]}, num_gpus=1)
    app_config = stack_config(spec)["applications"][1]
    app_config["args"]["region_resources"] = {"eu-west": {"zone-a": 0.01}}
    ((_, options, _),) = _built(app_config, registry_root).values()
    assert options == {"num_cpus": 0.1, "num_gpus": 1.0, "resources": {"zone-a": 0.01}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"stable_version": "v9"}, "stable_version", id="stable-not-deployed"),
        pytest.param({"deployments": {"v1": ["eu west"]}}, "region", id="bad-region-name"),
        pytest.param({"deployments": {"v1": []}}, "deployments[v1]", id="no-region"),
    ],
)
def test_stack_spec_refuses_what_cannot_be_deployed(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        StackSpec.model_validate(changes)


def test_an_unregistered_version_that_is_no_default_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="v7"):
        ensure_registry(tmp_path, ("v7",))


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8000",
        "http://localhost:8000",
        "https://127.0.0.1:8000",
        "http://example.com",
    ],
)
def test_load_generator_sends_only_to_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="url"):
        LoadConfig(url=url)


@pytest.mark.parametrize(
    "changes",
    [
        {"requests": 0},
        {"requests": 10_000_000},
        {"max_seconds": 0},
        {"max_seconds": 1e9},
        {"concurrency": 1000},
        {"rows_per_request": 300},
    ],
    ids=lambda c: next(iter(c)),
)
def test_load_generator_runs_are_bounded(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        LoadConfig(url="http://127.0.0.1:8000", **changes)
