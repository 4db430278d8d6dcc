"""The demo's terminal view, fed plain frames: dashboard text and styles, headless log lines."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text

from autoops.demo import DecisionLine, DemoFrame, HeadlessView, LiveView, format_headless
from autoops.demo.view import MAX_DECISIONS, render_frame

T0 = 10_000.0  # the frame clock is arbitrary: only differences matter


def _decision(i: int) -> DecisionLine:
    return DecisionLine(
        time=T0 + i, action=f"act-{i:02d}", outcome="updated", reason=f"reason-{i:02d}"
    )


def _frame(**changes: Any) -> DemoFrame:
    base = DemoFrame(
        time=T0 + 95.0,
        elapsed_s=95.0,
        chapter="canary",
        chapter_note="v2 answers wrongly with 200 OK",
        source="prometheus",
        request_rate=41.23,
        p99_ms=250.0,
        slo_p99_ms=300.0,
        error_ratio=0.002,
        slo_error_rate=0.01,
        accuracy=0.873,
        traffic={"v1": 0.9, "v2": 0.1},
        stable_version="v1",
        canary_version="v2",
        replicas={"eu-west": 2, "us-east": 1},
        region_weights={"eu-west": 0.7, "us-east": 0.3},
        carbon={"eu-west": 120.0, "us-east": 415.0, "ap-south": 640.0},
        allowed_regions=("eu-west", "us-east"),
        decisions=(_decision(1),),
        sent=1234,
        failed=3,
        outage=None,
    )
    return dataclasses.replace(base, **changes)


NO_DATA = _frame(
    request_rate=None,
    p99_ms=None,
    error_ratio=None,
    accuracy=None,
    traffic={},
    replicas={},
    region_weights={},
    carbon={"eu-west": None},
    allowed_regions=("eu-west",),
)


def _console() -> Console:
    return Console(record=True, width=120, file=io.StringIO())


def _text(frame: DemoFrame) -> str:
    console = _console()
    console.print(render_frame(frame))
    return console.export_text()


def _line_with(text: str, needle: str) -> str:
    [line] = [line for line in text.splitlines() if needle in line]
    return line


def _cell_after(text: str, label: str) -> str:
    """What follows ``label`` on its line, up to the panel's border."""
    return _line_with(text, label).split(label, 1)[1].split("│")[0].strip()


def _styles_of(frame: DemoFrame, fragment: str) -> list[str]:
    console = _console()
    return [
        str(segment.style)
        for segment in console.render(render_frame(frame))
        if fragment in segment.text
    ]


def test_dashboard_shows_chapter_figures_and_load() -> None:
    text = _text(_frame())
    for expected in (
        "+01:35",
        "canary — v2 answers wrongly with 200 OK",
        "metrics from Prometheus",
        "41.2",
        "250 ms",
        "≤ 300 ms",
        "0.20%",
        "≤ 1.00%",
        "87.3%",
        "1,234 / 3",
    ):
        assert expected in text


def test_dashboard_names_the_scraper_when_prometheus_is_absent() -> None:
    assert "metrics from the built-in scraper" in _text(_frame(source="scraper"))


@pytest.mark.parametrize("label", ["requests/s", "p99 latency", "error rate", "accuracy"], ids=str)
def test_missing_figure_renders_as_dash_never_zero(label: str) -> None:
    assert _cell_after(_text(NO_DATA), label).startswith("—")


def test_no_data_frame_shows_no_zero_figures() -> None:
    text = _text(NO_DATA)
    for zero in ("0.0", " 0 ms", " 0.00%", " 0%"):
        assert zero not in text
    region = _line_with(text, "eu-west")
    assert region.split("allowed", 1)[1].split()[:3] == ["—", "—", "—"]


@pytest.mark.parametrize(
    ("changes", "fragment", "red"),
    [
        ({"p99_ms": 350.0}, "350 ms", True),
        ({"p99_ms": 250.0}, "250 ms", False),
        ({"error_ratio": 0.05}, "5.00%", True),
        ({"error_ratio": 0.002}, "0.20%", False),
    ],
    ids=["p99-over", "p99-within", "errors-over", "errors-within"],
)
def test_figure_over_its_slo_is_red(changes: dict[str, Any], fragment: str, red: bool) -> None:
    styles = _styles_of(_frame(**changes), fragment)
    assert styles
    assert all(("red" in style) == red for style in styles)


def test_version_split_marks_stable_and_canary() -> None:
    text = _text(_frame())
    assert "stable  90%" in _line_with(text, "│ v1 ")
    assert "canary  10%" in _line_with(text, "│ v2 ")


def test_version_without_traffic_data_shows_dash() -> None:
    text = _text(_frame(traffic={"v1": 1.0}))
    assert "canary  —" in _line_with(text, "│ v2 ")


@pytest.mark.parametrize(
    ("region", "marker", "figures"),
    [
        ("eu-west", "allowed", ["2", "70%", "120"]),
        ("us-east", "allowed", ["1", "30%", "415"]),
        ("ap-south", "not allowed", ["—", "—", "640"]),
    ],
    ids=str,
)
def test_regions_show_policy_replicas_weight_and_carbon(
    region: str, marker: str, figures: list[str]
) -> None:
    line = _line_with(_text(_frame()), f" {region} ")
    after = line.split(region, 1)[1]
    assert after.split()[: len(marker.split())] == marker.split()
    assert after.split(marker, 1)[1].split()[:3] == figures


def test_newest_decisions_shown_oldest_trimmed() -> None:
    decisions = tuple(_decision(i) for i in range(MAX_DECISIONS + 2))
    text = _text(_frame(decisions=decisions))
    assert "reason-00" not in text
    assert "reason-01" not in text
    shown = [f"reason-{i:02d}" for i in range(2, MAX_DECISIONS + 2)]
    positions = [text.index(reason) for reason in shown]
    assert positions == sorted(positions)
    # decided at T0 + 9, 86 s before the frame (T0 + 95, 95 s into the demo)
    assert "+00:09" in _line_with(text, "reason-09")


def test_text_from_the_app_is_shown_verbatim_not_as_markup() -> None:
    line = DecisionLine(T0 + 90, "rollback [v2]", "failed", "p99 [bold]350[/] > [/red] SLO")
    text = _text(_frame(decisions=(line,), chapter="[red]x", traffic={"[v3]": 1.0}))
    for verbatim in ("rollback [v2]", "p99 [bold]350[/] > [/red] SLO", "[red]x", "[v3]"):
        assert verbatim in text


def test_outage_banner_only_while_metrics_are_out() -> None:
    assert "METRICS OUTAGE: prometheus down 12s" in _text(_frame(outage="prometheus down 12s"))
    assert "OUTAGE" not in _text(_frame())


def test_narrow_terminal_stacks_the_panels() -> None:
    console = Console(record=True, width=80, file=io.StringIO())
    console.print(render_frame(_frame()))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "p99 latency" in text
    assert "not allowed" in text


def test_live_view_shows_the_latest_frame() -> None:
    console = _console()
    with LiveView(console) as view:
        view.update(_frame(chapter="steady"))
        view.update(_frame(chapter="ramp"))
    text = console.export_text()
    assert "ramp" in text


def test_headless_line_carries_the_key_figures() -> None:
    line = format_headless(_frame(p99_ms=350.0, outage="prometheus down"))
    for expected in (
        "+01:35 canary",
        "rps 41.2",
        "p99 350 ms (slo 300 ms) OVER",
        "errors 0.20% (slo 1.00%) |",
        "accuracy 87.3%",
        "v1 90% (stable), v2 10% (canary)",
        "eu-west replicas=2 weight=70% carbon=120g",
        "ap-south (not allowed) replicas=— weight=— carbon=640g",
        "sent 1234 failed 3",
        "metrics prometheus",
        "METRICS OUTAGE: prometheus down",
    ):
        assert expected in line


def test_headless_line_is_plain_single_line_text() -> None:
    for frame in (_frame(), NO_DATA, _frame(outage="gone")):
        line = format_headless(frame)
        assert "\x1b" not in line
        assert "\n" not in line
        assert Text.from_markup(line).plain == line  # safe to print through rich too


def test_headless_line_shows_dash_for_missing_figures() -> None:
    line = format_headless(NO_DATA)
    for expected in ("rps —", "p99 — (slo", "errors — (slo", "accuracy —", "split v1 —"):
        assert expected in line
    assert "OVER" not in line
    assert "0.0" not in line


def _run_headless(frames: list[DemoFrame], every_s: float = 5.0) -> list[str]:
    stream = io.StringIO()
    with HeadlessView(stream, every_s=every_s) as view:
        for frame in frames:
            view.update(frame)
    return stream.getvalue().splitlines()


def _at(t: float, **changes: Any) -> DemoFrame:
    return _frame(time=T0 + t, elapsed_s=t, **changes)


@pytest.mark.parametrize(
    ("times", "printed"),
    [
        ([float(t) for t in range(13)], ["+00:00", "+00:05", "+00:10"]),
        ([0.0, 4.9, 5.0, 9.0, 30.0], ["+00:00", "+00:05", "+00:30"]),
        ([0.0, 0.5, 1.0], ["+00:00"]),
    ],
    ids=["every-second", "uneven", "burst"],
)
def test_headless_status_line_at_most_once_per_period_of_frame_time(
    times: list[float], printed: list[str]
) -> None:
    lines = _run_headless([_at(t, decisions=()) for t in times])
    status = [line.split()[0] for line in lines if " | rps " in line]
    assert status == printed


def test_headless_prints_each_decision_once_as_it_appears() -> None:
    d1, d2, d3 = _decision(1), _decision(2), _decision(3)
    frames = [
        _at(0.0, decisions=()),
        _at(1.0, decisions=(d1,)),
        _at(2.0, decisions=(d1,)),
        _at(3.0, decisions=(d1, d2)),
        _at(4.0, decisions=(d2, d3)),
        _at(5.0, decisions=(d2, d3)),
    ]
    lines = _run_headless(frames)
    decided = [line for line in lines if " decision " in line]
    assert [line.split(" decision ")[1] for line in decided] == [
        "act-01 (updated): reason-01",
        "act-02 (updated): reason-02",
        "act-03 (updated): reason-03",
    ]
    assert all("\x1b" not in line for line in lines)


def test_headless_announces_chapters_and_outages_once() -> None:
    frames = [
        _at(0.0, chapter="steady", chapter_note="baseline"),
        _at(1.0, chapter="steady", chapter_note="baseline"),
        _at(2.0, chapter="ramp", chapter_note="traffic triples", outage="prometheus down 1s"),
        _at(3.0, chapter="ramp", chapter_note="traffic triples", outage="prometheus down 2s"),
        _at(4.0, chapter="ramp", chapter_note="traffic triples"),
    ]
    events = [line for line in _run_headless(frames, every_s=60.0) if " | rps " not in line]
    events = [line for line in events if " decision " not in line]
    assert events == [
        "+00:00 chapter steady: baseline",
        "+00:02 chapter ramp: traffic triples",
        "+00:02 metrics outage: prometheus down 1s",
        "+00:04 metrics back",
    ]
