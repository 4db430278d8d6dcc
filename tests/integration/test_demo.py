"""`autoops demo --headless --duration 120`, run as a user runs it, checked against its own records.

The demo runs in a subprocess (its own Ray, Serve, Prometheus, controller and load). The test
then reads what the demo wrote — its summary, the load generator's per-chunk ledger, the audit
log through `autoops audit` — and checks that they agree, that every incident was healed by the
action that fits it, and that nothing the demo started is still running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.e2e import prometheus_installed

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
DEMO_TIMEOUT_S = 600
"""Start-up (about a minute on 2 cores), the 120 s story, and the shutdown, with room."""

HEALED_BY = {
    "bad canary": "rollback",
    "traffic ramp": "set_replicas",
    "carbon spike": "set_region_weights",
    "input drift": "retrain",
}
"""The applied action kind (autoops.model.ActionKind) that heals each chapter."""


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the demo once for the module; return its exit code, output and report."""
    if not prometheus_installed():
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus)")
    report_dir = tmp_path_factory.mktemp("demo-report")
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    proc = subprocess.run(
        [
            str(BIN / "autoops"),
            "demo",
            "--headless",
            "--duration",
            "120",
            "--report-dir",
            str(report_dir),
        ],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    summary_path = report_dir / "demo-summary.yaml"
    report = (
        yaml.safe_load(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    )
    return {"proc": proc, "report": report, "report_dir": report_dir}


def _autoops(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the autoops CLI as a user would; capture its output."""
    return subprocess.run(
        [str(BIN / "autoops"), *args], capture_output=True, text=True, timeout=300
    )


def _output(run: dict[str, Any]) -> str:
    proc = run["proc"]
    return f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"


def test_the_demo_exits_0_with_every_incident_healed(demo_run: dict[str, Any]) -> None:
    assert demo_run["proc"].returncode == 0, _output(demo_run)
    chapters = {c["name"]: c["outcome"] for c in demo_run["report"]["chapters"]}
    assert chapters == dict.fromkeys(HEALED_BY, "healed"), chapters


def test_each_incident_is_healed_by_the_action_that_fits_it(demo_run: dict[str, Any]) -> None:
    applied = demo_run["report"]["actions_applied"]
    for chapter, kind in HEALED_BY.items():
        assert applied.get(kind, 0) >= 1, f"{chapter}: no {kind} applied in {applied}"


def test_the_load_counts_agree_with_the_load_generators_own_ledger(
    demo_run: dict[str, Any],
) -> None:
    load = demo_run["report"]["load"]
    ledger_path = Path(demo_run["report"]["load_ledger"])
    chunks = [json.loads(line) for line in ledger_path.read_text(encoding="utf-8").splitlines()]
    counted = [c for c in chunks if "error" not in c]
    assert counted, "the load generator reported no chunk"
    for key in ("sent", "ok", "failed", "feedback_sent"):
        assert load[key] == sum(c[key] for c in counted), key
    assert load["sent"] == load["ok"] + load["failed"]
    assert load["sent"] > 0
    assert load["failed"] <= 0.01 * load["sent"], load
    printed = f"{load['sent']} requests sent, {load['ok']} answered, {load['failed']} failed"
    assert printed in demo_run["proc"].stdout


def test_the_action_counts_agree_with_the_audit_log(demo_run: dict[str, Any]) -> None:
    store = demo_run["report"]["audit"]["store"]
    verify = _autoops("audit", "--store", store, "--verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    listed = _autoops("audit", "--store", store, "--kind", "outcome", "--json")
    assert listed.returncode == 0, listed.stderr
    outcomes = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    from_audit = Counter(
        o["body"]["action"]["kind"] for o in outcomes if o["body"]["outcome"] == "updated"
    )
    assert dict(from_audit) == demo_run["report"]["actions_applied"]
    total = sum(from_audit.values())
    assert f"Actions applied (from the audit log): {total} (" in demo_run["proc"].stdout
    assert demo_run["report"]["audit"]["verified"] is True


def test_nothing_the_demo_started_is_left_running(demo_run: dict[str, Any]) -> None:
    marks = [demo_run["report"]["workdir"], demo_run["report"]["ray_session_dir"]]
    marks = [m for m in marks if m]
    assert marks
    stray = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmdline for m in marks):
            stray.append(f"{proc.name}: {cmdline[:200]}")
    assert not stray, stray


def test_the_live_recording_replays_to_the_same_decisions_and_calibrates(
    demo_run: dict[str, Any],
) -> None:
    from autoops.demo.story import POLICY_FILE

    recording = demo_run["report"]["recording"]
    replayed = _autoops("replay", recording, "--policy", str(POLICY_FILE), "--json")
    assert replayed.returncode == 0, replayed.stderr
    report = json.loads(replayed.stdout)
    assert report["passes"] > 10
    assert report["differences"] == []
    calibrated = _autoops("calibrate", recording, "--policy", str(POLICY_FILE), "--json")
    assert calibrated.returncode == 0, calibrated.stderr
    fit = json.loads(calibrated.stdout)["calibration"]
    assert fit["passes"] == report["passes"]
    assert fit["service_s"]["points"] > 0
    assert fit["service_s"]["value"] > 0
