"""The small kernels against numpy / the naive twins."""
import numpy as np
import pytest

from edge_omd import RewardModel, linalg
from edge_omd._numba import ensure_compiled
from edge_omd.solvers import exact, prior_start
from tests.naive import naive_cg

# Kernels called directly, without a RewardModel to compile them first.
for _dtype in (np.float32, np.float64):
    ensure_compiled(_dtype, "edge_omd.linalg", "edge_omd.solvers.exact")


def _spd(d, seed, cond=1e3):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (Q * np.geomspace(1, cond, d)) @ Q.T


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cg_converges_to_numpy_solve(dtype):
    d = 30
    A = _spd(d, 0, cond=50.0)
    z = np.random.default_rng(1).normal(size=d)
    b = np.random.default_rng(2).normal(size=d)
    S = (A - 0.5 * np.eye(d)).astype(dtype)  # solve (S + 0.5 I + 0.3 z z^T) x = b
    bufs = [np.zeros(d, dtype) for _ in range(4)]
    steps = linalg.cg_solve(S, 0.5, z.astype(dtype), 0.3, b.astype(dtype), *bufs, 10 * d, 1e-12 if dtype == np.float64 else 1e-6)
    ref = np.linalg.solve(A + 0.3 * np.outer(z, z), b)
    rtol = 1e-8 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(bufs[0], ref, rtol=rtol, atol=rtol * np.abs(ref).max())
    assert 1 <= steps <= 10 * d


def test_cg_fixed_steps_matches_textbook_and_stops_on_residual():
    d = 20
    A = _spd(d, 3, cond=1e4)
    b = np.random.default_rng(4).normal(size=d)
    z = np.zeros(d)
    for K in (1, 2, 3, 7):
        bufs = [np.zeros(d) for _ in range(4)]
        steps = linalg.cg_solve(A.copy(), 0.0, z, 0.0, b, *bufs, K, 0.0)
        assert steps == K
        np.testing.assert_allclose(bufs[0], naive_cg(A, b, K, 0.0), rtol=1e-10)
    # A multiple of the identity is solved in one step, then the residual test stops CG.
    bufs = [np.zeros(d) for _ in range(4)]
    assert linalg.cg_solve(np.zeros((d, d)), 2.0, z, 0.0, b, *bufs, 50, 1e-10) == 1
    np.testing.assert_allclose(bufs[0], b / 2.0)


def test_cholesky_update_and_solves():
    d = 25
    A = _spd(d, 5)
    U = np.linalg.cholesky(A).T.copy()
    x = np.random.default_rng(6).normal(size=d)
    linalg.chol_update_upper(U, x.copy(), np.zeros(3, U.dtype))
    A2 = A + np.outer(x, x)
    np.testing.assert_allclose(np.triu(U).T @ np.triu(U), A2, rtol=1e-10, atol=1e-10)
    assert (np.diag(U) > 0).all()
    b = np.random.default_rng(7).normal(size=d)
    u, v = np.zeros(d), np.zeros(d)
    q = linalg.solve_upper_t(U, b, u)
    exact._theta_from_phi(U, u, v)          # back substitution
    np.testing.assert_allclose(v, np.linalg.solve(A2, b), rtol=1e-9)
    phi = np.zeros(d)
    exact._phi_from_theta(U, v, phi)
    np.testing.assert_allclose(phi, u, rtol=1e-9)
    np.testing.assert_allclose(q, b @ np.linalg.solve(A2, b), rtol=1e-9)


def test_sigmoid_is_stable():
    assert linalg.sigmoid(800.0) == 1.0 and linalg.sigmoid(-800.0) == 0.0
    assert abs(linalg.sigmoid(0.3) - 1 / (1 + np.exp(-0.3))) < 1e-15
    assert linalg.dsigmoid(-800.0) == 0.0


@pytest.mark.parametrize("solver", ["exact", "cg", "sketch", "diagonal"])
def test_start_kernels_take_read_only_arrays(solver):
    """gram_eigen (and the other start kernels) name writable arrays, so Numba refused a
    read-only V (a Pack's, np.frombuffer's) with a raw TypeError. The fronts copy such an array:
    same numbers as for a writable one, and the caller's array is untouched."""
    rng = np.random.default_rng(0)
    V = rng.standard_normal((3, 6))
    ro = V.copy()
    ro.setflags(write=False)
    assert prior_start.low_rank_extremes(ro) == prior_start.low_rank_extremes(V)
    assert prior_start.low_rank_extremes(np.asfortranarray(V)) == prior_start.low_rank_extremes(V)
    theta0 = rng.standard_normal(6)
    th_ro = theta0.copy()
    th_ro.setflags(write=False)
    models = []
    for th, v in ((theta0, V), (th_ro, ro)):
        m = RewardModel(6, solver=solver, sketch_rank=4 if solver == "sketch" else None)
        assert m._solver.start(th, 0.5, v, 1.0) is None
        models.append(m)
    assert models[0].to_bytes() == models[1].to_bytes()
    assert np.array_equal(ro, V) and not ro.flags.writeable
