"""The controller's durable state and its append-only, hash-chained audit log, in one SQLite file.

One file holds the desired state of every policy, the audit log and the leadership leases. It
runs in WAL mode with ``synchronous=FULL``: a commit is on disk before it returns, readers (the
control API's thread, ``autoops audit``) never block the writer, and a process killed at any
point leaves every committed record and state intact.

The audit log is one chain across all policies. Record ``seq`` stores
``hash = sha256(prev_hash + canonical_json([seq, time, policy, reconcile_id, kind, body]))``,
chained to the record before it (the first to 64 zeros). ``verify()`` finds an edited, deleted,
inserted or reordered record; a tail cut off the end leaves a valid shorter chain, so the head
is also published outside the log (``publish_head``, a small JSON file beside the database,
written after every append) and ``verify(expected_head)`` checks the log still reaches it.

Write-ahead: the loop appends an ``intent`` record whose body lists the ``actions`` it is about
to apply, applies them, then appends one ``outcome`` record per action whose body names the
intent in ``intent_seq``. ``pending_intents(policy)`` returns the intents with fewer outcomes
than actions: those a controller was killed in the middle of.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import tempfile
import threading
import time as wallclock
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoops.logging import get_logger
from autoops.ports import AuditRecord

if TYPE_CHECKING:
    from autoops.ports import Store

__all__ = [
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "SQLiteStore",
    "SavedState",
    "StoreError",
    "VerifyResult",
    "canonical_json",
    "default_head_path",
    "read_head",
    "record_hash",
    "write_head",
]

log = get_logger("autoops.store")

SCHEMA_VERSION = 1
"""The layout this code reads and writes; a newer file is refused, never rewritten."""
APPLICATION = "autoops"
APPLICATION_ID = 0x4155544F
"""``PRAGMA application_id`` of an AutoOps store ("AUTO")."""
GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first record."""
HEAD_FORMAT = "autoops-audit-head"
_SQLITE_HEADER = b"SQLite format 3\x00"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS autoops_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS state (
        policy TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        saved_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        policy TEXT NOT NULL,
        reconcile_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        intent_seq INTEGER,
        expects INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS audit_by_policy ON audit (policy, kind, seq)",
    "CREATE INDEX IF NOT EXISTS audit_by_time ON audit (time)",
    "CREATE INDEX IF NOT EXISTS audit_by_intent ON audit (intent_seq) WHERE intent_seq IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at REAL NOT NULL,
        epoch INTEGER NOT NULL,
        acquired_at REAL NOT NULL
    )""",
)

_RECORD_COLUMNS = "seq, time, policy, reconcile_id, kind, body, prev_hash, hash"


class StoreError(Exception):
    """The store cannot be used: not an AutoOps store, a newer schema, unreadable data."""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of checking the audit chain."""

    ok: bool
    checked: int
    """Records found intact (before the first bad one)."""
    first_bad_seq: int | None = None
    reason: str | None = None
    head: tuple[int, str] | None = None
    """The (seq, hash) of the last intact record, None for an empty log."""


@dataclass(frozen=True, slots=True)
class SavedState:
    """A policy's saved state and when it was saved (wall time)."""

    policy: str
    state: Mapping[str, Any]
    saved_at: float


# --------------------------------------------------------------------------- the chain


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value`` that is hashed: sorted keys, no spaces, ASCII only."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True
    )


def record_hash(
    prev_hash: str,
    seq: int,
    time: float,
    policy: str,
    reconcile_id: str,
    kind: str,
    body: Mapping[str, Any],
) -> str:
    """The hash that chains record ``seq`` to the record before it."""
    content = canonical_json([seq, time, policy, reconcile_id, kind, body])
    return hashlib.sha256((prev_hash + content).encode("ascii")).hexdigest()


def _json_object(value: Mapping[str, Any], what: str) -> tuple[str, dict[str, Any]]:
    """The canonical text of a JSON object and the object as read back from it."""
    try:
        text = canonical_json(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON data: {exc}") from None
    parsed = json.loads(text)
    if not isinstance(parsed, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    # Keys that were not text (integers) are text now: re-sort so the text is canonical.
    return canonical_json(parsed), parsed


def _expected_outcomes(body: Mapping[str, Any]) -> int:
    """How many outcome records close an intent: one per action it lists."""
    actions = body.get("actions")
    return len(actions) if isinstance(actions, list) else 1


def _intent_ref(kind: str, body: Mapping[str, Any]) -> int | None:
    """The intent an outcome record closes (its body's ``intent_seq``)."""
    ref = body.get("intent_seq")
    if kind != "outcome" or isinstance(ref, bool) or not isinstance(ref, int):
        return None
    return ref


# --------------------------------------------------------------------------- the head file


def default_head_path(db_path: Path) -> Path:
    """Where the head of the store at ``db_path`` is published: ``<db>.head.json`` beside it."""
    return db_path.with_name(db_path.name + ".head.json")


def write_head(path: Path, head: tuple[int, str], store: Path | None = None) -> None:
    """Write ``head`` to ``path`` atomically (a temporary file, fsync, rename)."""
    seq, digest = head
    data = {
        "format": HEAD_FORMAT,
        "version": 1,
        "store": str(store.resolve()) if store is not None else None,
        "seq": seq,
        "hash": digest,
        "published_at": wallclock.time(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def read_head(path: Path) -> tuple[int, str] | None:
    """The (seq, hash) published at ``path``, None when there is no file; StoreError if garbled."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the published head: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path}: the published head is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != HEAD_FORMAT:
        raise StoreError(f"{path}: not an AutoOps audit head file (no format: {HEAD_FORMAT})")
    seq, digest = data.get("seq"), data.get("hash")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise StoreError(f"{path}: seq: expected a positive integer, got {seq!r}")
    if not isinstance(digest, str) or len(digest) != 64:
        raise StoreError(f"{path}: hash: expected 64 hex digits, got {digest!r}")
    return seq, digest


# --------------------------------------------------------------------------- the store


class SQLiteStore:
    """Desired state per policy plus the hash-chained audit log (implements ``ports.Store``).

    Safe to share between threads (each thread gets its own connection) and between processes
    on one host (SQLite's locks; every write is one ``BEGIN IMMEDIATE`` transaction).
    ``create=False`` refuses a missing file instead of creating one (for read-only commands).
    ``publish=True`` publishes the chain's head beside the database after every append.
    """

    def __init__(
        self,
        path: Path,
        *,
        create: bool = True,
        publish: bool = True,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.head_path = default_head_path(self.path)
        self.publish = publish
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        self.head_conflict: str | None = None
        """Why the last automatic publish of the head was refused (a truncated log), if it was."""
        self._open(create)

    # ----------------------------------------------------------------- connections

    def _connect(self) -> sqlite3.Connection:
        """A new connection in WAL mode with full fsync."""
        try:
            conn = sqlite3.connect(
                str(self.path),
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open: {exc}") from None
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.path}: not an AutoOps store ({exc})") from None
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreError(f"{self.path}: cannot switch to WAL mode (journal mode {mode})")
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (a fresh one in a forked child)."""
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")
        if os.getpid() != self._pid:
            # Connections must not cross a fork: abandon the parent's, never close them here.
            self._local = threading.local()
            self._connections = []
            self._lock = threading.Lock()
            self._pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (for parts that keep rows in this database: the lease)."""
        return self._conn()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): committed on exit, rolled back on error."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same committed state."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._closed = True
        for conn in connections:
            with suppress(sqlite3.Error):
                conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- schema

    def _open(self, create: bool) -> None:
        """Check the file is an AutoOps store (or create one) before anything else touches it."""
        path = self.path
        if path.exists():
            if not path.is_file():
                raise StoreError(f"{path}: not an AutoOps store (not a regular file)")
            with path.open("rb") as handle:
                header = handle.read(len(_SQLITE_HEADER))
            if header and header != _SQLITE_HEADER:
                raise StoreError(f"{path}: not an AutoOps store (not an SQLite database)")
            if not header and not create:
                raise StoreError(f"{path}: not an AutoOps store (an empty file)")
            if header:
                self._refuse_foreign(path)
        elif not create:
            raise StoreError(f"{path}: no AutoOps store here")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.transaction() as conn:
                self._check_or_create_schema(conn, create)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not an AutoOps store ({exc})") from None

    def _refuse_foreign(self, path: Path) -> None:
        """Refuse another application's SQLite database before changing a byte of it."""
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                tables = {
                    row[0]
                    for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                }
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not an AutoOps store ({exc})") from None
        if tables and "autoops_meta" not in tables:
            names = ", ".join(sorted(tables)[:5])
            raise StoreError(
                f"{path}: not an AutoOps store (an SQLite database with other tables: {names})"
            )

    def _check_or_create_schema(self, conn: sqlite3.Connection, create: bool) -> None:
        """Refuse a foreign or newer database; create the tables in an empty one."""
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "autoops_meta" in tables:
            meta = dict(conn.execute("SELECT key, value FROM autoops_meta").fetchall())
            if meta.get("application") != APPLICATION:
                raise StoreError(f"{self.path}: not an AutoOps store (application is not autoops)")
            try:
                version = int(meta.get("schema_version", ""))
            except ValueError:
                raise StoreError(f"{self.path}: unreadable schema version") from None
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: store schema version {version} is newer than this AutoOps "
                    f"reads ({SCHEMA_VERSION}); upgrade AutoOps"
                )
            return
        if tables:
            names = ", ".join(sorted(tables)[:5])
            raise StoreError(
                f"{self.path}: not an AutoOps store (an SQLite database with other tables: {names})"
            )
        if not create:
            raise StoreError(f"{self.path}: not an AutoOps store (an empty database)")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO autoops_meta (key, value) VALUES (?, ?)",
            [
                ("application", APPLICATION),
                ("schema_version", str(SCHEMA_VERSION)),
                ("created_at", repr(wallclock.time())),
            ],
        )
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # ----------------------------------------------------------------- state

    def load_state(self, policy: str) -> Mapping[str, Any] | None:
        """The last saved controller state of ``policy`` (JSON data), or None."""
        row = self._conn().execute("SELECT body FROM state WHERE policy = ?", (policy,)).fetchone()
        return None if row is None else self._parse_state(policy, row[0])

    def save_state(self, policy: str, state: Mapping[str, Any]) -> None:
        """Replace the saved controller state of ``policy`` (one transaction)."""
        text, _ = _json_object(state, f"state of {policy!r}")
        with self.transaction() as conn:
            self._upsert_state(conn, policy, text)

    def saved_states(self) -> list[SavedState]:
        """Every policy's saved state, by policy name."""
        rows = (
            self._conn()
            .execute("SELECT policy, body, saved_at FROM state ORDER BY policy")
            .fetchall()
        )
        return [SavedState(p, self._parse_state(p, body), at) for p, body, at in rows]

    def policies(self) -> list[str]:
        """Every policy with a saved state or an audit record, sorted."""
        rows = (
            self._conn()
            .execute("SELECT policy FROM state UNION SELECT DISTINCT policy FROM audit ORDER BY 1")
            .fetchall()
        )
        return [row[0] for row in rows]

    def _upsert_state(self, conn: sqlite3.Connection, policy: str, text: str) -> None:
        conn.execute(
            "INSERT INTO state (policy, body, saved_at) VALUES (?, ?, ?) "
            "ON CONFLICT (policy) DO UPDATE SET body = excluded.body, saved_at = excluded.saved_at",
            (policy, text, wallclock.time()),
        )

    def _parse_state(self, policy: str, text: str) -> Mapping[str, Any]:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreError(
                f"{self.path}: the saved state of {policy!r} is not valid JSON ({exc.msg})"
            ) from None
        if not isinstance(data, dict):
            raise StoreError(f"{self.path}: the saved state of {policy!r} is not a JSON object")
        return data

    # ----------------------------------------------------------------- audit log

    def append(
        self,
        policy: str,
        reconcile_id: str,
        kind: str,
        body: Mapping[str, Any],
        time: float,
        *,
        state: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Append a record chained to the last (and save ``state`` in the same transaction)."""
        for name, value in (("policy", policy), ("reconcile_id", reconcile_id), ("kind", kind)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name}: expected a non-empty string, got {value!r}")
        when = float(time)
        if not math.isfinite(when):
            raise ValueError(f"time: expected a finite number, got {time!r}")
        text, parsed = _json_object(body, "body")
        state_text = None if state is None else _json_object(state, f"state of {policy!r}")[0]
        ref = _intent_ref(kind, parsed)
        expects = _expected_outcomes(parsed) if kind == "intent" else None
        with self.transaction() as conn:
            last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            digest = record_hash(prev, seq, when, policy, reconcile_id, kind, parsed)
            conn.execute(
                f"INSERT INTO audit ({_RECORD_COLUMNS}, intent_seq, expects) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, when, policy, reconcile_id, kind, text, prev, digest, ref, expects),
            )
            if state_text is not None:
                self._upsert_state(conn, policy, state_text)
        if self.publish:
            self._publish_quietly()
        return AuditRecord(seq, when, policy, reconcile_id, kind, parsed, prev, digest)

    def records(
        self,
        policy: str | None = None,
        since: float | None = None,
        kinds: Iterable[str] | None = None,
        *,
        after_seq: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditRecord]:
        """Audit records in order, filtered by policy, time, kinds and seq.

        ``limit`` keeps the newest ``limit`` matches (still oldest first, unless
        ``newest_first``).
        """
        where: list[str] = []
        params: list[Any] = []
        if policy is not None:
            where.append("policy = ?")
            params.append(policy)
        if since is not None:
            where.append("time >= ?")
            params.append(float(since))
        if kinds is not None:
            wanted = list(kinds)
            where.append(f"kind IN ({', '.join('?' * len(wanted))})" if wanted else "0")
            params.extend(wanted)
        if after_seq is not None:
            where.append("seq > ?")
            params.append(after_seq)
        sql = f"SELECT {_RECORD_COLUMNS} FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        descending = newest_first or limit is not None
        sql += " ORDER BY seq DESC" if descending else " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, int(limit)))
        rows = self._conn().execute(sql, params).fetchall()
        found = [self._record(row) for row in rows]
        if descending and not newest_first:
            found.reverse()
        return found

    def pending_intents(self, policy: str) -> list[AuditRecord]:
        """Intents of ``policy`` with fewer outcome records than actions, oldest first."""
        rows = (
            self._conn()
            .execute(
                f"SELECT {_RECORD_COLUMNS} FROM audit AS i "
                "WHERE i.policy = ? AND i.kind = 'intent' AND i.expects > "
                "(SELECT COUNT(*) FROM audit AS o "
                "WHERE o.intent_seq = i.seq AND o.kind = 'outcome') "
                "ORDER BY i.seq",
                (policy,),
            )
            .fetchall()
        )
        return [self._record(row) for row in rows]

    def last_outcome(
        self,
        policy: str,
        action_kind: str,
        outcomes: Sequence[str] = ("updated", "unchanged"),
    ) -> AuditRecord | None:
        """The newest outcome record of ``policy`` for an action of ``action_kind``."""
        marks = ", ".join("?" * len(outcomes))
        row = (
            self._conn()
            .execute(
                f"SELECT {_RECORD_COLUMNS} FROM audit WHERE policy = ? AND kind = 'outcome' "
                "AND json_extract(body, '$.action.kind') = ? "
                f"AND json_extract(body, '$.outcome') IN ({marks}) ORDER BY seq DESC LIMIT 1",
                (policy, action_kind, *outcomes),
            )
            .fetchone()
        )
        return None if row is None else self._record(row)

    def head(self, policy: str | None = None) -> tuple[int, str] | None:
        """The (seq, hash) of the newest record (of ``policy``, if given), None when empty."""
        if policy is None:
            row = (
                self._conn()
                .execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                .fetchone()
            )
        else:
            row = (
                self._conn()
                .execute(
                    "SELECT seq, hash FROM audit WHERE policy = ? ORDER BY seq DESC LIMIT 1",
                    (policy,),
                )
                .fetchone()
            )
        return None if row is None else (int(row[0]), str(row[1]))

    def _record(self, row: Sequence[Any]) -> AuditRecord:
        seq, when, policy, rid, kind, body, prev, digest = row
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            raise StoreError(f"{self.path}: audit record {seq} is not valid JSON") from None
        return AuditRecord(int(seq), float(when), policy, rid, kind, parsed, prev, digest)

    # ----------------------------------------------------------------- the published head

    def published_head(self) -> tuple[int, str] | None:
        """The head published beside this store, None if none was."""
        return read_head(self.head_path)

    def contains(self, head: tuple[int, str]) -> bool:
        """Whether record ``head[0]`` exists with hash ``head[1]``."""
        row = self._conn().execute("SELECT hash FROM audit WHERE seq = ?", (head[0],)).fetchone()
        return row is not None and row[0] == head[1]

    def publish_head(
        self, path: Path | None = None, *, force: bool = False
    ) -> tuple[int, str] | None:
        """Write the chain's head to ``path`` (default: beside the database) atomically.

        Refuses (StoreError) to replace a published head the log no longer contains: the log was
        truncated or rewritten, and overwriting the file would hide it. ``force`` overrides.
        """
        target = self.head_path if path is None else path
        head = self.head()
        if head is None:
            return None
        if not force:
            published = read_head(target)
            if published is not None and not self.contains(published):
                raise StoreError(
                    f"{target}: the published head (seq {published[0]}) is not in {self.path}: "
                    "the audit log was truncated or rewritten; run `autoops audit --verify`"
                )
        write_head(target, head, self.path)
        return head

    def _publish_quietly(self) -> None:
        """Publish after an append; a refusal or an I/O error is logged, never raised."""
        try:
            with self._publish_lock:  # threads publish in turn, so the file never goes back
                self.publish_head()
        except (StoreError, OSError) as exc:
            if self.head_conflict != str(exc):
                log.warning("audit_head_not_published", error=str(exc))
            self.head_conflict = str(exc)
        else:
            self.head_conflict = None

    # ----------------------------------------------------------------- verification

    def verify(self, expected_head: tuple[int, str] | None = None) -> VerifyResult:
        """Check every record's hash and link; with ``expected_head``, that the log reaches it."""
        with self._snapshot() as conn:
            return _verify_rows(conn, expected_head)


def _verify_rows(conn: sqlite3.Connection, expected_head: tuple[int, str] | None) -> VerifyResult:
    """Walk the chain in one read transaction and report the first record that breaks it."""
    prev_seq, prev_hash, checked = 0, GENESIS_HASH, 0
    hash_at_expected: str | None = None

    def bad(seq: int, reason: str) -> VerifyResult:
        head = (prev_seq, prev_hash) if checked else None
        return VerifyResult(False, checked, seq, reason, head)

    rows = conn.execute(f"SELECT {_RECORD_COLUMNS}, intent_seq, expects FROM audit ORDER BY seq")
    for seq, when, policy, rid, kind, text, link, digest, ref, expects in rows:
        if seq != prev_seq + 1:
            missing = str(prev_seq + 1) if seq == prev_seq + 2 else f"{prev_seq + 1}..{seq - 1}"
            return bad(
                prev_seq + 1,
                f"record {missing} missing: the sequence jumps from {prev_seq} to {seq} "
                "(records deleted)",
            )
        if link != prev_hash:
            found = conn.execute("SELECT seq FROM audit WHERE hash = ?", (link,)).fetchone()
            if found is not None and found[0] != prev_seq:
                reason = (
                    f"record {seq} is out of order: it was chained after the record now at "
                    f"seq {found[0]}, not after seq {prev_seq} (records reordered)"
                )
            else:
                reason = (
                    f"record {seq} does not chain to record {prev_seq}: its prev_hash differs "
                    f"(record {prev_seq} rewritten, or record {seq} inserted)"
                )
            return bad(seq, reason)
        try:
            body = json.loads(text)
        except (TypeError, json.JSONDecodeError):
            return bad(seq, f"record {seq} was edited: its body is not valid JSON")
        if (
            not isinstance(body, dict)
            or record_hash(link, seq, when, policy, rid, kind, body) != digest
        ):
            return bad(seq, f"record {seq} was edited: its content does not match its hash")
        want_expects = _expected_outcomes(body) if kind == "intent" else None
        if ref != _intent_ref(kind, body) or expects != want_expects:
            return bad(seq, f"record {seq} was edited: its index columns do not match its body")
        prev_seq, prev_hash = seq, digest
        checked += 1
        if expected_head is not None and seq == expected_head[0]:
            hash_at_expected = digest
    head = (prev_seq, prev_hash) if checked else None
    if expected_head is not None:
        want_seq, want_hash = expected_head
        if prev_seq < want_seq:
            return VerifyResult(
                False,
                checked,
                prev_seq + 1,
                f"truncated: the log ends at seq {prev_seq} but the published head is "
                f"seq {want_seq}",
                head,
            )
        if hash_at_expected != want_hash:
            return VerifyResult(
                False,
                checked,
                want_seq,
                f"record {want_seq} differs from the published head: the log was rewritten",
                head,
            )
    return VerifyResult(True, checked, None, None, head)


if TYPE_CHECKING:

    def _implements_the_store_port(store: SQLiteStore) -> Store:
        """Type-checked only: SQLiteStore offers everything ``ports.Store`` asks for."""
        return store
