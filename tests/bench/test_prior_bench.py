"""The population-prior benchmark (bench/prior.py) at tiny size on synthetic features (no
HH-RLHF, no head): the split and the users are disjoint and seeded, the bootstrap contains its
estimate and is paired, cold learners are exactly symmetric in the labels, and on a population
with a strong shared taste the prior helps aligned users and hurts opposing ones at 0 feedbacks
(so the measurement can fail both ways)."""
from dataclasses import replace

import numpy as np
import pytest

from edge_omd_bench import prior as PB


def synthetic(n=400, d=6, seed=0, scale=4.0) -> PB.Pairs:
    """Bradley-Terry pairs with one shared taste theta* (||theta*|| = scale)."""
    rng = np.random.default_rng([seed, 77])
    theta = rng.standard_normal(d)
    theta *= scale / np.linalg.norm(theta)
    a = (rng.standard_normal((n, d)) / np.sqrt(d)).astype(np.float32)
    b = (rng.standard_normal((n, d)) / np.sqrt(d)).astype(np.float32)
    win = rng.random(n) < 1.0 / (1.0 + np.exp(-(a - b).astype(np.float64) @ theta))
    c = np.where(win[:, None], a, b)
    r = np.where(win[:, None], b, a)
    return PB.Pairs("synthetic", c, r, None)


CPS = (0, 2, 4, 8)
TINY = PB.Config(users=12, stream=8, strengths=(1.0, 30.0), ranks=(2,), boot=200, seed=0,
                 report_cps=CPS, catchup_cps=tuple(range(9)))


@pytest.fixture(scope="module")
def res():
    return PB.run(TINY, synthetic(), log=lambda *a: None)


def test_halves_and_users_are_disjoint_and_seeded():
    A, B = PB.halves(101, 3)
    assert len(A) + len(B) == 101 and not set(A) & set(B)
    assert np.array_equal(A, PB.halves(101, 3)[0]) and not np.array_equal(A, PB.halves(101, 4)[0])
    us = PB.draw_streams(len(B), 7, 10, 3)
    assert us.shape == (7, 10) and all(len(set(u)) == 10 for u in us) and us.max() < len(B)
    M = PB.heldout_mask(us, len(B))
    assert (M.sum(axis=1) == len(B) - 10).all()
    assert all(M[u, us[u]].sum() == 0 for u in range(7))
    with pytest.raises(ValueError):
        PB.draw_streams(10, 2, 10, 0)


def test_bootstrap_contains_estimate_and_is_paired():
    rng = np.random.default_rng(1)
    us = PB.draw_streams(50, 20, 5, 0)
    bs = PB.Bootstrap(PB.heldout_mask(us, 50), 300, 0)
    C = (rng.random((20, 50)) < 0.7).astype(np.float32)
    lo, hi = PB.ci(bs.resamples(C))
    assert lo < bs.point(C) < hi and hi - lo < 0.2
    assert abs(bs.point(C) - 0.7) < 0.1
    const = np.full((20, 50), 0.5, np.float32)
    assert np.allclose(bs.resamples(const), 0.5)
    # paired: the same resamples, so C - C has a zero-width interval
    assert np.allclose(bs.resamples(C) - bs.resamples(C.copy()), 0.0)


def test_cold_learner_is_symmetric_in_the_labels():
    from edge_omd import RewardModel
    data = synthetic(n=80)
    us = PB.draw_streams(data.n, 3, 6, 0)
    al = PB.simulate(data, us, lambda: RewardModel(data.dim), (0, 3, 6), False)
    op = PB.simulate(data, us, lambda: RewardModel(data.dim), (0, 3, 6), True)
    assert np.array_equal(al, op)                 # theta of flipped labels is exactly -theta
    M = PB.heldout_mask(us, data.n)
    assert (al[:, 0][M > 0] == 0.5).all()        # theta = 0: every pair a tie, counted 1/2
    assert al[:, 2][M > 0].mean() > 0.55          # and it learns the shared taste


def test_prior_helps_aligned_and_hurts_opposing_at_zero(res):
    cold_al, cold_op = res["cold"]
    assert cold_al.acc[0] == cold_op.acc[0] == 0.5
    for key, st in res["settings"].items():
        al, op = st["aligned"], st["opposing"]
        assert al.acc[0] > 0.7 and op.acc[0] < 0.3   # a strong shared taste, fitted on A
        d, lo, hi = al.minus(cold_al, 0)
        assert lo <= d <= hi and lo > 0
        d, lo, hi = op.minus(cold_op, 0)
        assert hi < 0
        assert res["summary"][key]["helps_early"] in (True, False)
    assert set(res["settings"]) == {(1.0, 2), (30.0, 2)}
    # the strength sets theta_0's length: a prior worth 1 pair is a short theta_0
    assert res["settings"][(1.0, 2)]["theta0_norm"] < res["settings"][(30.0, 2)]["theta0_norm"]


def test_opposing_users_catch_up_sooner_at_a_small_strength(res):
    """A prior worth 1 pair costs opposing users a few points after 8 feedbacks; one worth 30
    keeps them far behind (before the strength set theta_0, the two were the same)."""
    small, large = res["summary"][(1.0, 2)]["opp"], res["summary"][(30.0, 2)]["opp"]
    for n in CPS[1:]:
        assert small[n][0] > large[n][0] + 0.1
    assert small[8][0] > -0.05 and large[8][0] < -0.2 and large[8][2] < 0


def test_catch_up_and_choice_follow_the_rule(res):
    for key, sm in res["summary"].items():
        op, cold_op = res["settings"][key]["opposing"], res["cold"][1]
        cu, stay = sm["catch_up"], sm["stays"]
        assert stay is None or (cu is not None and cu <= stay)
        if stay is not None:
            for n in op.cps:
                if n >= stay:
                    d, lo, hi = op.minus(cold_op, n)
                    assert d >= 0 or lo <= 0 <= hi
        if cu is not None:
            d, lo, hi = op.minus(cold_op, cu)
            assert d >= 0 or lo <= 0 <= hi
        for n in sorted(op.cps):
            if cu is None or n < cu:
                d, lo, hi = op.minus(cold_op, n)
                assert d < 0 and hi < 0
        ni = sm["ni_stays"]      # caught up to CATCHUP_MARGIN points: the rule's
        if ni is not None:
            for n in op.cps:
                if n >= ni:
                    d, lo, hi = op.minus(cold_op, n)
                    assert d >= 0 or lo > -PB.CATCHUP_MARGIN / 100
        assert sm["ok"] == (sm["helps_early"] and ni is not None and ni <= PB.CATCHUP_TARGET)
    ok = [k for k, sm in res["summary"].items() if sm["ok"]]
    order = lambda k: PB.choice_key(res["summary"], k)  # noqa: E731
    assert res["chosen"] == (max(ok, key=order) if ok else None)
    if ok:
        best = max(res["summary"][k]["mean_gain"] for k in ok)
        assert res["summary"][res["chosen"]]["mean_gain"] > best - 0.001
    text = PB.render(res)
    assert "### aligned users" in text and "### Sweep" in text and "Verdict" in text
    assert PB.shown_setting(res) in res["settings"]


def test_deterministic(res):
    again = PB.run(replace(TINY, strengths=(1.0,)), synthetic(), log=lambda *a: None)
    a, b = again["settings"][(1.0, 2)], res["settings"][(1.0, 2)]
    for n in CPS:
        assert a["aligned"].acc[n] == b["aligned"].acc[n]
        assert np.array_equal(a["opposing"].boot[n], b["opposing"].boot[n])


def test_cross_groups_see_opposed_populations():
    """Two source splits with opposite tastes: each split's theta_0 ranks its own held-out pairs
    well and the other split's badly (what pooling harmless-base with helpful-base meets)."""
    one = synthetic(n=400, seed=3)
    two = PB.Pairs("two", one.phi_r, one.phi_c)           # the same pairs, preference reversed
    rng = np.random.default_rng(5)
    perm = rng.permutation(400)
    both = PB.Pairs("one+two", np.concatenate([one.phi_c[perm[:200]], two.phi_c[perm[200:]]]),
                    np.concatenate([one.phi_r[perm[:200]], two.phi_r[perm[200:]]]), None,
                    np.repeat([0, 1], 200), ("one", "two"))
    A, B = PB.halves(both.n, 0)
    rows = PB.cross_groups(both.take("A", A), both.take("B", B), 1.0, TINY)
    acc = {(f, e): (a, lo, hi) for f, _, e, _, a, (lo, hi) in rows}
    assert len(rows) == 4
    for f in ("one", "two"):
        for e in ("one", "two"):
            a, lo, hi = acc[(f, e)]
            assert lo <= a <= hi
            assert (a > 0.7) if f == e else (a < 0.3)


def test_head_fingerprint_binds_without_changing_figures():
    """With the head's fingerprint (as on HH-RLHF) the prior and every model are bound to it;
    the figures are those of the unbound run."""
    cfg = replace(TINY, strengths=(1.0,), users=4, boot=50)
    plain = synthetic()
    bound = PB.Pairs("bound", plain.phi_c, plain.phi_r, bytes(range(32)))
    a = PB.run(cfg, plain, log=lambda *x: None)["settings"][(1.0, 2)]
    b = PB.run(cfg, bound, log=lambda *x: None)["settings"][(1.0, 2)]
    for n in CPS:
        assert a["aligned"].acc[n] == b["aligned"].acc[n]
        assert a["opposing"].acc[n] == b["opposing"].acc[n]
