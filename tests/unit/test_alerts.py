from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from autoops.adapters.alerts import (
    AlertPayloadError,
    BackgroundNotifier,
    ExternalAlert,
    NotifyResult,
    NullNotifier,
    RepeatSuppressor,
    WebhookConfigError,
    WebhookNotifier,
    describe_action,
    format_action_message,
    notifier_for,
    parse_alertmanager,
    validate_webhook_url,
)
from autoops.model import (
    Action,
    Alert,
    Hold,
    Promote,
    Retrain,
    Rollback,
    SetCascadeThreshold,
    SetRegionWeights,
    SetReplicas,
    SetTraffic,
)

# --------------------------------------------------------------------------- a real receiver


class Receiver:
    """A loopback HTTP server that records every JSON body posted and answers scripted codes."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.bodies.append(json.loads(body))
                receiver.paths.append(self.path)
                code = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/secret"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _dead_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


ROLLBACK = Rollback(from_version="v2", to_version="v1")
REASONS = ("canary error ratio 0.2 > 0.01 (judge: fail)",)
EVIDENCE: dict[str, Any] = {"canary.error_ratio": 0.2, "stable.error_ratio": 0.001, "p": None}


def _texts(message: Mapping[str, Any]) -> str:
    """All the text a person would read in a Slack message."""
    parts = [message["text"]]
    for block in message["blocks"]:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts.extend(f["text"] for f in block.get("fields", []))
    return "\n".join(parts)


# --------------------------------------------------------------------------- message shape


def test_message_has_slack_shape_with_action_policy_reasons_and_evidence() -> None:
    message = format_action_message("checkout", "abc123", ROLLBACK, REASONS, EVIDENCE)

    assert set(message) == {"text", "blocks"}
    assert message["blocks"][0]["type"] == "header"
    assert message["blocks"][0]["text"]["type"] == "plain_text"
    assert all(b["type"] in {"header", "section"} for b in message["blocks"])
    text = _texts(message)
    for expected in ("checkout", "rollback v2 → v1", "abc123", "canary error ratio 0.2"):
        assert expected in text
    assert "canary.error_ratio = 0.2" in text
    assert "p = n/a" in text
    assert "rollback" in message["text"] and "checkout" in message["text"]


def test_escalation_message_says_escalation_and_severity() -> None:
    alert = Alert(severity="critical", message="every version fails; not rolling back")

    message = format_action_message("checkout", "r1", alert, (), {})

    assert "escalation" in message["blocks"][0]["text"]["text"].lower()
    text = _texts(message)
    assert "critical" in text
    assert "every version fails" in text
    assert "_none given_" in text


def test_message_escapes_slack_control_characters() -> None:
    message = format_action_message(
        "p", "r", Hold(reason="x < y & z > w"), ("<!channel> ping",), {}
    )

    text = _texts(message)
    assert "&lt;!channel&gt;" in text
    assert "x &lt; y &amp; z &gt; w" in text
    assert "<!channel>" not in text


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        pytest.param(SetTraffic({"v1": 0.95, "v2": 0.05}), "traffic v1 95%, v2 5%", id="traffic"),
        pytest.param(
            SetTraffic({"v1": 1.0}, shadow_version="v2", shadow_fraction=0.1),
            "traffic v1 100% (shadow v2 at 10%)",
            id="shadow",
        ),
        pytest.param(
            SetReplicas({"eu-west": 3, "eu-central": 2}),
            "replicas eu-central=2, eu-west=3 (total 5)",
            id="replicas",
        ),
        pytest.param(
            SetRegionWeights({"eu-west": 0.7, "eu-central": 0.3}),
            "region weights eu-central 30%, eu-west 70%",
            id="regions",
        ),
        pytest.param(SetCascadeThreshold(0.8), "cascade threshold 0.8", id="cascade"),
        pytest.param(ROLLBACK, "rollback v2 → v1", id="rollback"),
        pytest.param(Promote("v2"), "promote v2", id="promote"),
        pytest.param(
            Retrain("v1", deadline=1_700_000_000.0),
            "retrain from v1 by 2023-11-14 22:13 UTC",
            id="retrain",
        ),
        pytest.param(Hold("metrics outage"), "hold: metrics outage", id="hold"),
        pytest.param(Alert("warning", "drift"), "[warning] drift", id="alert"),
    ],
)
def test_every_action_kind_is_described_for_people(action: Action, expected: str) -> None:
    assert describe_action(action) == expected


@settings(deadline=None, max_examples=50)
@given(
    reasons=st.lists(st.text(max_size=400), max_size=30),
    evidence=st.dictionaries(
        st.text(min_size=1, max_size=60),
        st.one_of(st.none(), st.floats(allow_nan=True), st.text(max_size=200)),
        max_size=80,
    ),
)
def test_message_stays_within_slack_block_limits(
    reasons: list[str], evidence: dict[str, Any]
) -> None:
    message = format_action_message("p" * 200, "r", ROLLBACK, reasons, evidence)

    json.dumps(message)  # serialisable as it is
    assert len(message["blocks"][0]["text"]["text"]) <= 150
    for block in message["blocks"][1:]:
        if "text" in block:
            assert len(block["text"]["text"]) <= 3000
        assert len(block.get("fields", [])) <= 10


# --------------------------------------------------------------------------- webhook out


def test_notification_arrives_at_the_receiver_with_the_slack_shape(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url, timeout_s=5.0, retries=0)
    try:
        result = notifier.notify("checkout", "abc123", ROLLBACK, REASONS, EVIDENCE)
    finally:
        notifier.close()

    assert result == NotifyResult(ok=True, attempts=1, status_code=200)
    assert receiver.paths == ["/hooks/T000/B000/secret"]
    (body,) = receiver.bodies
    assert body == format_action_message("checkout", "abc123", ROLLBACK, REASONS, EVIDENCE)


def test_dead_receiver_returns_a_failure_after_bounded_retries_without_raising() -> None:
    waits: list[float] = []
    notifier = WebhookNotifier(_dead_url(), timeout_s=2.0, retries=2, sleep=waits.append)
    try:
        result = notifier.notify("checkout", "r", ROLLBACK, REASONS, EVIDENCE)
    finally:
        notifier.close()

    assert not result.ok
    assert result.attempts == 3
    assert result.status_code is None
    assert result.error is not None and "ConnectError" in result.error
    assert waits == [0.5, 1.0]  # exponential backoff between the three attempts


@pytest.mark.parametrize(
    ("statuses", "ok", "attempts", "status_code"),
    [
        pytest.param([503, 200], True, 2, 200, id="5xx-then-ok"),
        pytest.param([429, 429, 200], True, 3, 200, id="rate-limited-then-ok"),
        pytest.param([500, 502, 503], False, 3, 503, id="5xx-until-retries-run-out"),
        pytest.param([400, 200], False, 1, 400, id="4xx-is-not-retried"),
        pytest.param([404], False, 1, 404, id="gone-is-not-retried"),
    ],
)
def test_retries_only_what_may_succeed_later(
    statuses: list[int], ok: bool, attempts: int, status_code: int
) -> None:
    waits: list[float] = []
    with Receiver(statuses) as receiver:
        notifier = WebhookNotifier(receiver.url, retries=2, backoff_s=0.25, sleep=waits.append)
        try:
            result = notifier.notify("p", "r", ROLLBACK, REASONS, {})
        finally:
            notifier.close()

    assert (result.ok, result.attempts, result.status_code) == (ok, attempts, status_code)
    assert len(receiver.bodies) == attempts
    assert waits == [0.25, 0.5][: attempts - 1]
    if not ok:
        assert result.error is not None and str(status_code) in result.error


def test_backoff_is_capped() -> None:
    waits: list[float] = []
    notifier = WebhookNotifier(
        _dead_url(), retries=4, backoff_s=1.0, max_backoff_s=3.0, sleep=waits.append
    )
    try:
        notifier.notify("p", "r", ROLLBACK, (), {})
    finally:
        notifier.close()

    assert waits == [1.0, 2.0, 3.0, 3.0]


def test_failure_is_logged_naming_the_host_but_not_the_secret_path() -> None:
    url = _dead_url() + "/T000/very-secret-token"
    notifier = WebhookNotifier(url, retries=0)
    try:
        with capture_logs() as logs:
            notifier.notify("p", "r", ROLLBACK, (), {})
    finally:
        notifier.close()

    (failed,) = [e for e in logs if e["event"] == "webhook_failed"]
    assert failed["log_level"] == "warning"
    assert failed["url"].startswith("http://127.0.0.1:")
    assert "very-secret-token" not in repr(logs)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("ftp://hooks.example.com/x", "must use http or https", id="ftp"),
        pytest.param("hooks.example.com/x", "must use http or https", id="no-scheme"),
        pytest.param("https:///x", "has no host", id="no-host"),
        pytest.param("http://exa mple.com/", "spaces", id="space"),
        pytest.param("http://example.com:99999/", "port 99999", id="port"),
    ],
)
def test_bad_webhook_urls_are_refused_naming_the_url(url: str, message: str) -> None:
    with pytest.raises(WebhookConfigError, match=message) as err:
        validate_webhook_url(url)
    assert url in str(err.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"timeout_s": 0}, id="timeout"),
        pytest.param({"retries": -1}, id="retries"),
        pytest.param({"backoff_s": -1}, id="backoff"),
    ],
)
def test_bad_webhook_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(WebhookConfigError):
        WebhookNotifier("http://127.0.0.1:9/x", **kwargs)


def test_null_notifier_sends_nothing_and_succeeds() -> None:
    assert NullNotifier().notify("p", "r", ROLLBACK, (), {}) == NotifyResult(ok=True, attempts=0)


def test_notifier_for_no_url_is_the_null_notifier() -> None:
    assert isinstance(notifier_for(None), NullNotifier)
    assert isinstance(notifier_for(""), NullNotifier)


def test_background_notifier_delivers_in_order_off_the_calling_thread(
    receiver: Receiver,
) -> None:
    notifier = notifier_for(receiver.url, retries=0)
    assert isinstance(notifier, RepeatSuppressor)
    assert isinstance(notifier.inner, BackgroundNotifier)
    try:
        results = [notifier.notify("p", f"r{i}", Promote(f"v{i}"), (), {}) for i in range(5)]
        assert notifier.flush(timeout_s=30)
    finally:
        notifier.close()

    assert all(r.ok and r.queued for r in results)
    assert [b["text"] for b in receiver.bodies] == [f"[autoops] p: promote v{i}" for i in range(5)]


class _Gate:
    """A notifier that blocks until released, recording what it was asked to send."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.sent: list[str] = []

    def notify(
        self,
        policy: str,
        reconcile_id: str,
        action: Action,
        reasons: Any,
        evidence: Any,
    ) -> NotifyResult:
        self.started.set()
        self.release.wait(30)
        self.sent.append(reconcile_id)
        return NotifyResult(ok=True, attempts=1)

    def close(self) -> None:
        pass


def test_background_notifier_drops_and_says_so_when_its_queue_is_full() -> None:
    gate = _Gate()
    notifier = BackgroundNotifier(gate, max_queue=1)
    try:
        assert notifier.notify("p", "first", ROLLBACK, (), {}).ok
        assert gate.started.wait(30)  # the worker holds "first"; the queue is empty again
        assert notifier.notify("p", "second", ROLLBACK, (), {}).ok
        dropped = notifier.notify("p", "third", ROLLBACK, (), {})
        gate.release.set()
        assert notifier.flush(timeout_s=30)
    finally:
        gate.release.set()
        notifier.close()

    assert not dropped.ok
    assert dropped.error is not None and "queue full" in dropped.error
    assert gate.sent == ["first", "second"]
    assert not notifier.notify("p", "late", ROLLBACK, (), {}).ok  # closed


def test_background_notifier_survives_a_notifier_that_raises() -> None:
    calls: list[str] = []

    class Raising:
        def notify(self, policy: str, reconcile_id: str, *args: Any) -> NotifyResult:
            calls.append(reconcile_id)
            raise RuntimeError("bug")

        def close(self) -> None:
            pass

    notifier = BackgroundNotifier(cast(Any, Raising()))
    try:
        notifier.notify("p", "r1", ROLLBACK, (), {})
        notifier.notify("p", "r2", ROLLBACK, (), {})
        assert notifier.flush(timeout_s=30)
    finally:
        notifier.close()

    assert calls == ["r1", "r2"]  # the worker thread lived on after the first raised


# --------------------------------------------------------------------------- Alertmanager in


def _payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    """An Alertmanager webhook body, as Alertmanager sends it."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "autoops",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def _alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "HighErrorRate", **labels},
        "annotations": {"summary": "5xx above 5%"},
        "startsAt": "2024-05-01T12:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": "c0ffee",
    }


def test_alertmanager_payload_parses_firing_and_resolved_alerts() -> None:
    payload = _payload(
        _alert("firing", autoops_policy="checkout", severity="page"),
        _alert("resolved", autoops_policy="search"),
    )

    firing, resolved = parse_alertmanager(payload)

    assert firing == ExternalAlert(
        name="HighErrorRate",
        status="firing",
        labels={"alertname": "HighErrorRate", "autoops_policy": "checkout", "severity": "page"},
        annotations={"summary": "5xx above 5%"},
        starts_at=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC).timestamp(),
    )
    assert firing.firing
    assert resolved.status == "resolved" and not resolved.firing
    assert resolved.labels["autoops_policy"] == "search"


def test_alertmanager_payload_with_no_alerts_is_an_empty_list() -> None:
    assert parse_alertmanager(_payload(status="resolved")) == []


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param([], "payload", id="not-an-object"),
        pytest.param({**_payload(), "version": "3"}, "version", id="old-version"),
        pytest.param(_without(_payload(), "version"), "version", id="no-version"),
        pytest.param({**_payload(), "status": "pending"}, "status", id="bad-status"),
        pytest.param({**_payload(), "alerts": None}, "alerts", id="alerts-null"),
        pytest.param({**_payload(), "alerts": "x"}, "alerts", id="alerts-string"),
        pytest.param(_payload(cast(Any, "x")), "alerts[0]", id="alert-not-object"),
        pytest.param(
            _payload(_alert(), {**_alert(), "status": "ok"}), "alerts[1].status", id="alert-status"
        ),
        pytest.param(_payload(_without(_alert(), "labels")), "alerts[0].labels", id="no-labels"),
        pytest.param(
            _payload({**_alert(), "labels": {"severity": "page"}}),
            "alerts[0].labels.alertname",
            id="no-alertname",
        ),
        pytest.param(
            _payload({**_alert(), "labels": {"alertname": "A", "n": 1}}),
            "alerts[0].labels.n",
            id="label-not-string",
        ),
        pytest.param(
            _payload({**_alert(), "annotations": ["x"]}), "alerts[0].annotations", id="annotations"
        ),
        pytest.param(
            _payload(_without(_alert(), "startsAt")), "alerts[0].startsAt", id="no-startsAt"
        ),
        pytest.param(
            _payload({**_alert(), "startsAt": "yesterday"}), "alerts[0].startsAt", id="bad-time"
        ),
        pytest.param(
            _payload({**_alert(), "startsAt": "2024-05-01T12:00:00"}),
            "alerts[0].startsAt",
            id="no-time-zone",
        ),
    ],
)
def test_malformed_alertmanager_payloads_name_the_bad_field(payload: Any, field: str) -> None:
    with pytest.raises(AlertPayloadError) as err:
        parse_alertmanager(payload)
    assert str(err.value).startswith(f"{field}:")


@settings(deadline=None, max_examples=50)
@given(
    labels=st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=40), max_size=8),
    status=st.sampled_from(["firing", "resolved"]),
)
def test_alertmanager_labels_round_trip(labels: dict[str, str], status: str) -> None:
    raw = {**_alert(status), "labels": {**labels, "alertname": "A"}}

    (alert,) = parse_alertmanager(_payload(raw))

    assert alert.labels == {**labels, "alertname": "A"}
    assert alert.status == status
    assert alert.name == "A"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Sent:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def notify(
        self, policy: str, rid: str, action: Any, reasons: Any, evidence: Any
    ) -> NotifyResult:
        self.sent.append(f"{policy}:{action.kind.value}")
        return NotifyResult(ok=True, attempts=1)

    def close(self) -> None:
        pass


def test_a_repeated_alert_is_sent_once_per_interval_and_actions_always() -> None:
    clock, inner = _Clock(), _Sent()
    notifier = RepeatSuppressor(inner, repeat_after_s=300.0, clock=clock)  # type: ignore[arg-type]
    fleet = Alert("critical", "every version is failing")
    for _ in range(5):
        notifier.notify("p", "r", fleet, (), {})
        notifier.notify("p", "r", ROLLBACK, (), {})
        clock.now += 2.0
    assert inner.sent == ["p:alert"] + ["p:rollback"] * 5
    assert notifier.suppressed == 4
    notifier.notify("p", "r", Alert("warning", "another condition"), (), {})
    notifier.notify("q", "r", fleet, (), {})  # another policy's alert is its own
    clock.now += 300.0
    notifier.notify("p", "r", fleet, (), {})  # still failing after the interval: sent again
    assert inner.sent[-3:] == ["p:alert", "q:alert", "p:alert"]


def test_alerts_of_one_topic_are_one_condition_whatever_their_numbers() -> None:
    clock, inner = _Clock(), _Sent()
    notifier = RepeatSuppressor(inner, repeat_after_s=300.0, clock=clock)  # type: ignore[arg-type]
    for pct in (31, 28, 35):
        fleet = Alert("warning", f"every version is failing: canary {pct}%", topic="fleet_fault")
        notifier.notify("p", "r", fleet, (), {})
        clock.now += 2.0
    assert inner.sent == ["p:alert"]
    notifier.notify("p", "r", Alert("warning", "drift", topic="drift:inputs"), (), {})
    assert inner.sent == ["p:alert", "p:alert"]
