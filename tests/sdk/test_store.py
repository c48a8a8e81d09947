"""Store contract: checkpoint + journal transactions, crash safety, multi-process safety, id
validation, durability modes, migration of RECORD_FORMAT 1 stores."""
import json
import multiprocessing as mp
import os
import sqlite3
import struct
import zlib

import numpy as np
import pytest
from pathlib import Path

import edge_omd.store as store_mod
from edge_omd.errors import (ConfigError, EdgeOMDError, HeadMismatchError, StateFormatError,
                             StoreError)
from edge_omd.personalizer import Personalizer
from edge_omd.reward_model import RewardModel
from edge_omd.store import FolderStore, SQLiteStore, UserIdError, validate_user_id, journal
from tests.sdk import _workers
from tests.sdk.fakes import FakeHead

FP = bytes(range(32))
PROMPT = "how do I reverse a list in python"
CODE = "use slicing code xs reverse python snippet"
PROSE = "lists are ordered collections and there are many ways to think about order"


def _state(dim=8, t=0):
    m = RewardModel(dim, dtype="float64", solver="diagonal")
    for i in range(t):
        m.learn_one(np.eye(dim)[i % dim], 1.0)
    return m.to_bytes()


def _rec(epoch, seq, dim=8, value=1.0):
    return journal.encode(epoch, seq, np.full(dim, value, np.float64), 1.0, 1.0)


def test_transaction_get_sync_delete_round_trip(store):
    assert store.get("alice") is None and store.version("alice") is None
    base = _state()
    with store.transaction("alice", head_fingerprint=FP, dim=8) as tx:
        assert tx.sync(None).head is None
        head = tx.create(base)
        tx.append([_rec(head.epoch, 1), _rec(head.epoch, 2, value=0.5)])
    rec = store.get("alice")
    assert (rec.updates, rec.checkpoint_updates, rec.state, rec.dim, rec.head_fingerprint) == \
        (2, 0, base, 8, FP)
    assert [r.seq for r in rec.journal] == [1, 2] and rec.journal[1].z[0] == 0.5
    assert store.version("alice") == (head.epoch, 2)
    # a reader at the head gets nothing; one record behind gets the tail only
    s = store.sync("alice", None)
    assert s.record is not None and s.head.updates == 2
    assert store.sync("alice", s.head).tail == () and store.sync("alice", s.head).record is None
    with store.transaction("alice", head_fingerprint=FP, dim=8) as tx:
        tx.sync(s.head)
        tx.append([_rec(head.epoch, 3)])
    t = store.sync("alice", s.head)
    assert t.record is None and [r.seq for r in t.tail] == [3]
    # a checkpoint clears the journal up to it; a cursor behind it reloads
    with store.transaction("alice", head_fingerprint=FP, dim=8, checkpoint=True) as tx:
        tx.sync(t.head)
        tx.checkpoint(_state(t=3), updates=3)
    rec = store.get("alice")
    assert (rec.updates, rec.checkpoint_updates, rec.journal) == (3, 3, ())
    assert store.sync("alice", s.head).record is not None
    store.update("bob", lambda old: _state(), head_fingerprint=None, dim=8)
    assert store.users() == ["alice", "bob"]
    assert store.delete("alice") is True and store.delete("alice") is False
    assert store.get("alice") is None and store.users() == ["bob"]


def test_failed_transaction_changes_nothing(store):
    with store.transaction("u1", head_fingerprint=FP, dim=8) as tx:
        tx.create(_state())
    before = store.get("u1")
    with pytest.raises(RuntimeError):
        with store.transaction("u1", head_fingerprint=FP, dim=8) as tx:
            tx.sync(None)
            tx.append([_rec(before.epoch, 1)])
            tx.checkpoint(_state(t=1), updates=1)
            raise RuntimeError("the model refused the observation")
    with pytest.raises(StoreError, match="not bytes"):
        store.update("u1", lambda old: "a str", head_fingerprint=FP, dim=8)
    with pytest.raises(RuntimeError):   # a new user that fails is not created either
        with store.transaction("u2", head_fingerprint=FP, dim=8) as tx:
            tx.create(_state())
            raise RuntimeError("boom")
    assert store.get("u1") == before and store.get("u1").journal == ()
    assert store.users() == ["u1"]


@pytest.mark.parametrize("bad", ["", "../escape", "a/b", "a\\b", ".hidden", "..", "x" * 129,
                                 "tab\there", "nul\x00", 7, None, b"bytes"])
def test_user_ids_are_validated_and_cannot_escape(tmp_path, bad):
    folder = tmp_path / "users"
    store = FolderStore(folder)
    with pytest.raises(UserIdError):
        store.update(bad, lambda old: b"x", head_fingerprint=None, dim=8)
    with pytest.raises(UserIdError):
        with store.transaction(bad, head_fingerprint=None, dim=8):
            pass
    with pytest.raises(ValueError):         # UserIdError is also a ValueError
        validate_user_id(bad)
    # nothing was written anywhere under tmp_path except the folder itself and its name key
    assert sorted(p.name for p in tmp_path.rglob("*")) == [".omdkey", "users"]


def test_state_survives_reopen(store, head, tmp_path):
    p = Personalizer(head, store, "carol")
    p.prefer("how do I sort a list", "use sorted(xs) in code", "write a long essay about lists")
    p.thumb("greeting", "hello there friend", up=True)
    theta, n = p.model.theta, p.updates
    store.close()
    again = (SQLiteStore(store.path) if isinstance(store, SQLiteStore) else FolderStore(store.folder))
    q = Personalizer(FakeHead(dim=64), again, "carol")
    assert q.updates == n == 2 and q.model.t == 2
    np.testing.assert_array_equal(q.model.theta, theta)
    again.close()


def test_mismatched_head_is_refused(store, head):
    Personalizer(head, store, "dave").thumb("p", "a response", up=True)
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
    Personalizer(head, sqlite_store, "erin").thumb("p", "r", up=False)
    sqlite_store._con().execute("UPDATE users SET format_version = 99")
    with pytest.raises(StateFormatError, match="format 99"):
        Personalizer(head, sqlite_store, "erin")


def test_corrupt_checkpoint_file_is_refused(tmp_path, head):
    store = FolderStore(tmp_path)
    Personalizer(head, store, "frank").thumb("p", "r", up=True)
    path = Path(store.paths("frank").checkpoint)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(StateFormatError, match="checksum"):
        store.get("frank")


def test_sqlite_is_wal_schema_versioned_and_has_two_durability_modes(tmp_path):
    path = tmp_path / "s.sqlite"
    store = SQLiteStore(path)
    assert store._con().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._con().execute("PRAGMA synchronous").fetchone()[0] == 2          # FULL
    assert store._con().execute("PRAGMA user_version").fetchone()[0] == 3
    store.close()
    for durable in ("normal", False):
        fast = SQLiteStore(path, durable=durable)
        assert fast.durable == "normal"
        assert fast._con().execute("PRAGMA synchronous").fetchone()[0] == 1       # NORMAL
        # a checkpoint transaction is committed with FULL all the same, then back to NORMAL
        with fast.transaction("u", head_fingerprint=None, dim=8, checkpoint=True) as tx:
            assert fast._con().execute("PRAGMA synchronous").fetchone()[0] == 2
            tx.create(_state())
        assert fast._con().execute("PRAGMA synchronous").fetchone()[0] == 1
        fast.close()
    assert SQLiteStore(path, durable=True).durable == "full"
    with pytest.raises(ConfigError):
        SQLiteStore(path, durable="sometimes")
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 42")
    con.close()
    with pytest.raises(StateFormatError, match="schema version 42"):
        SQLiteStore(path)
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        SQLiteStore(tmp_path / "junk.sqlite")


def test_stores_do_not_create_parent_folders(tmp_path):
    missing = tmp_path / "nonexistent" / "dir"
    with pytest.raises(StoreError, match="does not exist"):
        SQLiteStore(missing / "x.sqlite")
    with pytest.raises(StoreError, match="parent"):
        FolderStore(missing / "users")
    assert not (tmp_path / "nonexistent").exists()
    FolderStore(tmp_path / "leaf")           # the leaf folder itself is created
    assert (tmp_path / "leaf").is_dir()
    with pytest.raises(ConfigError):
        FolderStore(tmp_path / "leaf", durable="maybe")


def _run(target, *args):
    proc = mp.get_context("spawn").Process(target=target, args=args)
    proc.start()
    proc.join(60)
    return proc.exitcode


def test_sqlite_crash_inside_transaction_keeps_last_commit(tmp_path, head):
    path = tmp_path / "s.sqlite"
    store = SQLiteStore(path)
    p = Personalizer(head, store, "gina")
    p.thumb("p", "committed answer", up=True)
    committed = store.get("gina")
    assert _run(_workers.crash_inside_sqlite_transaction, str(path), "gina") == 3
    store.close()
    again = SQLiteStore(path)                    # recovery on open
    assert again.get("gina") == committed
    q = Personalizer(FakeHead(dim=64), again, "gina")
    q.thumb("p", "and another", up=False)     # and the store is writable again
    assert q.updates == 2 and q.model.t == 2
    again.close()


def test_folder_crash_before_rename_keeps_last_commit(tmp_path):
    store = FolderStore(tmp_path)
    committed = store.update("hank", lambda old: _state(), head_fingerprint=None, dim=8)
    assert _run(_workers.crash_before_rename, str(tmp_path), "hank") == 3
    assert store.get("hank") == committed
    assert store.users() == ["hank"]             # the orphan temporary file is not a user
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_cached_personalizer_replays_what_another_writer_appended(tmp_path, head, monkeypatch):
    path = tmp_path / "s.sqlite"
    a = Personalizer(head, SQLiteStore(path), "ivy")
    b = Personalizer(FakeHead(dim=64), SQLiteStore(path), "ivy")   # e.g. another process
    a.prefer("q", "short answer with code", "long winded prose")
    assert b.updates == 1 and b.model.t == 1                       # b sees a's commit
    loads = []
    real = RewardModel.from_bytes.__func__
    monkeypatch.setattr(RewardModel, "from_bytes",
                        classmethod(lambda cls, data: loads.append(1) or real(cls, data)))
    b.prefer("q", "short answer with code", "long winded prose")
    a.prefer("q", "short answer with code", "long winded prose")   # a replays b's record
    assert a.updates == 3 and b.updates == 3
    assert loads == []              # caught up by replaying records, never by reloading
    monkeypatch.undo()
    assert a.model.t == 3 and b.model.t == 3
    assert a.model.to_bytes() == b.model.to_bytes()


def test_unreadable_state_says_how_to_recover(sqlite_store, head):
    sqlite_store.update("kim", lambda old: b"garbage", head_fingerprint=head.fingerprint, dim=64)
    with pytest.raises(StateFormatError, match=r"store.delete\('kim'\)"):
        Personalizer(head, sqlite_store, "kim")
    assert sqlite_store.get("kim").state == b"garbage"
    sqlite_store.delete("kim")
    assert Personalizer(head, sqlite_store, "kim").updates == 0


# ------------------------------------------------------------------ torn and corrupt records

def test_folder_torn_record_stops_replay_and_is_cut_before_the_next_append(tmp_path, head):
    store = FolderStore(tmp_path)
    p = Personalizer(head, store, "lea", checkpoint_every=100)
    for i in range(3):
        p.thumb("p", f"answer {i}", up=True)
    live = p.model.to_bytes()
    jpath = Path(store.paths("lea").journal)
    good = jpath.read_bytes()
    rec = journal.encode(p._session.cursor.epoch, 4, np.ones(64, np.float32), 1.0, 1.0)
    jpath.write_bytes(good + rec[:len(rec) // 2])            # a crash in the middle of an append
    q = Personalizer(FakeHead(dim=64), FolderStore(tmp_path), "lea")
    assert q.updates == 3 and q.model.to_bytes() == live      # everything before it survives
    q.thumb("p", "after the crash", up=False)
    # the torn half record was cut: the journal is the three records and the new one
    assert q.updates == 4 and len(jpath.read_bytes()) == len(good) + journal.record_size(64, 4)
    r = Personalizer(FakeHead(dim=64), FolderStore(tmp_path), "lea")
    assert r.updates == 4 and r.model.to_bytes() == q.model.to_bytes()


@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_corrupt_record_stops_replay_there(tmp_path, head, kind):
    store = SQLiteStore(tmp_path / "s.sqlite") if kind == "sqlite" else FolderStore(tmp_path)
    p = Personalizer(head, store, "max", checkpoint_every=100)
    p.thumb("p", "answer one", up=True)
    after_one = p.model.to_bytes()
    p.thumb("p", "answer two", up=False)
    p.thumb("p", "answer three", up=True)
    if kind == "sqlite":
        con = store._con()
        rid, blob = con.execute("SELECT id, rec FROM journal ORDER BY id LIMIT 1 OFFSET 1"
                                ).fetchone()
        blob = bytearray(blob)
        blob[100] ^= 0x01
        con.execute("UPDATE journal SET rec = ? WHERE id = ?", (bytes(blob), rid))
    else:
        jpath = Path(store.paths("max").journal)
        blob = bytearray(jpath.read_bytes())
        blob[journal.record_size(64, 4) + 100] ^= 0x01          # inside the second record
        jpath.write_bytes(bytes(blob))
    q = Personalizer(FakeHead(dim=64), store, "max")
    assert q.updates == 1 and q.model.to_bytes() == after_one    # the third is not applied
    q.thumb("p", "new second", up=True)                       # appends continue the prefix
    assert Personalizer(FakeHead(dim=64), store, "max").updates == 2


# ------------------------------------------------------------------ migration (format 1)

_V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS user_state (
    user_id          TEXT PRIMARY KEY,
    head_fingerprint BLOB,
    dim              INTEGER NOT NULL,
    format_version   INTEGER NOT NULL,
    state            BLOB NOT NULL,
    updates          INTEGER NOT NULL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
)"""


def _trained(head, n):
    m = RewardModel(head.dim)
    head.check(m)
    for i in range(n):
        phi = head.features("old prompt", [f"old answer {i}", f"other {i}"])
        m.learn_pair(phi[0], phi[1])
    return m


def test_sqlite_schema_1_store_is_migrated_on_open_with_nothing_lost(tmp_path, head):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(_V1_SCHEMA)
    con.execute("PRAGMA user_version = 1")
    models = {"ann": _trained(head, 3), "ben": _trained(head, 5)}
    for uid, m in models.items():
        con.execute("INSERT INTO user_state VALUES (?,?,?,?,?,?,?,?)",
                    (uid, head.fingerprint, 64, 1, m.to_bytes(), m.t + 10, 1.0e9, 1.1e9))
    con.commit()
    con.close()
    store = SQLiteStore(path)
    assert store.users() == ["ann", "ben"]
    assert store._con().execute("PRAGMA user_version").fetchone()[0] == 3
    for uid, m in models.items():
        p = Personalizer(head, store, uid)
        assert p.updates == m.t + 10 and p.model.to_bytes() == m.to_bytes()
        p.thumb("new prompt", "new answer", up=True)
        assert p.updates == m.t + 11
    store.close()
    assert Personalizer(head, SQLiteStore(path), "ann").model.t == 4


def test_folder_format_1_file_opens_and_becomes_a_checkpoint(tmp_path, head):
    m = _trained(head, 4)
    h = json.dumps({"user_id": "cat", "dim": 64, "format_version": 1,
                    "head_fingerprint": head.fingerprint.hex(), "updates": 4,
                    "created_at": 1.0e9, "updated_at": 1.1e9}).encode()
    body = b"EOMDREC1" + struct.pack("<I", len(h)) + h + m.to_bytes()
    (tmp_path / "cat.omdstate").write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    store = FolderStore(tmp_path)
    p = Personalizer(head, store, "cat", checkpoint_every=2)
    assert p.updates == 4 and p.model.to_bytes() == m.to_bytes()
    p.thumb("new prompt", "new answer", up=True)           # a journal on the old file
    q = Personalizer(FakeHead(dim=64), FolderStore(tmp_path), "cat")
    assert q.updates == 5 and q.model.to_bytes() == p.model.to_bytes()
    p.thumb("new prompt", "second new answer", up=False)   # the checkpoint rewrites it
    # moved to the keyed names at the first write, rewritten as format 2 at the checkpoint
    assert not (tmp_path / "cat.omdstate").exists()
    assert Path(store.paths("cat").checkpoint).read_bytes()[:8] == b"EOMDREC2"
    r = Personalizer(FakeHead(dim=64), FolderStore(tmp_path), "cat")
    assert r.updates == 6 and r.model.to_bytes() == p.model.to_bytes()
    assert r.store.get("cat").created_at == 1.0e9


def test_version_token_changes_on_import_even_when_the_count_does_not(tmp_path, head):
    store = SQLiteStore(tmp_path / "s.sqlite")
    p = Personalizer(head, store, "dan")
    p.thumb("p", "an answer", up=True)
    before = store.version("dan")
    p.import_state(p.export_state())
    after = store.version("dan")
    assert after[1] == before[1] == 1 and after != before


def test_folder_reader_never_continues_past_a_record_that_was_cut_back(tmp_path, head):
    """A reader that applied a record whose append then failed (cut back by the writer) must
    not go on from its old offset when other records are appended there: it reloads."""
    p = Personalizer(head, FolderStore(tmp_path), "ola", checkpoint_every=100)
    p.thumb("p", "answer one", up=True)
    p.thumb("p", "answer two", up=True)
    reader = Personalizer(FakeHead(dim=64), FolderStore(tmp_path), "ola")
    assert reader.updates == 2
    jpath = Path(reader.store.paths("ola").journal)
    good = jpath.read_bytes()
    bogus = journal.encode(p._session.cursor.epoch, 3, np.full(64, 0.1, np.float32), 1.0, 1.0)
    jpath.write_bytes(good + bogus)            # visible for a moment (its fsync will fail)...
    assert reader.updates == 3
    jpath.write_bytes(good)                    # ...and cut back: it was never committed
    p.thumb("p", "the real third", up=False)
    p.thumb("p", "the fourth", up=True)
    assert reader.updates == 4 and reader.model.to_bytes() == p.model.to_bytes()


def test_a_killed_checkpoint_writers_temporary_file_goes_without_a_listing(tmp_path, head):
    """A checkpoint is written through the user's fixed `.<h>.omdck.tmp` under its lock: a
    killed writer's leftover is erased by the user's first write in a process and replaced by
    its next checkpoint; older versions' `.<id>.<random>.tmp` go with tidy() (and delete)."""
    store = FolderStore(tmp_path)
    p = Personalizer(head, store, "pia", checkpoint_every=2)
    p.thumb("p", "answer one", up=True)
    ck = Path(store.paths("pia").checkpoint)
    fixed = ck.parent / f".{ck.name}.tmp"
    fixed.write_bytes(b"a full state left by a killed writer")
    p.thumb("p", "answer two", up=True)       # the second record: a checkpoint
    assert not fixed.exists()
    fixed.write_bytes(b"a full state left by a killed writer")
    q = Personalizer(head, FolderStore(tmp_path), "pia", checkpoint_every=100)
    q.thumb("p", "answer three", up=True)     # the first write of a new store object
    assert not fixed.exists() and q.updates == 3
    stale = tmp_path / ".pia.0123456789ab.tmp"
    other = tmp_path / ".pia.smith.0123456789ab.tmp"
    stale.write_bytes(b"a full state left by a crash of an older version")
    other.write_bytes(b"another user's")
    fixed.write_bytes(b"left by a killed writer")
    assert FolderStore(tmp_path).tidy() == 3      # (another user's old-style file as well)
    assert not stale.exists() and not other.exists() and not fixed.exists()
    assert Personalizer(head, FolderStore(tmp_path), "pia").updates == 3


# ------------------------------------------------------------------ committed means committed

def test_folder_dir_fsync_failure_after_rename_is_not_reported_as_a_failed_update(
        tmp_path, head):
    class FailingDirSync(store_mod.FileIO):
        armed = False

        def fsync_dir(self, path):
            if self.armed:
                raise OSError(5, "Input/output error")
            super().fsync_dir(path)

    io = FailingDirSync()
    store = FolderStore(tmp_path, io=io)
    p = Personalizer(head, store, "alice", checkpoint_every=2)
    p.thumb(PROMPT, CODE, up=True)
    io.armed = True
    p.thumb(PROMPT, PROSE, up=False)   # committed, then the checkpoint's folder fsync fails:
    assert p.updates == 2 and p.pending == 0 and p.model.t == 2      # not reported as failed
    assert os.path.getsize(store.paths("alice").journal) > 0          # the journal is kept
    q = Personalizer(head, FolderStore(tmp_path), "alice")
    assert q.updates == 2 and q.model.to_bytes() == p.model.to_bytes()
    io.armed = False
    p.thumb(PROMPT, CODE, up=False)
    assert Personalizer(head, FolderStore(tmp_path), "alice").updates == 3
    assert store.delete("alice") is True and store.get("alice") is None
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_folder_failure_before_rename_still_reports_and_keeps_the_old_state(tmp_path,
                                                                             monkeypatch):
    store = FolderStore(tmp_path)
    before = store.update("bob", lambda old: b"old", head_fingerprint=FP, dim=8)

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StoreError, match="previous state is intact"):
        store.update("bob", lambda old: b"new", head_fingerprint=FP, dim=8)
    monkeypatch.undo()
    assert store.get("bob") == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


class _FlakyConnection:
    """Wraps a sqlite3 connection; statements containing `fail_on` raise `exc`."""

    def __init__(self, con, fail_on, exc):
        self._con, self._fail_on, self._exc = con, fail_on, exc

    def execute(self, sql, *args):
        if self._fail_on in sql:
            raise self._exc
        return self._con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_sqlite_delete_is_not_reported_failed_when_the_checkpoint_after_commit_fails(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    store.update("carol", lambda old: b"x", head_fingerprint=FP, dim=8)
    real = store._con()
    store._local.con = _FlakyConnection(real, "wal_checkpoint",
                                        sqlite3.OperationalError("disk I/O error"))
    try:
        assert store.delete("carol") is True
    finally:
        store._local.con = real
    assert store.get("carol") is None and store.users() == []
    store.close()


def test_sqlite_check_head_wraps_database_errors(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    real = store._con()
    store._local.con = _FlakyConnection(real, "FROM users",
                                        sqlite3.DatabaseError("database disk image is malformed"))
    try:
        with pytest.raises(StoreError):
            store.check_head(FP, 8)
    finally:
        store._local.con = real
    store.close()


# ------------------------------------------------------------------ header parsing

def _forge(magic, header: bytes, state: bytes) -> bytes:
    body = magic + struct.pack("<I", len(header)) + header + state
    return body + struct.pack("<I", zlib.crc32(body))


def _split(blob):
    hlen = struct.unpack("<I", blob[8:12])[0]
    return json.loads(blob[12:12 + hlen]), blob[12 + hlen:-4]


BAD_HEADERS = {
    "dim=1e999": lambda h: json.dumps(dict(h, dim=1e999)).encode(),
    "dim=float": lambda h: json.dumps(dict(h, dim=float(h["dim"]))).encode(),
    "dim=true": lambda h: json.dumps(dict(h, dim=True)).encode(),
    "nested": lambda h: b"[" * 100000 + b"]" * 100000,
    "nested-object": lambda h: b'{"a":' * 50000 + b"1" + b"}" * 50000,
    "list": lambda h: b"[1, 2]",
    "fingerprint=int": lambda h: json.dumps(dict(h, head_fingerprint=7)).encode(),
}


@pytest.mark.parametrize("name", sorted(BAD_HEADERS))
def test_import_state_refuses_malformed_headers_with_state_format_error(name, head,
                                                                         sqlite_store):
    p = Personalizer(head, sqlite_store, "u")
    p.thumb(PROMPT, CODE, up=True)
    h, state = _split(p.export_state())
    before = sqlite_store.get("u")
    with pytest.raises(StateFormatError):
        p.import_state(_forge(b"EOMDUSR1", BAD_HEADERS[name](h), state))
    assert sqlite_store.get("u") == before


@pytest.mark.parametrize("name", sorted(BAD_HEADERS) + ["updates=1e999", "created_at=str"])
def test_folder_store_refuses_malformed_headers_with_state_format_error(name, tmp_path, head):
    store = FolderStore(tmp_path)
    Personalizer(head, store, "bob").thumb(PROMPT, CODE, up=True)
    path = Path(store.paths("bob").checkpoint)
    h, state = _split(path.read_bytes())
    if name == "updates=1e999":
        header = json.dumps(dict(h, updates=1e999)).encode()
    elif name == "created_at=str":
        header = json.dumps(dict(h, created_at="yesterday")).encode()
    else:
        header = BAD_HEADERS[name](h)
    path.write_bytes(_forge(b"EOMDREC1", header, state))
    with pytest.raises(StateFormatError):
        store.get("bob")
    with pytest.raises(EdgeOMDError):
        Personalizer(head, store, "bob")


# ------------------------------------------------------------------ forget me

def test_folder_delete_erases_the_users_crashed_temporary_files(tmp_path, head):
    store = FolderStore(tmp_path)
    p = Personalizer(head, store, "alice")
    p.thumb(PROMPT, CODE, up=True)
    Personalizer(head, store, "alice.smith").thumb(PROMPT, CODE, up=True)
    full_state = Path(store.paths("alice").checkpoint).read_bytes()
    stale = [tmp_path / ".alice.k2j_x9ab.tmp", tmp_path / ".alice.00000000.tmp"]
    other = tmp_path / ".alice.smith.q1w2e3r4.tmp"    # another user's: must stay
    for f in stale + [other]:
        f.write_bytes(full_state)
    p.reset()
    left = sorted(os.listdir(tmp_path))
    assert not any(f.name in left for f in stale)
    assert other.name in left and os.path.basename(store.paths("alice.smith").checkpoint) in left
    assert os.path.basename(store.paths("alice").checkpoint) not in left
    # a user with no record: delete still erases its stale temporary files, returns False
    stale2 = tmp_path / ".zed.abcdefgh.tmp"
    stale2.write_bytes(full_state)
    assert store.delete("zed") is False and not stale2.exists()


def test_an_explicit_checkpoint_that_fails_is_reported_and_loses_nothing(tmp_path, head):
    class NoRename(store_mod.FileIO):
        def replace(self, src, dst):
            raise OSError(28, "No space left on device")

    store = FolderStore(tmp_path)
    p = Personalizer(head, store, "u", checkpoint_every=100)
    p.thumb(PROMPT, CODE, up=True)
    p.thumb(PROMPT, PROSE, up=False)
    live = p.model.to_bytes()
    store.io = NoRename()
    with pytest.raises(StoreError, match="previous state is intact"):
        p.checkpoint()
    store.io = store_mod.FileIO()
    q = Personalizer(head, FolderStore(tmp_path), "u")
    assert q.updates == 2 and q.model.to_bytes() == live
    assert p.checkpoint() is True and store.get("u").journal == ()
