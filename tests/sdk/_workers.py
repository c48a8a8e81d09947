"""Functions run in child processes (multiprocessing 'spawn': importable by name), and the
deterministic observation stream the crash and concurrency tests replay."""
import os
import signal
import struct

from edge_omd.personalizer import Personalizer
from edge_omd.reward_model import RewardModel
from edge_omd.store import FileIO, FolderStore, SQLiteStore
from edge_omd.store.sqlite import _SQLiteTx
from tests.sdk.fakes import FakeHead


def open_store(kind, path, durable="full", io=None):
    if kind == "sqlite":
        return SQLiteStore(path, durable=durable)
    return FolderStore(path, durable=durable, io=io)


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
        p.feedback(prompt, a, up=b)


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
        p.feedback(f"prompt {worker} {i}", f"answer from worker {worker} number {i}",
                   up=(i % 2 == 0))
        lines.append(f"{p.last_commit} {worker} {i}\n")
    if out_path is not None:
        with open(out_path, "w") as f:
            f.writelines(lines)
    store.close()


def hammer_observation(worker, i):
    return (f"prompt {worker} {i}", f"answer from worker {worker} number {i}", i % 2 == 0)


class _KillingIO(FileIO):
    """FolderStore I/O that SIGKILLs its own process at a chosen operation."""

    def __init__(self, at):
        self.at = at            # ("torn", n) / ("replace", n) / ("truncate", n)
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
