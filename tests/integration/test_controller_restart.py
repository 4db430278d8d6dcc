"""The closed loop survives its controller and heals drift, on real Ray Serve and Prometheus.

(j) A controller process is SIGKILLed in the middle of a canary rollout; a second controller on
the same store takes the lease, resumes from the stored phase and step, and promotes, with no
action applied twice; ``autoops audit --verify`` passes on the log, and fails on an edited
record or a cut tail. (k) An input shift in live traffic is detected as drift, the version is
retrained, registered, canaried and promoted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from autoops.adapters.serve_actuator import ServeActuator
from autoops.adapters.serve_rest import RestServeClient
from autoops.demo.stack import ADMIN_TOKEN_ENV, LocalStack
from autoops.demo.story import LoadDriver
from autoops.ports import AuditRecord
from autoops.store.sqlite import SQLiteStore, default_head_path
from tests.integration import e2e
from tests.integration.e2e import REGIONS, StartControl, compressed_policy, table, wait_for

pytestmark = pytest.mark.integration

stack = e2e.stack
control = e2e.control

POLICY = "demo"
ROLLOUT_KINDS = ("set_traffic", "promote", "rollback")


# --------------------------------------------------------------------------- helpers


def poll_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Like ``wait_for``, but every 50 ms: to catch a short window (an intent in flight)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def target_of(action: Mapping[str, Any]) -> str:
    """An action's target as one comparable text (its fields but the kind)."""
    return json.dumps({k: v for k, v in action.items() if k != "kind"}, sort_keys=True)


def canary_share(record: AuditRecord) -> float:
    """v2's traffic share set by an outcome or intent's set_traffic action (0 otherwise)."""
    actions = [record.body["action"]] if record.kind == "outcome" else record.body["actions"]
    shares = [a["weights"].get("v2", 0.0) for a in actions if a["kind"] == "set_traffic"]
    return max(shares, default=0.0)


def first_step_started(store: SQLiteStore) -> bool:
    """True once the first canary step is written ahead (its intent) or applied (its outcome)."""
    return any(canary_share(r) > 0 for r in store.records(POLICY, kinds=["intent", "outcome"]))


def start_controller(
    local: LocalStack, policy: Path, store_path: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    """``autoops run`` as its own process, pointed at the module stack (no control API)."""
    assert local.prometheus is not None
    command = [
        sys.executable,
        "-m",
        "autoops",
        "run",
        "--policy",
        str(policy),
        "--dashboard-url",
        local.dashboard_url,
        "--prometheus",
        local.prometheus.url,
        "--ingress-url",
        local.http_url,
        "--registry",
        str(local.registry_root),
        "--store",
        str(store_path),
        "--api-port",
        "-1",
    ]
    env = {**os.environ, ADMIN_TOKEN_ENV: local.admin_token}
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process (no clean-up of any kind runs in it) and reap it."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def copy_store(source: Path, target: Path) -> Path:
    """A consistent copy of a store (SQLite's backup, WAL included) and its published head."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    shutil.copyfile(default_head_path(source), default_head_path(target))
    return target


def audit_verify(store_path: Path) -> subprocess.CompletedProcess[str]:
    """``autoops audit --verify --store PATH`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "autoops", "audit", "--verify", "--store", str(store_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_no_action_applied_twice(outcomes: list[AuditRecord]) -> None:
    """No action re-applied onto its own target: each kind's updates change the target."""
    last_target: dict[str, str] = {}
    rollout_targets: set[tuple[str, str]] = set()
    for record in outcomes:
        if record.body["outcome"] != "updated":
            continue
        action = record.body["action"]
        kind, target = action["kind"], target_of(action)
        assert last_target.get(kind) != target, f"{kind} {target} applied twice (seq {record.seq})"
        last_target[kind] = target
        if kind in ROLLOUT_KINDS:
            key = (kind, target)
            assert key not in rollout_targets, f"rollout step {key} applied twice"
            rollout_targets.add(key)


@pytest.fixture
def load(stack: LocalStack) -> Iterator[LoadDriver]:
    """Bounded loopback load for a controller the test runs as a process."""
    driver = LoadDriver(stack.http_url, stack.inference_token)
    driver.start()
    try:
        yield driver
    finally:
        driver.stop()


# --------------------------------------------------------------------------- (j)


def test_a_controller_killed_mid_rollout_is_replaced_and_the_rollout_finishes_once(
    stack: LocalStack, control: StartControl, load: LoadDriver, tmp_path: Path
) -> None:
    policy = compressed_policy(
        tmp_path,
        rollout={"steps": [25, 50], "progress_deadline_s": 180},
        detectors={"drift": {"enabled": False}},
    )
    store_path = tmp_path / "state" / "autoops.db"
    actuator = ServeActuator(RestServeClient(stack.dashboard_url), "digits")
    actuator.write_routing(table())
    first = start_controller(stack, policy, store_path, tmp_path / "first-controller.log")
    try:
        wait_for(store_path.exists, 60, "the first controller's store")
        watcher = SQLiteStore(store_path, create=False, publish=False)
        try:
            poll_until(lambda: first_step_started(watcher), 120, "the first canary step")
            kill(first)
            saved = watcher.load_state(POLICY)
            pending = [r.seq for r in watcher.pending_intents(POLICY)]
            killed_at = watcher.head()
        finally:
            watcher.close()
    finally:
        kill(first)
    log_tail = (tmp_path / "first-controller.log").read_text(errors="replace")[-2000:]
    assert killed_at is not None, log_tail
    assert saved is not None and saved["rollout"]["phase"] == "progressing", saved
    assert saved["rollout"]["canary_version"] == "v2"
    killed_step = saved["rollout"]["step"]

    # The second controller: the same store, the routing Serve holds now (the killed one's).
    c = control(actuator.routing(), policy=policy, store_path=store_path)
    load.stop()
    wait_for(
        lambda: c.routing().stable_version == "v2" and c.routing().weights == {"v2": 1.0},
        240,
        "the second controller to promote v2",
    )
    c.stop()

    store = SQLiteStore(store_path, create=False, publish=False)
    try:
        records = store.records(POLICY)
        outcomes = [r for r in records if r.kind == "outcome"]
        intents = [r for r in records if r.kind == "intent"]
        assert store.pending_intents(POLICY) == []
    finally:
        store.close()
    # An intent the kill left open was finished by the second controller, once.
    for seq in pending:
        closing = [r for r in outcomes if r.body["intent_seq"] == seq]
        assert closing and all(r.body["resumed"] for r in closing), closing
        assert all(r.seq > killed_at[0] for r in closing)
    assert_no_action_applied_twice(outcomes)
    assert [r.body["action"]["kind"] for r in outcomes if r.body["outcome"] == "updated"].count(
        "promote"
    ) == 1
    # The rollout started once (by the first controller) and was resumed, not restarted.
    starts = [r for r in intents if any("new version v2 found" in x for x in r.body["reasons"])]
    assert len(starts) == 1 and starts[0].seq <= killed_at[0], starts
    later = [r for r in intents if r.seq > killed_at[0]]
    assert later, "the second controller acted"
    for r in later:
        step = r.body["evidence"].get("rollout.step")
        assert step is None or step >= killed_step, (r.seq, step, killed_step)
        assert canary_share(r) == 0.0 or canary_share(r) > 0.25, r.body["actions"]
    promoted = [
        r for r in outcomes if r.body["action"]["kind"] == "promote" and r.seq > killed_at[0]
    ]
    assert promoted and promoted[0].body["outcome"] == "updated"

    # The audit log verifies, and an edited record or a cut tail is named.
    intact = copy_store(store_path, tmp_path / "intact.db")
    ok = audit_verify(intact)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout and "published head" in ok.stdout

    edited = copy_store(store_path, tmp_path / "edited.db")
    victim = promoted[0].seq
    with sqlite3.connect(edited) as db:
        (text,) = db.execute("SELECT body FROM audit WHERE seq = ?", (victim,)).fetchone()
        body = json.loads(text)
        body["outcome"] = "failed"
        db.execute("UPDATE audit SET body = ? WHERE seq = ?", (json.dumps(body), victim))
    bad = audit_verify(edited)
    assert bad.returncode == 1, bad.stdout
    assert f"seq {victim}" in bad.stderr and "edited" in bad.stderr, bad.stderr

    cut = copy_store(store_path, tmp_path / "cut.db")
    last = records[-1].seq
    with sqlite3.connect(cut) as db:
        db.execute("DELETE FROM audit WHERE seq > ?", (last - 3,))
    bad = audit_verify(cut)
    assert bad.returncode == 1, bad.stdout
    assert "truncated" in bad.stderr and f"published head is seq {last}" in bad.stderr, bad.stderr


# --------------------------------------------------------------------------- (k)


def test_input_drift_is_retrained_canaried_and_promoted(
    control: StartControl, tmp_path: Path
) -> None:
    policy = compressed_policy(
        tmp_path,
        remediations={"retrain_deadline_s": 20},
        rollout={"progress_deadline_s": 120},
    )
    routing = table(deployments={"small-v1": ["eu-west"], "v1": REGIONS})
    c = control(routing, policy=policy)
    wait_for(
        lambda: c.reconciler.last_reading is not None and not c.reconciler.last_reading.outage,
        60,
        "a first metrics read",
    )
    c.load.shift = 1.5
    wait_for(lambda: "retrain" in c.applied_kinds(), 150, "drift to start a retraining")
    retrains = [
        r
        for r in c.running.store.records(POLICY, kinds=["intent"])
        if any(a["kind"] == "retrain" for a in r.body["actions"])
    ]
    assert len(retrains) == 1
    assert any(k.startswith("drift.") for k in retrains[0].body["evidence"])
    assert any("drift on" in reason for reason in retrains[0].body["reasons"])
    wait_for(
        lambda: (
            "promote" in c.applied_kinds()
            and c.routing().stable_version == "v1-r1"
            and c.routing().weights == {"v1-r1": 1.0}
        ),
        240,
        "the retrained v1-r1 to be promoted",
    )
    kinds = c.applied_kinds()
    assert kinds.count("promote") == 1 and "rollback" not in kinds
    assert c.running.store.verify().ok
