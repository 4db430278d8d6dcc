"""The policy language: schema, the one YAML loader, JSON Schema export."""

from autoops.policy.schema import Policy

__all__ = ["Policy"]
