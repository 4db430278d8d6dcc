from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from autoops.bench.common import BenchResult, machine_info, summarize, timed_runs, write_result


def _result() -> BenchResult:
    return BenchResult(
        name="decide_latency",
        config={"repeats": 3},
        machine={"cpu_count": 2},
        results={"decide": {"median_ms": 0.1}},
        anchors={"ray_serve_default_policy_ms": 0.05},
    )


def test_result_json_has_exactly_the_five_top_level_keys() -> None:
    data = json.loads(_result().to_json())
    assert list(data) == ["name", "config", "machine", "results", "anchors"]


def test_write_result_prints_json_and_writes_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "reports" / "bench.json"

    write_result(_result(), output)

    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(output.read_text(encoding="utf-8"))
    assert printed["name"] == "decide_latency"


def test_write_result_without_output_only_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    write_result(_result(), None)

    assert json.loads(capsys.readouterr().out)["anchors"] == {"ray_serve_default_policy_ms": 0.05}
    assert list(tmp_path.iterdir()) == []


def test_machine_info_describes_python_and_cpu_and_is_json_serialisable() -> None:
    info = machine_info()
    json.dumps(info)
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert isinstance(info["cpu_count"], int)
    assert {"ray", "torch", "autoops"} <= set(info["packages"])


def test_machine_info_does_not_import_heavy_packages() -> None:
    import subprocess

    code = (
        "import sys; from autoops.bench.common import machine_info; machine_info(); "
        "print(','.join(m for m in ('torch', 'ray', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param(
            [0.001, 0.002, 0.003, 0.004, 0.005],
            {"n": 5, "median_ms": 3.0, "p90_ms": 4.6, "min_ms": 1.0, "max_ms": 5.0, "mean_ms": 3.0},
            id="odd-count",
        ),
        pytest.param(
            [0.004, 0.001, 0.003, 0.002],
            {"n": 4, "median_ms": 2.5, "p90_ms": 3.7, "min_ms": 1.0, "max_ms": 4.0, "mean_ms": 2.5},
            id="even-count-unsorted",
        ),
        pytest.param(
            [0.010],
            {
                "n": 1,
                "median_ms": 10.0,
                "p90_ms": 10.0,
                "min_ms": 10.0,
                "max_ms": 10.0,
                "mean_ms": 10.0,
            },
            id="single-sample",
        ),
    ],
)
def test_summarize_known_inputs(samples: list[float], expected: dict[str, float]) -> None:
    got = summarize(samples)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-9), key


def test_summarize_rejects_no_samples() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        summarize([])


def test_timed_runs_calls_warmup_then_repeats_and_returns_one_sample_per_repeat() -> None:
    calls: list[int] = []

    samples = timed_runs(lambda: calls.append(1), repeats=5, warmup=2)

    assert len(calls) == 7
    assert len(samples) == 5
    assert all(s >= 0.0 for s in samples)


@pytest.mark.parametrize(
    ("repeats", "warmup"),
    [pytest.param(0, 1, id="no-repeats"), pytest.param(1, -1, id="neg-warmup")],
)
def test_timed_runs_rejects_bad_counts(repeats: int, warmup: int) -> None:
    with pytest.raises(ValueError):
        timed_runs(lambda: None, repeats=repeats, warmup=warmup)
