"""The traffic-splitting ingress: routes each request to a model version's deployment.

Its ``user_config`` is the contract's RoutingTable, applied by ``reconfigure`` without restarting
the replica. It holds a handle per deployed (version, region), carries each version's injected
faults to it, keeps a circuit breaker per version (retrying a failed request on the stable
version), mirrors shadow traffic, runs the cascade, degrades under overload, remembers answers
for labelled feedback, keeps a reservoir of recent samples, and exports the contract's metrics.
"""

# No ``from __future__ import annotations``: FastAPI must see the routes' real annotations
# (``Request``) through Serve's class wrapper, which string annotations would not resolve.

import asyncio
import logging
import os
import random
import time
from collections.abc import Coroutine, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle

from autoops.contract import (
    FEEDBACK_ROUTE,
    HEALTH_ROUTE,
    INGRESS_DEPLOYMENT,
    PREDICT_ROUTE,
    ROUTING_ROUTE,
    SAMPLES_ROUTE,
    VERSION_HEADER,
    BreakerConfig,
    PredictResponse,
    RoutingTable,
    SampleRecord,
    version_app_name,
    version_deployment_name,
)
from serve_apps.breaker import BreakerBoard
from serve_apps.feedback import FeedbackBook, LabelMismatch, UnknownRequest, new_request_id
from serve_apps.metrics import ServingMetrics
from serve_apps.replica import Prediction
from serve_apps.reservoir import SampleReservoir
from serve_apps.routing import Path, RoutePlan, Router, RoutingError, UnknownVersion
from serve_apps.validation import (
    RequestInvalid,
    check_bearer,
    parse_feedback_body,
    parse_predict_body,
)

log = logging.getLogger("ray.serve")

MAX_ONGOING_REQUESTS = 1000
"""Requests one ingress replica accepts; above the overload limit so the ingress sees the pile."""


class IngressSettings(BaseModel):
    """What the ingress needs besides its routing table (tokens are named, never held here)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inference_token_env: str | None = Field(
        default="AUTOOPS_INFERENCE_TOKEN",
        description="Environment variable holding the bearer token of the inference and "
        "feedback routes; unset or empty: no token required.",
    )
    admin_token_env: str = Field(
        default="AUTOOPS_ADMIN_TOKEN",
        description="Environment variable holding the admin routes' bearer token; unset or "
        "empty: the admin routes are off (403).",
    )
    call_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Longest wait for one version's answer, s."
    )
    samples_per_version: int = Field(
        default=2000, ge=1, le=100_000, description="Recent samples kept per version."
    )
    feedback_capacity: int = Field(
        default=100_000, ge=1, le=10_000_000, description="Answers remembered for feedback."
    )
    seed: int | None = Field(default=None, description="Seed of the routing draws (tests).")


class Unavailable(RuntimeError):  # noqa: N818 -- an HTTP 503, said in the ingress's words
    """No version could answer the request (overload with no small model, or every try failed)."""


def _token(env_name: str | None) -> str | None:
    if not env_name:
        return None
    return os.environ.get(env_name) or None


def _invalid_table(exc: ValidationError) -> ValueError:
    fields = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'routing table'}: {err['msg']}"
        for err in exc.errors()
    )
    return ValueError(f"invalid routing table: {fields}")


def _error(status: int, detail: str, field: str | None = None) -> JSONResponse:
    content: dict[str, Any] = {"detail": detail}
    if field is not None:
        content["field"] = field
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(status_code=status, content=content, headers=headers)


class _Routing:
    """One applied routing table: the router, and the regions and handles of every version."""

    def __init__(
        self, table: RoutingTable, handles: Mapping[tuple[str, str], DeploymentHandle[Any]]
    ) -> None:
        self.table = table
        self.router = Router(table, handles.keys())
        self.handles = dict(handles)
        self.regions: dict[str, list[str]] = {}
        for version, region in sorted(handles):
            self.regions.setdefault(version, []).append(region)


app = FastAPI(title="autoops ingress", docs_url=None, redoc_url=None)


@serve.deployment(
    name=INGRESS_DEPLOYMENT,
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    graceful_shutdown_timeout_s=2.0,
)
@serve.ingress(app)
class Ingress:
    """Splits traffic between model versions by the routing table in its user_config."""

    def __init__(self, settings: IngressSettings | None = None) -> None:
        self._settings = settings or IngressSettings()
        self._app_name = serve.get_replica_context().app_name
        self._inference_token = _token(self._settings.inference_token_env)
        self._admin_token = _token(self._settings.admin_token_env)
        self._rng = random.Random(self._settings.seed)
        self._metrics = ServingMetrics()
        self._breakers = BreakerBoard(BreakerConfig())
        self._reservoir = SampleReservoir(self._settings.samples_per_version)
        self._feedback = FeedbackBook(self._settings.feedback_capacity)
        self._routing: _Routing | None = None
        self._refused: str | None = None
        self._in_flight = 0
        self._calls_in_flight: dict[tuple[str, str], int] = {}
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ configuration

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply a new routing table (Serve calls this with the user_config, same replica).

        An invalid table names its field. The first one raises (the deployment fails, loudly);
        a later one is refused and logged while the table in force stays, because Serve replaces
        a replica whose reconfigure raises, which would take the ingress down for a bad write.
        The refusal shows on the health route until a valid table arrives.
        """
        try:
            routing = self._routing_for(config)
        except ValueError as exc:
            if self._routing is None:
                raise
            self._refused = str(exc)
            log.error("routing table refused, the previous one stays in force: %s", exc)
            return
        self._routing = routing
        self._refused = None
        self._breakers.reconfigure(routing.table.breaker)
        now = time.monotonic()
        for version in routing.regions:
            self._export_breaker(version, now)
        log.info(
            "routing table applied: weights=%s region_weights=%s",
            routing.table.weights,
            routing.table.region_weights,
        )

    def _routing_for(self, config: dict[str, Any]) -> _Routing:
        """The routing of a user_config, with handles reused; ValueError naming the field."""
        try:
            table = RoutingTable.model_validate(config)
        except ValidationError as exc:
            raise _invalid_table(exc) from None
        old = self._routing.handles if self._routing is not None else {}
        handles = {}
        for version, region in sorted(table.deployed_pairs()):
            handle = old.get((version, region))
            if handle is None:
                handle = serve.get_deployment_handle(
                    version_deployment_name(table.model, version, region),
                    app_name=version_app_name(self._app_name, version),
                    _check_exists=False,  # a version's app may start after the table names it
                )
            handles[(version, region)] = handle
        try:
            return _Routing(table, handles)
        except RoutingError as exc:
            raise ValueError(f"invalid routing table: {exc}") from None

    @property
    def routing(self) -> _Routing:
        """The routing applied now (set by the first reconfigure)."""
        if self._routing is None:
            raise Unavailable("the ingress has no routing table yet (user_config missing)")
        return self._routing

    # ------------------------------------------------------------------ inference

    async def infer(
        self, inputs: npt.NDArray[np.float32], header_version: str | None = None
    ) -> PredictResponse:
        """Answer one validated request (rows of 64 features); the HTTP route calls this too."""
        started = time.monotonic()
        routing = self.routing
        plan = routing.router.plan(
            header_version=header_version,
            in_flight=self._in_flight,
            breakers=self._breakers,
            now=started,
            rng=self._rng,
        )
        if plan.shed:
            raise Unavailable(f"overloaded: {plan.reason}")
        self._in_flight += 1
        try:
            answer, path = await self._answer(routing, plan, inputs, started)
        finally:
            self._in_flight -= 1
        if plan.shadow_version is not None and plan.shadow_region is not None:
            self._spawn(
                self._mirror(
                    routing, plan.shadow_version, plan.shadow_region, inputs, answer.predictions
                )
            )
        return self._respond(answer, path, inputs)

    async def _answer(
        self, routing: _Routing, plan: RoutePlan, inputs: npt.NDArray[np.float32], started: float
    ) -> tuple[Prediction, Path]:
        path: Path = plan.path
        if plan.degraded:
            self._metrics.degraded(plan.region)
        if plan.first_version is not None and plan.first_region is not None:
            small = await self._call(
                routing, plan.first_version, plan.first_region, inputs, started
            )
            if small is not None:
                escalated = routing.router.escalate(small.confidences.tolist())
                self._metrics.cascade(small.version, small.region, escalated)
                if not escalated:
                    return small, "cascade_small"
                path = "cascade_escalated"
        answer = await self._call(routing, plan.version, plan.region, inputs, started)
        if answer is not None:
            return answer, path
        answer = await self._retry_on_stable(routing, plan, inputs, started)
        return answer, "breaker_fallback"

    async def _retry_on_stable(
        self, routing: _Routing, plan: RoutePlan, inputs: npt.NDArray[np.float32], started: float
    ) -> Prediction:
        """One retry on the stable version: same region if it runs there, else another one."""
        stable = routing.table.stable_version
        regions = routing.regions.get(stable, [])
        if plan.version == stable:
            regions = [r for r in regions if r != plan.region]  # the stable region just failed
        elif plan.region in regions:
            regions = [plan.region]
        answer = None
        if regions:
            answer = await self._call(routing, stable, regions[0], inputs, started)
        if answer is None:
            raise Unavailable(
                f"version {plan.version} in {plan.region} failed and the stable version "
                f"{stable} could not answer instead"
            )
        return answer

    async def _call(
        self,
        routing: _Routing,
        version: str,
        region: str,
        inputs: npt.NDArray[np.float32],
        started: float,
        breaker: bool = True,
    ) -> Prediction | None:
        """One call to a version's deployment, its outcome to the breaker and the metrics.

        Every call counts in REQUESTS and LATENCY_MS under the version called (latency from
        ``started``: the request's arrival, or the mirror's start for shadow calls, which the
        breaker does not count). None when the call failed or timed out.
        """
        key = (version, region)
        faults = routing.table.faults.get(version)
        count = self._calls_in_flight.get(key, 0) + 1
        self._calls_in_flight[key] = count
        self._metrics.in_flight(version, region, count)
        answer: Prediction | None = None
        try:
            response = routing.handles[key].predict.remote(inputs, faults)
            answer = await asyncio.wait_for(response, self._settings.call_timeout_s)
        except Exception as exc:  # any failure of the version counts against it
            log.warning("version %s in %s failed: %s", version, region, str(exc)[:500])
        finally:
            count = self._calls_in_flight[key] - 1
            self._calls_in_flight[key] = count
            self._metrics.in_flight(version, region, count)
        now = time.monotonic()
        ok = answer is not None
        self._metrics.call(version, region, ok, (now - started) * 1000.0)
        if breaker:
            self._breakers.record(version, ok, now)
            self._export_breaker(version, now)
        if answer is not None:
            self._metrics.confidences(version, region, answer.confidences.tolist())
        return answer

    async def _mirror(
        self,
        routing: _Routing,
        version: str,
        region: str,
        inputs: npt.NDArray[np.float32],
        client_predictions: npt.NDArray[np.int64],
    ) -> None:
        """Send a copy of the request to the shadow version and count whether it agreed."""
        shadow = await self._call(routing, version, region, inputs, time.monotonic(), breaker=False)
        if shadow is not None:
            agreed = bool(np.array_equal(shadow.predictions, client_predictions))
            self._metrics.shadow(version, region, agreed)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` in the background, holding a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _export_breaker(self, version: str, now: float) -> None:
        self._metrics.breaker(version, self._breakers.state(version, now) != "closed")

    def _respond(
        self, answer: Prediction, path: Path, inputs: npt.NDArray[np.float32]
    ) -> PredictResponse:
        request_id = new_request_id(self._rng)
        predictions = answer.predictions.tolist()
        confidences = answer.confidences.tolist()
        self._feedback.remember(request_id, answer.version, answer.region, predictions)
        now = time.time()
        for row, prediction, confidence in zip(
            inputs.tolist(), predictions, confidences, strict=True
        ):
            self._reservoir.add(
                SampleRecord.model_construct(
                    time=now,
                    version=answer.version,
                    region=answer.region,
                    inputs=row,
                    prediction=prediction,
                    confidence=confidence,
                    request_id=request_id,
                    label=None,
                )
            )
        return PredictResponse.model_construct(
            request_id=request_id,
            version=answer.version,
            region=answer.region,
            predictions=predictions,
            confidences=confidences,
            path=path,
        )

    # ------------------------------------------------------------------ HTTP routes

    def _authorised(self, request: Request, token: str | None) -> JSONResponse | None:
        verdict = check_bearer(request.headers.get("authorization"), token)
        if verdict == "ok":
            return None
        return _error(401, f"bearer token {verdict}", field="authorization")

    @app.post(PREDICT_ROUTE)
    async def predict_route(self, request: Request) -> Response:
        """POST /predict: validate, route and answer (422 naming the field on bad input)."""
        refused = self._authorised(request, self._inference_token)
        if refused is not None:
            return refused
        try:
            inputs = parse_predict_body(await request.body())
            answer = await self.infer(inputs, request.headers.get(VERSION_HEADER))
        except RequestInvalid as exc:
            return _error(422, str(exc), exc.field)
        except UnknownVersion as exc:
            return _error(422, str(exc), exc.field)
        except Unavailable as exc:
            return _error(503, str(exc))
        return JSONResponse(answer.model_dump())

    @app.post(FEEDBACK_ROUTE)
    async def feedback_route(self, request: Request) -> Response:
        """POST /feedback: score a request's answer against its true labels."""
        refused = self._authorised(request, self._inference_token)
        if refused is not None:
            return refused
        try:
            request_id, labels = parse_feedback_body(await request.body())
            outcome = self._feedback.resolve(request_id, labels)
        except RequestInvalid as exc:
            return _error(422, str(exc), exc.field)
        except LabelMismatch as exc:
            return _error(422, str(exc), "label")
        except UnknownRequest as exc:
            return _error(404, str(exc), "request_id")
        self._metrics.feedback(outcome.version, outcome.region, outcome.correct, outcome.total)
        self._reservoir.label(request_id, labels)  # labelled recent data, for retraining
        return JSONResponse(
            {
                "request_id": request_id,
                "version": outcome.version,
                "region": outcome.region,
                "correct": outcome.correct,
                "total": outcome.total,
            }
        )

    def _admin(self, request: Request) -> JSONResponse | None:
        if self._admin_token is None:
            return _error(
                403, f"admin routes are off: set {self._settings.admin_token_env} for the ingress"
            )
        return self._authorised(request, self._admin_token)

    @app.get(SAMPLES_ROUTE)
    async def samples_route(self, request: Request) -> Response:
        """GET /admin/samples?version=V&limit=N: recent raw samples of one version."""
        refused = self._admin(request)
        if refused is not None:
            return refused
        version = request.query_params.get("version")
        if not version:
            return _error(422, "version: missing", "version")
        raw_limit = request.query_params.get("limit", "500")
        try:
            limit = int(raw_limit)
        except ValueError:
            return _error(422, f"limit: {raw_limit!r} is not an integer", "limit")
        if not 1 <= limit <= self._settings.samples_per_version:
            return _error(422, f"limit: must be 1..{self._settings.samples_per_version}", "limit")
        records = self._reservoir.recent(version, limit)
        return JSONResponse([r.model_dump() for r in records])

    @app.get(ROUTING_ROUTE)
    async def routing_route(self, request: Request) -> Response:
        """GET /admin/routing: the routing table the ingress applies now."""
        refused = self._admin(request)
        if refused is not None:
            return refused
        try:
            table = self.routing.table
        except Unavailable as exc:
            return _error(503, str(exc))
        return JSONResponse(table.model_dump(mode="json"))

    @app.get(HEALTH_ROUTE)
    async def health_route(self) -> Response:
        """GET /healthz: 200 once a routing table is applied."""
        if self._routing is None:
            return _error(503, "no routing table yet")
        return JSONResponse(
            {
                "status": "ok",
                "versions": sorted(self._routing.regions),
                "refused_routing": self._refused,
            }
        )
