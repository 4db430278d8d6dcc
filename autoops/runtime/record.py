"""``--record``: every pass's context and decision, as JSON lines, for counterfactual replay.

A line holds what ``decide`` was given (time, snapshot, findings, the state before, pause and
approvals) and what it decided, in the store codec's exact JSON form (NaN and infinities kept),
so ``autoops replay`` can run another policy over the same observations.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any

from autoops.core.state import DecisionContext
from autoops.model import Decision
from autoops.store.codec import decision_to_json, state_to_json, to_json_data

RECORD_FORMAT = 2
"""The recording's line format; ``autoops replay`` refuses others by name."""


def record_line(ctx: DecisionContext, decision: Decision) -> dict[str, Any]:
    """One pass as JSON data."""
    return {
        "format": RECORD_FORMAT,
        "now": ctx.now,
        "policy": ctx.policy.metadata.name,
        "state": state_to_json(ctx.state),
        "paused": ctx.paused,
        "approvals": sorted(ctx.approvals),
        "snapshot": to_json_data(ctx.snapshot),
        "findings": to_json_data(ctx.findings),
        "decision": decision_to_json(decision),
    }


class Recorder:
    """Appends one JSON line per pass to a file (flushed each time, so a crash loses none)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, ctx: DecisionContext, decision: Decision) -> None:
        """Record one pass."""
        line = json.dumps(record_line(ctx, decision), sort_keys=True, allow_nan=True)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()
