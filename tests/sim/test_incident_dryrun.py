"""The synthetic-incident dry run heals every incident of its story through decide()."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoops.cli import app
from autoops.dryrun_view import summarise
from autoops.model import Rollback, SetRegionWeights, SetReplicas
from autoops.policy.loader import load_policy
from autoops.regions.loader import default_catalogue
from autoops.sim.incident import IncidentScript, run_incident

ROOT = Path(__file__).resolve().parents[2]
POLICIES = sorted((ROOT / "policies").glob("*.yaml"))


def carbon_run() -> tuple[IncidentScript, object]:
    catalogue = default_catalogue()
    policy = load_policy(ROOT / "policies" / "carbon-aware.yaml", catalogue)
    script = IncidentScript()
    return script, run_incident(policy, catalogue, script)


def test_wrong_answer_canary_is_rolled_back_after_it_starts() -> None:
    script, run = carbon_run()
    rollback = run.first(Rollback)  # type: ignore[attr-defined]
    assert rollback is not None
    at, action = rollback
    assert at > script.canary_at
    assert action == Rollback(from_version="v2", to_version="v1")


def test_ramp_is_met_by_scaling_out_ahead_of_the_peak() -> None:
    script, run = carbon_run()
    ups = [
        (t, a)
        for t, a in run.actions()  # type: ignore[attr-defined]
        if isinstance(a, SetReplicas) and t >= script.ramp_at
    ]
    assert ups, "no scale-out during the ramp"
    assert ups[0][0] < script.ramp_at + script.ramp_s  # before the ramp peaks
    assert max(a.total for _, a in ups) == run.policy.scaling.max_replicas  # type: ignore[attr-defined]


def test_carbon_spike_moves_traffic_and_replicas_inside_the_boundary() -> None:
    script, run = carbon_run()
    allowed = set(run.policy.intent.allowed_regions)  # type: ignore[attr-defined]
    moves = [a for _, a in run.actions() if isinstance(a, SetRegionWeights)]  # type: ignore[attr-defined]
    assert moves
    for move in moves:
        assert {r for r, w in move.weights.items() if w > 0} <= allowed
    final = run.ticks[-1]  # type: ignore[attr-defined]
    spiked = next(t for t in run.ticks if t.time >= script.carbon_spike_at)  # type: ignore[attr-defined]
    old = max(spiked.region_weights, key=spiked.region_weights.get)
    assert final.region_weights.get(old, 0.0) == 0.0
    world_replicas = [a for _, a in run.actions() if isinstance(a, SetReplicas)]  # type: ignore[attr-defined]
    assert world_replicas[-1].replicas.get(old, 0) == 0


def test_summary_reports_every_incident_healed() -> None:
    script, run = carbon_run()
    rows = summarise(run, script)  # type: ignore[arg-type]
    assert [row[3] for row in rows] == [True, True, True]


def test_same_policy_same_story() -> None:
    _, first = carbon_run()
    _, second = carbon_run()
    assert first.actions() == second.actions()  # type: ignore[attr-defined]


@pytest.mark.parametrize("policy", POLICIES, ids=[p.stem for p in POLICIES])
def test_dryrun_command_runs_on_every_example_policy(policy: Path) -> None:
    result = CliRunner().invoke(app, ["dryrun", "--policy", str(policy)])
    assert result.exit_code in (0, 1), result.output
    assert "What the controller did" in result.output


def test_dryrun_command_exits_0_and_explains_on_the_default_policy() -> None:
    result = CliRunner().invoke(app, ["dryrun"])
    assert result.exit_code == 0, result.output
    assert "ROLLBACK v2 -> v1" in result.output
    assert "why: canary accuracy" in result.output


def test_dryrun_with_a_broken_policy_exits_1_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "metadata: {name: x}\ntarget: {application: a, deployment: b}\n"
        "slo: {latency_p99_ms: 100}\nintent:\n  allowed_regions: [mars-1]\n"
    )
    result = CliRunner().invoke(app, ["dryrun", "--policy", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:5: intent.allowed_regions.0: unknown region 'mars-1'" in result.output


def test_bench_decide_writes_the_common_json_shape(tmp_path: Path) -> None:
    out = tmp_path / "decide.json"
    result = CliRunner().invoke(
        app, ["bench", "decide", "--deployments", "20", "--repeats", "2", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(out.read_text())
    assert set(data) == {"name", "config", "machine", "results", "anchors"}
    assert data["name"] == "decide"
    assert data["config"]["deployments"] == 20
    assert data["results"]["pass_ms"]["n"] == 2
