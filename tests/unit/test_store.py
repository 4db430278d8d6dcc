from __future__ import annotations

import itertools
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from autoops.core.state import ControllerState, Phase, RolloutState
from autoops.model import SetReplicas, SetTraffic
from autoops.store.codec import action_to_json, state_from_json, state_to_json
from autoops.store.sqlite import (
    GENESIS_HASH,
    SQLiteStore,
    StoreError,
    read_head,
    record_hash,
)
from tests.unit.test_state_codec import states

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "state" / "autoops.db")
    yield opened
    opened.close()


def _fill(store: SQLiteStore, n: int, policy: str = "canary") -> None:
    for i in range(1, n + 1):
        store.append(policy, f"rid{i}", "note", {"i": i}, 1000.0 + i)


def _raw(store: SQLiteStore, *statements: str) -> None:
    """Tamper with the database behind the store's back."""
    conn = sqlite3.connect(store.path)
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    """A Python child process running ``code`` with the repository importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


# --------------------------------------------------------------------------- the chain


def test_each_record_is_chained_to_the_one_before(store: SQLiteStore) -> None:
    _fill(store, 4)
    records = store.records()
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert records[0].prev_hash == GENESIS_HASH
    for before, record in itertools.pairwise(records):
        assert record.prev_hash == before.hash
    last = records[-1]
    assert last.hash == record_hash(
        last.prev_hash, last.seq, last.time, last.policy, last.reconcile_id, last.kind, last.body
    )
    assert store.head() == (4, last.hash)


def test_an_intact_log_verifies_against_its_published_head(store: SQLiteStore) -> None:
    _fill(store, 5)
    result = store.verify(store.published_head())
    assert result.ok
    assert result.checked == 5
    assert result.head == store.head()


def test_an_empty_log_verifies(store: SQLiteStore) -> None:
    result = store.verify()
    assert result.ok
    assert result.checked == 0
    assert result.head is None


TAMPERING: list[tuple[str, list[str], int, str]] = [
    (
        "edited-body",
        ["UPDATE audit SET body = '{\"i\":99}' WHERE seq = 3"],
        3,
        "record 3 was edited",
    ),
    ("edited-time", ["UPDATE audit SET time = time + 1 WHERE seq = 4"], 4, "record 4 was edited"),
    ("edited-kind", ["UPDATE audit SET kind = 'intent' WHERE seq = 2"], 2, "record 2 was edited"),
    ("garbled-body", ["UPDATE audit SET body = '{oops' WHERE seq = 5"], 5, "not valid JSON"),
    ("deleted-middle", ["DELETE FROM audit WHERE seq = 3"], 3, "record 3 missing"),
    ("deleted-run", ["DELETE FROM audit WHERE seq IN (2, 3, 4)"], 2, "record 2..4 missing"),
    ("deleted-first", ["DELETE FROM audit WHERE seq = 1"], 1, "record 1 missing"),
    (
        "reordered",
        [
            "UPDATE audit SET seq = -1 WHERE seq = 3",
            "UPDATE audit SET seq = 3 WHERE seq = 4",
            "UPDATE audit SET seq = 4 WHERE seq = -1",
        ],
        3,
        "out of order",
    ),
    (
        "rehashed-record",
        ["UPDATE audit SET hash = 'f' || substr(hash, 2) WHERE seq = 2"],
        2,
        "record 2 was edited",
    ),
    (
        "index-column",
        ["UPDATE audit SET intent_seq = 1 WHERE seq = 4"],
        4,
        "index columns do not match",
    ),
]


@pytest.mark.parametrize(
    ("statements", "bad_seq", "reason"),
    [t[1:] for t in TAMPERING],
    ids=[t[0] for t in TAMPERING],
)
def test_verify_fails_at_the_first_tampered_record(
    store: SQLiteStore, statements: list[str], bad_seq: int, reason: str
) -> None:
    _fill(store, 6)
    assert store.verify().ok
    _raw(store, *statements)
    result = store.verify()
    assert not result.ok
    assert result.first_bad_seq == bad_seq
    assert reason in (result.reason or "")
    assert result.checked == bad_seq - 1


def test_a_record_relinked_after_an_edit_breaks_the_next_link(store: SQLiteStore) -> None:
    _fill(store, 5)
    record = store.records()[2]
    forged = {"i": 42}
    digest = record_hash(
        record.prev_hash, 3, record.time, record.policy, record.reconcile_id, "note", forged
    )
    _raw(store, f"UPDATE audit SET body = '{json.dumps(forged)}', hash = '{digest}' WHERE seq = 3")
    result = store.verify()
    assert not result.ok
    assert result.first_bad_seq == 4
    assert "does not chain to record 3" in (result.reason or "")


def test_a_cut_tail_passes_alone_but_fails_against_the_published_head(
    store: SQLiteStore,
) -> None:
    _fill(store, 6)
    published = read_head(store.head_path)
    assert published == store.head()
    _raw(store, "DELETE FROM audit WHERE seq > 4")
    assert store.verify().ok  # a shorter chain is still a valid chain
    result = store.verify(published)
    assert not result.ok
    assert result.first_bad_seq == 5
    assert "truncated" in (result.reason or "")
    assert "published head is seq 6" in (result.reason or "")


def test_a_chain_rewritten_from_an_edit_onwards_differs_from_the_published_head(
    store: SQLiteStore,
) -> None:
    _fill(store, 4)
    published = store.published_head()
    rows = store.records()
    prev = rows[1].hash
    for r in rows[2:]:  # forge records 3 and 4 with a valid chain
        body = {"i": -r.seq}
        digest = record_hash(prev, r.seq, r.time, r.policy, r.reconcile_id, r.kind, body)
        _raw(
            store,
            f"UPDATE audit SET body = '{json.dumps(body)}', prev_hash = '{prev}', "
            f"hash = '{digest}' WHERE seq = {r.seq}",
        )
        prev = digest
    assert store.verify().ok
    result = store.verify(published)
    assert not result.ok
    assert result.first_bad_seq == 4
    assert "differs from the published head" in (result.reason or "")


def test_the_head_file_is_not_overwritten_once_the_log_lost_it(tmp_path: Path) -> None:
    path = tmp_path / "autoops.db"
    with SQLiteStore(path) as first:
        _fill(first, 5)
        published = first.published_head()
    _raw(first, "DELETE FROM audit WHERE seq > 3")
    with SQLiteStore(path) as second:
        second.append("canary", "later", "note", {}, 2000.0)  # the append itself succeeds
        assert second.head_conflict is not None
        assert "truncated or rewritten" in second.head_conflict
        assert second.published_head() == published
        result = second.verify(second.published_head())
        assert not result.ok
        assert "truncated" in (result.reason or "")
        with pytest.raises(StoreError, match="truncated or rewritten"):
            second.publish_head()


def test_a_store_opened_without_publishing_leaves_the_head_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "autoops.db"
    with SQLiteStore(path, publish=False) as quiet:
        _fill(quiet, 2)
        assert quiet.published_head() is None
        assert quiet.publish_head() == quiet.head()
        assert read_head(quiet.head_path) == quiet.head()


def test_integer_keys_and_non_finite_numbers_still_verify(store: SQLiteStore) -> None:
    body = {"burn": {30: 0.1, 300: 0.2, 5: math.nan}, "z": math.inf}
    record = store.append("canary", "r", "decision", body, 1.0)
    assert set(record.body["burn"]) == {"5", "30", "300"}  # as it reads back: text keys
    assert store.verify().ok
    stored = store.records()[0].body
    assert math.isnan(stored["burn"]["5"])
    assert stored["z"] == math.inf


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.append("canary", "r", "note", {"x": object()}, 1.0), "body is not JSON"),
        (lambda s: s.append("canary", "r", "note", {"x": 1}, math.nan), "time"),
        (lambda s: s.append("", "r", "note", {}, 1.0), "policy"),
        (lambda s: s.append("canary", "r", "", {}, 1.0), "kind"),
        (lambda s: s.save_state("canary", {"x": {1, 2}}), "state of 'canary' is not JSON"),
    ],
    ids=["body-not-json", "time-nan", "no-policy", "no-kind", "state-not-json"],
)
def test_bad_input_is_refused_and_nothing_is_written(
    store: SQLiteStore, call: Callable[[SQLiteStore], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(store)
    assert store.records() == []
    assert store.load_state("canary") is None


# --------------------------------------------------------------------------- write-ahead


def _intent(store: SQLiteStore, policy: str, n_actions: int, t: float) -> int:
    actions = [action_to_json(SetReplicas({"eu": i})) for i in range(n_actions)]
    return store.append(policy, f"r{t}", "intent", {"actions": actions}, t).seq


def _outcome(store: SQLiteStore, policy: str, intent_seq: int | None, t: float) -> None:
    body: dict[str, Any] = {"action": action_to_json(SetReplicas({"eu": 1})), "outcome": "updated"}
    if intent_seq is not None:
        body["intent_seq"] = intent_seq
    store.append(policy, f"r{t}", "outcome", body, t)


def test_an_intent_without_an_outcome_is_pending(store: SQLiteStore) -> None:
    seq = _intent(store, "canary", 1, 1.0)
    pending = store.pending_intents("canary")
    assert [r.seq for r in pending] == [seq]
    assert pending[0].body["actions"] == [action_to_json(SetReplicas({"eu": 0}))]


def test_an_intent_is_closed_by_one_outcome_per_action(store: SQLiteStore) -> None:
    seq = _intent(store, "canary", 2, 1.0)
    _outcome(store, "canary", seq, 2.0)
    assert [r.seq for r in store.pending_intents("canary")] == [seq]  # half done: still pending
    _outcome(store, "canary", seq, 3.0)
    assert store.pending_intents("canary") == []


def test_only_outcomes_naming_the_intent_close_it(store: SQLiteStore) -> None:
    first = _intent(store, "canary", 1, 1.0)
    second = _intent(store, "canary", 1, 2.0)
    _outcome(store, "canary", None, 3.0)  # names no intent
    _outcome(store, "canary", second, 4.0)
    store.append("canary", "r5", "note", {"intent_seq": first}, 5.0)  # not an outcome
    assert [r.seq for r in store.pending_intents("canary")] == [first]


def test_pending_intents_are_per_policy(store: SQLiteStore) -> None:
    mine = _intent(store, "canary", 1, 1.0)
    _intent(store, "other", 1, 2.0)
    assert [r.seq for r in store.pending_intents("canary")] == [mine]


def test_an_outcome_can_save_the_state_in_the_same_transaction(store: SQLiteStore) -> None:
    seq = _intent(store, "canary", 1, 1.0)
    new_state = ControllerState(rollout=RolloutState(phase=Phase.PROGRESSING, step=2))
    store.append(
        "canary",
        "r",
        "outcome",
        {"intent_seq": seq, "action": action_to_json(SetTraffic({"v1": 1.0})), "outcome": "x"},
        2.0,
        state=state_to_json(new_state),
    )
    assert store.pending_intents("canary") == []
    assert state_from_json(store.load_state("canary")) == new_state


def test_last_outcome_finds_the_newest_applied_action_of_a_kind(store: SQLiteStore) -> None:
    for i, outcome in enumerate(["updated", "unchanged", "failed"]):
        body = {
            "action": action_to_json(SetTraffic({"v1": 1 - i / 10, "v2": i / 10})),
            "outcome": outcome,
        }
        store.append("canary", f"r{i}", "outcome", body, float(i))
    found = store.last_outcome("canary", "set_traffic")
    assert found is not None
    assert found.body["outcome"] == "unchanged"
    assert store.last_outcome("canary", "set_replicas") is None


# --------------------------------------------------------------------------- state and queries


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path_factory.mktemp("store") / "autoops.db", publish=False)
    yield opened
    opened.close()


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(state=states)
def test_state_survives_a_round_trip_through_the_database(
    shared_store: SQLiteStore, state: ControllerState
) -> None:
    shared_store.save_state("canary", state_to_json(state))
    saved = shared_store.load_state("canary")
    assert saved is not None
    assert state_from_json(saved) == state


def test_saving_state_replaces_it_and_lists_the_policy(store: SQLiteStore) -> None:
    store.save_state("b", {"v": 1})
    store.save_state("a", {"v": 1})
    store.save_state("a", {"v": 2})
    assert store.load_state("a") == {"v": 2}
    assert store.load_state("missing") is None
    assert [s.policy for s in store.saved_states()] == ["a", "b"]
    store.append("c", "r", "note", {}, 1.0)
    assert store.policies() == ["a", "b", "c"]


def test_records_filter_by_policy_time_kind_seq_and_limit(store: SQLiteStore) -> None:
    for i in range(1, 9):
        policy = "a" if i % 2 else "b"
        kind = "intent" if i % 3 == 0 else "note"
        store.append(policy, f"r{i}", kind, {"i": i}, float(i))

    def seqs(**kwargs: object) -> list[int]:
        return [r.seq for r in store.records(**kwargs)]  # type: ignore[arg-type]

    assert seqs() == list(range(1, 9))
    assert seqs(policy="a") == [1, 3, 5, 7]
    assert seqs(since=6.0) == [6, 7, 8]
    assert seqs(kinds=["intent"]) == [3, 6]
    assert seqs(kinds=[]) == []
    assert seqs(policy="b", kinds=["note"]) == [2, 4, 8]
    assert seqs(after_seq=6) == [7, 8]
    assert seqs(limit=3) == [6, 7, 8]
    assert seqs(limit=2, newest_first=True) == [8, 7]
    assert store.head("a") == (7, store.records()[6].hash)


# --------------------------------------------------------------------------- refusing files


def _sqlite_with_a_table(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    return path


def _newer_store(path: Path) -> Path:
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE autoops_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize(
    ("make", "create", "message"),
    [
        (lambda p: (p.write_text("hello\n"), p)[1], True, "not an SQLite database"),
        (_sqlite_with_a_table, True, "other tables: invoices"),
        (lambda p: (p.mkdir(), p)[1], True, "not a regular file"),
        (lambda p: p, False, "no AutoOps store here"),
        (lambda p: (p.write_bytes(b""), p)[1], False, "an empty file"),
        (_newer_store, True, "schema version 99 is newer"),
    ],
    ids=["text-file", "foreign-sqlite", "directory", "missing", "empty-file", "newer-schema"],
)
def test_a_file_that_is_not_a_usable_store_is_refused_naming_its_path(
    tmp_path: Path, make: Callable[[Path], Path], create: bool, message: str
) -> None:
    path = make(tmp_path / "autoops.db")
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(StoreError) as caught:
        SQLiteStore(path, create=create)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    if before is not None and message != "schema version 99 is newer":
        assert path.read_bytes() == before  # left untouched


def test_a_reopened_store_keeps_its_records_and_state(tmp_path: Path) -> None:
    path = tmp_path / "autoops.db"
    with SQLiteStore(path) as first:
        _fill(first, 3)
        first.save_state("canary", {"step": 1})
    with SQLiteStore(path, create=False) as second:
        assert len(second.records()) == 3
        assert second.load_state("canary") == {"step": 1}
        assert second.verify(second.published_head()).ok
        conn = second.connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_closed_store_refuses_further_use(store: SQLiteStore) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.records()


# --------------------------------------------------------------------------- concurrency, crashes


def test_readers_see_a_valid_chain_while_a_writer_appends(store: SQLiteStore) -> None:
    done = threading.Event()
    errors: list[str] = []
    total = 150

    def write() -> None:
        try:
            _fill(store, total)
        finally:
            done.set()

    def read() -> None:
        seen = 0
        while True:
            finished = done.is_set()
            result = store.verify()
            count = len(store.records())
            if not result.ok:
                errors.append(f"verify failed: {result.reason}")
            if count < seen:
                errors.append(f"records went from {seen} to {count}")
            seen = count
            if finished:
                return

    readers = [threading.Thread(target=read) for _ in range(3)]
    writer = threading.Thread(target=write)
    for thread in (*readers, writer):
        thread.start()
    for thread in (writer, *readers):
        thread.join()
    assert errors == []
    assert len(store.records()) == total
    assert store.verify(store.published_head()).ok


def test_two_processes_appending_at_once_keep_one_unbroken_chain(tmp_path: Path) -> None:
    path = tmp_path / "autoops.db"
    SQLiteStore(path).close()
    code = """
        import sys
        from pathlib import Path
        from autoops.store.sqlite import SQLiteStore
        store = SQLiteStore(Path(sys.argv[1]))
        for i in range(60):
            store.append(sys.argv[2], f"r{i}", "note", {"i": i}, float(i))
        print("done", flush=True)
    """
    children = [_child(code, str(path), name) for name in ("a", "b")]
    for child in children:
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
    with SQLiteStore(path) as store:
        records = store.records()
        assert len(records) == 120
        assert sorted(r.policy for r in records).count("a") == 60
        assert store.verify(store.published_head()).ok


def test_a_writer_killed_mid_writes_loses_no_acknowledged_record(tmp_path: Path) -> None:
    """SIGKILL at an arbitrary point: every append that returned is there, the chain intact.

    The state is saved in the same transaction as each record, so it always matches the last
    record. (A kill leaves the OS's page cache intact: this proves atomicity, not fsync.)
    """
    path = tmp_path / "autoops.db"
    code = """
        import sys
        from pathlib import Path
        from autoops.store.sqlite import SQLiteStore
        store = SQLiteStore(Path(sys.argv[1]))
        i = 0
        while True:
            i += 1
            store.append("canary", f"r{i}", "note", {"i": i, "pad": "x" * 500}, float(i),
                         state={"counter": i})
            print(i, flush=True)
    """
    child = _child(code, str(path))
    assert child.stdout is not None
    acknowledged: list[int] = []
    while len(acknowledged) < 40:
        line = child.stdout.readline()
        if not line:
            break
        acknowledged.append(int(line))
    child.send_signal(signal.SIGKILL)
    rest, err = child.communicate(timeout=60)
    acknowledged += [int(x) for x in rest.split()]
    assert len(acknowledged) >= 40, err
    with SQLiteStore(path) as store:
        records = store.records()
        assert [r.body["i"] for r in records][: len(acknowledged)] == acknowledged
        assert [r.seq for r in records] == list(range(1, len(records) + 1))
        assert store.load_state("canary") == {"counter": records[-1].body["i"]}
        published = store.published_head()
        assert published is not None and store.contains(published)
        assert store.verify(published).ok
