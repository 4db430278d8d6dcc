"""Durable controller state, the hash-chained audit log and leadership leases."""

from autoops.store.codec import (
    action_from_json,
    action_to_json,
    decision_from_json,
    decision_to_json,
    state_from_json,
    state_to_json,
)
from autoops.store.lease import Lease, RayKVLease, SQLiteLease
from autoops.store.sqlite import (
    SavedState,
    SQLiteStore,
    StoreError,
    VerifyResult,
    default_head_path,
    read_head,
)

__all__ = [
    "Lease",
    "RayKVLease",
    "SQLiteLease",
    "SQLiteStore",
    "SavedState",
    "StoreError",
    "VerifyResult",
    "action_from_json",
    "action_to_json",
    "decision_from_json",
    "decision_to_json",
    "default_head_path",
    "read_head",
    "state_from_json",
    "state_to_json",
]
