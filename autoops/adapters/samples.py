"""Raw recent samples per version from the ingress's admin route (``SampleSource``), for drift."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from autoops.contract import SAMPLES_ROUTE, SampleRecord

__all__ = ["HttpSampleSource", "SamplesError"]

_RECORDS = TypeAdapter(list[SampleRecord])


class SamplesError(RuntimeError):
    """The admin route did not give samples; the message is one line that says why."""


class HttpSampleSource:
    """``SampleSource`` over ``GET {base_url}/admin/samples`` with a bearer admin token."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token:
            raise ValueError("the admin route needs a bearer token")
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            headers={"authorization": f"Bearer {token}"},
            transport=transport,
        )

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()

    def samples(self, version: str, limit: int) -> Sequence[SampleRecord]:
        """The most recent ``limit`` samples of ``version``, oldest first; raises SamplesError."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        where = f"{self.base_url}{SAMPLES_ROUTE}"
        response = self._get(where, version, limit)
        cap = _LIMIT_CAP.search(_detail(response)) if response.status_code == 422 else None
        if cap is not None and 1 <= int(cap.group(1)) < limit:
            # The ingress keeps fewer samples than asked for: ask for all it keeps.
            response = self._get(where, version, int(cap.group(1)))
        if response.status_code in (401, 403):
            raise SamplesError(
                f"{where}: the admin token was refused (HTTP {response.status_code}"
                f"{_detail(response)})"
            )
        if response.status_code == 404:
            raise SamplesError(f"{where}: no samples route here (HTTP 404); is it the ingress?")
        if response.status_code != 200:
            raise SamplesError(f"{where}: HTTP {response.status_code}{_detail(response)}")
        try:
            body: Any = response.json()
        except ValueError:
            raise SamplesError(f"{where}: the answer is not JSON") from None
        if isinstance(body, dict) and "samples" in body:
            body = body["samples"]
        try:
            records = _RECORDS.validate_python(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            place = ".".join(str(p) for p in first["loc"])
            raise SamplesError(f"{where}: unusable sample at {place}: {first['msg']}") from None
        mine = sorted((r for r in records if r.version == version), key=lambda r: r.time)
        return mine[-limit:]

    def _get(self, where: str, version: str, limit: int) -> httpx.Response:
        try:
            return self._client.get(SAMPLES_ROUTE, params={"version": version, "limit": limit})
        except httpx.TimeoutException:
            raise SamplesError(f"{where}: no answer in time") from None
        except httpx.HTTPError as exc:
            raise SamplesError(f"{where}: {type(exc).__name__}: {exc}") from None


_LIMIT_CAP = re.compile(r"limit: must be 1\.\.(\d+)")


def _detail(response: httpx.Response) -> str:
    """``: <message>`` from an error answer's JSON, or nothing."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            if isinstance(body.get(key), str):
                return f": {body[key][:200]}"
    return ""
