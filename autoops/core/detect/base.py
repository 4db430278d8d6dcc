"""The river-style streaming detector interface every anomaly detector follows."""

from __future__ import annotations

from typing import Protocol, Self, runtime_checkable


@runtime_checkable
class StreamingDetector(Protocol):
    """A causal detector: hyperparameters in the constructor, state in ``reset()``.

    ``update(x)`` consumes one observation (``None`` for a missing point) and returns the
    detector itself; ``score`` is the anomaly score in [0, 1] after the last update, using only
    observations up to it; ``alarm`` says whether the score reached the frozen threshold.
    """

    def update(self, x: float | None) -> Self:
        """Consume one observation (None when the point is missing)."""
        ...

    @property
    def score(self) -> float:
        """Anomaly score in [0, 1] of the last observation."""
        ...

    @property
    def alarm(self) -> bool:
        """True when the score reached the detector's threshold."""
        ...

    def reset(self) -> None:
        """Forget everything seen so far."""
        ...
