"""Counterfactual replay of a recording: exact round trips, real differences, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoops.cli import app
from autoops.model import ActionKind
from autoops.policy.loader import load_policy
from autoops.regions.loader import load_catalogue
from autoops.sim.replay import RecordingError, read_recording, replay
from tests.unit.recordings import POLICY, alert_only_policy, record_incident


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dry run's synthetic incident, recorded live-style."""
    return record_incident(tmp_path_factory.mktemp("rec") / "recording.jsonl")


@pytest.mark.parametrize("mode", ["step", "rolling"])
def test_the_recording_policy_reproduces_every_recorded_decision(
    recording: Path, mode: str
) -> None:
    passes = read_recording(recording)
    recorded_kinds = {a.kind for p in passes for a in p.decision.actions}
    assert ActionKind.ROLLBACK in recorded_kinds  # the incident did act
    report = replay(passes, load_policy(POLICY), load_catalogue(), mode)  # type: ignore[arg-type]
    assert report.passes == len(passes)
    assert report.differences == ()


def test_another_policy_lists_the_passes_it_would_have_decided_otherwise(
    recording: Path, tmp_path: Path
) -> None:
    passes = read_recording(recording)
    report = replay(passes, load_policy(alert_only_policy(tmp_path)), load_catalogue())
    rollbacks = [
        d for d in report.differences if any(a.kind is ActionKind.ROLLBACK for a in d.recorded)
    ]
    assert rollbacks, "the recorded rollback is a difference under an alert-only policy"
    for diff in rollbacks:
        assert not any(a.kind is ActionKind.ROLLBACK for a in diff.replayed)
        assert diff.replayed_reasons
    assert report.recorded_policy == "digits-carbon-aware"
    assert report.replayed_policy == "alert-only"


def test_a_bad_line_is_named_by_file_and_line(recording: Path, tmp_path: Path) -> None:
    lines = recording.read_text(encoding="utf-8").splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([lines[0], "{not json", *lines[1:]]), encoding="utf-8")
    with pytest.raises(RecordingError, match=r"broken\.jsonl:2: not JSON"):
        read_recording(broken)
    data = json.loads(lines[0])
    data["snapshot"]["applied"]["replicas"] = "many"
    bad_field = tmp_path / "bad-field.jsonl"
    bad_field.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RecordingError, match=r"bad-field\.jsonl:1: snapshot\.applied\.replicas"):
        read_recording(bad_field)
    data = json.loads(lines[0])
    data["format"] = 1
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RecordingError, match=r"old\.jsonl:1: format 1"):
        read_recording(old)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(RecordingError, match="holds no pass"):
        read_recording(empty)


def test_the_cli_prints_the_differences_and_exits_0(recording: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["replay", str(recording), "--policy", str(alert_only_policy(tmp_path)), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["differences"]
    assert report["mode"] == "step"


def test_the_cli_exits_1_naming_a_missing_recording_and_2_on_a_bad_mode(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["replay", str(tmp_path / "nope.jsonl"), "--policy", str(POLICY)])
    assert missing.exit_code == 1
    assert "nope.jsonl" in missing.output
    bad_mode = runner.invoke(
        app, ["replay", str(tmp_path / "x"), "--policy", str(POLICY), "--mode", "sideways"]
    )
    assert bad_mode.exit_code == 2
