"""Thumbs without `shown` (issue 11 item 4): Personalizer.thumb reads the answer against the
candidates it last offered for the same prompt (rank / score: all of them; pair_to_show: the
pair), else against reward 0 (RewardModel.learn_thumb, z = phi). One kind-1 journal record
either way, recovered bit for bit."""
import numpy as np
import pytest

from edge_omd.feature_cache import _MAX_OFFERED
from edge_omd.personalizer import Personalizer
from edge_omd.reward_model import RewardModel

PROMPT = "how do I reverse a list in python"
ANSWERS = ["use slicing code xs reverse python snippet",
           "lists are ordered collections and there are many ways to think about order",
           "call reversed on it and wrap in list",
           "short answer"]


def _ref(head):
    m = RewardModel(head.dim, solver="exact")
    head.check(m)
    return m


def _zs(store, user):
    return [(r.kind, r.label, r.weight, np.array(r.z, np.float64))
            for r in store.sync(user, None).record.journal]


@pytest.mark.parametrize("offer", ["rank", "score"])
def test_after_rank_a_thumb_is_the_answer_against_the_other_candidates(offer, head, store):
    p = Personalizer(head, store, "ann", model_options={"solver": "exact"})
    getattr(p, offer)(PROMPT, ANSWERS)
    p.thumb(PROMPT, ANSWERS[2], True)                 # no shown: the ranked list is the reference
    p.thumb(PROMPT, ANSWERS[0], False, weight=0.5)
    phi = head.features(PROMPT, ANSWERS).astype(np.float64)
    recs = _zs(store, "ann")
    assert [r[:3] for r in recs] == [(1, 1.0, 1.0), (1, 0.0, 0.5)]
    others = lambda i: np.delete(phi, i, axis=0).mean(axis=0)   # noqa: E731
    np.testing.assert_allclose(recs[0][3], phi[2] - others(2), rtol=0, atol=1e-6)
    np.testing.assert_allclose(recs[1][3], phi[0] - others(0), rtol=0, atol=1e-6)
    # the model learned exactly the recorded z (what a replay learns), and a fresh process agrees
    ref = _ref(head)
    for _k, y, w, z in recs:
        ref.learn_one(z, y, weight=w)
    assert p.model.to_bytes() == ref.to_bytes()
    assert Personalizer(head, store, "ann").model.to_bytes() == ref.to_bytes()
    # the same thumb with shown= the others learns the same observation (up to rounding)
    q = Personalizer(head, store, "ann2", model_options={"solver": "exact"})
    q.thumb(PROMPT, ANSWERS[2], True, shown=[a for a in ANSWERS if a != ANSWERS[2]])
    np.testing.assert_allclose(_zs(store, "ann2")[0][3], recs[0][3], rtol=0, atol=1e-6)


def test_after_pair_to_show_the_reference_is_the_other_answer_of_the_pair(head, store):
    p = Personalizer(head, store, "bob", model_options={"solver": "exact"}, seed=3)
    a, b = p.pair_to_show(PROMPT, ANSWERS, strategy="random")
    p.thumb(PROMPT, ANSWERS[b], True)
    phi = head.features(PROMPT, ANSWERS).astype(np.float64)
    np.testing.assert_allclose(_zs(store, "bob")[0][3], phi[b] - phi[a], rtol=0, atol=1e-6)


def test_without_an_offered_list_holding_the_answer_a_thumb_is_against_reward_0(head, store):
    """Another prompt, an answer not in the list, a list replaced by a later rank, a reset,
    the oldest of more than _MAX_OFFERED prompts: learn_thumb(phi) exactly."""
    p = Personalizer(head, store, "cat", model_options={"solver": "exact"})
    ref = _ref(head)
    p.rank(PROMPT, ANSWERS[:3])
    p.thumb(PROMPT, ANSWERS[3], True)                 # not among the ranked
    p.thumb("another prompt", ANSWERS[0], False)      # nothing offered for this prompt
    p.rank(PROMPT, ANSWERS[1:])                          # replaces the prompt's list
    p.thumb(PROMPT, ANSWERS[0], True)
    for prompt, answer, up in ((PROMPT, ANSWERS[3], True), ("another prompt", ANSWERS[0], False),
                               (PROMPT, ANSWERS[0], True)):
        ref.learn_thumb(head.features(prompt, [answer])[0], up)
    assert p.model.to_bytes() == ref.to_bytes()
    p.rank(PROMPT, ANSWERS)
    p.reset()                                            # forgets the offered lists too
    p.thumb(PROMPT, ANSWERS[1], True)
    fresh = _ref(head)
    fresh.learn_thumb(head.features(PROMPT, [ANSWERS[1]])[0], True)
    assert p.model.to_bytes() == fresh.to_bytes()
    p.reset()
    for i in range(_MAX_OFFERED + 1):
        p.rank(f"prompt {i}", ANSWERS[:2])
    p.thumb("prompt 0", ANSWERS[0], True)             # evicted: against reward 0
    p.thumb(f"prompt {_MAX_OFFERED}", ANSWERS[0], True)   # kept
    zs = _zs(store, "cat")
    phi0 = head.features("prompt 0", ANSWERS[:2]).astype(np.float64)
    phin = head.features(f"prompt {_MAX_OFFERED}", ANSWERS[:2]).astype(np.float64)
    np.testing.assert_allclose(zs[0][3], phi0[0], rtol=0, atol=1e-7)
    np.testing.assert_allclose(zs[1][3], phin[0] - phin[1], rtol=0, atol=1e-6)


def test_duplicates_and_a_disabled_feature_cache(head, sqlite_store):
    """Entries equal to the answer are left out of the reference (as with shown=); a list of
    only the answer gives no reference; the lists are kept without the feature cache."""
    p = Personalizer(head, sqlite_store, "dan", model_options={"solver": "exact"},
                     feature_cache_bytes=0)
    p.rank(PROMPT, [ANSWERS[0], ANSWERS[1], ANSWERS[0]])
    p.thumb(PROMPT, ANSWERS[0], True)
    p.rank(PROMPT, [ANSWERS[2], ANSWERS[2]])
    p.thumb(PROMPT, ANSWERS[2], True)
    phi = head.features(PROMPT, ANSWERS).astype(np.float64)
    zs = _zs(sqlite_store, "dan")
    np.testing.assert_allclose(zs[0][3], phi[0] - phi[1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(zs[1][3], phi[2], rtol=0, atol=1e-7)

