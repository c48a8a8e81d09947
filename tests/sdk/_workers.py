"""Functions run in child processes (multiprocessing 'spawn': importable by name), and the
deterministic observation stream the crash and concurrency tests replay."""
import os
import signal
import struct
import threading

from edge_omd.personalizer import Personalizer
from edge_omd.reward_model import RewardModel
from edge_omd.store import FileIO, FolderStore, SQLiteStore
from edge_omd.store.sqlite import _SQLiteTx
from tests.sdk.fakes import FakeHead


def open_store(kind, path, durable="full", io=None):
    if kind == "sqlite":
        return SQLiteStore(path, durable=durable)
    return FolderStore(path, durable=durable, io=io)


# ------------------------------------------------------------------ a stream of every operation

def op_kind(k):
    """The k-th operation (k >= 1) of the operation stream: mostly feedbacks (send(p, k)), an
    import every 13th, a delete (reset) every 17th, an explicit checkpoint every 7th."""
    if k % 13 == 12:
        return "import"
    if k % 17 == 16:
        return "delete"
    if k % 7 == 6:
        return "checkpoint"
    return "feedback"


def do_op(p, k, blob):
    """Operation k on Personalizer p; `blob` is the user export every import brings in."""
    kind = op_kind(k)
    if kind == "import":
        p.import_state(blob)
    elif kind == "delete":
        p.reset()
    elif kind == "checkpoint":
        p.checkpoint()
    else:
        send(p, k)


def reference_states(head, options, blob_state, upto):
    """[model bytes after operation k for k in 0..upto] of the operation stream, applied to a
    RewardModel directly (no store)."""
    fresh = reference_model(head, options)
    model, out = reference_model(head, options), [fresh.to_bytes()]
    for k in range(1, upto + 1):
        kind = op_kind(k)
        if kind == "import":
            model = RewardModel.from_bytes(blob_state)
        elif kind == "delete":
            model = reference_model(head, options)
        elif kind == "feedback":
            reference_apply(model, head, k)
        out.append(model.to_bytes())
    return out


def op_child(kind, path, durable, wfd, every, dim, options, blob, start, at=None):
    """Run the operation stream from operation `start`, forever; after each acknowledged one
    write its index to the pipe `wfd`. `at`: die at a chosen point (see _KillingIO;
    ("sqlite_commit", n): just before the n-th SQLite COMMIT, whatever the operation)."""
    io = _KillingIO(at) if at is not None and kind == "folder" else None
    if at is not None and at[0] == "sqlite_commit":
        _kill_before_commit(at[1])
    store = open_store(kind, path, durable, io)
    p = Personalizer(FakeHead(dim=dim), store, "victim", checkpoint_every=every,
                     model_options=options)
    k = start
    while True:
        do_op(p, k, blob)
        os.write(wfd, struct.pack("<q", k))
        k += 1


def _kill_before_commit(n):
    import contextlib
    real = SQLiteStore._transaction
    count = [0]

    @contextlib.contextmanager
    def transaction(self, con):
        con.execute("BEGIN IMMEDIATE")
        try:
            yield
            count[0] += 1
            if count[0] >= n:
                os.kill(os.getpid(), signal.SIGKILL)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
    assert real is not None
    SQLiteStore._transaction = transaction


def fork_reporting(fn):
    """(pid, read end of a pipe): a child process runs fn(write end) and exits (never
    returns into the test)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # pragma: no cover - the child
        try:
            os.close(r)
            fn(w)
        finally:
            os._exit(1)
    os.close(w)
    return pid, r


def within(seconds, fn):
    """fn() in a daemon thread joined for `seconds`: ("ok", value), ("raised", exception) or
    ("hung", None): a wait that never ends fails the test instead of hanging the suite."""
    out = []

    def run():
        try:
            out.append(("ok", fn()))
        except BaseException as exc:   # noqa: BLE001 - reported to the test
            out.append(("raised", exc))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    return out[0] if out else ("hung", None)


# ------------------------------------------------------------------ a deterministic stream

def observation(seq):
    """The seq-th observation of the crash/soak stream: ("pair", prompt, chosen, rejected) or
    ("thumb", prompt, response, up); a function of seq alone, so any prefix can be replayed."""
    prompt = f"prompt number {seq % 7} about topic {seq % 3}"
    if seq % 3:
        return ("pair", prompt, f"short code answer {seq} alpha {seq % 5}",
                f"long prose answer {seq} beta {seq % 11}")
    return ("thumb", prompt, f"single answer {seq} gamma {seq % 4}", seq % 2 == 0)


def send(p, seq):
    kind, prompt, a, b = observation(seq)
    if kind == "pair":
        p.prefer(prompt, a, b)
    else:
        p.thumb(prompt, a, up=b)


def reference_apply(model, head, seq):
    """What `send(p, seq)` teaches, applied straight to a RewardModel (no store, no journal)."""
    kind, prompt, a, b = observation(seq)
    if kind == "pair":
        phi = head.features(prompt, [a, b])
        model.learn_pair(phi[0], phi[1])
    else:
        model.learn_thumb(head.features(prompt, [a])[0], b)


def reference_model(head, options):
    model = RewardModel(head.dim, **options)
    head.check(model)
    return model


# ------------------------------------------------------------------ processes

def hammer(kind, path, user_id, worker, n, out_path=None):
    """n feedbacks on the same user from this process, each committed on its own; with
    out_path, writes one line "seq worker i" per commit (the commit order)."""
    store = open_store(kind, path)
    p = Personalizer(FakeHead(dim=64), store, user_id, checkpoint_every=16)
    lines = []
    for i in range(n):
        p.thumb(f"prompt {worker} {i}", f"answer from worker {worker} number {i}",
                   up=(i % 2 == 0))
        lines.append(f"{p.last_commit} {worker} {i}\n")
    if out_path is not None:
        with open(out_path, "w") as f:
            f.writelines(lines)
    store.close()


def hammer_observation(worker, i):
    return (f"prompt {worker} {i}", f"answer from worker {worker} number {i}", i % 2 == 0)


def contender(kind, path, worker, n, dim, options, wfd):
    """n feedbacks on the user "shared"; after each, (i, its commit's counter) to `wfd`."""
    store = open_store(kind, path)
    p = Personalizer(FakeHead(dim=dim), store, "shared", checkpoint_every=5,
                     model_options=options)
    for i in range(n):
        prompt, response, up = hammer_observation(worker, i)
        p.thumb(prompt, response, up=up)
        os.write(wfd, struct.pack("<qq", i, p.last_commit))


def contended_apply(model, head, worker, i):
    """What `contender`'s i-th feedback of `worker` teaches, applied to a RewardModel."""
    prompt, response, up = hammer_observation(worker, i)
    model.learn_thumb(head.features(prompt, [response])[0], up)


class _KillingIO(FileIO):
    """FolderStore I/O that SIGKILLs its own process at a chosen operation."""

    def __init__(self, at):
        self.at = at            # ("torn", n) / ("replace", n) / ("truncate", n) / ("unlink", n)
        self.count = 0

    def _tick(self, what):
        if self.at[0] == what:
            self.count += 1
            if self.count >= self.at[1]:
                return True
        return False

    def pwrite(self, fd, data, offset):
        if self.at[0] == "torn" and bytes(data[:4]) == b"EOJR" and self._tick("torn"):
            os.pwrite(fd, bytes(data[:max(1, len(data) // 2)]), offset)
            os.kill(os.getpid(), signal.SIGKILL)
        return super().pwrite(fd, data, offset)

    def replace(self, src, dst):
        if self._tick("replace"):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().replace(src, dst)

    def ftruncate(self, fd, size):
        if size == 0 and self._tick("truncate"):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().ftruncate(fd, size)

    def unlink(self, path):
        if self._tick("unlink"):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().unlink(path)


def crash_child(kind, path, durable, wfd, every, dim, options, at=None):
    """Send the stream from where the store stands, forever; after each commit write its
    counter to the pipe `wfd`. `at`: die at a chosen point (see _KillingIO; ("sqlite_ckpt", n):
    inside the n-th SQLite checkpoint transaction, before COMMIT)."""
    io = None
    if at is not None and kind == "folder":
        io = _KillingIO(at)
    if at is not None and at[0] == "sqlite_ckpt":
        real = _SQLiteTx.checkpoint
        count = [0]

        def checkpoint(self, state, *, updates):
            out = real(self, state, updates=updates)
            count[0] += 1
            if count[0] >= at[1]:
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        _SQLiteTx.checkpoint = checkpoint
    store = open_store(kind, path, durable, io)
    p = Personalizer(FakeHead(dim=dim), store, "victim", checkpoint_every=every,
                     model_options=options)
    seq = p.updates
    while True:
        seq += 1
        send(p, seq)
        os.write(wfd, struct.pack("<q", p.last_commit))


def recover_bytes(entries, out_path):
    """For each (kind, path, user_id, dim): the recovered model's bytes, in a fresh process."""
    import hashlib
    lines = []
    for kind, path, user_id, dim in entries:
        store = open_store(kind, path)
        p = Personalizer(FakeHead(dim=dim), store, user_id)
        blob = p._session.model.to_bytes()
        lines.append(f"{hashlib.sha256(blob).hexdigest()} {p.updates} {p._session.model.t}\n")
        store.close()
    with open(out_path, "w") as f:
        f.writelines(lines)


def crash_inside_sqlite_transaction(path, user_id):
    """Append a garbage record and move the checkpoint inside a write transaction, then die
    before COMMIT."""
    store = SQLiteStore(path)
    with store.transaction(user_id, head_fingerprint=None, dim=64) as tx:
        tx.sync(None)
        tx.append([b"garbage"])
        tx.con.execute("UPDATE checkpoints SET state = ?", (b"garbage",))
        os._exit(3)   # no COMMIT, no ROLLBACK, no cleanup: a crash


def crash_before_rename(path, user_id):
    """FolderStore: the new checkpoint is written and fsync'ed, then the process dies before
    the rename."""
    store = FolderStore(path)
    os.replace = lambda *a, **k: os._exit(3)
    store.update(user_id, lambda old: b"new state that must not appear", head_fingerprint=None,
                 dim=64)


def assert_recovered_in_fresh_process(entries, live, tmp_path):
    """`recover_bytes(entries)` in a spawned interpreter (nothing shared with this one) must
    print exactly the `live` lines: every user reopened from its store has the live bytes."""
    import multiprocessing as mp
    out = tmp_path / "recovered.txt"
    proc = mp.get_context("spawn").Process(target=recover_bytes, args=(entries, str(out)))
    proc.start()
    proc.join(300)
    assert proc.exitcode == 0
    got = out.read_text().split("\n")[:-1]
    for e, want, have in zip(entries, live, got):
        assert have == want, e
