"""Step 3 of Algorithm 1 (edge_omd/projection.py): the Krylov projection against the naive
float64 twin on streams where it is active on most updates, its continuation past the stored
basis, its fixed workspace (counted in nbytes, no allocation per update), the radius floor and
the rollback when no finite projection exists."""
import tracemalloc

import numpy as np
import pytest

from edge_omd import RewardModel, projection
from edge_omd.errors import ConfigError, NumericalError
from edge_omd_bench.projection import StepRecorder
from tests import solvers
from tests.naive import NaiveOMD
from tests.runtime.streams import bt_pairs, feed, feed_naive, mixed_stream

D, T = 24, 180


def _pair(solver, radius, rank=None, **kw):
    model = RewardModel(D, dtype="float64", radius=radius, **solvers.options(solver, D, rank, **kw))
    naive = NaiveOMD(D, solver=solver, rank=model.sketch_rank, radius=radius, eta=kw.get("eta", 1.0),
                     lam=kw.get("lam", 1.0), forget=kw.get("forget", 1.0),
                     cg_steps=kw.get("cg_steps", 3), lam_warmup=kw.get("lam_warmup", 0),
                     cg_tol=kw.get("cg_tol", 1e-6))
    return model, naive


# Two settings for every solver of the registry: a tight ball (a rank-4 sketch) and a wider one
# with every hyperparameter moved (a full-rank sketch; forget where the solver takes it).
CASES = [(s, radius, {k: v for k, v in kw.items() if k != "forget" or solvers.supports_forget(s)})
         for radius, kw in ((0.3, dict(rank=4)),
                            (1.0, dict(rank=D, eta=2.0, lam=0.3, lam_warmup=60, forget=0.97)))
         for s in solvers.SOLVERS]
#: solvers whose step 3 runs Lanczos in a stored Krylov basis (the diagonal solves it directly)
KRYLOV = [s for s in solvers.SOLVERS if solvers.REGISTRY[s].projection_shape(D, 4)["kmax"] > 0]


@pytest.mark.parametrize("solver,radius,kw", CASES, ids=[f"{s}-{r}-{i}" for i, (s, r, _) in enumerate(CASES)])
def test_matches_naive_with_projection_active(solver, radius, kw):
    model, naive = _pair(solver, radius, **kw)
    rec = StepRecorder(model)
    for t, (kind, args, w) in enumerate(mixed_stream(D, T, seed=5, scale=4.0)):
        feed(model, kind, args, w)
        feed_naive(naive, kind, args, w)
        err = np.linalg.norm(model.theta - naive.theta) / max(1.0, np.linalg.norm(naive.theta))
        assert err <= 1e-6, f"step {t}: relative theta error {err:.2e}"
        assert np.linalg.norm(model.theta) <= radius * (1 + 1e-12)
    active = np.mean(np.array(rec.steps) > 0)
    assert active >= 0.6, f"the projection was active on only {active:.0%} of updates"
    assert min(rec.steps) >= 0


@pytest.mark.parametrize("solver", KRYLOV)
def test_continues_past_the_stored_basis(solver, monkeypatch):
    """With room for 2 stored Lanczos vectors, the rest are regenerated in a second pass: the
    result still matches the twin (and more than 3 steps were needed)."""
    monkeypatch.setattr(projection, "KMAX", 2)
    model, naive = _pair(solver, 0.3, rank=8)
    assert model._proj.Q.shape[0] == 3
    rec = StepRecorder(model)
    for t, (kind, args, w) in enumerate(mixed_stream(D, 120, seed=9, scale=4.0)):
        feed(model, kind, args, w)
        feed_naive(naive, kind, args, w)
        err = np.linalg.norm(model.theta - naive.theta) / max(1.0, np.linalg.norm(naive.theta))
        assert err <= 1e-6, f"step {t}: relative theta error {err:.2e}"
    assert max(rec.steps) > 3


def test_lanczos_steps_to_1e8_are_few():
    """The default tolerance reaches the naive projection to 1e-8 on a single update, and the
    M-mode (tilde_H^{-1}) Krylov space needs fewer steps than the H-mode one (the reason for the
    choice in edge_omd/projection.py)."""
    d = 64
    _, C, R = bt_pairs(d, 60, norm=3.0, seed=2)
    m = RewardModel(d, dtype="float64", solver="exact", radius=0.5)
    for c, r in zip(C[:-1], R[:-1]):
        m.learn_pair(c, r)

    def trial(mode, k=None, tol=None):
        c = RewardModel.from_bytes(m.to_bytes())
        np.subtract(C[-1], R[-1], out=c._z)
        a = c._solver.step(c._z, 1.0, 1.0)
        th0 = np.zeros(d)
        from edge_omd.solvers.exact import _theta64
        _theta64(c._solver.state.U, c._solver.state.phi, th0)
        U = c._solver.state.U
        Ht = U.T @ U + a * np.outer(c._z, c._z)
        steps = c._solver.project(c._proj, c._z, a, mode=mode, tol=tol, max_steps=k)
        return c.theta, th0, Ht, steps

    from tests.naive import naive_projection
    theta, th0, Ht, steps = trial(projection.MODE_M)
    ref = naive_projection(th0, Ht, 0.5)
    assert np.linalg.norm(th0) > 0.5 and steps > 0
    assert np.linalg.norm(theta - ref) <= 1e-8 * np.linalg.norm(ref)

    def needed(mode):
        for k in range(1, 40):
            th, *_ = trial(mode, k=k, tol=0.0)
            if np.linalg.norm(th - ref) <= 1e-8 * np.linalg.norm(ref):
                return k
        return 99
    assert needed(projection.MODE_M) < needed(projection.MODE_H)


# The workspace counted in nbytes and fixed over a stream, for every solver x dtype: the
# harness's check_nbytes_constant under its "radius" and "tuned" settings.


def test_budget_holds_the_workspace():
    budget = 2 << 20
    m = RewardModel(2048, budget_bytes=budget, radius=1.0)
    assert m.solver == "sketch" and m.nbytes <= budget
    assert RewardModel.state_bytes(2048, "sketch", sketch_rank=m.sketch_rank + 1, radius=1.0) > budget


@pytest.mark.jit
@pytest.mark.parametrize("solver", solvers.SOLVERS)
def test_no_allocation_per_update(solver):
    """Over a warm stream with the projection active on every update, the traced memory never
    rises by even half a d-vector above where it started (one float64 d-vector is 8 KiB here):
    no O(d) temporary is allocated per update, by the projection or anything else."""
    d = 1024
    m = solvers.make(solver, d, rank=40, radius=0.2)  # a rank-40 sketch: no FD shrink in the window
    rec = StepRecorder(m)
    _, C, R = bt_pairs(d, 60, norm=3.0, seed=4)
    C, R = C.astype(np.float32), R.astype(np.float32)
    for i in range(10):
        m.learn_pair(C[i], R[i])
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        for i in range(10, 40):
            m.learn_pair(C[i], R[i])
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert all(s > 0 for s in rec.steps[10:]), rec.steps
    assert peak - start < 4 * d, f"traced memory rose by {peak - start} bytes during the stream"
    assert end - start < 4 * d


@pytest.mark.parametrize("dtype,bad,ok", [("float32", 1e-31, 1e-29), ("float64", 1e-151, 1e-140)])
def test_radius_floor(dtype, bad, ok):
    with pytest.raises(ConfigError):
        RewardModel(8, dtype=dtype, radius=bad)
    for solver in solvers.SOLVERS:
        m = solvers.make(solver, 8, rank=2, dtype=dtype, radius=ok)
        for kind, args, w in mixed_stream(8, 30, seed=1, scale=3.0):
            feed(m, kind, args, w)
        th = m.theta
        assert np.isfinite(th).all()
        assert np.linalg.norm(th) == pytest.approx(ok, rel=1e-5), solver


@pytest.mark.parametrize("solver", solvers.SOLVERS)
def test_no_finite_projection_changes_nothing(solver, monkeypatch):
    """If step 3 cannot produce a finite theta, NumericalError and the state is as before the
    update, bit for bit (step 2 is undone), and the model goes on as if it never happened."""
    m = solvers.make(solver, 10, rank=3, radius=0.3)
    twin = solvers.make(solver, 10, rank=3, radius=0.3)
    stream = list(mixed_stream(10, 60, seed=3, scale=4.0))
    for kind, args, w in stream[:30]:
        feed(m, kind, args, w)
        feed(twin, kind, args, w)
    # (no to_bytes() before the failure: it would flush exact's pending update, the case to test)
    with monkeypatch.context() as mp:
        mp.setattr(projection, "finish", lambda out, radius, fmax: False)
        with pytest.raises(NumericalError):
            m.learn_pair(np.ones(10) * 0.3, -np.ones(10) * 0.3)
    assert m.t == twin.t and m.to_bytes() == twin.to_bytes()
    for kind, args, w in stream[30:]:
        feed(m, kind, args, w)
        feed(twin, kind, args, w)
    assert m.to_bytes() == twin.to_bytes()


@pytest.mark.parametrize("solver", solvers.SOLVERS)
def test_float32_with_radius_tracks_float64(solver):
    """float32 states use the looser tolerance TOL['float32'] = 1e-6: theta stays within 1e-4
    of the float64 model's (10x tighter than test_algorithm1.test_float32_tracks_float64)."""
    m32 = solvers.make(solver, D, rank=4, dtype="float32", radius=0.5)
    m64 = solvers.make(solver, D, rank=4, dtype="float64", radius=0.5)
    rec = StepRecorder(m32)
    for kind, args, w in mixed_stream(D, 400, seed=11, scale=4.0):
        feed(m32, kind, args, w)
        feed(m64, kind, args, w)
    assert np.mean(np.array(rec.steps) > 0) > 0.6
    err = np.linalg.norm(m32.theta - m64.theta) / np.linalg.norm(m64.theta)
    assert err < 1e-4  # measured 2e-7 .. 4e-6
