"""`autoops submit` against a real `ray start --head`: stage, upload, run, read logs, and the
controller itself running as a Ray job and acting on the cluster's Serve app.

The cluster is this module's own: its own --temp-dir and free ports on 127.0.0.1 (Ray's metrics
export port among them, metrics reported every second), started with --block in a new
session. `ray stop` cannot be scoped to one cluster (it kills every Ray process of the machine by
name), so teardown ends exactly the processes this module started, by PID: the `ray start`
process, its descendants, and anything else in its session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from autoops.adapters.serve_config import routing_table
from autoops.adapters.serve_rest import RestServeClient
from autoops.demo.story import LoadDriver
from autoops.store.sqlite import SQLiteStore
from autoops.submit import (
    POLICY_DIR,
    JobClient,
    SubmitError,
    build_submission,
    connect,
    exit_code,
    submit,
    wait_for_job,
)
from serve_apps.app import StackSpec, ensure_registry, stack_config
from tests.integration.e2e import compressed_policy, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policies" / "conservative.yaml"
BIN = Path(sys.executable).parent
RAY = BIN / "ray"
START_DEADLINE_S = 240.0
JOB_DEADLINE_S = 240.0
TOKEN = secrets.token_hex(16)
"""This cluster's own dashboard token (Ray 2.60 token auth), never the machine's default one."""


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, session id) of a process, from /proc; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[3])


def _our_processes(root: int) -> set[int]:
    """The `ray start` process, its descendants, and every process in its session."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            table[int(entry.name)] = stat
    ours = {pid for pid, (_, _, session) in table.items() if session == root}
    ours.add(root)
    grew = True
    while grew:
        more = {pid for pid, (_, parent, _) in table.items() if parent in ours} - ours
        ours |= more
        grew = bool(more)
    return ours


def _alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if (stat := _stat(pid)) is not None and stat[0] != "Z"}


def _signal(pids: set[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _end(root: subprocess.Popen[bytes]) -> None:
    """SIGTERM what this module started, then SIGKILL what is left after a grace period."""
    pids = _our_processes(root.pid)
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    _signal(_alive(pids), signal.SIGKILL)
    root.wait(timeout=30)


def _wait_for_dashboard(url: str, root: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while time.monotonic() < deadline:
        if root.poll() is not None:
            pytest.fail(f"ray start exited with {root.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/version", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(
        f"no Ray dashboard at {url} after {START_DEADLINE_S:g} s:\n{log.read_text()[-3000:]}"
    )


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This module's running cluster: its dashboard and a free port for Serve's proxy."""

    dashboard: str
    http_port: int
    """Free port for Serve's HTTP proxy (127.0.0.1), given in the Serve config deployed."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not RAY.is_file():
        pytest.skip(f"no ray command at {RAY}")
    if not Path("/proc/self/stat").is_file():
        pytest.skip("ending the cluster by PID reads /proc (Linux)")
    temp_dir = Path(tempfile.mkdtemp(prefix="aoray", dir="/tmp"))  # short: Ray's socket paths
    (gcs, dash, agent_http, agent_grpc, env_agent, metrics, client, node_mgr, obj_mgr, http) = (
        _free_ports(10)
    )
    command = [
        str(RAY), "start", "--head", "--block", "--disable-usage-stats",
        f"--temp-dir={temp_dir}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
        "--num-gpus=0", "--object-store-memory=100000000", "--include-dashboard=true",
        "--dashboard-host=127.0.0.1", f"--port={gcs}", f"--dashboard-port={dash}",
        f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={env_agent}", f"--metrics-export-port={metrics}",
        f"--ray-client-server-port={client}", f"--node-manager-port={node_mgr}",
        f"--object-manager-port={obj_mgr}",
    ]  # fmt: skip
    unset = ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the job's `python` is this one
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["RAY_metrics_report_interval_ms"] = "1000"  # Ray's system config: metrics every second
    log = temp_dir / "ray-start.log"
    with log.open("wb") as out:
        root = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{dash}"
    try:
        _wait_for_dashboard(url, root, log)
        yield Cluster(url, http)
    finally:
        _end(root)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def dashboard(cluster: Cluster) -> str:
    return cluster.dashboard


def _probe_script() -> str:
    """Python that shows where the job's packages and policy came from."""
    return (
        "import pathlib, autoops, serve_apps; "
        "print('autoops-from', autoops.__file__); "
        "print('serve_apps-from', serve_apps.__file__); "
        f"print('policy-staged', pathlib.Path('{POLICY_DIR}/{POLICY.name}').is_file()); "
        "print('ok')"
    )


@pytest.fixture(autouse=True)
def _client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client sends this cluster's token itself; no token of Ray's own on this side."""
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)


def test_the_dashboard_refuses_a_client_with_the_wrong_token(dashboard: str) -> None:
    with pytest.raises(SubmitError, match="refused the token") as err:
        connect(dashboard, token="not-" + TOKEN)
    assert dashboard in str(err.value)


def test_a_submitted_job_runs_with_the_staged_policy_and_shipped_packages(
    dashboard: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stray RAY_ADDRESS would override the SDK's address argument; --address must win.
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:9")
    submission = build_submission([POLICY], ["--scrape"], staging_root=tmp_path)
    entrypoint = f"python -m autoops version && python -c {shlex.quote(_probe_script())}"
    trivial = dataclasses.replace(submission, entrypoint=entrypoint)
    try:
        job_id = submit(dashboard, trivial, token=TOKEN, metadata={"autoops_policies": POLICY.name})
    finally:
        trivial.cleanup()
    client = connect(dashboard, token=TOKEN)
    outcome = wait_for_job(client, job_id, timeout_s=JOB_DEADLINE_S, poll_s=1.0)
    logs = client.get_job_logs(job_id)
    assert outcome.status == "SUCCEEDED", logs
    assert exit_code(outcome) == 0
    lines = dict(line.split(" ", 1) for line in logs.splitlines() if line.count(" ") == 1)
    assert "0.1.0" in logs.splitlines()
    assert lines["policy-staged"] == "True"
    for package in ("autoops-from", "serve_apps-from"):
        assert not lines[package].startswith(str(REPO)), f"{package}: not from py_modules"
    assert logs.splitlines()[-1] == "ok"


def test_a_failing_job_is_reported_failed_with_its_output(dashboard: str, tmp_path: Path) -> None:
    submission = build_submission([POLICY], staging_root=tmp_path)
    failing = dataclasses.replace(
        submission,
        entrypoint="python -c \"import sys; print('about to fail'); sys.exit(3)\"",
    )
    try:
        job_id = submit(dashboard, failing, job_id=f"autoops-fail-{os.getpid()}", token=TOKEN)
    finally:
        failing.cleanup()
    assert job_id == f"autoops-fail-{os.getpid()}"
    client = connect(dashboard, token=TOKEN)
    outcome = wait_for_job(client, job_id, timeout_s=JOB_DEADLINE_S, poll_s=1.0)
    assert outcome.status == "FAILED"
    assert exit_code(outcome) == 1
    assert "about to fail" in client.get_job_logs(job_id)


# --- the controller as a Ray job ---------------------------------------------------------------

APP = "digits"
ACT_DEADLINE_S = 180.0
STOP_DEADLINE_S = 60.0
TOKEN_VAR = "AUTOOPS_TEST_DASHBOARD_TOKEN"
LOAD_RATE = 6.0
"""Requests per second to the ingress: enough for Serve's metrics, light on 2 busy cores."""


def _deploy_digits(serve: RestServeClient, cluster: Cluster, workdir: Path) -> str:
    """Deploy v1 (stable, 100%) and v2 (0%) in one region through Serve's REST API; wait.

    Returns the ingress's inference token.
    """
    registry = workdir / "registry"
    ensure_registry(registry, ("v1", "v2"))
    inference_token = secrets.token_hex(16)
    spec = StackSpec(
        registry_root=str(registry),
        deployments={"v1": ["eu-west"], "v2": ["eu-west"]},
        access_log=False,
        ingress_env={
            "AUTOOPS_INFERENCE_TOKEN": inference_token,
            "AUTOOPS_ADMIN_TOKEN": secrets.token_hex(16),
        },
    )
    config = stack_config(spec, port=cluster.http_port)
    serve.deploy(config)
    names = [app["name"] for app in config["applications"]]
    wait_for(lambda: _all_running(serve, names), START_DEADLINE_S, f"Serve apps {names} running")
    return inference_token


def _all_running(serve: RestServeClient, names: list[str]) -> bool:
    apps = serve.details().get("applications") or {}
    statuses = {n: apps.get(n, {}).get("status") for n in names}
    failed = {n: apps[n].get("message") for n, s in statuses.items() if s == "DEPLOY_FAILED"}
    if failed:
        pytest.fail(f"Serve applications failed: {failed}")
    return all(s == "RUNNING" for s in statuses.values())


def _submit_with_the_cli(dashboard: str, policy: Path, store: Path, job_id: str) -> str:
    """`autoops submit` as a user runs it; the job id it prints on stdout."""
    command = [
        sys.executable, "-m", "autoops", "submit", "--address", dashboard,
        "--policy", str(policy), "--scrape", "--store", str(store), "--api-port", "0",
        "--job-id", job_id, "--token-env", TOKEN_VAR,
    ]  # fmt: skip
    env = {**os.environ, TOKEN_VAR: TOKEN}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _canary_weight(serve: RestServeClient, client: JobClient, job_id: str) -> float:
    """v2's weight in Serve's routing table now; fails at once if the job has ended."""
    status = str(getattr(client.get_job_info(job_id).status, "value", "")).upper()
    if status in ("SUCCEEDED", "FAILED", "STOPPED"):
        pytest.fail(f"the controller job ended ({status}):\n{client.get_job_logs(job_id)[-4000:]}")
    return routing_table(serve.details(), APP).weights.get("v2", 0.0)


def _wait_for_the_canary(serve: RestServeClient, client: JobClient, job_id: str) -> None:
    """Poll Serve's routing table until v2 carries traffic; fail with the job's logs if not."""
    try:
        wait_for(
            lambda: _canary_weight(serve, client, job_id) > 0,
            ACT_DEADLINE_S,
            "the controller job to start v2's canary in Serve's routing table",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{client.get_job_logs(job_id)[-4000:]}") from None


def test_autoops_submit_runs_the_controller_as_a_job_that_starts_the_canary(
    cluster: Cluster, tmp_path: Path
) -> None:
    serve = RestServeClient(cluster.dashboard, token=TOKEN)
    load: LoadDriver | None = None
    try:
        inference_token = _deploy_digits(serve, cluster, tmp_path)
        before = routing_table(serve.details(), APP)
        assert before.weights == {"v1": 1.0}
        assert before.deployments["v2"] == ["eu-west"]
        # Serve exports its serving metrics only for traffic, and the controller does not act
        # without metrics: bounded loopback load, as a real app has.
        load = LoadDriver(f"http://127.0.0.1:{cluster.http_port}", inference_token)
        load.rate = LOAD_RATE
        load.start()
        policy = compressed_policy(tmp_path, intent={"allowed_regions": ["eu-west"]})
        store = tmp_path / "job-state" / "autoops.db"
        job_id = f"autoops-controller-{os.getpid()}"
        assert _submit_with_the_cli(cluster.dashboard, policy, store, job_id) == job_id
        client = connect(cluster.dashboard, token=TOKEN)
        try:
            _wait_for_the_canary(serve, client, job_id)
        finally:
            stopper: Any = client  # JobSubmissionClient: stop_job is not in the JobClient protocol
            stopper.stop_job(job_id)
        outcome = wait_for_job(client, job_id, timeout_s=STOP_DEADLINE_S, poll_s=0.5)
        assert outcome.status == "STOPPED", client.get_job_logs(job_id)[-4000:]
    finally:
        if load is not None:
            load.stop()
        serve.close()
    # The job wrote its audit on the head node (this machine): the canary's traffic, applied.
    audit = SQLiteStore(store)
    try:
        applied = [
            r.body["action"]
            for r in audit.records("demo", kinds=["outcome"])
            if r.body["outcome"] == "updated"
        ]
        assert any(a["kind"] == "set_traffic" and a["weights"].get("v2", 0) > 0 for a in applied)
        assert audit.verify().ok
    finally:
        audit.close()
