"""Solver.start(theta0, c, V, sign): a population prior's start, cal_H_0 = (lam + c) I + sign V^T V
with sign = +1 or -1 (a pack may subtract a part the population holds that a user may not), against
the dense float64 twin (tests/naive.py) for every solver and dtype: where each starts (exact and
cg hold cal_H_0 exactly, the diagonal its diagonal, the sketch no negative part), Algorithm 1 from
there in lockstep, the refusals (nothing changed), and a started state is an ordinary one."""
import math

import numpy as np
import pytest

from edge_omd import RewardModel
from tests import solvers
from tests.naive import NaiveOMD
from tests.runtime.check_solver import NAIVE_RTOL
from tests.runtime.streams import feed, mixed_stream

D, LAM, C = 9, 0.5, 2.0
#: cal_H_0 entries are rounded to the dtype once: matvecs agree to a few eps of the dtype
START_RTOL = {"float64": 1e-12, "float32": 1e-6}


def _start(sign, r=3, seed=0, top=0.9):
    """(theta0, c, V): with sign = -1, V^T V's largest eigenvalue is top * c (<= c, as start
    requires)."""
    rng = np.random.default_rng(seed)
    theta0 = rng.normal(size=D) * 0.1
    V = rng.normal(size=(r, D))
    if sign < 0:
        V *= math.sqrt(top * C / np.linalg.eigvalsh(V @ V.T)[-1])
    return theta0, C, V


def _model(solver, dtype, **kw):
    return solvers.make(solver, D, rank=4, dtype=dtype, lam=LAM, **kw)


def _naive(m, start):
    h = m.hyperparameters
    return NaiveOMD(m.dim, solver=m.solver, rank=m.sketch_rank, eta=h["eta"], lam=h["lam"],
                    radius=h["radius"], forget=h["forget"], cg_steps=h["cg_steps"],
                    lam_warmup=h["lam_warmup"], cg_tol=h["cg_tol"], start=start)


CASES = [(s, dt, sign) for s, dt in solvers.grid() for sign in (1.0, -1.0)
         if not (s == "sketch" and sign < 0)]


@pytest.mark.parametrize("solver,dtype,sign", CASES)
def test_each_solver_holds_the_signed_start(solver, dtype, sign):
    m = _model(solver, dtype)
    theta0, c, V = _start(sign)
    assert m._solver.start(theta0, c, V, sign) is None
    np.testing.assert_array_equal(m.theta, theta0.astype(dtype))
    naive = _naive(m, (theta0, c, V, sign))
    H = naive.cal_H()   # the diagonal's twin holds the diagonal only, the sketch's its rows
    tol = START_RTOL[dtype]
    for v in np.eye(D):
        np.testing.assert_allclose(m._solver.matvec(v.copy()), H @ v, rtol=tol,
                                   atol=tol * np.abs(H).max())
    if sign < 0:  # the loaders' floor holds: cal_H_0 >= lam I
        assert np.linalg.eigvalsh(H)[0] >= LAM * (1 - 1e-12)
    W = np.random.default_rng(1).normal(size=(5, D))
    np.testing.assert_allclose(m.width(W), naive.width(W), rtol=10 * tol)
    b = m.to_bytes()
    assert RewardModel.from_bytes(b).to_bytes() == b  # an ordinary state: the loader accepts it


@pytest.mark.parametrize("setting", ["plain", "tuned"])
@pytest.mark.parametrize("solver,dtype,sign", CASES)
def test_algorithm1_from_a_signed_start_matches_the_twin(solver, dtype, sign, setting):
    m = _model(solver, dtype, **{k: v for k, v in solvers.SETTINGS[setting](solver).items()
                                 if k != "lam"})
    start = _start(sign, seed=2)
    assert m._solver.start(*start, sign) is None
    naive = _naive(m, start + (sign,))
    rtol = NAIVE_RTOL[dtype]
    for t, (kind, args, w) in enumerate(mixed_stream(D, 40, seed=3, scale=3.0)):
        feed(m, kind, args, w)
        y = float(args[1]) if kind == "one" else (1.0 if kind == "pair" or args[1] else 0.0)
        naive.learn_one(m._observation.astype(np.float64), y, w)
        err = np.linalg.norm(m.theta - naive.theta) / max(1.0, np.linalg.norm(naive.theta))
        assert err <= rtol, f"step {t}: relative theta error {err:.2e} > {rtol:g}"


@pytest.mark.parametrize("solver,dtype", solvers.grid())
def test_refused_starts_change_nothing(solver, dtype):
    m = _model(solver, dtype)
    feed(m, "pair", (np.ones(D) / 3, np.zeros(D)), 1.0)
    before = m.to_bytes()
    theta0, c, V = _start(-1.0, top=1.5)          # V^T V reaches 1.5 c: below lam I
    why = m._solver.start(theta0, c, V, -1.0)
    assert "negative" in why, why
    assert m._solver.start(theta0, c, V, 0.5).startswith("sign must be")
    assert m.to_bytes() == before


def test_a_negative_part_at_exactly_c_starts_at_the_floor():
    """lambda_max(V^T V) = c up to rounding: accepted, and the exact factor's diagonal keeps
    the loaders' floor sqrt(lam) (pivots floored)."""
    m = _model("exact", "float32")
    theta0, c, V = _start(-1.0, r=D, top=1.0)
    assert m._solver.start(theta0, c, V, -1.0) is None
    assert (np.diagonal(m._solver.state.U) >= np.float32(math.sqrt(LAM)) * (1 - 2e-7)).all()
    b = m.to_bytes()
    assert RewardModel.from_bytes(b).to_bytes() == b
