"""fit_population (issue 19, items 1 and 5): exact merges (a sharded fit in two processes gives
the same pack bytes as one process), the per-user deviation solve against a naive d-dimensional
Newton, theta_pop at the optimum of its objective, and directions found where users deviate."""
import numpy as np
import pytest

from edge_omd.population.data import ArrayShard, make_user, terms
from edge_omd.population.fit import Settings, deviation, fit_population
from edge_omd.population.sums import ExactScalar, FixedSum

D = 8
SMALL = Settings(K=2, ks=(0, 2), lams=(0.1, 1.0), rhos=(1.0,), firm=(1.0, 10.0), weak=(10.0,),
                 dtype="float64")


def _population(n=60, d=D, spread=2.0, seed=0):
    """Users theta_pop + spread * (a, b) @ Q: binary thumbs and one 3-way choice each."""
    rng = np.random.default_rng(seed)
    tp = rng.normal(size=d)
    Q = np.linalg.qr(rng.normal(size=(d, 2)))[0].T
    users = []
    for u in range(n):
        th = tp + spread * rng.normal(size=2) @ Q
        obs = []
        for _ in range(20):
            z = rng.normal(size=d) / np.sqrt(d)
            obs.append((z, float(rng.random() < 1 / (1 + np.exp(-th @ z)))))
        P = rng.normal(size=(3, d)) / np.sqrt(d)
        p = np.exp(P @ th)
        obs.append((P, int(rng.choice(3, p=p / p.sum()))))
        users.append(make_user(f"user-{u}", obs))
    return users, tp, Q


def test_fixed_sums_merge_to_the_same_bits_in_any_grouping():
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(3, 3)) * 10.0 ** rng.integers(-8, 4) for _ in range(50)]
    one = FixedSum((3, 3), 40)
    for x in xs:
        one.add(x)
    parts = [FixedSum((3, 3), 40) for _ in range(3)]
    for i in rng.permutation(50):
        parts[i % 3].add(xs[i])
    merged = parts[2].merge(parts[0]).merge(parts[1])
    assert merged == one and merged.value().tobytes() == one.value().tobytes()
    np.testing.assert_allclose(one.value(), np.sum(xs, axis=0), atol=50 * 2.0 ** -40)
    a, b = ExactScalar(), ExactScalar()
    for x in (0.1, 1e20, -1e20, 0.2):
        a.add(x)
    for x in (0.2, -1e20, 0.1, 1e20):
        b.add(x)
    assert a == b and a.value() == 0.30000000000000004
    with pytest.raises(ValueError, match="scale"):
        FixedSum((1,), 40).add(np.array([1e10]))


def test_a_sharded_fit_in_two_processes_gives_the_same_pack_bytes():
    users, _, _ = _population()
    one = fit_population([ArrayShard(users)], d=D, settings=SMALL, pack_id="t")
    order = np.random.default_rng(3).permutation(len(users))
    shards = [ArrayShard([users[i] for i in order[:23]]), ArrayShard([users[i] for i in order[23:]])]
    two = fit_population(shards, d=D, settings=SMALL, pack_id="t", workers=2)
    assert two.to_bytes() == one.to_bytes() and two.digest == one.digest
    assert one.fit["users"] == 60 and one.fit["held_out_users"] > 0


def _naive_deviation(u, theta, rho):
    """argmin L_u(theta + delta) + rho/2 ||delta||^2 by Newton in d dimensions."""
    delta = np.zeros(len(theta))
    for _ in range(100):
        _l, gm, diag, blocks = terms(u, theta + delta)
        D_ = np.diag(diag)
        for a, b, B in blocks:
            D_[a:b, a:b] = B
        g = u.Z.T @ gm + rho * delta
        H = u.Z.T @ D_ @ u.Z + rho * np.eye(len(theta))
        step = np.linalg.solve(H, g)
        delta -= step
        if np.abs(step).max() < 1e-14:
            break
    return delta


@pytest.mark.parametrize("rho", [0.3, 10.0])
def test_the_row_space_deviation_equals_the_naive_newton(rho):
    users, tp, _ = _population(n=3)
    for u in users:
        np.testing.assert_allclose(deviation(u, tp, rho), _naive_deviation(u, tp, rho),
                                   rtol=1e-9, atol=1e-11)


def test_theta_pop_is_the_optimum_and_the_directions_are_found():
    users, tp, Q = _population(n=120, spread=3.0)
    st = Settings(K=2, ks=(0, 2), lams=(0.1,), rhos=(1.0,), firm=(1.0, 10.0, 100.0),
                  weak=(10.0, 100.0), dtype="float64")
    pack = fit_population([ArrayShard(users)], d=D, settings=st)
    lam = pack.fit["lam_pop"]
    g = lam * pack.theta0
    for u in users:
        _l, gm, _d, _b = terms(u, pack.theta0)
        g += u.Z.T @ gm
    assert np.abs(g).max() < 1e-6 * len(users)                  # the objective's gradient
    assert pack.K == 2 and pack.fit["held_out_prequential"] < pack.fit["held_out_population"]
    # the pack's weak subspace is the users' deviation subspace
    P = pack.V.T @ np.linalg.pinv(pack.V.T)                     # projector on V's rows
    assert np.linalg.norm(P @ Q.T) / np.linalg.norm(Q) > 0.85


def test_item_groups_are_held_out_together_and_the_fit_records_it():
    from edge_omd.population.data import held_groups, text_group
    from edge_omd.population.fit import prequential
    from edge_omd import RewardModel
    g = np.array([text_group(f"prompt {i % 40}") for i in range(400)], np.int64)
    held = held_groups(g, seed=3, share=0.3)
    # one verdict per group, whoever holds it, and about the share of the groups
    for k in range(40):
        assert len(set(held[k::40])) == 1
    assert 0.15 < held[:40].mean() < 0.45
    assert not held_groups(g, 3, 0.0).any()
    users, _, _ = _population(n=3)
    u = users[0]
    keep = np.arange(u.n) % 3 != 1
    sub = u.take(keep)
    assert sub.n == keep.sum() and np.array_equal(sub.y, u.y[keep])
    for j_sub, j in enumerate(np.flatnonzero(keep)):
        np.testing.assert_array_equal(sub.Z[sub.obs[j_sub]:sub.obs[j_sub + 1]],
                                      u.Z[u.obs[j]:u.obs[j + 1]])
    # the prequential loss counts only the scored observations, the model learns all of them
    full = RewardModel(D, dtype="float64")
    part = RewardModel(D, dtype="float64")
    a = prequential(full, u)
    b = prequential(part, u, keep)
    assert full.to_bytes() == part.to_bytes() and 0 < b < a
    pack = fit_population([ArrayShard(_population()[0])], d=D, settings=SMALL)
    assert pack.fit["item_share"] == 0.3 and pack.fit["held_out_item_observations"] > 0


def _thumb_population(bare: bool, n=80, d=D, seed=0):
    """Items that share a mean feature (as a head's embeddings of one topic do), voted up 85 %
    of the time, ranked by a direction w orthogonal to that mean: bare thumbs (z = phi)."""
    rng = np.random.default_rng(seed)
    m = np.zeros(d)
    m[0] = 1.0
    w = np.zeros(d)
    w[1] = 1.0
    items = m + 0.3 * rng.normal(size=(40, d))
    users = []
    for u in range(n):
        idx = rng.integers(40, size=15)
        p = 1 / (1 + np.exp(-(2.5 + 3.0 * items[idx] @ w)))
        obs = [(items[i], float(rng.random() < q)) for i, q in zip(idx, p)]
        users.append(make_user(f"user-{u}", obs, [int(i) for i in idx],
                               [True] * len(obs) if bare else None))
    return users, items, w


def test_bare_thumbs_fit_theta_pop_with_their_intercept():
    """theta_pop of bare thumbs is the optimum of the loss WITH an unpenalised intercept (the
    population model's), so their share of ups does not lean theta_pop along the items' mean
    feature: theta_pop ranks by what tells items apart. Without the bare marks: no intercept."""
    st = Settings(K=0, ks=(0,), lams=(30.0,), rhos=(1.0,), firm=(10.0,), weak=(10.0,),
                  dtype="float64", item_share=0.0)
    users, items, w = _thumb_population(bare=True)
    pack = fit_population([ArrayShard(users)], d=D, settings=st)
    b = pack.fit["intercept"]
    assert b is not None and b > 1.0
    g, gb = 30.0 * pack.theta0, 0.0
    for u in users:
        _l, gm, _d, _b = terms(u.with_intercept(), np.r_[pack.theta0, b])
        g += u.Z.T @ gm
        gb += gm.sum()
    assert np.abs(g).max() < 1e-6 * len(users) and abs(gb) < 1e-6 * len(users)
    cos = float(pack.theta0 @ w) / np.linalg.norm(pack.theta0)
    unmarked = fit_population([ArrayShard(_thumb_population(bare=False)[0])], d=D, settings=st)
    assert "intercept" not in unmarked.fit
    cos_without = float(unmarked.theta0 @ w) / np.linalg.norm(unmarked.theta0)
    assert cos > 0.9 and cos_without < 0.5


def test_bare_marks_are_checked():
    from edge_omd.errors import InvalidInputError
    z = np.ones(D)
    assert make_user("a", [(z, 1.0), (z, 0.0)], bare=[True, False]).bare.tolist() == [True, False]
    with pytest.raises(InvalidInputError, match="one bool per observation"):
        make_user("a", [(z, 1.0)], bare=[True, False])
    with pytest.raises(InvalidInputError, match="one bool per observation"):
        make_user("a", [(z, 1.0)], bare=[1])
    with pytest.raises(InvalidInputError, match="not a choice"):
        make_user("a", [(np.ones((2, D)), 1)], bare=[True])
    u = make_user("a", [(z, 1.0), (np.ones((2, D)), 1), (z, 0.0)], bare=[True, False, True])
    assert u.take(np.array([False, True, True])).bare.tolist() == [False, True]
    assert u.with_intercept().Z[:, -1].tolist() == [1.0, 0.0, 0.0, 1.0]
