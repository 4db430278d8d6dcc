"""Fakes and builders for unit tests of the pure core (no Ray, no Prometheus).

``apply_actions`` (re-exported) is the fake actuator: the core's own pure applier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoops.core.actuation import apply_actions
from autoops.core.state import ControllerState, DecisionContext
from autoops.model import AppliedState, Finding, RegionSignals, Snapshot, VersionMetrics
from autoops.policy.schema import Policy
from autoops.regions.model import GpuOffer, Region, RegionCatalogue


def fake_catalogue() -> RegionCatalogue:
    """Four fake regions with distinct cost, latency and grids."""

    def region(name: str, zone: str, usd: float, lat: float) -> Region:
        return Region(
            name=name,
            cloud="aws",
            cloud_region=name + "-1",
            carbon_zone=zone,
            price_zone=zone,
            gpus=(GpuOffer("L4", usd),),
            latency_ms={"eu": lat, "na": lat + 80},
            replica_usd_per_hour=usd,
            replica_power_kw=0.3,
        )

    return RegionCatalogue(
        {
            "eu-west": region("eu-west", "GB", 1.0, 20),
            "eu-central": region("eu-central", "DE-LU", 1.2, 25),
            "eu-north": region("eu-north", "SE", 0.9, 40),
            "us-east": region("us-east", "US-MIDA-PJM", 0.8, 90),
        }
    )


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base`` (nested dicts merged, rest replaced)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


BASE_POLICY: dict[str, Any] = {
    "metadata": {"name": "test"},
    "target": {"application": "digits", "deployment": "classifier", "stable_version": "v1"},
    "slo": {"latency_p99_ms": 200, "error_rate": 0.01, "availability": 0.999},
    "intent": {"allowed_regions": ["eu-west", "eu-central"], "objective": "latency"},
    "scaling": {
        "min_replicas": 1,
        "max_replicas": 20,
        "target_ongoing_requests": 2,
        "tolerance": 0.1,
        "upscale_stabilization_s": 0,
        "downscale_stabilization_s": 60,
    },
    "rollout": {
        "steps": [10, 50],
        "analysis_interval_s": 10,
        "failed_check_limit": 2,
        "min_requests": 20,
        "progress_deadline_s": 120,
    },
    "guardrails": {"max_actions_per_hour": 100, "scale_cooldown_s": 0, "max_traffic_shift": 100},
}


def make_policy(**overrides: Any) -> Policy:
    """A valid policy; keyword arguments deep-merge into the base document."""
    return Policy.model_validate(deep_merge(BASE_POLICY, overrides))


def row(
    version: str,
    region: str = "eu-west",
    *,
    rate: float | None = 50.0,
    errors: float | None = 0.001,
    p99: float | None = 80.0,
    ongoing: float | None = 4.0,
    accuracy: float | None = 0.95,
    count: float | None = 1000.0,
    **extra: Any,
) -> VersionMetrics:
    """One (deployment, version, region) metrics row with healthy defaults."""
    return VersionMetrics(
        deployment="classifier",
        version=version,
        region=region,
        request_rate=rate,
        error_ratio=errors,
        latency_p50_ms=None if p99 is None else p99 / 3,
        latency_p95_ms=None if p99 is None else p99 / 1.5,
        latency_p99_ms=p99,
        ongoing_requests=ongoing,
        healthy_replicas=2,
        accuracy=accuracy,
        request_count=count,
        **extra,
    )


def applied(
    versions: tuple[str, ...] = ("v1",),
    traffic: Mapping[str, float] | None = None,
    regions: Mapping[str, float] | None = None,
    replicas: Mapping[str, int] | None = None,
    cascade: float | None = None,
) -> AppliedState:
    """An applied routing table with single-region, stable-only defaults."""
    return AppliedState(
        versions=versions,
        traffic=dict(traffic or {"v1": 1.0}),
        region_weights=dict(regions or {"eu-west": 1.0}),
        replicas=dict(replicas or {"eu-west": 2}),
        cascade_threshold=cascade,
    )


def snapshot(
    now: float,
    rows: tuple[VersionMetrics, ...],
    state: AppliedState | None = None,
    signals: tuple[RegionSignals, ...] = (),
    outage: bool = False,
) -> Snapshot:
    """A snapshot taken at ``now``."""
    return Snapshot(
        time=now,
        application="digits",
        deployment="classifier",
        applied=state or applied(),
        metrics=rows,
        signals=signals,
        metrics_outage=outage,
        outage_reason="fake outage" if outage else None,
        last_metrics_at=now,
    )


def context(
    now: float,
    snap: Snapshot,
    policy: Policy | None = None,
    state: ControllerState | None = None,
    findings: tuple[Finding, ...] = (),
    approvals: frozenset[str] = frozenset(),
    catalogue: RegionCatalogue | None = None,
) -> DecisionContext:
    """A decision context around a snapshot."""
    return DecisionContext(
        now=now,
        policy=policy or make_policy(),
        snapshot=snap,
        state=state or ControllerState(),
        catalogue=catalogue or CATALOGUE,
        findings=findings,
        approvals=approvals,
    )


CATALOGUE = fake_catalogue()


__all__ = ["CATALOGUE", "applied", "apply_actions", "context", "make_policy", "row", "snapshot"]
