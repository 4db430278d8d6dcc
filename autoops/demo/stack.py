"""The demo's local stack: one Ray, Serve with the digits apps, and Prometheus or the scraper.

Everything runs on 127.0.0.1 with free ports; ``LocalStack.close`` stops what it started
(Prometheus, Serve, Ray), also after Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoops.adapters.prometheus import PrometheusMetrics
from autoops.adapters.prometheus_server import (
    PrometheusNotInstalledError,
    PrometheusServer,
    find_prometheus,
    free_port,
    prometheus_config,
)
from autoops.adapters.scrape import BuiltinScraper
from autoops.logging import get_logger
from autoops.ports import MetricsSource

log = get_logger("autoops.demo")

INFERENCE_TOKEN_ENV = "AUTOOPS_INFERENCE_TOKEN"
ADMIN_TOKEN_ENV = "AUTOOPS_ADMIN_TOKEN"


@dataclass
class LocalStack:
    """A running local serving stack and how to reach it."""

    http_url: str
    metrics_url: str
    dashboard_url: str
    registry_root: Path
    inference_token: str
    admin_token: str
    metrics: MetricsSource
    source: str
    """prometheus | scraper."""
    prometheus: PrometheusServer | None = None
    config: dict[str, Any] = field(default_factory=dict)
    session_dir: str = ""
    """Ray's session folder: every process of this cluster names it."""

    def close(self) -> None:
        """Stop Prometheus (or the scraper), Serve and Ray; safe to call twice."""
        import ray
        from ray import serve

        stop = getattr(self.metrics, "stop", None)
        if stop is not None:
            stop()
        close = getattr(self.metrics, "close", None)
        if close is not None:
            close()
        if self.prometheus is not None:
            self.prometheus.close()
            self.prometheus = None
        if ray.is_initialized():
            try:
                serve.shutdown()  # type: ignore[no-untyped-call]
            finally:
                ray.shutdown()


def start_stack(
    workdir: Path,
    deployments: dict[str, list[str]],
    prefer_prometheus: bool = True,
    timeout_s: float = 300.0,
) -> LocalStack:
    """Start Ray, Serve and the apps (``version -> regions``), then a metrics source."""
    import ray
    from ray import serve

    from serve_apps.app import StackSpec, deploy_stack, ensure_registry
    from serve_apps.ingress import IngressSettings

    registry_root = workdir / "registry"
    ensure_registry(registry_root, tuple(deployments))
    inference_token = secrets.token_hex(16)
    admin_token = secrets.token_hex(16)
    # The ingress reads its tokens from its environment; the controller from ours.
    os.environ[ADMIN_TOKEN_ENV] = admin_token
    spec = StackSpec(
        registry_root=str(registry_root),
        deployments=deployments,
        settings=IngressSettings(
            inference_token_env=INFERENCE_TOKEN_ENV, admin_token_env=ADMIN_TOKEN_ENV
        ),
        ingress_env={INFERENCE_TOKEN_ENV: inference_token, ADMIN_TOKEN_ENV: admin_token},
        access_log=False,
    )
    metrics_port, dashboard_port, http_port = free_port(), free_port(), free_port()
    context = ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=True,
        dashboard_port=dashboard_port,
        log_to_driver=False,
        logging_level=30,
        _metrics_export_port=metrics_port,
        _system_config={"metrics_report_interval_ms": 1000},
    )
    prometheus: PrometheusServer | None = None
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": http_port})
        config = deploy_stack(spec, port=http_port, timeout_s=timeout_s)
        metrics_target = f"127.0.0.1:{metrics_port}"
        source: MetricsSource
        kind = "scraper"
        if prefer_prometheus:
            try:
                find_prometheus()
                prometheus = PrometheusServer(
                    prometheus_config(
                        controller_targets=(),
                        scrape_interval_s=1.0,
                        static_ray_targets=(metrics_target,),
                    )
                )
                prometheus.start()
                source = PrometheusMetrics(prometheus.url)
                kind = "prometheus"
            except PrometheusNotInstalledError as exc:
                log.warning("prometheus_not_installed", hint=str(exc))
        if kind == "scraper":
            scraper = BuiltinScraper([metrics_target])
            scraper.start()
            source = scraper
        return LocalStack(
            http_url=f"http://127.0.0.1:{http_port}",
            metrics_url=f"http://{metrics_target}/metrics",
            dashboard_url=f"http://{context.dashboard_url}",
            registry_root=registry_root,
            inference_token=inference_token,
            admin_token=admin_token,
            metrics=source,
            source=kind,
            prometheus=prometheus,
            config=config,
            session_dir=str(getattr(context, "address_info", {}).get("session_dir", "")),
        )
    except BaseException:
        if prometheus is not None:
            prometheus.close()
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
        raise
