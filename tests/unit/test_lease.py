from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autoops.store.lease import Lease, RayKVLease, SQLiteLease
from autoops.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[2]

# One process's view of the lease, in another process: `op holder ttl now` -> prints the result.
LEASE_CLI = """
    import sys
    from pathlib import Path
    from autoops.store.lease import SQLiteLease
    from autoops.store.sqlite import SQLiteStore
    path, name, op, holder, ttl, now = sys.argv[1:7]
    lease = SQLiteLease(SQLiteStore(Path(path)))
    if op == "acquire":
        print(lease.acquire(name, holder, float(ttl), float(now)))
    elif op == "renew":
        print(lease.renew(name, holder, float(ttl), float(now)))
    else:
        print(lease.holder(name, float(now)))
"""


def _spawn(path: Path, op: str, holder: str, ttl: float, now: float) -> subprocess.Popen[str]:
    args = [str(path), "policy", op, holder, str(ttl), str(now)]
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(LEASE_CLI), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )


def _in_other_process(path: Path, op: str, holder: str, ttl: float, now: float) -> str:
    child = _spawn(path, op, holder, ttl, now)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return out.strip()


class FakeKV:
    """An in-memory KeyValue with GCS semantics; ``before_put`` lets a test interleave a rival."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.before_put: Callable[[str], None] | None = None

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes, overwrite: bool) -> bool:
        hook, self.before_put = self.before_put, None
        if hook is not None:
            hook(key)
        absent = key not in self.data
        if absent or overwrite:
            self.data[key] = value
        return absent

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def keys(self, prefix: str) -> list[str]:
        return [k for k in self.data if k.startswith(prefix)]


class Clock:
    """A settable clock for RayKVLease's check after a renewal."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "autoops.db")
    yield opened
    opened.close()


def _sqlite(store: SQLiteStore, kv: FakeKV, clock: Clock) -> Lease:
    return SQLiteLease(store)


def _ray_kv(store: SQLiteStore, kv: FakeKV, clock: Clock) -> Lease:
    return RayKVLease(kv, clock=clock)


BACKENDS = pytest.mark.parametrize("make", [_sqlite, _ray_kv], ids=["sqlite", "ray-kv"])


@BACKENDS
def test_one_holder_at_a_time_and_a_takeover_after_the_ttl(
    store: SQLiteStore, make: Callable[[SQLiteStore, FakeKV, Clock], Lease]
) -> None:
    clock = Clock()
    lease = make(store, FakeKV(), clock)
    steps: list[tuple[str, str, float, bool | str | None]] = [
        ("acquire", "a", 100.0, True),
        ("holder", "", 101.0, "a"),
        ("acquire", "b", 105.0, False),  # held: refused
        ("renew", "a", 108.0, True),  # now until 118
        ("acquire", "b", 115.0, False),  # the renewal kept it
        ("renew", "b", 115.0, False),  # renew never takes a lease
        ("holder", "", 118.0, None),  # lapsed
        ("renew", "a", 119.0, False),  # too late to renew
        ("acquire", "b", 119.0, True),  # takeover
        ("holder", "", 120.0, "b"),
        ("acquire", "a", 121.0, False),
        ("acquire", "b", 125.0, True),  # the holder's acquire extends
        ("holder", "", 134.0, "b"),
    ]
    for op, holder, now, expected in steps:
        clock.t = now
        if op == "holder":
            got: bool | str | None = lease.holder("policy", now)
        elif op == "acquire":
            got = lease.acquire("policy", holder, 10.0, now)
        else:
            got = lease.renew("policy", holder, 10.0, now)
        assert got == expected, f"{op} {holder} at {now}"


@BACKENDS
def test_a_released_lease_is_free_at_once(
    store: SQLiteStore, make: Callable[[SQLiteStore, FakeKV, Clock], Lease]
) -> None:
    lease = make(store, FakeKV(), Clock(1.0))
    assert lease.acquire("policy", "a", 60.0, 1.0)
    assert not lease.release("policy", "b")
    assert lease.holder("policy", 2.0) == "a"
    assert lease.release("policy", "a")
    assert lease.holder("policy", 2.0) is None
    assert lease.acquire("policy", "b", 60.0, 2.0)


@BACKENDS
@pytest.mark.parametrize(
    ("name", "holder", "ttl", "field"),
    [
        ("", "a", 10.0, "name"),
        ("policy", "", 10.0, "holder"),
        ("policy", "a", 0.0, "ttl_s"),
        ("policy", "a", -1.0, "ttl_s"),
        ("policy", "a", float("inf"), "ttl_s"),
    ],
    ids=["no-name", "no-holder", "zero-ttl", "negative-ttl", "infinite-ttl"],
)
def test_an_empty_name_or_holder_or_a_bad_ttl_is_refused(
    store: SQLiteStore,
    make: Callable[[SQLiteStore, FakeKV, Clock], Lease],
    name: str,
    holder: str,
    ttl: float,
    field: str,
) -> None:
    lease = make(store, FakeKV(), Clock())
    with pytest.raises(ValueError, match=f"^{field}: "):
        lease.acquire(name, holder, ttl, 1.0)
    with pytest.raises(ValueError, match=f"^{field}: "):
        lease.renew(name, holder, ttl, 1.0)


def test_each_change_of_holder_bumps_the_epoch(store: SQLiteStore) -> None:
    lease = SQLiteLease(store)
    assert lease.epoch("policy") == 0
    lease.acquire("policy", "a", 10.0, 0.0)
    lease.renew("policy", "a", 10.0, 5.0)
    assert lease.epoch("policy") == 1
    lease.acquire("policy", "b", 10.0, 20.0)
    assert lease.epoch("policy") == 2


@BACKENDS
def test_leases_of_different_policies_are_independent(
    store: SQLiteStore, make: Callable[[SQLiteStore, FakeKV, Clock], Lease]
) -> None:
    lease = make(store, FakeKV(), Clock())
    assert lease.acquire("shop", "a", 10.0, 0.0)
    assert lease.acquire("shop/eu", "b", 10.0, 0.0)  # a name that extends another
    assert lease.acquire("search", "c", 10.0, 0.0)
    assert [lease.holder(n, 1.0) for n in ("shop", "shop/eu", "search")] == ["a", "b", "c"]
    assert lease.release("shop", "a")
    assert lease.holder("shop/eu", 1.0) == "b"


# --------------------------------------------------------------------------- across processes


def test_sqlite_lease_refuses_a_second_process_until_the_ttl_lapses(tmp_path: Path) -> None:
    path = tmp_path / "autoops.db"
    with SQLiteStore(path) as store:
        mine = SQLiteLease(store)
        assert mine.acquire("policy", "first", 10.0, 100.0)
        assert _in_other_process(path, "acquire", "second", 10.0, 105.0) == "False"
        assert mine.renew("policy", "first", 10.0, 108.0)
        assert _in_other_process(path, "acquire", "second", 10.0, 117.0) == "False"
        assert _in_other_process(path, "holder", "-", 10.0, 117.0) == "first"
        # first stops renewing (it died): second takes over once the TTL lapses
        assert _in_other_process(path, "acquire", "second", 10.0, 118.5) == "True"
        assert not mine.renew("policy", "first", 10.0, 119.0)
        assert mine.holder("policy", 119.0) == "second"


def test_sqlite_lease_has_exactly_one_winner_among_racing_processes(tmp_path: Path) -> None:
    path = tmp_path / "autoops.db"
    SQLiteStore(path).close()
    children = [_spawn(path, "acquire", f"c{i}", 30.0, 50.0) for i in range(4)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(out.strip())
    assert sorted(results) == ["False", "False", "False", "True"]


# --------------------------------------------------------------------------- Ray GCS KV semantics


def test_ray_kv_lease_takeover_has_one_winner_among_rivals_that_saw_it_lapse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kv = FakeKV()
    rivals = [RayKVLease(kv, clock=Clock(20.0)) for _ in range(3)]
    assert rivals[0].acquire("policy", "old", 10.0, 0.0)
    # Every rival read the lapsed grant before any of them wrote.
    stale = rivals[0]._current("policy")
    assert stale is not None and stale.expires_at <= 20.0
    for rival in rivals:
        monkeypatch.setattr(rival, "_current", lambda name: stale)
    winners = [i for i, rival in enumerate(rivals) if rival.acquire("policy", f"r{i}", 10.0, 20.0)]
    assert winners == [0]
    assert RayKVLease(kv).holder("policy", 21.0) == "r0"


def test_ray_kv_renewal_loses_to_a_takeover_that_landed_while_it_wrote() -> None:
    kv = FakeKV()
    clock = Clock(9.0)
    leader = RayKVLease(kv, clock=clock)
    rival = RayKVLease(kv, clock=clock)
    assert leader.acquire("policy", "leader", 10.0, 0.0)

    def rival_takes_over(key: str) -> None:
        # The rival saw the grant expire at 10 and claims the next generation first.
        assert rival.acquire("policy", "rival", 10.0, 10.5)

    kv.before_put = rival_takes_over
    assert not leader.renew("policy", "leader", 10.0, 9.0)
    assert leader.holder("policy", 11.0) == "rival"
    assert rival.renew("policy", "rival", 10.0, 11.0)


def test_ray_kv_renewal_that_finishes_after_the_old_expiry_is_not_trusted() -> None:
    kv = FakeKV()
    clock = Clock()
    lease = RayKVLease(kv, clock=clock)
    assert lease.acquire("policy", "a", 10.0, 0.0)
    clock.t = 10.2  # the renewal started at 9.9 but its write returned after expiry
    assert not lease.renew("policy", "a", 10.0, 9.9)
    clock.t = 12.0
    assert lease.renew("policy", "a", 10.0, 12.0)  # its grant was extended and nobody took over


def test_ray_kv_lease_cleans_up_old_generations() -> None:
    kv = FakeKV()
    lease = RayKVLease(kv, clock=Clock())
    for i in range(5):
        assert lease.acquire("policy", f"h{i}", 1.0, float(i * 10))
    assert len(kv.keys("lease/policy/")) == 1
    assert lease.epoch("policy") == 5


def test_ray_kv_lease_reports_a_garbled_grant() -> None:
    kv = FakeKV()
    kv.data["lease/policy/000000000001"] = b"not json"
    with pytest.raises(ValueError, match="generation 1 is garbled"):
        RayKVLease(kv).holder("policy", 0.0)


@pytest.mark.integration
def test_ray_kv_lease_on_a_real_gcs() -> None:
    ray = pytest.importorskip("ray")
    ray.init(
        address="local",
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        clock = Clock(100.0)
        first = RayKVLease(clock=clock)
        second = RayKVLease(clock=clock)
        assert first.acquire("it-policy", "first", 10.0, 100.0)
        assert not second.acquire("it-policy", "second", 10.0, 105.0)
        clock.t = 108.0
        assert first.renew("it-policy", "first", 10.0, 108.0)
        assert second.holder("it-policy", 117.0) == "first"
        clock.t = 119.0
        assert second.acquire("it-policy", "second", 10.0, 119.0)
        assert not first.renew("it-policy", "first", 10.0, 119.0)
        assert first.holder("it-policy", 120.0) == "second"
    finally:
        ray.shutdown()
