"""ray-cluster.yaml: valid for Ray's launcher, and what the catalogue-driven generator renders."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoops.cluster_config import (
    CARBON_ZONE_LABEL,
    REGION_LABEL,
    ZONE_LABEL,
    ClusterConfigError,
    aws_parent_region,
    region_resource,
    render_cluster_config,
    render_cluster_yaml,
    zone_resource,
)
from autoops.regions import GpuOffer, Region, RegionCatalogue, load_catalogue
from autoops.regions.loader import ENV_VAR

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is needed to check the config")
ray_autoscaler = pytest.importorskip(
    "ray.autoscaler", reason="ray is not importable: its cluster-config schema ships inside it"
)

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "ray-cluster.yaml"
SCHEMA = Path(ray_autoscaler.__file__).parent / "ray-schema.json"


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


@pytest.fixture(scope="module")
def catalogue() -> RegionCatalogue:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ENV_VAR, raising=False)
        return load_catalogue()


def _schema_errors(schema: dict[str, Any], config: Mapping[str, Any]) -> list[str]:
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(config)
    ]


def _prepare_with_ray(config: Mapping[str, Any]) -> None:
    util = pytest.importorskip("ray.autoscaler._private.util")
    prepared = util.prepare_config(json.loads(json.dumps(config)))
    util.validate_config(prepared)


def _workers(config: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: spec
        for name, spec in config["available_node_types"].items()
        if name != config["head_node_type"]
    }


def _region(name: str, cloud_region: str, gpus: Sequence[GpuOffer] = ()) -> Region:
    return Region(
        name=name,
        cloud="aws",
        cloud_region=cloud_region,
        carbon_zone=f"ZONE-{name.upper()}",
        price_zone=f"ZONE-{name.upper()}",
        gpus=tuple(gpus) or (GpuOffer("A10G", 1.0),),
        latency_ms={"na": 10.0},
        replica_usd_per_hour=1.0,
        node_label=f"label-{name}",
    )


# --- the committed file --------------------------------------------------------------------


def test_cluster_yaml_matches_the_schema_shipped_with_ray(
    config: dict[str, Any], schema: dict[str, Any]
) -> None:
    assert _schema_errors(schema, config) == []


def test_schema_check_catches_an_unknown_field(
    config: dict[str, Any], schema: dict[str, Any]
) -> None:
    broken = {**config, "head_node_typo": "head"}
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def test_cluster_yaml_passes_rays_own_config_preparation(config: dict[str, Any]) -> None:
    _prepare_with_ray(config)


def test_cluster_yaml_is_what_the_generator_renders_from_the_catalogue(
    config: dict[str, Any], catalogue: RegionCatalogue
) -> None:
    rendered = render_cluster_config(catalogue)
    assert config == rendered, (
        "ray-cluster.yaml drifted from autoops.cluster_config.render_cluster_config(); "
        "compare it with render_cluster_yaml(render_cluster_config(load_catalogue()))"
    )


def test_generator_drift_is_caught(config: dict[str, Any], catalogue: RegionCatalogue) -> None:
    edited = copy.deepcopy(config)
    edited["available_node_types"]["gpu-us-east-1a"]["labels"][ZONE_LABEL] = "us-east-1c"
    assert edited != render_cluster_config(catalogue)


def test_head_node_type_is_one_of_the_node_types(config: dict[str, Any]) -> None:
    assert config["head_node_type"] in config["available_node_types"]


def test_gpu_workers_exist_per_zone_and_are_labelled_with_their_zone_and_region(
    config: dict[str, Any], catalogue: RegionCatalogue
) -> None:
    zones = config["provider"]["availability_zone"].split(",")
    workers = _workers(config)
    assert {spec["labels"][ZONE_LABEL] for spec in workers.values()} == set(zones)
    for name, spec in workers.items():
        zone = spec["labels"][ZONE_LABEL]
        region = catalogue[spec["labels"][REGION_LABEL]]
        assert name == f"gpu-{zone}"
        assert spec["node_config"]["Placement"]["AvailabilityZone"] == zone
        assert spec["labels"][CARBON_ZONE_LABEL] == region.carbon_zone
        assert spec["resources"] == {region_resource(region.name): 1, zone_resource(zone): 1}
        assert aws_parent_region(region.cloud_region) == config["provider"]["region"]


def test_head_takes_no_replicas(config: dict[str, Any]) -> None:
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}


def test_head_exports_metrics_on_a_fixed_port_and_serves_the_dashboard(
    config: dict[str, Any],
) -> None:
    start = " ".join(config["head_start_ray_commands"])
    assert "--metrics-export-port=8080" in start
    assert "--dashboard-host=0.0.0.0" in start
    assert "RAY_metrics_report_interval_ms=1000" in start


def test_every_node_installs_autoops_with_the_pinned_constraints(config: dict[str, Any]) -> None:
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup
    assert "constraints.txt" in setup
    assert "~/autoops" in setup


# --- the generator -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "regions",
    [("us-east",), ("eu-west",), ("ap-northeast",), ("af-south",), ("au-east",)],
    ids=lambda r: "+".join(r),
)
def test_rendered_config_for_a_catalogue_region_is_valid_for_ray(
    regions: tuple[str, ...], catalogue: RegionCatalogue, schema: dict[str, Any]
) -> None:
    rendered = render_cluster_config(catalogue, regions)
    assert _schema_errors(schema, rendered) == []
    _prepare_with_ray(rendered)
    region = catalogue[regions[0]]
    assert rendered["provider"]["region"] == region.cloud_region
    assert {w["labels"][CARBON_ZONE_LABEL] for w in _workers(rendered).values()} == {
        region.carbon_zone
    }


def test_regions_sharing_a_provider_region_get_their_own_node_types_and_resources(
    schema: dict[str, Any],
) -> None:
    catalogue = RegionCatalogue(
        {
            "east": _region("east", "us-east-1"),
            "dallas": _region("dallas", "us-east-1-dfw-1", [GpuOffer("T4", 0.5)]),
        }
    )
    rendered = render_cluster_config(catalogue, ["east", "dallas"])
    workers = _workers(rendered)
    assert sorted(workers) == ["gpu-us-east-1-dfw-1a", "gpu-us-east-1a", "gpu-us-east-1b"]
    dallas = workers["gpu-us-east-1-dfw-1a"]
    assert dallas["labels"][REGION_LABEL] == "label-dallas"
    assert dallas["resources"] == {"region:dallas": 1, "zone:us-east-1-dfw-1a": 1}
    assert dallas["node_config"]["InstanceType"] == "g4dn.xlarge"
    assert workers["gpu-us-east-1a"]["node_config"]["InstanceType"] == "g5.xlarge"
    assert rendered["provider"]["region"] == "us-east-1"
    assert rendered["max_workers"] == 3 * 4
    assert _schema_errors(schema, rendered) == []


def test_options_shape_the_worker_types(catalogue: RegionCatalogue) -> None:
    rendered = render_cluster_config(
        catalogue,
        ["eu-west"],
        zones={"eu-west": ["eu-west-2b", "eu-west-2c", "eu-west-2a"]},
        gpu_instance_type="g6e.2xlarge",
        min_workers_per_region=2,
        max_workers_per_zone=3,
        cluster_name="green",
    )
    workers = _workers(rendered)
    assert [w["min_workers"] for w in workers.values()] == [2, 0, 0]
    assert {w["max_workers"] for w in workers.values()} == {3}
    assert {w["node_config"]["InstanceType"] for w in workers.values()} == {"g6e.2xlarge"}
    assert rendered["provider"]["availability_zone"] == "eu-west-2b,eu-west-2c,eu-west-2a"
    assert rendered["max_workers"] == 9
    assert rendered["cluster_name"] == "green"


def test_the_cheapest_known_gpu_of_the_region_picks_the_instance_type(
    catalogue: RegionCatalogue,
) -> None:
    priced = RegionCatalogue(
        {"r": _region("r", "us-west-2", [GpuOffer("A100", 4.0), GpuOffer("A10G", 1.2)])}
    )
    rendered = render_cluster_config(priced, ["r"])
    assert {w["node_config"]["InstanceType"] for w in _workers(rendered).values()} == {"g5.xlarge"}


def test_rendered_yaml_reads_back_to_the_same_config_without_aliases(
    catalogue: RegionCatalogue,
) -> None:
    rendered = render_cluster_config(catalogue)
    text = render_cluster_yaml(rendered)
    assert text.startswith("# ")
    assert "&id" not in text and "*id" not in text
    assert yaml.safe_load(text) == rendered


@pytest.mark.parametrize(
    ("cloud_region", "parent"),
    [
        ("us-east-1", "us-east-1"),
        ("us-east-1-dfw-1", "us-east-1"),
        ("ap-southeast-2", "ap-southeast-2"),
        ("us-gov-west-1", "us-gov-west-1"),
    ],
)
def test_aws_parent_region_of_regions_and_local_zones(cloud_region: str, parent: str) -> None:
    assert aws_parent_region(cloud_region) == parent


@pytest.mark.parametrize(
    ("regions", "kwargs", "message"),
    [
        (["atlantis"], {}, "unknown region(s) atlantis"),
        ([], {}, "at least one"),
        (["us-east", "us-east"], {}, "named twice"),
        (["us-east", "eu-west"], {}, "one provider region"),
        (["us-east"], {"provider": "gcp"}, "only aws"),
        (["us-east"], {"zones": {"us-east": ["eu-west-2a"]}}, "not in region us-east-1"),
        (["us-east"], {"zones": {"eu-west": ["eu-west-2a"]}}, "not in the cluster"),
        (["us-east"], {"zones": {"us-east": ["us-east-1a", "us-east-1a"]}}, "given to both"),
        (["us-east"], {"max_workers_per_zone": 0}, "max_workers_per_zone"),
        (["us-east"], {"min_workers_per_region": 5}, "exceeds"),
    ],
    ids=[
        "unknown-region",
        "no-region",
        "repeated-region",
        "two-provider-regions",
        "other-provider",
        "zone-outside-region",
        "zones-for-absent-region",
        "repeated-zone",
        "no-workers",
        "min-above-max",
    ],
)
def test_impossible_clusters_are_refused_with_the_reason(
    regions: list[str], kwargs: dict[str, Any], message: str, catalogue: RegionCatalogue
) -> None:
    with pytest.raises(ClusterConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        render_cluster_config(catalogue, regions, **kwargs)


def test_a_region_whose_gpus_have_no_known_instance_type_needs_one_named() -> None:
    odd = RegionCatalogue({"r": _region("r", "us-west-2", [GpuOffer("TPUv9", 1.0)])})
    with pytest.raises(ClusterConfigError, match="pass gpu_instance_type"):
        render_cluster_config(odd, ["r"])
    rendered = render_cluster_config(odd, ["r"], gpu_instance_type="g5.xlarge")
    assert len(_workers(rendered)) == 2


def test_a_region_on_another_cloud_is_refused() -> None:
    gcp = RegionCatalogue({"g": Region("g", "gcp", "us-central1", "Z", "Z", (), {"na": 1.0}, 1.0)})
    with pytest.raises(ClusterConfigError, match="not on aws"):
        render_cluster_config(gcp, ["g"])
