"""Simulation scenarios as YAML: schema, the one loader (file/line/field errors), defaults."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from autoops.contract import VersionFaults
from autoops.regions.model import RegionCatalogue
from autoops.yamlio import ConfigError, ConfigIssue, LineMap, format_path, load_yaml, validate_model

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrafficSpec(_Model):
    """Where the offered load comes from."""

    source: Literal["synthetic", "alibaba", "azure"] = Field(
        default="synthetic",
        description="synthetic (seeded diurnal cycle, bursts, drift), alibaba (GenAI QPS rate "
        "trace) or azure (LLM conversation request trace).",
    )
    path: str | None = Field(
        default=None,
        description="Trace file, relative to the data directory (default: the "
        "shipped trace of that source).",
    )
    peak_rps: float = Field(default=200.0, gt=0, description="Scale the trace to this peak.")


class SignalsSpec(_Model):
    """Where carbon intensity and electricity prices come from."""

    source: Literal["csv", "static"] = Field(
        default="static", description="csv: hourly 2023 data per zone; static: fixed values."
    )
    start_hour: int = Field(
        default=0, ge=0, lt=8760, description="Hour of 2023 that simulated time 0 maps to."
    )
    carbon_g_per_kwh: float = Field(
        default=300.0, gt=0, description="Static carbon intensity of every region."
    )
    price_usd_per_mwh: float = Field(default=60.0, ge=0, description="Static price.")


class WorldSpec(_Model):
    """The simulated fleet's physics."""

    fidelity: Literal["fluid", "request"] = Field(
        default="fluid",
        description="fluid: queueing formulas on rates (long rate traces); request: every "
        "request queued one by one (request traces).",
    )
    step_s: float = Field(default=1.0, gt=0, le=60, description="Integration step, seconds.")
    service_ms: float = Field(default=40.0, gt=0, description="Mean service time per request.")
    replica_slots: int = Field(default=4, ge=1, le=1024, description="Concurrent requests.")
    cold_start_s: Seconds = Field(default=30.0, description="Replica start-up time.")
    start_replicas: int = Field(default=2, ge=0, description="Replicas at time 0.")
    scrape_interval_s: float = Field(default=5.0, gt=0, description="Metrics scrape interval.")
    metrics_delay_s: Seconds = Field(default=2.0, description="Metrics delay.")
    metrics_noise: float = Field(default=0.02, ge=0, le=1, description="Relative noise.")


class VersionSpec(_Model):
    """How a version behaves when healthy."""

    error_ratio: float = Field(default=0.001, ge=0, le=1, description="Baseline error ratio.")
    accuracy: float = Field(default=0.95, ge=0, le=1, description="Baseline accuracy.")
    service_ms: float | None = Field(default=None, gt=0, description="Own service time.")


class Deploy(_Model):
    """A version deployed during the run (a canary candidate)."""

    at_s: Seconds = Field(description="When it is deployed.")
    version: str = Field(min_length=1, description="Version name.")


class FaultSpec(_Model):
    """Faults (the contract's schema) on one version for a while."""

    at_s: Seconds = Field(description="When the faults start.")
    duration_s: Seconds = Field(description="How long they last.")
    version: str = Field(min_length=1, description="Version hit.")
    faults: VersionFaults = Field(description="What goes wrong.")


class WindowSpec(_Model):
    """A time window, optionally in one region."""

    at_s: Seconds = Field(description="Start.")
    duration_s: Seconds = Field(description="Length.")
    region: str | None = Field(default=None, description="Region, where it applies to one.")
    value: float | None = Field(default=None, ge=0, description="Spike value, for spikes.")


class JobSpec(_Model):
    """A deferrable job (e.g. a retraining): it may start at its release or later and must
    end by its deadline; the controller picks when (and where) within that window."""

    name: str = Field(min_length=1, max_length=128, description="Job name, unique in the file.")
    release_s: Seconds = Field(description="Earliest start, seconds of simulated time.")
    deadline_s: Seconds = Field(description="When it must have finished, seconds.")
    duration_s: float = Field(gt=0, allow_inf_nan=False, description="How long it runs, seconds.")
    replicas: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Replicas (GPUs) it holds; each costs the "
        "region's replica $/h and, without power_kw, draws the region's replica power.",
    )
    power_kw: float | None = Field(
        default=None,
        gt=0,
        le=10_000,
        allow_inf_nan=False,
        description="Total power draw while it runs, kW (default: replicas x replica power).",
    )
    region: str | None = Field(
        default=None,
        description="The one region it may run in (default: any region the policy allows).",
    )


class Scenario(_Model):
    """A replay: traffic, signals, faults and jobs through a policy and its baselines."""

    name: str = Field(min_length=1, max_length=128, description="Scenario name.")
    description: str = Field(default="", max_length=4096, description="What it shows.")
    policy: str = Field(description="Policy file, relative to the scenario file.")
    duration_s: float = Field(gt=0, le=31 * 86400, description="Simulated time, seconds.")
    seed: int = Field(default=0, ge=0, description="Seed of every random choice.")
    traffic: TrafficSpec = Field(default_factory=TrafficSpec, description="Offered load.")
    signals: SignalsSpec = Field(default_factory=SignalsSpec, description="Carbon and price.")
    world: WorldSpec = Field(default_factory=WorldSpec, description="Fleet physics.")
    versions: dict[str, VersionSpec] = Field(
        default_factory=lambda: {"v1": VersionSpec()}, description="Version behaviour."
    )
    deploy: tuple[Deploy, ...] = Field(default=(), description="Versions deployed mid-run.")
    faults: tuple[FaultSpec, ...] = Field(default=(), description="Scheduled version faults.")
    metrics_outages: tuple[WindowSpec, ...] = Field(default=(), description="Metrics outages.")
    region_outages: tuple[WindowSpec, ...] = Field(default=(), description="Region outages.")
    carbon_spikes: tuple[WindowSpec, ...] = Field(default=(), description="Carbon spikes.")
    price_spikes: tuple[WindowSpec, ...] = Field(default=(), description="Price spikes.")
    baselines: tuple[str, ...] = Field(default=(), description="Baselines to compare with.")
    jobs: tuple[JobSpec, ...] = Field(
        default=(), description="Deferrable jobs the controller may shift within their deadline."
    )


def _issues(
    scenario: Scenario,
    lines: LineMap,
    file: str,
    catalogue: RegionCatalogue,
    known_baselines: frozenset[str],
) -> list[ConfigIssue]:
    """Checks the schema cannot make: regions, versions, baselines, the policy file."""
    issues: list[ConfigIssue] = []

    def add(path: tuple[str | int, ...], message: str) -> None:
        issues.append(ConfigIssue(file, lines.line_of(path), format_path(path), message))

    policy = Path(file).parent / scenario.policy
    if not policy.is_file():
        add(("policy",), f"no policy file at {policy}")
    known_versions = set(scenario.versions) | {d.version for d in scenario.deploy}
    for i, fault in enumerate(scenario.faults):
        if fault.version not in known_versions:
            add(("faults", i, "version"), f"unknown version '{fault.version}'")
    for section in ("region_outages", "carbon_spikes", "price_spikes"):
        for i, window in enumerate(getattr(scenario, section)):
            if window.region is None:
                add((section, i, "region"), "a region is required here")
            elif window.region not in catalogue:
                add((section, i, "region"), f"unknown region '{window.region}'")
            if section != "region_outages" and window.value is None:
                add((section, i, "value"), "a spike needs a value")
    _check_jobs(scenario, add, catalogue)
    for i, name in enumerate(scenario.baselines):
        if name not in known_baselines:
            add(
                ("baselines", i),
                f"unknown baseline '{name}' (known: {', '.join(sorted(known_baselines))})",
            )
    return issues


def _check_jobs(
    scenario: Scenario,
    add: Callable[[tuple[str | int, ...], str], None],
    catalogue: RegionCatalogue,
) -> None:
    """Each job's window must hold it inside the run, in a known region, under a unique name."""
    names: set[str] = set()
    for i, job in enumerate(scenario.jobs):
        if job.name in names:
            add(("jobs", i, "name"), f"duplicate job name '{job.name}'")
        names.add(job.name)
        window = job.deadline_s - job.release_s
        if window <= 0:
            add(
                ("jobs", i, "deadline_s"),
                f"deadline_s {job.deadline_s:g} must be after release_s {job.release_s:g}",
            )
        elif job.duration_s > window:
            add(
                ("jobs", i, "duration_s"),
                f"duration_s {job.duration_s:g} is longer than the window from release_s "
                f"{job.release_s:g} to deadline_s {job.deadline_s:g} ({window:g} s)",
            )
        if job.deadline_s > scenario.duration_s:
            add(
                ("jobs", i, "deadline_s"),
                f"deadline_s {job.deadline_s:g} is after the end of the run "
                f"(duration_s {scenario.duration_s:g})",
            )
        if job.region is not None and job.region not in catalogue:
            add(("jobs", i, "region"), f"unknown region '{job.region}'")


def load_scenario(
    path: str | os.PathLike[str],
    catalogue: RegionCatalogue,
    known_baselines: frozenset[str],
) -> Scenario:
    """Load and check a scenario file; problems raise ConfigError with file, line and field."""
    file = os.fspath(path)
    data, lines = load_yaml(file)
    scenario = validate_model(Scenario, data, lines, file)
    issues = _issues(scenario, lines, file, catalogue, known_baselines)
    if issues:
        raise ConfigError(issues)
    return scenario
