"""Deferrable jobs: windows kept, greener slots from the past only, the oracle a lower bound."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from autoops.cli import app
from autoops.model import RegionSignals
from autoops.regions.loader import default_catalogue
from autoops.sim.api import Controller, SimResult
from autoops.sim.baselines import (
    BASELINES,
    AutoOpsController,
    CarbonAgnosticPlacement,
    CarbonOracle,
    forecast_intensity,
)
from autoops.sim.engine import (
    DeferrableJob,
    FleetResult,
    JobRequest,
    JobRun,
    SignalHistory,
    SimConfig,
    job_footprint,
    simulate,
)
from autoops.sim.scenario import load_scenario
from tests.sim.fakes import Flat
from tests.unit.fakes import CATALOGUE, make_policy

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0
DAY = 86400.0
REGIONS = ("eu-west", "eu-central")
POLICY = make_policy(tick_interval_s=60)
STEP_S = 30.0


class Hourly:
    """Carbon intensity per region and hour of the run (a hand-made series), price fixed."""

    def __init__(self, carbon: Mapping[str, list[float]]) -> None:
        self.carbon = carbon

    def value(self, region: str, t: float) -> float:
        series = self.carbon[region]
        return series[min(int(t // HOUR), len(series) - 1)]

    def at(self, t: float) -> tuple[RegionSignals, ...]:
        return tuple(RegionSignals(r, self.value(r, t), 60.0, True) for r in self.carbon)


def daily(pattern: list[float], days: int) -> list[float]:
    """The same 24 hourly values every day."""
    return [pattern[h % 24] for h in range(24 * days)]


CLEAN_AT_3 = [300.0] * 24
CLEAN_AT_3[3] = 50.0
JOB = DeferrableJob("retrain", release_s=DAY, deadline_s=DAY + 6 * HOUR, duration_s=HOUR)


def clean_series(spike_on_day_2: bool = False) -> Hourly:
    """eu-west is clean at 03:00 every day (dirty from day 2's 03:00 if spiked); eu-central 400."""
    west = daily(CLEAN_AT_3, 2)
    if spike_on_day_2:
        west[24 + 3] = 900.0
    return Hourly({"eu-west": west, "eu-central": [400.0] * 48})


def run(controller: Controller, signals: Hourly, jobs: tuple[DeferrableJob, ...]) -> FleetResult:
    config = SimConfig(duration_s=2 * DAY, step_s=STEP_S, metrics_noise=0.0, seed=1, jobs=jobs)
    result = simulate(POLICY, CATALOGUE, Flat(20.0, 2 * DAY), signals, controller, config)
    assert isinstance(result, FleetResult)
    return result


def only_job(result: SimResult) -> JobRun:
    assert isinstance(result, FleetResult)
    (job,) = result.jobs
    return job


def history(signals: Hourly, until: float, every_s: float = 900.0) -> SignalHistory:
    """What a controller would have been shown from time 0 to ``until``."""
    seen = SignalHistory()
    t = 0.0
    while t <= until:
        seen.record(t, signals.at(t))
        t += every_s
    return seen


def request(job: DeferrableJob) -> JobRequest:
    return JobRequest(job, job.release_s, REGIONS, REGIONS[0], STEP_S, CATALOGUE)


def footprint_g(signals: Hourly, job: DeferrableJob, start: float, region: str | None) -> float:
    return job_footprint(job, start, region or REGIONS[0], signals.at, CATALOGUE, STEP_S).co2_g


# --------------------------------------------------------------------------- through the engine


def test_controller_runs_the_job_in_the_clean_hour_and_baselines_at_release() -> None:
    signals = clean_series()
    autoops = only_job(run(AutoOpsController(), signals, (JOB,)))
    agnostic = only_job(run(CarbonAgnosticPlacement(), signals, (JOB,)))
    oracle = only_job(run(CarbonOracle(signals.at), signals, (JOB,)))
    assert (agnostic.start_s, agnostic.region) == (DAY, "eu-west")
    assert (autoops.start_s, autoops.region) == (DAY + 3 * HOUR, "eu-west")
    assert autoops.co2_g < agnostic.co2_g
    assert autoops.co2_g == pytest.approx(0.3 * 50.0)
    assert oracle.co2_g <= autoops.co2_g
    for job in (autoops, agnostic, oracle):
        assert job.release_s <= job.start_s and job.end_s <= job.deadline_s and job.deadline_met


def test_job_footprint_goes_into_the_totals() -> None:
    signals = clean_series()
    with_job = run(AutoOpsController(), signals, (JOB,))
    without = run(AutoOpsController(), signals, ())
    job = only_job(with_job)
    assert with_job.totals["job_co2_g"] == job.co2_g > 0
    assert with_job.totals["co2_g"] == pytest.approx(without.totals["co2_g"] + job.co2_g)
    assert with_job.totals["energy_kwh"] == pytest.approx(without.totals["energy_kwh"] + 0.3)
    assert with_job.totals["cost_usd"] == pytest.approx(without.totals["cost_usd"] + job.cost_usd)
    assert job.cost_usd == pytest.approx(1.0 + 0.3 * 60.0 / 1000)


def test_a_spike_after_the_decision_does_not_move_the_controllers_slot() -> None:
    plain = only_job(run(AutoOpsController(), clean_series(), (JOB,)))
    spiked = only_job(run(AutoOpsController(), clean_series(spike_on_day_2=True), (JOB,)))
    assert (spiked.start_s, spiked.region) == (plain.start_s, plain.region)
    # the spike is real: a controller that sees the future moves away from it
    series = clean_series(spike_on_day_2=True)
    oracle = only_job(run(CarbonOracle(series.at), series, (JOB,)))
    assert oracle.start_s != spiked.start_s
    assert oracle.co2_g < spiked.co2_g


def test_jobs_never_start_before_release_nor_end_after_deadline_in_a_run() -> None:
    jobs = (
        DeferrableJob("a", release_s=600.0, deadline_s=3 * HOUR, duration_s=2 * HOUR),
        DeferrableJob("b", release_s=DAY + 1234.0, deadline_s=DAY + 9 * HOUR, duration_s=5000.0),
        DeferrableJob(
            "c", release_s=DAY + 20 * HOUR, deadline_s=2 * DAY, duration_s=4 * HOUR, replicas=3
        ),
    )
    series = Hourly(
        {"eu-west": [float(100 + (h * 37) % 250) for h in range(48)], "eu-central": [200.0] * 48}
    )
    for controller in (AutoOpsController(), CarbonAgnosticPlacement(), CarbonOracle(series.at)):
        result = run(controller, series, jobs)
        assert isinstance(result, FleetResult)
        assert [j.name for j in result.jobs] == ["a", "b", "c"]
        for job in result.jobs:
            assert job.release_s <= job.start_s, (controller, job)
            assert job.end_s <= job.deadline_s + 1e-6, (controller, job)
            assert job.deadline_met


def test_bad_jobs_are_refused_by_the_engine() -> None:
    bad = DeferrableJob("x", release_s=100.0, deadline_s=200.0, duration_s=300.0)
    with pytest.raises(ValueError, match=r"'x'.*duration_s"):
        run(AutoOpsController(), clean_series(), (bad,))


# --------------------------------------------------------------------------- the planners


def test_signal_history_refuses_to_go_back_in_time() -> None:
    seen = SignalHistory()
    seen.record(10.0, clean_series().at(10.0))
    with pytest.raises(ValueError, match="backwards"):
        seen.record(5.0, clean_series().at(5.0))


def test_forecast_for_a_later_hour_is_the_same_hour_a_day_before() -> None:
    signals = clean_series()
    seen = history(signals, DAY)
    assert forecast_intensity(seen, "eu-west", 24 + 3, DAY) == 50.0
    assert forecast_intensity(seen, "eu-west", 24 + 4, DAY) == 300.0
    # nothing seen a day before: persistence
    young = history(signals, 3600.0)
    assert forecast_intensity(young, "eu-west", 3, 3600.0) == 300.0


hourly_values = st.lists(st.floats(10.0, 900.0), min_size=24, max_size=24)
windows = st.tuples(
    st.integers(0, 23),  # release hour on day 2
    st.integers(0, 3599),  # release offset within that hour
    st.integers(1, 10 * 3600),  # window length
    st.floats(0.01, 1.0),  # duration as a share of the window
)


def job_in(window: tuple[int, int, int, float]) -> DeferrableJob:
    hour, offset, length, share = window
    release = DAY + hour * HOUR + offset
    duration = max(1.0, length * share)
    return DeferrableJob("j", release, release + max(length, duration), duration, replicas=2)


@settings(deadline=None, max_examples=60)
@given(west=hourly_values, central=hourly_values, window=windows)
def test_controller_is_no_dirtier_than_release_when_the_forecast_is_right(
    west: list[float], central: list[float], window: tuple[int, int, int, float]
) -> None:
    """On a daily-periodic series a day of history forecasts exactly."""
    signals = Hourly({"eu-west": daily(west, 3), "eu-central": daily(central, 3)})
    job = job_in(window)
    choice = AutoOpsController().plan_job(request(job), history(signals, job.release_s))
    assert job.release_s <= choice.start <= job.deadline_s - job.duration_s
    assert choice.region in REGIONS
    chosen = footprint_g(signals, job, choice.start, choice.region)
    at_release = footprint_g(signals, job, job.release_s, "eu-west")
    assert chosen <= at_release * (1 + 1e-9)


@settings(deadline=None, max_examples=60)
@given(
    west=st.lists(st.floats(10.0, 900.0), min_size=72, max_size=72),
    central=st.lists(st.floats(10.0, 900.0), min_size=72, max_size=72),
    window=windows,
)
def test_oracle_job_carbon_is_at_most_the_controllers_and_at_release(
    west: list[float], central: list[float], window: tuple[int, int, int, float]
) -> None:
    signals = Hourly({"eu-west": west, "eu-central": central})
    job = job_in(window)
    oracle = CarbonOracle(signals.at).plan_job(request(job), SignalHistory())
    autoops = AutoOpsController().plan_job(request(job), history(signals, job.release_s))
    for choice in (oracle, autoops):
        assert job.release_s <= choice.start
        assert choice.start + job.duration_s <= job.deadline_s + 1e-6
    best = footprint_g(signals, job, oracle.start, oracle.region)
    assert best <= footprint_g(signals, job, autoops.start, autoops.region)
    assert best <= footprint_g(signals, job, job.release_s, "eu-west")


# --------------------------------------------------------------------------- scenarios


def test_week_carbon_ships_retraining_jobs_with_deadlines_of_hours() -> None:
    scenario = load_scenario(
        ROOT / "simulations" / "week-carbon.yaml", default_catalogue(), frozenset(BASELINES)
    )
    assert len(scenario.jobs) >= 3
    for job in scenario.jobs:
        assert job.deadline_s - job.release_s >= 3 * HOUR
        assert job.duration_s < job.deadline_s - job.release_s


SCENARIO = f"""name: jobs
policy: {(ROOT / "policies" / "canary-latency.yaml").as_posix()}
duration_s: 900
seed: 7
traffic: {{source: synthetic, peak_rps: 100}}
world: {{service_ms: 25}}
baselines: [ray_serve_default]
jobs:
  - {{name: retrain, release_s: 60, deadline_s: 800, duration_s: 300, replicas: 2}}
  - {{name: nightly, release_s: 100, deadline_s: 700, duration_s: 120, power_kw: 1.5}}
"""


def simulate_cli(tmp_path: Path, out: str) -> dict[str, object]:
    path = tmp_path / "jobs.yaml"
    path.write_text(SCENARIO)
    result = CliRunner().invoke(app, ["simulate", str(path), "--report-dir", str(tmp_path / out)])
    assert result.exit_code == 0, result.output
    assert "Deferrable jobs" in (tmp_path / out / "report.html").read_text()
    data: dict[str, object] = json.loads((tmp_path / out / "report.json").read_text())
    return data


def test_report_has_a_line_per_job_and_same_seed_same_report(tmp_path: Path) -> None:
    first = simulate_cli(tmp_path, "a")
    assert first == simulate_cli(tmp_path, "b")
    jobs = first["jobs"]
    assert isinstance(jobs, dict) and set(jobs) == {"autoops", "ray_serve_default"}
    for lines in jobs.values():
        assert [line["job"] for line in lines] == ["retrain", "nightly"]
        for line in lines:
            assert line["deadline_met"] is True
            assert line["release_s"] <= line["start_s"] < line["end_s"] <= line["deadline_s"]
            assert line["co2_kg"] > 0 and line["energy_kwh"] > 0
            assert line["region"]
    controllers = first["controllers"]
    assert isinstance(controllers, dict)
    assert controllers["autoops"]["job_co2_kg"] > 0
    assert controllers["autoops"]["jobs_deadline_missed"] == 0


def test_a_job_pinned_outside_the_policys_regions_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(SCENARIO.replace("power_kw: 1.5}", "power_kw: 1.5, region: eu-west}"))
    result = CliRunner().invoke(app, ["simulate", str(path), "--report-dir", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert f"{path}:10: jobs.1.region: region 'eu-west' is not allowed by the policy" in (
        result.output
    )
