"""The demo's terminal view: a live rich dashboard, or plain log lines for ``--headless``."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Protocol, TextIO

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from autoops.demo.frame import DecisionLine, DemoFrame

NO_DATA = "—"
MAX_DECISIONS = 8
BAR_WIDTH = 16
WIDE = 100  # columns from which the panels sit side by side
_SOURCES = {"prometheus": "Prometheus", "scraper": "the built-in scraper"}


def _num(value: float | None, spec: str, unit: str = "") -> str:
    """``value`` formatted with ``spec``, or the no-data dash."""
    return NO_DATA if value is None else f"{value:{spec}}{unit}"


def _clock(seconds: float) -> str:
    """``+mm:ss`` for a time into the demo."""
    sign = "-" if seconds < 0 else "+"
    minutes, secs = divmod(round(abs(seconds)), 60)
    return f"{sign}{minutes:02d}:{secs:02d}"


def _over(value: float | None, limit: float) -> bool:
    """Whether a measured value breaks its limit (no data never does)."""
    return value is not None and value > limit


def _against(value: float | None, limit: float, text: str) -> Text:
    """A measured figure, red when over its limit, green within it, dim without data."""
    if value is None:
        return Text(NO_DATA, style="dim")
    return Text(text, style="bold red" if _over(value, limit) else "green")


def _bar(share: float | None, style: str) -> Text:
    """A fixed-width bar for a share in [0, 1]; empty without data."""
    filled = 0 if share is None else max(0, min(BAR_WIDTH, round(share * BAR_WIDTH)))
    return Text.assemble(("█" * filled, style), ("·" * (BAR_WIDTH - filled), "dim"))


def _role(frame: DemoFrame, version: str) -> str:
    """``stable``, ``canary`` or nothing, for a version."""
    if version == frame.stable_version:
        return "stable"
    return "canary" if version == frame.canary_version else ""


def _header(frame: DemoFrame) -> Text:
    source = _SOURCES.get(frame.source, frame.source)
    return Text.assemble(
        (f"{_clock(frame.elapsed_s)}  ", "bold"),
        (frame.chapter, "bold cyan"),
        f" — {frame.chapter_note}\n",
        (f"metrics from {source}", "dim"),
    )


def _service(frame: DemoFrame) -> Table:
    table = Table(box=None, show_header=True, pad_edge=False)
    for column in ("", "now", "target"):
        table.add_column(column, no_wrap=True)
    table.add_row("requests/s", _num(frame.request_rate, ".1f"), "")
    table.add_row(
        "p99 latency",
        _against(frame.p99_ms, frame.slo_p99_ms, _num(frame.p99_ms, ".0f", " ms")),
        f"≤ {frame.slo_p99_ms:g} ms",
    )
    table.add_row(
        "error rate",
        _against(frame.error_ratio, frame.slo_error_rate, _num(frame.error_ratio, ".2%")),
        f"≤ {frame.slo_error_rate:.2%}",
    )
    table.add_row("accuracy", _num(frame.accuracy, ".1%"), "")
    table.add_row(
        "load sent/failed",
        Text.assemble(f"{frame.sent:,} / ", (f"{frame.failed:,}", "red" if frame.failed else "")),
        "",
    )
    return table


def _versions(frame: DemoFrame) -> Table:
    table = Table(box=None, show_header=True, pad_edge=False)
    for column in ("version", "role", "share", "split"):
        table.add_column(column)
    for version in frame.versions:
        role = _role(frame, version)
        share = frame.traffic.get(version)
        style = {"stable": "green", "canary": "yellow"}.get(role, "cyan")
        table.add_row(
            Text(version), Text(role, style=style), _num(share, ".0%"), _bar(share, style)
        )
    return table


def _regions(frame: DemoFrame) -> Table:
    table = Table(box=None, show_header=True, pad_edge=False)
    for column in ("region", "policy", "replicas", "weight", "gCO2/kWh"):
        table.add_column(column, no_wrap=True)
    for region in frame.regions:
        allowed = region in frame.allowed_regions
        replicas = frame.replicas.get(region)
        weight = frame.region_weights.get(region)
        table.add_row(
            Text(region, style="" if allowed else "dim"),
            Text("allowed", style="green") if allowed else Text("not allowed", style="red"),
            NO_DATA if replicas is None else str(replicas),
            _num(weight, ".0%"),
            _num(frame.carbon.get(region), ".0f"),
        )
    return table


def _decisions(frame: DemoFrame) -> RenderableType:
    shown = frame.decisions[-MAX_DECISIONS:]
    if not shown:
        return Text("no decisions yet", style="dim")
    table = Table(box=None, show_header=True, pad_edge=False, expand=True)
    table.add_column("at", no_wrap=True)
    table.add_column("action", max_width=36)
    table.add_column("outcome", no_wrap=True)
    table.add_column("why", ratio=1)
    for line in shown:
        failed = "fail" in line.outcome or "error" in line.outcome
        table.add_row(
            _clock(frame.decision_elapsed_s(line)),
            Text(line.action, style="bold"),
            Text(line.outcome, style="red" if failed else "green"),
            Text(line.reason),
        )
    return table


class _Dashboard:
    """The dashboard, side by side on a wide terminal and stacked on a narrow one."""

    def __init__(self, frame: DemoFrame) -> None:
        self.frame = frame

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        frame = self.frame
        parts: list[RenderableType] = [_header(frame)]
        if frame.outage is not None:
            parts.append(Text(f" METRICS OUTAGE: {frame.outage} ", style="bold white on red"))
        service = Panel(_service(frame), title="service")
        versions = Panel(_versions(frame), title="versions")
        regions = Panel(_regions(frame), title="regions")
        if options.max_width >= WIDE:
            top = Table.grid(expand=True, padding=(0, 1))
            top.add_column(ratio=2)
            top.add_column(ratio=3)
            top.add_row(service, Group(versions, regions))
            parts.append(top)
        else:
            parts.extend((service, versions, regions))
        parts.append(Panel(_decisions(frame), title=f"last {MAX_DECISIONS} decisions"))
        yield Panel(Group(*parts), title="AutoOps demo", border_style="blue")


def render_frame(frame: DemoFrame) -> RenderableType:
    """The dashboard for one frame: service figures, versions, regions and recent decisions."""
    return _Dashboard(frame)


def format_headless(frame: DemoFrame) -> str:
    """One plain log line (no colour, no markup) with the frame's key figures."""
    p99_over = " OVER" if _over(frame.p99_ms, frame.slo_p99_ms) else ""
    err_over = " OVER" if _over(frame.error_ratio, frame.slo_error_rate) else ""
    split = ", ".join(
        f"{v} {_num(frame.traffic.get(v), '.0%')}" + (f" ({r})" if (r := _role(frame, v)) else "")
        for v in frame.versions
    )
    regions = "; ".join(
        f"{region}{'' if region in frame.allowed_regions else ' (not allowed)'} "
        f"replicas={frame.replicas.get(region, NO_DATA)} "
        f"weight={_num(frame.region_weights.get(region), '.0%')} "
        f"carbon={_num(frame.carbon.get(region), '.0f', 'g')}"
        for region in frame.regions
    )
    outage = f" | METRICS OUTAGE: {frame.outage}" if frame.outage is not None else ""
    return (
        f"{_clock(frame.elapsed_s)} {frame.chapter} | "
        f"rps {_num(frame.request_rate, '.1f')} | "
        f"p99 {_num(frame.p99_ms, '.0f', ' ms')} (slo {frame.slo_p99_ms:g} ms){p99_over} | "
        f"errors {_num(frame.error_ratio, '.2%')} (slo {frame.slo_error_rate:.2%}){err_over} | "
        f"accuracy {_num(frame.accuracy, '.1%')} | split {split or NO_DATA} | "
        f"regions {regions or NO_DATA} | load sent {frame.sent} failed {frame.failed} | "
        f"metrics {frame.source}{outage}"
    )


def format_decision(frame: DemoFrame, line: DecisionLine) -> str:
    """One plain log line for a decision."""
    return (
        f"{_clock(frame.decision_elapsed_s(line))} decision {line.action} "
        f"({line.outcome}): {line.reason}"
    )


class DemoView(Protocol):
    """What the demo drives: a context manager fed one frame at a time."""

    def __enter__(self) -> DemoView: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def update(self, frame: DemoFrame) -> None:
        """Show ``frame``."""


class LiveView:
    """The live dashboard, redrawn every second while the demo runs."""

    def __init__(self, console: Console | None = None, refresh_per_second: float = 1.0) -> None:
        self._live = Live(console=console, refresh_per_second=refresh_per_second)

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()

    def update(self, frame: DemoFrame) -> None:
        """Show ``frame`` from the next refresh on."""
        self._live.update(render_frame(frame))


class HeadlessView:
    """Plain log lines: a status line per ``every_s`` of frame time, each event as it happens.

    Events (a new chapter, metrics going out or coming back, each new decision) are printed
    once, at the first frame that shows them.
    """

    def __init__(self, stream: TextIO | None = None, every_s: float = 5.0) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._every_s = every_s
        self._last_status: float | None = None
        self._chapter: str | None = None
        self._in_outage = False
        self._seen: set[DecisionLine] = set()

    def __enter__(self) -> HeadlessView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stream.flush()

    def update(self, frame: DemoFrame) -> None:
        """Print what ``frame`` brings that has not been printed yet."""
        lines: list[str] = []
        at = _clock(frame.elapsed_s)
        if frame.chapter != self._chapter:
            self._chapter = frame.chapter
            lines.append(f"{at} chapter {frame.chapter}: {frame.chapter_note}")
        if (frame.outage is not None) != self._in_outage:
            self._in_outage = frame.outage is not None
            gone = f"metrics outage: {frame.outage}" if self._in_outage else "metrics back"
            lines.append(f"{at} {gone}")
        if self._last_status is None or frame.time - self._last_status >= self._every_s:
            self._last_status = frame.time
            lines.append(format_headless(frame))
        for line in frame.decisions:
            if line not in self._seen:
                self._seen.add(line)
                lines.append(format_decision(frame, line))
        # A decision that left the frame's window never comes back: forget it.
        self._seen &= set(frame.decisions)
        if lines:
            self._stream.write("".join(f"{text}\n" for text in lines))
            self._stream.flush()
