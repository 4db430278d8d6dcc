"""Run a scenario: build its world, then the controller and each baseline through it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from autoops.policy.loader import load_policy
from autoops.policy.schema import Policy
from autoops.regions.model import RegionCatalogue
from autoops.sim.api import Controller, SimResult, TrafficSource
from autoops.sim.baselines import BASELINES, AutoOpsController, CarbonOracle, StaticReplicas
from autoops.sim.engine import (
    DeferrableJob,
    MetricsOutage,
    ScheduledFault,
    SimConfig,
    VersionBehaviour,
    simulate,
)
from autoops.sim.scenario import Scenario, load_scenario
from autoops.sim.signals import (
    CarbonSpike,
    CsvSignals,
    FutureSignals,
    Override,
    Overrides,
    PriceSpike,
    RegionOutage,
    StaticSignals,
)
from autoops.sim.traffic import AlibabaQpsTrace, AzureRequestTrace, SyntheticTraffic
from autoops.yamlio import ConfigError, ConfigIssue, format_path, load_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRACES = {
    "alibaba": "traces/alibaba_genai_qps.csv",
    "azure": "traces/azure_llm_2023_conv.csv",
}


class ScenarioDataError(ValueError):
    """The scenario needs public data that is not there; the message says which and where."""


def default_data_dir() -> Path | None:
    """``AUTOOPS_DATA_DIR``, else ``../shared/data`` beside the repository, if it exists."""
    env = os.environ.get("AUTOOPS_DATA_DIR")
    candidate = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


@dataclass(frozen=True)
class World:
    """Everything a run of the scenario needs, built once and shared by every controller."""

    scenario: Scenario
    policy: Policy
    traffic: TrafficSource
    signals: FutureSignals
    config: SimConfig


def _data(data_dir: Path | None, what: str) -> Path:
    if data_dir is None:
        raise ScenarioDataError(
            f"{what} needs the public data: pass --data-dir or set AUTOOPS_DATA_DIR"
        )
    return data_dir


def build_world(
    path: Path,
    catalogue: RegionCatalogue,
    data_dir: Path | None,
    policy_override: Path | None = None,
) -> World:
    """Load the scenario and its policy, and build traffic, signals and the world's physics."""
    scenario = load_scenario(path, catalogue, frozenset(BASELINES))
    policy_path = policy_override or (path.parent / scenario.policy)
    policy = load_policy(policy_path, catalogue)
    _check_job_regions(path, scenario, policy)
    spec = scenario.traffic
    traffic: TrafficSource
    if spec.source == "synthetic":
        traffic = SyntheticTraffic(scenario.duration_s, spec.peak_rps, scenario.seed)
    else:
        root = _data(data_dir, f"traffic source '{spec.source}'")
        trace = root / (spec.path or DEFAULT_TRACES[spec.source])
        if spec.source == "alibaba":
            traffic = AlibabaQpsTrace.load(trace, peak_rps=spec.peak_rps, seed=scenario.seed)
        else:
            traffic = AzureRequestTrace.load(trace, peak_rps=spec.peak_rps)
    if traffic.duration_s + 1.0 < scenario.duration_s:
        raise ScenarioDataError(
            f"the {spec.source} traffic lasts {traffic.duration_s:.0f} s at peak "
            f"{spec.peak_rps:g} rps (a higher peak compresses the trace), shorter than "
            f"duration_s {scenario.duration_s:g}: shorten the run or lower peak_rps"
        )
    regions = [catalogue[r] for r in policy.intent.allowed_regions if r in catalogue]
    base: FutureSignals
    if scenario.signals.source == "csv":
        root = _data(data_dir, "signals source 'csv'")
        base = CsvSignals.load(root, regions, start_hour=scenario.signals.start_hour)
    else:
        base = StaticSignals.uniform(
            [r.name for r in regions],
            scenario.signals.carbon_g_per_kwh,
            scenario.signals.price_usd_per_mwh,
        )
    overrides: list[Override] = []
    for w in scenario.carbon_spikes:
        overrides.append(CarbonSpike(w.region or "", w.at_s, w.duration_s, w.value or 0.0))
    for w in scenario.price_spikes:
        overrides.append(PriceSpike(w.region or "", w.at_s, w.duration_s, w.value or 0.0))
    for w in scenario.region_outages:
        overrides.append(RegionOutage(w.region or "", w.at_s, w.duration_s))
    signals: FutureSignals = Overrides(base, overrides) if overrides else base
    world = scenario.world
    behaviours = {
        name: VersionBehaviour(
            error_ratio=v.error_ratio,
            accuracy=v.accuracy,
            service_s=(v.service_ms or world.service_ms) / 1000,
        )
        for name, v in scenario.versions.items()
    }
    for deploy in scenario.deploy:
        behaviours.setdefault(deploy.version, VersionBehaviour(service_s=world.service_ms / 1000))
    start_versions = tuple(
        v for v in scenario.versions if v not in {d.version for d in scenario.deploy}
    )
    config = SimConfig(
        duration_s=scenario.duration_s,
        fidelity=world.fidelity,
        step_s=world.step_s,
        replica_slots=world.replica_slots,
        cold_start_s=world.cold_start_s,
        scrape_interval_s=world.scrape_interval_s,
        metrics_delay_s=world.metrics_delay_s,
        metrics_noise=world.metrics_noise,
        seed=scenario.seed,
        start_versions=start_versions or ("v1",),
        start_replicas=world.start_replicas,
        versions=behaviours,
        new_versions={d.at_s: d.version for d in scenario.deploy},
        faults=tuple(
            ScheduledFault(f.version, f.at_s, f.duration_s, f.faults) for f in scenario.faults
        ),
        outages=tuple(MetricsOutage(o.at_s, o.duration_s) for o in scenario.metrics_outages),
        jobs=tuple(
            DeferrableJob(
                name=j.name,
                release_s=j.release_s,
                deadline_s=j.deadline_s,
                duration_s=j.duration_s,
                replicas=j.replicas,
                power_kw=j.power_kw,
                region=j.region,
            )
            for j in scenario.jobs
        ),
    )
    return World(scenario, policy, traffic, signals, config)


def _check_job_regions(path: Path, scenario: Scenario, policy: Policy) -> None:
    """A job pinned to a region must stay inside the policy's compliance boundary."""
    bad = [
        i
        for i, job in enumerate(scenario.jobs)
        if job.region is not None and job.region not in policy.intent.allowed_regions
    ]
    if not bad:
        return
    _, lines = load_yaml(path)
    allowed = ", ".join(policy.intent.allowed_regions)
    raise ConfigError(
        ConfigIssue(
            os.fspath(path),
            lines.line_of(("jobs", i, "region")),
            format_path(("jobs", i, "region")),
            f"region '{scenario.jobs[i].region}' is not allowed by the policy (allowed: {allowed})",
        )
        for i in bad
    )


def make_controller(name: str, world: World) -> Controller:
    """The controller under test (``autoops``) or a baseline, set up for this world."""
    if name == "autoops":
        return AutoOpsController()
    if name == "oracle":
        return CarbonOracle(world.signals.at)
    if name == "static":
        return StaticReplicas()
    return BASELINES[name]()


def run_world(
    world: World,
    catalogue: RegionCatalogue,
    names: Sequence[str],
    progress: Callable[[str, float, float], None] | None = None,
) -> dict[str, SimResult]:
    """Run each named controller through the same world; results by name."""
    results: dict[str, SimResult] = {}
    for name in names:
        controller = make_controller(name, world)

        def tick(t: float, total: float, name: str = name) -> None:
            if progress is not None:
                progress(name, t, total)

        results[name] = simulate(
            world.policy, catalogue, world.traffic, world.signals, controller, world.config, tick
        )
    return results


def run_scenario_command(
    path: Path,
    policy: Path | None,
    data_dir: Path | None,
    report_dir: Path,
    baselines: list[str] | None,
    regions: list[Path],
) -> int:
    """``autoops simulate``: run, report, print the table; return the exit code."""
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from autoops.regions.loader import load_catalogue
    from autoops.sim.report import write_report
    from autoops.sim.traffic import TraceError

    try:
        catalogue = load_catalogue(regions)
        world = build_world(path, catalogue, data_dir or default_data_dir(), policy)
    except ConfigError as err:
        for issue in err.issues:
            print(issue.format(), file=sys.stderr)
        return 1
    except (ScenarioDataError, TraceError) as err:
        print(f"{path}: {err}", file=sys.stderr)
        return 1
    names = ["autoops", *(baselines if baselines is not None else world.scenario.baselines)]
    unknown = [n for n in names[1:] if n not in BASELINES]
    if unknown:
        print(
            f"unknown baseline(s): {', '.join(unknown)} (known: {', '.join(BASELINES)})",
            file=sys.stderr,
        )
        return 2
    err_console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        tasks = {n: bar.add_task(n, total=world.config.duration_s) for n in names}

        def progress(name: str, t: float, total: float) -> None:
            if int(t) % 600 == 0:
                bar.update(tasks[name], completed=t, total=total)

        results = run_world(world, catalogue, names, progress)
    config = {
        "duration_s": world.config.duration_s,
        "seed": world.config.seed,
        "traffic": world.scenario.traffic.model_dump(),
        "signals": world.scenario.signals.model_dump(),
    }
    if world.scenario.jobs:
        config["jobs"] = [job.model_dump() for job in world.scenario.jobs]
    json_path, html_path = write_report(
        report_dir, world.scenario.name, world.policy, results, config
    )
    from autoops.sim.report import summary

    table = Table(title=f"{world.scenario.name}: {world.policy.metadata.name}")
    columns = [
        "slo_violation_minutes",
        "p99_ms",
        "failed_requests",
        "dropped_requests",
        "replica_hours",
        "cost_usd",
        "co2_g_per_1k_requests",
        "actions",
        "flaps",
    ]
    if world.config.jobs:
        columns += ["job_co2_kg", "jobs_deadline_missed"]
    table.add_column("controller")
    for c in columns:
        table.add_column(c.replace("_", " "), justify="right")
    for name, result in results.items():
        row = summary(result, world.policy)
        table.add_row(name, *(str(row[c]) for c in columns))
    Console().print(table)
    print(f"report: {html_path} and {json_path}")
    return 0
