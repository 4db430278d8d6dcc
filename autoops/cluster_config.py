"""Render a Ray cluster launcher config (``ray-cluster.yaml``) from the region catalogue.

A Ray cluster lives in one provider region, so one config holds the catalogue regions that
share it (a region and its Local Zones, say); for several provider regions, render one config
per region and point the controller at each cluster. Every catalogue region gets one GPU
worker node type per availability zone, and a Serve replica finds its region's nodes either by
label (``label_selector={"ray.io/availability-region": "us-east"}``) or by requesting a fraction
of the region's custom resource (``ray_actor_options={"resources": {"region:us-east": 0.001}}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from autoops.regions.model import Region, RegionCatalogue

__all__ = [
    "AWS_GPU_INSTANCE_TYPES",
    "CARBON_ZONE_LABEL",
    "DEFAULT_REGIONS",
    "REGION_LABEL",
    "ZONE_LABEL",
    "ClusterConfigError",
    "aws_parent_region",
    "region_resource",
    "render_cluster_config",
    "render_cluster_yaml",
    "zone_resource",
]

DEFAULT_REGIONS: tuple[str, ...] = ("us-east",)
"""The catalogue regions of the committed ``ray-cluster.yaml``."""
REGION_LABEL = "ray.io/availability-region"
"""Node label holding the catalogue region (its ``node_label``)."""
ZONE_LABEL = "ray.io/availability-zone"
"""Node label holding the provider's availability zone."""
CARBON_ZONE_LABEL = "autoops/carbon-zone"
"""Node label holding the grid zone whose carbon intensity applies to the node."""
HEAD_NODE_TYPE = "head"
"""Name of the head node type."""
AWS_GPU_INSTANCE_TYPES: Mapping[str, str] = {
    "T4": "g4dn.xlarge",
    "A10G": "g5.xlarge",
    "L4": "g6.xlarge",
    "L40S": "g6e.xlarge",
    "A100": "p4d.24xlarge",
    "H100": "p5.48xlarge",
}
"""The smallest AWS instance type that carries each GPU model of the catalogue."""

_AWS_REGION = re.compile(r"^([a-z]{2}(?:-gov)?-[a-z]+-\d+)(?:-([a-z0-9]+(?:-[a-z0-9]+)*))?$")
_RAY_ENV = "ulimit -n 65536; RAY_metrics_report_interval_ms=1000"
_HEAD_START = (
    f"{_RAY_ENV} ray start --head --port=6379 --object-manager-port=8076 "
    "--autoscaling-config=~/ray_bootstrap_config.yaml "
    "--metrics-export-port=8080 --dashboard-host=0.0.0.0"
)
_WORKER_START = (
    f"{_RAY_ENV} ray start --address=$RAY_HEAD_IP:6379 --object-manager-port=8076 "
    "--metrics-export-port=8080"
)
_HEADER = """\
# A Ray cluster launcher config for AutoOps, rendered from the region catalogue by
# autoops.cluster_config.render_cluster_config. Start it with `ray up FILE`, then
# `autoops submit --address http://HEAD:8265 --policy POLICY`.
"""


class ClusterConfigError(ValueError):
    """The regions or options cannot make one cluster config; the message says why."""


def _disk() -> list[dict[str, Any]]:
    """A fresh 200 GB root volume mapping (fresh, so YAML output holds no aliases)."""
    return [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 200}}]


def region_resource(region: str) -> str:
    """The custom resource every node of a catalogue region advertises (one unit per node)."""
    return f"region:{region}"


def zone_resource(zone: str) -> str:
    """The custom resource every node of an availability zone advertises (one unit per node)."""
    return f"zone:{zone}"


def aws_parent_region(cloud_region: str) -> str:
    """The AWS region that hosts ``cloud_region`` (itself, or the parent of a Local Zone)."""
    match = _AWS_REGION.fullmatch(cloud_region)
    if match is None:
        raise ClusterConfigError(f"{cloud_region!r} is not an AWS region id (like us-east-1)")
    return match.group(1)


def _default_zones(region: Region) -> tuple[str, ...]:
    """Two zones of a region, or the one zone of a Local Zone group."""
    if aws_parent_region(region.cloud_region) == region.cloud_region:
        return (f"{region.cloud_region}a", f"{region.cloud_region}b")
    return (f"{region.cloud_region}a",)


def _gpu_instance(region: Region, override: str | None) -> tuple[str, str | None]:
    """The instance type of a region's GPU workers and the GPU model it carries, if known."""
    if override is not None:
        return override, None
    known = [g for g in region.gpus if g.type in AWS_GPU_INSTANCE_TYPES]
    if not known:
        offered = ", ".join(g.type for g in region.gpus) or "none"
        raise ClusterConfigError(
            f"region {region.name}: no AWS instance type known for its GPUs ({offered}); "
            "pass gpu_instance_type"
        )
    cheapest = min(known, key=lambda g: (g.usd_per_hour, g.type))
    return AWS_GPU_INSTANCE_TYPES[cheapest.type], cheapest.type


def _regions(catalogue: RegionCatalogue, names: Sequence[str], provider: str) -> list[Region]:
    """The named regions, checked to exist, to run on ``provider`` and to share one region."""
    if not names:
        raise ClusterConfigError("no regions given: a cluster needs at least one")
    if len(set(names)) != len(names):
        raise ClusterConfigError(f"a region is named twice in {list(names)}")
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        known = ", ".join(catalogue.names())
        raise ClusterConfigError(f"unknown region(s) {', '.join(unknown)}; known: {known}")
    regions = [catalogue[n] for n in names]
    elsewhere = [f"{r.name} ({r.cloud})" for r in regions if r.cloud != provider]
    if elsewhere:
        raise ClusterConfigError(f"not on {provider}: {', '.join(elsewhere)}")
    parents = {r.name: aws_parent_region(r.cloud_region) for r in regions}
    if len(set(parents.values())) > 1:
        where = ", ".join(f"{n} in {p}" for n, p in parents.items())
        raise ClusterConfigError(
            f"a Ray cluster lives in one provider region, but {where}: "
            "render one config per provider region"
        )
    return regions


def _zones(
    regions: Sequence[Region], zones: Mapping[str, Sequence[str]] | None, parent: str
) -> dict[str, tuple[str, ...]]:
    """Availability zones per region, checked to lie in ``parent`` and not to repeat."""
    given = dict(zones or {})
    stray = sorted(set(given) - {r.name for r in regions})
    if stray:
        raise ClusterConfigError(f"zones given for regions not in the cluster: {stray}")
    out = {r.name: tuple(given.get(r.name) or _default_zones(r)) for r in regions}
    seen: dict[str, str] = {}
    for name, region_zones in out.items():
        for zone in region_zones:
            if not zone.startswith(parent):
                raise ClusterConfigError(f"zone {zone} of {name} is not in region {parent}")
            if zone in seen:
                raise ClusterConfigError(f"zone {zone} is given to both {seen[zone]} and {name}")
            seen[zone] = name
    return out


def _worker_type(
    region: Region, zone: str, instance: str, min_workers: int, max_workers: int
) -> dict[str, Any]:
    """One GPU worker node type: a region's nodes in one availability zone."""
    label = region.node_label or region.name
    return {
        "min_workers": min_workers,
        "max_workers": max_workers,
        "resources": {region_resource(region.name): 1, zone_resource(zone): 1},
        "labels": {REGION_LABEL: label, ZONE_LABEL: zone, CARBON_ZONE_LABEL: region.carbon_zone},
        "node_config": {
            "InstanceType": instance,
            "Placement": {"AvailabilityZone": zone},
            "BlockDeviceMappings": _disk(),
        },
    }


def render_cluster_config(
    catalogue: RegionCatalogue,
    regions: Sequence[str] = DEFAULT_REGIONS,
    *,
    provider: str = "aws",
    zones: Mapping[str, Sequence[str]] | None = None,
    gpu_instance_type: str | None = None,
    head_instance_type: str = "m5.2xlarge",
    cluster_name: str = "autoops",
    min_workers_per_region: int = 1,
    max_workers_per_zone: int = 4,
) -> dict[str, Any]:
    """A Ray cluster launcher config: a CPU head and GPU workers per region and zone."""
    if provider != "aws":
        raise ClusterConfigError(f"provider {provider!r}: only aws node configs are rendered")
    if min_workers_per_region < 0 or max_workers_per_zone < 1:
        raise ClusterConfigError("min_workers_per_region must be >= 0, max_workers_per_zone >= 1")
    if min_workers_per_region > max_workers_per_zone:
        raise ClusterConfigError("min_workers_per_region exceeds max_workers_per_zone")
    chosen = _regions(catalogue, regions, provider)
    parent = aws_parent_region(chosen[0].cloud_region)
    region_zones = _zones(chosen, zones, parent)
    node_types: dict[str, Any] = {
        HEAD_NODE_TYPE: {
            "resources": {"CPU": 0},
            "node_config": {"InstanceType": head_instance_type, "BlockDeviceMappings": _disk()},
        }
    }
    summary: dict[str, Any] = {}
    for region in chosen:
        instance, gpu = _gpu_instance(region, gpu_instance_type)
        for index, zone in enumerate(region_zones[region.name]):
            minimum = min_workers_per_region if index == 0 else 0
            node_types[f"gpu-{zone}"] = _worker_type(
                region, zone, instance, minimum, max_workers_per_zone
            )
        summary[region.name] = {
            "carbon_zone": region.carbon_zone,
            "cloud_region": region.cloud_region,
            "zones": list(region_zones[region.name]),
            "gpu": gpu or "unspecified",
            "instance_type": instance,
        }
    all_zones = [z for r in chosen for z in region_zones[r.name]]
    return {
        "cluster_name": cluster_name,
        "max_workers": max_workers_per_zone * len(all_zones),
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 10,
        "provider": {
            "type": provider,
            "region": parent,
            "availability_zone": ",".join(all_zones),
            "cache_stopped_nodes": False,
        },
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": node_types,
        "head_node_type": HEAD_NODE_TYPE,
        "file_mounts": {"~/autoops": "."},
        "rsync_exclude": [
            "**/.git",
            "**/.git/**",
            "**/.venv",
            "**/.venv/**",
            "**/__pycache__",
            "**/reports",
        ],
        "rsync_filter": [".gitignore"],
        "initialization_commands": [],
        "setup_commands": [
            "python3 -m pip install --upgrade pip",
            "python3 -m pip install -c ~/autoops/constraints.txt -e ~/autoops",
        ],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": ["ray stop", _HEAD_START],
        "worker_start_ray_commands": ["ray stop", _WORKER_START],
        "metadata": {"autoops": {"generated_by": __name__, "regions": summary}},
    }


def render_cluster_yaml(config: Mapping[str, Any]) -> str:
    """The config as YAML text, with a header saying where it came from."""
    body = yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False, width=100)
    return _HEADER + body
