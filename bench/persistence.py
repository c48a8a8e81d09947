"""Issue 10's benchmark: the journaled persistence, each target next to its floor measured in
the same run.

    python -m edge_omd_bench.persistence            # every figure (a few minutes on 2 cores)
    python -m edge_omd_bench.persistence --quick    # fewer repetitions and dims

Sections:
  recovery   ms to open a user (load the checkpoint + replay the journal) at journal length
             N = the default checkpoint interval, per d and representation; the default N is
             chosen so that this stays <= 1 s (Personalizer.default_checkpoint_every).
  bytes      bytes passed to write() per feedback (/proc/self/io wchar: WAL, pages, fsync'ed
             files, everything), averaged over 10 N feedbacks at the default N, against the
             floor 1.5 x (a bare append of the same record in the same medium) + c x state / N,
             where c = wchar of a bare write of the state in that medium / state bytes.
  latency    prefer() after rank() on the same answers (feature-cache hit: learn + durable
             commit), d=384 exact, against a bare commit of a record of the same size; d=4096
             exact against the bare learn_pair, and one checkpoint's cost on its own.
  e2e        text in -> committed with the real MiniLM head after choose_pair() on the same
             candidates (the demo's head in ~/.cache/edge_omd/heads; skipped if absent).
  footprint  bytes on disk at the high-water mark (checkpoint + journal + WAL / temp file).
  folder-scale  FolderStore in a folder of many users (4 files each): ms to open the store and
             to write one user's checkpoint, with 1 user and with 40,000 (160k files), and
             the ratio; both should stay O(1) in the number of users (issue 21 item 9: the
             checkpoint listed the folder twice, the open once). Alone:
             python -m edge_omd_bench.persistence --only folder-scale
  contention 4 processes x 50 feedbacks on one user at d=384, per store, with the fair queue
             (store.FairQueue, the default) and without (fair=False: the bare SQLite busy
             handler / flock): per-feedback latency median, p99, max; each writer's total time;
             updates lost. Alone: python -m edge_omd_bench.persistence --only contention

It prints figures and PASS/FAIL per target; it asserts nothing (shared, noisy machine: medians
and p99 over individual calls, after a warm-up).
"""
import argparse
import hashlib
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_omd.head.binding import bind
from edge_omd.personalizer import Personalizer, default_checkpoint_every
from edge_omd.reward_model import RewardModel
from edge_omd.store import FolderStore, SQLiteStore, journal

MS = 1e3


def _wchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    raise RuntimeError("no /proc/self/io")


class SyntheticHead:
    """Deterministic unit features from a hash of the texts (no model): the store and the
    learner see exactly what a real head would give them, minus the forward pass."""

    def __init__(self, dim):
        self.dim = int(dim)
        self.fingerprint = hashlib.sha256(b"synthetic" + self.dim.to_bytes(4, "little")).digest()
        self.calls = 0

    def features(self, prompt, responses):
        self.calls += 1
        out = np.empty((len(responses), self.dim), np.float32)
        for i, r in enumerate(responses):
            seed = int.from_bytes(hashlib.blake2b((prompt + "\0" + r).encode(),
                                                  digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out

    def check(self, model):
        bind(model, self.fingerprint, self.dim)


def _pct(xs, q):
    return float(np.percentile(np.asarray(xs), q))


def _store(kind, folder, durable):
    if kind == "sqlite":
        return SQLiteStore(Path(folder) / "s.sqlite", durable=durable)
    return FolderStore(Path(folder) / "users", durable=durable)


def _options(solver, rank=None):
    o = {"solver": solver}
    if rank:
        o["sketch_rank"] = rank
    return o


def _texts(i):
    return f"prompt {i % 13}", f"answer a {i}", f"answer b {i}"


# ------------------------------------------------------------------ recovery

def recovery(dims, reps, out):
    out("\n## recovery: open a user = load checkpoint + replay N journal records (SQLite)")
    out(f"{'d':>5} {'model':>12} {'N':>6} {'state MiB':>9} {'load ms':>8} {'replay ms':>9} "
        f"{'recovery ms (median)':>21} {'max':>7}  target <= 1000 ms")
    rows = []
    for d in dims:
        for solver, rank in (("exact", None), ("sketch", 64)):
            head = SyntheticHead(d)
            tmp = tempfile.mkdtemp(prefix="eomd-rec-")
            try:
                store = _store("sqlite", tmp, "normal")
                opts = _options(solver, rank)
                m = RewardModel(d, **opts)
                n = default_checkpoint_every(d, m.solver, m.sketch_rank)
                p = Personalizer(head, store, "u", model_options=opts, checkpoint_every=10 ** 9)
                for i in range(n):
                    pr, a, b = _texts(i)
                    p.prefer(pr, a, b)
                assert p._session.cursor.updates - p._session.cursor.checkpoint_updates == n
                times, loads = [], []
                for _ in range(reps):
                    s2 = _store("sqlite", tmp, "normal")
                    t0 = time.perf_counter()
                    q = Personalizer(head, s2, "u")
                    times.append(time.perf_counter() - t0)
                    assert q.updates == n
                    rec = s2.get("u")
                    t1 = time.perf_counter()
                    RewardModel.from_bytes(rec.state)
                    loads.append(time.perf_counter() - t1)
                    s2.close()
                med, load = statistics.median(times), statistics.median(loads)
                rows.append((d, solver, n, med))
                name = solver if rank is None else f"sketch r{rank}"
                out(f"{d:>5} {name:>12} {n:>6} {m.nbytes / 2**20:>9.2f} {load * MS:>8.1f} "
                    f"{(med - load) * MS:>9.1f} {med * MS:>21.1f} {max(times) * MS:>7.1f}  "
                    f"{'PASS' if med <= 1.0 else 'FAIL'}")
                store.close()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return rows


# ------------------------------------------------------------------ bytes per feedback

def _bare_sqlite(records, durable, folder):
    """wchar per bare insert of each record into a bare rowid table (same pragmas)."""
    con = sqlite3.connect(str(Path(folder) / "bare.sqlite"), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={'FULL' if durable == 'full' else 'NORMAL'}")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, rec BLOB NOT NULL)")
    lat = []
    w0 = _wchar()
    for i, r in enumerate(records):
        t0 = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t (id, rec) VALUES (?, ?)", (i + 1, r))
        con.execute("COMMIT")
        lat.append(time.perf_counter() - t0)
    per = (_wchar() - w0) / len(records)
    con.close()
    return per, lat


def _bare_sqlite_state(state, k, durable, folder):
    con = sqlite3.connect(str(Path(folder) / "bare_state.sqlite"), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={'FULL' if durable == 'full' else 'NORMAL'}")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, state BLOB NOT NULL)")
    w0 = _wchar()
    for _ in range(k):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT OR REPLACE INTO t (id, state) VALUES (1, ?)", (state,))
        con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(PASSIVE)")
    c = (_wchar() - w0) / (k * len(state))
    con.close()
    return c


def _bare_file(records, durable, folder):
    fd = os.open(str(Path(folder) / "bare.journal"), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                 0o600)
    lat = []
    w0 = _wchar()
    for r in records:
        t0 = time.perf_counter()
        os.write(fd, r)
        if durable == "full":
            os.fdatasync(fd)
        lat.append(time.perf_counter() - t0)
    per = (_wchar() - w0) / len(records)
    os.close(fd)
    return per, lat


def _bare_file_state(state, folder):
    w0 = _wchar()
    path = Path(folder) / "bare.state"
    tmp = Path(folder) / ".bare.state.tmp"
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, state)
    os.fsync(fd)
    os.close(fd)
    os.replace(tmp, path)
    return (_wchar() - w0) / len(state)


def _run_feedbacks(p, n, start=0, timed=None):
    for i in range(start, start + n):
        pr, a, b = _texts(i)
        p.rank(pr, [a, b], pessimism=0.0)          # the app shows them: features cached
        t0 = time.perf_counter()
        p.prefer(pr, a, b)
        if timed is not None:
            timed.append(time.perf_counter() - t0)


def write_volume(cases, out, quick):
    out("\n## bytes passed to write() per feedback, averaged over 10 N feedbacks at the "
        "default N")
    out(f"{'store':>7} {'durable':>7} {'d':>5} {'N':>5} {'record B':>8} {'ours B/fb':>10} "
        f"{'bare append B':>13} {'c':>5} {'c*state/N':>10} {'target B':>10}")
    res = []
    for kind, durable, d in cases:
        head = SyntheticHead(d)
        tmp = tempfile.mkdtemp(prefix="eomd-bytes-")
        try:
            m = RewardModel(d)
            n_ck = default_checkpoint_every(d, m.solver, m.sketch_rank)
            total = 10 * n_ck
            if quick:
                total = max(2 * n_ck, min(total, 2000))
            store = _store(kind, tmp, durable)
            p = Personalizer(head, store, "u")
            _run_feedbacks(p, 3)                        # creation + warm-up
            p.checkpoint()
            w0 = _wchar()
            _run_feedbacks(p, total, start=3)
            ours = (_wchar() - w0) / total
            rec = journal.record_size(d, m._dtype.itemsize)
            fake = [journal.encode(1, i + 1, np.ones(d, m._dtype), 1.0, 1.0)
                    for i in range(min(total, 2000))]
            state = p._session.model.to_bytes()
            if kind == "sqlite":
                bare, _ = _bare_sqlite(fake, durable, tmp)
                c = _bare_sqlite_state(state, 3, durable, tmp)
            else:
                bare, _ = _bare_file(fake, durable, tmp)
                c = _bare_file_state(state, tmp)
            target = 1.5 * bare + c * len(state) / n_ck
            res.append((kind, durable, d, ours, target))
            out(f"{kind:>7} {durable:>7} {d:>5} {n_ck:>5} {rec:>8} {ours:>10.0f} {bare:>13.0f} "
                f"{c:>5.2f} {c * len(state) / n_ck:>10.0f} {target:>10.0f}  "
                f"{'PASS' if ours <= target else 'FAIL'}  ({total} feedbacks)")
            store.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return res


# ------------------------------------------------------------------ latency

class _BareSQLite:
    """A bare rowid table in its own database, same pragmas: the floor of one commit."""

    def __init__(self, folder, durable):
        self.con = sqlite3.connect(str(Path(folder) / "bare.sqlite"), isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute(f"PRAGMA synchronous={'FULL' if durable == 'full' else 'NORMAL'}")
        self.con.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, rec BLOB)")
        self.i = 0

    def commit(self, rec):
        self.i += 1
        self.con.execute("BEGIN IMMEDIATE")
        self.con.execute("INSERT INTO t (id, rec) VALUES (?, ?)", (self.i, rec))
        self.con.execute("COMMIT")


class _BareFile:
    def __init__(self, folder, durable):
        self.fd = os.open(str(Path(folder) / "bare.journal"),
                          os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.full = durable == "full"

    def commit(self, rec):
        os.write(self.fd, rec)
        if self.full:
            os.fdatasync(self.fd)


def latency(n, out):
    out("\n## prefer() after rank() on the same answers (feature-cache hit), d=384 exact; "
        "each call interleaved with a bare commit of a record of the same size")
    d = 384
    head = SyntheticHead(d)
    rec_b = journal.record_size(d, 4)
    fake = journal.encode(1, 1, np.ones(d, np.float32), 1.0, 1.0)
    rows = {}
    for kind in ("sqlite", "folder"):
        for durable in ("normal", "full"):
            tmp = tempfile.mkdtemp(prefix="eomd-lat-")
            try:
                store = _store(kind, tmp, durable)
                bare = (_BareSQLite if kind == "sqlite" else _BareFile)(tmp, durable)
                p = Personalizer(head, store, "u")
                _run_feedbacks(p, 20)
                calls = head.calls
                lat, blat = [], []
                for i in range(20, 20 + n):
                    pr, a, b = _texts(i)
                    p.rank(pr, [a, b], pessimism=0.0)   # the app shows them: features cached
                    tb = time.perf_counter()
                    if i % 2:                           # alternate who goes first
                        bare.commit(fake)
                    t0 = time.perf_counter()
                    p.prefer(pr, a, b)
                    t1 = time.perf_counter()
                    if not i % 2:
                        bare.commit(fake)
                    t2 = time.perf_counter()
                    lat.append(t1 - t0)
                    blat.append(t0 - tb if i % 2 else t2 - t1)
                assert head.calls - calls == n   # one head call per rank, none per prefer
                rows[(kind, durable)] = (statistics.median(lat), _pct(lat, 99),
                                         statistics.median(blat), _pct(blat, 99))
                store.close()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    out(f"{'store':>7} {'durable':>7} {'prefer ms med':>13} {'p99':>7} "
        f"{'bare commit of a {0} B record ms med'.format(rec_b):>36} {'p99':>7}  target")
    for (kind, durable), (med, p99, bmed, bp99) in rows.items():
        if durable == "normal":
            tgt, ok = "<= 0.3 ms", med <= 0.3e-3
        else:
            tgt, ok = f"<= 1.5 x bare FULL = {1.5 * bmed * MS:.3f} ms", med <= 1.5 * bmed
        out(f"{kind:>7} {durable:>7} {med * MS:>13.3f} {p99 * MS:>7.3f} {bmed * MS:>36.3f} "
            f"{bp99 * MS:>7.3f}  {tgt}: {'PASS' if ok else 'FAIL'}")
    return rows


def big(n, out):
    out("\n## d=4096 exact: prefer() after rank() (cache hit) vs the bare learn_pair; one "
        "checkpoint on its own")
    d = 4096
    head = SyntheticHead(d)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n + 5, 2, d)).astype(np.float32)
    X /= np.linalg.norm(X, axis=2, keepdims=True)
    m = RewardModel(d)
    for i in range(5):
        m.learn_pair(X[i, 0], X[i, 1])
    bare = []
    for i in range(5, n + 5):
        t0 = time.perf_counter()
        m.learn_pair(X[i, 0], X[i, 1])
        bare.append(time.perf_counter() - t0)
    out(f"bare learn_pair: median {statistics.median(bare) * MS:.2f} ms, "
        f"p99 {_pct(bare, 99) * MS:.2f} ms (state {m.nbytes / 2**20:.1f} MiB)")
    res = {}
    for kind, durable in (("sqlite", "normal"), ("sqlite", "full"), ("folder", "normal"),
                          ("folder", "full")):
        tmp = tempfile.mkdtemp(prefix="eomd-big-")
        try:
            store = _store(kind, tmp, durable)
            p = Personalizer(head, store, "u", checkpoint_every=10 ** 9)
            _run_feedbacks(p, 3)
            lat = []
            _run_feedbacks(p, n, start=3, timed=lat)
            t0 = time.perf_counter()
            p.checkpoint()
            ck = time.perf_counter() - t0
            med = statistics.median(lat)
            ok = med <= 2 * statistics.median(bare)
            res[(kind, durable)] = (med, ck)
            out(f"{kind:>7} {durable:>6}: prefer median {med * MS:.2f} ms, p99 {_pct(lat, 99) * MS:.2f} ms"
                f" (target <= 2 x bare = {2 * statistics.median(bare) * MS:.2f} ms: "
                f"{'PASS' if ok else 'FAIL'}); one checkpoint {ck * MS:.0f} ms "
                f"(default N = {default_checkpoint_every(d, 'exact')}: "
                f"{ck / default_checkpoint_every(d, 'exact') * MS:.1f} ms per feedback amortised)")
            store.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return res


# ------------------------------------------------------------------ end to end

def end_to_end(n, out):
    out("\n## end to end, d=384 MiniLM head (CPU): text in -> committed, after choose_pair() on "
        "the same candidates")
    from edge_omd.apps.demo import ensure_demo_head
    head = ensure_demo_head(log=out)   # the demo's cached MiniLM export (made once if missing)
    from edge_omd.apps.demo import load_corpus
    corpus = load_corpus()
    res = {}
    for durable in ("full", "normal"):
        tmp = tempfile.mkdtemp(prefix="eomd-e2e-")
        try:
            store = _store("sqlite", tmp, durable)
            bare = _BareSQLite(tmp, durable)
            fake = journal.encode(1, 1, np.ones(head.dim, np.float32), 1.0, 1.0)
            p = Personalizer(head, store, "u")
            lat, first, blat = [], [], []
            for i in range(n + 3):
                item = corpus.items[i % len(corpus.items)]
                cands = list(item.responses)
                t0 = time.perf_counter()
                a, b = p.pair_to_show(item.prompt, cands)
                first.append(time.perf_counter() - t0)
                # ours and the bare commit alternate who goes first (the first one after the
                # forward pass meets whatever the machine wrote meanwhile at its fsync)
                tb = time.perf_counter()
                if i % 2:
                    bare.commit(fake)
                t0 = time.perf_counter()
                p.prefer(item.prompt, cands[a], cands[b])
                t1 = time.perf_counter()
                if not i % 2:
                    bare.commit(fake)
                t2 = time.perf_counter()
                if i >= 3:
                    lat.append(t1 - t0)
                    blat.append(t0 - tb if i % 2 else t2 - t1)
            res[durable] = statistics.median(lat)
            out(f"durable={durable}: prefer() median {statistics.median(lat) * MS:.2f} ms, p99 "
                f"{_pct(lat, 99) * MS:.2f} ms (target <= 2 ms: "
                f"{'PASS' if statistics.median(lat) <= 2e-3 else 'FAIL'}); a bare SQLite commit "
                f"of the same record, interleaved: median {statistics.median(blat) * MS:.2f} ms; "
                f"the choose_pair() before it (embeds {len(cands)} answers) "
                f"{statistics.median(first) * MS:.0f} ms")
            store.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return res


# ------------------------------------------------------------------ footprint

def _du(folder):
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def footprint(dims, out):
    out("\n## disk footprint at the default N (high-water over 3 checkpoint intervals)")
    out(f"{'store':>7} {'d':>5} {'N':>5} {'state B':>10} {'records B':>10} {'high-water B':>13} "
        f"{'/ state':>7}  (after a checkpoint)")
    for kind in ("sqlite", "folder"):
        for d in dims:
            head = SyntheticHead(d)
            tmp = tempfile.mkdtemp(prefix="eomd-du-")
            try:
                store = _store(kind, tmp, "normal")
                m = RewardModel(d)
                n_ck = default_checkpoint_every(d, m.solver, m.sketch_rank)
                p = Personalizer(head, store, "u")
                peak, peak_wal = 0, 0
                step = max(1, n_ck // 8)
                for k in range(0, 3 * n_ck, step):
                    _run_feedbacks(p, step, start=k)
                    peak = max(peak, _du(tmp))
                    wal = Path(tmp) / "s.sqlite-wal"
                    peak_wal = max(peak_wal, wal.stat().st_size if wal.exists() else 0)
                after = _du(tmp)
                rec = journal.record_size(d, 4)
                out(f"{kind:>7} {d:>5} {n_ck:>5} {m.nbytes:>10} {n_ck * rec:>10} {peak:>13} "
                    f"{peak / m.nbytes:>7.2f}  {after}"
                    + (f" (WAL high-water {peak_wal} B)" if kind == "sqlite" else ""))
                store.close()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------ folder scale (issue 21 item 9)

def _fill_folder(folder, users):
    """`users` users' files (a valid checkpoint named for its id, an empty journal, a lock and
    a queue file) written directly, as many users' first feedbacks would leave them."""
    from edge_omd.store.base import StoreRecord
    from edge_omd.store.folder import encode_checkpoint
    store = FolderStore(folder)
    state = RewardModel(8, solver="diagonal").to_bytes()
    for i in range(users):
        uid = f"user{i}"
        base = Path(folder) / store.name_of(uid)
        Path(str(base) + ".omdck").write_bytes(encode_checkpoint(StoreRecord(
            uid, None, 8, 2, state, 0, 1.0, 1.0, i + 1, 0)))
        for suffix in (".omdjr", ".omdlk", ".omdq"):
            Path(str(base) + suffix).touch()
    store.close()


def folder_scale(reps, out, users=40_000, dim=384):
    out(f"\n## folder scale: open and one checkpoint with 1 user and with {users:,} ({4 * users:,}"
        f" files), d={dim}, median of {reps}; load {os.getloadavg()[0]:.1f}")
    out(f"{'users':>7} {'files':>8} {'open ms':>8} {'checkpoint ms':>13} {'delete ms':>9}")
    rows = {}
    for n in (0, users):
        tmp = tempfile.mkdtemp(prefix="eomd-scale-")
        try:
            folder = Path(tmp) / "f"
            _fill_folder(folder, n)
            opens, ckpts, dels = [], [], []
            for r in range(reps):
                t0 = time.perf_counter()
                store = FolderStore(folder)
                opens.append(time.perf_counter() - t0)
                p = Personalizer(SyntheticHead(dim), store, f"alice{r}", checkpoint_every=1000)
                p.thumb("a prompt", "an answer", up=True)
                t0 = time.perf_counter()
                p.checkpoint()
                ckpts.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                store.delete(f"alice{r}")
                dels.append(time.perf_counter() - t0)
                store.close()
            files = len(os.listdir(folder))
            rows[n] = [statistics.median(x) for x in (opens, ckpts, dels)]
            out(f"{n + 1:>7} {files:>8} {rows[n][0] * MS:>8.1f} {rows[n][1] * MS:>13.1f} "
                f"{rows[n][2] * MS:>9.1f}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    ratio = [rows[users][i] / rows[0][i] for i in range(3)]
    ok = ratio[0] <= 3 and ratio[1] <= 3
    out(f"{'ratio':>16} {ratio[0]:>8.1f} {ratio[1]:>13.1f} {ratio[2]:>9.1f}  target: open and "
        f"checkpoint <= 3x (O(1) in users; delete lists the folder to find every temporary "
        f"file of the user): {'PASS' if ok else 'FAIL'}")
    return rows


# ------------------------------------------------------------------ contention (issue 12 item 5)

def _contender(kind, path, fair, worker, n, dim, go, out_path):
    """One writer process: n feedbacks on the shared user, each timed (wait + learn + commit)."""
    store = (SQLiteStore(path, fair=fair) if kind == "sqlite" else FolderStore(path, fair=fair))
    p = Personalizer(SyntheticHead(dim), store, "shared")
    go.wait()
    lines = []
    t_start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        p.thumb(f"prompt {worker} {i % 13}", f"answer {worker} {i}", up=(i % 2 == 0))
        lines.append(f"{time.perf_counter() - t0:.6f} {p.last_commit}\n")
    lines.append(f"done {time.perf_counter() - t_start:.6f}\n")
    with open(out_path, "w") as f:
        f.writelines(lines)
    store.close()


def contention(runs, out, writers=4, n=50, dim=384):
    """writers processes x n feedbacks on ONE user at d=dim, per store, with and without the
    fair queue: per-feedback latency (median, p99, max), each writer's total time, lost."""
    import multiprocessing as mp
    out(f"\n## contention: {writers} processes x {n} feedbacks on one user, d={dim} (default "
        f"model and checkpoint interval, durable='full'), {runs} runs each; latency = one "
        "feedback() call (waiting included)")
    out(f"{'store':>7} {'lock':>7} {'median ms':>9} {'p99 ms':>8} {'max ms':>8} {'p99/med':>7} "
        f"{'writers done in s (min-max)':>27} {'lost':>5}  target p99 <= 10 x median, "
        "max <= 250 ms, 0 lost")
    ctx = mp.get_context("spawn")
    rows = []
    for kind in ("sqlite", "folder"):
        for fair in (False, True):
            lat, done, lost = [], [], 0
            for _ in range(runs):
                tmp = tempfile.mkdtemp(prefix="eomd-race-")
                try:
                    path = str(Path(tmp) / ("s.sqlite" if kind == "sqlite" else "users"))
                    init = (SQLiteStore(path) if kind == "sqlite" else FolderStore(path))
                    Personalizer(SyntheticHead(dim), init, "shared").checkpoint()  # user exists
                    init.close()
                    go = ctx.Event()
                    outs = [str(Path(tmp) / f"w{w}.txt") for w in range(writers)]
                    procs = [ctx.Process(target=_contender, args=(kind, path, fair, w, n, dim,
                                                                  go, outs[w]))
                             for w in range(writers)]
                    for pr in procs:
                        pr.start()
                    time.sleep(3.0)              # every process imported and opened its store
                    go.set()
                    for pr in procs:
                        pr.join(600)
                    seqs = []
                    for o in outs:
                        for line in open(o):
                            a, b = line.split()
                            if a == "done":
                                done.append(float(b))
                            else:
                                lat.append(float(a))
                                seqs.append(int(b))
                    final = (SQLiteStore(path) if kind == "sqlite" else FolderStore(path))
                    got = Personalizer(SyntheticHead(dim), final, "shared").updates
                    final.close()
                    lost += writers * n - got + (len(seqs) - len(set(seqs)))
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
            med, p99, mx = statistics.median(lat), _pct(lat, 99), max(lat)
            ok = p99 <= 10 * med and mx <= 0.25 and lost == 0
            rows.append((kind, fair, med, p99, mx, lost))
            out(f"{kind:>7} {'fair' if fair else 'plain':>7} {med * MS:>9.1f} {p99 * MS:>8.1f} "
                f"{mx * MS:>8.1f} {p99 / med:>7.1f} {min(done):>13.2f} - {max(done):<11.2f} "
                f"{lost:>5}  {'PASS' if ok else 'FAIL'}{'' if fair else ' (before: no queue)'}")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and dims")
    ap.add_argument("--only", default="recovery,bytes,latency,big,e2e,footprint,folder-scale,"
                                      "contention")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    out = print
    out(f"# edge-omd persistence bench (python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs){' --quick' if args.quick else ''}")
    dims = (384, 2048) if args.quick else (384, 896, 2048, 4096)
    if "recovery" in only:
        recovery(dims, 3 if args.quick else 5, out)
    if "bytes" in only:
        cases = [(k, du, d) for d in ((384,) if args.quick else (384, 4096))
                 for k in ("sqlite", "folder") for du in ("full", "normal")]
        write_volume(cases, out, args.quick)
    if "latency" in only:
        latency(200 if args.quick else 1000, out)
    if "big" in only:
        big(20 if args.quick else 60, out)
    if "e2e" in only:
        end_to_end(30 if args.quick else 100, out)
    if "footprint" in only:
        footprint((384,) if args.quick else (384, 4096), out)
    if "folder-scale" in only:
        folder_scale(3 if args.quick else 7, out, users=10_000 if args.quick else 40_000)
    if "contention" in only:
        contention(2 if args.quick else 5, out)


if __name__ == "__main__":
    main()
