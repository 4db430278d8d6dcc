"""Raw samples from the ingress's admin route, on a tiny local server that behaves like it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autoops.adapters.samples import HttpSampleSource, SamplesError
from autoops.contract import SAMPLES_ROUTE
from tests.unit.test_prometheus_adapter import closed_port, http_server

TOKEN = "s3cret"


def record(t: float, version: str = "v1") -> dict[str, Any]:
    return {
        "time": t,
        "version": version,
        "region": "eu-west",
        "inputs": [0.0, 1.0],
        "prediction": 3,
        "confidence": 0.9,
    }


class Ingress:
    """Answers /admin/samples like the serving app's ingress (one header check, one cap)."""

    def __init__(self, records: list[dict[str, Any]], cap: int = 500) -> None:
        self.records = records
        self.cap = cap
        self.seen: list[dict[str, list[str]]] = []

    def __call__(self, path: str, form: dict[str, list[str]]) -> tuple[int, str]:
        self.seen.append(form)
        if path != SAMPLES_ROUTE:
            return 404, json.dumps({"detail": "Not Found"})
        limit = int(form["limit"][0])
        if not 1 <= limit <= self.cap:
            return 422, json.dumps({"detail": f"limit: must be 1..{self.cap}", "field": "limit"})
        mine = [r for r in self.records if r["version"] == form["version"][0]]
        return 200, json.dumps(mine[::-1][:limit])  # newest first


def test_samples_are_the_versions_most_recent_oldest_first_with_the_bearer_token() -> None:
    ingress = Ingress([record(1.0), record(2.0, "v2"), record(3.0), record(4.0)])
    with http_server(ingress, require_bearer=TOKEN) as url:
        source = HttpSampleSource(url, TOKEN)
        got = source.samples("v1", 2)
        source.close()
    assert [r.time for r in got] == [3.0, 4.0]
    assert {r.version for r in got} == {"v1"}
    assert ingress.seen[0]["version"] == ["v1"]


def test_asking_for_more_than_the_ingress_keeps_gets_all_it_keeps() -> None:
    ingress = Ingress([record(float(t)) for t in range(10)], cap=4)
    with http_server(ingress) as url:
        got = HttpSampleSource(url, TOKEN).samples("v1", 5000)
    assert [r.time for r in got] == [6.0, 7.0, 8.0, 9.0]


REFUSALS = [
    ("wrong-token", 401, {"detail": "bearer token does not match"}, "refused (HTTP 401: bearer"),
    ("admin-off", 403, {"detail": "admin routes are off"}, "refused (HTTP 403: admin routes"),
    ("not-the-ingress", 404, {"detail": "Not Found"}, "no samples route here"),
    ("server-error", 500, {"detail": "boom"}, "HTTP 500: boom"),
]


@pytest.mark.parametrize(
    ("status", "body", "expected"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_an_error_answer_is_one_clear_line(status: int, body: Any, expected: str) -> None:
    with (
        http_server(lambda path, form: (status, json.dumps(body))) as url,
        pytest.raises(SamplesError) as info,
    ):
        HttpSampleSource(url, TOKEN).samples("v1", 10)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [("<html>", "not JSON"), (json.dumps([{"time": "soon"}]), "unusable sample at 0.time")],
    ids=["not-json", "bad-record"],
)
def test_an_answer_that_is_not_samples_is_refused_naming_where(body: str, expected: str) -> None:
    with (
        http_server(lambda path, form: (200, body)) as url,
        pytest.raises(SamplesError, match=expected),
    ):
        HttpSampleSource(url, TOKEN).samples("v1", 10)


def test_an_unreachable_ingress_is_a_samples_error() -> None:
    with pytest.raises(SamplesError, match="ConnectError"):
        HttpSampleSource(closed_port(), TOKEN, timeout_s=1.0).samples("v1", 10)


def test_a_limit_under_one_or_no_token_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="limit"):
        HttpSampleSource("http://127.0.0.1:1", TOKEN).samples("v1", 0)
    with pytest.raises(ValueError, match="token"):
        HttpSampleSource("http://127.0.0.1:1", "")
