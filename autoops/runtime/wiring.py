"""Wires adapters into a running controller: used by ``autoops run`` and ``autoops demo``.

Everything outside-facing is chosen here from a plain ``RunSettings``: the metrics source
(Prometheus or the built-in scraper), the Serve actuator, the signals, the store, the lease,
the control API and the webhook. The registry hooks (reference samples for drift, retraining,
stage history) are wired only when a model registry is named.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from autoops.adapters.alerts import notifier_for
from autoops.adapters.carbon import SignalsSpec, build_signals
from autoops.adapters.serve_actuator import ServeActuator, ServeClient
from autoops.adapters.serve_config import (
    ServeConfigError,
    app_configs,
    deploy_config,
    explicit_deployments,
    routing_table,
)
from autoops.adapters.serve_rest import RestServeClient
from autoops.contract import version_app_name
from autoops.logging import get_logger
from autoops.model import Action, Promote, Retrain, Rollback
from autoops.policy.loader import load_policy
from autoops.policy.schema import Policy
from autoops.ports import ApplyResult, MetricsSource, SampleSource
from autoops.regions.model import RegionCatalogue
from autoops.runtime.api import ControlHandlers, ControlServer
from autoops.runtime.controller import Controller, Managed
from autoops.runtime.detection import Detection
from autoops.runtime.loop import Reconciler, SystemClock
from autoops.runtime.metrics import ControllerMetrics
from autoops.runtime.record import Recorder
from autoops.runtime.remediate import RetrainRemediation
from autoops.store.lease import SQLiteLease
from autoops.store.sqlite import SQLiteStore

log = get_logger("autoops.wiring")


@dataclass
class RunSettings:
    """Everything ``autoops run`` needs to build a controller."""

    policies: Sequence[Path]
    dashboard_url: str
    metrics: MetricsSource
    samples: SampleSource | None = None
    signals: SignalsSpec | None = None
    store_path: Path = Path("autoops-state/autoops.db")
    api_port: int | None = 0
    """None: no control API; 0: a free port."""
    api_host: str = "127.0.0.1"
    api_token: str | None = None
    webhook_url: str | None = None
    registry_root: Path | None = None
    dry_run: bool = False
    record: Path | None = None
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    lease_ttl_s: float = 15.0


@dataclass
class Running:
    """A built controller and what must be closed with it."""

    controller: Controller
    store: SQLiteStore
    metrics: ControllerMetrics
    api: ControlServer | None
    closers: list[Callable[[], object]] = field(default_factory=list)

    def close(self) -> None:
        """Stop the API, release leases and close files (safe to call twice)."""
        self.controller.stop()
        self.controller.release()
        if self.api is not None:
            self.api.stop()
        for close in reversed(self.closers):
            try:
                close()
            except Exception as exc:  # closing is best effort
                log.warning("close_failed", error=str(exc))
        self.closers.clear()
        self.store.close()


def _registry_hooks(
    root: Path, actuator: ServeActuator, policy: Policy
) -> tuple[Callable[[str], npt.NDArray[np.float64] | None], Callable[[Action], None]]:
    """Reference samples and stage history from the serving app's model registry."""
    from serve_apps.registry import ModelRegistry

    registry = ModelRegistry(root)

    def reference(version: str) -> npt.NDArray[np.float64] | None:
        try:
            return np.asarray(registry.reference_sample(version), dtype=np.float64)
        except Exception as exc:  # unknown version: no drift test, said once per call
            log.warning("reference_unavailable", version=version, error=str(exc))
            return None

    def stages(action: Action) -> None:
        if isinstance(action, Rollback):
            registry.set_stage(action.from_version, "rejected", "rolled back by autoops")
            registry.set_stage(action.to_version, "stable", "rollback target")
        elif isinstance(action, Promote):
            registry.set_stage(action.version, "stable", "promoted by autoops")

    del policy, actuator
    return reference, stages


READY_TIMEOUT_S = 300.0
"""How long a new version's Serve application may take to run before its deploy fails."""


def _app_status(client: ServeClient, name: str) -> str | None:
    """The status Serve reports for application ``name`` (RUNNING, DEPLOYING...), None if absent."""
    app = (client.details().get("applications") or {}).get(name) or {}
    status = app.get("status")
    return None if status is None else str(status)


def _start_unrouted(client: ServeClient, application: str, version: str, regions: list[str]) -> str:
    """Add ``version``'s application (a copy of the stable's) without routing to it; its name."""
    details = client.details()
    table = routing_table(details, application)
    name = version_app_name(application, version)
    configs = app_configs(details)
    if any(c.get("name") == name for c in configs):
        return name
    template_name = version_app_name(application, table.stable_version)
    template = next((c for c in configs if c.get("name") == template_name), None)
    if template is None:
        raise ServeConfigError(f"no application {template_name!r} to copy for {version}")
    new = {k: v for k, v in template.items() if k != "deployments"}
    new["name"] = name
    new["args"] = {**dict(new.get("args") or {}), "version": version, "regions": list(regions)}
    configs.append(new)
    client.deploy(deploy_config(details, configs))
    return name


def deploy_when_ready(
    client: ServeClient,
    actuator: ServeActuator,
    version: str,
    regions: list[str],
    timeout_s: float = READY_TIMEOUT_S,
    poll_s: float = 0.5,
) -> bool:
    """Deploy ``version`` and make it a rollout candidate only once its replicas run.

    A version in the routing table is a candidate at once: listed while its replicas still
    start, the canary's first requests wait for them (seconds), and its analysis blames the
    cold start on the version. So the application is deployed first, unrouted, and the routing
    table learns the version only when Serve reports the application RUNNING. False when the
    version was already routed.
    """
    if version in explicit_deployments(actuator.routing()).deployments:
        return False
    name = _start_unrouted(client, actuator.application, version, regions)
    deadline = time.monotonic() + timeout_s
    while (status := _app_status(client, name)) != "RUNNING":
        if status == "DEPLOY_FAILED":
            raise ServeConfigError(f"application {name!r} failed to deploy")
        if time.monotonic() >= deadline:
            raise ServeConfigError(f"application {name!r} not running after {timeout_s:g}s")
        time.sleep(poll_s)
    table = explicit_deployments(actuator.routing())
    deployments = {**table.deployments, version: list(regions)}
    actuator.write_routing(table.model_copy(update={"deployments": deployments}))
    log.info("version_deployed", version=version, regions=list(regions))
    return True


def _retrainer(
    root: Path,
    client: ServeClient,
    actuator: ServeActuator,
    samples: SampleSource,
    signals: Any,
    policy: Policy,
) -> Callable[[Retrain, str], ApplyResult]:
    """Retrain as a Ray task on the base's training data plus recent labelled samples."""

    def train(base: str, new: str, x: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> str:
        import ray

        from serve_apps.models import load_digits_split
        from serve_apps.retrain import retrain_as_ray_task

        split = load_digits_split()
        xs = np.concatenate([np.asarray(split.X_train, dtype=np.float64), x])
        ys = np.concatenate([np.asarray(split.y_train, dtype=np.int64), y])
        record = ray.get(retrain_as_ray_task(str(root), base, new, xs, ys, seed=0, num_cpus=0.5))
        return str(record.version)

    def deploy(version: str) -> object:
        table = actuator.routing()
        regions = sorted({r for v, r in table.deployed_pairs() if v == table.stable_version})
        return deploy_when_ready(client, actuator, version, regions)

    return RetrainRemediation(
        samples=samples,
        train=train,
        deploy=deploy,
        clock=SystemClock(),
        signals=signals,
        allowed_regions=tuple(policy.intent.allowed_regions),
    )


def build(settings: RunSettings, catalogue: RegionCatalogue) -> Running:
    """Build (but do not start) a controller for every policy in ``settings``."""
    policies = [(path, load_policy(path, catalogue)) for path in settings.policies]
    store = SQLiteStore(settings.store_path)
    metrics = ControllerMetrics()
    closers: list[Callable[[], object]] = []
    notifier = notifier_for(settings.webhook_url)
    closers.append(notifier.close)
    recorder = Recorder(settings.record) if settings.record else None
    if recorder is not None:
        closers.append(recorder.close)
    regions = sorted({r for _, p in policies for r in p.intent.allowed_regions})
    spec = settings.signals or SignalsSpec(source="static", regions=tuple(regions))
    signals = build_signals(spec, catalogue, clock_origin=time.time())
    client = RestServeClient(settings.dashboard_url)
    closers.append(client.close)
    managed: list[Managed] = []
    for path, policy in policies:
        actuator = ServeActuator(client, policy.target.application)
        reference = None
        retrainer = None
        if settings.registry_root is not None:
            reference, stages = _registry_hooks(settings.registry_root, actuator, policy)
            actuator.stage_hook = stages
            if settings.samples is not None:
                retrainer = _retrainer(
                    settings.registry_root, client, actuator, settings.samples, signals, policy
                )
        reconciler = Reconciler(
            policy=policy,
            catalogue=catalogue,
            metrics=settings.metrics,
            actuator=actuator,
            signals=signals,
            store=store,
            controller_metrics=metrics,
            detection=Detection(policy, settings.samples, reference),
            notify=notifier.notify,
            retrainer=retrainer,
            recorder=recorder,
            dry_run=settings.dry_run,
        )
        managed.append(Managed(reconciler, path=path))
    controller = Controller(
        managed,
        lease=SQLiteLease(store),
        holder=settings.holder,
        lease_ttl_s=settings.lease_ttl_s,
    )
    api = None
    if settings.api_port is not None:
        api = ControlServer(
            ControlHandlers(
                status=controller.status,
                pause=controller.pause,
                resume=controller.resume,
                approve=controller.approve,
                external_alerts=controller.external_alerts,
            ),
            metrics,
            settings.api_token,
            host=settings.api_host,
            port=settings.api_port,
        )
    return Running(controller, store, metrics, api, closers)
