"""Every solver against the naive float64 twin of Algorithm 1, step by step."""
import numpy as np
import pytest

from edge_omd import RewardModel
from tests.naive import NaiveOMD
from tests.runtime.streams import feed, feed_naive, mixed_stream

D, T = 10, 240


def _pair(solver, **kw):
    model = RewardModel(D, dtype="float64", solver=solver, **kw)
    naive = NaiveOMD(D, solver=solver, rank=model.rank, eta=kw.get("eta", 1.0), lam=kw.get("lam", 1.0),
                     radius=kw.get("radius"), forget=kw.get("forget", 1.0),
                     cg_steps=kw.get("cg_steps", 3), lam_warmup=kw.get("lam_warmup", 0),
                     cg_tol=kw.get("cg_tol", 1e-6))
    return model, naive


def _assert_close(model, naive, t, rtol):
    scale = max(1.0, np.linalg.norm(naive.theta))
    err = np.linalg.norm(model.theta - naive.theta) / scale
    assert err <= rtol, f"step {t}: relative theta error {err:.2e} > {rtol:g}"


CASES = [
    ("exact", {}),
    ("exact", dict(eta=2.0, lam=0.5)),
    ("exact", dict(radius=0.6)),
    ("cg", dict(cg_steps=3, lam_warmup=50, lam=2.0)),
    ("cg", dict(cg_steps=D, cg_tol=1e-12, forget=0.97)),
    ("cg", dict(radius=0.6)),
    ("cg", dict(cg_steps=2, lam_warmup=30, radius=0.4)),
    ("sketch", dict(sketch_rank=3)),
    ("sketch", dict(sketch_rank=4, forget=0.95, radius=0.8)),
    ("sketch", dict(sketch_rank=D)),
    ("diagonal", {}),
    ("diagonal", dict(forget=0.9, radius=0.5)),
]


@pytest.mark.parametrize("solver,kw", CASES, ids=[f"{s}-{i}" for i, (s, _) in enumerate(CASES)])
def test_matches_naive_every_step(solver, kw):
    model, naive = _pair(solver, **kw)
    for t, (kind, args, w) in enumerate(mixed_stream(D, T, seed=len(kw) + 7, scale=3.0)):
        feed(model, kind, args, w)
        feed_naive(naive, kind, args, w)
        _assert_close(model, naive, t, 1e-6)
    V = np.random.default_rng(1).normal(size=(6, D))
    np.testing.assert_allclose(model.width(V), naive.width(V), rtol=1e-6)
    np.testing.assert_allclose(model.reward(V), V @ naive.theta, rtol=1e-6, atol=1e-9)
    if kw.get("radius"):
        assert np.linalg.norm(model.theta) <= kw["radius"] * (1 + 1e-9)


def test_exact_long_stream_float64():
    """The issue's acceptance check: exact, unlimited budget, no projection, 1e-6 relative."""
    model, naive = _pair("exact")
    for t, (kind, args, w) in enumerate(mixed_stream(D, 2000, seed=3, scale=8.0)):
        feed(model, kind, args, w)
        feed_naive(naive, kind, args, w)
    _assert_close(model, naive, 2000, 1e-6)


@pytest.mark.parametrize("solver", ["exact", "sketch", "diagonal", "cg"])
def test_float32_tracks_float64(solver):
    m32 = RewardModel(D, dtype="float32", solver=solver, sketch_rank=4 if solver == "sketch" else None)
    m64 = RewardModel(D, dtype="float64", solver=solver, sketch_rank=4 if solver == "sketch" else None)
    for kind, args, w in mixed_stream(D, 600, seed=11, scale=3.0):
        feed(m32, kind, args, w)
        feed(m64, kind, args, w)
    err = np.linalg.norm(m32.theta - m64.theta) / np.linalg.norm(m64.theta)
    assert err < 1e-3


def test_sketch_with_full_rank_equals_exact():
    """Rank ell >= d loses nothing (delta = 0): the sketch is then an exact solver."""
    exact = RewardModel(D, dtype="float64", solver="exact")
    sk = RewardModel(D, dtype="float64", solver="sketch", sketch_rank=D)
    for kind, args, w in mixed_stream(D, 300, seed=5):
        feed(exact, kind, args, w)
        feed(sk, kind, args, w)
    np.testing.assert_allclose(sk.theta, exact.theta, rtol=1e-7, atol=1e-10)


def test_fantasize_adds_curvature_only():
    m = RewardModel(D, dtype="float64", solver="exact")
    for kind, args, w in mixed_stream(D, 30, seed=2):
        feed(m, kind, args, w)
    z = np.ones(D) / np.sqrt(D)
    theta, t, before = m.theta, m.t, m.width(z)[0]
    m.fantasize(z)
    assert m.t == t
    np.testing.assert_array_equal(m.theta, theta)
    assert m.width(z)[0] < before


def test_learns_a_bradley_terry_direction_with_defaults():
    """Defaults work on L2-normalised features: held-out accuracy close to the Bayes rate."""
    from tests.runtime.streams import bt_pairs
    d = 16
    theta_star, C, R = bt_pairs(d, 2000, norm=3.0, seed=0)
    m = RewardModel(d)
    for c, r in zip(C, R):
        m.learn_pair(c, r)
    _, C2, R2 = bt_pairs(d, 3000, norm=3.0, seed=1)
    truth = (C2 - R2) @ theta_star > 0
    pred = (C2 - R2) @ m.theta > 0
    assert (truth == pred).mean() > 0.9
    assert np.dot(m.theta, theta_star) / np.linalg.norm(m.theta) / 3.0 > 0.9
