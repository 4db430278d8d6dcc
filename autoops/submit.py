"""Run the AutoOps controller on a Ray cluster as a Ray job (the job submission SDK).

What travels with the job: the policy files (and any extra region catalogue files), copied
into a fresh working directory so the job reads them at relative paths (``policies/NAME``),
and the local ``autoops`` and ``serve_apps`` packages as ``py_modules``. Nothing is installed
(no ``pip`` in the runtime_env), so the job starts on a cluster without internet access, but
the cluster's Python must already hold the third-party dependencies (ray[serve], torch,
prometheus clients, pydantic, ...): the ``setup_commands`` of ``ray-cluster.yaml`` install
them, or bake them into the node image.

Ray 2.60 turns token authentication on: the SDK adds Ray's own auth headers when this machine
has Ray's token configured; a token given here is sent as ``Authorization: Bearer ...``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import httpx

__all__ = [
    "PACKAGES",
    "POLICY_DIR",
    "REGIONS_DIR",
    "TOKEN_ENV",
    "JobClient",
    "JobOutcome",
    "Submission",
    "SubmitError",
    "build_submission",
    "check_address",
    "connect",
    "controller_args",
    "exit_code",
    "follow_hint",
    "package_dir",
    "submit",
    "wait_for_job",
]

PACKAGES: tuple[str, ...] = ("autoops", "serve_apps")
"""The local packages shipped with the job as ``py_modules``."""
POLICY_DIR = "policies"
"""Folder of the job's working directory that holds the policy files."""
REGIONS_DIR = "regions"
"""Folder of the job's working directory that holds extra region catalogue files."""
TOKEN_ENV = "RAY_AUTH_TOKEN"
"""Environment variable read for the Ray dashboard token unless another is named."""
EXCLUDES: tuple[str, ...] = ("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")
"""Files left out of the uploaded packages and working directory."""
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
"""Job statuses a job never leaves."""


class SubmitError(RuntimeError):
    """Submitting or watching a job failed; the message is one line naming what and where."""


@dataclass(frozen=True)
class Submission:
    """What to submit: the shell entrypoint, the runtime_env, and the staged working dir."""

    entrypoint: str
    runtime_env: dict[str, Any]
    staged_dir: Path

    def cleanup(self) -> None:
        """Delete the staged working directory (safe once the job has been submitted)."""
        shutil.rmtree(self.staged_dir, ignore_errors=True)


@dataclass(frozen=True)
class JobOutcome:
    """Where a job stood when waiting for it ended."""

    job_id: str
    status: str
    message: str
    timed_out: bool


class JobInfo(Protocol):
    """The part of Ray's ``JobDetails`` that waiting reads."""

    @property
    def status(self) -> object:
        """The job status (Ray's ``JobStatus``, a str enum)."""

    @property
    def message(self) -> str | None:
        """Ray's human-readable note on the status."""


class JobClient(Protocol):
    """The part of ``ray.job_submission.JobSubmissionClient`` that submitting uses."""

    def submit_job(
        self,
        *,
        entrypoint: str,
        submission_id: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Submit a job; the submission id."""

    def get_job_info(self, job_id: str) -> JobInfo:
        """The job's current details."""

    def get_job_logs(self, job_id: str) -> str:
        """Everything the job printed so far."""


def package_dir(name: str) -> Path:
    """The directory of a local package (found without importing it)."""
    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if len(locations) != 1:
        raise SubmitError(f"cannot find the {name} package directory to ship with the job")
    return Path(locations[0]).resolve()


def controller_args(
    *,
    prometheus: str | None = None,
    scrape: bool = False,
    dry_run: bool = False,
    store: str | None = None,
    record: str | None = None,
    api_port: int | None = None,
) -> list[str]:
    """The ``autoops run`` options that follow ``--policy`` and ``--ray-address``."""
    if prometheus and scrape:
        raise SubmitError("--prometheus and --scrape exclude each other: pick one")
    args: list[str] = []
    if prometheus:
        args += ["--prometheus", prometheus]
    if scrape:
        args.append("--scrape")
    if dry_run:
        args.append("--dry-run")
    if store:
        args += ["--store", store]
    if record:
        args += ["--record", record]
    if api_port is not None:
        if api_port < -1 or api_port > 65535:
            raise SubmitError(f"--api-port {api_port}: expected a port 0-65535, or -1 for no API")
        args += ["--api-port", str(api_port)]
    return args


def _stage(files: Sequence[Path], into: Path, what: str) -> list[str]:
    """Copy files into ``into``; their paths relative to the working dir, in order."""
    into.mkdir(parents=True, exist_ok=True)
    staged: list[str] = []
    for file in files:
        if not file.is_file():
            raise SubmitError(f"{file}: no such {what} file")
        target = into / file.name
        if target.exists():
            raise SubmitError(f"two {what} files are named {file.name}: rename one")
        shutil.copyfile(file, target)
        staged.append(f"{into.name}/{file.name}")
    return staged


def build_submission(
    policies: Sequence[Path],
    extra_args: Sequence[str] = (),
    *,
    region_files: Sequence[Path] = (),
    staging_root: Path | None = None,
    python: str = "python3",
) -> Submission:
    """Stage the policy (and region) files and build the job's entrypoint and runtime_env."""
    if not policies:
        raise SubmitError("no policy given: pass --policy FILE")
    staged_dir = Path(tempfile.mkdtemp(prefix="autoops-submit-", dir=staging_root))
    try:
        policy_paths = _stage(policies, staged_dir / POLICY_DIR, "policy")
        region_paths = (
            _stage(region_files, staged_dir / REGIONS_DIR, "region") if region_files else []
        )
        modules = [str(package_dir(name)) for name in PACKAGES]
    except BaseException:
        shutil.rmtree(staged_dir, ignore_errors=True)
        raise
    command = [python, "-m", "autoops", "run"]
    for path in policy_paths:
        command += ["--policy", path]
    command += ["--ray-address", "auto", *extra_args]
    env_vars = {"PYTHONUNBUFFERED": "1"}
    if region_paths:
        env_vars["AUTOOPS_REGIONS"] = os.pathsep.join(region_paths)
    runtime_env: dict[str, Any] = {
        "working_dir": str(staged_dir),
        "py_modules": modules,
        "excludes": list(EXCLUDES),
        "env_vars": env_vars,
    }
    return Submission(shlex.join(command), runtime_env, staged_dir)


def check_address(address: str) -> str:
    """The dashboard URL without a trailing slash, or a SubmitError saying what it should be."""
    parsed = urlparse(address)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SubmitError(f"--address {address!r} is not a Ray dashboard URL: use http://HEAD:8265")
    return address.rstrip("/")


def _auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _probe(address: str, token: str | None, timeout_s: float) -> None:
    """Fail fast, in one line, when no Ray dashboard answers at ``address``."""
    try:
        response = httpx.get(
            f"{address}/api/version", headers=_auth_headers(token), timeout=timeout_s
        )
    except httpx.TimeoutException:
        raise SubmitError(
            f"no Ray dashboard at {address}: no answer within {timeout_s:g} s"
        ) from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise SubmitError(f"no Ray dashboard at {address}: {reason}") from None
    # 401/403: a dashboard that wants a token; the SDK may hold Ray's own, so it decides.
    if response.status_code not in (200, 401, 403):
        raise SubmitError(
            f"{address} is not a Ray dashboard with job submission "
            f"(GET /api/version: HTTP {response.status_code})"
        )


@contextlib.contextmanager
def _address_from_argument() -> Iterator[None]:
    """Hide RAY_ADDRESS / RAY_API_SERVER_ADDRESS, which would override the SDK's address."""
    names = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
    saved = {n: os.environ.pop(n) for n in names if n in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def connect(address: str, *, token: str | None = None, probe_timeout_s: float = 10.0) -> JobClient:
    """A job submission client for the dashboard at ``address`` (checked to answer)."""
    url = check_address(address)
    _probe(url, token, probe_timeout_s)
    from ray.exceptions import AuthenticationError, RayError
    from ray.job_submission import JobSubmissionClient

    try:
        with _address_from_argument():
            client: JobClient = JobSubmissionClient(url, headers=_auth_headers(token))
    except AuthenticationError as exc:
        if "Authentication failed" in str(exc):
            raise SubmitError(f"the Ray dashboard at {url} refused the token") from None
        raise SubmitError(
            f"the Ray dashboard at {url} wants a token: set {TOKEN_ENV} or pass --token-env"
        ) from None
    except (ConnectionError, RuntimeError, ValueError, RayError) as exc:
        raise SubmitError(f"Ray dashboard at {url}: {_one_line(exc)}") from None
    return client


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def submit(
    target: str | JobClient,
    submission: Submission,
    *,
    job_id: str | None = None,
    token: str | None = None,
    metadata: dict[str, str] | None = None,
) -> str:
    """Submit the controller job to a dashboard URL (or a client from ``connect``); its id."""
    client = connect(target, token=token) if isinstance(target, str) else target
    try:
        return client.submit_job(
            entrypoint=submission.entrypoint,
            submission_id=job_id,
            runtime_env=submission.runtime_env,
            metadata=metadata,
        )
    except Exception as exc:  # the SDK raises RuntimeError, ValueError, RayError, OSError...
        raise SubmitError(f"submitting the job failed: {_one_line(exc)}") from None


def _status_name(status: object) -> str:
    value = getattr(status, "value", status)
    return str(value).upper()


def wait_for_job(
    client: JobClient,
    job_id: str,
    *,
    timeout_s: float,
    poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> JobOutcome:
    """Poll a job until it reaches a terminal status or ``timeout_s`` passes."""
    deadline = clock() + timeout_s
    while True:
        try:
            info = client.get_job_info(job_id)
        except Exception as exc:  # the SDK's errors: RuntimeError, requests errors, RayError
            raise SubmitError(f"reading job {job_id} failed: {_one_line(exc)}") from None
        status = _status_name(info.status)
        message = info.message or ""
        if status in TERMINAL:
            return JobOutcome(job_id, status, message, timed_out=False)
        remaining = deadline - clock()
        if remaining <= 0:
            return JobOutcome(job_id, status, message, timed_out=True)
        sleep(min(poll_s, remaining))


def exit_code(outcome: JobOutcome) -> int:
    """0 when the job succeeded or is still running at the timeout, 1 otherwise."""
    if outcome.status == "SUCCEEDED":
        return 0
    if outcome.status == "RUNNING" and outcome.timed_out:
        return 0
    return 1


def follow_hint(address: str, job_id: str) -> str:
    """The shell command that follows a job's logs."""
    return shlex.join(["ray", "job", "logs", "--follow", "--address", address, job_id])
