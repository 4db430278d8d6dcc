"""``autoops prometheus ...``: print a prometheus.yml for a Ray cluster, or run one locally."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from autoops.adapters.prometheus_server import (
    CONTROLLER_METRICS_TARGET,
    PrometheusNotInstalledError,
    PrometheusServer,
    PrometheusStartError,
    default_service_discovery_file,
    prometheus_config,
)

prometheus_app = typer.Typer(
    name="prometheus",
    help="A Prometheus that scrapes Ray's metrics and the controller's.",
    no_args_is_help=True,
)

SdFileOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--sd-file",
        help="Ray's service-discovery file (repeatable; default: the one in Ray's temp "
        "directory, which follows the newest local Ray session).",
        show_default=False,
    ),
]
ControllerOption = Annotated[
    list[str] | None,
    typer.Option(
        "--controller",
        help="HOST:PORT of a controller's /metrics "
        f"(repeatable; default {CONTROLLER_METRICS_TARGET}).",
        show_default=False,
    ),
]
NoControllerOption = Annotated[
    bool, typer.Option("--no-controller", help="Do not scrape the controller's metrics.")
]
IntervalOption = Annotated[
    float,
    typer.Option(
        "--scrape-interval",
        min=0.5,
        help="Seconds between scrapes (Ray reports every 10 s by "
        "default; set RAY_metrics_report_interval_ms to report faster).",
    ),
]


def _config(
    sd_files: list[Path] | None, controllers: list[str] | None, no_controller: bool, interval: float
) -> str:
    files = sd_files or [default_service_discovery_file()]
    targets = [] if no_controller else (controllers or [CONTROLLER_METRICS_TARGET])
    return prometheus_config(files, targets, scrape_interval_s=interval)


@prometheus_app.command("config")
def config(
    sd_file: SdFileOption = None,
    controller: ControllerOption = None,
    no_controller: NoControllerOption = False,
    scrape_interval: IntervalOption = 5.0,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead.", show_default=False),
    ] = None,
) -> None:
    """Print a prometheus.yml scraping a Ray cluster (via its discovery file) and the controller."""
    text = _config(sd_file, controller, no_controller, scrape_interval)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        typer.echo(f"{output}: cannot write: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {output}", err=True)


@prometheus_app.command("up")
def up(
    sd_file: SdFileOption = None,
    controller: ControllerOption = None,
    no_controller: NoControllerOption = False,
    scrape_interval: IntervalOption = 5.0,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0: a free port.")] = 9090,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Keep the data here (default: a temporary folder).",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[
        float,
        typer.Option("--duration", min=0, help="Stop after this many seconds (0: at Ctrl-C)."),
    ] = 0.0,
) -> None:
    """Run a local Prometheus with that config until Ctrl-C (the binary must be installed)."""
    text = _config(sd_file, controller, no_controller, scrape_interval)
    try:
        server = PrometheusServer(text, port=port, data_dir=data_dir)
    except PrometheusNotInstalledError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    try:
        server.start()
    except PrometheusStartError as exc:
        typer.echo(str(exc), err=True)
        server.close()
        raise typer.Exit(1) from None
    typer.echo(f"Prometheus is up at {server.url} (data in {server.work_dir}); Ctrl-C stops it")
    stop = threading.Event()
    try:
        stop.wait(duration if duration > 0 else None)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()  # removes the data only when it is in a temporary folder
        typer.echo("Prometheus stopped", err=True)


def bench_observe_command(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write the JSON result to this file."),
    ] = None,
    applications: Annotated[
        int, typer.Option("--applications", min=1, help="Applications in the fleet.")
    ] = 50,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed snapshots.")] = 20,
) -> None:
    """Time one full metrics snapshot (applications x 3 versions x 4 regions) from each source."""
    from autoops.bench.common import write_result
    from autoops.bench.observe import ObserveBenchConfig, run_observe_bench

    try:
        result = run_observe_bench(
            ObserveBenchConfig(applications=applications, repeats=repeats),
            lambda message: typer.echo(message, err=True),
        )
    except PrometheusNotInstalledError as exc:
        typer.echo(f"bench observe needs Prometheus: {exc}", err=True)
        raise typer.Exit(1) from None
    write_result(result, output)
