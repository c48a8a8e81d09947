"""Tests of the per-user benchmark (bench/peruser.py, bench/peruser_world.py) at tiny size, on
the demo corpus only (package data) and with features that need no head: the protocol can
succeed (oracle features: top-1 near 1), can fail (noise features: chance), its statistics
contain their estimate, it is deterministic, and the targets read its numbers."""
import math
from dataclasses import replace

import numpy as np
import pytest

from edge_omd_bench import peruser as P
from edge_omd_bench import peruser_world as pw
from edge_omd_bench.targets import PERUSER_TARGETS, evaluate


@pytest.fixture(scope="module")
def world():
    return pw.build_world(n_hh=0, n_demo=45, n_cands=6, seed=0)


# users whose utility is linear in the oracle features, answering almost without noise, over
# properties the demo corpus varies within a prompt (so 30 train prompts show every one of them)
LINEAR = pw.PopulationConfig(p_target=0.0, idiosyncratic=0.0, temperature=(0.05, 0.05),
                             properties=("has_list", "has_code", "casual", "hedging", "polite"))


def tiny(**kw):
    base = P.Config.preset_named("quick", users=5, populations=(("design", 0),),
                                 contenders=(P.OMD_DEFAULT, P.MLE_ID), strategies=("random", "ucb"),
                                 checkpoints=(0, 50, 300), population=LINEAR, boot=300, workers=1)
    return replace(base, **kw)


def run(world, Phi, cfg):
    return P.run(cfg, Phi=Phi, world=world, log=lambda m: None)


def top1(res, strategy, beta, pop="design"):
    return np.asarray(res["populations"][pop]["strategies"][strategy]["beta"][beta]["top1"])


@pytest.fixture(scope="module")
def oracle_res(world):
    return run(world, P.feature_matrix(world, "oracle"), tiny())


def test_world_is_deterministic_and_split(world):
    again = pw.build_world(n_hh=0, n_demo=45, n_cands=6, seed=0)
    assert again.key() == world.key()
    assert set(world.train).isdisjoint(world.test) and len(world.train) + len(world.test) == len(world.items)
    for it in world.items:
        assert len(it.responses) == 6 and len(set(it.responses)) == 6
    assert pw.build_world(n_hh=0, n_demo=45, seed=1).key() != world.key()


def test_oracle_features_learn_the_taste(world, oracle_res):
    chance = oracle_res["populations"]["design"]["chance"]
    for s in ("random", "ucb"):
        t = top1(oracle_res, s, "0.0")
        assert abs(t[:, 0].mean() - chance) < 0.2          # k=0: theta = 0, first index
        assert t[:, -1].mean() >= 0.85                      # k=300: the favourite
        mle = np.asarray(oracle_res["populations"]["design"]["strategies"][s]["contenders"][P.MLE_ID]["top1"])
        assert mle[:, -1].mean() >= 0.85
    # the offline fit on every noiseless train pair: what the features allow
    assert np.mean(oracle_res["populations"]["design"]["ceiling"]["top1"]) >= 0.9


def test_noise_features_stay_at_chance(world):
    rng = np.random.default_rng(5)
    noise = rng.standard_normal((len(world.pairs), 16)).astype(np.float32) / 4
    res = run(world, noise, tiny(strategies=("random",)))
    chance = res["populations"]["design"]["chance"]
    assert top1(res, "random", "0.0")[:, -1].mean() < chance + 0.2
    assert np.mean(res["populations"]["design"]["ceiling"]["top1"]) < chance + 0.2


def test_deterministic(world, oracle_res):
    again = run(world, P.feature_matrix(world, "oracle"), tiny())
    for s in ("random", "ucb"):
        for b in ("0.0", "1.0"):
            assert np.array_equal(top1(again, s, b), top1(oracle_res, s, b))


def test_ci_contains_the_mean_and_pairs():
    x = np.random.default_rng(0).random(30)
    idx = P.boot_indices(30, 500, 0)
    m, lo, hi = P.ci(x, idx)
    assert lo <= m <= hi and hi - lo > 0
    assert P.ci(x - x, idx) == (0.0, 0.0, 0.0)          # paired: a setting minus itself


def test_score_test_ties_and_regret():
    U = np.array([[0.0, 2.0, 1.0], [3.0, 3.0, 0.0]])
    s = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])    # ties go to the lower index
    t1, rg = P.score_test(s, U)
    assert t1 == 1.0 and rg == 0.0
    t1, rg = P.score_test(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), U)
    assert t1 == 0.0 and rg == pytest.approx((2.0 + 3.0) / 2)


def test_rank_widths_match_the_model(world):
    from edge_omd.reward_model import RewardModel
    m = RewardModel(4, dtype="float64")
    rng = np.random.default_rng(1)
    m.learn_pair(rng.standard_normal(4), rng.standard_normal(4))
    P3 = rng.standard_normal((2, 3, 4))
    W = P.rank_widths(m, P3)
    for i in range(2):
        assert np.allclose(W[i], m.width(P3[i], P3[i].mean(axis=0)))


def test_style_block_counts_code_points():
    a, b = pw.style_raw("😀" * 10), pw.style_raw("a" * 10)
    assert a[0] == b[0] == math.log1p(10)
    r = pw.style_raw("# T\n\n- x\n- y\n\n```py\nz\n```\nok?")
    names = dict(zip(pw.STYLE_FEATURES, r))
    assert names["list_items"] == math.log1p(2) and names["headers"] == math.log1p(1)
    assert names["code_blocks"] == 1.0 and names["questions"] == math.log1p(1)
    sc = pw.StyleScaler.fit(["a", "bb bb", "- x\n- y"], weight=2.0)
    X = sc(["a", "bb bb", "- x\n- y"])
    assert X.shape == (3, len(pw.STYLE_FEATURES)) and np.allclose(X.mean(0), 0)


def test_style_features_concatenate(world):
    X = P.feature_matrix(world, "oracle+style")
    assert X.shape == (len(world.pairs), len(pw.PROPERTIES) + 1 + len(pw.STYLE_FEATURES))
    X2 = P.feature_matrix(world, "oracle+style*2")
    k = len(pw.PROPERTIES) + 1
    assert np.allclose(X2[:, :k], X[:, :k]) and np.allclose(X2[:, k:], 2 * X[:, k:], atol=1e-6)


def test_population_over_a_subset_of_properties(world):
    cfg = pw.PopulationConfig(properties=("tech", "money"), p_length=0.0)
    for u in pw.draw_users(world, 3, 6, cfg):
        used = {pw.PROPERTIES[k] for k in np.flatnonzero(u.w)}
        assert used and used <= {"tech", "money"} and u.len_kind == "none"


def test_thumbs_and_targets_read_the_numbers(world, monkeypatch):
    res = run(world, P.feature_matrix(world, "oracle"), tiny(strategies=("ucb", "thumbs")))
    assert top1(res, "thumbs", "0.0")[:, -1].mean() > top1(res, "thumbs", "0.0")[:, 0].mean()
    from edge_omd_bench import targets
    k50 = res["config"]["checkpoints"].index(50)
    m = top1(res, "ucb", "1.0")[:, k50].mean()
    monkeypatch.setitem(targets.PERUSER_MAIN_TOP1_AT_50, "design", m / 2)
    v = evaluate(res, PERUSER_TARGETS)
    assert v[0].met is True and v[0].worst[0].value == pytest.approx(2.0)
    monkeypatch.setitem(targets.PERUSER_MAIN_TOP1_AT_50, "design", m)
    assert evaluate(res, PERUSER_TARGETS)[0].met is False
    assert v[1].met in (True, False) and v[1].worst[0] is not None


# ------------------------------------------------------------------ the wording users (issue 20)
def _demo_texts():
    return [r["text"] for p in pw._load_demo() for r in p["responses"]]


def test_wording_lexicons_hold_no_word_a_variant_inserts():
    ins = pw.wording_inserted_words()
    assert {"think", "sure", "hope", "example", "you", "i'm", "questions"} <= ins   # it sees them
    for name, lex in pw.WORDING_LEXICONS.items():
        assert not set(lex) & ins, name
    assert max(len(w) for w in ins) < pw.LONG_WORD


def test_a_variant_keeps_or_lowers_its_sources_wording():
    """What separates answers for a wording user is never a phrase a variant pasted in: every
    variant of every demo answer has the wording counts of its source (lower: "short" drops
    sentences)."""
    seen = 0
    for src in _demo_texts()[::3]:
        base = np.array(pw.wording_raw(src))
        for name, fn in pw.VARIANTS.items():
            v = fn(src)
            if v is None:
                continue
            got = np.array(pw.wording_raw(v))
            if name == "short":
                assert np.all(got <= base), (name, src)
            else:
                assert np.array_equal(got, base), (name, src)
            seen += 1
    assert seen > 500


def test_wording_words_fold_ascii_only():
    assert pw.wording_words("I\u2019VE Always MUST sorry, PERHAPS. \u0130 \u00c9t\u00e9") == [
        "i've", "always", "must", "sorry", "perhaps", "t"]
    raw = dict(zip(pw.WORDING, pw.wording_raw("We really should try; I'm sorry. Unfortunately "
                                               "internationalisation matters")))
    assert raw["personal"] == math.log1p(1) and raw["intense"] == math.log1p(1)
    assert raw["directive"] == math.log1p(2) and raw["apologetic"] == math.log1p(2)
    assert raw["long_words"] == math.log1p(2) and raw["tentative"] == 0.0


def test_wording_users_weigh_wording_only(world):
    users = pw.draw_users(world, 0, 8, pw.GROUPS["wording"])
    K = len(pw.PROPERTIES)
    for u in users:
        assert u.len_kind == "none" and not np.any(u.w[:K]) and np.any(u.w[K:])
    u = users[0]
    taste = world.S_wording @ u.w[K:]
    assert np.std(u.u - taste) < 0.3 and np.corrcoef(u.u, taste)[0, 1] > 0.5   # + eps (sd 0.2)


def test_groups_leave_the_existing_populations_unchanged(world):
    """The default population ("all") never reads the wording properties: its users are the
    same whatever they hold."""
    a = pw.draw_users(world, 1, 6, pw.GROUPS["all"])
    saved = world.S_wording
    try:
        world.S_wording = np.full_like(saved, np.nan)
        b = pw.draw_users(world, 1, 6, pw.GROUPS["all"])
    finally:
        world.S_wording = saved
    for x, y in zip(a, b):
        assert np.array_equal(x.u, y.u) and not np.any(x.w[len(pw.PROPERTIES):])
    with pytest.raises(ValueError, match="unknown properties"):
        pw.draw_users(world, 0, 1, pw.PopulationConfig(properties=("nope",)))
