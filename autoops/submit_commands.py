"""``autoops submit`` and ``autoops cluster-config``: run AutoOps on a Ray cluster.

``submit`` prints the job id on stdout (so ``JOB=$(autoops submit ...)`` works) and everything
else on stderr. Exit codes: 0 submitted (with ``--wait``: the job succeeded, or is still running
when the wait ends); 1 anything else, with one line saying why (a bad policy prints its issues).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from autoops.cluster_config import (
    DEFAULT_REGIONS,
    ClusterConfigError,
    render_cluster_config,
    render_cluster_yaml,
)
from autoops.policy.loader import load_policy
from autoops.regions.loader import load_catalogue
from autoops.regions.model import RegionCatalogue
from autoops.submit import (
    TOKEN_ENV,
    JobOutcome,
    SubmitError,
    build_submission,
    connect,
    controller_args,
    exit_code,
    follow_hint,
    submit,
    wait_for_job,
)
from autoops.yamlio import ConfigError

__all__ = ["cluster_config_command", "submit_command"]

LOG_TAIL_LINES = 20
"""How many of a failed job's last log lines to print."""


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


def _catalogue(regions: list[Path]) -> RegionCatalogue:
    """The region catalogue with the user's files, or exit 1 with its issues."""
    try:
        return load_catalogue(regions)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(issue.format(), err=True)
        raise typer.Exit(1) from None


def _check_policies(policies: list[Path], catalogue: RegionCatalogue) -> None:
    """Exit 1 with every issue of every policy before anything reaches the cluster."""
    failed = False
    for path in policies:
        try:
            load_policy(path, catalogue)
        except ConfigError as exc:
            failed = True
            for issue in exc.issues:
                typer.echo(issue.format(), err=True)
    if failed:
        raise _fail("not submitted: fix the policy issues above")


def _token(token_env: str | None) -> str | None:
    """The dashboard token from the named variable (which must be set) or from RAY_AUTH_TOKEN."""
    if token_env is None:
        return os.environ.get(TOKEN_ENV) or None
    value = os.environ.get(token_env)
    if not value:
        raise _fail(f"--token-env {token_env}: that environment variable is not set")
    return value


def _report(outcome: JobOutcome, logs: str | None) -> None:
    """Say on stderr where the job ended, with the tail of its logs if it failed."""
    note = f": {outcome.message}" if outcome.message else ""
    if outcome.timed_out:
        typer.echo(f"job {outcome.job_id} is {outcome.status} after the wait{note}", err=True)
    else:
        typer.echo(f"job {outcome.job_id} {outcome.status}{note}", err=True)
    if logs:
        tail = logs.rstrip("\n").splitlines()[-LOG_TAIL_LINES:]
        typer.echo(f"last {len(tail)} log lines:", err=True)
        for line in tail:
            typer.echo(f"  {line}", err=True)


def submit_command(
    address: Annotated[
        str,
        typer.Option(
            "--address",
            help="The Ray dashboard of the cluster, e.g. http://HEAD:8265.",
            show_default=False,
        ),
    ],
    policy: Annotated[
        list[Path],
        typer.Option(
            "--policy",
            "-p",
            help="Policy file for the controller (repeatable; checked here before submitting).",
            show_default=False,
        ),
    ],
    prometheus: Annotated[
        str | None,
        typer.Option(
            help="Prometheus URL, as the cluster's head node reaches it.", show_default=False
        ),
    ] = None,
    scrape: Annotated[
        bool, typer.Option("--scrape", help="Scrape /metrics directly instead of Prometheus.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Decide and audit, but take no action.")
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            help="State store path on the head node (the job's working dir is temporary).",
            show_default=False,
        ),
    ] = None,
    record: Annotated[
        str | None,
        typer.Option(help="Record snapshots and findings to this file on the head node."),
    ] = None,
    api_port: Annotated[
        int | None,
        typer.Option(
            help="Control API port on the head node (0: a free port; -1: no API; "
            "default: autoops run's 8089).",
            show_default=False,
        ),
    ] = None,
    regions: Annotated[
        list[Path] | None,
        typer.Option(
            "--regions",
            help="Extra region catalogue file (repeatable): checked here and shipped with the job.",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Wait for the job: exit 0 if it succeeds or still runs at --timeout, 1 if not.",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds --wait waits for a terminal status.")
    ] = 60.0,
    job_id: Annotated[
        str | None,
        typer.Option("--job-id", help="Submission id to use (default: Ray picks one)."),
    ] = None,
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env",
            help=f"Environment variable holding the Ray dashboard token (default: {TOKEN_ENV} "
            "if set; otherwise Ray's own token configuration).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Submit the AutoOps controller to a Ray cluster as a Ray job.

    The policies and region files travel in the job's working directory, the autoops and
    serve_apps packages as py_modules; nothing is pip-installed, so the cluster's Python must
    already have AutoOps' third-party dependencies (ray-cluster.yaml's setup installs them).
    """
    token = _token(token_env)
    region_files = regions or []
    _check_policies(policy, _catalogue(region_files))
    try:
        extra = controller_args(
            prometheus=prometheus,
            scrape=scrape,
            dry_run=dry_run,
            store=store,
            record=record,
            api_port=api_port,
        )
        client = connect(address, token=token)
        submission = build_submission(policy, extra, region_files=region_files)
        try:
            names = ",".join(p.name for p in policy)
            submitted = submit(
                client, submission, job_id=job_id, metadata={"autoops_policies": names}
            )
        finally:
            submission.cleanup()
    except SubmitError as exc:
        raise _fail(str(exc)) from None
    url = address.rstrip("/")
    typer.echo(submitted)
    typer.echo(f"submitted job {submitted} to {url}: {submission.entrypoint}", err=True)
    typer.echo(f"follow its logs: {follow_hint(url, submitted)}", err=True)
    if not wait:
        return
    try:
        outcome = wait_for_job(client, submitted, timeout_s=timeout)
    except SubmitError as exc:
        raise _fail(str(exc)) from None
    code = exit_code(outcome)
    logs: str | None = None
    if code != 0:
        try:
            logs = client.get_job_logs(submitted)
        except Exception as exc:  # the SDK's errors: RuntimeError, requests errors, RayError
            typer.echo(f"reading the logs of job {submitted} failed: {exc}", err=True)
    _report(outcome, logs)
    raise typer.Exit(code)


def cluster_config_command(
    region: Annotated[
        list[str] | None,
        typer.Option(
            "--region",
            "-r",
            help=f"Catalogue region the cluster serves (repeatable; default: "
            f"{', '.join(DEFAULT_REGIONS)}). All must share one provider region.",
            show_default=False,
        ),
    ] = None,
    zone: Annotated[
        list[str] | None,
        typer.Option(
            "--zone",
            help="REGION=ZONE[,ZONE...]: availability zones of a region (default: its a and b).",
            show_default=False,
        ),
    ] = None,
    gpu_instance_type: Annotated[
        str | None,
        typer.Option(
            help="GPU worker instance type (default: for the region's cheapest catalogue GPU).",
            show_default=False,
        ),
    ] = None,
    cluster_name: Annotated[str, typer.Option(help="Ray cluster name.")] = "autoops",
    regions: Annotated[
        list[Path] | None,
        typer.Option(
            "--regions",
            help="Extra region catalogue file that adds or overrides regions (repeatable).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the YAML here instead of printing it."),
    ] = None,
) -> None:
    """Render a Ray cluster launcher config (ray-cluster.yaml) from the region catalogue."""
    catalogue = _catalogue(regions or [])
    zones: dict[str, list[str]] = {}
    for item in zone or []:
        name, sep, listed = item.partition("=")
        if not sep or not name or not listed:
            raise _fail(f"--zone {item!r}: expected REGION=ZONE[,ZONE...]")
        zones[name] = [z.strip() for z in listed.split(",") if z.strip()]
    try:
        config = render_cluster_config(
            catalogue,
            region or DEFAULT_REGIONS,
            zones=zones,
            gpu_instance_type=gpu_instance_type,
            cluster_name=cluster_name,
        )
    except ClusterConfigError as exc:
        raise _fail(str(exc)) from None
    text = render_cluster_yaml(config)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"{output}: cannot write: {exc.strerror or exc}") from None
    typer.echo(f"wrote {output}", err=True)
