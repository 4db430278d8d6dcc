"""The one JSON shape every benchmark writes, and the helpers that fill it."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["BenchResult", "machine_info", "summarize", "timed_runs", "write_result"]

# Packages whose versions matter to a benchmark; read from metadata, never imported.
_VERSIONED_PACKAGES = ("autoops", "ray", "torch", "numpy", "scikit-learn", "pydantic")


@dataclasses.dataclass(frozen=True)
class BenchResult:
    """One benchmark run: what ran, on what, what it measured, and the peer figures."""

    name: str
    config: dict[str, Any]
    machine: dict[str, Any]
    results: dict[str, Any]
    anchors: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a plain dict with exactly the five top-level keys."""
        return {
            "name": self.name,
            "config": self.config,
            "machine": self.machine,
            "results": self.results,
            "anchors": self.anchors,
        }

    def to_json(self) -> str:
        """Return the result as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)


def _cpu_model() -> str | None:
    """Return the CPU model name from /proc/cpuinfo, or the platform's guess, or None."""
    cpuinfo = Path("/proc/cpuinfo")
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("model name", "Hardware", "cpu model"):
            return value.strip()
    return platform.processor() or None


def _package_version(name: str) -> str | None:
    """Return an installed distribution's version, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Describe the machine and software versions without importing heavy packages."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "packages": {name: _package_version(name) for name in _VERSIONED_PACKAGES},
    }


def write_result(result: BenchResult, output: Path | None = None) -> None:
    """Print the result as JSON to stdout and, when ``output`` is given, write it there too."""
    text = result.to_json()
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n", encoding="utf-8")


def timed_runs(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times; return seconds per call."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def _percentile(sorted_samples: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0..100) by linear interpolation between closest ranks."""
    if len(sorted_samples) == 1:
        return sorted_samples[0]
    pos = (len(sorted_samples) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_samples) - 1)
    frac = pos - lo
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * frac


def summarize(samples: Sequence[float]) -> dict[str, float | int]:
    """Summarize durations in seconds as n, median, p90, min, max and mean in milliseconds."""
    if not samples:
        raise ValueError("summarize needs at least one sample")
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_ms": statistics.median(ordered) * 1000.0,
        "p90_ms": _percentile(ordered, 90.0) * 1000.0,
        "min_ms": ordered[0] * 1000.0,
        "max_ms": ordered[-1] * 1000.0,
        "mean_ms": statistics.fmean(ordered) * 1000.0,
    }
