"""Issue 12, the store rows of the defect table and item 6 (hygiene), one regression test each:
tampered SQLite files (corrupt schema, dim='abc', counter 2^63-1, bad user ids), byte flips of
both stores' files, stale temporary files, file names that do not reveal user ids (keyed hash,
migration of old folders), and the fair queue's order (item 5's correctness part; its figures
are in `python -m edge_omd_bench.persistence --only contention`)."""
import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_omd import envelope
from edge_omd.errors import EdgeOMDError, StateFormatError, StoreError
from edge_omd.personalizer import Personalizer
from edge_omd.reward_model import RewardModel
from edge_omd.store import FairQueue, FolderStore, SQLiteStore
from tests.sdk import _workers
from tests.sdk.fakes import FakeHead

DIM = 16
OPTS = {"solver": "exact", "dtype": "float64"}


def _sqlite_user(tmp_path, n=3):
    path = tmp_path / "s.sqlite"
    store = SQLiteStore(path)
    p = Personalizer(FakeHead(dim=DIM), store, "u", checkpoint_every=100, model_options=OPTS)
    for k in range(1, n + 1):
        _workers.send(p, k)
    store.close()
    return path


def _tamper(path, *sql):
    con = sqlite3.connect(str(path))
    con.execute("PRAGMA writable_schema=ON")
    for s in sql:
        con.execute(s)
    con.commit()
    con.close()


def _every_verb_raises_typed(path):
    """Open, read, list, check, write: each either works or raises an SDK error."""
    outcomes = []
    for verb in ("open", "get", "users", "check_head", "feedback", "delete"):
        try:
            store = SQLiteStore(path)
            if verb == "get":
                store.get("u")
            elif verb == "users":
                store.users()
            elif verb == "check_head":
                store.check_head(FakeHead(dim=DIM).fingerprint, DIM)
            elif verb == "feedback":
                p = Personalizer(FakeHead(dim=DIM), store, "u", model_options=OPTS)
                _workers.send(p, 1000)
            elif verb == "delete":
                store.delete("u")
            store.close()
            outcomes.append(None)
        except EdgeOMDError as exc:
            outcomes.append(exc)
    return outcomes


# ------------------------------------------------------------------ tampered SQLite files

def test_sqlite_corrupt_schema_on_open_is_a_store_error_with_a_fix(tmp_path):
    """Was: a raw UnicodeDecodeError (the schema text is not UTF-8)."""
    path = _sqlite_user(tmp_path)
    _tamper(path, "UPDATE sqlite_master SET sql = CAST(X'435245415445205441424c45206a6f75726e"
                  "616c20ff' AS TEXT) WHERE name = 'journal'")
    with pytest.raises(StoreError, match="restore the file from a backup"):
        SQLiteStore(path)


def test_sqlite_dim_abc_is_a_state_format_error(tmp_path):
    """Was: a raw ValueError from int('abc')."""
    path = _sqlite_user(tmp_path)
    _tamper(path, "UPDATE users SET dim = 'abc'")
    store = SQLiteStore(path)
    with pytest.raises(StateFormatError, match="users.dim.*store.delete"):
        store.get("u")
    with pytest.raises(StateFormatError, match="users.dim"):
        store.check_head(FakeHead(dim=DIM).fingerprint, DIM)
    with pytest.raises(StateFormatError):
        Personalizer(FakeHead(dim=DIM), store, "u")
    assert store.delete("u") is True and store.get("u") is None   # the fix works


@pytest.mark.parametrize("column", ["checkpoint_updates", "epoch", "slot"])
def test_sqlite_counter_2_63_is_a_state_format_error(tmp_path, column):
    """Was: a raw OverflowError when the next record's rowid was bound."""
    path = _sqlite_user(tmp_path)
    _tamper(path, f"UPDATE users SET {column} = {(1 << 63) - 1}")
    store = SQLiteStore(path)
    with pytest.raises(StateFormatError, match=f"users.{column}"):
        Personalizer(FakeHead(dim=DIM), store, "u", model_options=OPTS)
    assert all(o is None or isinstance(o, EdgeOMDError) for o in _every_verb_raises_typed(path))


@pytest.mark.parametrize("value", ["X'ff00fe'", "''", "'../../etc'", "NULL",
                                   "CAST(X'ff41' AS TEXT)"])
def test_sqlite_tampered_user_ids_are_state_format_errors(tmp_path, value):
    path = _sqlite_user(tmp_path)
    _tamper(path, "DROP INDEX IF EXISTS x", f"UPDATE users SET user_id = {value}")
    store = SQLiteStore(path)
    try:
        ids = store.users()
    except StateFormatError as exc:
        assert "not a valid user id" in str(exc)
    else:
        pytest.fail(f"users() listed {ids}")


@pytest.mark.parametrize("sql", [
    "UPDATE users SET head_fingerprint = 'text'",
    "UPDATE users SET created_at = 'yesterday'",
    "UPDATE users SET format_version = 1e300",
    "UPDATE checkpoints SET state = 'not a blob'",
    "UPDATE journal SET rec = 12345",
    "DROP TABLE checkpoints",
    "UPDATE users SET slot = -1",
])
def test_sqlite_other_tampered_rows_raise_typed_errors_only(tmp_path, sql):
    path = _sqlite_user(tmp_path)
    _tamper(path, sql)
    outcomes = _every_verb_raises_typed(path)
    assert all(o is None or isinstance(o, EdgeOMDError) for o in outcomes), outcomes


def test_sqlite_byte_flips_raise_typed_errors_only(tmp_path):
    path = _sqlite_user(tmp_path, n=5)
    good = path.read_bytes()
    rng = random.Random(12)
    n = 300 if os.environ.get("EDGE_OMD_LONG") else 60
    raw = []
    for i in range(n):
        bad = bytearray(good)
        for _ in range(rng.choice((1, 1, 4, 32))):
            bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        for p in path.parent.glob("s.sqlite*"):
            p.unlink(missing_ok=True)  # SQLite may remove its -shm between glob and unlink
        path.write_bytes(bytes(bad))
        try:
            raw += [o for o in _every_verb_raises_typed(path)
                    if o is not None and not isinstance(o, EdgeOMDError)]
        except Exception as exc:   # noqa: BLE001 - what the test is about
            raw.append((i, repr(exc)))
    assert not raw, raw[:5]


# ------------------------------------------------------------------ folder files

def test_folder_byte_flips_and_truncations_raise_typed_errors_only(tmp_path):
    folder = tmp_path / "f"
    store = FolderStore(folder)
    p = Personalizer(FakeHead(dim=DIM), store, "u", checkpoint_every=4, model_options=OPTS)
    for k in range(1, 7):
        _workers.send(p, k)
    store.close()
    files = {n: (folder / n).read_bytes() for n in os.listdir(folder)
             if not n.endswith((".omdlk", ".omdq")) and not n[-1].isdigit()}
    assert set(files) >= {".omdkey"} and len(files) == 3
    rng = random.Random(3)
    for name, good in files.items():
        for trial in range(25):
            bad = bytearray(good)
            if trial % 5 == 4:
                bad = bad[:rng.randrange(len(bad))]
            else:
                bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
            (folder / name).write_bytes(bytes(bad))
            try:
                s = FolderStore(folder)
                rec = s.get("u")
                if rec is not None:
                    q = Personalizer(FakeHead(dim=DIM), s, "u", model_options=OPTS)
                    assert q.updates <= 6
            except EdgeOMDError:
                pass
            (folder / name).write_bytes(good)
    assert Personalizer(FakeHead(dim=DIM), FolderStore(folder), "u").updates == 6


def test_folder_corrupt_key_file_says_what_it_is(tmp_path):
    FolderStore(tmp_path / "f")
    (tmp_path / "f" / ".omdkey").write_bytes(b"EOMDKEY1" + b"\0" * 36)
    with pytest.raises(StateFormatError, match="key that names"):
        FolderStore(tmp_path / "f")


# ------------------------------------------------------------------ stale temporary files

def test_tidy_erases_the_stale_temporary_files_and_keeps_those_being_written(tmp_path):
    folder = tmp_path / "f"
    store = FolderStore(folder)
    Personalizer(FakeHead(dim=DIM), store, "u").thumb("p", "an answer", up=True)
    ck = Path(store.paths("u").checkpoint).name
    dead = _workers_dead_pid()
    stale = [folder / f".{ck}.{dead}.0123456789ab.tmp",       # a crashed checkpoint write
             folder / f"..omdkey.{dead}.0123456789ab.tmp",     # a crashed key write
             folder / ".u.k2j_x9ab.tmp"]                       # an older version's leftover
    alive = folder / f".{ck}.{os.getpid()}.0123456789ab.tmp"   # a write in progress: kept
    for f in stale + [alive]:
        f.write_bytes(b"x" * 1000)
    store = FolderStore(folder)   # opening lists nothing: tidy() is the folder-wide sweep
    assert all(f.exists() for f in stale)
    assert store.tidy() == 3
    assert not any(f.exists() for f in stale) and alive.exists()


def test_reward_model_save_erases_the_stale_temporary_files_of_its_path(tmp_path):
    m = RewardModel(DIM)
    path = tmp_path / "m.eomd"
    m.save(path)
    dead = _workers_dead_pid()
    stale = [tmp_path / f".m.eomd.{dead}.{i:012x}.tmp" for i in range(3)]
    for f in stale:
        f.write_bytes(b"x" * 1000)
    m.save(path)
    assert not any(f.exists() for f in stale)
    assert sorted(os.listdir(tmp_path)) == ["m.eomd"]


def _workers_dead_pid():
    from tests.sdk.crash_explorer import _dead_pid
    return _dead_pid()


# ------------------------------------------------------------------ names without ids

def test_folder_file_names_do_not_reveal_user_ids_and_users_still_lists_them(tmp_path):
    folder = tmp_path / "f"
    store = FolderStore(folder)
    ids = ["alice@example.com", "bob.smith", "C3PO"]
    for uid in ids:
        Personalizer(FakeHead(dim=DIM), store, uid).thumb("p", "an answer", up=True)
    Personalizer(FakeHead(dim=DIM), store, "bob.smith").reset()
    names = os.listdir(folder)
    for uid in ids:
        assert not any(part in n.lower() for n in names
                       for part in (uid.lower(), uid.split("@")[0].split(".")[0].lower()))
    assert store.users() == ["C3PO", "alice@example.com"]
    # another folder has another key: the same id gets another name
    other = FolderStore(tmp_path / "g")
    assert other.name_of("C3PO") != store.name_of("C3PO")
    assert FolderStore(folder).name_of("C3PO") == store.name_of("C3PO")   # stable


def test_a_checkpoint_copied_under_another_users_name_is_refused(tmp_path):
    store = FolderStore(tmp_path)
    Personalizer(FakeHead(dim=DIM), store, "ann").thumb("p", "an answer", up=True)
    Personalizer(FakeHead(dim=DIM), store, "ben").thumb("p", "another", up=False)
    Path(store.paths("ben").checkpoint).write_bytes(
        Path(store.paths("ann").checkpoint).read_bytes())
    with pytest.raises(StoreError, match="holds user 'ann'"):
        store.get("ben")
    assert store.users() == ["ann"]     # the copy names nobody of this folder


def test_old_folders_are_read_and_moved_to_keyed_names_with_nothing_lost(tmp_path):
    folder = tmp_path / "f"
    head = FakeHead(dim=DIM)
    store = FolderStore(folder)
    p = Personalizer(head, store, "old.user", checkpoint_every=100, model_options=OPTS)
    for k in range(1, 6):
        _workers.send(p, k)
    live = p.model.to_bytes()
    paths = store.paths("old.user")
    os.replace(paths.checkpoint, folder / "old.user.omdstate")      # the layout before
    os.replace(paths.journal, folder / "old.user.omdjournal")
    os.replace(paths.lock, folder / "old.user.lock")
    os.unlink(folder / ".omdkey")
    for n in os.listdir(folder):
        if ".omdq" in n:
            os.unlink(folder / n)
    s2 = FolderStore(folder)                       # a new key; the old names are read
    assert s2.users() == ["old.user"]
    q = Personalizer(head, s2, "old.user", model_options=OPTS)
    assert q.updates == 5 and q.model.to_bytes() == live
    assert sorted(n for n in os.listdir(folder) if "old.user" in n) == [
        "old.user.lock", "old.user.omdjournal", "old.user.omdstate"]  # reading moves nothing
    _workers.send(q, 6)                            # the first write moves them
    assert not [n for n in os.listdir(folder) if "old.user" in n]
    r = Personalizer(head, FolderStore(folder), "old.user", model_options=OPTS)
    assert r.updates == 6 and r.model.to_bytes() == q.model.to_bytes()
    assert FolderStore(folder).users() == ["old.user"]


def test_an_interrupted_move_to_keyed_names_is_finished_by_the_next_write(tmp_path):
    """A kill at each step of the move (after the journal copy, after the checkpoint copy,
    after each erase) leaves a folder that reads the same user and is tidied by a write."""
    head = FakeHead(dim=DIM)
    for stop_at in range(1, 8):
        folder = tmp_path / f"f{stop_at}"
        store = FolderStore(folder)
        p = Personalizer(head, store, "v", checkpoint_every=100, model_options=OPTS)
        for k in range(1, 4):
            _workers.send(p, k)
        live = p.model.to_bytes()
        paths = store.paths("v")
        os.replace(paths.checkpoint, folder / "v.omdstate")
        os.replace(paths.journal, folder / "v.omdjournal")
        os.replace(paths.lock, folder / "v.lock")

        class StopIO(envelope.FileIO):
            ops = 0

            def _tick(self):
                StopIO.ops += 1
                if StopIO.ops == stop_at:
                    raise KeyboardInterrupt("killed")   # not an OSError: nothing cleans up

            def replace(self, src, dst):
                super().replace(src, dst)
                self._tick()

            def unlink(self, path):
                super().unlink(path)
                self._tick()

        s = FolderStore(folder, io=StopIO())
        try:
            _workers.send(Personalizer(head, s, "v", model_options=OPTS), 4)
        except KeyboardInterrupt:
            pass
        s.close()
        r = Personalizer(head, FolderStore(folder), "v", model_options=OPTS)
        assert r.updates in (3, 4)
        if r.updates == 3:
            assert r.model.to_bytes() == live
        _workers.send(r, 5 if r.updates == 4 else 4)
        assert not [n for n in os.listdir(folder) if n.startswith("v.")]
        assert Personalizer(head, FolderStore(folder), "v").updates == r.updates


# ------------------------------------------------------------------ the fair queue

def test_fair_queue_admits_writers_in_arrival_order(tmp_path):
    base = str(tmp_path / "q")
    order, holding = [], threading.Event()
    q = FairQueue(base)

    def holder():
        with q():
            holding.set()
            time.sleep(0.5)
            order.append("first")

    def waiter(name):
        with FairQueue(base)():
            order.append(name)

    t0 = threading.Thread(target=holder)
    t0.start()
    holding.wait(5)
    threads = []
    for i in range(5):      # each one takes its ticket before the next starts
        before = _ticket(base)
        t = threading.Thread(target=waiter, args=(f"w{i}",))
        t.start()
        threads.append(t)
        deadline = time.monotonic() + 10
        while _ticket(base) == before and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _ticket(base) != before, f"w{i} drew no ticket in 10 s"
    for t in [t0] + threads:
        t.join(10)
    assert order == ["first", "w0", "w1", "w2", "w3", "w4"]
    slots = ["q"] + [f"q.{k}" for k in range(6)]          # one entry per writer queued at once
    assert sorted(os.listdir(tmp_path)) == slots
    for _ in range(20):                                   # ...reused, never more files
        with FairQueue(base)():
            pass
    assert sorted(os.listdir(tmp_path)) == slots


def test_a_write_creates_and_erases_no_file_once_its_queue_exists(tmp_path, monkeypatch):
    """A file created and unlinked at every write costs the next fsync of the file system its
    metadata (bench/click.py): after the first writes the queue's entry files are reused."""
    made, gone = [], []

    class Watch(envelope.FileIO):
        def open(self, path, flags, mode=0o600):
            if flags & os.O_CREAT and not os.path.lexists(path):
                made.append(os.path.basename(path))
            return super().open(path, flags, mode)

        def unlink(self, path):
            gone.append(os.path.basename(path))
            return super().unlink(path)

    monkeypatch.setattr(envelope, "DEFAULT_IO", Watch())   # the SQLite store's queue
    for store in (SQLiteStore(tmp_path / "s.sqlite"), FolderStore(tmp_path / "f", io=Watch())):
        p = Personalizer(FakeHead(dim=DIM), store, "u", checkpoint_every=1000)
        for i in range(3):
            p.thumb("p", f"answer {i}", up=True)
        assert any("omdq" in n for n in made), made
        made.clear(), gone.clear()
        for i in range(20):
            p.thumb("p", f"answer {i}", up=i % 2 == 0)
        assert p.updates == 23
        assert not made and not gone, (store, made, gone)
        store.close()


def test_an_entry_taken_again_by_a_later_writer_is_not_waited_for(tmp_path):
    """The writer of ticket 1 finds its predecessor's entry (slot 0) held, but by a writer that
    took it after ticket 0 was done (it holds ticket 7 now): it goes on at once instead of
    waiting for a writer that waits for it."""
    import fcntl
    import struct
    base = str(tmp_path / "q")
    with open(base, "wb") as f:
        f.write(struct.pack("<QQ", 1, 0 + 1))             # next ticket 1; ticket 0 in slot 0
    later = os.open(base + ".0", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(later, struct.pack("<QdQQB", os.getpid(), time.time(), 7, 2, 0), 0)
        fcntl.flock(later, fcntl.LOCK_EX)                  # held by "the writer of ticket 7"
        how, _ = _workers.within(10, lambda: FairQueue(base, timeout_s=5)().__enter__())
        assert how == "ok"
    finally:
        os.close(later)


def _ticket(base):
    """The queue's next ticket only: a writer writes its holder record into the same file
    (after the counter) BEFORE it draws, so the whole file changes before the ticket does."""
    with open(base, "rb") as f:
        return f.read(8)


def test_fair_queue_goes_on_after_a_writer_dies_holding_it(tmp_path):
    base = str(tmp_path / "q")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # pragma: no cover - the child
        try:
            with FairQueue(base)():
                os.write(w, b"1")
                time.sleep(60)
        finally:
            os._exit(1)
    assert os.read(r, 1) == b"1"
    got = []
    t = threading.Thread(target=lambda: got.append(FairQueue(base)().__enter__()))
    t.start()
    time.sleep(0.2)
    assert not got                       # waits behind the holder...
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    t.join(10)
    assert got == [None]                 # ...and goes on when it dies


def test_a_broken_queue_falls_back_to_the_stores_own_lock(tmp_path):
    class NoQueueFiles(envelope.FileIO):
        def open(self, path, flags, mode=0o600):
            if ".omdq" in os.path.basename(path):
                raise PermissionError(13, "Permission denied")
            return super().open(path, flags, mode)

    store = FolderStore(tmp_path, io=NoQueueFiles())
    p = Personalizer(FakeHead(dim=DIM), store, "u")
    p.thumb("p", "an answer", up=True)
    assert p.updates == 1 and np.isfinite(p.model.theta).all()
