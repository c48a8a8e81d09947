"""Writes the golden bytes of the store/journal/export formats (run once, committed).

    .venv/bin/python tests/sdk/golden/make_store_golden.py

Made with the code BEFORE the formats moved onto edge_omd/envelope.py; tests/sdk/test_formats.py
checks that today's writers give exactly these bytes and today's readers accept them.
Everything time- or randomness-dependent is pinned (time.time, the epoch)."""
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))

from edge_omd import store  # noqa: E402
from edge_omd.store import folder_tx, journal  # noqa: E402
from edge_omd.personalizer import Personalizer  # noqa: E402
from edge_omd.reward_model import RewardModel  # noqa: E402
from tests.sdk.fakes import FakeHead  # noqa: E402

T0 = 1_750_000_000.25
EPOCH = 0x1234_5678_9ABC_DEF


def model_state():
    m = RewardModel(8, solver="exact", dtype="float64")
    m.bind_head(FakeHead(dim=8).fingerprint)
    rng = np.random.default_rng(7)
    for _ in range(3):
        m.learn_pair(rng.standard_normal(8), rng.standard_normal(8))
    return m


def main(out=HERE):
    """Writes the golden files into `out` (pass another folder to compare: `main(path)`)."""
    m = model_state()
    state = m.to_bytes()
    rec = journal.encode(EPOCH, 4, np.arange(8, dtype=np.float64) / 8, 1.0, 0.5, when=T0)
    rec32 = journal.encode(EPOCH, 5, np.arange(8, dtype=np.float32) / 8, 0.0, 1.0, when=T0)
    time.time = lambda: T0   # every writer reads the clock through the time module
    folder_tx._new_epoch = lambda: EPOCH   # the epoch of the folder checkpoint below
    with tempfile.TemporaryDirectory() as tmp:
        fs = store.FolderStore(tmp)
        with fs.transaction("alice", head_fingerprint=FakeHead(dim=8).fingerprint, dim=8) as tx:
            tx.sync(None)
            tx.create(state, updates=3)
        paths = fs.paths("alice") if hasattr(fs, "paths") else None   # keyed names since
        name = paths.checkpoint if paths else os.path.join(tmp, "alice.omdstate")
        ckpt = open(name, "rb").read()

    with tempfile.TemporaryDirectory() as tmp:
        p = Personalizer(FakeHead(dim=8), store.SQLiteStore(os.path.join(tmp, "s.sqlite")), "alice",
                         model_options={"solver": "exact", "dtype": "float64"})
        p.import_state(_export_of(m))   # the pinned model, as a user
        blob = p.export_state()
        p.store.close()
    files = {"journal_record_f64.bin": rec, "journal_record_f32.bin": rec32,
             "store_checkpoint_v2.bin": ckpt, "user_export_v1.bin": blob,
             "model_state.bin": state}
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    meta = {"time": T0, "epoch": EPOCH, "user_id": "alice", "dim": 8, "updates": 3,
            "fingerprint": FakeHead(dim=8).fingerprint.hex()}
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


def _export_of(m):
    import struct
    import zlib
    h = json.dumps({"record_format": 2, "dim": 8, "head_fingerprint": FakeHead(dim=8).fingerprint.hex(),
                    "updates": 3, "exported_at": T0}).encode()
    body = b"EOMDUSR1" + struct.pack("<I", len(h)) + h + m.to_bytes()
    return body + struct.pack("<I", zlib.crc32(body))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else HERE)
