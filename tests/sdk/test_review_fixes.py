"""Regressions of reviewed bugs: committed writes never reported as failed, typed errors for bad
scalar arguments, robust header parsing, and "forget me" erasing crashed temporary files."""
import json
import os
import sqlite3
import struct
import zlib

import numpy as np
import pytest
from pathlib import Path

import edge_omd.store as store_mod
from edge_omd.errors import (ConfigError, EdgeOMDError, InvalidInputError, StateFormatError,
                             StoreError)
from edge_omd.personalizer import Personalizer
from edge_omd.store import FolderStore, SQLiteStore
from edge_omd.strategies import choose_pair, paper_beta

PROMPT = "how do I reverse a list in python"
CODE = "use slicing code xs reverse python snippet"
PROSE = "lists are ordered collections and there are many ways to think about order"
FP = bytes(range(32))


# ------------------------------------------------------------------ committed means committed

def test_folder_dir_fsync_failure_after_rename_is_not_reported_as_a_failed_update(
        tmp_path, head):
    class FailingDirSync(store_mod.FileIO):
        armed = False

        def fsync_dir(self, path):
            if self.armed:
                raise OSError(5, "Input/output error")
            super().fsync_dir(path)

    io = FailingDirSync()
    store = FolderStore(tmp_path, io=io)
    p = Personalizer(head, store, "alice", checkpoint_every=2)
    p.thumb(PROMPT, CODE, up=True)
    io.armed = True
    p.thumb(PROMPT, PROSE, up=False)   # committed, then the checkpoint's folder fsync fails:
    assert p.updates == 2 and p.pending == 0 and p.model.t == 2      # not reported as failed
    assert os.path.getsize(store.paths("alice").journal) > 0          # the journal is kept
    q = Personalizer(head, FolderStore(tmp_path), "alice")
    assert q.updates == 2 and q.model.to_bytes() == p.model.to_bytes()
    io.armed = False
    p.thumb(PROMPT, CODE, up=False)
    assert Personalizer(head, FolderStore(tmp_path), "alice").updates == 3
    assert store.delete("alice") is True and store.get("alice") is None
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_folder_failure_before_rename_still_reports_and_keeps_the_old_state(tmp_path,
                                                                             monkeypatch):
    store = FolderStore(tmp_path)
    before = store.update("bob", lambda old: b"old", head_fingerprint=FP, dim=8)

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StoreError, match="previous state is intact"):
        store.update("bob", lambda old: b"new", head_fingerprint=FP, dim=8)
    monkeypatch.undo()
    assert store.get("bob") == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


class _FlakyConnection:
    """Wraps a sqlite3 connection; statements containing `fail_on` raise `exc`."""

    def __init__(self, con, fail_on, exc):
        self._con, self._fail_on, self._exc = con, fail_on, exc

    def execute(self, sql, *args):
        if self._fail_on in sql:
            raise self._exc
        return self._con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_sqlite_delete_is_not_reported_failed_when_the_checkpoint_after_commit_fails(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    store.update("carol", lambda old: b"x", head_fingerprint=FP, dim=8)
    real = store._con()
    store._local.con = _FlakyConnection(real, "wal_checkpoint",
                                        sqlite3.OperationalError("disk I/O error"))
    try:
        assert store.delete("carol") is True
    finally:
        store._local.con = real
    assert store.get("carol") is None and store.users() == []
    store.close()


def test_sqlite_check_head_wraps_database_errors(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    real = store._con()
    store._local.con = _FlakyConnection(real, "FROM users",
                                        sqlite3.DatabaseError("database disk image is malformed"))
    try:
        with pytest.raises(StoreError):
            store.check_head(FP, 8)
    finally:
        store._local.con = real
    store.close()


# ------------------------------------------------------------------ typed errors for scalars

BAD_VERB_CALLS = {
    "feedback weight=None": lambda p: p.thumb(PROMPT, CODE, True, weight=None),
    "feedback weight='abc'": lambda p: p.thumb(PROMPT, CODE, True, weight="abc"),
    "feedback weight=True": lambda p: p.thumb(PROMPT, CODE, True, weight=True),
    "prefer weight=[1]": lambda p: p.prefer(PROMPT, CODE, PROSE, weight=[1.0]),
    "prefer weight=np.True_": lambda p: p.prefer(PROMPT, CODE, PROSE, weight=np.True_),
    "rank pessimism='1'": lambda p: p.rank(PROMPT, [CODE, PROSE], pessimism="1"),
    "rank pessimism=[]": lambda p: p.rank(PROMPT, [CODE, PROSE], pessimism=[]),
    "rank pessimism=inf": lambda p: p.rank(PROMPT, [CODE, PROSE], pessimism=float("inf")),
    "pair_to_show q='4'": lambda p: p.pair_to_show(PROMPT, [CODE, PROSE, "x"],
                                                 strategy="best_quantile", q="4"),
    "pair_to_show q=None": lambda p: p.pair_to_show(PROMPT, [CODE, PROSE, "x"],
                                                  strategy="best_quantile", q=None),
    "pair_to_show strategy=[]": lambda p: p.pair_to_show(PROMPT, [CODE, PROSE], strategy=[]),
    "queries_to_ask pool=None": lambda p: p.queries_to_ask(None, 2),
    "queries_to_ask pool=str": lambda p: p.queries_to_ask("abc", 2),
    "select_queries k=True": lambda p: p.queries_to_ask([(PROMPT, [CODE, PROSE])], True),
}


@pytest.mark.parametrize("name", sorted(BAD_VERB_CALLS))
def test_bad_scalar_arguments_raise_typed_errors_and_change_nothing(name, head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u")
    p.thumb(PROMPT, CODE, up=True)
    before = sqlite_store.get("u")
    with pytest.raises(InvalidInputError):  # call-time arguments: never ConfigError
        BAD_VERB_CALLS[name](p)
    assert sqlite_store.get("u") == before and p.updates == 1 and p.pending == 0
    assert p.model.t == 1


def test_bool_weight_is_refused_in_batch_mode_too(head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u")
    with p.batch():
        with pytest.raises(InvalidInputError):
            p.thumb(PROMPT, CODE, True, weight=True)
        p.thumb(PROMPT, CODE, True, weight=2)        # an int weight is fine
        assert p.pending == 1
    assert p.updates == 1 and p.model.t == 1


@pytest.mark.parametrize("kwargs", [
    {"beta": None}, {"beta": "1.0"}, {"beta": True}, {"beta": [1.0]}, {"beta": float("nan")},
    {"beta": "paper", "delta": "x"}, {"beta": "paper", "delta": None}, {"delta": "x"},
    {"model_options": [1]}, {"model_options": "eta"}, {"model_options": {"bogus": 1}},
    {"model_options": {"dim": 3}}, {"model_options": {1: 2}}, {"seed": "abc"},
])
def test_bad_constructor_arguments_raise_config_error(kwargs, head, sqlite_store):
    with pytest.raises(ConfigError):
        Personalizer(head, sqlite_store, "bob", **kwargs)
    assert sqlite_store.users() == []


def test_good_scalar_arguments_still_work(head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u", beta=np.float32(0.5), delta=np.float64(0.1),
                     model_options={"eta": 1}, seed=np.int64(3))
    p.thumb(PROMPT, CODE, True, weight=np.float32(0.5))
    p.prefer(PROMPT, CODE, PROSE, weight=3)
    assert p.updates == 2 and p.beta == 0.5
    assert len(p.rank(PROMPT, [CODE, PROSE], pessimism=np.int64(2))) == 2
    assert p.pair_to_show(PROMPT, [CODE, PROSE, "x"], strategy="best_quantile", q=2) [0] in (0, 1, 2)
    assert len(p.queries_to_ask(iter([(PROMPT, [CODE, PROSE])]), np.int64(1))) == 1
    assert Personalizer(head, sqlite_store, "v", beta="paper", delta=0.1).beta > 0


def test_strategies_refuse_non_numeric_scalars():
    r = np.array([0.1, 0.9, 0.5])
    for q in ("4", None, [4]):
        with pytest.raises(InvalidInputError):
            choose_pair(r, None, strategy="best_quantile", q=q)
    with pytest.raises(InvalidInputError):
        choose_pair(r, lambda a: np.zeros(3), strategy="ucb", beta="1")
    for delta in ("x", None):
        with pytest.raises(InvalidInputError):
            paper_beta(8, 0, delta=delta)
    assert choose_pair(r, None, strategy="best_quantile", q=4) == (1, 2)


# ------------------------------------------------------------------ header parsing

def _forge(magic, header: bytes, state: bytes) -> bytes:
    body = magic + struct.pack("<I", len(header)) + header + state
    return body + struct.pack("<I", zlib.crc32(body))


def _split(blob):
    hlen = struct.unpack("<I", blob[8:12])[0]
    return json.loads(blob[12:12 + hlen]), blob[12 + hlen:-4]


BAD_HEADERS = {
    "dim=1e999": lambda h: json.dumps(dict(h, dim=1e999)).encode(),
    "dim=float": lambda h: json.dumps(dict(h, dim=float(h["dim"]))).encode(),
    "dim=true": lambda h: json.dumps(dict(h, dim=True)).encode(),
    "nested": lambda h: b"[" * 100000 + b"]" * 100000,
    "nested-object": lambda h: b'{"a":' * 50000 + b"1" + b"}" * 50000,
    "list": lambda h: b"[1, 2]",
    "fingerprint=int": lambda h: json.dumps(dict(h, head_fingerprint=7)).encode(),
}


@pytest.mark.parametrize("name", sorted(BAD_HEADERS))
def test_import_state_refuses_malformed_headers_with_state_format_error(name, head,
                                                                         sqlite_store):
    p = Personalizer(head, sqlite_store, "u")
    p.thumb(PROMPT, CODE, up=True)
    h, state = _split(p.export_state())
    before = sqlite_store.get("u")
    with pytest.raises(StateFormatError):
        p.import_state(_forge(b"EOMDUSR1", BAD_HEADERS[name](h), state))
    assert sqlite_store.get("u") == before


@pytest.mark.parametrize("name", sorted(BAD_HEADERS) + ["updates=1e999", "created_at=str"])
def test_folder_store_refuses_malformed_headers_with_state_format_error(name, tmp_path, head):
    store = FolderStore(tmp_path)
    Personalizer(head, store, "bob").thumb(PROMPT, CODE, up=True)
    path = Path(store.paths("bob").checkpoint)
    h, state = _split(path.read_bytes())
    if name == "updates=1e999":
        header = json.dumps(dict(h, updates=1e999)).encode()
    elif name == "created_at=str":
        header = json.dumps(dict(h, created_at="yesterday")).encode()
    else:
        header = BAD_HEADERS[name](h)
    path.write_bytes(_forge(b"EOMDREC1", header, state))
    with pytest.raises(StateFormatError):
        store.get("bob")
    with pytest.raises(EdgeOMDError):
        Personalizer(head, store, "bob")


# ------------------------------------------------------------------ forget me

def test_folder_delete_erases_the_users_crashed_temporary_files(tmp_path, head):
    store = FolderStore(tmp_path)
    p = Personalizer(head, store, "alice")
    p.thumb(PROMPT, CODE, up=True)
    Personalizer(head, store, "alice.smith").thumb(PROMPT, CODE, up=True)
    full_state = Path(store.paths("alice").checkpoint).read_bytes()
    stale = [tmp_path / ".alice.k2j_x9ab.tmp", tmp_path / ".alice.00000000.tmp"]
    other = tmp_path / ".alice.smith.q1w2e3r4.tmp"    # another user's: must stay
    for f in stale + [other]:
        f.write_bytes(full_state)
    p.reset()
    left = sorted(os.listdir(tmp_path))
    assert not any(f.name in left for f in stale)
    assert other.name in left and os.path.basename(store.paths("alice.smith").checkpoint) in left
    assert os.path.basename(store.paths("alice").checkpoint) not in left
    # a user with no record: delete still erases its stale temporary files, returns False
    stale2 = tmp_path / ".zed.abcdefgh.tmp"
    stale2.write_bytes(full_state)
    assert store.delete("zed") is False and not stale2.exists()


def test_an_explicit_checkpoint_that_fails_is_reported_and_loses_nothing(tmp_path, head):
    class NoRename(store_mod.FileIO):
        def replace(self, src, dst):
            raise OSError(28, "No space left on device")

    store = FolderStore(tmp_path)
    p = Personalizer(head, store, "u", checkpoint_every=100)
    p.thumb(PROMPT, CODE, up=True)
    p.thumb(PROMPT, PROSE, up=False)
    live = p.model.to_bytes()
    store.io = NoRename()
    with pytest.raises(StoreError, match="previous state is intact"):
        p.checkpoint()
    store.io = store_mod.FileIO()
    q = Personalizer(head, FolderStore(tmp_path), "u")
    assert q.updates == 2 and q.model.to_bytes() == live
    assert p.checkpoint() is True and store.get("u").journal == ()
