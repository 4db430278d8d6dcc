"""What a controlled application offers (a leaf module: pydantic only).

This first part is the fault schema that the serving app, the simulator and the demo share.
The routing table, naming rule, metric names and routes join it with the serving plane.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
