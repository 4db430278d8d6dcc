"""`autoops submit`: entrypoint and runtime_env, staging, errors, waiting (no Ray cluster)."""

from __future__ import annotations

import http.server
import shlex
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

import autoops
import serve_apps
from autoops import submit_commands
from autoops.regions import load_catalogue
from autoops.regions.loader import ENV_VAR
from autoops.submit import (
    POLICY_DIR,
    JobOutcome,
    SubmitError,
    build_submission,
    check_address,
    connect,
    controller_args,
    exit_code,
    follow_hint,
    submit,
    wait_for_job,
)
from autoops.submit_commands import cluster_config_command, submit_command

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policies" / "conservative.yaml"
OTHER_POLICY = REPO / "policies" / "cost-budget.yaml"


@pytest.fixture(autouse=True)
def _no_user_regions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    for name in ("RAY_AUTH_TOKEN", "RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    root = tmp_path / "staging"
    root.mkdir()
    return root


# --- a fake job client and a tiny HTTP server ------------------------------------------------


@dataclass
class _Info:
    status: object
    message: str | None = None


@dataclass
class FakeClient:
    """Stands in for JobSubmissionClient: records submissions, replays a status sequence."""

    statuses: list[str] = field(default_factory=lambda: ["SUCCEEDED"])
    logs: str = ""
    fail_submit: Exception | None = None
    submitted: list[dict[str, Any]] = field(default_factory=list)
    polls: int = 0
    seen: dict[str, Any] = field(default_factory=dict)

    def submit_job(
        self,
        *,
        entrypoint: str,
        submission_id: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        if self.fail_submit is not None:
            raise self.fail_submit
        self.submitted.append(
            {
                "entrypoint": entrypoint,
                "submission_id": submission_id,
                "runtime_env": runtime_env,
                "metadata": metadata,
                "staged_policies": sorted(
                    p.name
                    for p in (Path(str((runtime_env or {})["working_dir"])) / "policies").iterdir()
                ),
            }
        )
        return submission_id or "raysubmit_fake"

    def get_job_info(self, job_id: str) -> _Info:
        status = self.statuses[min(self.polls, len(self.statuses) - 1)]
        self.polls += 1
        return _Info(status, f"job is {status.lower()}")

    def get_job_logs(self, job_id: str) -> str:
        return self.logs


class FakeClock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def http_status() -> Iterator[tuple[str, list[int]]]:
    """An HTTP server on 127.0.0.1 that answers every GET with the status in the list."""
    status = [404]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"ray_version": "2.60.0"}' if status[0] == 200 else b"no"
            self.send_response(status[0])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", status
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- building the submission -----------------------------------------------------------------


def test_entrypoint_runs_the_controller_on_every_staged_policy_in_the_cluster(
    staging: Path,
) -> None:
    sub = build_submission([POLICY, OTHER_POLICY], ["--scrape", "--dry-run"], staging_root=staging)
    assert shlex.split(sub.entrypoint) == [
        "python3",
        "-m",
        "autoops",
        "run",
        "--policy",
        f"{POLICY_DIR}/conservative.yaml",
        "--policy",
        f"{POLICY_DIR}/cost-budget.yaml",
        "--ray-address",
        "auto",
        "--scrape",
        "--dry-run",
    ]


def test_policy_files_are_staged_in_the_working_dir_at_the_paths_the_entrypoint_names(
    staging: Path,
) -> None:
    sub = build_submission([POLICY, OTHER_POLICY], staging_root=staging)
    assert sub.runtime_env["working_dir"] == str(sub.staged_dir)
    assert sub.staged_dir.parent == staging
    args = shlex.split(sub.entrypoint)
    named = [args[i + 1] for i, a in enumerate(args) if a == "--policy"]
    for relative, original in zip(named, [POLICY, OTHER_POLICY], strict=True):
        assert (sub.staged_dir / relative).read_bytes() == original.read_bytes()
    assert sorted(p.name for p in sub.staged_dir.iterdir()) == [POLICY_DIR]


def test_runtime_env_ships_the_local_packages_and_installs_nothing(staging: Path) -> None:
    sub = build_submission([POLICY], staging_root=staging)
    env = sub.runtime_env
    assert env["py_modules"] == [
        str(Path(autoops.__file__).parent.resolve()),
        str(Path(serve_apps.__file__).parent.resolve()),
    ]
    assert not {"pip", "conda", "uv", "container", "image_uri"} & set(env)
    assert "__pycache__" in env["excludes"]
    assert env["env_vars"] == {"PYTHONUNBUFFERED": "1"}


def test_runtime_env_is_one_that_ray_accepts(staging: Path) -> None:
    runtime_env_mod = pytest.importorskip("ray.runtime_env")
    sub = build_submission([POLICY], ["--scrape"], staging_root=staging)
    parsed = runtime_env_mod.RuntimeEnv(**sub.runtime_env)
    assert parsed.working_dir() == sub.runtime_env["working_dir"]
    assert list(parsed.py_modules()) == sub.runtime_env["py_modules"]


def test_region_files_travel_with_the_job_and_are_named_in_its_environment(
    staging: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "my-regions.yaml"
    extra.write_text("regions: {}\n", encoding="utf-8")
    sub = build_submission([POLICY], region_files=[extra], staging_root=staging)
    assert sub.runtime_env["env_vars"]["AUTOOPS_REGIONS"] == "regions/my-regions.yaml"
    assert (sub.staged_dir / "regions" / "my-regions.yaml").read_text() == "regions: {}\n"


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ([], "no policy given"),
        ([Path("/nonexistent/policy.yaml")], "no such policy file"),
        ([POLICY, POLICY], "two policy files are named conservative.yaml"),
    ],
    ids=["none", "missing", "same-name-twice"],
)
def test_bad_policy_lists_are_refused_and_leave_nothing_staged(
    policies: list[Path], message: str, staging: Path
) -> None:
    with pytest.raises(SubmitError, match=message):
        build_submission(policies, staging_root=staging)
    assert list(staging.iterdir()) == []


def test_cleanup_removes_the_staged_dir(staging: Path) -> None:
    sub = build_submission([POLICY], staging_root=staging)
    assert sub.staged_dir.is_dir()
    sub.cleanup()
    assert not sub.staged_dir.exists()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, []),
        ({"prometheus": "http://prom:9090"}, ["--prometheus", "http://prom:9090"]),
        ({"scrape": True, "dry_run": True}, ["--scrape", "--dry-run"]),
        (
            {"store": "/var/autoops/state.db", "record": "/tmp/rec.jsonl"},
            ["--store", "/var/autoops/state.db", "--record", "/tmp/rec.jsonl"],
        ),
        ({"api_port": 9100}, ["--api-port", "9100"]),
        ({"api_port": -1}, ["--api-port", "-1"]),
    ],
    ids=["nothing", "prometheus", "scrape-dry-run", "store-record", "api-port", "no-api"],
)
def test_controller_args_pass_the_run_options_through(
    kwargs: dict[str, Any], expected: list[str]
) -> None:
    assert controller_args(**kwargs) == expected


def test_an_api_port_out_of_range_is_refused_naming_it() -> None:
    with pytest.raises(SubmitError, match="--api-port 70000"):
        controller_args(api_port=70000)


def test_prometheus_and_scrape_exclude_each_other() -> None:
    with pytest.raises(SubmitError, match="exclude each other"):
        controller_args(prometheus="http://prom:9090", scrape=True)


# --- the address -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("http://10.0.0.1:8265", "http://10.0.0.1:8265"),
        ("https://ray.example.com/", "https://ray.example.com"),
    ],
)
def test_dashboard_urls_are_accepted(address: str, expected: str) -> None:
    assert check_address(address) == expected


@pytest.mark.parametrize("address", ["10.0.0.1:8265", "ray://head:10001", "http://", "auto", ""])
def test_addresses_that_are_not_dashboard_urls_are_refused_by_name(address: str) -> None:
    with pytest.raises(SubmitError, match="use http://HEAD:8265") as err:
        check_address(address)
    assert repr(address) in str(err.value)


def test_nothing_listening_at_the_address_is_one_clear_line() -> None:
    address = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(SubmitError) as err:
        connect(address, probe_timeout_s=5)
    message = str(err.value)
    assert message.startswith(f"no Ray dashboard at {address}")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (404, "is not a Ray dashboard with job submission (GET /api/version: HTTP 404)"),
        (401, "wants a token: set RAY_AUTH_TOKEN or pass --token-env"),
        (403, "refused the token"),
    ],
    ids=["not-ray", "no-token", "wrong-token"],
)
def test_a_server_that_is_not_a_usable_dashboard_is_named(
    http_status: tuple[str, list[int]], status: int, message: str
) -> None:
    address, answer = http_status
    answer[0] = status
    with pytest.raises(SubmitError) as err:
        connect(address)
    assert address in str(err.value)
    assert message in str(err.value)


# --- submitting and waiting ------------------------------------------------------------------


def test_submit_hands_the_entrypoint_runtime_env_and_job_id_to_ray(staging: Path) -> None:
    client = FakeClient()
    sub = build_submission([POLICY], ["--scrape"], staging_root=staging)
    job = submit(client, sub, job_id="autoops-1", metadata={"autoops_policies": "x"})
    assert job == "autoops-1"
    [sent] = client.submitted
    assert sent["entrypoint"] == sub.entrypoint
    assert sent["runtime_env"] == sub.runtime_env
    assert sent["submission_id"] == "autoops-1"
    assert sent["metadata"] == {"autoops_policies": "x"}


def test_a_refused_submission_is_one_line(staging: Path) -> None:
    client = FakeClient(fail_submit=RuntimeError("Request failed with status code 400:\nbad id"))
    sub = build_submission([POLICY], staging_root=staging)
    with pytest.raises(SubmitError, match=r"^submitting the job failed: Request failed .* bad id$"):
        submit(client, sub)


@pytest.mark.parametrize(
    ("statuses", "status", "timed_out", "code"),
    [
        (["PENDING", "RUNNING", "SUCCEEDED"], "SUCCEEDED", False, 0),
        (["PENDING", "FAILED"], "FAILED", False, 1),
        (["RUNNING", "STOPPED"], "STOPPED", False, 1),
        (["PENDING", "RUNNING"], "RUNNING", True, 0),
        (["PENDING"], "PENDING", True, 1),
    ],
    ids=["succeeded", "failed", "stopped", "running-at-timeout", "pending-at-timeout"],
)
def test_waiting_ends_at_a_terminal_status_or_the_timeout(
    statuses: list[str], status: str, timed_out: bool, code: int
) -> None:
    clock = FakeClock()
    client = FakeClient(statuses=statuses)
    outcome = wait_for_job(client, "job-1", timeout_s=30, poll_s=2, sleep=clock.sleep, clock=clock)
    assert (outcome.status, outcome.timed_out) == (status, timed_out)
    assert exit_code(outcome) == code
    assert clock.now <= 30
    if timed_out:
        assert clock.now == 30


def test_waiting_reads_rays_status_enum_by_value() -> None:
    common = pytest.importorskip("ray.dashboard.modules.job.common")
    clock = FakeClock()

    class EnumClient(FakeClient):
        def get_job_info(self, job_id: str) -> _Info:
            return _Info(common.JobStatus.SUCCEEDED, None)

    outcome = wait_for_job(EnumClient(), "j", timeout_s=5, sleep=clock.sleep, clock=clock)
    assert outcome == JobOutcome("j", "SUCCEEDED", "", timed_out=False)


def test_the_follow_hint_is_rays_log_command() -> None:
    hint = follow_hint("http://head:8265", "raysubmit_1")
    assert shlex.split(hint) == [
        "ray",
        "job",
        "logs",
        "--follow",
        "--address",
        "http://head:8265",
        "raysubmit_1",
    ]


# --- the commands ----------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("submit")(submit_command)
    app.command("cluster-config")(cluster_config_command)
    return app


def _run(args: list[str]) -> Any:
    return CliRunner().invoke(_app(), args)


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient()

    def fake_connect(address: str, *, token: str | None = None, **_: Any) -> FakeClient:
        client.seen.update(address=address, token=token)
        return client

    monkeypatch.setattr(submit_commands, "connect", fake_connect)
    return client


def test_submit_prints_the_job_id_and_how_to_follow_it(fake_client: FakeClient) -> None:
    result = _run(
        [
            "submit",
            "--address",
            "http://head:8265/",
            "--policy",
            str(POLICY),
            "--scrape",
            "--api-port",
            "9101",
            "--job-id",
            "autoops-7",
        ]
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "autoops-7\n"
    assert "ray job logs --follow --address http://head:8265 autoops-7" in result.stderr
    [sent] = fake_client.submitted
    assert sent["staged_policies"] == ["conservative.yaml"]
    entrypoint = shlex.split(sent["entrypoint"])
    assert "--scrape" in entrypoint
    assert entrypoint[entrypoint.index("--api-port") + 1] == "9101"
    assert not Path(sent["runtime_env"]["working_dir"]).exists(), "staged dir left behind"


@pytest.mark.parametrize(
    ("statuses", "code", "logs_shown"),
    [
        (["RUNNING", "SUCCEEDED"], 0, False),
        (["FAILED"], 1, True),
        (["STOPPED"], 1, True),
    ],
    ids=["succeeded", "failed", "stopped"],
)
def test_submit_wait_exits_on_the_jobs_outcome(
    fake_client: FakeClient, statuses: list[str], code: int, logs_shown: bool
) -> None:
    fake_client.statuses = statuses
    fake_client.logs = "".join(f"line {i}\n" for i in range(40)) + "Traceback: boom\n"
    result = _run(
        ["submit", "--address", "http://head:8265", "-p", str(POLICY), "--wait", "--timeout", "5"]
    )
    assert result.exit_code == code
    assert statuses[-1] in result.stderr
    assert ("Traceback: boom" in result.stderr) is logs_shown
    assert ("line 0\n" in result.stderr) is False


def test_submit_sends_the_token_from_the_named_variable(
    fake_client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_RAY_TOKEN", "s3cret")
    result = _run(
        ["submit", "--address", "http://h:8265", "-p", str(POLICY), "--token-env", "MY_RAY_TOKEN"]
    )
    assert result.exit_code == 0, result.stderr
    assert fake_client.seen["token"] == "s3cret"


def test_submit_with_an_unset_token_variable_says_so(fake_client: FakeClient) -> None:
    result = _run(
        ["submit", "--address", "http://h:8265", "-p", str(POLICY), "--token-env", "NOPE_UNSET"]
    )
    assert result.exit_code == 1
    assert "NOPE_UNSET" in result.stderr
    assert fake_client.submitted == []


def test_submit_refuses_an_invalid_policy_before_contacting_the_cluster(
    fake_client: FakeClient, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnot_a_field: 1\n", encoding="utf-8")
    result = _run(["submit", "--address", "http://h:8265", "-p", str(bad)])
    assert result.exit_code == 1
    assert str(bad) in result.stderr
    assert "not submitted" in result.stderr
    assert fake_client.seen == {}


def test_submit_to_a_wrong_address_is_one_line_naming_it() -> None:
    address = f"http://127.0.0.1:{_closed_port()}"
    result = _run(["submit", "--address", address, "-p", str(POLICY)])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert address in lines[0]


def test_cluster_config_command_renders_the_committed_file() -> None:
    result = _run(["cluster-config"])
    assert result.exit_code == 0, result.stderr
    committed = yaml.safe_load((REPO / "ray-cluster.yaml").read_text(encoding="utf-8"))
    assert yaml.safe_load(result.stdout) == committed


def test_cluster_config_command_takes_regions_and_zones(tmp_path: Path) -> None:
    out = tmp_path / "eu.yaml"
    result = _run(
        ["cluster-config", "-r", "eu-west", "--zone", "eu-west=eu-west-2c", "-o", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    config = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert config["provider"] == {
        "type": "aws",
        "region": "eu-west-2",
        "availability_zone": "eu-west-2c",
        "cache_stopped_nodes": False,
    }
    assert load_catalogue()["eu-west"].carbon_zone in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-r", "us-east", "-r", "eu-west"], "one provider region"),
        (["--zone", "us-east"], "expected REGION=ZONE"),
        (["-r", "atlantis"], "unknown region(s) atlantis"),
    ],
    ids=["two-provider-regions", "bad-zone-option", "unknown-region"],
)
def test_cluster_config_command_explains_what_it_cannot_render(
    args: list[str], message: str
) -> None:
    result = _run(["cluster-config", *args])
    assert result.exit_code == 1
    assert message in result.stderr
