"""The store, journal and export formats moved onto edge_omd/envelope.py with their bytes
unchanged: today's writers give exactly the golden files made by the code before the move
(tests/sdk/golden/make_store_golden.py), and today's readers accept them (docs/FORMATS.md)."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_omd import store
from edge_omd.errors import StateFormatError
from edge_omd.personalizer import Personalizer
from edge_omd.store import FolderStore, SQLiteStore, StoreRecord, journal, session
from tests.sdk.fakes import FakeHead

GOLDEN = Path(__file__).parent / "golden"
META = json.loads((GOLDEN / "meta.json").read_text())


def _golden(name):
    return (GOLDEN / name).read_bytes()


def test_journal_record_bytes_unchanged():
    t, e = META["time"], META["epoch"]
    assert journal.encode(e, 4, np.arange(8, dtype=np.float64) / 8, 1.0, 0.5, when=t) == \
        _golden("journal_record_f64.bin")
    assert journal.encode(e, 5, np.arange(8, dtype=np.float32) / 8, 0.0, 1.0, when=t) == \
        _golden("journal_record_f32.bin")
    rec, end = journal.check_one(_golden("journal_record_f64.bin"), 0, dim=8, itemsize=8)
    assert end == 132 and (rec.epoch, rec.seq, rec.label, rec.weight, rec.time) == (e, 4, 1.0,
                                                                                     0.5, t)
    np.testing.assert_array_equal(rec.z, np.arange(8) / 8)


def test_store_checkpoint_bytes_unchanged():
    state = _golden("model_state.bin")
    fp = bytes.fromhex(META["fingerprint"])
    rec = StoreRecord("alice", fp, 8, 2, state, 3, META["time"], META["time"], META["epoch"], 3)
    assert store.encode_checkpoint(rec) == _golden("store_checkpoint_v2.bin")
    back = store.decode_checkpoint(_golden("store_checkpoint_v2.bin"), "golden")
    assert back == rec


def test_golden_checkpoint_opens_under_its_old_name_and_moves_to_the_keyed_one(tmp_path):
    shutil.copy(GOLDEN / "store_checkpoint_v2.bin", tmp_path / "alice.omdstate")
    fs = FolderStore(tmp_path)
    assert fs.users() == ["alice"]
    rec = fs.get("alice")
    assert rec.state == _golden("model_state.bin") and rec.updates == 3
    p = Personalizer(FakeHead(dim=8), fs, "alice")
    assert p.model.to_bytes() == _golden("model_state.bin")
    p.thumb("a prompt", "an answer", up=True)
    assert not (tmp_path / "alice.omdstate").exists()
    assert sorted(os.listdir(tmp_path)) == sorted(
        [".omdkey"] + [os.path.basename(x) for x in fs.paths("alice")]
        + [os.path.basename(fs.paths("alice").checkpoint)[:-6] + q for q in (".omdq",
                                                                           ".omdq.0")])
    assert fs.users() == ["alice"] and FolderStore(tmp_path).get("alice").updates == 4


def test_user_export_bytes_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(session.time, "time", lambda: META["time"])
    p = Personalizer(FakeHead(dim=8), SQLiteStore(tmp_path / "s.sqlite"), "alice",
                     model_options={"solver": "exact", "dtype": "float64"})
    p.import_state(_golden("user_export_v1.bin"))
    assert p.model.to_bytes() == _golden("model_state.bin") and p.updates == 3
    assert p.export_state() == _golden("user_export_v1.bin")


@pytest.mark.parametrize("name", ["store_checkpoint_v2.bin", "user_export_v1.bin"])
def test_every_single_byte_flip_of_a_golden_file_is_refused(name, tmp_path):
    blob = _golden(name)
    p = None
    if name == "user_export_v1.bin":
        p = Personalizer(FakeHead(dim=8), SQLiteStore(tmp_path / "s.sqlite"), "alice")
        before = p.store.get("alice")
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x5A
        with pytest.raises(StateFormatError):
            if p is None:
                store.decode_checkpoint(bytes(bad), "flipped")
            else:
                p.import_state(bytes(bad))
    for n in range(len(blob)):   # and every truncation
        with pytest.raises(StateFormatError):
            if p is None:
                store.decode_checkpoint(blob[:n], "cut")
            else:
                p.import_state(blob[:n])
    if p is not None:
        assert p.store.get("alice") == before
