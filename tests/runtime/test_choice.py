"""Choose-one-of-k (RewardModel.learn_choice, edge_omd/solvers/mnl.py) over every solver x dtype
x setting of the registry: the naive dense twin step by step (tests/naive.py, NaiveOMD.choice),
k = 2 against learn_pair, the Hessian's k - 1 rows, replay, input refusals, constant memory."""
import math

import numpy as np
import pytest

from edge_omd import InvalidInputError, NumericalError, RewardModel
from edge_omd._numba import ensure_compiled
from edge_omd.solvers import mnl
from tests import solvers
from tests.naive import NaiveOMD
from tests.runtime import check_solver
from tests.runtime.streams import feed, mixed_stream

D = 7
SETTINGS = solvers.SETTINGS


def _factory(solver, dtype, setting, d=D, **over):
    return solvers.factory(solver, dtype, setting, d, **over)


def choice_stream(d, T, seed, scale=3.0):
    """('choice', (Phi, c), w) with k in 2..6 (duplicate rows sometimes, the chosen one drawn
    from the softmax of a hidden theta*), interleaved with the pair / thumb / one stream."""
    rng = np.random.default_rng(seed)
    theta_star = rng.normal(size=d) * scale
    other = mixed_stream(d, T, seed=seed + 1, scale=scale)
    for t in range(T):
        if t % 3 == 2:
            yield next(other)
            continue
        k = int(rng.integers(2, 7))
        Phi = rng.normal(size=(k, d)) / np.sqrt(d)
        if t % 5 == 0:
            Phi[k - 1] = Phi[0]  # a duplicate candidate
        s = Phi @ theta_star
        p = np.exp(s - s.max())
        c = int(rng.choice(k, p=p / p.sum()))
        w = 1.0 if t % 4 else float(rng.uniform(0.2, 3.0))
        yield "choice", (Phi, c), w


def _feed(m, kind, args, w):
    if kind == "choice":
        m.learn_choice(args[0], args[1], weight=w)
    else:
        feed(m, kind, args, w)


def _naive_of(m):
    h = m.hyperparameters
    return NaiveOMD(m.dim, solver=m.solver, rank=m.sketch_rank, eta=h["eta"], lam=h["lam"],
                    radius=h["radius"], forget=h["forget"], cg_steps=h["cg_steps"],
                    lam_warmup=h["lam_warmup"], cg_tol=h["cg_tol"])


def _naive_params():
    out = []
    for d, T in {7: 90, 40: 40}.items():
        marks = () if d <= 7 else (pytest.mark.jit,)
        for solver, dtype in solvers.grid():
            for setting in SETTINGS:
                out.append(pytest.param(solver, dtype, setting, d, T, marks=marks,
                                        id=f"{solver}-{dtype}-{setting}-d{d}"))
    return out


@pytest.mark.parametrize("solver,dtype,setting,d,T", _naive_params())
def test_matches_naive(solver, dtype, setting, d, T):
    """Step by step, theta within check_solver.NAIVE_RTOL of the dense float64 twin fed the
    same observations as the model used them (choices: Phi in the state's dtype), through
    the projection (radius), forgetting and the sketch's shrinks; widths at the end."""
    m = _factory(solver, dtype, setting, d)()
    naive = _naive_of(m)
    rtol = check_solver.NAIVE_RTOL[dtype]
    for t, (kind, args, w) in enumerate(choice_stream(d, T, seed=d)):
        if kind == "choice":
            Phi, c = args
            P = m._choice_input(Phi)
            m.learn_choice(Phi, c, weight=w)
            naive.choice(P.astype(np.float64), c, w)
        else:
            feed(m, kind, args, w)
            naive.learn_one(m._observation.astype(np.float64), check_solver._label(kind, args), w)
        err = np.linalg.norm(m.theta - naive.theta) / max(1.0, np.linalg.norm(naive.theta))
        assert err <= rtol, f"step {t} ({kind}): relative theta error {err:.2e} > {rtol:g}"
    V = check_solver._grid(d, 6, seed=d + 1)
    np.testing.assert_allclose(m.width(V), naive.width(V), rtol=10 * rtol)
    if m.hyperparameters["radius"] is not None:
        assert np.linalg.norm(m.theta) <= m.hyperparameters["radius"] * (1 + 10 * rtol)


#: k = 2 against the pair, float64: 1e-10 everywhere (step 3 of a choice takes the mode its
#: pair takes: M-mode Lanczos for exact / sketch, H mode for cg, and for the diagonal M mode
#: run to the precision of the pair's secular solve)
K2_RTOL = {"plain": 1e-10, "tuned-no-radius": 1e-10, "radius": 1e-10, "tuned": 1e-10}


@pytest.mark.parametrize("setting", K2_RTOL)
@pytest.mark.parametrize("solver", solvers.SOLVERS)
def test_k2_is_the_pair(solver, setting):
    """k = 2 through the one k-way code path agrees with learn_pair (float64), for either
    position of the chosen row, with forgetting, eta, lam, the cg settings and the projection."""
    over = dict(radius=None) if setting == "tuned-no-radius" else {}
    fac = _factory(solver, "float64", setting.replace("-no-radius", ""), **over)
    a, b = fac(), fac()
    rng = np.random.default_rng(5)
    for t in range(60):
        Phi = rng.normal(size=(2, D)) * (2.0 / np.sqrt(D))
        c, w = t % 2, (1.0 if t % 3 else 2.5)
        a.learn_choice(Phi, c, weight=w)
        b.learn_pair(Phi[c], Phi[1 - c], weight=w)
        err = np.linalg.norm(a.theta - b.theta) / max(1e-300, np.linalg.norm(b.theta))
        assert err <= K2_RTOL[setting], f"step {t}: {err:.2e}"
    V = rng.normal(size=(5, D))
    np.testing.assert_allclose(a.width(V), b.width(V), rtol=K2_RTOL[setting])
    assert a.t == b.t == 60


def test_hessian_rows():
    """mnl.weights: Lw Lw^T = w (diag(q) - q q^T) (numpy's Cholesky factor itself), and the
    k - 1 rows give the softmax Hessian of the full form; q and p_c are the softmax."""
    ensure_compiled(np.float64, mnl.__name__, group="choice")
    rng = np.random.default_rng(0)
    naive = NaiveOMD(6)
    for k in (2, 3, 5, 16):
        for scale in (0.1, 3.0, 30.0):
            Phi = rng.normal(size=(k, 6))
            theta = rng.normal(size=6) * scale / 3
            c, w = int(rng.integers(k)), 1.7
            Z = np.ascontiguousarray([Phi[c] - Phi[j] for j in range(k) if j != c])
            m, q, Lw = Z @ theta, np.empty(k - 1), np.zeros((k - 1, k - 1))
            pc = mnl.weights(m, w, q, Lw)
            g, H, p = naive.choice_grad_hess(Phi, c, w, theta)
            np.testing.assert_allclose(np.r_[pc, q], np.r_[p[c], np.delete(p, c)], rtol=1e-12,
                                       atol=1e-300)
            M = w * (np.diag(q) - np.outer(q, q))
            np.testing.assert_allclose(Lw @ Lw.T, M, rtol=1e-10, atol=1e-14 * w)
            if scale < 10:  # numpy's Cholesky is the same (unique) factor
                np.testing.assert_allclose(Lw, np.linalg.cholesky(M), rtol=1e-8, atol=1e-12)
            np.testing.assert_allclose(Z.T @ Lw @ Lw.T @ Z, H, rtol=1e-9, atol=1e-12 * w)
            np.testing.assert_allclose(-w * Z.T @ q, g, rtol=1e-9, atol=1e-12)
            X = np.empty_like(Z)
            mnl.rows(Lw, Z, 1.0, X)
            np.testing.assert_allclose(X.T @ X, H, rtol=1e-9, atol=1e-12 * w)


@pytest.mark.parametrize("solver,dtype", solvers.grid())
def test_replay_round_trip_and_memory(solver, dtype):
    """_learn_choice_observation(_choice_input(Phi)) rebuilds the live model bit for bit; a saved
    model continues like the original; nbytes = state_bytes and no array is added by choices."""
    live, twin = _factory(solver, dtype, "tuned")(), _factory(solver, dtype, "tuned")()
    held = check_solver._arrays(live)
    n0 = live.nbytes
    stream = list(choice_stream(D, 60, seed=3))
    for i, (kind, args, w) in enumerate(stream[:40]):
        _feed(live, kind, args, w)
        if kind == "choice":
            twin._learn_choice_observation(live._choice_input(args[0]), args[1], w)
        else:
            twin._learn_observation(live._observation, check_solver._label(kind, args), w)
        if i % 5 == 0:
            assert twin.to_bytes() == live.to_bytes(), f"replay differs after {i + 1}"
    assert twin.to_bytes() == live.to_bytes()
    loaded = RewardModel.from_bytes(live.to_bytes())
    for kind, args, w in stream[40:]:
        _feed(live, kind, args, w)
        _feed(loaded, kind, args, w)
    assert loaded.to_bytes() == live.to_bytes()
    assert live.nbytes == n0 == RewardModel.state_bytes(
        D, live.solver, dtype, sketch_rank=live.sketch_rank, radius=live.hyperparameters["radius"])
    assert check_solver._arrays(live).keys() == held.keys()


def _bad_calls(d):
    good = np.eye(3, d)
    nan, inf, huge = good.copy(), good.copy(), good.copy()
    nan[1, 0], inf[2, 1], huge[0, 0] = np.nan, np.inf, 1e300
    return {
        "k=1": lambda m: m.learn_choice(good[:1], 0),
        "k=17": lambda m: m.learn_choice(np.zeros((17, d)), 0),
        "1-D": lambda m: m.learn_choice(good[0], 0),
        "wrong d": lambda m: m.learn_choice(np.zeros((3, d + 1)), 0),
        "strings": lambda m: m.learn_choice(np.array([["a"] * d] * 3), 0),
        "nan": lambda m: m.learn_choice(nan, 0),
        "inf": lambda m: m.learn_choice(inf, 0),
        "1e300": lambda m: m.learn_choice(huge, 1),
        "chosen=3": lambda m: m.learn_choice(good, 3),
        "chosen=-1": lambda m: m.learn_choice(good, -1),
        "chosen=True": lambda m: m.learn_choice(good, True),
        "chosen=1.0": lambda m: m.learn_choice(good, 1.0),
        "weight=0": lambda m: m.learn_choice(good, 0, weight=0.0),
        "weight=nan": lambda m: m.learn_choice(good, 0, weight=math.nan),
        "replay float64 into float32": lambda m: m._learn_choice_observation(
            good.astype(np.float64 if m.dtype == "float32" else np.float32), 0),
        "replay nan": lambda m: m._learn_choice_observation(nan.astype(m.dtype), 0),
        "replay k=1": lambda m: m._learn_choice_observation(good[:1].astype(m.dtype), 0),
        "replay chosen=5": lambda m: m._learn_choice_observation(good.astype(m.dtype), 5),
    }


@pytest.mark.parametrize("solver,dtype", solvers.grid())
def test_bad_input_refused_state_unchanged(solver, dtype):
    m = _factory(solver, dtype, "radius")()
    for kind, args, w in choice_stream(D, 12, seed=4):
        _feed(m, kind, args, w)
    before, t = m.to_bytes(), m.t
    for name, call in _bad_calls(D).items():
        with pytest.raises(InvalidInputError):
            call(m)
        assert m.to_bytes() == before, f"{name} changed the state"
    # duplicates (even of the chosen row: a zero difference) and integer input are fine
    Phi = np.array([[1] * D, [1] * D, [0] * D], dtype=np.int64)
    m.learn_choice(Phi, 0)
    m.learn_choice(np.tile(np.eye(1, D), (4, 1)), 2)
    assert m.t == t + 2 and np.isfinite(m.theta).all()


@pytest.mark.parametrize("solver", ["exact", "cg"])
def test_precision_guard_refuses_state_unchanged(solver):
    """float32: a choice whose curvature would wipe out the state's precision next to lam (the
    pair's guard: exact's factor, cg's curvature sum) is refused with NumericalError and the
    state byte for byte as before; the model then still learns."""
    m = RewardModel(D, solver=solver, dtype="float32", eta=1e-6)
    rng = np.random.default_rng(1)
    before = m.to_bytes()
    with pytest.raises(NumericalError):
        m.learn_choice(np.clip(rng.normal(size=(4, D)), -1, 1) * 1e6, 1)
    assert m.to_bytes() == before and m.t == 0
    m.learn_choice(rng.normal(size=(4, D)) * 1e-3, 1)
    assert m.t == 1


@pytest.mark.parametrize("where", ["step", "projection", "absorb"])
@pytest.mark.parametrize("solver,dtype", solvers.grid())
def test_failure_after_the_step_rolls_back(solver, dtype, where, monkeypatch):
    """Whichever stage refuses (a non-finite step, projection or curvature: forced here, the
    kernels' guards are tested above and in check_solver), theta_t comes back exactly: the
    state is byte for byte as before and the model goes on like one that never saw it."""
    m, twin = _factory(solver, dtype, "radius")(), _factory(solver, dtype, "radius")()
    stream = list(choice_stream(D, 20, seed=6))
    for kind, args, w in stream[:10]:
        _feed(m, kind, args, w)
        _feed(twin, kind, args, w)
    before = m.to_bytes()
    cls = type(m._solver)
    if where == "step":
        real = cls.choice_step
        monkeypatch.setattr(cls, "choice_step", lambda self, cw, w, eta: (
            real(self, cw, w, eta) and False))
    elif where == "projection":
        monkeypatch.setattr(mnl, "project", lambda *a: -1)
    else:
        monkeypatch.setattr(cls, "choice_absorb", lambda self, cw, w: False)
    Phi = np.random.default_rng(7).normal(size=(4, D)) * 3.0  # leaves the ball: step 3 runs
    with pytest.raises(NumericalError):
        m.learn_choice(Phi, 2)
    assert m.to_bytes() == before
    monkeypatch.undo()
    for kind, args, w in stream[10:]:
        _feed(m, kind, args, w)
        _feed(twin, kind, args, w)
    assert m.to_bytes() == twin.to_bytes()


@pytest.mark.parametrize("solver", ["exact", "cg", "sketch", "diagonal"])
def test_choice_move_keeps_theta_within_the_limit(solver):
    """A loaded theta of 1e20, eta = w = 1e6, lam = 1e-9: a choice along (1, 1e6, 0, 0) moves
    theta_2 by ~1e27, finite in float32 but beyond linalg.THETA_LIMIT (3.1e26), so the loader
    would refuse the result. The sketch's and diagonal's choice move (mnl.move) checked
    finiteness only and took it; every solver now refuses (NumericalError, nothing changed),
    and a small choice afterwards is learned."""
    from edge_omd import state_format
    m = RewardModel(4, solver=solver, dtype="float64", lam=1e-9, eta=1e6,
                    sketch_rank=2 if solver == "sketch" else None).astype("float32")
    config, t, fp, arrays = state_format.decode(m.to_bytes())
    arrays = [np.array(a) for a in arrays]
    arrays[0][0] = 1e20
    if solver == "exact":  # phi = U theta
        arrays[2][:] = arrays[1].astype(np.float64) @ arrays[0].astype(np.float64)
    m = RewardModel.from_bytes(state_format.encode(config, t, fp, arrays))
    before = m.to_bytes()
    with pytest.raises(NumericalError):
        m.learn_choice(np.array([[1.0, 1e6, 0, 0], [0.0] * 4, [0, 0, 0, 1.0]]), 1, weight=1e6)
    assert m.to_bytes() == before
    m.learn_choice(np.array([[1.0, 1e-3, 0, 0], [0.0] * 4]), 1)
    RewardModel.from_bytes(m.to_bytes())
