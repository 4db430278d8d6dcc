"""The policy language: schema, the one YAML loader, JSON Schema export."""

from autoops.policy.loader import load_policy, policy_json_schema, validate_files
from autoops.policy.schema import Policy

__all__ = ["Policy", "load_policy", "policy_json_schema", "validate_files"]
