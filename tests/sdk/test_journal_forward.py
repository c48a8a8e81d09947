"""Forward compatibility of the journal (docs/JOURNAL_FORMAT.md): a complete, checksummed record
of a newer record version or of a kind / flags this SDK does not know was written by a NEWER
edge-omd. It is not a torn tail: every store path refuses the user (StoreError: upgrade) and
changes nothing on disk, where it used to cut (FolderStore) or ignore (SQLiteStore) it and so
lose acknowledged feedback after a downgrade. Torn tails are still cut as before."""
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from edge_omd import envelope
from edge_omd.errors import StoreError
from edge_omd.personalizer import Personalizer
from edge_omd.store import FolderStore, SQLiteStore, journal
from tests.sdk.fakes import FakeHead

D = 64


def _reseal(rec: bytes, fmt: str, at: int, value: int) -> bytes:
    """`rec` with one header field rewritten and its CRC made valid again (a newer SDK's)."""
    b = bytearray(rec)
    struct.pack_into(fmt, b, at, value)
    return envelope.seal(bytes(b[:-journal.CRC.size]))


def _future(rec: bytes, what: str) -> bytes:
    if what == "version":
        return _reseal(rec, "<H", 8, journal.VERSION + 1)      # a newer record version
    if what == "kind9":
        return _reseal(rec, "<B", 10, 9)                        # an unknown kind, version 1
    if what == "flags":
        return _reseal(rec, "<I", 20, 1)                        # an unknown flag, version 1
    raise AssertionError(what)


# ------------------------------------------------------------------ codec

@pytest.mark.parametrize("what", ["version", "kind9", "flags"])
def test_parse_reports_a_newer_record_distinctly_from_damage(what):
    recs = [journal.encode(7, s, np.full(4, s, np.float64), 1.0, 1.0) for s in (1, 2, 3)]
    fut = _future(recs[2], what)
    p = journal.parse(recs[0] + recs[1] + fut, epoch=7, after=0, dim=4, itemsize=8)
    assert [r.seq for r in p.records] == [1, 2] and p.stop_at == len(recs[0]) * 2
    assert p.newer is not None and p.stop == p.newer and "newer edge-omd" in p.newer
    rec, why = journal.check_one(fut, 0, dim=4, itemsize=8)
    assert rec is None and isinstance(why, journal.Newer)
    assert (f"version {journal.VERSION + 1}" if what == "version" else "kind") in why
    # the same record torn, or with a flipped bit, is damage as before: no `newer`
    for bad in (fut[:-3], fut[:-5] + bytes([fut[-5] ^ 1]) + fut[-4:]):
        p = journal.parse(recs[0] + bad, epoch=7, after=0, dim=4, itemsize=8)
        assert p.newer is None and p.stop is not None and len(p.records) == 1


def test_a_newer_version_may_change_everything_but_the_frame():
    """Length, header and body of a newer version are unknown: magic, length, version and the
    trailing CRC are all a reader relies on, even for a record shorter than a version-1 one."""
    tiny = envelope.seal(journal.FRAME.pack(journal.MAGIC, 16, journal.VERSION + 1) + b"\1\2")
    assert len(tiny) == 16
    head = journal.encode(7, 1, np.ones(4), 1.0, 1.0)
    p = journal.parse(head + tiny, epoch=7, after=0, dim=4, itemsize=8)
    assert len(p.records) == 1 and p.newer is not None and p.stop_at == len(head)
    # version 0 was never written: a checksummed one is damage (cut), not a newer SDK's
    v0 = _reseal(head, "<H", 8, 0)
    assert journal.parse(head + v0, epoch=7, after=0, dim=4, itemsize=8).newer is None


def test_newer_version_1_records_follow_the_sequence_rules_first():
    """A version-1 record of an unknown kind is skipped when older than the checkpoint (it is in
    the state) and is an old incarnation's (cut as before) when its epoch differs."""
    recs = [journal.encode(7, s, np.ones(4), 1.0, 1.0) for s in (1, 2, 3)]
    older = _future(recs[0], "kind9") + recs[1] + recs[2]
    p = journal.parse(older, epoch=7, after=1, dim=4, itemsize=8)
    assert p.newer is None and p.stop is None and [r.seq for r in p.records] == [2, 3]
    other = recs[0] + _future(journal.encode(8, 2, np.ones(4), 1.0, 1.0), "kind9")
    p = journal.parse(other, epoch=7, after=0, dim=4, itemsize=8)
    assert p.newer is None and "incarnation" in p.stop and len(p.records) == 1


# ------------------------------------------------------------------ stores

def _store(kind, tmp_path):
    return SQLiteStore(tmp_path / "s.sqlite") if kind == "sqlite" else FolderStore(tmp_path / "f")


def _snapshot(store, kind):
    """Every byte the store keeps for the user (folder: all files; SQLite: all rows)."""
    if kind == "sqlite":
        con = store._con()
        rows = [con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("users", "checkpoints", "journal")]
        return hashlib.sha256(repr(rows).encode()).hexdigest()
    return {p.name: p.read_bytes() for p in sorted(store.folder.iterdir()) if p.is_file()
            and not p.name.endswith((".omdlk", ".omdq")) and ".omdq." not in p.name}


def _journal_bytes(store, kind, uid):
    if kind == "sqlite":
        return b"".join(r[0] for r in store._con().execute(
            "SELECT rec FROM journal ORDER BY id").fetchall())
    return Path(store.paths(uid).journal).read_bytes()


def _append_future(store, kind, uid, what, epoch, seq):
    rec = _future(journal.encode(epoch, seq, np.ones(D, np.float32), 1.0, 1.0), what)
    if kind == "sqlite":
        con = store._con()
        top = con.execute("SELECT MAX(id) FROM journal").fetchone()[0]
        con.execute("INSERT INTO journal (id, rec) VALUES (?, ?)", (top + 1, rec))
    else:
        jp = Path(store.paths(uid).journal)
        jp.write_bytes(jp.read_bytes() + rec)


@pytest.mark.parametrize("what", ["version", "kind9"])
@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_a_newer_sdks_record_is_refused_by_every_path_and_never_cut(tmp_path, kind, what):
    head = FakeHead(dim=D)
    store = _store(kind, tmp_path)
    p = Personalizer(head, store, "ann", checkpoint_every=100)
    for i in range(3):
        p.thumb("p", f"answer {i}", up=i % 2 == 0)
    live = p.model.to_bytes()
    cursor = p._session.cursor
    _append_future(store, kind, "ann", what, cursor.epoch, 4)   # what a newer SDK appended
    before = _snapshot(store, kind)
    jbefore = _journal_bytes(store, kind, "ann")

    def refused(call):
        with pytest.raises(StoreError, match="newer edge-omd.*upgrade"):
            call()
        assert _snapshot(store, kind) == before       # nothing on disk changed

    # the live personalizer (a cached cursor: the incremental path), then fresh ones
    refused(lambda: p.thumb("p", "after the downgrade", up=True))
    refused(lambda: p.model)
    refused(lambda: store.sync("ann", cursor))
    refused(lambda: store.sync("ann"))
    refused(lambda: store.get("ann"))
    refused(lambda: Personalizer(head, store, "ann").model)
    refused(lambda: Personalizer(head, store, "ann").thumb("p", "x", up=False))
    refused(lambda: Personalizer(head, store, "ann").checkpoint())
    refused(lambda: store.update("ann", lambda old: old.state, head_fingerprint=head.fingerprint,
                                 dim=D))
    elsewhere = Personalizer(head, SQLiteStore(tmp_path / "elsewhere.sqlite"), "ann")
    elsewhere.thumb("p", "on another device", up=True)
    refused(lambda: Personalizer(head, store, "ann").import_state(elsewhere.export_state()))
    with pytest.raises(StoreError, match="newer edge-omd"):
        with store.transaction("ann", head_fingerprint=head.fingerprint, dim=D) as tx:
            tx.sync(None)
    assert _snapshot(store, kind) == before
    for reopened in (_store(kind, tmp_path),):           # another process: same refusal
        with pytest.raises(StoreError, match="newer edge-omd"):
            reopened.sync("ann")
        reopened.close()
    # the valid prefix is intact and still reads as the live model (an upgraded SDK keeps it)
    jp = _journal_bytes(store, kind, "ann")
    assert jp == jbefore
    parsed = journal.parse(jp, epoch=cursor.epoch, after=0, dim=D, itemsize=4)
    assert [r.seq for r in parsed.records] == [1, 2, 3] and parsed.newer is not None
    # other users of the store are untouched by the refusal, and forget-me still erases the user
    other = Personalizer(head, store, "bob")
    other.thumb("p", "hello", up=True)
    assert Personalizer(head, store, "bob").updates == 1
    assert store.delete("ann") is True and store.get("ann") is None
    # a torn tail after the same valid records is still cut (and the feedback goes on)
    (tmp_path / "torn").mkdir()
    store2 = _store(kind, tmp_path / "torn")
    q = Personalizer(head, store2, "ann", checkpoint_every=100)
    for i in range(3):
        q.thumb("p", f"answer {i}", up=i % 2 == 0)
    assert q.model.to_bytes() == live
    full = journal.encode(q._session.cursor.epoch, 4, np.ones(D, np.float32), 1.0, 1.0)
    if kind == "folder":
        jp2 = Path(store2.paths("ann").journal)
        jp2.write_bytes(jp2.read_bytes() + full[:len(full) // 2])
    else:
        store2._con().execute("INSERT INTO journal (id, rec) VALUES ((SELECT MAX(id) FROM "
                              "journal) + 1, ?)", (full[:len(full) // 2],))
    r = Personalizer(FakeHead(dim=D), _store(kind, tmp_path / "torn"), "ann")
    assert r.updates == 3 and r.model.to_bytes() == live
    r.thumb("p", "after the crash", up=False)
    assert Personalizer(FakeHead(dim=D), _store(kind, tmp_path / "torn"), "ann").updates == 4
    assert len(_journal_bytes(store2, kind, "ann")) == 4 * journal.record_size(D, 4)


def test_a_newer_record_already_in_the_checkpoint_is_skipped(tmp_path):
    """FolderStore: a crash between a newer SDK's checkpoint and its journal cut leaves its
    version-1 records with seq <= the checkpoint's counter: they are in the state, so the user
    opens (and the next write cuts them, as any record older than the checkpoint). (SQLite
    deletes the rows up to a checkpoint in the checkpoint's own transaction.)"""
    head = FakeHead(dim=D)
    store = FolderStore(tmp_path)
    p = Personalizer(head, store, "cy", checkpoint_every=100)
    for i in range(3):
        p.thumb("p", f"answer {i}", up=True)
    jp = Path(store.paths("cy").journal)
    old = jp.read_bytes()
    assert p.checkpoint() and jp.read_bytes() == b""
    n = journal.record_size(D, 4)
    jp.write_bytes(old[:2 * n] + _future(old[2 * n:], "kind9"))   # seq 3 <= the checkpoint's 3
    q = Personalizer(head, FolderStore(tmp_path), "cy")
    assert q.updates == 3 and q.model.to_bytes() == p.model.to_bytes()
    q.thumb("p", "next", up=False)
    assert Personalizer(head, FolderStore(tmp_path), "cy").updates == 4
    # kept until the next checkpoint, as any record older than it; the new one follows them
    assert len(jp.read_bytes()) == 4 * n
