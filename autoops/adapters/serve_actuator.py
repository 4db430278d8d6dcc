"""The actuator for Ray Serve: absolute targets written into Serve's declarative config.

It reads Serve's details, edits one application's routing table or replica counts, and writes
the whole config back (Serve's PUT replaces every application). It works the same in-cluster
(through Ray's own dashboard client) and remotely (through the REST API): only the client differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from autoops.adapters.serve_config import (
    ServeConfigError,
    app_configs,
    applied_state,
    deploy_config,
    explicit_deployments,
    replica_counts,
    replicas_after,
    routing_table,
    table_after,
    with_replicas,
    with_routing,
)
from autoops.contract import RoutingTable, version_app_name
from autoops.logging import get_logger
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
from autoops.ports import ApplyResult, Outcome

log = get_logger("autoops.actuator")

ROUTING_ACTIONS = (SetTraffic, Rollback, Promote, SetRegionWeights, SetCascadeThreshold)


class ServeClient(Protocol):
    """Reads and writes one Ray cluster's Serve config (in-cluster or over REST)."""

    def details(self) -> dict[str, Any]:
        """Serve's instance details (``GET /api/serve/applications/``)."""
        ...

    def deploy(self, config: Mapping[str, Any]) -> None:
        """Replace Serve's whole declarative config (``PUT /api/serve/applications/``)."""
        ...


StageHook = Callable[[Action], None]
"""Called after a rollback or promotion is applied (e.g. to record stages in a registry)."""


class ServeActuator:
    """Applies the core's absolute actions to one Serve application, idempotently."""

    def __init__(
        self, client: ServeClient, application: str, stage_hook: StageHook | None = None
    ) -> None:
        self.client = client
        self.application = application
        self.stage_hook = stage_hook

    def read_applied(self) -> AppliedState:
        """The routing table and replicas Serve applies now."""
        return applied_state(self.client.details(), self.application)

    def routing(self) -> RoutingTable:
        """The ingress's routing table as Serve holds it now."""
        return routing_table(self.client.details(), self.application)

    def settle(
        self, table: RoutingTable, replaced: RoutingTable | None = None, timeout_s: float = 15.0
    ) -> str:
        """Wait until Serve's details show ``table``, so the next read-modify-write sees it.

        Serve answers a PUT before its details reflect it; without this a second write soon
        after the first could read the old config and silently undo the first. When the
        details show neither ``table`` nor the table it ``replaced``, another writer changed
        the config meanwhile: waiting longer cannot help (a later write replaced this one, or
        will be read with it), so the wait ends there rather than holding the loop for the
        whole timeout; the next pass reads what Serve holds and re-applies its target.
        Returns ``settled``, ``changed_elsewhere`` or ``timeout``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            now = routing_table(self.client.details(), self.application)
            if now == table:
                return "settled"
            if replaced is not None and now != replaced:
                log.warning("routing_changed_elsewhere")
                return "changed_elsewhere"
            if time.monotonic() >= deadline:
                log.warning("routing_not_settled", timeout_s=timeout_s)
                return "timeout"
            time.sleep(0.2)

    def write_routing(self, table: RoutingTable) -> None:
        """Replace the ingress's routing table as a whole (for operators, tests and the demo)."""
        details = self.client.details()
        replaced = routing_table(details, self.application)
        configs = app_configs(details)
        with_routing(configs, self.application, table)
        self.client.deploy(deploy_config(details, configs))
        self.settle(table, replaced)

    def apply(self, action: Action) -> ApplyResult:
        """Apply one action; unchanged when Serve already holds the target."""
        try:
            if isinstance(action, ROUTING_ACTIONS):
                result = self._apply_routing(action)
            elif isinstance(action, SetReplicas):
                result = self._apply_replicas(action)
            else:
                return ApplyResult(action, Outcome.SKIPPED, "not carried out by the Serve actuator")
        except (ServeConfigError, OSError, RuntimeError, ValueError) as exc:
            log.warning("apply_failed", action=action.kind.value, error=str(exc))
            return ApplyResult(action, Outcome.FAILED, str(exc))
        updated = result.outcome is Outcome.UPDATED
        if updated and isinstance(action, Rollback | Promote) and self.stage_hook is not None:
            try:
                self.stage_hook(action)
            except Exception as exc:  # a registry hiccup must not undo a rollback
                log.warning("stage_hook_failed", action=action.kind.value, error=str(exc))
        return result

    def _apply_routing(self, action: Action) -> ApplyResult:
        details = self.client.details()
        table = routing_table(details, self.application)
        target = table_after(table, action)
        if target in (table, explicit_deployments(table)):
            return ApplyResult(action, Outcome.UNCHANGED, "routing table already at target")
        configs = app_configs(details)
        with_routing(configs, self.application, target)
        self.client.deploy(deploy_config(details, configs))
        self.settle(target, table)
        return ApplyResult(action, Outcome.UPDATED, "ingress user_config updated")

    def _apply_replicas(self, action: SetReplicas) -> ApplyResult:
        details = self.client.details()
        table = routing_table(details, self.application)
        current = replica_counts(details, self.application, table)
        target = replicas_after(table, action)
        changed = {k: n for k, n in target.items() if current.get(k) != n}
        if not changed:
            return ApplyResult(action, Outcome.UNCHANGED, "replicas already at target")
        configs = app_configs(details)
        with_replicas(configs, self.application, table.model, changed)
        self.client.deploy(deploy_config(details, configs))
        detail = ", ".join(f"{v}@{r}={n}" for (v, r), n in sorted(changed.items()))
        return ApplyResult(action, Outcome.UPDATED, f"num_replicas {detail}")

    def deploy_version(
        self, version: str, regions: Sequence[str], template_version: str | None = None
    ) -> bool:
        """Add ``version`` as its own application, copied from an existing version's config.

        The routing table learns where it runs but sends it no traffic: the rollout starts it.
        Returns False when it was already deployed.
        """
        details = self.client.details()
        table = routing_table(details, self.application)
        if version in table.deployments or version in table.weights:
            return False
        template_version = template_version or table.stable_version
        configs = app_configs(details)
        template_name = version_app_name(self.application, template_version)
        template = next((c for c in configs if c.get("name") == template_name), None)
        if template is None:
            raise ServeConfigError(f"no application {template_name!r} to copy for {version}")
        new = {k: v for k, v in template.items() if k != "deployments"}
        new["name"] = version_app_name(self.application, version)
        args = dict(new.get("args") or {})
        args["version"] = version
        args["regions"] = list(regions)
        new["args"] = args
        configs.append(new)
        deployments = dict(table.deployments)
        if not deployments:
            deployments = {v: sorted(table.region_weights) for v in table.weights}
        deployments[version] = list(regions)
        routed = table.model_copy(update={"deployments": deployments})
        with_routing(configs, self.application, routed)
        self.client.deploy(deploy_config(details, configs))
        self.settle(routed, table)
        log.info("version_deployed", version=version, regions=list(regions))
        return True
