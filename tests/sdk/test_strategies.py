"""The three settings' decision rules against their definitions (docs/ALGORITHM.md)."""
import math

import numpy as np
import pytest

from edge_omd.errors import InvalidInputError
from edge_omd.personalizer import Personalizer
from edge_omd.reward_model import RewardModel
from edge_omd.strategies import (STRATEGIES, choose_pair, greedy_queries, paper_beta,
                                 pessimistic_scores)

R = np.array([0.3, 2.0, -1.0, 1.5, 0.9, 1.2, -0.4, 0.1])   # best 1, 2nd 3, 3rd 5, worst 2


def test_best_second_best_worst_best_quantile():
    assert choose_pair(R, None, strategy="best_second") == (1, 3)
    assert choose_pair(R, None, strategy="best_worst") == (1, 2)
    # the ceil(n/q)-th best: n = 8, q = 4 -> 2nd; q = 2 -> 4th; q = 1 -> the worst
    assert choose_pair(R, None, strategy="best_quantile", q=4) == (1, 3)
    assert choose_pair(R, None, strategy="best_quantile", q=2) == (1, 4)
    assert choose_pair(R, None, strategy="best_quantile", q=1) == (1, 2)
    # the official code: the 4th best of 64 samples (q = 16)
    r64 = np.arange(64.0)[::-1].copy()              # index i has rank i + 1
    assert choose_pair(r64, None, strategy="best_quantile", q=16) == (0, 3)


def test_ucb_is_argmax_reward_plus_two_beta_width_from_the_best():
    widths = {1: np.array([0.1, 0.0, 3.0, 0.05, 1.0, 0.2, 0.1, 0.1])}
    width_from = lambda a: widths[a]
    # beta = 0: the second-best (3); beta = 0.4: 0.9 + 0.8 = 1.7 beats 1.5 + 0.04 and -1 + 2.4 (4);
    # beta = 1: -1 + 6 = 5 is the maximum (2), the worst reward but the most unexplored
    assert choose_pair(R, width_from, strategy="ucb", beta=0.0) == (1, 3)
    assert choose_pair(R, width_from, strategy="ucb", beta=0.4) == (1, 4)
    assert choose_pair(R, width_from, strategy="ucb", beta=1.0) == (1, 2)


def test_random_is_two_distinct_uniform_and_seeded():
    rng = np.random.default_rng(0)
    seen = {choose_pair(R, None, strategy="random", rng=rng) for _ in range(2000)}
    assert all(i != j for i, j in seen)
    assert len(seen) == 8 * 7                                # every ordered pair occurs
    a = [choose_pair(R, None, strategy="random", rng=np.random.default_rng(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]


def test_choose_pair_refuses_bad_arguments():
    with pytest.raises(InvalidInputError, match="unknown strategy"):
        choose_pair(R, None, strategy="best")
    with pytest.raises(InvalidInputError):
        choose_pair(np.array([1.0]), None, strategy="best_second")
    with pytest.raises(InvalidInputError):
        choose_pair(R, None, strategy="ucb")
    assert set(STRATEGIES) == {"ucb", "best_quantile", "best_second", "best_worst", "random"}


def test_paper_beta_and_pessimism():
    assert paper_beta(384, 0, delta=0.05) == pytest.approx(math.sqrt(384) * math.log(20))
    assert paper_beta(384, 99, delta=0.1) == pytest.approx(math.sqrt(384) * math.log(1000))
    with pytest.raises(InvalidInputError):
        paper_beta(384, 1, delta=1.5)
    np.testing.assert_allclose(pessimistic_scores([1.0, 2.0], [0.5, 3.0], 0.5), [0.75, 0.5])


def test_personalizer_pair_to_show_matches_the_ucb_definition(head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u", beta=0.7)
    prompt = "explain recursion"
    responses = ["a function that calls itself", "recursion recursion recursion",
                 "see the code below def f n return f n 1", "it is like a loop",
                 "a base case and a recursive case", "turtles all the way down"]
    for a, b in [(2, 3), (4, 1), (2, 5)]:
        p.prefer(prompt, responses[a], responses[b])
    phi = head.features(prompt, responses)
    m = p.model
    r = m.reward(phi)
    best = int(np.argmax(r))
    ucb = r + 2 * 0.7 * m.width(phi, phi[best])
    ucb[best] = -np.inf
    assert p.pair_to_show(prompt, responses, strategy="ucb") == (best, int(np.argmax(ucb)))
    order = np.argsort(-r)
    assert p.pair_to_show(prompt, responses, strategy="best_second") == (order[0], order[1])
    assert p.pair_to_show(prompt, responses, strategy="best_worst") == (order[0], order[-1])
    assert p.pair_to_show(prompt, responses, strategy="best_quantile", q=2) == (order[0], order[2])


def test_greedy_queries_are_not_redundant_and_match_brute_force():
    rng = np.random.default_rng(1)
    d = 6
    m = RewardModel(d, dtype="float64", solver="exact")
    z_big = np.zeros(d)
    z_big[0] = 6.0
    Z = np.vstack([z_big, z_big, z_big, rng.normal(size=(5, d))])
    picked = [j for j, _ in greedy_queries(m, Z, 3)]
    assert picked[0] == 0 and 1 not in picked and 2 not in picked   # copies lose their width
    assert [j for j, _ in greedy_queries(m, Z, 8)][:3] != [0, 1, 2]
    m.learn_pair(rng.normal(size=d), rng.normal(size=d))
    picked = [j for j, _ in greedy_queries(m, Z, 4)]
    # brute force: recompute every width from scratch on a copy after each fantasised label
    ref, taken = m.copy(), []
    for _ in range(4):
        w = ref.width(Z)
        w[taken] = -np.inf
        taken.append(int(np.argmax(w)))
        ref.fantasize(Z[taken[-1]])
    assert picked == taken
    assert m.t == 1 and m.width(Z[:1])[0] > 1.0         # the caller's model did not move
    assert greedy_queries(m, np.zeros((3, d)), 2) == []   # zero-width pairs are never asked


def _active_vs_random(seed, k=30, d=16, M=300):
    # An anisotropic pool: most pairs differ only along 3 directions, 10% along all of them.
    rng = np.random.default_rng(seed)
    theta_star = rng.normal(size=d)
    theta_star *= 4.0 / np.linalg.norm(theta_star)
    scales = np.full(d, 0.05)
    scales[:3] = 1.0
    Z = rng.normal(size=(M, d)) * scales
    rare = rng.choice(M, M // 10, replace=False)
    Z[rare] = rng.normal(size=(rare.size, d))
    Z_test = rng.normal(size=(2000, d))
    acc = {}
    for name in ("active", "random"):
        m = RewardModel(d, dtype="float64", solver="exact")
        idx = ([j for j, _ in greedy_queries(m, Z, k)] if name == "active"
               else rng.choice(M, k, replace=False))
        labels = np.random.default_rng(seed + 1000)
        for j in idx:
            y = float(labels.random() < 1.0 / (1.0 + np.exp(-Z[j] @ theta_star)))
            m.learn_one(Z[j], y)
        acc[name] = float(np.mean(np.sign(m.reward(Z_test)) == np.sign(Z_test @ theta_star)))
    return acc


def test_active_selection_beats_random_selection_on_a_synthetic_pool():
    runs = [_active_vs_random(seed) for seed in range(6)]
    active = np.array([r["active"] for r in runs])
    rand = np.array([r["random"] for r in runs])
    assert active.mean() > rand.mean() + 0.08, (active, rand)
    assert (active > rand).sum() >= 5, (active, rand)


def test_personalizer_queries_to_ask(head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u")
    pool = [("p", ["alpha beta", "gamma delta"]), ("p", ["alpha beta", "gamma delta"]),
            ("p", ["epsilon", "zeta"]), ("p", ["same", "same"])]
    qs = p.queries_to_ask(pool, 3)
    assert [(q.item, q.first, q.second) for q in qs[:2]] == [(0, 0, 1), (2, 0, 1)]
    assert all(q.item != 3 for q in qs)                    # identical responses: nothing to learn
    assert qs[0].width > qs[1].width > 0
    # best_worst: one pair per item, its reward-best vs reward-worst
    trio = [("q", ["short code answer", "long prose answer", "medium answer"])]
    p.prefer("q", "short code answer", "long prose answer")
    (q,) = p.queries_to_ask(trio, 1, strategy="best_worst")
    r = p.score("q", trio[0][1])
    assert (q.first, q.second) == (int(np.argmax(r)), int(np.argmin(r)))
    assert p.updates == 1                                  # selecting learns nothing
    with pytest.raises(InvalidInputError):
        p.queries_to_ask(pool, 1, strategy="entropy")
    with pytest.raises(InvalidInputError):
        p.queries_to_ask([("p", ["only one"])], 1)


def test_greedy_queries_go_on_when_a_fantasize_is_refused():
    """A float32 exact model with a tiny lam cannot hold the curvature of a unit row next to
    lam (fantasize raises NumericalError, the model unchanged): the selection still returns its
    k picks, by the widths of the unchanged copy, and the caller's model does not move."""
    from edge_omd.errors import NumericalError
    m = RewardModel(4, solver="exact", dtype="float64", lam=1e-9).astype("float32")
    with pytest.raises(NumericalError):
        m.copy().fantasize(np.eye(4)[0])
    before = m.to_bytes()
    picks = greedy_queries(m, np.eye(4) * [1.0, 0.9, 0.8, 0.7], 3)
    assert [j for j, _ in picks] == [0, 1, 2]
    assert m.to_bytes() == before


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
