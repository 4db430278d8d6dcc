"""A bounded store of recent raw requests per version, for the controller's drift tests."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence

from autoops.contract import SampleRecord


class SampleReservoir:
    """The newest ``per_version`` samples of each version; older ones are dropped."""

    def __init__(self, per_version: int = 2000) -> None:
        if per_version < 1:
            raise ValueError(f"per_version must be >= 1, got {per_version}")
        self._per_version = per_version
        self._samples: dict[str, deque[SampleRecord]] = {}
        self._labels: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._label_capacity = 4 * per_version

    def add(self, record: SampleRecord) -> None:
        """Keep ``record``, dropping its version's oldest sample when full."""
        samples = self._samples.get(record.version)
        if samples is None:
            samples = self._samples[record.version] = deque(maxlen=self._per_version)
        samples.append(record)

    def label(self, request_id: str, labels: Sequence[int]) -> None:
        """Attach true labels to a request's samples (one per row, in row order)."""
        self._labels[request_id] = tuple(int(x) for x in labels)
        self._labels.move_to_end(request_id)
        while len(self._labels) > self._label_capacity:
            self._labels.popitem(last=False)

    def recent(self, version: str, limit: int) -> list[SampleRecord]:
        """Up to ``limit`` of ``version``'s newest samples, newest last, with known labels."""
        samples = self._samples.get(version)
        if samples is None or limit <= 0:
            return []
        start = max(0, len(samples) - limit)
        out: list[SampleRecord] = []
        rows: dict[str, int] = {}
        for i in range(start, len(samples)):
            record = samples[i]
            rid = record.request_id
            if rid is not None and rid in self._labels:
                row = rows.get(rid, 0)
                rows[rid] = row + 1
                labels = self._labels[rid]
                if row < len(labels):
                    record = record.model_copy(update={"label": labels[row]})
            out.append(record)
        return out

    def versions(self) -> list[str]:
        """Versions that have samples, sorted."""
        return sorted(self._samples)

    def __len__(self) -> int:
        return sum(len(s) for s in self._samples.values())
