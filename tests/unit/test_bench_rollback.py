"""The rollback benchmark's pure parts: its policy, its failed-share and failure windows."""

from __future__ import annotations

import json
from pathlib import Path

from autoops.bench.rollback import (
    RollbackBenchConfig,
    bench_policy,
    failed_share,
    failure_window,
)
from autoops.policy.loader import load_policy


def _ledger(tmp_path: Path, chunks: list[dict[str, object]]) -> Path:
    path = tmp_path / "load.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in chunks), encoding="utf-8")
    return path


def test_the_bench_policy_is_valid_and_carries_the_latency_limit(tmp_path: Path) -> None:
    config = RollbackBenchConfig(max_latency_increase=0.15)
    policy = load_policy(bench_policy(config, tmp_path))
    assert policy.rollout.max_latency_increase == 0.15
    assert policy.metadata.name == "bench-rollback"
    assert policy.rollout.fast_rollback_burn_rate == config.fast_rollback_burn_rate
    assert [g.short_window_s for g in policy.rollout.burn_rate_gates] == [10]


def test_failed_share_counts_only_the_chunks_that_overlap_the_window(tmp_path: Path) -> None:
    ledger = _ledger(
        tmp_path,
        [
            {"sent": 10, "failed": 5, "started": 0.0, "ended": 2.0},  # before
            {"sent": 20, "failed": 1, "started": 2.0, "ended": 4.5},  # overlaps the start
            {"sent": 30, "failed": 2, "started": 5.0, "ended": 7.0},  # inside
            {"chunk": 4, "error": "connect failed"},  # nothing known sent
            {"sent": 40, "failed": 9, "started": 11.0, "ended": 13.0},  # after
        ],
    )
    assert failed_share(ledger, start=4.0, end=10.0) == (50, 3)
    assert failed_share(ledger, start=20.0, end=30.0) == (0, 0)


def test_the_failure_window_runs_from_the_first_fallback_to_the_last_canary_request() -> None:
    answers = [
        (10.0, "v1", "primary"),
        (10.5, "v2", "primary"),  # the canary answers before its fault is live
        (12.0, "v1", "breaker_fallback"),  # the canary's first failed call, answered by v1
        (11.8, "v2", "primary"),  # a slower answer to an earlier request
        (13.0, "v1", "breaker_fallback"),
        (14.0, "v2", "primary"),  # the last request the ingress routed to the canary
        (20.0, "v1", "primary"),
    ]
    assert failure_window(answers, "v2") == (12.0, 14.0)


def test_the_failure_window_is_unknown_without_a_failed_canary_request() -> None:
    assert failure_window([(1.0, "v2", "primary")], "v2") == (None, 1.0)
    assert failure_window([], "v2") == (None, None)
