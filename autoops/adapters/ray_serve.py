"""In-cluster access to Ray Serve: the local dashboard's Serve API with Ray's own auth headers."""

from __future__ import annotations

from typing import Any

from autoops.adapters.serve_rest import RestServeClient


def ray_auth_headers() -> dict[str, str]:
    """The headers Ray's client utilities send when token authentication is on."""
    try:
        from ray._private.authentication.http_token_authentication import (
            get_auth_headers_if_auth_enabled,
        )
    except ImportError:  # an older Ray without token authentication
        return {}
    headers: Any = get_auth_headers_if_auth_enabled({})
    return {str(k): str(v) for k, v in dict(headers).items()}


def local_dashboard_url() -> str:
    """The dashboard URL of the Ray cluster this process is connected to."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("Ray is not initialised: connect with ray.init(address=...) first")
    context: Any = ray.get_runtime_context()
    url = getattr(context, "dashboard_url", None) or ""
    if not url:
        from ray._private import worker

        node: Any = worker.global_worker.node
        url = node.address_info.get("webui_url") or "" if node is not None else ""
    if not url:
        raise RuntimeError("this Ray cluster runs without a dashboard (include_dashboard=True)")
    return url if "://" in url else f"http://{url}"


def in_cluster_client(timeout_s: float = 10.0) -> RestServeClient:
    """A Serve client for the Ray cluster this process is connected to."""
    return RestServeClient(local_dashboard_url(), timeout_s=timeout_s, headers=ray_auth_headers())
