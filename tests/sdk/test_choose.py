"""Personalizer.pick: one multinomial-logit observation over the candidates shown, committed as
ONE kind-2 journal record (edge_omd/store/journal.py) and recovered bit for bit by a fresh process."""
import hashlib

import numpy as np
import pytest

from edge_omd.errors import InvalidInputError, StateFormatError
from edge_omd.personalizer import Personalizer
from edge_omd.reward_model import RewardModel
from edge_omd.store import journal
from tests.sdk import _workers
from tests.sdk.fakes import FakeHead

PROMPT = "how do I reverse a list in python"
ANSWERS = ["use slicing code xs reverse python snippet",
           "lists are ordered collections and there are many ways to think about order",
           "call reversed on it and wrap in list",
           "short answer"]


def test_choice_record_round_trip_and_refusals():
    P = (np.arange(15, dtype=np.float32) / 7).reshape(3, 5)
    rec = journal.encode(4, 2, P, 1.0, 0.5, kind=journal.KIND_CHOICE, when=2.0)
    assert len(rec) == journal.record_size(5, 4, 3)
    got, end = journal.check_one(rec, 0, dim=5, itemsize=4)
    assert end == len(rec) and got.kind == journal.KIND_CHOICE and got.label == 1.0
    assert got.vectors.shape == (3, 5) and got.vectors.tobytes() == P.tobytes()
    for k, label in ((3, 3.0), (3, 1.5), (3, -1.0), (1, 0.0), (17, 0.0)):
        with pytest.raises(StateFormatError):
            journal.encode(4, 2, np.zeros((k, 5), np.float32), label, 1.0,
                           kind=journal.KIND_CHOICE)
    # a record written by another writer with a bad index is refused by the reader
    bad = bytearray(journal.encode(4, 2, P, 2.0, 0.5, kind=journal.KIND_CHOICE))
    bad[40:48] = np.float64(3.0).tobytes()
    rec2, why = journal.check_one(bytes(journal.envelope.seal(bytes(bad[:-4]))), 0, dim=5,
                                  itemsize=4)
    assert rec2 is None and "chosen index" in why
    assert journal.CHOICE_MAX_K == 16


def test_choose_is_one_record_and_learns_like_learn_choice(head, store):
    p = Personalizer(head, store, "alice", model_options={"solver": "exact"})
    ref = RewardModel(head.dim, solver="exact")
    head.check(ref)
    p.pick(PROMPT, ANSWERS, 2)
    p.pick(PROMPT, ANSWERS[:2], 0, weight=2.0)
    ref.learn_choice(head.features(PROMPT, ANSWERS), 2)
    ref.learn_choice(head.features(PROMPT, ANSWERS[:2]), 0, weight=2.0)
    assert p.updates == 2 and p.model.to_bytes() == ref.to_bytes()
    s = store.sync("alice", None)
    recs = s.record.journal
    assert [(r.kind, r.vectors.shape[0], r.label, r.weight) for r in recs] == [
        (journal.KIND_CHOICE, 4, 2.0, 1.0), (journal.KIND_CHOICE, 2, 0.0, 2.0)]
    scores = p.score(PROMPT, ANSWERS)
    assert int(np.argmax(scores)) == 2


@pytest.mark.parametrize("call", [
    lambda p: p.pick(PROMPT, ANSWERS[:1], 0),
    lambda p: p.pick(PROMPT, ANSWERS * 5, 0),
    lambda p: p.pick(PROMPT, ANSWERS, 4),
    lambda p: p.pick(PROMPT, ANSWERS, -1),
    lambda p: p.pick(PROMPT, ANSWERS, True),
    lambda p: p.pick(PROMPT, ANSWERS, 1.0),
    lambda p: p.pick(PROMPT, ANSWERS + [""], 0),
    lambda p: p.pick("", ANSWERS, 0),
    lambda p: p.pick(PROMPT, "one string", 0),
    lambda p: p.pick(PROMPT, ANSWERS, 0, weight=0.0),
], ids=["k=1", "k=20", "index=k", "index=-1", "bool", "float", "empty response", "empty prompt",
        "str", "weight"])
def test_bad_choices_are_refused_and_nothing_is_committed(call, head, sqlite_store):
    p = Personalizer(head, sqlite_store, "bob")
    p.prefer(PROMPT, ANSWERS[0], ANSWERS[1])
    before = p.model.to_bytes()
    with pytest.raises(InvalidInputError):
        call(p)
    assert p.updates == 1 and p.model.to_bytes() == before


CONFIGS = {
    "exact-f32": {"solver": "exact", "dtype": "float32"},
    "exact-f64-radius": {"solver": "exact", "dtype": "float64", "radius": 0.3},
    "cg-f32-forget": {"solver": "cg", "dtype": "float32", "forget": 0.97, "lam_warmup": 5},
    "sketch-f32": {"solver": "sketch", "dtype": "float32", "sketch_rank": 4},
    "diagonal-f64": {"solver": "diagonal", "dtype": "float64"},
}


def _drive(p, seq):
    """Choices of 2-5 answers (a duplicate now and then) between feedbacks and preferences."""
    answers = [f"answer {seq} number {j} {'code' if j % 2 else 'prose'}" for j in range(5)]
    if seq % 3 == 0:
        _workers.send(p, seq)
    elif seq % 3 == 1:
        k = 2 + seq % 4
        cand = answers[:k] + ([answers[0]] if seq % 5 == 0 and k < 5 else [])
        p.pick(f"prompt {seq % 4}", cand, seq % len(cand), weight=1.0 + (seq % 2))
    else:
        p.pick(PROMPT, ANSWERS, seq % 4)


def test_recovery_in_a_fresh_process_equals_the_live_model_bit_for_bit(tmp_path):
    """Choices mixed with the other verbs, in and out of a batch, checkpoints every 7: a fresh
    process recovers each user's live bytes from either store (checkpoint + kind-2 replay)."""
    entries, live = [], []
    for kind in ("sqlite", "folder"):
        path = str(tmp_path / ("s.sqlite" if kind == "sqlite" else "users"))
        store = _workers.open_store(kind, path)
        for name, options in CONFIGS.items():
            p = Personalizer(FakeHead(dim=24), store, name, checkpoint_every=7,
                             model_options=options)
            for seq in range(1, 24):
                _drive(p, seq)
                if seq == 10:
                    with p.batch():
                        _drive(p, 100)
                        _drive(p, 101)
                if seq % 5 == 0:
                    p.rank(PROMPT, ANSWERS)
            cursor = p._session.cursor
            assert p.updates == 25 and cursor.updates > cursor.checkpoint_updates
            kinds = {r.kind for r in store.sync(name, None).record.journal}
            assert journal.KIND_CHOICE in kinds
            blob = p._session.model.to_bytes()
            live.append(f"{hashlib.sha256(blob).hexdigest()} 25 {p._session.model.t}")
            entries.append((kind, path, name, 24))
        store.close()
    _workers.assert_recovered_in_fresh_process(entries, live, tmp_path)


# ------------------------------------------------------------------ thumbs relative to the shown

def test_feedback_shown_is_the_answer_against_the_mean_of_the_others(head, store):
    """thumb(..., shown=others): ONE kind-1 record z = phi(a) - mean phi(others) (converted
    once), y = up; the model is learn_one of it; entries equal to the response are dropped;
    without shown nothing changed (z = phi(a))."""
    p = Personalizer(head, store, "carol", model_options={"solver": "exact"})
    ref = RewardModel(head.dim, solver="exact")
    head.check(ref)
    phi = head.features(PROMPT, ANSWERS).astype(np.float64)
    p.thumb(PROMPT, ANSWERS[0], True, shown=ANSWERS[1:] + [ANSWERS[0]])
    p.thumb(PROMPT, ANSWERS[2], False, shown=[ANSWERS[3]], weight=0.5)
    p.thumb(PROMPT, ANSWERS[1], True)
    ref.learn_one(phi[0] - phi[1:].mean(axis=0), 1.0)
    ref.learn_one(phi[2] - phi[3], 0.0, weight=0.5)
    ref.learn_thumb(phi[1], True)
    assert p.model.to_bytes() == ref.to_bytes()
    recs = store.sync("carol", None).record.journal
    assert [(r.kind, r.label, r.weight) for r in recs] == [(1, 1.0, 1.0), (1, 0.0, 0.5),
                                                          (1, 1.0, 1.0)]
    np.testing.assert_array_equal(
        recs[0].z, (phi[0] - phi[1:].mean(axis=0)).astype(np.float32))
    again = Personalizer(head, store, "carol")   # recovered from the journal: the same bytes
    assert again.model.to_bytes() == ref.to_bytes()


@pytest.mark.parametrize("shown", [[], [ANSWERS[0]], [""], "one string",
                                   [f"other answer {i}" for i in range(16)], [3]],
                         ids=["empty", "only itself", "empty text", "str", "too many", "int"])
def test_bad_shown_is_refused_and_nothing_is_committed(shown, head, sqlite_store):
    p = Personalizer(head, sqlite_store, "dave")
    p.prefer(PROMPT, ANSWERS[0], ANSWERS[1])
    before = p.model.to_bytes()
    with pytest.raises(InvalidInputError):
        p.thumb(PROMPT, ANSWERS[0], True, shown=shown)
    assert p.updates == 1 and p.model.to_bytes() == before
