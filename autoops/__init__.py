"""AutoOps: a self-healing controller for AI model serving on Ray Serve."""

__version__ = "0.1.0"
