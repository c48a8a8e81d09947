"""Crash and concurrency proof of the journaled stores.

Long modes (EDGE_OMD_LONG=1 .venv/bin/python -m pytest tests/sdk/test_crash.py -s; each prints
its tally): 200 kills per store and mode of a feedback stream; 250 per store and mode of a
stream of every operation (feedback, import, delete, checkpoint); 60 rounds per store of 4
contending writers with one killed; 4x the crash-state explorer's workload; and, as root with
loop devices, power cuts of a writer on a loop-mounted ext4 (the image copied while the file
system under it is frozen), tests/sdk/test_power_cut_loop.py.

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


def _read_reports(fd, want, timeout, pid=None, buf=b""):
    """Counters the child wrote, until `want` of them, the child's exit, or the timeout
    (0: those written already)."""
    out, end = [], time.monotonic() + timeout
    while len(out) < want:
        ready, _, _ = select.select([fd], [], [], max(0.0, min(0.05, end - time.monotonic())))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 8:
                out.append(struct.unpack("<q", buf[:8])[0])
                buf = buf[8:]
        elif time.monotonic() >= end:
            break
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
        pid, r = _workers.fork_reporting(lambda w: _workers.crash_child(
            kind, path, durable, w, EVERY, DIM, OPTIONS, at))
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


# ------------------------------------------------------------------ every operation, killed

OP_KILLS = 250 if LONG else 6


def _blob(head):
    """The user export every import of the operation stream brings in, and its state."""
    from edge_omd.store import SQLiteStore
    with tempfile.TemporaryDirectory() as tmp:
        p = Personalizer(head, SQLiteStore(Path(tmp) / "b.sqlite"), "donor",
                         model_options=OPTIONS)
        for k in range(900, 905):
            _workers.send(p, k)
        return p.export_state(), p.model.to_bytes()


@pytest.mark.parametrize("durable", ["full", "normal"])
@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_sigkill_during_any_operation_replays_every_acknowledged_one(tmp_path, kind, durable):
    """A child runs a stream of feedbacks, imports, deletes and checkpoints and reports each one
    acknowledged; it is SIGKILLed at random moments and at injected points (a torn journal
    append, each rename / unlink / truncation of the folder store, just before an SQLite
    COMMIT: inside imports, deletes and checkpoints alike). Each reopen must equal, byte for
    byte, a replay of exactly the acknowledged operations, plus at most the one in flight.
    6 kills per store and mode here; EDGE_OMD_LONG=1: 250 (1,000 in all), tally printed."""
    path = str(tmp_path / ("s.sqlite" if kind == "sqlite" else "users"))
    head = FakeHead(dim=DIM)
    blob, blob_state = _blob(head)
    refs = _workers.reference_states(head, OPTIONS, blob_state, 40)
    rng = random.Random(f"ops-{kind}-{durable}")
    points = ([("sqlite_commit", n) for n in (1, 2, 3, 5)] if kind == "sqlite" else
              [("torn", 1), ("torn", 2), ("replace", 1), ("replace", 2), ("unlink", 1),
               ("unlink", 2), ("unlink", 3), ("truncate", 1)])
    start, tally, injected = 1, {}, 0
    for it in range(OP_KILLS):
        at = rng.choice(points) if it % 3 == 2 else None
        pid, r = _workers.fork_reporting(lambda w: _workers.op_child(
            kind, path, durable, w, EVERY, DIM, OPTIONS, blob, start, at))
        try:
            if at is None:
                reports, buf = _read_reports(r, rng.randint(1, 6), 60.0, pid)
                time.sleep(rng.random() * 0.004)      # somewhere in the next operation(s)
            else:
                reports, buf = _read_reports(r, 10 ** 9, 60.0, pid)   # it kills itself
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            reports += _drain(r, buf)
        finally:
            os.close(r)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        acked = reports[-1] if reports else start - 1
        assert reports == list(range(start, acked + 1)), "acknowledged out of order"
        while len(refs) <= acked + 2:
            refs = _workers.reference_states(head, OPTIONS, blob_state, 2 * len(refs))
        store = _workers.open_store(kind, path, durable)
        got = Personalizer(FakeHead(dim=DIM), store, "victim", model_options=OPTIONS)\
            .model.to_bytes()
        store.close()
        flight = _workers.op_kind(acked + 1)
        assert got in (refs[acked], refs[acked + 1]), (it, at, acked, flight)
        applied = got == refs[acked + 1] != refs[acked]
        start = acked + (2 if applied else 1)
        key = f"{flight} ({'injected' if at else 'random'})"
        tally[key] = tally.get(key, 0) + 1
        injected += at is not None
    print(f"\n[kills, {kind} {durable}] {OP_KILLS} SIGKILLs ({injected} at injected points), "
          f"{start - 1} operations acknowledged and replayed byte for byte; in flight: "
          + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())) + "; lost 0, corrupt 0")
    assert start > OP_KILLS // 2


WRITERS, PER_WRITER = 4, 12
CONTENDED_ROUNDS = 60 if LONG else 1


@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_sigkill_of_one_of_four_contending_writers_loses_nothing_acknowledged(tmp_path, kind):
    """4 processes write one user at once; one of them (drawn at random) is SIGKILLed at a
    random moment. Every feedback any of them had acknowledged is in the store, plus at most
    the killed one's in flight, and the state equals a sequential replay in commit order.
    1 round per store here; EDGE_OMD_LONG=1: 60 (120 kills), tally printed."""
    rng = random.Random(f"contended-{kind}")
    head = FakeHead(dim=DIM)
    flights = 0
    for rnd in range(CONTENDED_ROUNDS):
        path = str(tmp_path / (f"s{rnd}.sqlite" if kind == "sqlite" else f"users{rnd}"))
        _workers.open_store(kind, path).close()
        pids, pipes = [], []
        for wk in range(WRITERS):
            pid, r = _workers.fork_reporting(lambda w, wk=wk: _workers.contender(
                kind, path, wk, PER_WRITER, DIM, OPTIONS, w))
            pids.append(pid)
            pipes.append(r)
        victim = rng.randrange(WRITERS)
        got = {wk: [] for wk in range(WRITERS)}
        bufs = {wk: b"" for wk in range(WRITERS)}
        want = rng.randint(0, PER_WRITER - 1)
        end = time.monotonic() + 120
        while len(got[victim]) < want and time.monotonic() < end:
            for wk in range(WRITERS):   # keep every pipe drained
                more, bufs[wk] = _read_pairs(pipes[wk], bufs[wk])
                got[wk] += more
            time.sleep(0.001)
        time.sleep(rng.random() * 0.005)
        os.kill(pids[victim], signal.SIGKILL)
        for wk, pid in enumerate(pids):
            _wait_or_kill(pid, 120)
            more, _ = _read_pairs(pipes[wk], bufs[wk], until_eof=True)
            got[wk] += more
            os.close(pipes[wk])
        for wk in range(WRITERS):
            if wk != victim:
                assert len(got[wk]) == PER_WRITER, (rnd, wk, len(got[wk]))
        order = {seq: (wk, i) for wk in got for i, seq in got[wk]}
        assert len(order) == sum(len(v) for v in got.values())     # one commit per seq
        store = _workers.open_store(kind, path)
        p = Personalizer(FakeHead(dim=DIM), store, "shared", model_options=OPTIONS)
        n = p.updates
        acked = len(order)
        assert acked <= n <= acked + 1, (rnd, acked, n)
        if n == acked + 1:          # the victim's feedback in flight was committed
            missing = [s for s in range(1, n + 1) if s not in order]
            assert len(missing) == 1
            order[missing[0]] = (victim, len(got[victim]))
            flights += 1
        ref = _workers.reference_model(head, OPTIONS)
        for seq in range(1, n + 1):
            _workers.contended_apply(ref, head, *order[seq])
        assert p.model.to_bytes() == ref.to_bytes(), rnd
        store.close()
    print(f"\n[contended kills, {kind}] {CONTENDED_ROUNDS} rounds of {WRITERS} writers x "
          f"{PER_WRITER} feedbacks, one SIGKILLed in each: every acknowledged feedback kept, "
          f"{flights} in-flight ones committed, every state a replay in commit order; lost 0")


def _read_pairs(fd, buf, until_eof=False):
    """(i, seq) pairs a contender wrote, without blocking (or until its end)."""
    out = []
    while True:
        ready, _, _ = select.select([fd], [], [], 30 if until_eof else 0)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    while len(buf) >= 16:
        out.append(struct.unpack("<qq", buf[:16]))
        buf = buf[16:]
    return out, buf


def _wait_or_kill(pid, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"writer {pid} did not finish in {seconds} s")


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
