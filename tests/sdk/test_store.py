"""Store contract: transactional updates, crash safety, multi-process safety, id validation."""
import multiprocessing as mp
import sqlite3

import numpy as np
import pytest

from edge_omd.errors import HeadMismatchError, StateFormatError, StoreError
from edge_omd.personalizer import Personalizer
from edge_omd.store import FolderStore, SQLiteStore, UserIdError, validate_user_id
from tests.sdk import _workers
from tests.sdk.fakes import FakeHead

FP = bytes(range(32))


def test_update_get_delete_round_trip(store):
    assert store.get("alice") is None and store.version("alice") is None
    r1 = store.update("alice", lambda old: b"one", head_fingerprint=FP, dim=8)
    assert (r1.updates, r1.state, r1.dim, r1.head_fingerprint) == (1, b"one", 8, FP)
    seen = []
    r2 = store.update("alice", lambda old: seen.append(old) or old.state + b"+two",
                      head_fingerprint=FP, dim=8)
    assert seen[0].state == b"one"                      # fn receives the latest committed record
    assert (r2.updates, r2.state, r2.created_at) == (2, b"one+two", r1.created_at)
    assert r2.updated_at >= r1.updated_at
    assert store.get("alice") == r2 and store.version("alice") == (2, r1.created_at)
    store.update("bob", lambda old: b"b", head_fingerprint=None, dim=8)
    assert store.users() == ["alice", "bob"]
    assert store.delete("alice") is True and store.delete("alice") is False
    assert store.get("alice") is None and store.users() == ["bob"]


def test_failed_update_changes_nothing(store):
    store.update("u1", lambda old: b"kept", head_fingerprint=FP, dim=8)
    before = store.get("u1")

    def boom(old):
        raise RuntimeError("the model refused the observation")

    with pytest.raises(RuntimeError):
        store.update("u1", boom, head_fingerprint=FP, dim=8)
    with pytest.raises(StoreError, match="not bytes"):
        store.update("u1", lambda old: "a str", head_fingerprint=FP, dim=8)
    assert store.get("u1") == before


@pytest.mark.parametrize("bad", ["", "../escape", "a/b", "a\\b", ".hidden", "..", "x" * 129,
                                 "tab\there", "nul\x00", 7, None, b"bytes"])
def test_user_ids_are_validated_and_cannot_escape(tmp_path, bad):
    folder = tmp_path / "users"
    store = FolderStore(folder)
    with pytest.raises(UserIdError):
        store.update(bad, lambda old: b"x", head_fingerprint=None, dim=8)
    with pytest.raises(ValueError):         # UserIdError is also a ValueError
        validate_user_id(bad)
    # nothing was written anywhere under tmp_path except the (empty) folder itself
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["users"]


def test_state_survives_reopen(store, head, tmp_path):
    p = Personalizer(head, store, "carol")
    p.prefer("how do I sort a list", "use sorted(xs) in code", "write a long essay about lists")
    p.feedback("greeting", "hello there friend", up=True)
    theta, n = p.model.theta, p.updates
    store.close()
    again = (SQLiteStore(store.path) if isinstance(store, SQLiteStore) else FolderStore(store.folder))
    q = Personalizer(FakeHead(dim=64), again, "carol")
    assert q.updates == n == 2 and q.model.t == 2
    np.testing.assert_array_equal(q.model.theta, theta)
    again.close()


def test_mismatched_head_is_refused(store, head):
    Personalizer(head, store, "dave").feedback("p", "a response", up=True)
    before = store.get("dave")
    with pytest.raises(HeadMismatchError, match="head"):
        Personalizer(FakeHead(dim=64, salt=b"another head"), store, "dave")
    with pytest.raises(HeadMismatchError, match="dim"):
        Personalizer(FakeHead(dim=32), store, "dave")
    with pytest.raises(HeadMismatchError):
        store.check_head(FakeHead(dim=64, salt=b"another head").fingerprint, 64)
    store.check_head(head.fingerprint, 64)       # the right head passes
    assert store.get("dave") == before           # refusing wrote nothing


def test_unknown_record_format_is_refused(sqlite_store, head):
    Personalizer(head, sqlite_store, "erin").feedback("p", "r", up=False)
    sqlite_store._con().execute("UPDATE user_state SET format_version = 99")
    with pytest.raises(StateFormatError, match="format 99"):
        Personalizer(head, sqlite_store, "erin")


def test_corrupt_folder_file_is_refused(tmp_path, head):
    store = FolderStore(tmp_path)
    Personalizer(head, store, "frank").feedback("p", "r", up=True)
    path = tmp_path / "frank.omdstate"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(StateFormatError, match="checksum"):
        store.get("frank")


def test_sqlite_is_wal_and_schema_versioned(tmp_path):
    path = tmp_path / "s.sqlite"
    store = SQLiteStore(path)
    assert store._con().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._con().execute("PRAGMA synchronous").fetchone()[0] == 2          # FULL
    store.close()
    fast = SQLiteStore(path, durable=False)
    assert fast._con().execute("PRAGMA synchronous").fetchone()[0] == 1           # NORMAL
    fast.close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 42")
    con.close()
    with pytest.raises(StateFormatError, match="schema version 42"):
        SQLiteStore(path)
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        SQLiteStore(tmp_path / "junk.sqlite")


def _run(target, *args):
    proc = mp.get_context("spawn").Process(target=target, args=args)
    proc.start()
    proc.join(60)
    return proc.exitcode


def test_sqlite_crash_inside_transaction_keeps_last_commit(tmp_path):
    path = tmp_path / "s.sqlite"
    store = SQLiteStore(path)
    committed = store.update("gina", lambda old: b"committed", head_fingerprint=None, dim=64)
    assert _run(_workers.crash_inside_sqlite_transaction, str(path), "gina") == 3
    store.close()
    again = SQLiteStore(path)                    # recovery on open
    assert again.get("gina") == committed
    assert again.update("gina", lambda old: old.state + b"!", head_fingerprint=None,
                        dim=64).updates == 2     # and the store is writable again
    again.close()


def test_folder_crash_before_rename_keeps_last_commit(tmp_path):
    store = FolderStore(tmp_path)
    committed = store.update("hank", lambda old: b"committed", head_fingerprint=None, dim=64)
    assert _run(_workers.crash_before_rename, str(tmp_path), "hank") == 3
    assert store.get("hank") == committed
    assert store.users() == ["hank"]             # the orphan temporary file is not a user
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_concurrent_processes_never_lose_an_update(tmp_path, kind):
    path = str(tmp_path / ("s.sqlite" if kind == "sqlite" else "users"))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_workers.hammer, args=(kind, path, "shared", w, 25))
             for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = _workers.open_store(kind, path)
    rec = store.get("shared")
    assert rec.updates == 100
    p = Personalizer(FakeHead(dim=64), store, "shared")
    assert p.model.t == 100                      # every update is inside the state, not only counted
    store.close()


def test_cached_personalizer_reloads_when_another_writer_advances(tmp_path, head):
    path = tmp_path / "s.sqlite"
    a = Personalizer(head, SQLiteStore(path), "ivy")
    b = Personalizer(FakeHead(dim=64), SQLiteStore(path), "ivy")   # e.g. another process
    a.prefer("q", "short answer with code", "long winded prose")
    assert b.updates == 1 and b.model.t == 1                       # b sees a's commit
    b.prefer("q", "short answer with code", "long winded prose")
    a.prefer("q", "short answer with code", "long winded prose")   # a replays on b's state
    assert a.updates == 3 and a.model.t == 3 and b.model.t == 3
    np.testing.assert_array_equal(a.model.theta, b.model.theta)


def test_unreadable_state_says_how_to_recover(sqlite_store, head):
    sqlite_store.update("kim", lambda old: b"garbage", head_fingerprint=head.fingerprint, dim=64)
    with pytest.raises(StateFormatError, match=r"store.delete\('kim'\)"):
        Personalizer(head, sqlite_store, "kim")
    assert sqlite_store.get("kim").state == b"garbage"
    sqlite_store.delete("kim")
    assert Personalizer(head, sqlite_store, "kim").updates == 0
