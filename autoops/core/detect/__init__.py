"""Detectors (pure, no I/O): anomaly scores on metric series, drift tests, canary judges.

Findings flow into ``decide(ctx)``; the decision core has no statistics of its own.
"""

from autoops.core.detect.base import StreamingDetector

__all__ = ["StreamingDetector"]
