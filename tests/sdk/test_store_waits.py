"""Issue 21, items 3 and 4: nothing waits forever, nothing waits for itself.

- A writer frozen inside its transaction (SIGSTOP, as Android freezes background apps) holds
  the lock: every other writer gives up at its store's timeout_s with a StoreError naming the
  frozen process and how long it has held the lock (SQLite: writers of other users too, one
  lock per database; the folder store: other users go on). Was: SQLiteStore waited forever in
  the fair queue, FolderStore had no timeout at all.
- The fair queue's entries of killed waiters are passed and reused by the next writer, and a
  waiter that gives up keeps the others in order.
- A write to a store from inside a write of the same lock in the same thread (a Store.update
  function that writes the user again) raises StoreError at once. Was: a deadlock (fair queue),
  or with fair=False the inner write confirmed and then overwritten (FolderStore).

Every wait here runs in a thread or child joined with a timeout of its own: a regression fails,
it does not hang the suite. EDGE_OMD_LONG=1 repeats the frozen-holder check (kinds, queues and
timeouts drawn at random) and prints the tally.
"""
import os
import random
import select
import signal
import threading
import time

import pytest

from edge_omd.errors import StoreError
from edge_omd.personalizer import Personalizer
from edge_omd.store import FairQueue, FolderStore, SQLiteStore
from tests.sdk import _workers
from tests.sdk.fakes import FakeHead

LONG = os.environ.get("EDGE_OMD_LONG", "") not in ("", "0")
DIM = 8


def _open(kind, path, **kw):
    return SQLiteStore(path, **kw) if kind == "sqlite" else FolderStore(path, **kw)


def _fork_holder(kind, path, user, fair=True, freeze=True):
    """A child process that enters a write transaction of `user` and then stops itself
    (SIGSTOP) or waits for SIGTERM; returns its pid once it holds the lock."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # pragma: no cover - the child
        try:
            os.close(r)
            store = _open(kind, path, fair=fair)
            with store.transaction(user, head_fingerprint=None, dim=DIM) as tx:
                tx.sync(None)
                os.write(w, b"1")
                if freeze:
                    os.kill(os.getpid(), signal.SIGSTOP)
                time.sleep(600)
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert _read1(r) == b"1", "the holder never took the lock"
    finally:
        os.close(r)
    return pid


def _read1(fd, seconds=60):
    """One byte from a pipe, or AssertionError after `seconds` (never a wait forever)."""
    ready, _, _ = select.select([fd], [], [], seconds)
    assert ready, "the child never answered"
    return os.read(fd, 1)


def _end(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def _path(tmp_path, kind):
    return str(tmp_path / ("s.sqlite" if kind == "sqlite" else "users"))


# ------------------------------------------------------------------ a frozen holder

@pytest.mark.parametrize("fair", [True, False])
@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_a_frozen_writer_makes_others_give_up_at_their_deadline_naming_it(tmp_path, kind, fair):
    path = _path(tmp_path, kind)
    _open(kind, path).close()
    holder = _fork_holder(kind, path, "alice", fair=fair)
    try:
        store = _open(kind, path, timeout_s=1.0, fair=fair)
        p = Personalizer(FakeHead(dim=DIM), store, "alice")
        t0 = time.monotonic()
        how, exc = _workers.within(60, lambda: p.thumb("p", "an answer", up=True))
        waited = time.monotonic() - t0
        assert how == "raised" and isinstance(exc, StoreError), (how, exc)
        msg = str(exc)
        assert f"process {holder}" in msg and "held" in msg and "timeout_s=1" in msg, msg
        assert waited >= 1.0, waited          # it waited its deadline, not less
        # another user: SQLite has one write lock per database, the folder one per user
        q = Personalizer(FakeHead(dim=DIM), store, "bob")
        how, exc = _workers.within(60, lambda: q.thumb("p", "an answer", up=True))
        if kind == "sqlite":
            assert how == "raised" and f"process {holder}" in str(exc), (how, exc)
        else:
            assert how == "ok" and q.updates == 1, (how, exc)
    finally:
        _end(holder)
    # the holder is gone: the same store object writes again
    how, exc = _workers.within(60, lambda: p.thumb("p", "an answer", up=True))
    assert how == "ok" and p.updates == 1, (how, exc)


@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_a_waiter_that_gives_up_keeps_the_queue_in_order(tmp_path, kind):
    """Holder H (not frozen), waiter A gives up at 0.3 s, waiter B (30 s) must still wait for
    H: A's place is passed on, never a way in."""
    path = _path(tmp_path, kind)
    _open(kind, path).close()
    holder = _fork_holder(kind, path, "u", freeze=False)
    try:
        a = _workers.within(60, lambda: _open(kind, path, timeout_s=0.3).update(
            "u", lambda old: b"A", head_fingerprint=None, dim=DIM))
        assert a[0] == "raised" and isinstance(a[1], StoreError), a
        entered = threading.Event()

        def b():
            with _open(kind, path, timeout_s=60).transaction("u", head_fingerprint=None,
                                                           dim=DIM) as tx:
                tx.sync(None)
                entered.set()
        t = threading.Thread(target=b, daemon=True)
        t.start()
        time.sleep(0.5)
        assert not entered.is_set()          # H still holds the lock
    finally:
        _end(holder)
    t.join(60)
    assert entered.is_set()


def test_queue_entries_of_killed_waiters_are_passed_and_reused(tmp_path):
    """Three waiters queued behind a holder are SIGKILLed; once the holder is done, the next
    writer passes their entries without waiting and takes one of the four files again: the
    queue never grows by the entries of the dead."""
    base = str(tmp_path / "q")
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    holder = os.fork()
    if holder == 0:   # pragma: no cover - the child
        try:
            with FairQueue(base)():
                os.write(ready_w, b"1")
                _read1(go_r, 120)
        finally:
            os._exit(0)
    os.close(ready_w)
    assert _read1(ready_r) == b"1"
    waiters = []
    for i in range(3):
        pid = os.fork()
        if pid == 0:   # pragma: no cover - the child
            try:
                with FairQueue(base)():
                    pass
            finally:
                os._exit(0)
        waiters.append(pid)
        deadline = time.monotonic() + 30
        while int.from_bytes(open(base, "rb").read(8), "little") < i + 2 and \
                time.monotonic() < deadline:
            time.sleep(0.005)
    for pid in reversed(waiters):    # the last first: no live successor erases an entry
        _end(pid)
    assert len([n for n in os.listdir(tmp_path) if n.startswith("q.")]) == 4   # 1 + 3 dead
    os.write(go_w, b"1")
    os.waitpid(holder, 0)
    def write():
        with FairQueue(base)():
            return sorted(n for n in os.listdir(tmp_path) if n.startswith("q."))
    how, inside = _workers.within(60, write)
    entries = ["q.0", "q.1", "q.2", "q.3"]
    assert how == "ok" and inside == entries, (how, inside)   # no new file
    assert sorted(os.listdir(tmp_path)) == ["q"] + entries


if LONG:
    def test_long_frozen_holders_are_named_at_every_deadline(tmp_path):
        """EDGE_OMD_LONG=1: 40 frozen holders, store kind, queue and timeout_s drawn at
        random; every waiter gives up between timeout_s and timeout_s + 2 s naming the holder;
        prints the tally."""
        rng = random.Random(21)
        overshoot, n = [], 40
        for i in range(n):
            kind, fair = rng.choice(["sqlite", "folder"]), rng.random() < 0.7
            timeout = rng.choice([0.2, 0.5, 1.0, 2.0])
            path = str(tmp_path / f"{i}{'.sqlite' if kind == 'sqlite' else ''}")
            _open(kind, path).close()
            holder = _fork_holder(kind, path, "alice", fair=fair)
            try:
                store = _open(kind, path, timeout_s=timeout, fair=fair)
                t0 = time.monotonic()
                how, exc = _workers.within(60, lambda: store.update(
                    "alice", lambda old: b"x", head_fingerprint=None, dim=DIM))
                waited = time.monotonic() - t0
                assert how == "raised" and f"process {holder}" in str(exc), (i, how, exc)
                assert timeout <= waited < timeout + 2.0, (i, kind, fair, timeout, waited)
                overshoot.append(waited - timeout)
            finally:
                _end(holder)
        overshoot.sort()
        print(f"\n[frozen holders] {n} waits, every one gave up naming the holder; time past "
              f"timeout_s: median {overshoot[n // 2] * 1e3:.1f} ms, max "
              f"{overshoot[-1] * 1e3:.1f} ms (load {os.getloadavg()[0]:.1f})")


# ------------------------------------------------------------------ re-entrance

@pytest.mark.parametrize("fair", [True, False])
@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_a_write_inside_a_write_of_the_same_lock_is_refused_at_once(tmp_path, kind, fair):
    store = _open(kind, _path(tmp_path, kind), fair=fair)
    twin = _open(kind, _path(tmp_path, kind), fair=fair)   # another object, the same files

    def outer(inner_store):
        def fn(old):
            inner_store.update("u", lambda o: b"inner", head_fingerprint=None, dim=DIM)
            return b"outer"
        return lambda: store.update("u", fn, head_fingerprint=None, dim=DIM)

    for inner in (store, twin):
        how, exc = _workers.within(30, outer(inner))
        assert how == "raised" and isinstance(exc, StoreError), (how, exc)
        assert "inside a write" in str(exc)
        assert store.get("u") is None          # nothing written, nothing overwritten
    # the Personalizer's verbs from inside a write of their own user
    p = Personalizer(FakeHead(dim=DIM), store, "v")
    how, exc = _workers.within(30, lambda: store.update(
        "v", lambda old: p.thumb("p", "an answer", up=True) or b"x",
        head_fingerprint=None, dim=DIM))
    assert how == "raised" and "inside a write" in str(exc), (how, exc)
    assert store.get("v") is None
    # another user: the folder store has a lock per user (allowed), SQLite one per database
    how, exc = _workers.within(30, lambda: store.update(
        "w", lambda old: store.update("x", lambda o: b"x", head_fingerprint=None, dim=DIM)
        and b"w", head_fingerprint=None, dim=DIM))
    if kind == "folder":
        assert how == "ok" and store.get("w").state == b"w" and store.get("x").state == b"x"
    else:
        assert how == "raised" and "inside a write" in str(exc), (how, exc)
    # and the store still works afterwards
    how, _ = _workers.within(30, lambda: store.update("u", lambda o: b"later", head_fingerprint=None,
                                              dim=DIM))
    assert how == "ok" and store.get("u").state == b"later"


def test_threads_of_one_process_still_share_a_lock_in_turn(tmp_path):
    """Re-entrance is per thread: two threads writing one user are serialised, not refused."""
    for kind in ("sqlite", "folder"):
        store = _open(kind, _path(tmp_path, kind))
        p = [Personalizer(FakeHead(dim=DIM), store, "t") for _ in range(2)]
        errors = []

        def work(k):
            try:
                for i in range(10):
                    _workers.send(p[k], 100 * k + i + 1)
            except Exception as exc:   # noqa: BLE001 - reported below
                errors.append(exc)
        ts = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert not errors and not any(t.is_alive() for t in ts), errors
        assert Personalizer(FakeHead(dim=DIM), store, "t").updates == 20
