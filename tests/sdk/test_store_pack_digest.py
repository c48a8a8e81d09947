"""The store record keeps the population pack a user's incarnation started from (issue 19,
item 4): set by `tx.create(pack_digest=)`, kept by appends and checkpoints, absent (None) in
records written before it existed; SQLite schema 2 databases gain the column on open."""
import sqlite3

import numpy as np
import pytest

from edge_omd import FolderStore, RewardModel, SQLiteStore
from edge_omd.errors import StateFormatError, StoreError
from edge_omd.store import journal as _journal

D = 8
DIGEST = bytes(range(32))

# the users table of store schema 2 (edge-omd before the pack digest), verbatim
_V2_SCHEMA = [
    """CREATE TABLE users (
    user_id            TEXT PRIMARY KEY,
    slot               INTEGER NOT NULL UNIQUE,
    epoch              INTEGER NOT NULL,
    head_fingerprint   BLOB,
    dim                INTEGER NOT NULL,
    format_version     INTEGER NOT NULL,
    checkpoint_updates INTEGER NOT NULL,
    created_at         REAL NOT NULL,
    checkpointed_at    REAL NOT NULL)""",
    "CREATE TABLE checkpoints (slot INTEGER PRIMARY KEY, state BLOB NOT NULL)",
    "CREATE TABLE journal (id INTEGER PRIMARY KEY, rec BLOB NOT NULL)",
]


def _state():
    m = RewardModel(D, dtype="float64")
    m.learn_pair(np.eye(D)[0], np.eye(D)[1])
    return m.to_bytes()


def _write(store, uid, digest, n_records=3, checkpoint=True):
    """Create the user with `digest`, append records, checkpoint: the digest must survive."""
    state = _state()
    with store.transaction(uid, head_fingerprint=None, dim=D, checkpoint=True) as tx:
        tx.sync(None)
        tx.create(state, updates=0, pack_digest=digest)
    z = np.full(D, 0.5)
    with store.transaction(uid, head_fingerprint=None, dim=D) as tx:
        s = tx.sync(None)
        tx.append([_journal.encode(s.head.epoch, i + 1, z, 1.0, 1.0) for i in range(n_records)])
    if checkpoint:
        with store.transaction(uid, head_fingerprint=None, dim=D, checkpoint=True) as tx:
            s = tx.sync(None)
            tx.checkpoint(state, updates=s.head.updates)


@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_the_digest_survives_appends_checkpoints_and_reopening(tmp_path, kind):
    def open_():
        return SQLiteStore(tmp_path / "s.sqlite") if kind == "sqlite" else FolderStore(tmp_path / "f")
    store = open_()
    _write(store, "ann", DIGEST)
    _write(store, "bob", None)
    rec = store.get("ann")
    assert rec.pack_digest == DIGEST and rec.updates == 3
    assert store.sync("ann").head.pack_digest == DIGEST
    assert store.get("bob").pack_digest is None
    store.close()
    store = open_()
    assert store.get("ann").pack_digest == DIGEST and store.get("bob").pack_digest is None
    # a new incarnation (import, reset, migration) records its own pack
    with store.transaction("ann", head_fingerprint=None, dim=D, checkpoint=True) as tx:
        tx.sync(None)
        tx.create(_state(), updates=5, pack_digest=bytes(32))
    assert store.get("ann").pack_digest == bytes(32)
    with pytest.raises(StoreError, match="32 bytes"), \
            store.transaction("ann", head_fingerprint=None, dim=D, checkpoint=True) as tx:
        tx.sync(None)
        tx.create(_state(), updates=5, pack_digest=b"short")
    assert store.get("ann").pack_digest == bytes(32)     # nothing was written


def test_a_schema_2_database_gains_the_column_and_keeps_every_user(tmp_path):
    path = tmp_path / "v2.sqlite"
    state = _state()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    for sql in _V2_SCHEMA:
        con.execute(sql)
    con.execute("PRAGMA user_version = 2")
    con.execute("INSERT INTO users VALUES ('ann', 1, 7, NULL, ?, 2, 0, 1e9, 1e9)", (D,))
    con.execute("INSERT INTO checkpoints VALUES (1, ?)", (state,))
    con.execute("INSERT INTO journal VALUES (?, ?)",
                ((1 << 40) + 1, _journal.encode(7, 1, np.full(D, 0.5), 1.0, 1.0)))
    con.commit()
    con.close()
    store = SQLiteStore(path)
    assert store._con().execute("PRAGMA user_version").fetchone()[0] == 3
    rec = store.get("ann")
    assert rec.state == state and rec.updates == 1 and rec.epoch == 7 and rec.pack_digest is None
    _write(store, "bob", DIGEST)
    store.close()
    store = SQLiteStore(path)          # opened again: schema 3 as it is
    assert store.get("bob").pack_digest == DIGEST and store.get("ann").updates == 1


def test_a_tampered_digest_column_is_refused(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    _write(store, "ann", DIGEST)
    store._con().execute("UPDATE users SET pack_digest = ? WHERE user_id = 'ann'", (b"x" * 5,))
    with pytest.raises(StateFormatError, match="pack_digest"):
        store.get("ann")


def test_folder_checkpoints_written_before_the_digest_read_as_no_pack(tmp_path):
    from edge_omd import envelope
    from edge_omd.store.folder import _MAGIC, decode_checkpoint, encode_checkpoint
    store = FolderStore(tmp_path / "f")
    _write(store, "ann", DIGEST, checkpoint=False)
    rec = store.get("ann")
    blob = encode_checkpoint(rec)
    _magic, h, body = envelope.unpack_json(blob, (_MAGIC,), "x")
    assert h["pack_digest"] == DIGEST.hex()
    del h["pack_digest"]                                # as an older edge-omd wrote it
    old = envelope.pack_json(_MAGIC, h, bytes(body))
    assert decode_checkpoint(old, "old").pack_digest is None
    h["pack_digest"] = "zz"
    with pytest.raises(StateFormatError, match="pack_digest"):
        decode_checkpoint(envelope.pack_json(_MAGIC, h, bytes(body)), "bad")
