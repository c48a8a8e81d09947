"""Functions run in child processes (multiprocessing 'spawn': importable by name)."""
import os

from edge_omd.personalizer import Personalizer
from edge_omd.store import FolderStore, SQLiteStore
from tests.sdk.fakes import FakeHead


def open_store(kind, path):
    return SQLiteStore(path) if kind == "sqlite" else FolderStore(path)


def hammer(kind, path, user_id, worker, n):
    """n feedback updates on the same user from this process, each committed on its own."""
    store = open_store(kind, path)
    p = Personalizer(FakeHead(dim=64), store, user_id)
    for i in range(n):
        p.feedback(f"prompt {worker} {i}", f"answer from worker {worker} number {i}", up=(i % 2 == 0))
    store.close()


def crash_inside_sqlite_transaction(path, user_id):
    """Write garbage into the user's row inside the update transaction, then die before COMMIT."""
    store = SQLiteStore(path)

    def fn(old):
        store._con().execute("UPDATE user_state SET state = ?, updates = updates + 1000 "
                             "WHERE user_id = ?", (b"garbage", user_id))
        os._exit(3)   # no COMMIT, no ROLLBACK, no cleanup: a crash

    store.update(user_id, fn, head_fingerprint=None, dim=64)


def crash_before_rename(path, user_id):
    """FolderStore: the new file is written and fsync'ed, then the process dies before os.replace."""
    store = FolderStore(path)
    os.replace = lambda *a, **k: os._exit(3)
    store.update(user_id, lambda old: b"new state that must not appear", head_fingerprint=None,
                 dim=64)
