from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is needed to check the config")
ray_autoscaler = pytest.importorskip(
    "ray.autoscaler", reason="ray is not importable: its cluster-config schema ships inside it"
)

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "ray-cluster.yaml"
SCHEMA = Path(ray_autoscaler.__file__).parent / "ray-schema.json"
ZONE_LABEL = "ray.io/availability-zone"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    with CLUSTER_YAML.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not SCHEMA.is_file():
        pytest.skip(f"this ray ({SCHEMA.parent}) ships no ray-schema.json")
    with SCHEMA.open(encoding="utf-8") as f:
        data = json.load(f)
    assert isinstance(data, dict)
    return data


def test_cluster_yaml_matches_the_schema_shipped_with_ray(
    config: dict[str, Any], schema: dict[str, Any]
) -> None:
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(config)
    ]
    assert errors == []


def test_schema_check_catches_an_unknown_field(
    config: dict[str, Any], schema: dict[str, Any]
) -> None:
    broken = {**config, "head_node_typo": "head"}
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def test_cluster_yaml_passes_rays_own_config_preparation(config: dict[str, Any]) -> None:
    util = pytest.importorskip("ray.autoscaler._private.util")
    prepared = util.prepare_config(json.loads(json.dumps(config)))
    util.validate_config(prepared)


def test_head_node_type_is_one_of_the_node_types(config: dict[str, Any]) -> None:
    assert config["head_node_type"] in config["available_node_types"]


def test_gpu_workers_exist_per_zone_and_are_labelled_with_their_zone(
    config: dict[str, Any],
) -> None:
    zones = config["provider"]["availability_zone"].split(",")
    workers = {
        name: spec
        for name, spec in config["available_node_types"].items()
        if name != config["head_node_type"]
    }
    labelled = {spec.get("labels", {}).get(ZONE_LABEL) for spec in workers.values()}
    assert set(zones) <= labelled
    for name, spec in workers.items():
        zone = spec["labels"][ZONE_LABEL]
        assert name == f"gpu-{zone}"
        assert spec["node_config"]["Placement"]["AvailabilityZone"] == zone
        assert spec["resources"].get(f"zone-{zone}", 0) > 0


def test_head_exports_metrics_on_a_fixed_port_and_serves_the_dashboard(
    config: dict[str, Any],
) -> None:
    start = " ".join(config["head_start_ray_commands"])
    assert "--metrics-export-port=8080" in start
    assert "--dashboard-host=0.0.0.0" in start


def test_every_node_installs_autoops_with_the_pinned_constraints(config: dict[str, Any]) -> None:
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup
    assert "constraints.txt" in setup
    assert "~/autoops" in setup
