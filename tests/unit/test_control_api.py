from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoops.adapters.alerts import ExternalAlert
from autoops.runtime.api import (
    API_TOKEN_ENV,
    ApiTokenError,
    ControlHandlers,
    ControlServer,
    load_api_token,
)
from autoops.runtime.metrics import ControllerMetrics

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class FakeController:
    """Records every callback the API makes."""

    calls: list[str] = field(default_factory=list)
    alerts: list[ExternalAlert] = field(default_factory=list)
    approvals: set[str] = field(default_factory=lambda: {"checkout.promote"})
    fail_status: bool = False

    def status(self) -> dict[str, Any]:
        if self.fail_status:
            raise RuntimeError("store is locked")
        return {"policies": [{"policy": "checkout", "phase": "canary", "step": 2}]}

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def approve(self, approval_id: str) -> bool:
        self.calls.append(f"approve:{approval_id}")
        return approval_id in self.approvals

    def external_alerts(self, alerts: list[ExternalAlert]) -> int:
        self.calls.append("alerts")
        self.alerts.extend(alerts)
        return len(alerts)

    def handlers(self) -> ControlHandlers:
        return ControlHandlers(
            status=self.status,
            pause=self.pause,
            resume=self.resume,
            approve=self.approve,
            external_alerts=self.external_alerts,
        )


@dataclass
class Api:
    controller: FakeController
    metrics: ControllerMetrics
    server: ControlServer
    client: httpx.Client


@contextmanager
def serving(token: str | None, **kwargs: Any) -> Iterator[Api]:
    controller, metrics = FakeController(), ControllerMetrics()
    server = ControlServer(controller.handlers(), metrics, token, **kwargs)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            yield Api(controller, metrics, server, client)
    finally:
        server.stop()


@pytest.fixture
def api() -> Iterator[Api]:
    with serving(TOKEN) as api:
        yield api


@pytest.fixture
def open_api() -> Iterator[Api]:
    """A server started with no token configured."""
    with serving(None) as api:
        yield api


def _alertmanager(*statuses: str) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "autoops",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": f"Alert{i}", "autoops_policy": "checkout"},
                "annotations": {},
                "startsAt": "2024-05-01T12:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
            for i, status in enumerate(statuses)
        ],
    }


POSTS = [
    pytest.param("/pause", None, ["pause"], id="pause"),
    pytest.param("/resume", None, ["resume"], id="resume"),
    pytest.param("/approve/checkout.promote", None, ["approve:checkout.promote"], id="approve"),
    pytest.param("/alerts", _alertmanager("firing"), ["alerts"], id="alerts"),
]


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize(("path", "body", "calls"), POSTS)
def test_post_without_token_is_401_and_does_nothing(
    api: Api, path: str, body: Any, calls: list[str]
) -> None:
    response = api.client.post(path, json=body)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "bearer token" in response.json()["error"]
    assert api.controller.calls == []


@pytest.mark.parametrize(("path", "body", "calls"), POSTS)
@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer wrong-token", id="wrong"),
        pytest.param(f"Bearer {TOKEN}x", id="longer"),
        pytest.param(f"Bearer {TOKEN[:-1]}", id="prefix"),
    ],
)
def test_post_with_wrong_token_is_403_and_does_nothing(
    api: Api, path: str, body: Any, calls: list[str], header: str
) -> None:
    response = api.client.post(path, json=body, headers={"Authorization": header})

    assert response.status_code == 403
    assert api.controller.calls == []


@pytest.mark.parametrize(
    "header",
    [pytest.param(f"Basic {TOKEN}", id="basic"), pytest.param("Bearer", id="empty")],
)
def test_post_with_another_scheme_is_401(api: Api, header: str) -> None:
    response = api.client.post("/pause", headers={"Authorization": header})

    assert response.status_code == 401
    assert api.controller.calls == []


@pytest.mark.parametrize(("path", "body", "calls"), POSTS)
def test_post_with_the_token_is_200_and_calls_back(
    api: Api, path: str, body: Any, calls: list[str]
) -> None:
    response = api.client.post(path, json=body, headers=AUTH)

    assert response.status_code == 200, response.text
    assert api.controller.calls == calls


def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    response = api.client.post("/pause", headers={"Authorization": f"bearer {TOKEN}"})

    assert response.status_code == 200


@pytest.mark.parametrize(("path", "body", "calls"), POSTS)
def test_with_no_token_configured_every_post_is_refused_saying_how_to_configure_one(
    open_api: Api, path: str, body: Any, calls: list[str]
) -> None:
    response = open_api.client.post(path, json=body, headers={"Authorization": "Bearer x"})

    assert response.status_code == 403
    assert API_TOKEN_ENV in response.json()["error"]
    assert "--api-token-file" in response.json()["error"]
    assert open_api.controller.calls == []


def test_gets_need_no_token(api: Api) -> None:
    for path in ("/healthz", "/status", "/metrics"):
        assert api.client.get(path).status_code == 200, path


# --------------------------------------------------------------------------- routes


def test_healthz_says_ok(api: Api) -> None:
    response = api.client.get("/healthz")

    assert (response.status_code, response.text) == (200, "ok")


def test_status_is_the_callbacks_json(api: Api) -> None:
    response = api.client.get("/status")

    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == api.controller.status()


def test_metrics_parse_and_hold_the_controllers_families(api: Api) -> None:
    api.metrics.tick("checkout")
    api.metrics.action("checkout", "rollback", "updated")
    api.metrics.audit_head(4, "f" * 64)

    response = api.client.get("/metrics")

    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert {"autoops_ticks", "autoops_actions", "autoops_audit_head_seq"} <= set(families)
    (tick,) = families["autoops_ticks"].samples
    assert (tick.labels, tick.value) == ({"policy": "checkout"}, 1.0)


def test_metrics_answer_openmetrics_when_asked(api: Api) -> None:
    response = api.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )

    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_pause_and_resume_set_the_paused_gauge(api: Api) -> None:
    def paused() -> float:
        for family in text_string_to_metric_families(api.client.get("/metrics").text):
            if family.name == "autoops_paused":
                return family.samples[0].value
        raise AssertionError("autoops_paused missing")

    api.client.post("/pause", headers=AUTH)
    assert paused() == 1
    api.client.post("/resume", headers=AUTH)
    assert paused() == 0


def test_approving_an_unknown_id_is_404(api: Api) -> None:
    response = api.client.post("/approve/checkout.rollback", headers=AUTH)

    assert response.status_code == 404
    assert "checkout.rollback" in response.json()["error"]


def test_approval_id_is_url_decoded(api: Api) -> None:
    api.controller.approvals.add("shop-eu.set_replicas")

    response = api.client.post("/approve/shop-eu%2Eset_replicas", headers=AUTH)

    assert response.json() == {"approved": "shop-eu.set_replicas"}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/approve/", id="empty"),
        pytest.param("/approve/a%20b", id="space"),
        pytest.param("/approve/..%2Fetc", id="dots"),
    ],
)
def test_malformed_approval_ids_are_400(api: Api, path: str) -> None:
    response = api.client.post(path, headers=AUTH)

    assert response.status_code == 400
    assert api.controller.calls == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/nope", 404, id="get-unknown"),
        pytest.param("POST", "/nope", 404, id="post-unknown"),
        pytest.param("GET", "/healthz/", 404, id="trailing-slash"),
        pytest.param("GET", "/pause", 405, id="get-a-post-route"),
        pytest.param("GET", "/approve/checkout.promote", 405, id="get-approve"),
        pytest.param("POST", "/status", 405, id="post-a-get-route"),
    ],
)
def test_unknown_routes_and_wrong_methods_answer_json(
    api: Api, method: str, path: str, status: int
) -> None:
    response = api.client.request(method, path, headers=AUTH)

    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert path in response.json()["error"]
    assert api.controller.calls == []


def test_unsupported_method_answers_json(api: Api) -> None:
    response = api.client.put("/pause", headers=AUTH)

    assert response.status_code == 501
    assert "PUT" in response.json()["error"]
    assert api.controller.calls == []


def test_unknown_route_lists_the_routes(api: Api) -> None:
    error = api.client.get("/nope").json()["error"]

    for route in ("GET /status", "POST /pause", "POST /approve/{id}", "POST /alerts"):
        assert route in error


# --------------------------------------------------------------------------- alerts in


def test_only_firing_alertmanager_alerts_reach_the_callback(api: Api) -> None:
    payload = _alertmanager("firing", "resolved", "firing")

    response = api.client.post("/alerts", json=payload, headers=AUTH)

    assert response.json() == {"received": 3, "firing": 2, "accepted": 2}
    assert [a.name for a in api.controller.alerts] == ["Alert0", "Alert2"]
    assert all(a.labels["autoops_policy"] == "checkout" for a in api.controller.alerts)


def test_resolved_only_alerts_do_not_call_back(api: Api) -> None:
    response = api.client.post("/alerts", json=_alertmanager("resolved"), headers=AUTH)

    assert response.json() == {"received": 1, "firing": 0, "accepted": 0}
    assert api.controller.calls == []


def test_malformed_alertmanager_payload_is_422_naming_the_field(api: Api) -> None:
    payload = _alertmanager("firing")
    del payload["alerts"][0]["labels"]["alertname"]

    response = api.client.post("/alerts", json=payload, headers=AUTH)

    assert response.status_code == 422
    assert response.json()["error"].startswith("alerts[0].labels.alertname")
    assert api.controller.calls == []


def test_non_json_alert_body_is_400(api: Api) -> None:
    response = api.client.post("/alerts", content=b"{not json", headers=AUTH)

    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]


# --------------------------------------------------------------------------- limits and errors


def test_body_over_the_limit_is_413_and_not_passed_on() -> None:
    with serving(TOKEN, max_body_bytes=1024) as api:
        big = _alertmanager(*["firing"] * 40)
        assert len(json.dumps(big)) > 1024

        response = api.client.post("/alerts", json=big, headers=AUTH)

        assert response.status_code == 413
        assert "1024" in response.json()["error"]
        assert api.controller.calls == []
        assert api.client.get("/healthz").status_code == 200


def test_auth_is_checked_before_the_body_size() -> None:
    with serving(TOKEN, max_body_bytes=16) as api:
        response = api.client.post("/pause", content=b"x" * 4096)

        assert response.status_code == 401


def test_a_failing_callback_is_500_json_and_the_server_goes_on(api: Api) -> None:
    api.controller.fail_status = True

    response = api.client.get("/status")

    assert response.status_code == 500
    assert "store is locked" in response.json()["error"]
    assert api.client.get("/healthz").status_code == 200


# --------------------------------------------------------------------------- lifecycle


def test_port_zero_picks_a_free_loopback_port_and_stop_frees_it() -> None:
    server = ControlServer(FakeController().handlers(), ControllerMetrics(), TOKEN)
    server.start()
    try:
        assert server.port != 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200
    finally:
        server.stop()
    server.stop()  # twice is fine

    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/healthz", timeout=30)
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", server.port))


def test_a_port_in_use_fails_at_start_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ControlServer(FakeController().handlers(), ControllerMetrics(), TOKEN, port=port)
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            server.start()


def test_starting_twice_is_an_error() -> None:
    server = ControlServer(FakeController().handlers(), ControllerMetrics(), TOKEN)
    with server, pytest.raises(RuntimeError, match="already running"):
        server.start()


# --------------------------------------------------------------------------- the token


def _secret_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return path


@pytest.mark.parametrize(
    ("env", "file_text", "expected"),
    [
        pytest.param({}, None, None, id="none-configured"),
        pytest.param({API_TOKEN_ENV: "from-env"}, None, "from-env", id="env"),
        pytest.param({API_TOKEN_ENV: " padded\n"}, None, "padded", id="env-stripped"),
        pytest.param({}, "from-file\n", "from-file", id="file-newline-stripped"),
        pytest.param({API_TOKEN_ENV: "from-env"}, "from-file", "from-file", id="file-wins"),
        pytest.param({"OTHER": "x"}, None, None, id="other-vars-ignored"),
    ],
)
def test_token_comes_from_file_then_environment(
    tmp_path: Path, env: dict[str, str], file_text: str | None, expected: str | None
) -> None:
    path = None if file_text is None else _secret_file(tmp_path, file_text)

    assert load_api_token(env, path) == expected


@pytest.mark.parametrize(
    ("env", "file_text", "message"),
    [
        pytest.param({API_TOKEN_ENV: ""}, None, f"{API_TOKEN_ENV} is empty", id="env-empty"),
        pytest.param({API_TOKEN_ENV: "  \n"}, None, "is empty", id="env-blank"),
        pytest.param({}, "\n", "is empty", id="file-empty"),
        pytest.param({API_TOKEN_ENV: "two words"}, None, "without spaces", id="inner-space"),
        pytest.param({}, "tökén", "printable ASCII", id="non-ascii"),
    ],
)
def test_unusable_tokens_are_refused_saying_where_from(
    tmp_path: Path, env: dict[str, str], file_text: str | None, message: str
) -> None:
    path = None if file_text is None else _secret_file(tmp_path, file_text)

    with pytest.raises(ApiTokenError, match=message) as err:
        load_api_token(env, path)
    if path is not None:
        assert str(path) in str(err.value)


def test_missing_token_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent"

    with pytest.raises(ApiTokenError, match="cannot read API token file") as err:
        load_api_token({API_TOKEN_ENV: "ignored"}, path)
    assert str(path) in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_token_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = _secret_file(tmp_path, "t")
    path.chmod(0)

    with pytest.raises(ApiTokenError, match="Permission denied") as err:
        load_api_token({}, path)
    assert str(path) in str(err.value)


def test_a_directory_is_not_a_token_file(tmp_path: Path) -> None:
    with pytest.raises(ApiTokenError, match="cannot read API token file"):
        load_api_token({}, tmp_path)
