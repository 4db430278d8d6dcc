"""Counterfactual replay: another policy over a live recording (``autoops run --record``).

Each recorded pass gives ``decide`` what the live controller saw: the time, the snapshot, the
findings. Two ways to feed it the controller state:

- ``step`` (default): the state the live controller had before that pass. Each pass answers
  "given exactly that moment, what would the new policy have done?" and differences do not
  compound.
- ``rolling``: the replay's own state, carried from pass to pass from the first recorded one,
  as if the new policy had been running. Its later passes still see the world the *live*
  policy shaped (the applied state, the traffic split): a recording cannot show what the
  serving system would have done under other actions.

Replaying a recording with the policy that made it reproduces every recorded decision.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from autoops.core.decide import decide
from autoops.core.state import ControllerState, DecisionContext
from autoops.model import Action, Decision, Finding, Snapshot
from autoops.policy.schema import Policy
from autoops.regions.model import RegionCatalogue
from autoops.runtime.record import RECORD_FORMAT
from autoops.store.codec import (
    action_to_json,
    decision_from_json,
    finding_from_json,
    snapshot_from_json,
    state_from_json,
)

ReplayMode = Literal["step", "rolling"]


class RecordingError(ValueError):
    """A recording that cannot be replayed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class RecordedPass:
    """One pass of the live controller as recorded."""

    line: int
    now: float
    policy: str
    state: ControllerState
    paused: bool
    approvals: frozenset[str]
    snapshot: Snapshot
    findings: tuple[Finding, ...]
    decision: Decision


def _parse_line(data: Any) -> tuple[Any, ...]:
    if not isinstance(data, dict):
        raise ValueError("a line must be a JSON object")
    if data.get("format") != RECORD_FORMAT:
        raise ValueError(
            f"format {data.get('format')!r} is not {RECORD_FORMAT} "
            "(record again with this version of autoops run --record)"
        )
    findings = data.get("findings", [])
    if not isinstance(findings, list):
        raise ValueError("findings: must be a list")
    return (
        float(data["now"]),
        str(data["policy"]),
        state_from_json(data["state"]),
        bool(data.get("paused", False)),
        frozenset(str(a) for a in data.get("approvals", [])),
        snapshot_from_json(data["snapshot"]),
        tuple(finding_from_json(f, f"findings[{i}]") for i, f in enumerate(findings)),
        decision_from_json(data["decision"]),
    )


def read_recording(path: Path) -> list[RecordedPass]:
    """Every pass in ``path``; RecordingError naming the file, line and field when one is bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read the recording ({exc.strerror})") from None
    passes = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            passes.append(RecordedPass(number, *_parse_line(json.loads(raw))))
        except json.JSONDecodeError as exc:
            raise RecordingError(f"{path}:{number}: not JSON ({exc.msg})") from None
        except KeyError as exc:
            raise RecordingError(f"{path}:{number}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise RecordingError(f"{path}:{number}: {exc}") from None
    if not passes:
        raise RecordingError(f"{path}: the recording holds no pass")
    return passes


def _action_keys(actions: Sequence[Action]) -> list[str]:
    return sorted(json.dumps(action_to_json(a), sort_keys=True) for a in actions)


@dataclass(frozen=True, slots=True)
class Difference:
    """A pass where the replayed policy would have acted otherwise."""

    line: int
    time: float
    recorded: tuple[Action, ...]
    replayed: tuple[Action, ...]
    recorded_reasons: tuple[str, ...]
    replayed_reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON data for the report."""
        return {
            "line": self.line,
            "time": self.time,
            "recorded": [action_to_json(a) for a in self.recorded],
            "replayed": [action_to_json(a) for a in self.replayed],
            "recorded_reasons": list(self.recorded_reasons),
            "replayed_reasons": list(self.replayed_reasons),
        }


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay found: how many passes, and each one that differs."""

    passes: int
    mode: ReplayMode
    recorded_policy: str
    replayed_policy: str
    differences: tuple[Difference, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON data for ``--json``."""
        return {
            "passes": self.passes,
            "mode": self.mode,
            "recorded_policy": self.recorded_policy,
            "replayed_policy": self.replayed_policy,
            "differences": [d.to_json() for d in self.differences],
        }


def replay(
    passes: Sequence[RecordedPass],
    policy: Policy,
    catalogue: RegionCatalogue,
    mode: ReplayMode = "step",
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Run ``policy`` over the recorded passes and list where its actions differ."""
    differences = []
    state = passes[0].state if passes else ControllerState()
    for n, recorded in enumerate(passes):
        ctx = DecisionContext(
            now=recorded.now,
            policy=policy,
            snapshot=recorded.snapshot,
            state=recorded.state if mode == "step" else state,
            catalogue=catalogue,
            findings=recorded.findings,
            approvals=recorded.approvals,
            paused=recorded.paused,
        )
        decision, state = decide(ctx)
        if _action_keys(decision.actions) != _action_keys(recorded.decision.actions):
            differences.append(
                Difference(
                    recorded.line,
                    recorded.now,
                    tuple(recorded.decision.actions),
                    tuple(decision.actions),
                    tuple(recorded.decision.reasons),
                    tuple(decision.reasons),
                )
            )
        if progress is not None:
            progress(n + 1)
    return ReplayReport(
        passes=len(passes),
        mode=mode,
        recorded_policy=passes[0].policy if passes else "",
        replayed_policy=policy.metadata.name,
        differences=tuple(differences),
    )
