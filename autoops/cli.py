"""The ``autoops`` command: the only place that wires adapters into the runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autoops.audit_commands import audit_command, status_command
from autoops.calibrate_commands import calibrate_command
from autoops.demo_commands import demo_command
from autoops.detect_commands import bench_nab_command, detect_app
from autoops.drift_commands import bench_drift_command, drift_command
from autoops.judge_commands import bench_canary_command, canary_command
from autoops.policy.commands import policy_app
from autoops.prometheus_commands import bench_observe_command, prometheus_app
from autoops.replay_commands import replay_command
from autoops.run_commands import run_command
from autoops.submit_commands import cluster_config_command, submit_command

app = typer.Typer(
    name="autoops",
    help="AutoOps: a self-healing controller for AI model serving on Ray Serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(policy_app, name="policy")

bench_app = typer.Typer(
    name="bench",
    help="Benchmarks: each writes JSON with the keys name, config, machine, results, anchors.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")
app.add_typer(detect_app, name="detect")
bench_app.command("nab")(bench_nab_command)
bench_app.command("canary")(bench_canary_command)
bench_app.command("drift")(bench_drift_command)
detect_app.command("drift")(drift_command)
detect_app.command("canary")(canary_command)
app.command("demo")(demo_command)
app.add_typer(prometheus_app, name="prometheus")
bench_app.command("observe")(bench_observe_command)
app.command("run")(run_command)
app.command("submit")(submit_command)
app.command("cluster-config")(cluster_config_command)
app.command("audit")(audit_command)
app.command("status")(status_command)
app.command("replay")(replay_command)
app.command("calibrate")(calibrate_command)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DRYRUN_POLICY = REPO_ROOT / "policies" / "carbon-aware.yaml"

OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Also write the JSON result to this file."),
]
RegionsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--regions",
        help="Extra region catalogue file that adds or overrides regions (repeatable).",
        show_default=False,
    ),
]


@app.callback()
def _root() -> None:
    """AutoOps: a self-healing controller for AI model serving on Ray Serve."""


@app.command()
def version() -> None:
    """Print the AutoOps version."""
    from autoops import __version__

    typer.echo(__version__)


@app.command()
def dryrun(
    policy: Annotated[
        Path,
        typer.Option(
            "--policy",
            "-p",
            help="Policy to run (default: the shipped carbon-aware example).",
        ),
    ] = DEFAULT_DRYRUN_POLICY,
    regions: RegionsOption = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print every pass, not only those that act.")
    ] = False,
) -> None:
    """Run the decision core on a synthetic incident and print what it decides and why.

    Nothing touches a cluster: a small deterministic world (a bad canary that answers wrongly,
    a traffic ramp, a carbon spike in the serving region) is fed to decide() pass by pass, and
    every action is applied to that world, as a live shell would.
    """
    from autoops.dryrun_view import run_dryrun

    raise typer.Exit(run_dryrun(policy, regions or [], verbose))


@app.command()
def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (simulations/*.yaml).")],
    policy: Annotated[
        Path | None,
        typer.Option("--policy", "-p", help="Run this policy instead of the scenario's."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Public data directory (default: AUTOOPS_DATA_DIR or ../shared/data)."),
    ] = None,
    report_dir: Annotated[Path, typer.Option(help="Where report.json and report.html go.")] = Path(
        "reports/simulate"
    ),
    baseline: Annotated[
        list[str] | None,
        typer.Option(
            "--baseline",
            "-b",
            help="Baseline to compare with (repeatable; default: the scenario's).",
        ),
    ] = None,
    regions: RegionsOption = None,
) -> None:
    """Replay a scenario through the controller and its baselines; write a report with plots."""
    from autoops.sim.runner import run_scenario_command

    raise typer.Exit(
        run_scenario_command(scenario, policy, data_dir, report_dir, baseline, regions or [])
    )


@bench_app.command("ingress")
def bench_ingress(output: OutputOption = None) -> None:
    """Latency the ingress adds over a direct handle call, and the app's HTTP throughput."""
    from rich.console import Console

    from autoops.bench.common import write_result
    from autoops.bench.ingress import IngressBenchConfig, run_ingress_bench

    with Console(stderr=True).status("bench ingress") as status:
        write_result(run_ingress_bench(IngressBenchConfig(), status.update), output)


@bench_app.command("rollback")
def bench_rollback(
    healthy: Annotated[
        int, typer.Option(min=0, help="Healthy canaries to run in a row (false-rollback check).")
    ] = 10,
    scraper: Annotated[
        bool, typer.Option(help="Use the built-in scraper even when Prometheus is installed.")
    ] = False,
    output: OutputOption = None,
) -> None:
    """Live: time from a canary's failure to its rollback, what clients lose, false rollbacks."""
    from rich.console import Console

    from autoops.bench.common import write_result
    from autoops.bench.rollback import RollbackBenchConfig, run_rollback_bench
    from autoops.logging import configure_logging

    configure_logging(level="warning")
    config = RollbackBenchConfig(healthy_canaries=healthy, prefer_prometheus=not scraper)
    with Console(stderr=True).status("bench rollback") as status:
        write_result(run_rollback_bench(config, status.update), output)


@bench_app.command("sim")
def bench_sim(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Public data directory (default: AUTOOPS_DATA_DIR or ../shared/data)."),
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Seeded bad-canary runs.")] = 5,
    output: OutputOption = None,
) -> None:
    """Simulator speed, scaling vs Ray Serve's default, carbon vs agnostic, canary vs Flagger."""
    import sys

    from rich.console import Console

    from autoops.bench.common import write_result
    from autoops.bench.sim import run_sim_bench
    from autoops.regions.loader import default_catalogue
    from autoops.sim.runner import default_data_dir

    data = data_dir or default_data_dir()
    if data is None or not data.is_dir():
        print(
            "bench sim needs the public data: pass --data-dir or set AUTOOPS_DATA_DIR",
            file=sys.stderr,
        )
        raise typer.Exit(1)
    console = Console(stderr=True)
    with console.status("bench sim") as status:
        result = run_sim_bench(data, default_catalogue(), seeds, lambda m: status.update(m))
    write_result(result, output)


@bench_app.command("decide")
def bench_decide(
    output: OutputOption = None,
    deployments: Annotated[
        int, typer.Option(min=1, help="Deployments in the synthetic fleet.")
    ] = 1000,
    regions: Annotated[int, typer.Option(min=1, help="Regions from the catalogue.")] = 16,
    repeats: Annotated[int, typer.Option(min=1, help="Timed passes.")] = 30,
) -> None:
    """Time one decide() pass over a fleet of deployments across regions (one core)."""
    from autoops.bench.common import write_result
    from autoops.bench.decide import DecideBenchConfig, run
    from autoops.progress import passes_progress
    from autoops.regions.loader import default_catalogue

    config = DecideBenchConfig(deployments=deployments, regions=regions, repeats=repeats)
    with passes_progress("decide() passes") as advance:
        result = run(config, default_catalogue(), advance)
    write_result(result, output)


def main() -> None:
    """Run the ``autoops`` command line."""
    app()


if __name__ == "__main__":
    main()
