"""Leadership leases: two controllers for the same policy never both act.

A controller acts only while it holds its policy's lease (one lease per policy name, one
backend object for all of them). It calls ``acquire`` before its first pass and ``renew``
before every pass (a TTL of a few tick intervals); when ``renew`` returns False it has lost
the lease and must stop acting at once. A standby calls ``acquire`` every tick and takes over
once the leader's TTL lapses without a renewal (the leader died).

Times are wall-clock seconds passed in by the caller (``now``), so tests drive them. Leases are
only as good as the clocks: the holders' clocks must agree to well within the TTL.

Two backends: ``SQLiteLease`` (a row in the store's database: one host, any number of
processes) and ``RayKVLease`` (Ray's GCS key-value store: every node of one Ray cluster).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from autoops.store.sqlite import SQLiteStore

__all__ = [
    "KeyValue",
    "Lease",
    "RayInternalKV",
    "RayKVLease",
    "SQLiteLease",
]


class Lease(Protocol):
    """Time-limited leadership leases, one per name (a policy's name)."""

    def acquire(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        """Take lease ``name`` if it is free or lapsed (or extend it if ``holder`` has it)."""
        ...

    def renew(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        """Extend lease ``name`` that ``holder`` still holds; False once it lapsed or was taken."""
        ...

    def release(self, name: str, holder: str) -> bool:
        """Give lease ``name`` up at once (False if ``holder`` did not hold it)."""
        ...

    def holder(self, name: str, now: float) -> str | None:
        """Who holds lease ``name`` at ``now``, None when it is free or lapsed."""
        ...


def _check(name: str, holder: str, ttl_s: float) -> None:
    """Refuse an empty name or holder, or a TTL that is not a positive, finite number."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")
    if not isinstance(holder, str) or not holder:
        raise ValueError(f"holder: expected a non-empty string, got {holder!r}")
    if not (isinstance(ttl_s, int | float) and math.isfinite(ttl_s) and ttl_s > 0):
        raise ValueError(f"ttl_s: expected a positive number of seconds, got {ttl_s!r}")


# --------------------------------------------------------------------------- SQLite


class SQLiteLease:
    """Leases kept as rows of the store's ``lease`` table, changed compare-and-set.

    Every operation is one ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock
    before it reads the row: two processes on one host can never both see a lease free.
    Each change of holder increments the row's ``epoch`` (a fencing token).
    """

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def acquire(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        """Take lease ``name`` if it is free or lapsed (or extend it if ``holder`` has it)."""
        _check(name, holder, ttl_s)
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT holder, expires_at, epoch FROM lease WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO lease (name, holder, expires_at, epoch, acquired_at) "
                    "VALUES (?, ?, ?, 1, ?)",
                    (name, holder, now + ttl_s, now),
                )
                return True
            current, expires_at, epoch = row
            if current == holder and expires_at > now:
                conn.execute("UPDATE lease SET expires_at = ? WHERE name = ?", (now + ttl_s, name))
                return True
            if expires_at > now:
                return False
            conn.execute(
                "UPDATE lease SET holder = ?, expires_at = ?, epoch = ?, acquired_at = ? "
                "WHERE name = ?",
                (holder, now + ttl_s, epoch + 1, now, name),
            )
            return True

    def renew(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        """Extend lease ``name`` that ``holder`` still holds; False once it lapsed or was taken."""
        _check(name, holder, ttl_s)
        with self.store.transaction() as conn:
            cursor = conn.execute(
                "UPDATE lease SET expires_at = ? WHERE name = ? AND holder = ? AND expires_at > ?",
                (now + ttl_s, name, holder, now),
            )
            return cursor.rowcount == 1

    def release(self, name: str, holder: str) -> bool:
        """Give lease ``name`` up at once (False if ``holder`` did not hold it)."""
        with self.store.transaction() as conn:
            cursor = conn.execute(
                "UPDATE lease SET expires_at = 0 WHERE name = ? AND holder = ?", (name, holder)
            )
            return cursor.rowcount == 1

    def holder(self, name: str, now: float) -> str | None:
        """Who holds lease ``name`` at ``now``, None when it is free or lapsed."""
        found = (
            self.store.connection()
            .execute("SELECT holder FROM lease WHERE name = ? AND expires_at > ?", (name, now))
            .fetchone()
        )
        return None if found is None else str(found[0])

    def epoch(self, name: str) -> int:
        """How many times lease ``name`` changed hands (0 before it was first taken)."""
        found = (
            self.store.connection()
            .execute("SELECT epoch FROM lease WHERE name = ?", (name,))
            .fetchone()
        )
        return 0 if found is None else int(found[0])


# --------------------------------------------------------------------------- Ray GCS KV


class KeyValue(Protocol):
    """The few key-value operations ``RayKVLease`` needs (Ray's GCS internal KV offers them)."""

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, None when absent."""
        ...

    def put(self, key: str, value: bytes, overwrite: bool) -> bool:
        """Write ``key``; without ``overwrite`` only if absent. True when the key was absent."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix``."""
        ...


class RayInternalKV:
    """``KeyValue`` over ``ray.experimental.internal_kv`` in one namespace (Ray imported lazily).

    Needs a connected Ray (``ray.init(address=...)`` in this process, or code running in a job
    or task). ``ray.experimental.internal_kv`` is a private Ray API: it may change between Ray
    releases.
    """

    def __init__(self, namespace: str = "autoops") -> None:
        from ray.experimental import internal_kv

        self._kv: Any = internal_kv
        if not self._kv._internal_kv_initialized():
            raise RuntimeError("RayKVLease needs a connected Ray: call ray.init(address=...) first")
        self.namespace = namespace

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, None when absent."""
        value = self._kv._internal_kv_get(key, namespace=self.namespace)
        return None if value is None else bytes(value)

    def put(self, key: str, value: bytes, overwrite: bool) -> bool:
        """Write ``key``; without ``overwrite`` only if absent. True when the key was absent."""
        existed = self._kv._internal_kv_put(key, value, overwrite, namespace=self.namespace)
        return not bool(existed)

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        self._kv._internal_kv_del(key, namespace=self.namespace)

    def keys(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix``."""
        found = self._kv._internal_kv_list(prefix, namespace=self.namespace)
        return [k.decode() if isinstance(k, bytes) else str(k) for k in found]


@dataclass(frozen=True, slots=True)
class _Grant:
    """One generation of the lease: who holds it, until when."""

    gen: int
    holder: str
    expires_at: float


class RayKVLease:
    """A lease in Ray's GCS key-value store, for controllers on different nodes of one cluster.

    What the GCS KV offers: get, put (with or without overwrite), delete and list-by-prefix, each
    atomic on its own, and no compare-and-set. ``put(overwrite=False)`` is an atomic create: the
    GCS applies it to its table in one step (an in-memory map insert, or Redis ``HSETNX``), so
    of two racing creates of one key exactly one succeeds. The lease is built on that alone:

    - Each lease is a series of generations, one key each (``lease/<name>/<gen>``, the value
      holds the holder and its expiry). The current grant is the highest generation.
    - Taking a free or lapsed lease creates the next generation's key without overwrite; only
      one contender can create it, so a takeover has exactly one winner.
    - Only the holder of a generation overwrites its key (to renew or release it). A renewal
      then checks no higher generation appeared and that its own clock is still before the
      expiry it renewed from. A contender only takes over after seeing that expiry pass, so a
      renewal that passes both checks cannot overlap a takeover.

    Not atomic, and so not guaranteed: correctness rests on the holders' clocks agreeing to
    well within the TTL (``clock`` must be the clock ``now`` is read from), and on the holder
    stopping as soon as ``renew`` returns False.
    Nothing fences an action already in flight when a lease lapses; keep the TTL a few tick
    intervals long. A GCS restart without GCS fault tolerance (external Redis) loses the KV
    and so the lease: the next ``acquire`` starts a new series.
    """

    def __init__(
        self,
        kv: KeyValue | None = None,
        *,
        namespace: str = "autoops",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kv = kv if kv is not None else RayInternalKV(namespace)
        self._clock = clock
        """The clock the callers' ``now`` comes from (read once more after a renewal)."""

    @staticmethod
    def _prefix(name: str) -> str:
        return f"lease/{name}/"

    def _key(self, name: str, gen: int) -> str:
        return f"{self._prefix(name)}{gen:012d}"

    def _generations(self, name: str) -> list[int]:
        prefix = self._prefix(name)
        gens: list[int] = []
        for key in self._kv.keys(prefix):
            suffix = key[len(prefix) :]
            if key.startswith(prefix) and suffix.isdigit():
                gens.append(int(suffix))
        return sorted(gens)

    def _current(self, name: str) -> _Grant | None:
        """The highest generation's grant, None before the first."""
        for _ in range(5):  # a key listed and then deleted by a takeover's clean-up: look again
            gens = self._generations(name)
            if not gens:
                return None
            raw = self._kv.get(self._key(name, gens[-1]))
            if raw is not None:
                return self._parse(name, gens[-1], raw)
        return None

    @staticmethod
    def _parse(name: str, gen: int, raw: bytes) -> _Grant:
        try:
            data = json.loads(raw)
            return _Grant(gen, str(data["holder"]), float(data["expires_at"]))
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"lease {name!r}: generation {gen} is garbled: {raw!r}") from None

    @staticmethod
    def _value(holder: str, expires_at: float) -> bytes:
        return json.dumps({"holder": holder, "expires_at": expires_at}).encode()

    def acquire(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        """Take lease ``name`` if it is free or lapsed (or extend it if ``holder`` has it)."""
        _check(name, holder, ttl_s)
        current = self._current(name)
        if current is not None and current.expires_at > now:
            return current.holder == holder and self.renew(name, holder, ttl_s, now)
        gen = 1 if current is None else current.gen + 1
        if not self._kv.put(self._key(name, gen), self._value(holder, now + ttl_s), False):
            return False  # a rival created this generation first
        for old in self._generations(name):
            if old < gen:
                self._kv.delete(self._key(name, old))
        return True

    def renew(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        """Extend lease ``name`` that ``holder`` still holds; False once it lapsed or was taken."""
        _check(name, holder, ttl_s)
        current = self._current(name)
        if current is None or current.holder != holder or current.expires_at <= now:
            return False
        self._kv.put(self._key(name, current.gen), self._value(holder, now + ttl_s), True)
        gens = self._generations(name)
        if gens and gens[-1] > current.gen:
            return False  # a rival took over from the expiry it saw before this write landed
        return self._clock() < current.expires_at

    def release(self, name: str, holder: str) -> bool:
        """Give lease ``name`` up at once (False if ``holder`` did not hold it)."""
        current = self._current(name)
        if current is None or current.holder != holder:
            return False
        self._kv.put(self._key(name, current.gen), self._value(holder, 0.0), True)
        return True

    def holder(self, name: str, now: float) -> str | None:
        """Who holds lease ``name`` at ``now``, None when it is free or lapsed."""
        current = self._current(name)
        if current is None or current.expires_at <= now:
            return None
        return current.holder

    def epoch(self, name: str) -> int:
        """The current generation of lease ``name`` (0 before it was first taken)."""
        gens = self._generations(name)
        return gens[-1] if gens else 0


if TYPE_CHECKING:

    def _implement_the_lease_protocol(a: SQLiteLease, b: RayKVLease) -> tuple[Lease, Lease]:
        """Type-checked only: both backends offer everything ``Lease`` asks for."""
        return a, b
