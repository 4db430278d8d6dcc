"""What a controlled application offers (a leaf module: pydantic only).

The fault schema (shared by the serving app, the simulator and the demo), the deployment naming
rule, the ingress routing table (its ``user_config``), the routes, and the metric names and tags.
"""

from __future__ import annotations

import math
import re

from pydantic import BaseModel, ConfigDict, Field, model_validator


class VersionFaults(BaseModel):
    """Faults injected into one model version (off by default), via the ingress user_config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    extra_latency_ms: float = Field(
        default=0.0, ge=0, le=60_000, description="Added to every request's service time, ms."
    )
    error_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of requests that fail (HTTP 500)."
    )
    crash_after_requests: int | None = Field(
        default=None, ge=1, description="The replica process dies after this many requests."
    )
    wrong_answer_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of requests answered wrongly while still fast and 200 OK.",
    )
    input_shift: float = Field(
        default=0.0,
        ge=-10,
        le=10,
        description="Shift of the input distribution, in standard deviations (load generator).",
    )

    @property
    def active(self) -> bool:
        """True when any fault is switched on."""
        return bool(
            self.extra_latency_ms
            or self.error_rate
            or self.crash_after_requests
            or self.wrong_answer_rate
            or self.input_shift
        )


# --------------------------------------------------------------------------- naming

VERSION_HEADER = "x-autoops-version"
"""Request header that pins a request to a version (when the routing table allows it)."""

NAME_SEPARATOR = "__"
"""Separates model, version and region in a version deployment's name."""

INGRESS_DEPLOYMENT = "Ingress"
"""The traffic-splitting ingress deployment's name inside every controlled application."""

_NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,62}$")


def version_deployment_name(model: str, version: str, region: str) -> str:
    """The Serve deployment name that runs ``version`` of ``model`` in ``region``."""
    for label, part in (("model", model), ("version", version), ("region", region)):
        if not _NAME_PART.match(part):
            raise ValueError(
                f"{label} {part!r} must be 1-63 letters, digits, '.' or '-', "
                "starting with a letter or digit"
            )
    return NAME_SEPARATOR.join((model, version, region))


def version_app_name(application: str, version: str) -> str:
    """The Serve application that holds every region's deployment of one version.

    Each version is its own application, so adding or retiring a version never changes the
    ingress application's code version (which would restart its replicas): the ingress finds a
    version's handles by name, ``(version_deployment_name(...), version_app_name(...))``.
    """
    if not _NAME_PART.match(version):
        raise ValueError(f"version {version!r} is not a valid name part")
    return f"{application}{NAME_SEPARATOR}{version}"


def parse_deployment_name(name: str) -> tuple[str, str, str] | None:
    """(model, version, region) of a version deployment's name, or None for other names."""
    parts = name.split(NAME_SEPARATOR)
    if len(parts) != 3 or not all(_NAME_PART.match(p) for p in parts):
        return None
    return parts[0], parts[1], parts[2]


# --------------------------------------------------------------------------- routing table


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShadowConfig(_Config):
    """Mirror a share of traffic to a version whose answers are compared, then discarded."""

    version: str | None = Field(default=None, description="Version receiving the mirror.")
    fraction: float = Field(default=0.0, ge=0, le=1, description="Share of requests mirrored.")


class CascadeConfig(_Config):
    """The small model answers first; low-confidence requests escalate to the routed version."""

    enabled: bool = Field(default=False, description="Answer with the small model first.")
    small_version: str | None = Field(
        default=None, description="Version of the small, fast model that answers first."
    )
    threshold: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="Escalate when the small model's confidence is under this value.",
    )


class BreakerConfig(_Config):
    """The ingress's circuit breaker: a millisecond reflex, before the controller's tick."""

    enabled: bool = Field(default=True, description="Trip on a version's errors.")
    window_s: float = Field(
        default=5.0, gt=0, le=600, description="The ingress's own error window, seconds."
    )
    min_requests: int = Field(
        default=5, ge=1, le=10_000, description="Requests in the window before it may trip."
    )
    error_ratio: float = Field(
        default=0.5, gt=0, le=1, description="Trip when the window's error ratio reaches this."
    )
    open_s: float = Field(
        default=2.0, gt=0, le=600, description="Stay open this long before probing, seconds."
    )
    probe_fraction: float = Field(
        default=0.05, gt=0, le=1, description="Share of the version's traffic sent while probing."
    )


class OverloadConfig(_Config):
    """What the ingress does when requests pile up instead of queueing without bound."""

    max_in_flight: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Requests in flight at one ingress replica before it degrades to the small "
        "model (or sheds with 503 when there is none).",
    )


class RoutingTable(_Config):
    """The ingress's ``user_config``: the applied routing state the controller reconciles."""

    model: str = Field(default="digits", description="Model name (first part of deployment names).")
    stable_version: str = Field(description="Version that serves when nothing else can.")
    weights: dict[str, float] = Field(
        description="Traffic weight per version (normalised by the ingress; absent = 0)."
    )
    region_weights: dict[str, float] = Field(
        description="Traffic weight per region (normalised by the ingress; absent = 0)."
    )
    deployments: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Regions where each version is deployed (its application "
        "version_app_name(app, version) holds one deployment per region). Empty: every version "
        "in weights in every region in region_weights.",
    )
    shadow: ShadowConfig = Field(default_factory=ShadowConfig, description="Mirrored traffic.")
    header_override: bool = Field(
        default=True, description=f"Honour the {VERSION_HEADER} header (A/B tests)."
    )
    cascade: CascadeConfig = Field(default_factory=CascadeConfig, description="Model cascade.")
    breaker: BreakerConfig = Field(default_factory=BreakerConfig, description="Circuit breaker.")
    overload: OverloadConfig = Field(
        default_factory=OverloadConfig, description="Degrade instead of queueing."
    )
    faults: dict[str, VersionFaults] = Field(
        default_factory=dict, description="Faults injected per version (off by default)."
    )

    @model_validator(mode="after")
    def _check_weights(self) -> RoutingTable:
        for label, weights in (("weights", self.weights), ("region_weights", self.region_weights)):
            bad = {k: w for k, w in weights.items() if not (w >= 0 and math.isfinite(w))}
            if bad:
                raise ValueError(f"{label}: weights must be finite and >= 0, got {bad}")
            if sum(weights.values()) <= 0:
                raise ValueError(f"{label}: at least one weight must be positive")
        return self

    def deployed_pairs(self) -> frozenset[tuple[str, str]]:
        """The (version, region) pairs that have a deployment, per ``deployments``."""
        if self.deployments:
            return frozenset((v, r) for v, regions in self.deployments.items() for r in regions)
        return frozenset((v, r) for v in self.weights for r in self.region_weights)


# --------------------------------------------------------------------------- routes

PREDICT_ROUTE = "/predict"
"""POST {"inputs": [[float x INPUT_SIZE], ...]}: answers with a PredictResponse."""
FEEDBACK_ROUTE = "/feedback"
"""POST {"request_id": str, "label": int}: labelled feedback for accuracy per version."""
SAMPLES_ROUTE = "/admin/samples"
"""GET ?version=V&limit=N with a bearer admin token: recent raw samples (SampleRecord list)."""
ROUTING_ROUTE = "/admin/routing"
"""GET with a bearer admin token: the routing table the ingress applies now."""
HEALTH_ROUTE = "/healthz"
"""GET: 200 when the ingress is up."""

INPUT_SIZE = 64
"""Features per input row (8x8 digit images, values 0-16)."""
MAX_BATCH_ROWS = 256
"""Rows per request beyond which the ingress answers 422."""


class PredictResponse(BaseModel):
    """What the inference route answers for one request."""

    request_id: str = Field(description="Quote it in POST /feedback.")
    version: str = Field(description="Version whose answer this is.")
    region: str = Field(description="Region that served it.")
    predictions: list[int] = Field(description="One class per input row.")
    confidences: list[float] = Field(description="Top-class probability per input row.")
    path: str = Field(
        description="primary | cascade_small | cascade_escalated | degraded | breaker_fallback"
    )


class SampleRecord(BaseModel):
    """One recent request as the admin route serves it, for drift tests."""

    time: float
    version: str
    region: str
    inputs: list[float]
    prediction: int
    confidence: float
    request_id: str | None = None
    label: int | None = None
    """The true label, once labelled feedback for this request arrived (for retraining)."""


# --------------------------------------------------------------------------- metrics

METRIC_PREFIX = "ray_"
"""Ray's metrics agent prefixes every application metric with this."""

REQUESTS = "autoops_requests"
"""Counter, tags version, region, outcome (ok|error): requests answered by the ingress."""
LATENCY_MS = "autoops_latency_ms"
"""Histogram, tags version, region: end-to-end latency at the ingress, ms (queueing included)."""
CONFIDENCE = "autoops_confidence"
"""Histogram, tags version, region: top-class probability of each answer."""
CASCADE = "autoops_cascade"
"""Counter, tags version, region, escalated (true|false): cascade decisions."""
SHADOW = "autoops_shadow"
"""Counter, tags version (the shadow's), region, agreed (true|false): mirrored comparisons."""
BREAKER_OPEN = "autoops_breaker_open"
"""Gauge, tags version: 1 while the breaker keeps traffic off the version (open/probing)."""
FEEDBACK = "autoops_feedback"
"""Counter, tags version, region, correct (true|false): labelled feedback received."""
IN_FLIGHT = "autoops_in_flight"
"""Gauge, tags version, region: requests in flight from the ingress to a version."""
DEGRADED = "autoops_degraded"
"""Counter, tags region: requests answered by the small model because of overload."""

LATENCY_BOUNDARIES_MS: tuple[float, ...] = (
    1, 2, 5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000,
)
"""Bucket upper bounds of LATENCY_MS."""
CONFIDENCE_BOUNDARIES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
"""Bucket upper bounds of CONFIDENCE."""

TAG_VERSION = "version"
TAG_REGION = "region"


def exported_name(metric: str, suffix: str = "") -> str:
    """The name a contract metric has in Prometheus (``_total``, ``_bucket`` ... as suffix)."""
    return f"{METRIC_PREFIX}{metric}{suffix}"
