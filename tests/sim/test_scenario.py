"""Scenario files: shipped ones load, bad ones get file/line/field errors, runs reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoops.cli import app
from autoops.regions.loader import default_catalogue
from autoops.sim.baselines import BASELINES
from autoops.sim.scenario import load_scenario
from autoops.yamlio import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "simulations").glob("*.yaml"))
POLICY = (ROOT / "policies" / "canary-latency.yaml").as_posix()


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenarios_are_valid(path: Path) -> None:
    scenario = load_scenario(path, default_catalogue(), frozenset(BASELINES))
    assert scenario.duration_s > 0


def test_at_least_five_scenarios_ship() -> None:
    assert len(SCENARIOS) >= 5


SHORT = f"""name: short
policy: {POLICY}
duration_s: 600
seed: 7
traffic: {{source: synthetic, peak_rps: 200}}
world: {{service_ms: 25}}
deploy:
  - {{at_s: 120, version: v2}}
faults:
  - {{at_s: 120, duration_s: 480, version: v2, faults: {{error_rate: 0.3}}}}
baselines: [ray_serve_default, flagger]
"""


@pytest.mark.parametrize(
    ("case", "text", "line", "field"),
    [
        ("unknown_field", SHORT + "colour: red\n", 12, "colour"),
        ("unknown_baseline", SHORT.replace("flagger]", "magic]"), 11, "baselines.1"),
        (
            "unknown_fault_version",
            SHORT.replace("version: v2, faults", "version: v9, faults"),
            10,
            "faults.0.version",
        ),
        ("negative_duration", SHORT.replace("duration_s: 600", "duration_s: -5"), 3, "duration_s"),
        ("missing_policy", SHORT.replace(POLICY, "nope.yaml"), 2, "policy"),
        (
            "unknown_outage_region",
            SHORT + "region_outages:\n  - {region: mars-1, at_s: 0, duration_s: 10}\n",
            13,
            "region_outages.0.region",
        ),
        (
            "job_deadline_before_release",
            SHORT + "jobs:\n  - {name: r, release_s: 300, deadline_s: 200, duration_s: 60}\n",
            13,
            "jobs.0.deadline_s",
        ),
        (
            "job_longer_than_its_window",
            SHORT + "jobs:\n  - {name: r, release_s: 100, deadline_s: 200, duration_s: 300}\n",
            13,
            "jobs.0.duration_s",
        ),
        (
            "job_deadline_after_the_run",
            SHORT + "jobs:\n  - {name: r, release_s: 100, deadline_s: 900, duration_s: 60}\n",
            13,
            "jobs.0.deadline_s",
        ),
        (
            "job_unknown_region",
            SHORT
            + "jobs:\n  - name: r\n    release_s: 0\n    deadline_s: 500\n    duration_s: 60\n"
            + "    region: mars-1\n",
            17,
            "jobs.0.region",
        ),
        (
            "job_unknown_field",
            SHORT + "jobs:\n  - {name: r, release_s: 0, deadline_s: 500, duration_s: 60, gpu: 1}\n",
            13,
            "jobs.0.gpu",
        ),
        (
            "job_duplicate_name",
            SHORT
            + "jobs:\n  - {name: r, release_s: 0, deadline_s: 500, duration_s: 60}\n"
            + "  - {name: r, release_s: 0, deadline_s: 500, duration_s: 60}\n",
            14,
            "jobs.1.name",
        ),
    ],
)
def test_bad_scenarios_name_file_line_and_field(
    tmp_path: Path, case: str, text: str, line: int, field: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_scenario(path, default_catalogue(), frozenset(BASELINES))
    formatted = [issue.format() for issue in err.value.issues]
    assert any(f.startswith(f"{path}:{line}: {field}") for f in formatted), (case, formatted)


def _simulate(tmp_path: Path, name: str) -> dict[str, object]:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT)
    out = tmp_path / name
    result = CliRunner().invoke(app, ["simulate", str(path), "--report-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").read_text().count("data:image/png;base64") >= 5
    data: dict[str, object] = json.loads((out / "report.json").read_text())
    return data


def test_same_seed_same_report(tmp_path: Path) -> None:
    assert _simulate(tmp_path, "a") == _simulate(tmp_path, "b")


def test_report_compares_the_controller_with_each_baseline(tmp_path: Path) -> None:
    report = _simulate(tmp_path, "c")
    controllers = report["controllers"]
    assert isinstance(controllers, dict)
    assert set(controllers) == {"autoops", "ray_serve_default", "flagger"}
    row = controllers["autoops"]
    for key in (
        "slo_violation_minutes",
        "p99_ms",
        "failed_requests",
        "replica_hours",
        "cost_usd",
        "co2_g_per_1k_requests",
        "actions",
        "flaps",
    ):
        assert key in row


def test_simulate_with_a_broken_scenario_exits_1_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SHORT + "colour: red\n")
    result = CliRunner().invoke(app, ["simulate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:12: colour: unknown field" in result.output


def test_simulate_without_data_for_a_trace_says_so(tmp_path: Path) -> None:
    path = tmp_path / "trace.yaml"
    path.write_text(SHORT.replace("source: synthetic", "source: alibaba"))
    result = CliRunner().invoke(app, ["simulate", str(path), "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "alibaba" in result.output


def test_a_scenario_longer_than_its_trace_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "traces").mkdir(parents=True)
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    rows += [f"2023-11-16 18:15:{s:02d}.0000000,100,20" for s in range(0, 60, 2)]
    (data / "traces" / "azure_llm_2023_conv.csv").write_text("\n".join(rows) + "\n")
    path = tmp_path / "long.yaml"
    path.write_text(SHORT.replace("source: synthetic, peak_rps: 200", "source: azure, peak_rps: 1"))
    result = CliRunner().invoke(app, ["simulate", str(path), "--data-dir", str(data)])
    assert result.exit_code == 1
    assert "shorten the run or lower peak_rps" in result.output


def test_per_request_scenarios_run(tmp_path: Path) -> None:
    path = tmp_path / "req.yaml"
    path.write_text(
        SHORT.replace("world: {service_ms: 25}", "world: {service_ms: 25, fidelity: request}")
    )
    result = CliRunner().invoke(app, ["simulate", str(path), "--report-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["controllers"]["autoops"]["requests"] > 0


def test_bench_sim_without_data_says_what_it_needs(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "sim", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "needs the public data" in result.output
