"""Every solver against the naive float64 twin of Algorithm 1, step by step."""
import numpy as np
import pytest

from edge_omd import RewardModel
from tests import solvers
from tests.naive import NaiveOMD
from tests.runtime.check_solver import check_matches_naive
from tests.runtime.streams import feed, feed_naive, mixed_stream

D, T = 10, 240


def _pair(solver, **kw):
    model = RewardModel(D, dtype="float64", **solvers.options(solver, D, **kw))
    naive = NaiveOMD(D, solver=solver, rank=model.sketch_rank, eta=kw.get("eta", 1.0), lam=kw.get("lam", 1.0),
                     radius=kw.get("radius"), forget=kw.get("forget", 1.0),
                     cg_steps=kw.get("cg_steps", 3), lam_warmup=kw.get("lam_warmup", 0),
                     cg_tol=kw.get("cg_tol", 1e-6))
    return model, naive


def _assert_close(model, naive, t, rtol):
    scale = max(1.0, np.linalg.norm(naive.theta))
    err = np.linalg.norm(model.theta - naive.theta) / scale
    assert err <= rtol, f"step {t}: relative theta error {err:.2e} > {rtol:g}"


# Settings beyond the harness's plain / radius / tuned ones (tests/runtime/test_solver_checks.py),
# each over every solver of the registry: forgetting with CG run to convergence, a slow lambda_t
# warm-up with a small step, a full-rank sketch under a tight ball. `rank` only reaches ranked
# solvers; `forget` is dropped where the solver refuses it.
VARIANTS = [
    dict(forget=0.97, cg_steps=D, cg_tol=1e-12),
    dict(lam_warmup=50, lam=2.0, eta=0.5, cg_steps=3),
    dict(rank=D, radius=0.4, cg_steps=2, lam_warmup=30),
    dict(rank=3, forget=0.95, radius=0.8),
]
CASES = [(s, {k: v for k, v in kw.items() if k != "forget" or solvers.supports_forget(s)})
         for kw in VARIANTS for s in solvers.SOLVERS]


@pytest.mark.parametrize("solver,kw", CASES, ids=[f"{s}-{i}" for i, (s, _) in enumerate(CASES)])
def test_matches_naive_every_step(solver, kw):
    kw = dict(kw)
    rank = kw.pop("rank", None)
    opts = solvers.options(solver, D, rank=rank, dtype="float64", **kw)
    check_matches_naive(lambda: RewardModel(D, **opts), T, seed=len(kw) + 7)


def test_exact_long_stream_float64():
    """The issue's acceptance check: exact, unlimited budget, no projection, 1e-6 relative."""
    model, naive = _pair("exact")
    for t, (kind, args, w) in enumerate(mixed_stream(D, 2000, seed=3, scale=8.0)):
        feed(model, kind, args, w)
        feed_naive(naive, kind, args, w)
    _assert_close(model, naive, 2000, 1e-6)


@pytest.mark.parametrize("solver", solvers.SOLVERS)
def test_float32_tracks_float64(solver):
    m32 = solvers.make(solver, D, rank=4, dtype="float32")
    m64 = solvers.make(solver, D, rank=4, dtype="float64")
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
