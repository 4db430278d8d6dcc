"""The policy language: pydantic models with ``extra="forbid"`` and a description on every field.

A policy is the whole contract between an engineer and the controller: what it controls, the
SLOs it defends, the intent it optimises, and the limits it must stay inside.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Ratio = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]


class _Model(BaseModel):
    """Base for every policy section: unknown fields are errors; values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# --------------------------------------------------------------------------- target & SLO


class Target(_Model):
    """Which Ray Serve application and deployment this policy controls."""

    application: Name = Field(description="Ray Serve application name.")
    deployment: Name = Field(description="Deployment (model) name inside the application.")
    stable_version: Name | None = Field(
        default=None,
        description="Version to treat as stable when the controller first starts; "
        "afterwards the controller's store is the source of truth.",
    )


class SLO(_Model):
    """Service level objectives the controller defends."""

    latency_p99_ms: PositiveFloat = Field(description="End-to-end p99 latency objective, ms.")
    error_rate: Ratio = Field(
        default=0.01, description="Highest acceptable share of failed requests."
    )
    availability: float = Field(
        default=0.999,
        gt=0.5,
        lt=1.0,
        description="Availability target; 1 - availability is the error budget that "
        "burn rates are measured against.",
    )
    window_days: int = Field(default=30, ge=1, le=365, description="Error-budget window, days.")


# --------------------------------------------------------------------------- intent


class Objective(StrEnum):
    """What placement optimises when several allowed regions meet the SLO."""

    COST = "cost"
    CARBON = "carbon"
    LATENCY = "latency"
    WEIGHTED = "weighted"


class ObjectiveWeights(_Model):
    """Relative weights of cost, carbon and latency for the ``weighted`` objective."""

    cost: NonNegFloat = Field(default=1.0, description="Weight of $ per hour.")
    carbon: NonNegFloat = Field(default=1.0, description="Weight of grid carbon intensity.")
    latency: NonNegFloat = Field(default=1.0, description="Weight of latency to users.")


class Intent(_Model):
    """What the operator wants, inside the SLO: cheap, green, fast; where data may go."""

    allowed_regions: tuple[Name, ...] = Field(
        min_length=1,
        description="Compliance boundary: regions (from the region catalogue) that may serve "
        "traffic. Traffic and replicas never go anywhere else.",
    )
    objective: Objective = Field(default=Objective.LATENCY, description="What placement optimises.")
    weights: ObjectiveWeights = Field(
        default_factory=ObjectiveWeights, description="Weights for the weighted objective."
    )
    budget_usd_per_hour: PositiveFloat | None = Field(
        default=None,
        description="Compute budget ceiling, $/h. Exceeded only when the SLO would break, "
        "and the decision says so.",
    )
    carbon_ceiling_g_per_kwh: PositiveFloat | None = Field(
        default=None,
        description="Regions whose grid carbon intensity is above this (gCO2e/kWh) are "
        "avoided while another allowed region is under it.",
    )
    accuracy_floor: Ratio | None = Field(
        default=None,
        description="Lowest acceptable accuracy; degradation to the small model stops here.",
    )
    min_regions: int = Field(
        default=1, ge=1, le=16, description="Spread traffic over at least this many regions."
    )
    user_group: Name | None = Field(
        default=None,
        description="User group (catalogue latency table) whose latency counts; "
        "None averages every group.",
    )


# --------------------------------------------------------------------------- scaling


class Predictive(_Model):
    """Short-horizon forecast of request rate, so capacity is ready before a ramp."""

    enabled: bool = Field(default=False, description="Scale up ahead of a forecast ramp.")
    horizon_s: PositiveFloat = Field(
        default=60.0, description="How far ahead to forecast, seconds (cover the cold start)."
    )
    history_points: int = Field(
        default=24, ge=4, le=720, description="Points of rate history the forecast fits."
    )


class Scaling(_Model):
    """Replica bounds and the reactive/predictive scaling rule."""

    min_replicas: int = Field(default=1, ge=0, le=10_000, description="Never fewer replicas.")
    max_replicas: int = Field(default=10, ge=1, le=10_000, description="Never more replicas.")
    target_ongoing_requests: PositiveFloat = Field(
        default=2.0, description="Target requests in flight per replica."
    )
    tolerance: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="No scaling while load per replica is within this fraction of the target.",
    )
    upscale_stabilization_s: NonNegFloat = Field(
        default=15.0, description="Load must stay above the band this long before scaling up."
    )
    downscale_stabilization_s: NonNegFloat = Field(
        default=300.0, description="Load must stay below the band this long before scaling down."
    )
    max_step: int | None = Field(
        default=None,
        ge=1,
        description="Blast radius: most replicas added or removed in one decision (None: any).",
    )
    predictive: Predictive = Field(
        default_factory=Predictive, description="Forecast-based scale-up."
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Scaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is greater than max_replicas "
                f"({self.max_replicas})"
            )
        return self


# --------------------------------------------------------------------------- rollout


class Strategy(StrEnum):
    """How a new version reaches users."""

    CANARY = "canary"
    BLUE_GREEN = "blue_green"
    SHADOW = "shadow"


class BurnRateGate(_Model):
    """A multi-window burn-rate gate: both windows must burn under ``max_burn_rate``."""

    long_window_s: PositiveFloat = Field(description="Long window, seconds.")
    short_window_s: PositiveFloat = Field(description="Short window, seconds.")
    max_burn_rate: PositiveFloat = Field(
        description="Highest error-budget burn rate (1 = spending exactly the budget)."
    )

    @model_validator(mode="after")
    def _short_is_shorter(self) -> BurnRateGate:
        if self.short_window_s >= self.long_window_s:
            raise ValueError("short_window_s must be shorter than long_window_s")
        return self


class Rollout(_Model):
    """How a canary (or blue-green/shadow) rollout progresses and when it is rolled back."""

    strategy: Strategy = Field(default=Strategy.CANARY, description="Rollout strategy.")
    steps: tuple[Annotated[float, Field(gt=0, le=100)], ...] = Field(
        default=(5.0, 10.0, 25.0, 50.0),
        min_length=1,
        description="Canary traffic per step, percent, strictly increasing; promotion follows "
        "the last step. Blue-green uses only the last step.",
    )
    analysis_interval_s: PositiveFloat = Field(
        default=30.0, description="A step must pass analysis this long before advancing."
    )
    failed_check_limit: int = Field(
        default=2, ge=1, le=100, description="Failed analysis intervals that cause a rollback."
    )
    progress_deadline_s: PositiveFloat = Field(
        default=900.0,
        description="Roll back when a step makes no progress (inconclusive data) this long.",
    )
    min_requests: int = Field(
        default=50,
        ge=0,
        description="Fewer canary requests than this in the window is inconclusive, not a pass.",
    )
    max_latency_increase: float = Field(
        default=0.25,
        ge=0,
        description="Canary p99 may exceed the baseline's by at most this fraction.",
    )
    max_error_increase: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Canary error ratio may exceed the baseline's by at most this (absolute).",
    )
    max_accuracy_drop: Ratio = Field(
        default=0.03, description="Canary accuracy may be below the baseline's by at most this."
    )
    max_shadow_disagreement: Ratio = Field(
        default=0.1, description="Shadow strategy: most disagreement with the stable version."
    )
    burn_rate_gates: tuple[BurnRateGate, ...] = Field(
        default=(),
        description="Multi-window burn-rate gates that must allow advancing a step.",
    )
    fast_rollback_burn_rate: PositiveFloat | None = Field(
        default=14.4,
        description="Roll back at once (no failed-check count) when the canary burns its error "
        "budget this fast in the shortest gate window while the baseline does not.",
    )

    @model_validator(mode="after")
    def _steps_increase(self) -> Rollout:
        for before, after in zip(self.steps, self.steps[1:], strict=False):
            if after <= before:
                raise ValueError(
                    f"steps must be strictly increasing, but {after:g} follows {before:g}"
                )
        return self


# --------------------------------------------------------------------------- detectors


class Signal(StrEnum):
    """Metrics a detector can watch."""

    REQUEST_RATE = "request_rate"
    ERROR_RATIO = "error_ratio"
    LATENCY_P99 = "latency_p99_ms"
    LATENCY_P50 = "latency_p50_ms"
    ACCURACY = "accuracy"
    ONGOING = "ongoing_requests"
    GPU_UTILISATION = "gpu_utilisation"


class AnomalyDetectorSpec(_Model):
    """A streaming anomaly detector on one signal."""

    signal: Signal = Field(description="Metric to watch.")
    detector: Literal["default", "robust_zscore", "seasonal", "forecast_residual"] = Field(
        default="default", description="Detector to use; ``default`` is the frozen ensemble."
    )
    threshold: float | None = Field(
        default=None, gt=0, le=1, description="Score in (0, 1] that alarms; None: the default."
    )


class DriftSpec(_Model):
    """Drift tests on model inputs and outputs against the version's reference sample."""

    enabled: bool = Field(default=True, description="Run drift tests.")
    method: Literal["auto", "ks", "wasserstein", "psi", "mmd", "classifier"] = Field(
        default="auto", description="Test; ``auto`` combines per-feature and multivariate tests."
    )
    alpha: float = Field(default=0.01, gt=0, lt=0.5, description="Overall false-alarm rate.")
    window: int = Field(default=500, ge=20, le=100_000, description="Samples per test window.")
    confirm_windows: int = Field(
        default=2,
        ge=1,
        le=10,
        description="Consecutive, disjoint test windows that must each show drift before it is "
        "reported: a live stream is tested again and again, and a single window at alpha would "
        "raise a false alarm about once every 1/alpha windows.",
    )


class CanaryJudgeSpec(_Model):
    """How a canary is compared with the baseline."""

    metrics: tuple[Signal, ...] = Field(
        default=(Signal.ERROR_RATIO, Signal.LATENCY_P99, Signal.ACCURACY),
        description="Metrics compared canary vs baseline.",
    )
    confidence: float = Field(
        default=0.99, gt=0.5, lt=1, description="Confidence level of the comparison."
    )
    sequential: bool = Field(
        default=True, description="Use an anytime-valid test so checking every interval is safe."
    )


class Detectors(_Model):
    """Which detectors run, on which signals, with which thresholds."""

    anomaly: tuple[AnomalyDetectorSpec, ...] = Field(
        default=(), description="Anomaly detectors on metric series."
    )
    drift: DriftSpec = Field(default_factory=DriftSpec, description="Input/output drift tests.")
    canary: CanaryJudgeSpec = Field(
        default_factory=CanaryJudgeSpec, description="The canary judge."
    )


# --------------------------------------------------------------------------- remediations


class Remediations(_Model):
    """What to do about each kind of trouble."""

    on_canary_failure: Literal["rollback", "pause", "alert"] = Field(
        default="rollback", description="When the canary fails analysis."
    )
    on_anomaly: Literal["alert", "scale_out", "ignore"] = Field(
        default="alert", description="When a fleet-wide anomaly is found."
    )
    on_drift: Literal["retrain", "fallback", "alert"] = Field(
        default="alert", description="When input/output drift is found."
    )
    fallback_version: Name | None = Field(
        default=None, description="Robust version to fall back to on drift (``fallback``)."
    )
    retrain_deadline_s: PositiveFloat = Field(
        default=6 * 3600.0, description="Retraining may be deferred (to a greener hour) this long."
    )
    on_region_degraded: Literal["reroute", "alert"] = Field(
        default="reroute", description="When a region fails or degrades."
    )
    on_metrics_outage: Literal["hold", "fallback_to_stable"] = Field(
        default="hold", description="When metrics are missing: hold, or send all to stable."
    )
    metrics_stale_after_s: PositiveFloat = Field(
        default=30.0, description="Metrics older than this are missing, not healthy."
    )


# --------------------------------------------------------------------------- guardrails


class Guardrails(_Model):
    """Hard limits applied after every decision, in a fixed order."""

    max_actions_per_hour: int = Field(
        default=60, ge=1, le=10_000, description="Most changes to the serving system per hour."
    )
    max_traffic_shift: float = Field(
        default=50.0,
        gt=0,
        le=100,
        description="Most traffic (percent points) moved toward a new version or region in one "
        "decision. Rollbacks move traffic back to safety at once.",
    )
    region_hysteresis: Ratio = Field(
        default=0.1,
        description="Region weights change only when the objective improves by this fraction.",
    )
    scale_cooldown_s: NonNegFloat = Field(
        default=30.0, description="No scaling change within this long of the previous one."
    )
    dry_run: bool = Field(default=False, description="Decide and audit, but apply nothing.")
    require_approval: tuple[
        Literal["promote", "rollback", "set_replicas", "set_region_weights", "retrain"], ...
    ] = Field(default=(), description="Actions that wait for a human's approval.")


# --------------------------------------------------------------------------- degradation


class Degradation(_Model):
    """Graceful degradation through the small-model cascade."""

    enabled: bool = Field(default=True, description="Move load to the small model when pressed.")
    normal_threshold: Ratio = Field(
        default=0.8, description="Cascade threshold in normal operation."
    )
    min_threshold: Ratio = Field(
        default=0.3, description="Lowest cascade threshold (most load on the small model)."
    )
    step: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.1, description="Threshold change per decision."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Degradation:
        if self.min_threshold > self.normal_threshold:
            raise ValueError("min_threshold must not exceed normal_threshold")
        return self


# --------------------------------------------------------------------------- the policy


class Metadata(_Model):
    """Who the policy is and who owns it."""

    name: Name = Field(description="Policy name, unique per controller.")
    owner: str | None = Field(default=None, max_length=256, description="Team or person to page.")
    description: str | None = Field(default=None, max_length=4096, description="Free text.")


class Policy(_Model):
    """A complete AutoOps policy."""

    api_version: Literal["autoops/v1"] = Field(
        default="autoops/v1", alias="apiVersion", description="Policy language version."
    )
    kind: Literal["Policy"] = Field(default="Policy", description="Document kind.")
    metadata: Metadata = Field(description="Name and owner.")
    target: Target = Field(description="What is controlled.")
    tick_interval_s: PositiveFloat = Field(
        default=5.0, description="Seconds between control-loop passes."
    )
    slo: SLO = Field(description="Service level objectives.")
    intent: Intent = Field(description="Cost/carbon/latency intent and the compliance boundary.")
    scaling: Scaling = Field(default_factory=Scaling, description="Replica scaling.")
    rollout: Rollout = Field(default_factory=Rollout, description="Progressive delivery.")
    detectors: Detectors = Field(default_factory=Detectors, description="Detectors to run.")
    remediations: Remediations = Field(
        default_factory=Remediations, description="What to do about each kind of trouble."
    )
    guardrails: Guardrails = Field(default_factory=Guardrails, description="Hard limits.")
    degradation: Degradation = Field(
        default_factory=Degradation, description="Graceful degradation through the cascade."
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
