"""The operator's commands (edge_omd/apps/admin.py) on both stores: users, show, check (a
damaged user included), export-user / import-user, delete, rank; --json on each; STORE told
apart by what is there."""
import json
import re

import numpy as np
import pytest

from edge_omd.apps import cli
from edge_omd.head import runner
from edge_omd.personalizer import Personalizer
from edge_omd.reward_model import RewardModel
from edge_omd.store import FolderStore, SQLiteStore
from tests.sdk.fakes import FakeHead

HEAD = FakeHead(dim=16)
P, ANSWERS = "how do I boil an egg", ["boil it nine minutes", "fry it", "ask someone"]


def _make(kind, path):
    return SQLiteStore(path / "s.sqlite") if kind == "sqlite" else FolderStore(path / "users")


@pytest.fixture(params=["sqlite", "folder"])
def store(request, tmp_path):
    """A store with alice (3 updates, one checkpoint) and bob (1 update, journal only)."""
    s = _make(request.param, tmp_path)
    alice = Personalizer(HEAD, s, "alice")
    alice.prefer(P, ANSWERS[0], ANSWERS[1])
    alice.checkpoint()
    alice.thumb(P, ANSWERS[0], True)
    alice.prefer(P, ANSWERS[0], ANSWERS[2])
    Personalizer(HEAD, s, "bob").thumb("a question", "an answer", False)
    s.close()
    s.arg = str(s.path if request.param == "sqlite" else s.folder)
    return s


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_users(store, capsys):
    assert run(capsys, "users", store.arg) == (0, "alice\nbob\n", "")
    rc, out, _ = run(capsys, "users", store.arg, "--json")
    assert rc == 0 and json.loads(out)["users"] == ["alice", "bob"]


def test_show(store, capsys):
    rc, out, _ = run(capsys, "show", store.arg, "alice", "--json")
    info = json.loads(out)
    rec = store.get("alice")
    model = RewardModel.from_bytes(rec.state)
    assert rc == 0 and info["updates"] == 3 and info["journal_records"] == 2
    assert (info["solver"], info["dtype"], info["dim"]) == (model.solver, model.dtype, 16)
    assert info["state_bytes"] == len(rec.state)
    assert info["head_fingerprint"] == HEAD.fingerprint.hex() and info["pack_fingerprint"] == "none"
    assert info["last_commit"] >= info["created"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", info["last_commit"])
    rc, out, _ = run(capsys, "show", store.arg, "bob")
    assert rc == 0 and re.search(r"^updates +1$", out, re.M) and "pack_fingerprint none" in \
        " ".join(out.split())
    rc, _, err = run(capsys, "show", store.arg, "carol")
    assert rc == 1 and "no user 'carol'" in err


def test_check_passes_a_sound_store_and_names_a_damaged_user(store, capsys, monkeypatch):
    assert run(capsys, "check", store.arg)[:2] == (0, "alice: ok\nbob: ok\n2 users: 2 ok, "
                                                      "0 damaged\n")
    # an unreadable state (written through the store's own primitive)
    store.update("carol", lambda old: b"not a reward model", head_fingerprint=HEAD.fingerprint,
                 dim=16)
    # a state whose own head binding is not the one its record claims
    other = FakeHead(dim=16, salt=b"another head")
    m = RewardModel(16)
    m.bind_head(other.fingerprint)
    store.update("dave", lambda old: m.to_bytes(), head_fingerprint=HEAD.fingerprint, dim=16)
    rc, out, err = run(capsys, "check", store.arg)
    assert rc == 1 and err == ""
    lines = out.splitlines()
    assert lines[:2] == ["alice: ok", "bob: ok"]
    assert lines[2].startswith("carol: StateFormatError: ")
    assert lines[3].startswith("dave: HeadMismatchError: ")
    assert lines[-1].startswith("4 users: 2 ok, 2 damaged")
    rc, out, _ = run(capsys, "check", store.arg, "--json")
    doc = json.loads(out)
    assert rc == 1 and not doc["ok"] and [u["ok"] for u in doc["users"]] == [True, True, False,
                                                                          False]
    # --head: every user must be bound to that head
    monkeypatch.setattr(runner.FeatureHead, "open", staticmethod(lambda folder: other))
    store.delete("carol")
    store.delete("dave")
    rc, out, _ = run(capsys, "check", store.arg, "--head", "h")
    assert rc == 1 and "alice: HeadMismatchError" in out and "2 users: 0 ok, 2 damaged" in out


def test_check_finds_a_flipped_byte_in_a_checkpoint_file(tmp_path, capsys):
    s = FolderStore(tmp_path / "users")
    p = Personalizer(HEAD, s, "alice")
    p.prefer(P, ANSWERS[0], ANSWERS[1])
    p.checkpoint()
    (ck,) = (tmp_path / "users").glob("*.omdck")
    data = bytearray(ck.read_bytes())
    data[len(data) // 2] ^= 0x40
    ck.write_bytes(bytes(data))
    rc, out, _ = run(capsys, "check", tmp_path / "users")
    assert rc == 1 and "alice: StateFormatError" in out and "(checksum mismatch)" in out


def test_export_then_import_into_the_other_store(store, tmp_path, capsys):
    blob = tmp_path / "alice.omduser"
    rc, out, _ = run(capsys, "export-user", store.arg, "alice", blob)
    assert rc == 0 and blob.exists() and "alice" in out
    assert run(capsys, "export-user", store.arg, "alice", blob)[0] == 1   # no overwrite
    (tmp_path / "o").mkdir()
    other = _make("folder" if isinstance(store, SQLiteStore) else "sqlite", tmp_path / "o")
    other.close()
    arg = str(getattr(other, "path", None) or other.folder)
    rc, out, _ = run(capsys, "import-user", arg, "alice2", blob, "--json")
    assert rc == 0 and json.loads(out) == {"user": "alice2", "file": str(blob), "updates": 3,
                                           "replaced": False}
    moved = Personalizer(HEAD, other, "alice2")
    assert moved.model.to_bytes() == Personalizer(HEAD, store, "alice").model.to_bytes()
    np.testing.assert_array_equal(moved.score(P, ANSWERS),
                                  Personalizer(HEAD, store, "alice").score(P, ANSWERS))
    # an existing user is replaced only when asked
    rc, _, err = run(capsys, "import-user", store.arg, "bob", blob)
    assert rc == 1 and "--replace" in err and store.get("bob").updates == 1
    assert run(capsys, "import-user", store.arg, "bob", blob, "--replace")[0] == 0
    assert store.get("bob").updates == 3
    # a damaged file changes nothing
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    before = store.version("bob")
    rc, _, err = run(capsys, "import-user", store.arg, "bob", blob, "--replace")
    assert rc == 1 and "StateFormatError" in err and store.version("bob") == before


def test_delete(store, capsys):
    assert run(capsys, "delete", store.arg, "bob", "--json")[:2] == (
        0, '{"deleted": true, "user": "bob"}\n')
    assert store.get("bob") is None and run(capsys, "users", store.arg)[1] == "alice\n"
    rc, _, err = run(capsys, "delete", store.arg, "bob")
    assert rc == 1 and err.startswith("edge-omd delete: StoreError: no user 'bob'")


def test_rank(store, capsys, monkeypatch):
    monkeypatch.setattr(runner.FeatureHead, "open", staticmethod(lambda folder: HEAD))
    rc, out, _ = run(capsys, "rank", store.arg, "alice", "--head", "h", P, *ANSWERS)
    want = Personalizer(HEAD, store, "alice").rank(P, ANSWERS)
    assert rc == 0 and [line.split("  ", 1)[1] for line in out.splitlines()] == \
        [r.response for r in want]
    for line in out.splitlines():       # each line's arithmetic holds
        s, r, k, w = map(float, re.match(r"\d+\. score (\S+) = reward (\S+) - (\S+) x width "
                                         r"(\S+)", line).groups())
        assert abs(s - (r - k * w)) < 2e-4
    rc, out, _ = run(capsys, "rank", store.arg, "alice", "--head", "h", "--pessimism", "1",
                     P, *ANSWERS, "--json")
    doc = json.loads(out)
    want = Personalizer(HEAD, store, "alice").rank(P, ANSWERS, pessimism=1.0)
    assert [(x["index"], x["score"]) for x in doc["ranking"]] == [(r.index, r.score) for r in want]
    rc, _, err = run(capsys, "rank", store.arg, "zoe", "--head", "h", P, *ANSWERS)
    assert rc == 1 and "no user 'zoe'" in err
    rc, _, err = run(capsys, "rank", store.arg, "alice", "--head", "h", P, "", "b")
    assert rc == 1 and "InvalidInputError" in err


def test_store_paths_are_told_apart_and_nothing_is_created(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = run(capsys, "users", empty)
    assert rc == 1 and "not a FolderStore folder" in err and list(empty.iterdir()) == []
    (tmp_path / "notes.txt").write_text("hello")
    rc, _, err = run(capsys, "users", tmp_path / "notes.txt")
    assert rc == 1 and "neither an SQLite database nor a FolderStore folder" in err
    import os
    os.mkfifo(tmp_path / "pipe")          # read, it would block
    rc, _, err = run(capsys, "users", tmp_path / "pipe")
    assert rc == 1 and "neither an SQLite database nor a FolderStore folder" in err
    FolderStore(tmp_path / "fresh").close()              # a store without users yet
    assert run(capsys, "users", tmp_path / "fresh", "--json")[:2] == (
        0, json.dumps({"kind": "folder", "store": str(tmp_path / "fresh"), "users": []},
                      sort_keys=True) + "\n")


def test_export_of_an_unbound_user_and_import_of_a_fifo_are_refused(tmp_path, capsys):
    import os
    s = SQLiteStore(tmp_path / "s.sqlite")
    s.update("old", lambda rec: RewardModel(16).to_bytes(), head_fingerprint=None, dim=16)
    rc, _, err = run(capsys, "export-user", tmp_path / "s.sqlite", "old", tmp_path / "x")
    assert rc == 1 and "bound to no feature head" in err and not (tmp_path / "x").exists()
    os.mkfifo(tmp_path / "fifo")
    rc, _, err = run(capsys, "import-user", tmp_path / "s.sqlite", "new", tmp_path / "fifo")
    assert rc == 1 and "not a regular file" in err and s.get("new") is None
