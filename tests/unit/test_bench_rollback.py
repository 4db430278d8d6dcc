"""The rollback benchmark's pure parts: its policy and its failed-share window."""

from __future__ import annotations

import json
from pathlib import Path

from autoops.bench.rollback import RollbackBenchConfig, bench_policy, failed_share
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
