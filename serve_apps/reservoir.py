"""A bounded store of recent raw requests per version, for the controller's drift tests."""

from __future__ import annotations

from collections import deque

from autoops.contract import SampleRecord


class SampleReservoir:
    """The newest ``per_version`` samples of each version; older ones are dropped."""

    def __init__(self, per_version: int = 2000) -> None:
        if per_version < 1:
            raise ValueError(f"per_version must be >= 1, got {per_version}")
        self._per_version = per_version
        self._samples: dict[str, deque[SampleRecord]] = {}

    def add(self, record: SampleRecord) -> None:
        """Keep ``record``, dropping its version's oldest sample when full."""
        samples = self._samples.get(record.version)
        if samples is None:
            samples = self._samples[record.version] = deque(maxlen=self._per_version)
        samples.append(record)

    def recent(self, version: str, limit: int) -> list[SampleRecord]:
        """Up to ``limit`` of ``version``'s newest samples, newest last."""
        samples = self._samples.get(version)
        if samples is None or limit <= 0:
            return []
        start = max(0, len(samples) - limit)
        return [samples[i] for i in range(start, len(samples))]

    def versions(self) -> list[str]:
        """Versions that have samples, sorted."""
        return sorted(self._samples)

    def __len__(self) -> int:
        return sum(len(s) for s in self._samples.values())
