"""``autoops run``: the live controller on a Ray cluster, reading Prometheus or scraping Ray."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from autoops.adapters.carbon import SignalsSpec
from autoops.adapters.prometheus import PrometheusMetrics
from autoops.adapters.prometheus_server import (
    default_service_discovery_file,
    session_service_discovery_file,
)
from autoops.adapters.samples import HttpSampleSource
from autoops.adapters.scrape import BuiltinScraper
from autoops.logging import configure_logging, get_logger
from autoops.policy.loader import load_policy
from autoops.ports import MetricsSource, SampleSource
from autoops.regions.loader import load_catalogue
from autoops.runtime.api import ApiTokenError, load_api_token
from autoops.runtime.wiring import RunSettings, build
from autoops.yamlio import ConfigError

log = get_logger("autoops.run")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"autoops run: {message}", err=True)
    return typer.Exit(1)


def _dashboard_url(ray_address: str | None, dashboard_url: str | None) -> str:
    if dashboard_url:
        return dashboard_url
    if ray_address is None:
        raise _fail("give --ray-address (e.g. auto) or --dashboard-url http://HEAD:8265")
    import ray

    from autoops.adapters.ray_serve import local_dashboard_url

    ray.init(address=ray_address, ignore_reinit_error=True, logging_level=30)
    return local_dashboard_url()


def connected_sd_file() -> Path | None:
    """Ray's service-discovery file of the session this process is connected to, if any.

    A job on a cluster started with ``--temp-dir`` (or beside other clusters on one machine)
    must scrape its own cluster, not whatever session ``/tmp/ray`` names last.
    """
    if "ray" not in sys.modules:
        return None
    import ray
    from ray._private import worker

    node = worker.global_worker.node if ray.is_initialized() else None
    session_dir = node.get_session_dir_path() if node is not None else None
    return session_service_discovery_file(session_dir) if session_dir else None


def metrics_source(
    prometheus: str | None,
    scrape: bool,
    scrape_targets: list[str] | None,
    sd_file: Path | None = None,
) -> MetricsSource:
    """Prometheus when a URL is given, the built-in scraper otherwise; checked at start-up.

    Without targets the scraper reads ``sd_file`` (default: Ray's default temp directory's).
    """
    source: MetricsSource
    if prometheus:
        source = PrometheusMetrics(prometheus)
    elif scrape or scrape_targets:
        if scrape_targets:
            scraper = BuiltinScraper(scrape_targets)
        else:
            scraper = BuiltinScraper(sd_file=sd_file or default_service_discovery_file())
        scraper.start()
        source = scraper
    else:
        raise _fail("give --prometheus URL or --scrape (the built-in scraper)")
    return source


def run_command(
    policy: Annotated[
        list[Path],
        typer.Option(
            "--policy",
            "-p",
            help="Policy file (repeatable: one controller, many).",
            show_default=False,
        ),
    ],
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to connect to (auto, or HOST:PORT).", show_default=False),
    ] = None,
    dashboard_url: Annotated[
        str | None,
        typer.Option(help="The Ray dashboard's URL for Serve's API (instead of --ray-address)."),
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus URL to read serving metrics from.")
    ] = None,
    scrape: Annotated[
        bool, typer.Option(help="Scrape Ray's metrics endpoints directly (no Prometheus).")
    ] = False,
    scrape_target: Annotated[
        list[str] | None,
        typer.Option(help="HOST:PORT to scrape (repeatable; default: Ray's SD file)."),
    ] = None,
    ingress_url: Annotated[
        str, typer.Option(help="The serving app's HTTP address (raw samples for drift).")
    ] = "http://127.0.0.1:8000",
    admin_token_env: Annotated[
        str, typer.Option(help="Environment variable holding the ingress admin token.")
    ] = "AUTOOPS_ADMIN_TOKEN",
    registry: Annotated[
        Path | None,
        typer.Option(help="The serving app's model registry (drift references, retraining)."),
    ] = None,
    signals: Annotated[
        str, typer.Option(help="Carbon/price signals: static, csv or electricitymaps.")
    ] = "static",
    signals_override: Annotated[
        Path | None, typer.Option(help="YAML file of per-region signal overrides.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Shared data folder (csv signals).", show_default=False)
    ] = None,
    store: Annotated[
        Path, typer.Option(envvar="AUTOOPS_STORE", help="State and audit database (SQLite).")
    ] = Path("autoops-state/autoops.db"),
    api_port: Annotated[
        int, typer.Option(help="Control API port (0: a free port; -1: no API).")
    ] = 8089,
    api_token_file: Annotated[
        Path | None, typer.Option(help="File holding the control API token.")
    ] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="Slack-compatible webhook for every action.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Decide and audit, but apply nothing.")] = False,
    record: Annotated[
        Path | None, typer.Option(help="Save every snapshot and finding (JSON lines).")
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds (default: run until stopped)."),
    ] = None,
) -> None:
    """Run the controller: observe, detect, decide, act and audit every tick until stopped."""
    configure_logging()
    try:
        catalogue = load_catalogue()
        token = load_api_token(os.environ, api_token_file)
    except (ConfigError, ApiTokenError) as exc:
        raise _fail(str(exc)) from None
    url = _dashboard_url(ray_address, dashboard_url)
    source = metrics_source(prometheus, scrape, scrape_target, connected_sd_file())
    try:
        source.check()
    except Exception as exc:
        raise _fail(str(exc)) from None
    samples: SampleSource | None = None
    admin_token = os.environ.get(admin_token_env)
    if admin_token:
        samples = HttpSampleSource(ingress_url, admin_token)
    data = data_dir
    if data is None and os.environ.get("AUTOOPS_DATA_DIR"):
        data = Path(os.environ["AUTOOPS_DATA_DIR"])
    if signals not in ("static", "csv", "electricitymaps"):
        raise _fail(f"--signals {signals!r}: choose static, csv or electricitymaps")
    try:
        regions = tuple(
            sorted(
                {r for path in policy for r in load_policy(path, catalogue).intent.allowed_regions}
            )
        )
        settings = RunSettings(
            policies=policy,
            dashboard_url=url,
            metrics=source,
            samples=samples,
            signals=SignalsSpec(
                source=signals,  # type: ignore[arg-type]
                regions=regions,
                data_dir=data,
                override_file=signals_override,
            ),
            store_path=store,
            api_port=None if api_port < 0 else api_port,
            api_token=token,
            webhook_url=webhook_url,
            registry_root=registry,
            dry_run=dry_run,
            record=record,
        )
        running = build(settings, catalogue)
    except (ConfigError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None

    def _stop(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        running.controller.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        if running.api is not None:
            running.api.start()
            log.info("control_api", url=running.api.url)
        running.controller.run(duration_s=duration)
    finally:
        running.close()
        close = getattr(source, "close", None) or getattr(source, "stop", None)
        if close is not None:
            close()
    sys.stdout.flush()
