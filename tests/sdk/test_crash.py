"""Crash and concurrency proof of the journaled stores.

- A child process sending feedback in a loop is SIGKILLed at random moments, and at chosen
  points inside checkpoints and in the middle of journal appends (torn records): every reopen
  must pass its checksums, equal a replay of exactly the commits the child reported through a
  pipe (plus at most the one in flight), and the counter never goes backwards. 20 kills per
  store and durability mode here; EDGE_OMD_LONG=1 runs 200 (the soak).
- durable="normal" under SIGKILL loses nothing (the OS keeps what was written). Under a power
  cut it may lose the records since the last checkpoint and no more: checked for the folder
  store on the most pessimistic crash state (every write not yet fsync'ed dropped), built from
  a recording FileIO.
- Power cuts, explored (tests/sdk/crash_explorer.py, ALICE-style): every crash point of a
  FolderStore workload (first commits, appends, checkpoints, truncations, a folder of the old
  layout moved to keyed names, stale temp files, deletes, an import) with dropped, torn and
  reordered unsynced writes and every prefix of unsynced folder operations: >= 1,000 distinct
  crash states, >= 100 per category (append, checkpoint, truncation, rename, delete), each
  reopened and checked; the counts are printed (pytest -s). Long mode, 4x the workload:
      EDGE_OMD_LONG=1 .venv/bin/python -m pytest tests/sdk/test_crash.py -s -k crash_states
- SQLite: its own guarantees are trusted (atomic, durable commits in WAL mode with
  synchronous=FULL; with NORMAL a power cut may roll back the last commits, never corrupt:
  https://www.sqlite.org/wal.html, https://www.sqlite.org/atomiccommit.html; apsw, which a VFS
  shim that drops unsynced writes would need, is not a dependency). What is tested is the layer
  above it: every write is one transaction, and a kill between two of them (after a commit,
  inside a checkpoint transaction before COMMIT) loses nothing committed.
- 4 processes x 50 feedbacks on one user: counter 200, model.t 200, and the final state equals
  a sequential replay in commit order.
"""
import multiprocessing as mp
import os
import random
import select
import signal
import shutil
import struct
import tempfile
import time
from pathlib import Path

import pytest

from edge_omd.personalizer import Personalizer
from edge_omd.reward_model import RewardModel
from edge_omd.store import FileIO, FolderStore
from tests.sdk import _workers
from tests.sdk.fakes import FakeHead

LONG = os.environ.get("EDGE_OMD_LONG", "") not in ("", "0")
KILLS = 200 if LONG else 20
DIM, EVERY = 32, 4
OPTIONS = {"solver": "exact", "dtype": "float64"}


def _read_reports(fd, want, timeout, pid):
    """Counters the child wrote, until `want` of them, the child's exit, or the timeout."""
    out, buf, end = [], b"", time.monotonic() + timeout
    while len(out) < want and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 8:
                out.append(struct.unpack("<q", buf[:8])[0])
                buf = buf[8:]
    return out, buf


def _drain(fd, buf):
    out = []
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    while len(buf) >= 8:
        out.append(struct.unpack("<q", buf[:8])[0])
        buf = buf[8:]
    return out


@pytest.mark.parametrize("durable", ["full", "normal"])
@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_sigkill_at_random_moments_loses_no_committed_feedback(tmp_path, kind, durable):
    path = str(tmp_path / ("s.sqlite" if kind == "sqlite" else "users"))
    head = FakeHead(dim=DIM)
    ref, ref_n = _workers.reference_model(head, OPTIONS), 0
    rng = random.Random(f"{kind}-{durable}")
    points = ([("sqlite_ckpt", 1), ("sqlite_ckpt", 2)] if kind == "sqlite" else
              [("torn", 1), ("torn", 3), ("replace", 1), ("replace", 2), ("truncate", 1)])
    last_n, injected, seen_ckpt, prev_at = 0, 0, set(), None
    for it in range(KILLS):
        at = rng.choice(points) if it % 3 == 2 else None
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:   # the child: never returns
            try:
                os.close(r)
                _workers.crash_child(kind, path, durable, w, EVERY, DIM, OPTIONS, at)
            finally:
                os._exit(1)
        os.close(w)
        try:
            if at is None:
                # right after an injected crash, die again before the next checkpoint (which
                # would rewrite what the crash left behind)
                want = 1 if prev_at else rng.randint(1, 2 * EVERY)
                reports, buf = _read_reports(r, want, 30.0, pid)
                time.sleep(rng.random() * 0.004)      # somewhere in the next commit(s)
                os.kill(pid, signal.SIGKILL)
            else:
                reports, buf = _read_reports(r, 10 ** 9, 30.0, pid)   # it kills itself
                os.kill(pid, signal.SIGKILL)          # (no-op unless the point never came)
            _, status = os.waitpid(pid, 0)
            reports += _drain(r, buf)
        finally:
            os.close(r)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        injected += at is not None
        prev_at = at
        reported = reports[-1] if reports else last_n
        store = _workers.open_store(kind, path, durable)
        p = Personalizer(FakeHead(dim=DIM), store, "victim", checkpoint_every=EVERY,
                         model_options=OPTIONS)
        n = p.updates
        assert n >= last_n, "the counter went backwards"
        assert reported <= n <= reported + 1, (reported, n, at)   # reported ones all survive
        assert p._session.model.t == n
        while ref_n < n:
            ref_n += 1
            _workers.reference_apply(ref, head, ref_n)
        # a replay of exactly them
        assert p._session.model.to_bytes() == ref.to_bytes(), (it, at, n)
        seen_ckpt.add(p._session.cursor.checkpoint_updates)
        last_n = n
        store.close()
    assert injected >= KILLS // 3 and last_n >= KILLS and len(seen_ckpt) > 3


# ------------------------------------------------------------------ power cut (folder)

class ShadowIO(FileIO):
    """Does every operation for real and keeps, beside it, what a power cut would leave: file
    data as of its last fsync, folder entries as of the last folder fsync."""

    def __init__(self):
        self.names, self.durable_names = {}, {}
        self.data, self.durable_data, self.fds = {}, {}, {}
        self.inodes = 0

    def open(self, path, flags, mode=0o600):
        fd = super().open(path, flags, mode)
        name = os.path.basename(path)
        if name not in self.names:
            self.inodes += 1
            self.names[name] = self.inodes
            self.data[self.inodes] = bytearray()
        self.fds[fd] = self.names[name]
        return fd

    def close(self, fd):
        self.fds.pop(fd, None)
        super().close(fd)

    def pwrite(self, fd, data, offset):
        super().pwrite(fd, data, offset)
        buf = self.data[self.fds[fd]]
        if len(buf) < offset:
            buf.extend(b"\0" * (offset - len(buf)))
        buf[offset:offset + len(data)] = bytes(data)

    def fsync(self, fd):
        super().fsync(fd)
        self.durable_data[self.fds[fd]] = bytes(self.data[self.fds[fd]])

    fdatasync = fsync

    def ftruncate(self, fd, size):
        super().ftruncate(fd, size)
        buf = self.data[self.fds[fd]]
        del buf[size:]
        buf.extend(b"\0" * (size - len(buf)))

    def replace(self, src, dst):
        super().replace(src, dst)
        self.names[os.path.basename(dst)] = self.names.pop(os.path.basename(src))

    def unlink(self, path):
        super().unlink(path)
        self.names.pop(os.path.basename(path), None)

    def fsync_dir(self, path):
        super().fsync_dir(path)
        self.durable_names = dict(self.names)

    def power_cut(self, folder):
        """Write the files a power cut right now would leave into `folder`."""
        folder.mkdir()
        for name, ino in self.durable_names.items():
            (folder / name).write_bytes(self.durable_data.get(ino, b""))


@pytest.mark.parametrize("durable", ["full", "normal"])
def test_power_cut_loses_nothing_when_full_and_at_most_the_records_since_the_checkpoint_when_normal(
        tmp_path, durable):
    head = FakeHead(dim=DIM)
    io = ShadowIO()
    p = Personalizer(head, FolderStore(tmp_path / "live", durable=durable, io=io), "u",
                     checkpoint_every=5, model_options=OPTIONS)
    ref = _workers.reference_model(head, OPTIONS)
    states = [ref.to_bytes()]
    for k in range(1, 24):
        _workers.send(p, k)
        _workers.reference_apply(ref, head, k)
        states.append(ref.to_bytes())
        cut = tmp_path / f"cut{k}"
        io.power_cut(cut)
        q = Personalizer(FakeHead(dim=DIM), FolderStore(cut), "u", model_options=OPTIONS)
        n = q.updates
        if durable == "full":
            assert n == k                                    # every acknowledged one
        else:
            assert n == p._session.cursor.checkpoint_updates and k - n < 5   # < N lost, never more
        assert q._session.model.to_bytes() == states[n]              # and exactly a prefix


# ------------------------------------------------------------------ concurrency

@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_four_processes_fifty_feedbacks_each_equal_a_sequential_replay(tmp_path, kind):
    path = str(tmp_path / ("s.sqlite" if kind == "sqlite" else "users"))
    ctx = mp.get_context("spawn")
    outs = [str(tmp_path / f"order{w}.txt") for w in range(4)]
    procs = [ctx.Process(target=_workers.hammer, args=(kind, path, "shared", w, 50, outs[w]))
             for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(300)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    order = sorted(tuple(map(int, line.split())) for o in outs for line in open(o))
    assert [seq for seq, _, _ in order] == list(range(1, 201))   # one commit per seq
    store = _workers.open_store(kind, path)
    head = FakeHead(dim=64)
    p = Personalizer(head, store, "shared")
    assert p.updates == 200 and p._session.model.t == 200
    ref = RewardModel(64, **p.model_options)     # the Personalizer's defaults (its budget)
    head.check(ref)
    for _, w, i in order:
        prompt, response, up = _workers.hammer_observation(w, i)
        ref.learn_thumb(head.features(prompt, [response])[0], up)
    assert p._session.model.to_bytes() == ref.to_bytes()
    store.close()


# ------------------------------------------------------------------ power cuts: crash states

def _scratch(tmp_path):
    """Thousands of small trees are written and erased: in a RAM folder where there is one."""
    shm = Path("/dev/shm")
    base = tmp_path
    if shm.is_dir() and os.access(shm, os.W_OK):
        base = Path(tempfile.mkdtemp(dir=shm, prefix="eomd-crash-"))
    else:
        base = Path(tempfile.mkdtemp(dir=tmp_path))
    return base / "scratch"


@pytest.mark.parametrize("durable", ["full", "normal"])
def test_power_cut_crash_states_reopen_to_a_prefix_of_the_acknowledged_feedbacks(tmp_path,
                                                                                  durable):
    """tests/sdk/crash_explorer.py: every crash point of a FolderStore workload, with dropped,
    torn and reordered unsynced writes and every prefix of unsynced folder operations; each
    state reopens, passes its checksums and equals a prefix of the acknowledged sequence that
    holds every durably acknowledged one. Long mode (scale 4): EDGE_OMD_LONG=1."""
    from tests.sdk import crash_explorer as ce
    opts = {"solver": "exact", "dtype": "float64"}
    w, fresh = ce.build_workload(tmp_path, durable, scale=(12 if LONG else 3) if durable == "full"
                                 else (4 if LONG else 1), options=opts)
    scratch = _scratch(tmp_path)
    rep = ce.explore(w, scratch, fresh=fresh,
                     make_write=ce.write_after_recovery(16, opts))
    print(f"\n[{durable}] {len(w.io.log)} operations, {len(w.events)} events; crash states "
          f"{rep.states} ({rep.distinct} distinct), by category (distinct): "
          + ", ".join(f"{c} {rep.by_category[c]} ({rep.distinct_by_category[c]})"
                      for c in ce.CATEGORIES)
          + f"; writes after recovery {rep.writes_after}; failures {len(rep.failures)}")
    shutil.rmtree(scratch.parent, ignore_errors=True)
    assert not rep.failures, rep.failures[:10]
    if durable == "normal":     # fewer fsyncs, fewer distinct states: the counts are for "full"
        return
    assert rep.distinct >= 1000
    for c in ce.CATEGORIES:
        assert rep.distinct_by_category[c] >= 100, (c, rep.distinct_by_category)


def test_the_crash_state_explorer_catches_a_store_that_skips_its_fsyncs(tmp_path):
    """The explorer can fail: a FileIO whose journal fsyncs do nothing durable (as on a disk
    that lies about its cache) must give lost acknowledged feedbacks."""
    from tests.sdk import crash_explorer as ce

    class LyingIO(ce.RecordingIO):
        def fsync(self, fd):   # does it, but the power cut model never sees it for journals
            FileIO.fsync(self, fd)
            if fd in self.fds and self.kind.get(self.fds[fd]) != "journal":
                self.log.append(("fsync", self.fds[fd]))

        fdatasync = fsync

    opts = {"solver": "exact", "dtype": "float64"}
    w, fresh = ce.build_workload(tmp_path, "full", scale=1, options=opts, recorder=LyingIO)
    scratch = _scratch(tmp_path)
    rep = ce.explore(w, scratch, fresh=fresh)
    shutil.rmtree(scratch.parent, ignore_errors=True)
    lost = [f for f in rep.failures if "allowed" in f[4]]
    assert lost and {f[1] for f in lost} >= {"append"}


@pytest.mark.parametrize("durable", ["full", "normal"])
def test_sqlite_every_commit_boundary_reopens_to_a_prefix_of_the_acknowledged_feedbacks(
        tmp_path, monkeypatch, durable):
    """SQLite's guarantee trusted, the layer above it tested: a power cut leaves the database
    as of some COMMIT (any one after the last durable one). The database is captured after
    every COMMIT of a workload (feedbacks with checkpoints in their own transaction, deletes,
    an import); each capture reopens, and every user equals a prefix of the acknowledged
    sequence holding every durably acknowledged one (a feedback whose checkpoint transaction
    had not committed yet included)."""
    import contextlib

    from edge_omd.store import SQLiteStore
    from tests.sdk import crash_explorer as ce

    snaps = []
    real = SQLiteStore._transaction

    @contextlib.contextmanager
    def capturing(self, con):
        with real(self, con):
            yield
        snaps.append(con.serialize())
    monkeypatch.setattr(SQLiteStore, "_transaction", capturing)

    head = FakeHead(dim=DIM)
    path = tmp_path / "s.sqlite"
    store = SQLiteStore(path, durable=durable)
    events, seq = [], [0]

    def event(user, fn, p=None):
        first = len(snaps)
        fn()
        s = store.sync(user).head
        live = None if s is None else p.model.to_bytes()
        events.append(ce.Event(user, first, len(snaps), live, durable == "full" or s is None
                               or s.checkpoint_updates == s.updates))

    def feed(p, user, n):
        for _ in range(n):
            seq[0] += 1
            k = seq[0]
            event(user, lambda: _workers.send(p, k), p)

    pa = Personalizer(head, store, "alice", checkpoint_every=3, model_options=OPTIONS)
    pb = Personalizer(head, store, "bob", checkpoint_every=2, model_options=OPTIONS)
    fresh = pa.model.to_bytes()
    for _ in range(2):
        feed(pa, "alice", 7)
        feed(pb, "bob", 3)
        event("alice", pa.reset)
        feed(pa, "alice", 2)
        blob = pa.export_state()
        event("bob", lambda: pb.import_state(blob), pb)
        feed(pb, "bob", 2)
        event("alice", pa.checkpoint, pa)
    store.close()
    monkeypatch.setattr(SQLiteStore, "_transaction", real)
    checked, failures = 0, []
    db = tmp_path / "cut.sqlite"
    for k, image in enumerate(snaps):
        for f in tmp_path.glob("cut.sqlite*"):
            f.unlink()
        db.write_bytes(image)   # the database as of that COMMIT (no WAL left beside it)
        s = SQLiteStore(db)
        for u in ("alice", "bob"):
            lo, hi, states = ce.allowed(events, {}, u, k)
            got = ce.recovered(None, u, s)
            ok = states[lo:hi + 1]
            if got not in ok and not (got == fresh and None in ok):
                failures.append((k, u, lo, hi, [i for i, x in enumerate(states) if x == got]))
            checked += 1
        s.close()
    print(f"\n[sqlite {durable}] {len(snaps)} commit boundaries, {checked} user states checked")
    assert len(snaps) > 40 and not failures, failures[:5]
