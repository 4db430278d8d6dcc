"""``--record``: every snapshot, finding and decision the controller saw, as JSON lines.

A recording is the input of a counterfactual replay: the same observations, another policy.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from autoops.model import Decision, Finding, Snapshot


def to_jsonable(value: Any) -> Any:
    """Plain JSON data for frozen dataclasses, enums, mappings and tuples."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


class Recorder:
    """Appends one JSON line per pass to a file (flushed each time, so a crash loses none)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(
        self, snapshot: Snapshot, findings: tuple[Finding, ...], decision: Decision
    ) -> None:
        """Record one pass."""
        line = json.dumps(
            {
                "snapshot": to_jsonable(snapshot),
                "findings": to_jsonable(findings),
                "decision": to_jsonable(decision),
            },
            sort_keys=True,
        )
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()
