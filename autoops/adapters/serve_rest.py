"""Ray Serve's REST API on a Ray dashboard, over httpx: one client per cluster (region)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

STATUS_PATH = "/api/serve/applications/"
"""GET: Serve's instance details; PUT: replace the whole declarative config."""
TOKEN_ENV = "RAY_AUTH_TOKEN"
"""Environment variable holding the Ray dashboard token (Ray 2.60 turns token auth on)."""
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
"""Environment variable naming a file that holds the token (as Ray reads it)."""


def default_ray_token() -> str | None:
    """The token Ray's own clients would send: $RAY_AUTH_TOKEN, its path, or ~/.ray/auth_token."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        return token.strip()
    path = Path(os.environ.get(TOKEN_PATH_ENV) or Path.home() / ".ray" / "auth_token")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


class ServeRestError(RuntimeError):
    """A Serve REST call failed; the message names the URL and what came back."""


def check_dashboard_url(url: str) -> str:
    """The URL without a trailing slash, or a clear error naming what is wrong with it."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ServeRestError(
            f"dashboard URL {url!r} must look like http://HOST:8265 (scheme http or https)"
        )
    return url.rstrip("/")


class RestServeClient:
    """Reads and replaces Serve's declarative config through a dashboard's REST API."""

    def __init__(
        self,
        dashboard_url: str,
        token: str | None = None,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = check_dashboard_url(dashboard_url)
        merged = dict(headers or {})
        token = token if token is not None else default_ray_token()
        if token and not any(k.lower() == "authorization" for k in merged):
            merged["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=self.url, timeout=timeout_s, headers=merged)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _check(self, response: httpx.Response, what: str) -> None:
        if response.status_code == 401:
            raise ServeRestError(
                f"{what} {self.url}: 401, the Ray dashboard wants a token (set {TOKEN_ENV})"
            )
        if response.status_code == 403:
            raise ServeRestError(f"{what} {self.url}: 403, the Ray dashboard refused the token")
        if response.status_code != 200:
            raise ServeRestError(
                f"{what} {self.url}{STATUS_PATH}: HTTP {response.status_code}: "
                f"{response.text[:300]}"
            )

    def details(self) -> dict[str, Any]:
        """Serve's instance details."""
        try:
            response = self._client.get(STATUS_PATH)
        except httpx.HTTPError as exc:
            raise ServeRestError(f"GET {self.url}{STATUS_PATH}: {exc}") from exc
        self._check(response, "GET")
        data = response.json()
        if not isinstance(data, dict):
            raise ServeRestError(f"GET {self.url}{STATUS_PATH}: not a JSON object")
        return data

    def deploy(self, config: Mapping[str, Any]) -> None:
        """Replace Serve's whole declarative config."""
        try:
            response = self._client.put(STATUS_PATH, json=dict(config))
        except httpx.HTTPError as exc:
            raise ServeRestError(f"PUT {self.url}{STATUS_PATH}: {exc}") from exc
        self._check(response, "PUT")
