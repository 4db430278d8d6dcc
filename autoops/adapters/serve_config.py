"""Pure edits of Ray Serve's declarative config: the applied state in, absolute targets out.

The actuators (in-cluster and REST) read Serve's details, turn them into an ``AppliedState`` and
a ``RoutingTable`` here, and write back the whole config with one application changed (Serve's
PUT replaces every application, so a write must carry the others unchanged).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from autoops.contract import (
    INGRESS_DEPLOYMENT,
    RoutingTable,
    ShadowConfig,
    version_app_name,
    version_deployment_name,
)
from autoops.model import (
    Action,
    AppliedState,
    Promote,
    Rollback,
    SetCascadeThreshold,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
)

ServeDetails = Mapping[str, Any]
"""What Serve's ``GET /api/serve/applications/`` answers (ServeInstanceDetails as JSON)."""
AppConfig = dict[str, Any]
"""One application's declarative config (ServeApplicationSchema as JSON)."""


class ServeConfigError(RuntimeError):
    """Serve's state does not hold what the controller needs, said with the place it looked."""


def _application(details: ServeDetails, application: str) -> Mapping[str, Any]:
    apps = details.get("applications") or {}
    app = apps.get(application)
    if app is None:
        known = ", ".join(sorted(apps)) or "none"
        raise ServeConfigError(f"Serve has no application {application!r} (running: {known})")
    return app  # type: ignore[no-any-return]


def routing_table(details: ServeDetails, application: str) -> RoutingTable:
    """The routing table the ingress of ``application`` applies now (its user_config)."""
    app = _application(details, application)
    deployments = app.get("deployments") or {}
    ingress = deployments.get(INGRESS_DEPLOYMENT)
    if ingress is None:
        raise ServeConfigError(
            f"application {application!r} has no {INGRESS_DEPLOYMENT!r} deployment"
        )
    raw = (ingress.get("deployment_config") or {}).get("user_config")
    if raw is None:
        raise ServeConfigError(f"{application}/{INGRESS_DEPLOYMENT} has no user_config")
    try:
        return RoutingTable.model_validate(raw)
    except ValidationError as exc:
        raise ServeConfigError(
            f"{application}/{INGRESS_DEPLOYMENT} user_config is not a routing table: {exc}"
        ) from exc


def replica_counts(
    details: ServeDetails, application: str, table: RoutingTable
) -> dict[tuple[str, str], int]:
    """Target replicas of each deployed (version, region) pair, as Serve reports them."""
    counts: dict[tuple[str, str], int] = {}
    apps = details.get("applications") or {}
    for version, region in table.deployed_pairs():
        app = apps.get(version_app_name(application, version)) or {}
        dep = (app.get("deployments") or {}).get(
            version_deployment_name(table.model, version, region)
        )
        if dep is None:
            continue
        n = dep.get("target_num_replicas")
        if n is None:
            n = (dep.get("deployment_config") or {}).get("num_replicas")
        if isinstance(n, int):
            counts[(version, region)] = n
    return counts


READY_STATE = "RUNNING"
"""A replica's state in Serve's details once it serves (before: STARTING, UPDATING...)."""


def ready_counts(
    details: ServeDetails, application: str, table: RoutingTable
) -> dict[tuple[str, str], int] | None:
    """Running replicas of each deployed (version, region) pair; None when Serve lists none."""
    counts: dict[tuple[str, str], int] = {}
    listed = False
    apps = details.get("applications") or {}
    for version, region in table.deployed_pairs():
        app = apps.get(version_app_name(application, version)) or {}
        dep = (app.get("deployments") or {}).get(
            version_deployment_name(table.model, version, region)
        )
        replicas = None if dep is None else dep.get("replicas")
        if not isinstance(replicas, list):
            continue
        listed = True
        counts[(version, region)] = sum(
            1 for r in replicas if isinstance(r, dict) and r.get("state") == READY_STATE
        )
    return counts if listed else None


def applied_state(details: ServeDetails, application: str) -> AppliedState:
    """What the serving system applies now, in the core's terms.

    Replicas per region are the stable version's: regions without traffic keep one warm replica
    (Serve's config floor is 1) and count as none.
    """
    table = routing_table(details, application)
    counts = replica_counts(details, application, table)
    pairs = table.deployed_pairs()
    small = table.cascade.small_version
    # The cascade's small model is part of the serving path, not a rollout candidate.
    versions = tuple(
        sorted(
            {
                v
                for v, _ in pairs
                if v != small or table.weights.get(v, 0.0) > 0 or v == table.stable_version
            }
        )
    )
    total_w = sum(table.weights.values())
    traffic = {v: table.weights.get(v, 0.0) / total_w for v in versions}
    total_r = sum(table.region_weights.values())
    region_weights = {r: w / total_r for r, w in table.region_weights.items()}
    replicas = {
        r: counts.get((table.stable_version, r), 0)
        for r in sorted({r for _, r in pairs})
        if region_weights.get(r, 0.0) > 0
    }
    ready = ready_counts(details, application, table)
    return AppliedState(
        versions=versions,
        traffic=traffic,
        region_weights=region_weights,
        replicas=replicas,
        ready_replicas=None
        if ready is None
        else {r: n for (v, r), n in sorted(ready.items()) if v == table.stable_version},
        cascade_threshold=table.cascade.threshold if table.cascade.enabled else None,
        shadow_version=table.shadow.version,
        shadow_fraction=table.shadow.fraction,
    )


def explicit_deployments(table: RoutingTable) -> RoutingTable:
    """The table with ``deployments`` spelled out, so a weight change cannot hide a version."""
    if table.deployments:
        return table
    deployments: dict[str, list[str]] = {}
    for version, region in sorted(table.deployed_pairs()):
        deployments.setdefault(version, []).append(region)
    return table.model_copy(update={"deployments": deployments})


def table_after(table: RoutingTable, action: Action) -> RoutingTable:
    """The routing table once ``action`` is applied (the same table when it does not route)."""
    if isinstance(action, SetTraffic | Rollback | Promote):
        table = explicit_deployments(table)
    if isinstance(action, SetTraffic):
        shadow = ShadowConfig(version=action.shadow_version, fraction=action.shadow_fraction)
        return table.model_copy(update={"weights": dict(action.weights), "shadow": shadow})
    if isinstance(action, Rollback):
        return table.model_copy(
            update={
                "weights": {action.to_version: 1.0},
                "stable_version": action.to_version,
                "shadow": ShadowConfig(),
            }
        )
    if isinstance(action, Promote):
        return table.model_copy(
            update={
                "weights": {action.version: 1.0},
                "stable_version": action.version,
                "shadow": ShadowConfig(),
            }
        )
    if isinstance(action, SetRegionWeights):
        return table.model_copy(update={"region_weights": dict(action.weights)})
    if isinstance(action, SetCascadeThreshold):
        cascade = table.cascade.model_copy(update={"threshold": action.threshold})
        return table.model_copy(update={"cascade": cascade})
    return table


def replicas_after(table: RoutingTable, action: SetReplicas) -> dict[tuple[str, str], int]:
    """Replicas of every deployed (version, region) once ``action`` is applied.

    The stable version gets the target of each region; another version serving a share ``w``
    gets ``ceil(target * w)`` (at least one); a version without traffic, or a region without a
    target, keeps one warm replica (Serve's floor).
    """
    total_w = sum(table.weights.values()) or 1.0
    out: dict[tuple[str, str], int] = {}
    for version, region in sorted(table.deployed_pairs()):
        target = int(action.replicas.get(region, 0))
        share = table.weights.get(version, 0.0) / total_w
        if target <= 0:
            n = 1
        elif version == table.stable_version:
            n = target
        elif share > 0 or version == table.shadow.version:
            n = max(1, math.ceil(target * max(share, 0.1)))
        else:
            n = 1
        out[(version, region)] = n
    return out


def app_configs(details: ServeDetails) -> list[AppConfig]:
    """Every application's declarative config, as Serve last deployed it."""
    configs: list[AppConfig] = []
    for name, app in sorted((details.get("applications") or {}).items()):
        config = app.get("deployed_app_config")
        if config is None:
            raise ServeConfigError(
                f"application {name!r} was not deployed from a config (serve.run from Python?): "
                "the controller edits Serve's declarative config and cannot carry it over"
            )
        configs.append(copy.deepcopy(dict(config)))
    return configs


def _deployment_override(config: AppConfig, name: str) -> dict[str, Any]:
    deployments: list[dict[str, Any]] = config.setdefault("deployments", [])
    for dep in deployments:
        if dep.get("name") == name:
            return dep
    dep = {"name": name}
    deployments.append(dep)
    return dep


def with_routing(configs: list[AppConfig], application: str, table: RoutingTable) -> None:
    """Set the ingress user_config of ``application`` to ``table`` (in place)."""
    for config in configs:
        if config.get("name") == application:
            override = _deployment_override(config, INGRESS_DEPLOYMENT)
            override["user_config"] = table.model_dump(mode="json")
            return
    raise ServeConfigError(f"no config for application {application!r}")


def with_replicas(
    configs: list[AppConfig],
    application: str,
    model: str,
    replicas: Mapping[tuple[str, str], int],
) -> None:
    """Set num_replicas of each (version, region) deployment (in place)."""
    by_name = {c.get("name"): c for c in configs}
    for (version, region), n in replicas.items():
        config = by_name.get(version_app_name(application, version))
        if config is None:
            raise ServeConfigError(
                f"no application {version_app_name(application, version)!r} for version {version}"
            )
        override = _deployment_override(config, version_deployment_name(model, version, region))
        override["num_replicas"] = int(n)


def deploy_config(details: ServeDetails, configs: list[AppConfig]) -> dict[str, Any]:
    """The whole declarative config to PUT: http options as they are, every application."""
    out: dict[str, Any] = {"applications": configs}
    http = details.get("http_options")
    if isinstance(http, Mapping):
        out["http_options"] = {k: http[k] for k in ("host", "port") if k in http}
    proxy = details.get("proxy_location")
    if proxy is not None:
        out["proxy_location"] = proxy
    return out
