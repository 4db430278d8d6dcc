"""A bounded load generator for the serving stack, with labelled feedback.

It sends only to 127.0.0.1, stops by itself after a bounded number of requests and a bounded
time, uses held-out digits (so every answer can be scored), can shift the inputs by some standard
deviations, and counts what it sent, what failed and what was right, per version.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import numpy.typing as npt

from autoops.contract import FEEDBACK_ROUTE, PREDICT_ROUTE, VERSION_HEADER, PredictResponse
from serve_apps.faults import shift_inputs
from serve_apps.models import load_digits_split

MAX_REQUESTS = 1_000_000
"""Most requests one run may send."""
MAX_SECONDS = 3600.0
"""Longest one run may last, seconds."""
MAX_CONCURRENCY = 256
"""Most requests in flight at once."""
LOOPBACK = "127.0.0.1"
"""The only host the generator sends to."""


@dataclass(frozen=True)
class LoadConfig:
    """One bounded run: where, how much, how fast, and what inputs."""

    url: str
    requests: int = 100
    max_seconds: float = 60.0
    concurrency: int = 4
    rate_per_s: float | None = None
    rows_per_request: int = 1
    input_shift: float = 0.0
    feedback_fraction: float = 1.0
    token: str | None = None
    header_version: str | None = None
    seed: int = 0
    timeout_s: float = 30.0
    start_row: int | None = None
    """Draw held-out rows in a fixed shuffled cycle from this position (no repeats within one
    pass of the split, so drift tests see no duplicated inputs); None: seeded random draws."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "http" or parts.hostname != LOOPBACK:
            raise ValueError(
                f"url: the load generator sends only to http://{LOOPBACK}, got {self.url!r}"
            )
        checks = {
            "requests": 1 <= self.requests <= MAX_REQUESTS,
            "max_seconds": 0 < self.max_seconds <= MAX_SECONDS,
            "concurrency": 1 <= self.concurrency <= MAX_CONCURRENCY,
            "rate_per_s": self.rate_per_s is None or self.rate_per_s > 0,
            "rows_per_request": 1 <= self.rows_per_request <= 256,
            "feedback_fraction": 0 <= self.feedback_fraction <= 1,
            "input_shift": -10 <= self.input_shift <= 10,
            "timeout_s": self.timeout_s > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"{bad[0]}: out of range in {self}")


@dataclass
class VersionTally:
    """What one version answered during a run."""

    answered: int = 0
    rows: int = 0
    correct: int = 0
    feedback_sent: int = 0
    paths: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Exchange:
    """One answered request: the inputs sent, their true labels, and the answer."""

    inputs: npt.NDArray[np.float32]
    labels: list[int]
    response: PredictResponse
    latency_ms: float


@dataclass
class LoadReport:
    """What one run sent, what failed, and per-version answers and accuracy."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    failed_by_version: Counter[str] = field(default_factory=Counter)
    versions: dict[str, VersionTally] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    feedback_failed: int = 0
    elapsed_s: float = 0.0
    exchanges: list[Exchange] = field(default_factory=list)

    def share(self, version: str) -> float:
        """The share of answered requests that ``version`` answered."""
        return (
            self.versions[version].answered / self.ok
            if self.ok and version in self.versions
            else 0.0
        )

    def accuracy(self, version: str) -> float | None:
        """The share of ``version``'s answered rows that were right (None when it answered none)."""
        tally = self.versions.get(version)
        return tally.correct / tally.rows if tally and tally.rows else None

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (no exchanges)."""
        ordered = sorted(self.latencies_ms)
        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "failed_by_version": dict(self.failed_by_version),
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_rps": round(self.ok / self.elapsed_s, 1) if self.elapsed_s > 0 else None,
            "latency_p50_ms": _quantile(ordered, 0.5),
            "latency_p99_ms": _quantile(ordered, 0.99),
            "versions": {
                v: {
                    "answered": t.answered,
                    "rows": t.rows,
                    "accuracy": round(t.correct / t.rows, 4) if t.rows else None,
                    "feedback_sent": t.feedback_sent,
                    "paths": dict(t.paths),
                }
                for v, t in sorted(self.versions.items())
            },
            "feedback_failed": self.feedback_failed,
        }


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


class _Inputs:
    """Held-out digits in a seeded order, optionally shifted."""

    def __init__(self, seed: int, shift: float, start_row: int | None = None) -> None:
        split = load_digits_split(0)
        features = np.asarray(split.X_test, dtype=np.float32)
        if shift:
            reference_sd = np.asarray(split.X_train, dtype=np.float64).std(axis=0)
            shifted = shift_inputs(features, shift, np.random.default_rng(seed), reference_sd)
            features = shifted.astype(np.float32)
        self.X = features
        self.y = np.asarray(split.y_test, dtype=np.int64)
        self._rng = random.Random(seed)
        self._order: list[int] | None = None
        self._cursor = 0
        if start_row is not None:
            self._order = list(range(len(self.X)))
            random.Random(0).shuffle(self._order)
            self._cursor = start_row % len(self._order)

    def draw(self, rows: int) -> tuple[npt.NDArray[np.float32], list[int]]:
        if self._order is not None:
            picks = []
            for _ in range(rows):
                picks.append(self._order[self._cursor])
                self._cursor = (self._cursor + 1) % len(self._order)
        else:
            picks = [self._rng.randrange(len(self.X)) for _ in range(rows)]
        return self.X[picks], [int(self.y[i]) for i in picks]


async def run_load(
    config: LoadConfig,
    keep_exchanges: bool = False,
    on_answer: Callable[[Exchange], None] | None = None,
) -> LoadReport:
    """Send the bounded load and return what happened (never raises for a failed request)."""
    inputs = _Inputs(config.seed, config.input_shift, config.start_row)
    report = LoadReport()
    feedback_rng = random.Random(config.seed + 1)
    headers = {"content-type": "application/json"}
    if config.token:
        headers["authorization"] = f"Bearer {config.token}"
    if config.header_version:
        headers[VERSION_HEADER] = config.header_version
    base = config.url.rstrip("/")
    pinned = config.header_version or "unrouted"  # a failed request names no version
    started = time.monotonic()
    deadline = started + config.max_seconds
    issued = 0
    interval = 1.0 / config.rate_per_s if config.rate_per_s else 0.0

    def next_slot() -> float | None:
        nonlocal issued
        if issued >= config.requests or time.monotonic() >= deadline:
            return None
        slot = started + issued * interval
        issued += 1
        return slot

    async def one(client: httpx.AsyncClient) -> None:
        rows, labels = inputs.draw(config.rows_per_request)
        body = json.dumps({"inputs": rows.tolist()})
        report.sent += 1
        t0 = time.monotonic()
        try:
            response = await client.post(base + PREDICT_ROUTE, content=body, headers=headers)
        except httpx.HTTPError as exc:
            report.failed += 1
            report.failed_by_version[pinned] += 1
            report.errors[type(exc).__name__] += 1
            return
        latency_ms = (time.monotonic() - t0) * 1000.0
        report.statuses[response.status_code] += 1
        if response.status_code != 200:
            report.failed += 1
            report.failed_by_version[pinned] += 1
            return
        answer = PredictResponse.model_validate_json(response.content)
        report.ok += 1
        report.latencies_ms.append(latency_ms)
        tally = report.versions.setdefault(answer.version, VersionTally())
        tally.answered += 1
        tally.rows += len(labels)
        tally.correct += sum(1 for p, y in zip(answer.predictions, labels, strict=True) if p == y)
        tally.paths[answer.path] += 1
        exchange = Exchange(rows, labels, answer, latency_ms)
        if keep_exchanges:
            report.exchanges.append(exchange)
        if on_answer is not None:
            on_answer(exchange)
        if config.feedback_fraction > 0 and feedback_rng.random() < config.feedback_fraction:
            await _feedback(client, base, headers, answer.request_id, labels, report, tally)

    async def worker(client: httpx.AsyncClient) -> None:
        while (slot := next_slot()) is not None:
            wait = slot - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                return
            await one(client)

    limits = httpx.Limits(max_connections=config.concurrency)
    async with httpx.AsyncClient(timeout=config.timeout_s, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(config.concurrency)))
    report.elapsed_s = time.monotonic() - started
    return report


async def _feedback(
    client: httpx.AsyncClient,
    base: str,
    headers: dict[str, str],
    request_id: str,
    labels: list[int],
    report: LoadReport,
    tally: VersionTally,
) -> None:
    body = json.dumps({"request_id": request_id, "label": labels})
    try:
        response = await client.post(base + FEEDBACK_ROUTE, content=body, headers=headers)
    except httpx.HTTPError:
        report.feedback_failed += 1
        return
    if response.status_code == 200:
        tally.feedback_sent += 1
    else:
        report.feedback_failed += 1


def run_load_sync(
    config: LoadConfig,
    keep_exchanges: bool = False,
    on_answer: Callable[[Exchange], None] | None = None,
) -> LoadReport:
    """run_load from synchronous code (a fresh event loop)."""
    return asyncio.run(run_load(config, keep_exchanges=keep_exchanges, on_answer=on_answer))


def main(argv: list[str] | None = None) -> int:
    """``python -m serve_apps.loadgen --port 8000 --requests 500``: print the run's summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rate", type=float, default=None, help="requests per second")
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--input-shift", type=float, default=0.0)
    parser.add_argument("--feedback", type=float, default=1.0, help="share given feedback")
    parser.add_argument("--token", default=None)
    parser.add_argument("--version", default=None, help=f"send {VERSION_HEADER}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        config = LoadConfig(
            url=f"http://{LOOPBACK}:{args.port}",
            requests=args.requests,
            max_seconds=args.max_seconds,
            concurrency=args.concurrency,
            rate_per_s=args.rate,
            rows_per_request=args.rows,
            input_shift=args.input_shift,
            feedback_fraction=args.feedback,
            token=args.token,
            header_version=args.version,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    report = run_load_sync(config)
    print(json.dumps(report.summary(), indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
