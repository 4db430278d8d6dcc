"""A real local Prometheus for integration tests, scraping Ray through its discovery file.

``ray_session_sd_file`` finds the service-discovery file of the Ray this process started (its
session directory, not the shared temp directory that another local Ray may take over).
``prometheus_for_ray`` starts Prometheus on a free loopback port with a temp data directory and a
1 s scrape interval, and waits until it scrapes Ray's metrics. Nothing sleeps a fixed time.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from autoops.adapters.prometheus_server import (
    INSTALL_HINT,
    PrometheusServer,
    prometheus_config,
    session_service_discovery_file,
)
from tests.integration.serve_stack import wait_for


def require_prometheus() -> None:
    """Skip the calling test when no Prometheus binary is installed, saying how to get one."""
    if shutil.which("prometheus") is None:
        pytest.skip(f"Prometheus is not installed: {INSTALL_HINT}")


def ray_session_sd_file(timeout_s: float = 60.0) -> Path:
    """The discovery file of the Ray session this process is connected to, once Ray wrote it."""
    import ray

    node = ray._private.worker._global_node
    if node is None:
        raise RuntimeError("no Ray session in this process")
    path = session_service_discovery_file(node.get_session_dir_path())
    wait_for(lambda: path.is_file() and path.stat().st_size > 0, timeout_s, f"Ray to write {path}")
    return path


def instant(url: str, promql: str) -> list[dict[str, Any]]:
    """The result of one instant query (empty when Prometheus cannot answer)."""
    try:
        response = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
        result: list[dict[str, Any]] = response.json()["data"]["result"]
    except (httpx.HTTPError, ValueError, KeyError):
        return []
    return result


def metrics_target_up(url: str, port: int) -> bool:
    """Whether Prometheus's last scrape of the ``ray`` target on ``port`` succeeded."""
    return any(
        s["metric"].get("instance", "").endswith(f":{port}") and s["value"][1] == "1"
        for s in instant(url, 'up{job="ray"}')
    )


@contextmanager
def prometheus_for_ray(
    sd_file: Path, metrics_port: int, scrape_interval_s: float = 1.0, timeout_s: float = 90.0
) -> Iterator[PrometheusServer]:
    """A running Prometheus scraping the targets of ``sd_file``, once it scraped ``metrics_port``.

    Ray lists its node's metrics agent in the file a few seconds after the first write.
    """
    require_prometheus()
    config = prometheus_config(
        [sd_file], controller_targets=(), scrape_interval_s=scrape_interval_s
    )
    server = PrometheusServer(config)
    try:
        server.start()
        wait_for(
            lambda: metrics_target_up(server.url, metrics_port),
            timeout_s,
            f"Prometheus to scrape Ray's metrics agent on port {metrics_port}",
        )
        yield server
    finally:
        server.close()
