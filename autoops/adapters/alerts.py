"""Alerts: a Slack-compatible webhook out for every action and escalation; Alertmanager's in.

Out: ``WebhookNotifier`` posts ``format_action_message`` over httpx with a timeout and bounded
retries, and never raises into the loop (it returns a ``NotifyResult``). ``BackgroundNotifier``
moves the posting off the loop's thread, so a dead webhook cannot stall a tick.
In: ``parse_alertmanager`` reads Alertmanager's webhook payload (version 4) into
``ExternalAlert`` values, with errors that name the bad field.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import httpx

from autoops.logging import get_logger
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

__all__ = [
    "AlertPayloadError",
    "BackgroundNotifier",
    "ExternalAlert",
    "Notifier",
    "NotifyResult",
    "NullNotifier",
    "RepeatSuppressor",
    "WebhookConfigError",
    "WebhookNotifier",
    "describe_action",
    "format_action_message",
    "notifier_for",
    "parse_alertmanager",
    "validate_webhook_url",
]

log = get_logger("autoops.alerts")

# --------------------------------------------------------------------------- Alertmanager in

AlertStatus = Literal["firing", "resolved"]
_STATUSES: tuple[AlertStatus, ...] = ("firing", "resolved")


class AlertPayloadError(ValueError):
    """An Alertmanager webhook payload that cannot be read; the message names the field."""


@dataclass(frozen=True, slots=True)
class ExternalAlert:
    """One alert from Alertmanager: its name (the ``alertname`` label), status and labels."""

    name: str
    status: AlertStatus
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: float | None = None
    """Unix time the alert started firing."""

    @property
    def firing(self) -> bool:
        """True while the alert fires (False once resolved)."""
        return self.status == "firing"


def _status(value: object, where: str) -> AlertStatus:
    for status in _STATUSES:
        if value == status:
            return status
    raise AlertPayloadError(f"{where}: expected 'firing' or 'resolved', got {value!r}")


def _string_map(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AlertPayloadError(f"{where}: expected an object of strings, got {value!r}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise AlertPayloadError(f"{where}.{key}: expected a string, got {item!r}")
        out[key] = item
    return out


def _rfc3339(value: object, where: str) -> float:
    if not isinstance(value, str):
        raise AlertPayloadError(f"{where}: expected an RFC 3339 time string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise AlertPayloadError(f"{where}: {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise AlertPayloadError(f"{where}: {value!r} has no time zone (expected e.g. ...Z)")
    return parsed.timestamp()


def _alert(raw: object, where: str) -> ExternalAlert:
    if not isinstance(raw, Mapping):
        raise AlertPayloadError(f"{where}: expected an object, got {raw!r}")
    if "labels" not in raw:
        raise AlertPayloadError(f"{where}.labels: missing")
    labels = _string_map(raw["labels"], f"{where}.labels")
    name = labels.get("alertname", "")
    if not name:
        raise AlertPayloadError(f"{where}.labels.alertname: missing or empty")
    if "startsAt" not in raw:
        raise AlertPayloadError(f"{where}.startsAt: missing")
    return ExternalAlert(
        name=name,
        status=_status(raw.get("status"), f"{where}.status"),
        labels=labels,
        annotations=_string_map(raw.get("annotations"), f"{where}.annotations"),
        starts_at=_rfc3339(raw["startsAt"], f"{where}.startsAt"),
    )


def parse_alertmanager(payload: Mapping[str, Any]) -> list[ExternalAlert]:
    """Every alert of an Alertmanager webhook (version 4) payload, firing and resolved."""
    if not isinstance(payload, Mapping):
        raise AlertPayloadError(f"payload: expected a JSON object, got {type(payload).__name__}")
    version = payload.get("version")
    if str(version) != "4":
        raise AlertPayloadError(
            f"version: expected '4' (Alertmanager webhook format), got {version!r}"
        )
    _status(payload.get("status"), "status")
    alerts = payload.get("alerts")
    if not isinstance(alerts, Sequence) or isinstance(alerts, str | bytes):
        raise AlertPayloadError(f"alerts: expected a list, got {alerts!r}")
    return [_alert(raw, f"alerts[{i}]") for i, raw in enumerate(alerts)]


# --------------------------------------------------------------------------- message out

_HEADER_MAX = 150
_TEXT_MAX = 3000
_EVIDENCE_LINES = 30


def _pct(share: float) -> str:
    return f"{share * 100:.4g}%"


def _shares(weights: Mapping[str, float]) -> str:
    return ", ".join(f"{key} {_pct(value)}" for key, value in sorted(weights.items()))


def describe_action(action: Action) -> str:
    """One line saying what an action does, for people."""
    match action:
        case SetTraffic(weights=weights, shadow_version=shadow, shadow_fraction=fraction):
            text = f"traffic {_shares(weights)}"
            return f"{text} (shadow {shadow} at {_pct(fraction)})" if shadow else text
        case SetReplicas(replicas=replicas):
            each = ", ".join(f"{region}={n}" for region, n in sorted(replicas.items()))
            return f"replicas {each} (total {action.total})"
        case SetRegionWeights(weights=weights):
            return f"region weights {_shares(weights)}"
        case SetCascadeThreshold(threshold=threshold):
            return f"cascade threshold {threshold:.4g}"
        case Rollback(from_version=old, to_version=new):
            return f"rollback {old} → {new}"
        case Promote(version=version):
            return f"promote {version}"
        case Retrain(base_version=base, deadline=deadline):
            due = datetime.fromtimestamp(deadline, UTC).strftime("%Y-%m-%d %H:%M UTC")
            return f"retrain from {base} by {due}"
        case Hold(reason=reason):
            return f"hold: {reason}"
        case Alert(severity=severity, message=message):
            return f"[{severity}] {message}"
    raise TypeError(f"not an action: {action!r}")  # pragma: no cover - exhaustive above


def _escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn reserves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, _TEXT_MAX)}}


def format_action_message(
    policy: str,
    reconcile_id: str,
    action: Action,
    reasons: Sequence[str],
    evidence: Mapping[str, Any],
) -> dict[str, Any]:
    """A Slack-compatible message (``text`` + ``blocks``) for one action or escalation."""
    summary = describe_action(action)
    escalation = isinstance(action, Alert)
    title = (
        f"AutoOps escalation ({action.severity}): {policy}"
        if isinstance(action, Alert)
        else f"AutoOps action: {policy}"
    )
    fields = [
        {"type": "mrkdwn", "text": f"*Policy*\n{_escape(policy)}"},
        {"type": "mrkdwn", "text": f"*Action*\n{action.kind.value}"},
        {"type": "mrkdwn", "text": f"*Reconcile id*\n`{_escape(reconcile_id)}`"},
    ]
    if isinstance(action, Alert):
        fields.append({"type": "mrkdwn", "text": f"*Severity*\n{action.severity}"})
    reason_text = "\n".join(f"• {_escape(r)}" for r in reasons) if reasons else "_none given_"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, _HEADER_MAX)}},
        {"type": "section", "fields": fields},
        _mrkdwn(f"*{'Escalation' if escalation else 'What'}*\n{_escape(summary)}"),
        _mrkdwn(f"*Reasons*\n{reason_text}"),
    ]
    if evidence:
        items = sorted(evidence.items())
        lines = [f"{_escape(str(k))} = {_escape(_value(v))}" for k, v in items[:_EVIDENCE_LINES]]
        if len(items) > _EVIDENCE_LINES:
            lines.append(f"… and {len(items) - _EVIDENCE_LINES} more")
        body = "\n".join(lines)
        blocks.append(_mrkdwn(f"*Evidence*\n```{_clip(body, _TEXT_MAX - 40)}```"))
    first_reason = f" — {reasons[0]}" if reasons else ""
    fallback = _clip(f"[autoops] {policy}: {summary}{first_reason}", _TEXT_MAX)
    return {"text": _escape(fallback), "blocks": blocks}


# --------------------------------------------------------------------------- notifiers


class WebhookConfigError(ValueError):
    """A webhook URL or setting that cannot be used; the message names it."""


def validate_webhook_url(url: str) -> str:
    """The URL if it is an absolute http(s) URL with a host, else a clear error naming it."""
    if any(c.isspace() or not c.isprintable() for c in url):
        raise WebhookConfigError(f"webhook URL {url!r} contains spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise WebhookConfigError(f"webhook URL {url!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise WebhookConfigError(
            f"webhook URL {url!r} must use http or https, not {parsed.scheme or 'no scheme'!r}"
        )
    if not parsed.host:
        raise WebhookConfigError(f"webhook URL {url!r} has no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise WebhookConfigError(f"webhook URL {url!r} has port {parsed.port}, not 1..65535")
    return url


def _redacted(url: str) -> str:
    """The URL's scheme, host and port only: webhook paths often hold a secret."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}/…"


@dataclass(frozen=True, slots=True)
class NotifyResult:
    """What sending one notification came to."""

    ok: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None
    queued: bool = False
    """True when it was only queued for a background sender."""


class Notifier(Protocol):
    """Tells people about an action or escalation; never raises."""

    def notify(
        self,
        policy: str,
        reconcile_id: str,
        action: Action,
        reasons: Sequence[str],
        evidence: Mapping[str, Any],
    ) -> NotifyResult:
        """Send one notification and say how it went."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...


class NullNotifier:
    """The notifier when no webhook is configured: sends nothing, always succeeds."""

    def notify(
        self,
        policy: str,
        reconcile_id: str,
        action: Action,
        reasons: Sequence[str],
        evidence: Mapping[str, Any],
    ) -> NotifyResult:
        """Send nothing."""
        return NotifyResult(ok=True, attempts=0)

    def close(self) -> None:
        """Nothing to release."""


_RETRYABLE_STATUS = frozenset({408, 425, 429})


class WebhookNotifier:
    """Posts Slack-compatible JSON to a webhook, with a timeout and bounded retries."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if timeout_s <= 0:
            raise WebhookConfigError(f"webhook timeout must be > 0 s, got {timeout_s}")
        if retries < 0:
            raise WebhookConfigError(f"webhook retries must be >= 0, got {retries}")
        if backoff_s < 0 or max_backoff_s < 0:
            raise WebhookConfigError("webhook backoff must be >= 0 s")
        self.url = validate_webhook_url(url)
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._where = _redacted(url)
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def notify(
        self,
        policy: str,
        reconcile_id: str,
        action: Action,
        reasons: Sequence[str],
        evidence: Mapping[str, Any],
    ) -> NotifyResult:
        """Post one action or escalation; a failure is logged and returned, never raised."""
        try:
            message = format_action_message(policy, reconcile_id, action, reasons, evidence)
        except Exception as exc:
            log.warning("webhook_format_failed", policy=policy, error=repr(exc))
            return NotifyResult(ok=False, attempts=0, error=f"cannot format message: {exc!r}")
        return self.send(message)

    def send(self, message: Mapping[str, Any]) -> NotifyResult:
        """Post one JSON message, retrying timeouts, connection errors, 429 and 5xx."""
        status: int | None = None
        error = "not sent"
        attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))
            attempts += 1
            try:
                response = self._client.post(self.url, json=message)
            except Exception as exc:  # transport errors, and anything else: never raise
                status, error = None, f"{type(exc).__name__}: {exc}"
                log.debug("webhook_attempt_failed", url=self._where, attempt=attempts, error=error)
                continue
            status = response.status_code
            if response.is_success:
                log.debug("webhook_sent", url=self._where, attempts=attempts, status=status)
                return NotifyResult(ok=True, attempts=attempts, status_code=status)
            error = f"HTTP {status}: {_clip(response.text.strip(), 200)}"
            log.debug("webhook_attempt_failed", url=self._where, attempt=attempts, error=error)
            if status < 500 and status not in _RETRYABLE_STATUS:
                break
        log.warning("webhook_failed", url=self._where, attempts=attempts, error=error)
        return NotifyResult(ok=False, attempts=attempts, status_code=status, error=error)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()


@dataclass(frozen=True, slots=True)
class _Job:
    policy: str
    reconcile_id: str
    action: Action
    reasons: tuple[str, ...]
    evidence: dict[str, Any]


class BackgroundNotifier:
    """Sends through another notifier on a thread of its own, from a bounded queue."""

    def __init__(self, inner: Notifier, max_queue: int = 100) -> None:
        if max_queue < 1:
            raise WebhookConfigError(f"notification queue size must be >= 1, got {max_queue}")
        self.inner = inner
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._idle = threading.Condition()
        self._pending = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="autoops-notifier", daemon=True)
        self._thread.start()

    def notify(
        self,
        policy: str,
        reconcile_id: str,
        action: Action,
        reasons: Sequence[str],
        evidence: Mapping[str, Any],
    ) -> NotifyResult:
        """Queue one notification; when the queue is full it is dropped, logged and returned."""
        job = _Job(policy, reconcile_id, action, tuple(reasons), dict(evidence))
        with self._idle:
            if self._closed:
                return NotifyResult(ok=False, attempts=0, error="notifier is closed")
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                log.warning("notification_dropped", policy=policy, queue=self._queue.maxsize)
                return NotifyResult(
                    ok=False,
                    attempts=0,
                    error=f"notification queue full ({self._queue.maxsize}); dropped",
                )
            self._pending += 1
        return NotifyResult(ok=True, attempts=0, queued=True)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self.inner.notify(
                    job.policy, job.reconcile_id, job.action, job.reasons, job.evidence
                )
            except Exception as exc:  # a notifier that raises anyway must not kill the thread
                log.warning("notification_failed", policy=job.policy, error=repr(exc))
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def flush(self, timeout_s: float) -> bool:
        """Wait until every queued notification was sent (or failed); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued (for up to ``timeout_s``), stop the thread, close the inner one."""
        with self._idle:
            self._closed = True
        self.flush(timeout_s)
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            log.warning("notifier_stop_timed_out", pending=self._pending)
        self._thread.join(timeout_s)
        self.inner.close()


REPEAT_AFTER_S = 300.0
"""An alert the same as one sent this recently is not sent again."""


class RepeatSuppressor:
    """Sends every action on, and an alert only when one of its topic was not sent lately.

    A condition that lasts (a fault on every version, a metrics outage) raises the same alert on
    every pass; people need it once, then again every ``repeat_after_s`` while it lasts.
    """

    def __init__(
        self,
        inner: NullNotifier | WebhookNotifier | BackgroundNotifier,
        repeat_after_s: float = REPEAT_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.repeat_after_s = repeat_after_s
        self._clock = clock
        self._sent: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()
        self.suppressed = 0

    def notify(
        self,
        policy: str,
        reconcile_id: str,
        action: Action,
        reasons: Sequence[str],
        evidence: Mapping[str, Any],
    ) -> NotifyResult:
        """Send, unless ``action`` is an alert of a topic (or, without one, a message) that was
        sent within ``repeat_after_s``."""
        if isinstance(action, Alert):
            key = (policy, action.severity, action.topic or action.message)
            now = self._clock()
            with self._lock:
                last = self._sent.get(key)
                if last is not None and now - last < self.repeat_after_s:
                    self.suppressed += 1
                    return NotifyResult(ok=True, attempts=0, error="repeat suppressed")
                self._sent[key] = now
        return self.inner.notify(policy, reconcile_id, action, reasons, evidence)

    def flush(self, timeout_s: float) -> bool:
        """Wait for the inner notifier's queue, when it has one."""
        flush = getattr(self.inner, "flush", None)
        return True if flush is None else bool(flush(timeout_s))

    def close(self) -> None:
        """Close the inner notifier."""
        self.inner.close()


def notifier_for(
    url: str | None,
    timeout_s: float = 5.0,
    retries: int = 2,
    background: bool = True,
    repeat_after_s: float = REPEAT_AFTER_S,
) -> NullNotifier | RepeatSuppressor:
    """The notifier for a configured webhook URL (off the loop's thread, repeated alerts sent
    once per ``repeat_after_s``), or a NullNotifier."""
    if not url:
        return NullNotifier()
    webhook = WebhookNotifier(url, timeout_s=timeout_s, retries=retries)
    inner = BackgroundNotifier(webhook) if background else webhook
    return RepeatSuppressor(inner, repeat_after_s)
