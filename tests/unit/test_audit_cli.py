from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from autoops.audit_commands import audit_command, parse_since, status_command
from autoops.core.state import ControllerState, Phase, RolloutState
from autoops.model import Rollback, SetRegionWeights, SetReplicas, SetTraffic
from autoops.store.codec import action_to_json, state_to_json
from autoops.store.sqlite import SQLiteStore

T0 = 1_700_000_000.0


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("audit")(audit_command)
    app.command("status")(status_command)
    return app


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(_app(), list(args), env={"COLUMNS": "200", **(env or {})})


def _apply(store: SQLiteStore, policy: str, rid: str, actions: list[Any], t: float) -> int:
    """An intent and one updated outcome per action, as the loop writes them."""
    intent = store.append(
        policy,
        rid,
        "intent",
        {"actions": [action_to_json(a) for a in actions], "reasons": ["because"]},
        t,
    )
    for action in actions:
        body = {"intent_seq": intent.seq, "action": action_to_json(action), "outcome": "updated"}
        store.append(policy, rid, "outcome", body, t + 1)
    return intent.seq


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A store with two policies: a canary at step 1 and a policy that only held."""
    path = tmp_path / "autoops.db"
    with SQLiteStore(path) as store:
        state = ControllerState(
            rollout=RolloutState(
                phase=Phase.PROGRESSING, stable_version="v1", canary_version="v2", step=1
            )
        )
        store.save_state("canary", state_to_json(state))
        _apply(store, "canary", "r1", [SetTraffic({"v1": 0.9, "v2": 0.1})], T0)
        _apply(
            store,
            "canary",
            "r2",
            [SetReplicas({"eu-west": 2}), SetRegionWeights({"eu-west": 1.0})],
            T0 + 10,
        )
        store.append("quiet", "r3", "decision", {"reasons": ["hold: no metrics"]}, T0 + 20)
    return path


def _lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


# --------------------------------------------------------------------------- audit


def test_audit_prints_every_record_as_json_lines(db: Path) -> None:
    result = _run("audit", "--store", str(db), "--json")
    assert result.exit_code == 0, result.output
    records = _lines(result)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[0]["kind"] == "intent"
    assert records[0]["body"]["actions"][0]["weights"] == {"v1": 0.9, "v2": 0.1}
    assert records[1]["prev_hash"] == records[0]["hash"]


@pytest.mark.parametrize(
    ("args", "seqs"),
    [
        (["--policy", "quiet"], [6]),
        (["--kind", "intent"], [1, 3]),
        (["--kind", "intent", "--kind", "decision"], [1, 3, 6]),
        (["--since", str(T0 + 10)], [3, 4, 5, 6]),
        (["--since", "2023-11-14T22:13:30Z"], [3, 4, 5, 6]),
        (["--since", "2023-11-14T22:13:40"], [6]),
        (["--limit", "2"], [5, 6]),
        (["--policy", "canary", "--kind", "outcome", "--limit", "1"], [5]),
    ],
    ids=[
        "policy",
        "kind",
        "two-kinds",
        "since-epoch",
        "since-iso",
        "since-naive-utc",
        "limit",
        "combined",
    ],
)
def test_audit_filters_records(db: Path, args: list[str], seqs: list[int]) -> None:
    result = _run("audit", "--store", str(db), "--json", *args)
    assert result.exit_code == 0, result.output
    assert [r["seq"] for r in _lines(result)] == seqs


def test_audit_table_says_what_each_record_did(db: Path) -> None:
    result = _run("audit", "--store", str(db))
    assert result.exit_code == 0, result.output
    assert "traffic v1=90% v2=10%" in result.stdout
    assert "-> updated" in result.stdout
    assert "replicas eu-west=2; regions eu-west=100%" in result.stdout
    assert "hold: no metrics" in result.stdout
    assert "2023-11-14T22:13:20Z" in result.stdout


def test_audit_verify_passes_on_an_intact_log(db: Path) -> None:
    result = _run("audit", "--store", str(db), "--verify")
    assert result.exit_code == 0, result.output
    assert "OK: 6 records intact" in result.stdout
    assert "reaches the published head (seq 6)" in result.stdout


def test_audit_verify_fails_at_an_edited_record(db: Path) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE audit SET body = replace(body, '0.9', '0.5') WHERE seq = 2")
    conn.close()
    result = _run("audit", "--store", str(db), "--verify")
    assert result.exit_code == 1
    assert "FAILED at seq 2: record 2 was edited" in result.output


def test_audit_verify_fails_on_a_cut_tail_using_the_published_head(db: Path) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM audit WHERE seq >= 5")
    conn.close()
    result = _run("audit", "--store", str(db), "--verify", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["first_bad_seq"] == 5
    assert report["reason"].startswith("truncated")
    assert report["published_head"]["seq"] == 6
    assert report["head"]["seq"] == 4


def test_audit_verify_warns_when_no_head_was_published(db: Path) -> None:
    (db.parent / "autoops.db.head.json").unlink()
    result = _run("audit", "--store", str(db), "--verify")
    assert result.exit_code == 0, result.output
    assert "no published head" in result.output


def test_audit_verify_fails_on_a_garbled_head_file(db: Path) -> None:
    (db.parent / "autoops.db.head.json").write_text("{", encoding="utf-8")
    result = _run("audit", "--store", str(db), "--verify")
    assert result.exit_code == 1
    assert "not valid JSON" in result.output


def test_reading_commands_never_create_a_store_or_publish_a_head(tmp_path: Path) -> None:
    path = tmp_path / "autoops.db"
    with SQLiteStore(path, publish=False) as store:
        store.append("canary", "r", "note", {}, T0)
    for command in (["audit"], ["audit", "--verify"], ["status"]):
        _run(*command, "--store", str(path))
    assert not (tmp_path / "autoops.db.head.json").exists()
    result = _run("audit", "--store", str(tmp_path / "missing.db"))
    assert result.exit_code == 1
    assert "missing.db: no AutoOps store here" in result.output
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.parametrize("command", ["audit", "status"])
def test_a_file_that_is_not_a_store_fails_with_its_path(tmp_path: Path, command: str) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n", encoding="utf-8")
    result = _run(command, "--store", str(path))
    assert result.exit_code == 1
    assert f"{path}: not an AutoOps store" in result.output


def test_a_bad_since_is_a_usage_error(db: Path) -> None:
    result = _run("audit", "--store", str(db), "--since", "last tuesday")
    assert result.exit_code == 2
    assert "expected epoch seconds" in result.output


def test_the_store_defaults_to_the_environment_then_the_working_directory(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run("audit", "--json", env={"AUTOOPS_STORE": str(db)})
    assert result.exit_code == 0, result.output
    assert len(_lines(result)) == 6
    monkeypatch.delenv("AUTOOPS_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    result = _run("audit")
    assert result.exit_code == 1
    assert "autoops-state/autoops.db: no AutoOps store here" in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", T0 - 900),
        ("2h", T0 - 7200),
        ("1.5d", T0 - 1.5 * 86400),
        ("90s", T0 - 90),
        ("1699990000", 1_699_990_000.0),
        ("2023-11-14T22:13:20Z", T0),
        ("2023-11-14T23:13:20+01:00", T0),
        ("2023-11-14 22:13:20", T0),
    ],
)
def test_parse_since_reads_ages_epochs_and_iso_times(text: str, expected: float) -> None:
    assert parse_since(text, now=T0) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "soon", "5 parsecs", "nan", "2023-13-45"])
def test_parse_since_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="expected epoch seconds"):
        parse_since(text, now=T0)


# --------------------------------------------------------------------------- status


def _policy(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in report["policies"] if p["policy"] == name)


def test_status_reports_the_saved_state_and_the_last_applied_targets(db: Path) -> None:
    result = _run("status", "--store", str(db), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    canary = _policy(report, "canary")
    assert canary["phase"] == "progressing"
    assert (canary["stable_version"], canary["canary_version"], canary["step"]) == ("v1", "v2", 1)
    assert canary["traffic"] == {"v1": 0.9, "v2": 0.1}
    assert canary["region_weights"] == {"eu-west": 1.0}
    assert canary["replicas"] == {"eu-west": 2}
    assert canary["last_decision_at"] == T0 + 10
    assert canary["pending_intents"] == []
    assert canary["head"]["seq"] == 5
    quiet = _policy(report, "quiet")
    assert "phase" not in quiet
    assert quiet["last_decision_at"] == T0 + 20
    assert report["head"]["seq"] == 6
    assert report["published_head"] == report["head"]


def test_status_shows_a_rollback_as_all_traffic_on_stable(db: Path) -> None:
    with SQLiteStore(db) as store:
        _apply(store, "canary", "r9", [Rollback("v2", "v1")], T0 + 30)
    report = json.loads(_run("status", "--store", str(db), "--json").stdout)
    assert _policy(report, "canary")["traffic"] == {"v1": 1.0}


def test_status_lists_an_intent_left_without_outcome(db: Path) -> None:
    with SQLiteStore(db) as store:
        store.append(
            "canary", "r9", "intent", {"actions": [action_to_json(Rollback("v2", "v1"))]}, T0 + 40
        )
    result = _run("status", "--store", str(db), "--policy", "canary")
    assert result.exit_code == 0, result.output
    assert "1 (seq 7)" in result.stdout
    assert "progressing (step 1" in result.stdout
    assert "quiet" not in result.stdout


def test_status_of_an_unknown_policy_fails(db: Path) -> None:
    result = _run("status", "--store", str(db), "--policy", "nope")
    assert result.exit_code == 1
    assert "no saved state or records for policy 'nope'" in result.output


def test_status_fails_on_an_unreadable_saved_state(db: Path) -> None:
    with SQLiteStore(db) as store:
        store.save_state("canary", {"rollout": {"phase": "sideways"}})
    result = _run("status", "--store", str(db), "--json")
    assert result.exit_code == 1
    error = _policy(json.loads(result.stdout), "canary")["error"]
    assert "state.rollout.phase: 'sideways' is not one of" in error
