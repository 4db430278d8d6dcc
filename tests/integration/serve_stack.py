"""A real local serving stack for integration tests: one Ray, Serve, and the AutoOps apps.

``start_stack`` starts a fresh local Ray (its dashboard on, Ray's metrics export on a free port,
metrics reported every second, 2 CPUs), Serve's HTTP proxy on a free port of 127.0.0.1, trains
the default model versions into a private registry and deploys the stack's declarative config.
``ServeStack.close`` shuts Serve and Ray down. Polling helpers wait for a condition with a
deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import copy
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from autoops.adapters.prometheus_server import free_port
from autoops.contract import INGRESS_DEPLOYMENT, ROUTING_ROUTE, RoutingTable
from serve_apps.app import StackSpec, ensure_registry, stack_config, wait_until_running
from serve_apps.ingress import IngressSettings

T = TypeVar("T")

INFERENCE_TOKEN_ENV = "AUTOOPS_INFERENCE_TOKEN"
ADMIN_TOKEN_ENV = "AUTOOPS_ADMIN_TOKEN"


def wait_for(
    condition: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.25
) -> T:
    """Poll ``condition`` until it returns something truthy, else fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class Scrape:
    """One scrape of Ray's metrics export port: every sample, name + labels -> value."""

    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def total(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        return sum(
            value
            for sample, tags, value in self.samples
            if sample == name and all(tags.get(k) == v for k, v in labels.items())
        )

    def series(self, name: str) -> list[dict[str, str]]:
        """The label sets of ``name``'s samples."""
        return [tags for sample, tags, _ in self.samples if sample == name]


@dataclass
class ServeStack:
    """A running local stack and the handles a test needs to drive and observe it."""

    spec: StackSpec
    config: dict[str, Any]
    http_url: str
    metrics_url: str
    dashboard_url: str
    registry_root: Path
    inference_token: str
    admin_token: str

    # ------------------------------------------------------------------ requests

    def auth(self, admin: bool = False) -> dict[str, str]:
        """The Authorization header of the inference (or admin) routes."""
        return {"authorization": f"Bearer {self.admin_token if admin else self.inference_token}"}

    def get(self, path: str, admin: bool = False, **params: Any) -> httpx.Response:
        """GET a route of the ingress."""
        return httpx.get(self.http_url + path, headers=self.auth(admin), params=params, timeout=30)

    def post(
        self, path: str, body: Any, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """POST JSON (or raw bytes) to a route of the ingress, with the inference token."""
        all_headers = {**self.auth(), **(headers or {})}
        if isinstance(body, bytes):
            return httpx.post(self.http_url + path, content=body, headers=all_headers, timeout=30)
        return httpx.post(self.http_url + path, json=body, headers=all_headers, timeout=30)

    # ------------------------------------------------------------------ routing

    def routing(self) -> RoutingTable:
        """The routing table in the deployed config."""
        ingress = self._ingress_config()
        return RoutingTable.model_validate(ingress["deployments"][0]["user_config"])

    def set_routing(self, table: RoutingTable, timeout_s: float = 60.0) -> None:
        """Deploy ``table`` as the ingress's user_config and wait until the ingress applies it."""
        config = copy.deepcopy(self.config)
        _ingress(config, self.spec.application)["deployments"][0]["user_config"] = table.model_dump(
            mode="json"
        )
        self.deploy(config)
        expected = table.model_dump(mode="json")
        wait_for(
            lambda: self.get(ROUTING_ROUTE, admin=True).json() == expected,
            timeout_s,
            "the ingress to apply the new routing table",
        )

    def update_routing(self, **changes: Any) -> RoutingTable:
        """The deployed table with ``changes`` applied, deployed and applied."""
        table = RoutingTable.model_validate({**self.routing().model_dump(mode="json"), **changes})
        self.set_routing(table)
        return table

    def deploy(self, config: dict[str, Any], wait: bool = True, timeout_s: float = 180.0) -> None:
        """Deploy a whole declarative config (apps left out are deleted), like Serve's PUT."""
        from ray import serve
        from ray.serve._private.api import serve_start
        from ray.serve.schema import ServeDeploySchema

        client = serve_start()
        client.deploy_apps(ServeDeploySchema.model_validate(config))
        self.config = config
        if wait:
            names = [app["name"] for app in config["applications"]]
            wait_until_running(serve, names, timeout_s)

    def _ingress_config(self) -> dict[str, Any]:
        return _ingress(self.config, self.spec.application)

    # ------------------------------------------------------------------ observing

    def details(self) -> dict[str, Any]:
        """Serve's instance details (applications, deployments, replicas)."""
        from ray.serve._private.api import serve_start

        details: dict[str, Any] = serve_start().get_serve_details()
        return details

    def replica_actor_ids(self, app: str, deployment: str) -> list[str]:
        """Actor ids of a deployment's running replicas, sorted."""
        deployments = self.details()["applications"][app]["deployments"]
        replicas = deployments[deployment]["replicas"]
        return sorted(r["actor_id"] for r in replicas if r["state"] == "RUNNING")

    def ingress_actor_ids(self) -> list[str]:
        """Actor ids of the ingress's running replicas."""
        return self.replica_actor_ids(self.spec.application, INGRESS_DEPLOYMENT)

    def scrape(self) -> Scrape:
        """Every sample on Ray's metrics export port now."""
        text = httpx.get(self.metrics_url, timeout=10).text
        scrape = Scrape()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                scrape.samples.append((sample.name, dict(sample.labels), float(sample.value)))
        return scrape

    def wait_metric(
        self,
        name: str,
        at_least: float,
        timeout_s: float = 45.0,
        **labels: str,
    ) -> float:
        """Poll the export port until ``name`` (summed over ``labels``) reaches ``at_least``."""

        def reached() -> float | None:
            value = self.scrape().total(name, **labels)
            return value if value >= at_least else None

        return wait_for(reached, timeout_s, f"{name}{labels} >= {at_least}", interval_s=0.5)


def _ingress(config: dict[str, Any], application: str) -> dict[str, Any]:
    for app in config["applications"]:
        if app["name"] == application:
            return app  # type: ignore[no-any-return]
    raise KeyError(application)


def start_stack(spec: StackSpec, workdir: Path, timeout_s: float = 300.0) -> ServeStack:
    """Start Ray and Serve on free ports and deploy ``spec`` with fresh tokens (see module doc)."""
    import ray
    from ray import serve

    registry_root = Path(spec.registry_root) if spec.registry_root else workdir / "registry"
    ensure_registry(registry_root, tuple(spec.deployments))
    inference_token = secrets.token_hex(16)
    admin_token = secrets.token_hex(16)
    spec = spec.model_copy(
        update={
            "registry_root": str(registry_root),
            "settings": IngressSettings(
                inference_token_env=INFERENCE_TOKEN_ENV,
                admin_token_env=ADMIN_TOKEN_ENV,
                call_timeout_s=spec.settings.call_timeout_s,
                seed=spec.settings.seed,
            ),
            "ingress_env": {
                **spec.ingress_env,
                INFERENCE_TOKEN_ENV: inference_token,
                ADMIN_TOKEN_ENV: admin_token,
            },
        }
    )
    metrics_port, dashboard_port, http_port = free_port(), free_port(), free_port()
    context = ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=True,
        dashboard_port=dashboard_port,
        log_to_driver=bool(os.environ.get("AUTOOPS_TEST_RAY_LOGS")),
        _metrics_export_port=metrics_port,
        _system_config={"metrics_report_interval_ms": 1000},
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": http_port})
        config = stack_config(spec, port=http_port)
        stack = ServeStack(
            spec=spec,
            config=config,
            http_url=f"http://127.0.0.1:{http_port}",
            metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            dashboard_url=f"http://{context.dashboard_url}",
            registry_root=registry_root,
            inference_token=inference_token,
            admin_token=admin_token,
        )
        stack.deploy(config, timeout_s=timeout_s)
        return stack
    except BaseException:
        stop_stack()
        raise


def stop_stack() -> None:
    """Shut Serve and Ray down (safe to call twice)."""
    import ray
    from ray import serve

    if ray.is_initialized():
        serve_api: Any = serve  # serve.shutdown carries no annotations
        try:
            serve_api.shutdown()
        finally:
            ray.shutdown()


@contextmanager
def serve_stack(spec: StackSpec, workdir: Path) -> Iterator[ServeStack]:
    """A running stack for the duration of the ``with`` block."""
    stack = start_stack(spec, workdir)
    try:
        yield stack
    finally:
        stop_stack()
