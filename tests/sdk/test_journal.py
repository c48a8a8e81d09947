"""The journal: the record codec, recovery = checkpoint + replay bit for bit (checked in a fresh
process for every representation and dtype), O(d) writes on the hot path, the feature cache."""
import hashlib

import numpy as np
import pytest

from edge_omd.errors import ConfigError, InvalidInputError, StateFormatError
from edge_omd.personalizer import Personalizer, default_checkpoint_every
from edge_omd.reward_model import RewardModel
from edge_omd.store import FolderStore, SQLiteStore, journal
from tests.sdk import _workers
from tests.sdk.fakes import FakeHead

PROMPT = "how do I reverse a list in python"
CODE = "use slicing code xs reverse python snippet"
PROSE = "lists are ordered collections and there are many ways to think about order"


# ------------------------------------------------------------------ codec

def test_record_round_trip_and_layout():
    z = np.arange(5, dtype=np.float32) / 7
    rec = journal.encode(123, 9, z, 0.0, 2.5, when=1.5)
    assert len(rec) == journal.record_size(5, 4) == 64 + 20 + 4
    assert rec[:4] == b"EOJR" and int.from_bytes(rec[4:8], "little") == len(rec)
    got, end = journal.check_one(rec, 0, dim=5, itemsize=4)
    assert end == len(rec)
    assert (got.kind, got.epoch, got.seq, got.label, got.weight, got.time) == (1, 123, 9, 0.0,
                                                                              2.5, 1.5)
    assert got.z.dtype == np.float32 and got.z.tobytes() == z.tobytes()
    with pytest.raises(StateFormatError):
        journal.encode(1, 1, np.zeros((2, 5), np.float32), 1.0, 1.0)   # kind 1 holds one vector
    k3 = journal.encode(1, 1, np.zeros((3, 5)), 2.0, 1.0, kind=journal.KIND_CHOICE)
    assert len(k3) == journal.record_size(5, 8, 3)             # k vectors: one record
    assert journal.check_one(k3, 0, dim=5, itemsize=8)[0].kind == journal.KIND_CHOICE  # read


def test_parse_stops_at_the_first_bad_record_and_says_why():
    recs = [journal.encode(7, s, np.full(4, s, np.float64), 1.0, 1.0) for s in (1, 2, 3, 4)]
    buf = b"".join(recs)
    p = journal.parse(buf, epoch=7, after=0, dim=4, itemsize=8)
    assert [r.seq for r in p.records] == [1, 2, 3, 4] and p.stop is None
    assert journal.parse(buf, epoch=7, after=2, dim=4, itemsize=8).records[0].seq == 3
    cases = {
        "checksum": buf[:150] + bytes([buf[150] ^ 1]) + buf[151:],
        "torn": buf[:-10],
        "epoch": b"".join(recs[:2]) + journal.encode(8, 3, np.zeros(4), 1.0, 1.0),
        "seq 4, expected 3": b"".join(recs[:2] + recs[3:]),
        "magic": b"".join(recs[:2]) + b"\0" * len(recs[2]),
    }
    for why, data in cases.items():
        p = journal.parse(data, epoch=7, after=0, dim=4, itemsize=8)
        n = {"checksum": 1, "torn": 3}.get(why, 2)
        assert len(p.records) == n and why.split()[0] in p.stop, (why, p.stop)
        assert p.stop_at == sum(len(r) for r in recs[:n])
    bad = journal.parse(buf, epoch=7, after=0, dim=5, itemsize=8)
    assert bad.records == [] and "d=4" in bad.stop
    # a non-finite vector with a valid checksum is refused by the reader (JOURNAL_FORMAT.md
    # check 5, as the Java reader does): parsing stops there, nothing after it is applied
    nan = journal.encode(7, 3, np.full(4, np.nan), 1.0, 1.0)
    rec, why = journal.check_one(nan, 0, dim=4, itemsize=8)
    assert rec is None and "not finite" in why
    p = journal.parse(b"".join(recs[:2]) + nan + recs[3], epoch=7, after=0, dim=4, itemsize=8)
    assert [r.seq for r in p.records] == [1, 2] and "not finite" in p.stop


def test_learn_observation_takes_exactly_the_live_path():
    a = RewardModel(16, dtype="float32")
    b = RewardModel(16, dtype="float32")
    rng = np.random.default_rng(0)
    for i in range(30):
        x, y = rng.standard_normal(16), rng.standard_normal(16)
        a.learn_pair(x, y, weight=0.5 + i % 3)
        b._learn_observation(a._observation.copy(), 1.0, 0.5 + i % 3)
    assert a.to_bytes() == b.to_bytes()
    with pytest.raises(InvalidInputError):
        b._learn_observation(np.zeros(16, np.float64), 1.0)     # not the state's dtype
    with pytest.raises(InvalidInputError):
        b._learn_observation(np.zeros(15, np.float32), 1.0)
    with pytest.raises(InvalidInputError):
        b._learn_observation(np.zeros(16, np.float32), 1.5)
    assert b.t == 30 and not b._observation.flags.writeable


# ------------------------------------------------------------------ bit for bit, fresh process

CONFIGS = {
    "exact-f32": {"solver": "exact", "dtype": "float32"},
    "exact-f64": {"solver": "exact", "dtype": "float64"},
    "cg-f32": {"solver": "cg", "dtype": "float32", "lam_warmup": 5},
    "cg-f64-forget": {"solver": "cg", "dtype": "float64", "forget": 0.97},
    "sketch-f32": {"solver": "sketch", "dtype": "float32", "sketch_rank": 4},
    "sketch-f64": {"solver": "sketch", "dtype": "float64", "sketch_rank": 3, "forget": 0.99},
    "diagonal-f32": {"solver": "diagonal", "dtype": "float32"},
    "diagonal-f64": {"solver": "diagonal", "dtype": "float64"},
    "exact-radius": {"solver": "exact", "dtype": "float64", "radius": 0.3},
}


def test_recovery_in_a_fresh_process_equals_the_live_model_bit_for_bit(tmp_path):
    """Live models (decisions interleaved, checkpoints every 7) against what a FRESH process
    recovers from the store: the same bytes, for every representation and dtype."""
    entries, live = [], []
    for kind in ("sqlite", "folder"):
        path = str(tmp_path / ("s.sqlite" if kind == "sqlite" else "users"))
        store = _workers.open_store(kind, path)
        for name, options in CONFIGS.items():
            head = FakeHead(dim=24)
            p = Personalizer(head, store, name, checkpoint_every=7, model_options=options)
            for seq in range(1, 27):
                _workers.send(p, seq)
                if seq % 4 == 0:   # decisions between feedbacks (they flush exact's update)
                    p.rank(PROMPT, [CODE, PROSE, f"answer {seq}"])
                if seq == 13:
                    with p.batch():
                        _workers.send(p, 100)
                        _workers.send(p, 101)
            # checkpoints at 7, 15 (the batch crossed 14) and 22; records 23-28 in the journal
            assert p.updates == 28 and p._session.cursor.checkpoint_updates == 22
            blob = p._session.model.to_bytes()
            live.append(f"{hashlib.sha256(blob).hexdigest()} 28 {p._session.model.t}")
            entries.append((kind, path, name, 24))
        store.close()
    _workers.assert_recovered_in_fresh_process(entries, live, tmp_path)


# ------------------------------------------------------------------ the hot path

def test_feedback_writes_one_record_and_never_the_state_between_checkpoints(head, store,
                                                                            monkeypatch):
    p = Personalizer(head, store, "u", checkpoint_every=5, model_options={"solver": "exact"})
    calls = []
    real = RewardModel.to_bytes
    monkeypatch.setattr(RewardModel, "to_bytes", lambda self: calls.append(self.t) or real(self))
    for i in range(12):
        p.prefer(PROMPT, f"{CODE} {i}", PROSE)
        if i < 4 and i > 0:
            # exact keeps its fused deferred update across feedbacks: nothing flushed it
            assert p._session.model._solver.state.aux[1] == 1.0
    # the state was serialised only for the first checkpoint (creation, t=0) and at 5 and 10
    assert calls == [0, 5, 10]
    rec = store.get("u")
    assert rec.updates == 12 and rec.checkpoint_updates == 10 and len(rec.journal) == 2
    assert len(rec.journal[0].z) == 64 and rec.journal[0].z.dtype == np.float32


def test_close_and_checkpoint_write_the_state_and_empty_the_journal(head, store):
    p = Personalizer(head, store, "u", checkpoint_every=1000)
    for i in range(3):
        p.thumb(PROMPT, f"answer {i}", up=True)
    assert len(store.get("u").journal) == 3
    assert p.checkpoint() is True and p.checkpoint() is False      # nothing new: no write
    rec = store.get("u")
    assert (rec.updates, rec.checkpoint_updates, rec.journal) == (3, 3, ())
    p.thumb(PROMPT, "one more", up=False)
    with p:
        pass                                                        # close() checkpoints
    assert store.get("u").checkpoint_updates == 4


def test_counter_counts_observations_and_never_goes_backwards(head, store):
    p = Personalizer(head, store, "u")
    with p.batch():
        for i in range(10):
            p.thumb(PROMPT, f"answer {i}", up=i % 2 == 0)
    assert p.updates == 10 and p.model.t == 10
    old = p.export_state()
    p.prefer(PROMPT, CODE, PROSE)
    p.import_state(old)
    assert p.updates == 11 and p.model.t == 10


def test_default_checkpoint_interval_scales_with_the_replay_work(tmp_path):
    n384, n4096 = (default_checkpoint_every(d, "exact") for d in (384, 4096))
    assert 8 <= n4096 < n384 <= 4096
    assert default_checkpoint_every(4096, "sketch", 64) > n4096
    assert default_checkpoint_every(384, "diagonal") > n384
    with pytest.raises(ConfigError):
        Personalizer(FakeHead(dim=8), FolderStore(tmp_path), "u", checkpoint_every=0)


def test_the_default_interval_follows_the_live_models_shape(tmp_path):
    """The default interval is kept per model shape: a state of another solver imported into a
    live session takes that solver's interval from then on."""
    head = FakeHead(dim=384)
    p = Personalizer(head, FolderStore(tmp_path / "a"), "u", model_options={"solver": "exact"})
    p.prefer(PROMPT, CODE, PROSE)
    session = p._session
    assert session.checkpoint_every == default_checkpoint_every(384, "exact")
    q = Personalizer(head, FolderStore(tmp_path / "b"), "v",
                     model_options={"solver": "diagonal"})
    q.prefer(PROMPT, CODE, PROSE)
    p.import_state(q.export_state())
    assert p.model.solver == "diagonal"
    assert session.checkpoint_every == default_checkpoint_every(384, "diagonal") != \
        default_checkpoint_every(384, "exact")


# ------------------------------------------------------------------ bad input, feature cache

@pytest.mark.parametrize("call", [
    lambda p: p.thumb("", CODE, up=True),
    lambda p: p.thumb(PROMPT, "", up=True),
    lambda p: p.prefer("", CODE, PROSE),
    lambda p: p.prefer(PROMPT, "", PROSE),
    lambda p: p.prefer(PROMPT, CODE, ""),
    lambda p: p.prefer(PROMPT, CODE, CODE),
])
def test_empty_texts_and_identical_pairs_are_refused_and_nothing_is_committed(call, head,
                                                                              store):
    p = Personalizer(head, store, "u")
    p.thumb(PROMPT, CODE, up=True)
    before = store.get("u")
    with pytest.raises(InvalidInputError):
        call(p)
    assert store.get("u") == before and p.updates == 1 and p.model.t == 1


def test_feedback_on_ranked_answers_costs_no_second_forward_pass(head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u")
    cands = [CODE, PROSE, "a third answer"]
    a, b = p.pair_to_show(PROMPT, cands)
    calls = head.calls
    p.prefer(PROMPT, cands[a], cands[b])
    p.thumb(PROMPT, cands[2], up=False)
    p.rank(PROMPT, cands)
    assert head.calls == calls                         # every feature came from the cache
    p.prefer(PROMPT, CODE, "an answer never shown")
    assert head.calls == calls + 1                     # one call, for the missing answer only
    # the cached features are the head's own: a user without the cache learns the same
    q = Personalizer(FakeHead(dim=64), SQLiteStore(sqlite_store.path), "x",
                     feature_cache_bytes=0)
    r = Personalizer(FakeHead(dim=64), SQLiteStore(sqlite_store.path), "y")
    r.pair_to_show(PROMPT, cands)
    q.prefer(PROMPT, cands[a], cands[b])
    r.prefer(PROMPT, cands[a], cands[b])
    assert q.model.theta.tobytes() == r.model.theta.tobytes()


def test_feature_cache_is_bounded_in_bytes(head, sqlite_store):
    per = 64 * 4 + 128
    p = Personalizer(head, sqlite_store, "u", feature_cache_bytes=10 * per)
    p.rank(PROMPT, [f"answer {i}" for i in range(25)])
    assert p._cache.nbytes <= 10 * per and len(p._cache._d) == 10
    calls = head.calls
    p.thumb(PROMPT, "answer 24", up=True)           # the most recent ones are kept
    assert head.calls == calls
    p.thumb(PROMPT, "answer 0", up=True)            # the oldest went first
    assert head.calls == calls + 1
    with pytest.raises(ConfigError):
        Personalizer(head, sqlite_store, "u", feature_cache_bytes=-1)
