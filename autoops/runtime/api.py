"""The controller's control API: a small HTTP server on a daemon thread.

GET /healthz, /status and /metrics are open; every POST (/pause, /resume, /approve/{id},
/alerts) needs ``Authorization: Bearer TOKEN``. The token comes from the environment or a
file, never from a policy; with none configured every POST is refused, never open by default.
"""

from __future__ import annotations

import hmac
import json
import re
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from autoops.adapters.alerts import AlertPayloadError, ExternalAlert, parse_alertmanager
from autoops.logging import get_logger
from autoops.runtime.metrics import ControllerMetrics

__all__ = [
    "API_TOKEN_ENV",
    "ApiTokenError",
    "ControlHandlers",
    "ControlServer",
    "load_api_token",
]

log = get_logger("autoops.api")

API_TOKEN_ENV = "AUTOOPS_API_TOKEN"
"""The environment variable holding the control API's bearer token."""
MAX_BODY_BYTES = 1 << 20
"""Default largest request body accepted (1 MiB); larger ones get 413."""
_DRAIN_CAP = 8 << 20
"""A refused body up to this size is read and dropped, so the client sees the answer."""
_APPROVAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,255}$")
_GET_ROUTES = ("/healthz", "/status", "/metrics")
_POST_ROUTES = ("/pause", "/resume", "/approve/{id}", "/alerts")
_NO_TOKEN = (
    "POST is disabled: no API token is configured; set the "
    f"{API_TOKEN_ENV} environment variable or pass --api-token-file"
)


class ApiTokenError(ValueError):
    """The API token is configured but cannot be used; the message says where and why."""


def _check_token(token: str, source: str) -> str:
    token = token.strip()
    if not token:
        raise ApiTokenError(f"API token from {source} is empty")
    if not all(33 <= ord(c) <= 126 for c in token):
        raise ApiTokenError(
            f"API token from {source} must be printable ASCII without spaces "
            "(it travels in an HTTP header)"
        )
    return token


def load_api_token(env: Mapping[str, str], path: Path | None) -> str | None:
    """The control API's token: from ``path`` if given, else ``AUTOOPS_API_TOKEN``, else None."""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ApiTokenError(f"cannot read API token file {path}: {reason}") from None
        return _check_token(text, f"file {path}")
    if API_TOKEN_ENV in env:
        return _check_token(env[API_TOKEN_ENV], f"environment variable {API_TOKEN_ENV}")
    return None


@dataclass(frozen=True)
class ControlHandlers:
    """The callbacks the control loop wires into the API."""

    status: Callable[[], Mapping[str, Any]]
    """The controller's status, as JSON data."""
    pause: Callable[[], None]
    resume: Callable[[], None]
    approve: Callable[[str], bool]
    """Approve a pending action by id; False when the id is unknown (404)."""
    external_alerts: Callable[[list[ExternalAlert]], int]
    """Firing outside alerts for remediation; returns how many policies took them up."""


class _HttpError(Exception):
    """An error answered as JSON with its status."""

    def __init__(
        self, status: HTTPStatus, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


class _Server(ThreadingHTTPServer):
    """The HTTP server, carrying what its request handlers need."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handlers: ControlHandlers,
        metrics: ControllerMetrics,
        token: str | None,
        max_body_bytes: int,
        request_timeout_s: float,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.handlers = handlers
        self.metrics = metrics
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.request_timeout_s = request_timeout_s
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host (slow, and not needed)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Handler(BaseHTTPRequestHandler):
    """Routes one request to the control callbacks."""

    server_version = "autoops"
    _drained = False
    """Whether the request body was read (a refused one is drained before answering)."""

    @property
    def app(self) -> _Server:
        return cast(_Server, self.server)

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.app.request_timeout_s)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http_request", client=self.client_address[0], line=format % args)

    # -- responses ---------------------------------------------------------------------------
    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(
        self, status: HTTPStatus, data: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        body = json.dumps(data, default=str).encode() + b"\n"
        self._send(status, body, "application/json", headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer the server's own errors (bad request line, unknown method) as JSON too."""
        status = HTTPStatus(code)
        self.close_connection = True
        self._json(status, {"error": message or status.phrase})

    # -- dispatch ----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        try:
            if method == "GET":
                self._get(path)
            else:
                self._post(path)
        except _HttpError as exc:
            if method == "POST":
                self._drain()
            self._json(exc.status, {"error": str(exc)}, exc.headers)
        except Exception as exc:
            log.exception("api_handler_failed", method=method, path=path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})

    def _route_error(self, method: str, path: str) -> _HttpError:
        other = _POST_ROUTES if method == "GET" else _GET_ROUTES
        if path in other or (method == "GET" and path.startswith("/approve/")):
            allow = "POST" if method == "GET" else "GET"
            return _HttpError(
                HTTPStatus.METHOD_NOT_ALLOWED, f"{method} {path}: use {allow}", {"Allow": allow}
            )
        routes = [f"GET {r}" for r in _GET_ROUTES] + [f"POST {r}" for r in _POST_ROUTES]
        return _HttpError(
            HTTPStatus.NOT_FOUND, f"no route {method} {path}; routes: {', '.join(routes)}"
        )

    def _get(self, path: str) -> None:
        app = self.app
        if path == "/healthz":
            self._send(HTTPStatus.OK, b"ok", "text/plain; charset=utf-8")
        elif path == "/status":
            self._json(HTTPStatus.OK, dict(app.handlers.status()))
        elif path == "/metrics":
            body, content_type = app.metrics.render_for(self.headers.get("Accept"))
            self._send(HTTPStatus.OK, body, content_type)
        else:
            raise self._route_error("GET", path)

    def _post(self, path: str) -> None:
        known = path in ("/pause", "/resume", "/alerts") or path.startswith("/approve/")
        if not known:
            raise self._route_error("POST", path)
        self._authorize()
        body = self._body()
        handlers = self.app.handlers
        if path == "/pause":
            handlers.pause()
            self.app.metrics.paused(True)
            log.info("api_paused", client=self.client_address[0])
            self._json(HTTPStatus.OK, {"paused": True})
        elif path == "/resume":
            handlers.resume()
            self.app.metrics.paused(False)
            log.info("api_resumed", client=self.client_address[0])
            self._json(HTTPStatus.OK, {"paused": False})
        elif path == "/alerts":
            self._alerts(body)
        else:
            self._approve(unquote(path.removeprefix("/approve/")))

    def _approve(self, approval_id: str) -> None:
        if not _APPROVAL_ID.match(approval_id):
            raise _HttpError(
                HTTPStatus.BAD_REQUEST,
                f"bad approval id {approval_id!r}: expected POLICY.KIND (letters, digits, _.:-)",
            )
        if not self.app.handlers.approve(approval_id):
            raise _HttpError(HTTPStatus.NOT_FOUND, f"unknown approval {approval_id!r}")
        log.info("api_approved", approval=approval_id, client=self.client_address[0])
        self._json(HTTPStatus.OK, {"approved": approval_id})

    def _alerts(self, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _HttpError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}") from None
        try:
            alerts = parse_alertmanager(payload)
        except AlertPayloadError as exc:
            raise _HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc)) from None
        firing = [a for a in alerts if a.firing]
        accepted = self.app.handlers.external_alerts(firing) if firing else 0
        log.info("api_alerts", received=len(alerts), firing=len(firing), accepted=accepted)
        self._json(
            HTTPStatus.OK, {"received": len(alerts), "firing": len(firing), "accepted": accepted}
        )

    # -- auth and body -----------------------------------------------------------------------
    def _authorize(self) -> None:
        token = self.app.token
        if token is None:
            raise _HttpError(HTTPStatus.FORBIDDEN, _NO_TOKEN)
        header = self.headers.get("Authorization")
        challenge = {"WWW-Authenticate": 'Bearer realm="autoops"'}
        if header is None:
            raise _HttpError(HTTPStatus.UNAUTHORIZED, "missing bearer token", challenge)
        scheme, _, given = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise _HttpError(
                HTTPStatus.UNAUTHORIZED, "expected 'Authorization: Bearer TOKEN'", challenge
            )
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            log.warning("api_bad_token", client=self.client_address[0])
            raise _HttpError(HTTPStatus.FORBIDDEN, "invalid bearer token")

    def _content_length(self) -> int:
        if self.headers.get("Transfer-Encoding"):
            raise _HttpError(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not chunks")
        raw = self.headers.get("Content-Length", "0")
        try:
            length = int(raw)
        except ValueError:
            raise _HttpError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {raw!r}") from None
        if length < 0:
            raise _HttpError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {raw!r}")
        return length

    def _body(self) -> bytes:
        length = self._content_length()
        if length > self.app.max_body_bytes:
            raise _HttpError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes is over the limit of {self.app.max_body_bytes}",
            )
        self._drained = True
        return self.rfile.read(length)

    def _drain(self) -> None:
        """Read and drop a refused body, so closing the socket does not reset the answer."""
        if self._drained:
            return
        self._drained = True
        try:
            length = self._content_length()
        except _HttpError:
            length = -1
        if not 0 <= length <= _DRAIN_CAP:
            self.close_connection = True
            return
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 64 << 10))
                if not chunk:
                    break
                length -= len(chunk)
        except OSError:
            self.close_connection = True


class ControlServer:
    """The control API on a daemon thread: ``start()``, ``url``, ``stop()``."""

    def __init__(
        self,
        handlers: ControlHandlers,
        metrics: ControllerMetrics,
        token: str | None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = MAX_BODY_BYTES,
        request_timeout_s: float = 10.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"API port must be 0..65535 (0 picks a free one), got {port}")
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        self.handlers = handlers
        self.metrics = metrics
        self.token = token
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.request_timeout_s = request_timeout_s
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL the server listens on (its real port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve on a daemon thread; a port already in use fails here, clearly."""
        if self._server is not None:
            raise RuntimeError(f"control API already running at {self.url}")
        try:
            server = _Server(
                (self.host, self.port),
                self.handlers,
                self.metrics,
                self.token,
                self.max_body_bytes,
                self.request_timeout_s,
            )
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot bind the control API to {self.host}:{self.port}: {exc}"
            ) from exc
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how soon stop() takes effect
            name="autoops-api",
            daemon=True,
        )
        self._thread.start()
        if self.token is None:
            log.warning("api_token_missing", url=self.url, hint=_NO_TOKEN)
        log.info("api_started", url=self.url)

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        log.info("api_stopped", url=self.url)

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
