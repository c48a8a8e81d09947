"""A crash-state explorer for FolderStore, in the spirit of ALICE (OSDI 2014) and SQLite's crash
tests: power cuts, not just kills.

1. A workload runs on a real folder through `RecordingIO` (a FileIO that does every operation
   and logs it): file creation, every write (offset + bytes), fsync / fdatasync, truncate,
   rename, unlink, folder fsync. Each acknowledged call is an EVENT with the range of
   operations it issued and the live model's bytes when it returned (None: the user is absent).
2. For every crash point k (after operation k) `crash_states` builds the file trees a power cut
   may leave, under this model of a journaling file system (ext4 / xfs / btrfs):
   - a file's data is durable as of its last fsync; the writes and truncations after it may
     persist in any subset and order, and the last one that persists may be torn;
   - folder entries (create, rename, unlink) are durable as of the last folder fsync; the
     ones after it persist as an in-order prefix.
   Variants per crash point: everything persisted; nothing unsynced persisted; every prefix of
   the unsynced folder operations, with and without the unsynced data; for each file, every prefix of its unsynced data
   operations, each one of them dropped alone (the later ones persisted: reordering), and its
   last unsynced write torn (1 byte, half, all but 1 byte).
3. Each distinct state is written to a scratch folder and reopened with a fresh FolderStore:
   it must open, every user's checkpoint must pass its checks, and each user's recovered model
   (checkpoint + journal replay) must equal the live model after some event i with
   lo <= i <= hi, where lo = the last event acknowledged durably before the crash (every
   event under durable="full"; under "normal" the last one that ended in a checkpoint or a
   delete) and hi = the last event that had started. Every few states a write is made on the
   recovered folder too (it must succeed and be readable again).

Crash states are counted by the kind of operation at the crash point: append (journal write /
fsync), checkpoint (temporary file, key file), truncation, rename, delete (unlink).
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from edge_omd.envelope import FileIO
from edge_omd.errors import EdgeOMDError
from edge_omd.reward_model import RewardModel
from edge_omd.store import FolderStore, journal

CATEGORIES = ("append", "checkpoint", "truncation", "rename", "delete")


class RecordingIO(FileIO):
    """Does every operation for real and logs the ones that change the folder's files."""

    def __init__(self, folder):
        self.folder = os.path.abspath(folder)
        self.log: list = []           # ("create", name, ino) ("write", ino, off, bytes)
        #                               ("trunc", ino, size) ("fsync", ino) ("rename", a, b)
        #                               ("unlink", name) ("dirsync",)
        self.names: dict = {}         # name -> ino (as the workload sees it now)
        self.fds: dict = {}           # fd -> ino
        self.kind: dict = {}          # ino -> "journal" / "checkpoint" / "temp" / "other"
        self.inos = 0
        self.initial: dict = {}       # name -> bytes present before recording (durable)

    def snapshot_initial(self):
        for n in sorted(os.listdir(self.folder)):
            p = os.path.join(self.folder, n)
            if os.path.isfile(p):
                self.inos += 1
                self.names[n] = self.inos
                self.kind[self.inos] = _kind_of(n)
                self.initial[n] = Path(p).read_bytes()

    def _name(self, path):
        """The file's name if it is in the folder and holds state (lock and queue files hold
        none: their holder records are information, not state)."""
        path = os.path.abspath(os.fspath(path))
        name = os.path.basename(path)
        if os.path.dirname(path) != self.folder or name.endswith(".omdlk") or ".omdq" in name:
            return None
        return name

    def open(self, path, flags, mode=0o600):
        fd = super().open(path, flags, mode)
        name = self._name(path)
        if name is None:
            return fd
        if name not in self.names:
            self.inos += 1
            self.names[name] = self.inos
            self.kind[self.inos] = _kind_of(name)
            self.log.append(("create", name, self.inos))
        self.fds[fd] = self.names[name]
        return fd

    def close(self, fd):
        self.fds.pop(fd, None)
        super().close(fd)

    def pwrite(self, fd, data, offset):
        super().pwrite(fd, data, offset)
        if fd in self.fds:
            self.log.append(("write", self.fds[fd], offset, bytes(data)))

    def fsync(self, fd):
        super().fsync(fd)
        if fd in self.fds:
            self.log.append(("fsync", self.fds[fd]))

    fdatasync = fsync

    def ftruncate(self, fd, size):
        super().ftruncate(fd, size)
        if fd in self.fds:
            self.log.append(("trunc", self.fds[fd], size))

    def replace(self, src, dst):
        super().replace(src, dst)
        a, b = self._name(src), self._name(dst)
        self.names[b] = self.names.pop(a)
        self.log.append(("rename", a, b))

    def unlink(self, path):
        super().unlink(path)
        name = self._name(path)
        self.names.pop(name, None)
        self.log.append(("unlink", name))

    def fsync_dir(self, path):
        super().fsync_dir(path)
        self.log.append(("dirsync",))


def _kind_of(name: str) -> str:
    if name.endswith(".tmp") or name == ".omdkey":
        return "temp"
    if name.endswith((".omdjr", ".omdjournal")):
        return "journal"
    if name.endswith((".omdck", ".omdstate")):
        return "checkpoint"
    return "other"


def category(log, k, kinds) -> str:
    op = log[k]
    if op[0] == "dirsync":   # the folder operation it makes durable
        for j in range(k - 1, -1, -1):
            if log[j][0] in ("rename", "unlink", "create"):
                return category(log, j, kinds)
        return "checkpoint"
    if op[0] == "rename":
        return "rename"
    if op[0] == "unlink":
        return "delete"
    if op[0] == "trunc":
        return "truncation"
    ino = op[2] if op[0] == "create" else op[1]
    return "append" if kinds.get(ino) in ("journal", "other") else "checkpoint"


@dataclass
class Event:
    user: str
    first: int              # index of its first operation
    end: int                # index after its last operation (the call returned then)
    state: bytes | None     # the live model's bytes after it (None: the user is absent)
    durable: bool           # acknowledged durably (survives a power cut after `end`)


@dataclass
class Workload:
    folder: Path
    io: RecordingIO
    events: list = field(default_factory=list)
    initial: dict = field(default_factory=dict)   # user -> bytes | None before any event


# ------------------------------------------------------------------ crash states

def _replay(log, upto, initial, choose_dir, choose_data):
    """The file tree after operations [0, upto] under a persistence choice.

    choose_dir(unsynced folder ops) -> how many of them persist (a prefix).
    choose_data(ino, unsynced data ops) -> the list of ops that persist (in order), the last
    possibly replaced by a torn write."""
    names = {n: i for i, n in enumerate(initial)}
    data = {i: bytearray(initial[n]) for n, i in names.items()}
    ino_of_initial = dict(names)
    base = max(names.values(), default=-1) + 1
    # durable folder and data as of the last syncs
    dnames = dict(names)
    ddata = {i: bytes(b) for i, b in data.items()}
    pending_dir, pending_data = [], defaultdict(list)
    remap = {}    # recorder ino -> model ino
    for n, i in ino_of_initial.items():
        remap[i + 1] = i   # RecordingIO numbered the initial files 1..m in sorted order
    for op in log[:upto + 1]:
        kind = op[0]
        if kind == "create":
            remap[op[2]] = base
            data[base] = bytearray()
            names[op[1]] = base
            base += 1
            pending_dir.append(op)
        elif kind == "write":
            i = remap[op[1]]
            buf = data[i]
            off, b = op[2], op[3]
            if len(buf) < off:
                buf.extend(b"\0" * (off - len(buf)))
            buf[off:off + len(b)] = b
            pending_data[i].append(op)
        elif kind == "trunc":
            i = remap[op[1]]
            del data[i][op[2]:]
            data[i].extend(b"\0" * (op[2] - len(data[i])))
            pending_data[i].append(op)
        elif kind == "fsync":
            i = remap[op[1]]
            ddata[i] = bytes(data[i])
            pending_data[i] = []
        elif kind == "rename":
            names[op[2]] = names.pop(op[1])
            pending_dir.append(op)
        elif kind == "unlink":
            names.pop(op[1], None)
            pending_dir.append(op)
        elif kind == "dirsync":
            dnames = dict(names)
            pending_dir = []
    # folder entries: the durable ones + a prefix of the pending ops
    out_names = dict(dnames)
    for op in pending_dir[:choose_dir(pending_dir)]:
        if op[0] == "create":
            out_names[op[1]] = remap[op[2]]
        elif op[0] == "rename":
            if op[1] in out_names:
                out_names[op[2]] = out_names.pop(op[1])
        elif op[0] == "unlink":
            out_names.pop(op[1], None)
    tree = {}
    for n, i in out_names.items():
        buf = bytearray(ddata.get(i, b""))
        for op in choose_data(i, pending_data.get(i, [])):
            if op[0] == "write":
                off, b = op[2], op[3]
                if len(buf) < off:
                    buf.extend(b"\0" * (off - len(buf)))
                buf[off:off + len(b)] = b
            else:
                del buf[op[2]:]
                buf.extend(b"\0" * (op[2] - len(buf)))
        tree[n] = bytes(buf)
    return tree, pending_dir, {i: ops for i, ops in pending_data.items() if ops}


def crash_states(log, k, initial):
    """[(variant name, tree)] for a crash after operation k (duplicates included)."""
    allv = (lambda ops: len(ops)), (lambda i, ops: ops)
    tree, pdir, pdata = _replay(log, k, initial, *allv)
    out = [("all", tree)]
    out.append(("none", _replay(log, k, initial, lambda ops: 0, lambda i, ops: [])[0]))
    for j in range(len(pdir)):
        out.append((f"dir prefix {j}", _replay(log, k, initial, lambda ops, j=j: j,
                                               lambda i, ops: ops)[0]))
    for j in range(1, len(pdir) + 1):   # folder operations persisted, unsynced data not
        out.append((f"dir prefix {j}, no data", _replay(log, k, initial, lambda ops, j=j: j,
                                                        lambda i, ops: [])[0]))
    for ino, ops in pdata.items():
        for j in range(len(ops)):
            out.append((f"data prefix {j}", _replay(
                log, k, initial, lambda o: len(o),
                lambda i, o, ino=ino, j=j: o[:j] if i == ino else o)[0]))
            if j < len(ops) - 1:
                out.append((f"drop {j}", _replay(
                    log, k, initial, lambda o: len(o),
                    lambda i, o, ino=ino, j=j: o[:j] + o[j + 1:] if i == ino else o)[0]))
        last = max((j for j, op in enumerate(ops) if op[0] == "write"), default=None)
        if last is not None:
            b = ops[last][3]
            for cut in sorted({1, len(b) // 2, len(b) - 1} - {0, len(b)}):
                torn = ops[last][:3] + (b[:cut],)
                out.append((f"torn {cut}", _replay(
                    log, k, initial, lambda o: len(o),
                    lambda i, o, ino=ino, last=last, torn=torn:
                        o[:last] + [torn] if i == ino else o)[0]))
    return out


def tree_hash(tree) -> str:
    h = hashlib.sha256()
    for n in sorted(tree):
        h.update(n.encode() + b"\0" + len(tree[n]).to_bytes(8, "little") + tree[n])
    return h.hexdigest()


# ------------------------------------------------------------------ checking one state

class NoSyncIO(FileIO):
    """Scratch folders only: no fsync (what is checked there is logic, not durability)."""

    def fsync(self, fd):
        pass

    fdatasync = fsync

    def fsync_dir(self, path):
        pass


_REPLAYS: dict = {}


def recovered(folder, user, store=None):
    """The user's recovered model bytes (None: absent), through a fresh FolderStore: its
    checkpoint loaded and its journal replayed (memoised on the checkpoint's and records'
    bytes: thousands of states share them)."""
    own = store is None
    store = FolderStore(folder, fair=False, io=NoSyncIO()) if own else store
    try:
        rec = store.sync(user).record
        if rec is None:
            return None
        key = hashlib.sha256(rec.state + b"".join(
            r.seq.to_bytes(8, "little") + repr((r.label, r.weight)).encode() + r.z.tobytes()
            for r in rec.journal)).digest()
        out = _REPLAYS.get(key)
        if out is None:
            m = RewardModel.from_bytes(rec.state)
            for r in rec.journal:
                journal.apply(m, r)
            out = _REPLAYS[key] = m.to_bytes()
        return out
    finally:
        if own:
            store.close()


def allowed(events, initial, user, k):
    """The states user `user` may be in after a crash after operation k: (lo, hi, [states])
    with states[0] = before its first event."""
    evs = [e for e in events if e.user == user]
    states = [initial.get(user)] + [e.state for e in evs]
    lo = 0
    hi = 0
    for i, e in enumerate(evs, start=1):
        if e.first <= k or e.end <= k + 1:   # started (an event may issue no operation)
            hi = i
        if e.end <= k + 1 and e.durable:
            lo = i
    return lo, hi, states


@dataclass
class Report:
    states: int = 0
    distinct: int = 0
    by_category: Counter = field(default_factory=Counter)
    distinct_by_category: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    writes_after: int = 0


def explore(w: Workload, scratch: Path, *, fresh=None, write_every=15, make_write=None):
    """Every crash state of workload `w`, reopened and checked (see the module doc)."""
    rep = Report()
    log = w.io.log
    users = sorted({e.user for e in w.events})
    seen = set()
    seen_cat = defaultdict(set)
    for k in range(len(log)):
        cat = category(log, k, w.io.kind)
        ranges = {u: allowed(w.events, w.initial, u, k) for u in users}
        for variant, tree in crash_states(log, k, w.io.initial):
            rep.states += 1
            rep.by_category[cat] += 1
            key = tree_hash(tree)
            seen_cat[cat].add(key)
            if (key, tuple((u, r[0], r[1]) for u, r in ranges.items())) in seen:
                continue
            seen.add((key, tuple((u, r[0], r[1]) for u, r in ranges.items())))
            if scratch.exists():
                shutil.rmtree(scratch)
            scratch.mkdir()
            for n, b in tree.items():
                (scratch / n).write_bytes(b)
            try:
                store = FolderStore(scratch, fair=False, io=NoSyncIO())
            except EdgeOMDError as exc:
                rep.failures.append((k, cat, variant, "*", f"does not open: {exc!r}"))
                continue
            for u in users:
                lo, hi, states = ranges[u]
                try:
                    got = recovered(scratch, u, store)
                except EdgeOMDError as exc:
                    rep.failures.append((k, cat, variant, u, f"does not open: {exc!r}"))
                    continue
                ok = states[lo:hi + 1]
                if got not in ok and not (got == fresh and None in ok):   # created, empty
                    where = [i for i, s in enumerate(states) if s == got]
                    rep.failures.append((k, cat, variant, u, f"state of event(s) {where}, "
                                         f"allowed {lo}..{hi}"))
            store.close()
            if make_write is not None and len(seen) % write_every == 0:
                try:
                    make_write(scratch, users)
                    rep.writes_after += 1
                except EdgeOMDError as exc:
                    rep.failures.append((k, cat, variant, "*", f"write after recovery: {exc!r}"))
    rep.distinct = len({key for s in seen_cat.values() for key in s})
    rep.distinct_by_category = Counter({c: len(s) for c, s in seen_cat.items()})
    return rep


# ------------------------------------------------------------------ the workload

def build_workload(tmp: Path, durable: str, scale: int = 1, dim: int = 16,
                   options=None, recorder=None) -> tuple:
    """A FolderStore workload that exercises every kind of operation: first commits, journal
    appends, checkpoints (every 3 records), a folder of the old format (ids in file names, no
    key) moved to keyed names, stale temporary files erased at open, deletes (reset),
    an import (new epoch), explicit checkpoints. Returns (Workload, fresh model bytes)."""
    from edge_omd.personalizer import Personalizer
    from tests.sdk import _workers
    from tests.sdk.fakes import FakeHead

    options = options or {"solver": "exact", "dtype": "float64"}
    head = FakeHead(dim=dim)
    folder = tmp / "live"
    # before recording: two users in the old layout, and crash leftovers
    setup = FolderStore(folder, durable=durable, fair=False)
    legacy = {}
    for n, uid in enumerate(("leg1", "leg2")):
        p = Personalizer(head, setup, uid, checkpoint_every=3, model_options=options)
        for i in range(2 + n * 2):
            _workers.send(p, 100 * (n + 1) + i)
        legacy[uid] = p.model.to_bytes()
        paths = setup.paths(uid)
        os.replace(paths.checkpoint, folder / f"{uid}.omdstate")
        if os.path.exists(paths.journal):
            os.replace(paths.journal, folder / f"{uid}.omdjournal")
        os.replace(paths.lock, folder / f"{uid}.lock")
    setup.close()
    for n in os.listdir(folder):
        if n.endswith(".omdlk") or n.startswith(".omdq") or n == ".omdkey":
            os.unlink(folder / n)
    (folder / ".leg1.0123456789ab.tmp").write_bytes(b"a full state left by an old crash")
    (folder / f".{'0' * 32}.omdck.{_dead_pid()}.abcdef012345.tmp").write_bytes(b"stale")
    fresh = Personalizer(head, FolderStore(tmp / "fresh", fair=False), "x",
                         model_options=options).model.to_bytes()

    io = (recorder or RecordingIO)(folder)
    io.snapshot_initial()
    w = Workload(folder, io, initial={**legacy, "alice": None, "bob": None})
    store = FolderStore(folder, durable=durable, io=io, fair=False)
    seq = [0]

    def event(user, fn):
        first = len(io.log)
        fn()
        end = len(io.log)
        live = recovered(folder, user)
        s = store.sync(user).head
        w.events.append(Event(user, first, end, live,
                              durable == "full" or s is None or
                              s.checkpoint_updates == s.updates))
        return live

    def feed(p, user, n):
        for _ in range(n):
            seq[0] += 1
            k = seq[0]
            live = event(user, lambda: _workers.send(p, k))
            assert live == p.model.to_bytes(), "the store disagrees with the live model"

    pa = Personalizer(head, store, "alice", checkpoint_every=2, model_options=options)
    for _ in range(scale):
        feed(pa, "alice", 7)
        p1 = Personalizer(head, store, "leg1", checkpoint_every=3, model_options=options)
        feed(p1, "leg1", 4)
        event("alice", pa.reset)
        feed(pa, "alice", 4)
        pb = Personalizer(head, store, "bob", checkpoint_every=2, model_options=options)
        blob = pa.export_state()
        event("bob", lambda: pb.import_state(blob))
        feed(pb, "bob", 4)
        p2 = Personalizer(head, store, "leg2", checkpoint_every=4, model_options=options)
        feed(p2, "leg2", 2)
        event("leg2", p2.checkpoint)
        event("bob", pb.reset)
        feed(pa, "alice", 2)
        event("alice", pa.checkpoint)
        event("leg1", p1.reset)
        feed(p1, "leg1", 2)
    store.close()
    return w, fresh


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid += 1


def write_after_recovery(dim, options):
    """A feedback on every user of a recovered folder (it must work and read back)."""
    from edge_omd.personalizer import Personalizer
    from tests.sdk import _workers
    from tests.sdk.fakes import FakeHead

    def run(folder, users):
        store = FolderStore(folder, fair=False, io=NoSyncIO())
        try:
            for u in users:
                p = Personalizer(FakeHead(dim=dim), store, u, checkpoint_every=3,
                                 model_options=options)
                _workers.send(p, 999)
                if recovered(folder, u) != p.model.to_bytes():
                    raise EdgeOMDError(f"user {u}: the write after recovery does not read back")
        finally:
            store.close()
    return run
