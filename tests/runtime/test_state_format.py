"""Persistence: round trips for every representation, corrupt input refused, atomic save."""
import os

import numpy as np
import pytest

from edge_omd import RewardModel, StateFormatError, InvalidInputError
from edge_omd import state_format
from tests.runtime.streams import feed, mixed_stream

CONFIGS = [
    dict(solver="exact"), dict(solver="exact", dtype="float64", radius=2.0),
    dict(solver="cg", lam_warmup=10, forget=0.99), dict(solver="sketch", sketch_rank=3),
    dict(solver="sketch", sketch_rank=2, dtype="float64", budget_bytes=10_000),
    dict(solver="diagonal", head_fingerprint=bytes(range(32))),
]


def _trained(cfg, T=50, d=9):
    m = RewardModel(d, **cfg)
    for kind, args, w in mixed_stream(d, T, seed=1):
        feed(m, kind, args, w)
    return m


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values())[:40])
def test_round_trip_bytes_and_file(cfg, tmp_path):
    m = _trained(cfg)
    b = m.to_bytes()
    m2 = RewardModel.from_bytes(b)
    assert m2.to_bytes() == b
    assert (m2.solver, m2.sketch_rank, m2.t, m2.dtype, m2.nbytes, m2.head_fingerprint) == \
           (m.solver, m.sketch_rank, m.t, m.dtype, m.nbytes, m.head_fingerprint)
    assert m2.hyperparameters == m.hyperparameters
    path = tmp_path / "user.eomd"
    m.save(path)
    m3 = RewardModel.load(path)
    assert m3.to_bytes() == b
    # the restored model continues exactly like the original
    for kind, args, w in mixed_stream(9, 40, seed=2):
        feed(m, kind, args, w)
        feed(m3, kind, args, w)
    assert m3.to_bytes() == m.to_bytes()
    assert sorted(os.listdir(tmp_path)) == ["user.eomd"]  # no temp files left


def test_header_layout_is_what_the_doc_says():
    m = _trained(dict(solver="sketch", sketch_rank=2, dtype="float64", radius=3.0), d=5)
    b = m.to_bytes()
    assert b[:8] == b"EDGEOMD\x00"
    assert int.from_bytes(b[8:10], "little") == 1
    assert b[10] == 3 and b[11] == 8
    assert int.from_bytes(b[12:16], "little") == 5
    assert int.from_bytes(b[16:20], "little") == 2
    assert int.from_bytes(b[32:40], "little") == m.t
    assert np.frombuffer(b[72:80], "<f8")[0] == 3.0
    payload = int.from_bytes(b[128:136], "little")
    assert len(b) == 136 + payload + 4
    assert np.allclose(np.frombuffer(b[136:136 + 40], "<f8"), m.theta)


def _corruptions(b):
    yield "flipped payload byte", b[:200] + bytes([b[200] ^ 1]) + b[201:]
    yield "flipped crc", b[:-1] + bytes([b[-1] ^ 0xFF])
    yield "truncated", b[:-10]
    yield "header only", b[:100]
    yield "bad magic", b"XDGEOMD\x00" + b[8:]
    yield "future version", b[:8] + (2).to_bytes(2, "little") + b[10:]
    yield "unknown solver", b[:10] + bytes([9]) + b[11:]
    yield "huge dim", b[:12] + (1 << 30).to_bytes(4, "little") + b[16:]
    yield "wrong payload length", b[:128] + (10 ** 12).to_bytes(8, "little") + b[136:]
    yield "trailing garbage", b + b"\x00"
    yield "empty", b""


@pytest.mark.parametrize("what", [w for w, _ in _corruptions(b"x" * 300)])
def test_corrupt_state_refused(what, tmp_path):
    b = _trained(dict(solver="exact"), d=9).to_bytes()
    bad = dict(_corruptions(b))[what]
    with pytest.raises(StateFormatError):
        RewardModel.from_bytes(bad)
    p = tmp_path / "bad.eomd"
    p.write_bytes(bad)
    with pytest.raises(StateFormatError):
        RewardModel.load(p)


def test_non_finite_payload_refused_even_with_valid_crc():
    import zlib
    b = bytearray(_trained(dict(solver="diagonal", dtype="float64"), d=4).to_bytes())
    b[136:144] = np.float64(np.nan).tobytes()
    b[-4:] = (zlib.crc32(bytes(b[:-4])) & 0xFFFFFFFF).to_bytes(4, "little")
    with pytest.raises(StateFormatError):
        RewardModel.from_bytes(bytes(b))


def test_from_bytes_type_checked():
    with pytest.raises(InvalidInputError):
        RewardModel.from_bytes("not bytes")


def test_interrupted_save_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "user.eomd"
    m = _trained(dict(solver="exact"))
    m.save(path)
    before = path.read_bytes()
    m.learn_pair(np.ones(9) / 3, np.zeros(9))

    def crash(*a, **k):
        raise OSError("power cut before rename")

    monkeypatch.setattr(state_format.os, "replace", crash)
    with pytest.raises(OSError):
        m.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["user.eomd"]
    assert RewardModel.load(path).t == m.t - 1


def test_counter_beyond_range_refused():
    import zlib
    b = bytearray(_trained(dict(solver="diagonal"), d=4).to_bytes())
    b[32:40] = (1 << 63).to_bytes(8, "little")
    b[-4:] = (zlib.crc32(bytes(b[:-4])) & 0xFFFFFFFF).to_bytes(4, "little")
    with pytest.raises(StateFormatError):
        RewardModel.from_bytes(bytes(b))


def test_from_noncontiguous_memoryview():
    b = _trained(dict(solver="diagonal"), d=4).to_bytes()
    doubled = np.frombuffer(bytes(x for c in b for x in (c, 0)), np.uint8)[::2]
    assert RewardModel.from_bytes(memoryview(doubled)).to_bytes() == b


def _resealed(b, offset, value_bytes):
    import zlib
    b = bytearray(b)
    b[offset:offset + len(value_bytes)] = value_bytes
    b[-4:] = (zlib.crc32(bytes(b[:-4])) & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(b)


@pytest.mark.parametrize("cfg,where", [
    (dict(solver="exact", dtype="float64"), "lower"),      # U[1, 0] != 0
    (dict(solver="exact", dtype="float64"), "diag"),       # U[0, 0] = -1
    (dict(solver="diagonal", dtype="float64"), "diag"),    # h[0] = -1
    (dict(solver="cg", dtype="float64"), "lower"),         # S[1, 0] != S[0, 1]
    (dict(solver="sketch", sketch_rank=2, dtype="float64"), "rows"),
])
def test_structurally_inconsistent_state_refused(cfg, where):
    """A payload with a valid CRC but impossible contents (a hand-edited file) is refused."""
    d = 4
    m = RewardModel(d, **cfg)
    b = m.to_bytes()
    base = 136 + 8 * d  # after theta
    if cfg["solver"] in ("exact", "cg"):
        off = base + 8 * (d + 0) if where == "lower" else base
        val = np.float64(0.5 if where == "lower" else -1.0).tobytes()
    elif cfg["solver"] == "diagonal":
        off, val = base, np.float64(-1.0).tobytes()
    else:  # sketch: rows counter beyond the buffer
        off, val = len(b) - 4 - 8, np.int64(99).tobytes()
    with pytest.raises(StateFormatError):
        RewardModel.from_bytes(_resealed(b, off, val))


def test_doc_tables_are_the_generated_ones():
    """docs/STATE_FORMAT.md holds exactly the header and payload tables the code renders
    (rewrite them with `python -c "import edge_omd.state_format as s; s.write_doc()"`)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs", "STATE_FORMAT.md"), encoding="utf-8") as f:
        doc = f.read()
    assert state_format.update_doc(doc) == doc
    for block in state_format.render_doc_tables().values():
        assert block in doc


def test_java_layout_golden_is_the_specs():
    """The layout file the Java reader is checked against (test_java_reader) is what the specs
    give today (rewrite: tests/runtime/golden/make_golden_states.py --layout)."""
    import json
    from edge_omd.solvers.base import layout_golden
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "state_layout.json")
    with open(path) as f:
        assert json.load(f) == layout_golden()


def test_spec_drives_allocation_sizes_and_payload():
    """Every registered solver: its state arrays are the spec's (names, shapes, dtypes, order),
    nbytes is the spec's sum, and the payload is the spec's saved arrays in file order."""
    from edge_omd.solvers import SOLVERS
    for name, cls in SOLVERS.items():
        for dtype in ("float32", "float64"):
            rank = 3 if cls.spec.ranked else None
            m = RewardModel(7, solver=name, dtype=dtype, sketch_rank=rank)
            itemsize = np.dtype(dtype).itemsize
            spec = cls.spec.shapes(7, rank, itemsize)
            st = m._solver.state
            assert [(n, a.shape, a.dtype) for n, a in zip(st._fields, st)] == \
                   [(n, s, dt.newbyteorder("=")) for n, s, dt in spec]
            assert sum(a.nbytes for a in st) == cls.spec.nbytes(7, rank, itemsize)
            assert m.nbytes == RewardModel.state_bytes(7, name, dtype, sketch_rank=rank)
            b = m.to_bytes()
            assert len(b) == state_format.HEADER.size + cls.spec.payload_bytes(7, rank, itemsize) + 4
            assert b[10] == cls.spec.code
