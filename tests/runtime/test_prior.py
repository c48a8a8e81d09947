"""The population prior (edge_omd/prior.py): the fit (the minimiser of its stated objective, whose
Hessian is the start's cal_H_0), what strength does to an opposing user, where each solver x dtype
starts, Algorithm 1 from the prior against the naive float64 twin, the file format and every
refusal, reset."""
import dataclasses
import struct

import numpy as np
import pytest

from edge_omd import ConfigError, RewardModel, StateFormatError
from edge_omd import envelope, prior as prior_mod
from edge_omd.prior import Prior, fit_prior
from tests import solvers
from tests.naive import NaiveOMD, sigmoid
from tests.runtime.check_solver import NAIVE_RTOL, check_matches_naive

D = 10
FP_A, FP_B = bytes(range(32)), bytes(range(1, 33))


def _logistic_pairs(d, n, seed, scale=1.0):
    """Pairs z_i with P(the chosen one is first) = sigma(theta*.z_i): rows as chosen - rejected."""
    rng = np.random.default_rng(seed)
    theta_star = rng.normal(size=d) * scale
    X = rng.normal(size=(n, d)) / np.sqrt(d) * 2.0
    first = rng.uniform(size=n) < sigmoid(X @ theta_star)
    return theta_star, np.where(first[:, None], X, -X)


def _prior(d=D, rank=3, strength=4.0, seed=0, fingerprint=None, norm=None, lam=1.0):
    _theta, Z = _logistic_pairs(d, 400, seed)
    p = fit_prior(Z, rank=rank, strength=strength, lam=lam, fingerprint=fingerprint,
                  phi_mean=np.linspace(-1, 1, d))
    if norm is not None:  # a theta0 of this norm (inside a projection's ball)
        p = dataclasses.replace(p, theta0=p.theta0 * (norm / np.linalg.norm(p.theta0)))
    return p


def _naive_H(lam, p):
    """lam I + strength H_0 by the definition, dense float64."""
    return lam * np.eye(p.dim) + p.strength * (p.c * np.eye(p.dim) + p.V.T @ p.V)


# ------------------------------------------------------------------------------ the fit
def test_fit_recovers_a_known_theta_within_its_standard_error():
    theta_star, Z = _logistic_pairs(6, 20000, seed=1)
    p = fit_prior(Z, rank=6, strength=20000)          # worth all its pairs: ~ the MLE
    # the MLE's standard error at theta*: sqrt of the diagonal of the inverse Fisher information
    s = sigmoid(Z @ theta_star)
    se = np.sqrt(np.diag(np.linalg.inv((Z.T * (s * (1 - s))) @ Z)))
    assert (np.abs(p.theta0 - theta_star) <= 5 * se).all(), (p.theta0 - theta_star) / se
    assert p.n_pairs == 20000 and p.dim == 6


def _objective(Z, w, s, lam, theta):
    """The prior's objective s/W sum_i w_i log(1 + exp(-theta.z_i)) + lam/2 ||theta||^2, its
    gradient and Hessian, naively in float64 (a loop over the pairs)."""
    W = w.sum()
    f, g, H = 0.5 * lam * theta @ theta, lam * theta, lam * np.eye(len(theta))
    for wi, z in zip(w, Z):
        m = float(theta @ z)
        sg = 1.0 / (1.0 + np.exp(-m))
        f += s / W * wi * np.log1p(np.exp(-m))
        g = g - s / W * wi * (1.0 - sg) * z
        H = H + s / W * wi * sg * (1.0 - sg) * np.outer(z, z)
    return f, g, H


@pytest.mark.parametrize("strength,lam", [(3.0, 1.0), (40.0, 0.5), (0.2, 2.0)])
def test_theta0_minimises_the_stated_objective_and_cal_H0_is_its_hessian(strength, lam):
    """theta_0 = argmin s/W sum w_i loss_i + lam/2 ||theta||^2: the gradient is ~0 there, and
    lam I + s H_0 (rank = d: H_0 exactly) is that objective's Hessian at theta_0."""
    _theta, Z = _logistic_pairs(5, 300, seed=2)
    w = 0.5 + np.arange(300) % 4
    p = fit_prior(Z, strength=strength, lam=lam, rank=5, weights=w)
    assert p.strength == strength and p.lam == lam and p.c == 0.0   # rank = d: nothing left over
    _f, g, H = _objective(Z, w, strength, lam, p.theta0)
    assert np.abs(g).max() <= 1e-12 * max(1.0, strength)
    np.testing.assert_allclose(lam * np.eye(5) + strength * p.H0(), H, rtol=1e-10, atol=1e-13)
    # a minimum: any step away raises the objective
    f0 = _f
    for v in np.random.default_rng(1).normal(size=(5, 5)):
        assert _objective(Z, w, strength, lam, p.theta0 + 1e-3 * v)[0] > f0
    # the strength sets theta_0's length: more pairs' worth, a longer theta_0 (towards the MLE)
    assert np.linalg.norm(fit_prior(Z, strength=10 * strength, lam=lam, rank=0).theta0) > \
        np.linalg.norm(p.theta0)
    # strength 0: the cold start (theta_0 = 0, cal_H_0 = lam I)
    z = fit_prior(Z, strength=0.0, lam=lam, rank=5)
    assert not z.theta0.any() and z.strength == 0.0


def test_H0_low_rank_keeps_the_top_eigenvalues_and_the_trace():
    _theta, Z = _logistic_pairs(5, 300, seed=2)
    p = fit_prior(Z, rank=5, strength=4.0)
    s = sigmoid(Z @ p.theta0)
    H0 = sum(si * (1 - si) * np.outer(z, z) for si, z in zip(s, Z)) / 300
    np.testing.assert_allclose(p.H0(), H0, rtol=1e-9, atol=1e-12)
    # low rank: the top eigenvalues kept exactly, the rest replaced by their mean (trace kept)
    q = fit_prior(Z, rank=2, strength=4.0)
    e = np.linalg.eigvalsh(H0)[::-1]
    assert q.rank == 2 and q.c == pytest.approx(e[2:].mean(), rel=1e-9)
    np.testing.assert_allclose(np.linalg.eigvalsh(q.H0())[::-1][:2], e[:2], rtol=1e-9)
    assert np.trace(q.H0()) == pytest.approx(np.trace(H0), rel=1e-9)


def test_fit_converges_on_nearly_separable_pairs_with_a_small_ridge():
    """Far from 0 (||theta_0|| ~ 47): the line search keeps Newton monotone, then it converges."""
    _theta, Z = _logistic_pairs(4, 200, seed=5, scale=30.0)
    p = fit_prior(Z, rank=4, strength=2e5)      # lam / s = 5e-6: nearly the MLE
    _f, g, _H = _objective(Z, np.ones(200), 2e5, 1.0, p.theta0)
    assert np.linalg.norm(p.theta0) > 5 and np.abs(g).max() <= 1e-10 * 2e5


def test_fit_weights_equal_repeated_rows_and_fewer_pairs_than_dims():
    _theta, Z = _logistic_pairs(4, 50, seed=3)
    w = np.arange(1, 51) % 3 + 1.0
    a = fit_prior(Z, weights=w, rank=4)
    b = fit_prior(np.repeat(Z, w.astype(int), axis=0), rank=4)
    np.testing.assert_allclose(a.theta0, b.theta0, rtol=1e-8)
    np.testing.assert_allclose(a.H0(), b.H0(), rtol=1e-8, atol=1e-12)
    _theta, Z = _logistic_pairs(12, 5, seed=4)  # n < d: H_0 has rank <= 5
    p = fit_prior(Z, rank=8)
    s = sigmoid(Z @ p.theta0)
    H0 = (Z.T * (s * (1 - s))) @ Z / 5
    assert p.rank <= 5
    np.testing.assert_allclose(np.linalg.eigvalsh(p.H0())[::-1][:p.rank],
                               np.linalg.eigvalsh(H0)[::-1][:p.rank], rtol=1e-8)


@pytest.mark.parametrize("bad", [
    dict(Z=np.zeros((0, 3))), dict(Z=np.array([[np.nan, 1.0]])), dict(Z=np.zeros(3)),
    dict(Z=[["a"]]), dict(lam=0.0), dict(lam=2e9), dict(rank=-1),
    dict(weights=np.array([1.0, 0.0])), dict(l2=1.0), dict(strength=2e9), dict(strength=np.nan),
    dict(weights=np.ones(3)), dict(strength=-1.0), dict(fingerprint=b"short"),
    dict(phi_mean=np.ones(3))])
def test_fit_refuses_bad_arguments(bad):
    kw = dict(Z=np.ones((2, 2)))
    kw.update(bad)
    Z = kw.pop("Z")
    with pytest.raises((ConfigError, TypeError)):   # TypeError: l2 is gone (strength sets it)
        fit_prior(Z, **kw)


# ------------------------------------------------------------------------------ what strength does
def _accuracy(Z, theta):
    """Held-out pairwise accuracy of theta on rows z = preferred - other (a tie counts 1/2)."""
    m = Z @ theta
    return float(np.mean((m > 0) + 0.5 * (m == 0)))


def _opposing_catch_up(strength, d=6, n_pop=2000, stream=24, users=16):
    """Cold vs prior-started float64 learners of users whose taste opposes the population's:
    the mean held-out accuracy gap (prior - cold) after each of 0..stream own pairs."""
    rng = np.random.default_rng(21)
    theta_pop = rng.normal(size=d)
    theta_pop *= 3.0 / np.linalg.norm(theta_pop)

    def pairs(n, theta, seed):
        r = np.random.default_rng(seed)
        X = r.normal(size=(n, d)) / np.sqrt(d) * 2.0
        return np.where((r.uniform(size=n) < sigmoid(X @ theta))[:, None], X, -X)

    prior = fit_prior(pairs(n_pop, theta_pop, 1), strength=strength, rank=d)
    test = pairs(2000, -theta_pop, 2)                 # the user's taste: the opposite
    gap = np.zeros(stream + 1)
    for u in range(users):
        own = pairs(stream, -theta_pop, 100 + u)
        cold = RewardModel(d, dtype="float64", solver="exact")
        warm = RewardModel(d, dtype="float64", solver="exact", prior=prior)
        for k in range(stream + 1):
            gap[k] += _accuracy(test, warm.theta) - _accuracy(test, cold.theta)
            if k < stream:
                cold.learn_one(own[k], 1.0)
                warm.learn_one(own[k], 1.0)
    return gap / users


def test_an_opposing_user_catches_up_within_a_few_pairs_at_small_strength_only():
    """A prior worth s pairs holds a user who opposes the population back by about s pairs: at
    s = 1 the user is within 2.5 accuracy points of the cold start from 10 own pairs on; at
    s = 100 still 30 points behind after 24 (so the test can fail: before the strength set
    theta_0, every strength behaved like s = 100 here)."""
    small, large = _opposing_catch_up(1.0), _opposing_catch_up(100.0)
    assert small[0] < -0.2 and large[0] < -0.2          # both start on the population's side
    assert (small[10:] > -0.025).all(), small
    assert large[24] < -0.3, large


# ------------------------------------------------------------------------------ the start
@pytest.mark.parametrize("solver,dtype", solvers.grid())
def test_each_solver_starts_where_the_prior_says(solver, dtype):
    p = _prior(lam=0.5)
    m = solvers.make(solver, D, rank=4, dtype=dtype, lam=0.5, prior=p)
    assert m.t == 0 and m.prior is p
    np.testing.assert_array_equal(m.theta, p.theta0.astype(dtype))
    H = _naive_H(0.5, p)
    if solver == "diagonal":
        H = np.diag(np.diag(H))          # the diagonal holds the diagonal only
    tol = 1e-12 if dtype == "float64" else 1e-5
    V = np.random.default_rng(5).normal(size=(6, D))
    for v in V:
        got = m._solver.matvec(v.copy())
        np.testing.assert_allclose(got, H @ v, rtol=tol, atol=tol * np.abs(H).max())
    want = np.sqrt(np.einsum("nd,de,ne->n", V, np.linalg.inv(H), V))
    np.testing.assert_allclose(m.width(V), want, rtol=10 * tol)
    naive = NaiveOMD(D, solver=solver, rank=m.sketch_rank, lam=0.5, start=p.start())
    np.testing.assert_allclose(m.width(V), naive.width(V), rtol=10 * tol)
    # a started state is an ordinary one: saved, loaded (its checks pass), the same bytes
    b = m.to_bytes()
    assert RewardModel.from_bytes(b).to_bytes() == b


@pytest.mark.parametrize("dtype", solvers.DTYPES)
def test_sketch_keeps_the_top_rank_directions_and_drops_the_rest(dtype):
    p = _prior(rank=6)
    assert p.rank == 6
    m = RewardModel(D, solver="sketch", sketch_rank=2, dtype=dtype, prior=p)
    _u, sv, Vt = np.linalg.svd(np.sqrt(p.strength) * p.V, full_matrices=False)
    H = (1.0 + p.strength * p.c) * np.eye(D) + (Vt[:2].T * sv[:2] ** 2) @ Vt[:2]
    tol = 1e-12 if dtype == "float64" else 1e-5
    for v in np.eye(D):
        np.testing.assert_allclose(m._solver.matvec(v.copy()), H @ v, rtol=tol, atol=tol * 10)


#: the harness's settings, with theta0 inside their balls (radius 0.5 and 0.8)
SETTINGS = [(s, dt, setting) for s, dt in solvers.grid() for setting in solvers.SETTINGS]


@pytest.mark.parametrize("solver,dtype,setting", SETTINGS)
def test_updates_from_the_prior_match_the_naive_twin(solver, dtype, setting):
    lam = solvers.SETTINGS[setting](solver).get("lam", 1.0)
    p = _prior(norm=0.3, strength=6.0, lam=lam)
    factory = solvers.factory(solver, dtype, setting, D, prior=p)
    worst = check_matches_naive(factory, 45, seed=11)
    assert worst <= NAIVE_RTOL[dtype]


def test_a_prior_start_is_not_a_cold_start():
    """The naive twin fed from the prior is not the cold one: the check above can fail."""
    p = _prior(norm=0.3)
    m = RewardModel(D, dtype="float64", solver="exact", prior=p)
    cold = NaiveOMD(D)
    warm = NaiveOMD(D, start=p.start())
    z = np.random.default_rng(0).normal(size=D) / np.sqrt(D)
    for n in (cold, warm):
        n.learn_one(z, 1.0)
    m.learn_one(z, 1.0)
    assert np.abs(m.theta - warm.theta).max() <= 1e-12
    assert np.abs(m.theta - cold.theta).max() > 0.1


FORGETTING = [(s, dt) for s, dt in solvers.grid() if solvers.supports_forget(s)]


@pytest.mark.parametrize("solver,dtype", FORGETTING)
def test_forgetting_decays_the_prior_towards_lam_I(solver, dtype):
    """docs/ALGORITHM.md: with forget < 1 the prior's curvature is old evidence like any other;
    observations of negligible weight leave cal_H -> lam I (cg: lambda_t I)."""
    p = _prior(strength=50.0, lam=0.5)
    m = solvers.make(solver, D, rank=4, dtype=dtype, forget=0.8, lam=0.5, prior=p)
    v = np.random.default_rng(2).normal(size=D)
    before = m._solver.matvec(v.copy())
    assert np.linalg.norm(before - 0.5 * v) > 0.1 * np.linalg.norm(v)
    z = np.random.default_rng(3).normal(size=D) / np.sqrt(D)
    for _ in range(120):                        # 0.8^120 ~ 2.5e-12 of the prior is left
        m.learn_one(z, 0.5, weight=1e-9)
    np.testing.assert_allclose(m._solver.matvec(v.copy()), 0.5 * v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("solver,dtype", solvers.grid())
def test_reset_returns_to_the_prior_and_copy_keeps_it(solver, dtype):
    p = _prior()
    fresh = solvers.make(solver, D, dtype=dtype, prior=p)
    m = solvers.make(solver, D, dtype=dtype, prior=p)
    rng = np.random.default_rng(1)
    for _ in range(7):
        m.learn_pair(rng.normal(size=D) / 3, rng.normal(size=D) / 3)
    assert m.to_bytes() != fresh.to_bytes()
    c = m.copy()
    m.reset()
    assert m.to_bytes() == fresh.to_bytes()
    c.reset()
    assert c.to_bytes() == fresh.to_bytes()
    # a model loaded from bytes holds no prior: it resets to the cold start
    loaded = RewardModel.from_bytes(fresh.to_bytes())
    assert loaded.prior is None
    loaded.reset()
    assert loaded.to_bytes() == solvers.make(solver, D, dtype=dtype).to_bytes()


def test_the_model_is_checked_against_the_prior():
    p = _prior(fingerprint=FP_A)
    m = RewardModel(D, prior=p)
    assert m.head_fingerprint == FP_A       # an unbound model takes the prior's head
    assert RewardModel(D, prior=p, head_fingerprint=FP_A).head_fingerprint == FP_A
    with pytest.raises(ConfigError, match="head"):
        RewardModel(D, prior=p, head_fingerprint=FP_B)
    with pytest.raises(ConfigError, match="dim"):
        RewardModel(D + 1, prior=p)
    # theta0 minimises the objective of the prior's lam only: another lam is refused, with a fix
    with pytest.raises(ConfigError, match=r"lam = 1, the model has lam = 0.5.*lam=0.5"):
        RewardModel(D, prior=p, lam=0.5)
    assert RewardModel(D, prior=_prior(lam=0.5), lam=0.5).config.lam == 0.5
    with pytest.raises(ConfigError, match="radius"):
        RewardModel(D, prior=_prior(norm=2.0), radius=1.0)
    assert RewardModel(D, prior=_prior(norm=0.9), radius=1.0).theta.any()
    with pytest.raises(ConfigError, match="Prior"):
        RewardModel(D, prior=p.theta0)
    # a curvature float32 cannot hold next to lam (the solvers' precision guard): refused
    huge = dataclasses.replace(p, strength=1e9)
    with pytest.raises(ConfigError, match="float32"):
        RewardModel(D, prior=huge, dtype="float32", solver="diagonal")
    assert RewardModel(D, prior=huge, dtype="float64", solver="diagonal").t == 0
    # exact float32 also refuses a start its eps * kappa guard would refuse every update from
    one = Prior(p.theta0, 0.0, np.eye(D)[:1], strength=2e4)  # H_0 = e_0 e_0^T
    steep = one                                  # kappa = 1 + 2e4: eps * kappa ~ 2.4e-3 > 1e-3
    with pytest.raises(ConfigError, match="condition number"):
        RewardModel(D, prior=steep, dtype="float32", solver="exact")
    for solver, dtype in (("exact", "float64"), ("cg", "float32"), ("diagonal", "float32")):
        assert RewardModel(D, prior=steep, dtype=dtype, solver=solver).t == 0
    mild = dataclasses.replace(one, strength=2e3)  # eps * kappa ~ 2.4e-4: started, it learns
    m = RewardModel(D, prior=mild, dtype="float32", solver="exact")
    for i in range(70):                          # past the guard's first probe (t = 64)
        m.learn_one(np.eye(D)[i % D] * 0.3, float(i % 2))
    assert m.t == 70
    with pytest.raises(ConfigError):
        Prior(np.array([1.0, np.nan]), 0.0, np.zeros((0, 2)))
    with pytest.raises(ConfigError):
        Prior(np.ones(2), -1.0, np.zeros((0, 2)))
    with pytest.raises(ConfigError):
        Prior(np.ones(2), 0.0, np.zeros((3, 2)))     # rank > d
    with pytest.raises(ConfigError):
        Prior(np.ones(2), 0.0, np.zeros((1, 3)))     # V of another dim
    for bad in (dict(lam=0.0), dict(lam=np.inf), dict(strength=2e9), dict(strength=-1.0)):
        with pytest.raises(ConfigError):
            Prior(np.ones(2), 0.0, np.zeros((0, 2)), **bad)
    assert not hasattr(Prior, "scaled")          # one way to set the strength: the fit


def test_strength_zero_is_the_cold_start():
    p = _prior(strength=0.0)
    m = RewardModel(D, dtype="float64", solver="exact", prior=p)
    assert not m.theta.any()
    np.testing.assert_allclose(m.width(np.eye(D)), np.ones(D), rtol=1e-14)
    # a hand-built prior with strength 0: theta0 as given, cal_H = lam I
    q = dataclasses.replace(_prior(), strength=0.0)
    m = RewardModel(D, dtype="float64", solver="exact", prior=q)
    np.testing.assert_array_equal(m.theta, q.theta0)
    np.testing.assert_allclose(m.width(np.eye(D)), np.ones(D), rtol=1e-14)


# ------------------------------------------------------------------------------ the file
def test_round_trip(tmp_path):
    for p in (_prior(fingerprint=FP_A), _prior(rank=0, lam=0.25),
              Prior(np.ones(3), 0.5, np.ones((1, 3)))):
        b = p.to_bytes()
        q = Prior.from_bytes(b)
        assert q == p and q.to_bytes() == b
        for data in (bytearray(b), memoryview(b)):
            assert prior_mod.from_bytes(data) == p
        p.save(tmp_path / "p.prior")
        assert Prior.load(tmp_path / "p.prior") == p
        assert (tmp_path / "p.prior").read_bytes() == b
    assert p.nbytes == 8 * (3 + 3)
    for budget in (600, 1000, 5000):     # a prior of the rank a budget allows fits in it
        r = prior_mod.rank_for_budget(D, budget)
        assert len(_prior(rank=r, fingerprint=FP_A).to_bytes()) <= budget
        assert r == D or len(_prior(rank=r + 1, fingerprint=FP_A).to_bytes()) > budget - 96 - 8 * D
    assert prior_mod.rank_for_budget(D, 5000) == D
    with pytest.raises(ConfigError):
        prior_mod.rank_for_budget(D, 100)


def _resealed(b, header=None, body=None):
    """The bytes of b with its JSON header and / or body replaced, CRC recomputed."""
    _m, h, old = envelope.unpack_json(b, (prior_mod.MAGIC,), "t")
    h = dict(h, **(header or {}))
    return envelope.pack_json(prior_mod.MAGIC, h, bytes(old) if body is None else body)


def test_every_refusal_is_a_state_format_error():
    p = _prior(fingerprint=FP_A)
    b = p.to_bytes()
    body = np.frombuffer(envelope.unpack_json(b, (prior_mod.MAGIC,), "t")[2], np.float64)
    bad = {
        "magic": b"EOMDPRI2" + b[8:],
        "state": RewardModel(D).to_bytes(),
        "empty": b"",
        "crc": b[:-1] + bytes([b[-1] ^ 1]),
        "version": _resealed(b, {"format_version": 2}),
        "dim": _resealed(b, {"dim": D + 1}),
        "rank": _resealed(b, {"rank": p.rank + 1}),
        "rank > d": _resealed(b, {"dim": 1}),
        "c < 0": _resealed(b, {"c": -1.0}),
        "c as a string": _resealed(b, {"c": "1"}),
        "lam 0": _resealed(b, {"lam": 0.0}),
        "lam missing": _resealed(b, {"lam": None}),
        "strength too large": _resealed(b, {"strength": 2e9}),
        "n_pairs float": _resealed(b, {"n_pairs": 1.5}),
        "fingerprint": _resealed(b, {"head_fingerprint": "00" * 31}),
        "has_phi_mean": _resealed(b, {"has_phi_mean": 1}),
        "phi_mean missing": _resealed(b, {"has_phi_mean": False}),
        "nan": _resealed(b, body=np.where(np.arange(body.size) == 3, np.nan, body).tobytes()),
        "inf": _resealed(b, body=np.where(np.arange(body.size) == 0, np.inf, body).tobytes()),
    }
    for name, data in bad.items():
        with pytest.raises(StateFormatError):
            Prior.from_bytes(data)
        assert name
    for n in range(len(b)):                     # every truncation
        with pytest.raises(StateFormatError):
            Prior.from_bytes(b[:n])
    for i in range(0, len(b), 7):               # single-byte flips
        with pytest.raises(StateFormatError):
            Prior.from_bytes(b[:i] + bytes([b[i] ^ 0x40]) + b[i + 1:])
    with pytest.raises(StateFormatError):
        Prior.from_bytes("not bytes")
    assert struct.unpack_from("<I", b, 8)[0] < len(b)


def test_load_refuses_a_wrong_file(tmp_path):
    path = tmp_path / "x.prior"
    RewardModel(D).save(path)
    with pytest.raises(StateFormatError):
        prior_mod.load(path)
    with pytest.raises(OSError):
        prior_mod.load(tmp_path / "missing")
