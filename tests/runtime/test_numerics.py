"""Numerics under abuse (issue 12, items 1 and 4): float32 states on adversarial streams, every
representation, with and without forgetting and a radius.

For each stream a float32 and a float64 model learn the same observations (z already rounded to
float32) in lockstep. Until float32 refuses an update with NumericalError (then the comparison is
made at that point, and the refused call must have changed nothing):
  - theta, rewards and widths are finite;
  - the local norm cal_H is symmetric positive definite with its smallest eigenvalue at least
    the regulariser's floor (lam; lam_t for cg) times 3/4 in float32 (the slack load_checks.FLOOR_SLACK
    allows rounding: the cg solver refuses to go on from a curvature sum that rounding pushed
    below it) and the floor itself (to 1e-9) in float64;
  - ||theta_32 - theta_64|| <= 1e-2 max(||theta_64||, 1) (features are unit scale: an absolute
    1e-2 is a reward error of 1e-2), unless the stream is chaotic in float64 itself: a float64
    run on inputs perturbed by 1e-7 relative (float32's rounding) moves theta by more than 1e-2
    too; no dtype can then track another, and only finiteness and the floor are asserted.
    ("scales" is such a stream: ||z|| up to 1e4 moves float64 by 8-120% under a 1e-7 or even
    1e-9 input perturbation, measured.)

Quick: 4 streams x 25,000 updates per base representation (10^5), 4 x 5,000 per variant, d = 6
(4 x 300 without JIT). Long (EDGE_OMD_LONG=1): 4 x 250,000 = 10^6 updates per configuration.

The exact solver's precision guard (eps kappa(cal_H) > linalg.KAPPA_EPS_LIMIT refuses): its
estimates against a dense eigvalsh twin, a refusal before drift on a weighted collinear stream,
the same refusal after a reload, and ordinary users never refused (10^5 updates, 10^6 long).
The cg choice path's PSD probe: 30,000 repeated float32 choices.
"""
import os

import numpy as np
import pytest

from edge_omd import ConfigError, NumericalError, RewardModel
from edge_omd._numba import JIT_DISABLED
from tests.runtime.streams import STREAMS, adversarial_stream

LONG = os.environ.get("EDGE_OMD_LONG", "") not in ("", "0")
D = 6
N = 250_000 if LONG else (300 if JIT_DISABLED else 25_000)  # per stream, base representations
N_VARIANT = 250_000 if LONG else (300 if JIT_DISABLED else 5_000)  # forget / radius / warmup
CONFIGS = {
    "exact": dict(solver="exact"),
    "cg": dict(solver="cg"),
    "sketch": dict(solver="sketch", sketch_rank=2),
    "diagonal": dict(solver="diagonal"),
    "exact+radius": dict(solver="exact", radius=3.0),
    "cg+forget+radius+warmup": dict(solver="cg", forget=0.999, radius=3.0, lam_warmup=50),
    "sketch+forget+radius": dict(solver="sketch", sketch_rank=2, forget=0.999, radius=3.0),
    "diagonal+forget+radius": dict(solver="diagonal", forget=0.999, radius=3.0),
}


def _cal_H(m):
    """The dense local norm after m.t updates (the solvers' float64 matvec, column by column)."""
    d = m.dim
    H = np.stack([m._solver.matvec(np.eye(d)[i]) for i in range(d)])
    return H


def _floor(m):
    s = m._solver
    return s.lam_next() if m.solver == "cg" else s.lam


def _learned(m, z, y):
    """learn_one(z, y) on m: True if learned; False if refused (NumericalError), after checking
    that a retry is refused too and that neither changed a byte of the state."""
    try:
        m.learn_one(z, y)
        return True
    except NumericalError:
        before = m.to_bytes()
        with pytest.raises(NumericalError):
            m.learn_one(z, y)
        assert m.to_bytes() == before, "a refused update changed the state"
        return False


def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1.0))


def _run(cfg, dtype, Z, Y, upto, noise=0.0):
    m = RewardModel(D, dtype=dtype, **cfg)
    rng = np.random.default_rng(1)
    for t in range(upto):
        z = Z[t] * (1.0 + noise * rng.normal(size=D)) if noise else Z[t]
        m.learn_one(z, Y[t])
    return m


def _check_state(m, label):
    theta = m.theta
    assert np.isfinite(theta).all(), label
    P = np.random.default_rng(0).normal(size=(4, D))
    assert np.isfinite(m.reward(P)).all() and np.isfinite(m.width(P)).all(), label
    H = _cal_H(m)
    assert np.isfinite(H).all(), label
    asym = np.abs(H - H.T).max()
    assert asym <= 1e-6 * np.abs(H).max(), f"{label}: cal_H not symmetric ({asym:.3g})"
    lmin = float(np.linalg.eigvalsh(0.5 * (H + H.T))[0])
    floor = _floor(m)
    need = floor * (0.75 if m.dtype == "float32" else 1.0 - 1e-9)
    assert lmin >= need, f"{label}: smallest eigenvalue of cal_H {lmin:.6g} < {need:.6g}"
    return lmin


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_float32_holds_or_refuses(name, stream):
    cfg = CONFIGS[name]
    n = N if name in ("exact", "cg", "sketch", "diagonal") else N_VARIANT
    Z, Y = adversarial_stream(stream, D, n, seed=3)
    m32 = RewardModel(D, dtype="float32", **cfg)
    m64 = RewardModel(D, dtype="float64", **cfg)
    stop = n
    for t in range(n):
        try:
            m64.learn_one(Z[t], Y[t])
        except NumericalError:
            pytest.fail(f"float64 refused update {t}")
        if not _learned(m32, Z[t], Y[t]):
            m64 = _run(cfg, "float64", Z, Y, t)  # float64 at the same point
            stop = t
            break
    label = f"{name}/{stream} at t={stop}"
    _check_state(m32, label + " float32")
    _check_state(m64, label + " float64")
    rel = _rel(m32.theta, m64.theta)
    if rel > 1e-2:
        own = _rel(_run(cfg, "float64", Z, Y, stop, noise=1e-7).theta, m64.theta)
        assert own > 1e-2, (f"{label}: float32 theta {rel:.3g} off float64, which is itself "
                            f"stable ({own:.3g} under a 1e-7 input perturbation)")


def test_repeated_z_float32_cg_stays_positive_definite_or_refuses():
    """The reported case: cg float32 lost positive definiteness (min eigenvalue -26.7 after
    2e5 updates of one z with alternating labels). Now S stays exactly symmetric and the cg
    solver refuses (NumericalError, nothing moved) before rounding pushes S below -lam / 4."""
    d = 8
    n = 200_000 if LONG else (2_000 if JIT_DISABLED else 60_000)
    Z, Y = adversarial_stream("repeat", d, n, seed=0)
    m = RewardModel(d, dtype="float32", solver="cg")
    refused = None
    for t in range(n):
        try:
            m.learn_one(Z[t], Y[t])
        except NumericalError:
            refused = t
            break
    H = _cal_H(m)
    assert np.array_equal(m._solver.state.S, m._solver.state.S.T)
    assert np.linalg.eigvalsh(H)[0] >= 0.75 * m._solver.lam_next()
    print(f"\ncg float32, repeated z: refused at t={refused}, min eigenvalue "
          f"{np.linalg.eigvalsh(H)[0]:.4g}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", ["exact", "cg", "sketch", "diagonal"])
def test_huge_curvature_is_refused_not_drifted(solver, dtype):
    """||z|| = 1e4 with theta ~ 0: each update would add 2.5e7 of curvature in one direction,
    beyond float32's 1 / eps against lam = 1. float32 refuses (exact, cg, sketch: NumericalError,
    nothing moved) or holds (diagonal: per coordinate), never drifts: the sketch ended 11x off
    float64 before, cg 100% off."""
    Z, Y = adversarial_stream("big", D, 300, seed=1)
    m = RewardModel(D, dtype=dtype, solver=solver, sketch_rank=2 if solver == "sketch" else None)
    ref = RewardModel(D, dtype="float64", solver=solver, sketch_rank=2 if solver == "sketch" else None)
    for t in range(Z.shape[0]):
        ref.learn_one(Z[t], Y[t])
        try:
            m.learn_one(Z[t], Y[t])
        except NumericalError:
            assert dtype == "float32" and solver in ("exact", "cg", "sketch")
            return
    assert _rel(m.theta, ref.theta) <= 1e-2


@pytest.mark.parametrize("solver", ["exact", "cg", "sketch", "diagonal"])
def test_radius_too_small_for_the_dtype_is_refused(solver):
    """A radius of 1e-160 left theta NaN and made updates take seconds; the store then committed
    a state that could never be loaded. MIN_RADIUS refuses it at construction and in the loader."""
    from edge_omd import StateFormatError, state_format
    from edge_omd.config import MIN_RADIUS
    rank = 2 if solver == "sketch" else None
    for dtype, tiny in (("float32", 1e-31), ("float64", 1e-160)):
        with pytest.raises(ConfigError):
            RewardModel(D, solver=solver, dtype=dtype, radius=tiny, sketch_rank=rank)
        ok = RewardModel(D, solver=solver, dtype=dtype, radius=MIN_RADIUS[dtype], sketch_rank=rank)
        z = np.ones(D) / np.sqrt(D)
        for _ in range(20):
            ok.learn_one(z, 1.0)
        assert np.isfinite(ok.theta).all()
        assert np.linalg.norm(ok.theta) <= MIN_RADIUS[dtype] * (1 + 1e-5)
        data = bytearray(ok.to_bytes())
        assert RewardModel.from_bytes(bytes(data)).to_bytes() == bytes(data)
        off = [o for o, _s, n, _m in state_format.header_offsets() if n == "radius"][0]
        data[off:off + 8] = np.float64(tiny).tobytes()
        import zlib
        data[-4:] = (zlib.crc32(bytes(data[:-4])) & 0xFFFFFFFF).to_bytes(4, "little")
        with pytest.raises(StateFormatError):
            RewardModel.from_bytes(bytes(data))


# ---- the exact solver's precision guard (ExactSolver._precision_lost, linalg.KAPPA_EPS_LIMIT)
EPS32 = float(np.finfo(np.float32).eps)


def _dense_extremes(m):
    ev = np.linalg.eigvalsh(_cal_H(m))
    return float(ev[-1]), float(ev[0])


def _ordinary_lockstep(Z, Y, **options):
    """Learn the ordinary stream (Z, Y) in float32 (a refusal fails the test: NumericalError)
    and its first 10^5 in float64 beside it; float32 must end those within 1e-2 of float64.
    Returns the float32 model."""
    d, n = Z.shape[1], len(Z)
    m32 = RewardModel(d, dtype="float32", **options)
    m64 = RewardModel(d, dtype="float64", **options)
    n64 = min(n, 100_000)
    for t in range(n):
        m32.learn_one(Z[t], Y[t])
        if t < n64:
            m64.learn_one(Z[t], Y[t])
        if t + 1 == n64:
            assert _rel(m32.theta, m64.theta) <= 1e-2
    return m32


def _ordinary(d, n, B):
    """An ordinary user: Bradley-Terry pairs of bench/streams.SynthProblem (power-law spectrum)."""
    from edge_omd_bench.streams import SynthProblem
    Z, y = SynthProblem.make(d, B, 0).stream(0, n)
    return Z.astype(np.float32), y.astype(np.float64)


@pytest.mark.parametrize("stream", ["collinear", "ordinary"])
def test_exact_guard_estimates_bracket_the_dense_eigenvalues(stream):
    """The guard's estimates (linalg.extreme_eigenvalues: power iteration on cal_H and on
    cal_H^{-1}) against the slow twin, a dense eigvalsh of cal_H: lmax never above lambda_max,
    lmin never below lambda_min (so a refusal is certain), and close where it matters (one
    dominant direction)."""
    d, n = 6, (600 if JIT_DISABLED else 6_000)
    if stream == "collinear":
        Z, Y = adversarial_stream("collinear", d, n, seed=3)
    else:
        Z, Y = _ordinary(d, n, 4.0)
    m = RewardModel(d, dtype="float64", solver="exact")
    for t in range(n):
        m.learn_one(Z[t], Y[t])
        if (t + 1) % (n // 6) == 0:
            lmax, lmin = m._solver.extreme_eigenvalues()
            tmax, tmin = _dense_extremes(m)
            assert lmax <= tmax * (1 + 1e-9), (t, lmax, tmax)
            assert lmin >= tmin * (1 - 1e-9), (t, lmin, tmin)
            assert lmax >= 0.5 * tmax and lmin <= 2.0 * tmin, (t, lmax, tmax, lmin, tmin)
            if stream == "collinear":
                assert lmax >= 0.999 * tmax and lmin <= 1.001 * tmin, (t, lmax, tmax, lmin, tmin)


def _until_refused(m, Z, Y, w=1.0, start=0):
    for t in range(start, Z.shape[0]):
        try:
            m.learn_one(Z[t], Y[t], weight=w)
        except NumericalError:
            return t
    return None


@pytest.mark.jit
def test_exact_float32_refuses_when_the_condition_number_nears_1_over_eps():
    """The nearly-collinear stream drove float32 theta 2.6e-2 off float64 at 250,000 updates with
    no error. The guard refuses (NumericalError, nothing changed, again on a retry and for a
    choice) once eps kappa(cal_H) passes linalg.KAPPA_EPS_LIMIT; weight 16 gets there in ~4,000
    updates. At the refusal float32 is still within 1e-2 of float64 and the dense condition
    number confirms the rule; one probe earlier the model was allowed to learn."""
    from edge_omd import linalg
    d, w = 6, 16.0
    Z, Y = adversarial_stream("collinear", d, 8_000, seed=3)
    m32 = RewardModel(d, dtype="float32", solver="exact")
    t = _until_refused(m32, Z, Y, w)
    assert t is not None, "float32 exact never refused on the weighted collinear stream"
    assert t % linalg.probe_period(d) == 0
    tmax, tmin = _dense_extremes(m32)
    assert EPS32 * tmax / tmin > linalg.KAPPA_EPS_LIMIT
    before = m32.to_bytes()
    for _ in range(2):
        with pytest.raises(NumericalError):
            m32.learn_one(Z[t], Y[t], weight=w)
    with pytest.raises(NumericalError):
        m32.learn_choice(np.stack([Z[t], Z[t + 1], Z[t + 2]]), 0)
    assert m32.to_bytes() == before, "a refused update changed the state"
    m64 = RewardModel(d, dtype="float64", solver="exact")
    for s in range(t):
        m64.learn_one(Z[s], Y[s], weight=w)
    assert _rel(m32.theta, m64.theta) <= 1e-2
    # the probe before: eps kappa still below the limit
    prev = RewardModel(d, dtype="float32", solver="exact")
    for s in range(t - linalg.probe_period(d)):
        prev.learn_one(Z[s], Y[s], weight=w)
    lmax, lmin = prev._solver.extreme_eigenvalues()
    assert EPS32 * lmax <= linalg.KAPPA_EPS_LIMIT * lmin


@pytest.mark.jit
def test_exact_guard_refuses_at_the_same_update_after_a_reload():
    """The probe reads the flushed factor (a function of the observations alone) at fixed update
    counts, so a model reloaded mid-stream (a pending update in the live one) and fed the rest
    refuses at exactly the live model's update, with the live model's bytes."""
    d, w = 6, 16.0
    Z, Y = adversarial_stream("collinear", d, 8_000, seed=3)
    live = RewardModel(d, dtype="float32", solver="exact")
    for t in range(3_001):
        live.learn_one(Z[t], Y[t], weight=w)
    saved = live.to_bytes()
    t_live = _until_refused(live, Z, Y, w, start=3_001)
    again = RewardModel.from_bytes(saved)
    assert _until_refused(again, Z, Y, w, start=3_001) == t_live is not None
    assert again.to_bytes() == live.to_bytes()


@pytest.mark.parametrize("B", [1.0, 8.0])
def test_exact_float32_never_refuses_an_ordinary_user(B):
    """Calibration (bench/numerics.py --calibrate): ordinary users stay far below the guard's
    limit. Bradley-Terry pairs with a power-law spectrum at d = 8, 10^5 updates (10^6 in long
    mode): no refusal, eps kappa below 1 % of the limit, float32 within 1e-2 of float64 (on a
    sample of it: the float64 twin runs on the first 10^5)."""
    from edge_omd import linalg
    d = 8
    n = 1_000_000 if LONG else (400 if JIT_DISABLED else 100_000)
    Z, Y = _ordinary(d, n, B)
    m32 = _ordinary_lockstep(Z, Y, solver="exact")
    lmax, lmin = _dense_extremes(m32)
    assert EPS32 * lmax / lmin <= 0.01 * linalg.KAPPA_EPS_LIMIT


@pytest.mark.jit
def test_cg_choice_keeps_the_curvature_positive_definite():
    """The choice kernel _syr_rows had no PSD probe: 3 fixed candidates along one direction with
    alternating choices took cal_H's smallest eigenvalue to -2.6 after 30,000 float32 choices
    (0.21 after 20,000); the probe then refused every later update (a stuck user). The pair's
    probe runs before a choice too and repairs the rounding (cg.CGSolver._curvature_lost):
    all 30,000 are learned, cal_H stays >= 3/4 lam_t, S exactly symmetric, and every state
    loads."""
    d = 8
    rng = np.random.default_rng(0)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    Phi = np.stack([u, -u, 0.5 * u]).astype(np.float32)
    m = RewardModel(d, dtype="float32", solver="cg")
    for t in range(30_000):
        m.learn_choice(Phi, t % 2)
        if t % 500 == 499:
            _loads(m)
    S = m._solver.state.S
    assert np.array_equal(S, S.T)
    lmin = float(np.linalg.eigvalsh(_cal_H(m))[0])
    assert lmin >= 0.75 * m._solver.lam_next(), lmin


def test_exact_float32_refuses_a_prior_start_the_guard_would_refuse():
    """A population prior whose cal_H_0 float32 cannot hold (eps kappa above the guard's limit,
    though within the start's trace bound) was accepted and then refused at update 64 for good;
    it is now a ConfigError at construction (float64 holds it, and a milder prior starts)."""
    from edge_omd.prior import Prior
    d = 8
    V = np.zeros((1, d))
    V[0, 0] = 300.0  # cal_H_0 = I + 9e4 e1 e1^T: eps kappa = 1.1e-2 in float32
    def prior():
        return Prior(np.zeros(d), 0.0, V, strength=1.0)
    with pytest.raises(ConfigError, match="condition number"):
        RewardModel(d, dtype="float32", solver="exact", prior=prior())
    m = RewardModel(d, dtype="float64", solver="exact", prior=prior())
    V[0, 0] = 30.0  # eps kappa = 1.1e-4: starts, and learns past the first probe
    m = RewardModel(d, dtype="float32", solver="exact", prior=prior())
    rng = np.random.default_rng(0)
    for t in range(200):
        m.learn_one(rng.normal(size=d) / np.sqrt(d), float(t % 2))
    assert m.t == 200


def _loads(m):
    return RewardModel.from_bytes(m.to_bytes())


def test_exact_fantasize_never_leaves_a_state_the_loader_refuses():
    """exact float32 fantasize keeps theta bit for bit while the update rotates U and phi; the
    rotation's rounding, amplified by sqrt(1 + c z^T cal_H^{-1} z), left phi != U theta
    ("phi is not U theta" on reload). A curvature beyond the step's guard is refused with the
    state unchanged; below it phi is kept equal to U theta (reload accepted, theta unmoved)."""
    theta = np.array([1e3, 3.0, -2.0, 0.5])  # a state the loader accepts
    m = RewardModel(4, solver="exact", dtype="float64", lam=1e-9).astype("float32")
    m._solver.set_theta(theta)
    m = _loads(m)
    before = m.to_bytes()
    with pytest.raises(NumericalError):
        m.fantasize([0.0, 0.3, 0.2, 0.1])  # c ||z||^2 eps = 3.8e-9 > lam / 10
    assert m.to_bytes() == before
    _loads(m)
    m = RewardModel(4, solver="exact", dtype="float32", lam=1e-4)
    m._solver.set_theta(theta)
    m = _loads(m)
    kept = m.theta.tobytes()
    m.fantasize(20.0 * np.array([0.0, 0.2, 0.3, 0.0]))  # theta.z = 0: c = 1/4, within the guard
    assert m.theta.tobytes() == kept, "fantasize moved theta"
    again = _loads(m)  # was "phi is not U theta"
    assert again.to_bytes() == m.to_bytes()
    rng = np.random.default_rng(0)
    for _ in range(50):  # many in a row (theta never re-derived): each reload still accepted
        try:
            m.fantasize(rng.normal(size=4) * 10.0 ** rng.uniform(-1, 1.5))
        except NumericalError:
            continue
        _loads(m)
    assert m.theta.tobytes() == kept


@pytest.mark.parametrize("lam, n_max", [(1.0, 7_500),
                                        pytest.param(1e3, 20_000, marks=pytest.mark.jit)])
def test_cg_fantasize_never_leaves_a_curvature_the_loader_refuses(lam, n_max):
    """cg fantasize had neither the step's precision guard nor its PSD probe: a nearly repeated
    ||z|| = 30 piled rounding into S until the loader refused it (float32: 2 x 2 minors below
    the floor after 7,500 at lam = 1; not PSD after 20,000 at lam = 1e3). Now it refuses
    (NumericalError, state unchanged) first, and every state it left loads."""
    rng = np.random.default_rng(0)
    z0 = rng.normal(size=D)
    z0 *= 30.0 / np.linalg.norm(z0)
    m = RewardModel(D, solver="cg", dtype="float32", lam=lam)
    refused = None
    for n in range(n_max):
        z = z0 + 1e-3 * rng.normal(size=D)
        try:
            m.fantasize(z)
        except NumericalError:
            refused = n
            break
        if n % 500 == 499:
            _loads(m)
    assert refused is not None, "no refusal before the loader's limit"
    before = m.to_bytes()
    with pytest.raises(NumericalError):
        m.fantasize(z)
    assert m.to_bytes() == before
    _loads(m)


def _scaled_repeat(d, n, big, small):
    """The 'repeat' stream (one unit z, labels alternating) times `big`, every 7th row times
    `small` (the review's case: a curvature row of sqrt(sigma') * 15 next to rows of 1500)."""
    Z, Y = adversarial_stream("repeat", d, n, seed=3)
    Z = Z * big
    Z[::7] *= small
    return Z.astype(np.float32).astype(np.float64), Y


@pytest.mark.parametrize("lam, small", [(0.1, 1e-2), (0.01, 1e-3), (0.01, 1e-2)])
def test_sketch_float32_refuses_before_drifting_on_a_scaled_repeat(lam, small):
    """sketch float32, rank 2, d = 8: 400 updates of the repeat stream x 1500 with every 7th row
    small went 0.12 (lam = 0.1) and 10.5 (lam = 0.01) off float64 with no NumericalError, and
    at lam = 0.01 with rows x 1e-2 (where exact float32 refuses 336 of the 400) its first
    refusal came at t = 29, already 2.7e-2 off. The sketch holds cal_H^{-1} z only to ~eps kappa (its rows are stored in
    float32), and these steps are 30-60 x ||theta||: now a step whose rounding could move theta
    by more than sketch.DRIFT_LIMIT is refused, and up to there float32 is within 1e-2."""
    d, n = 8, 400
    Z, Y = _scaled_repeat(d, n, 1500.0, small)
    cfg = dict(solver="sketch", sketch_rank=2, lam=lam)
    m32 = RewardModel(d, dtype="float32", **cfg)
    m64 = RewardModel(d, dtype="float64", **cfg)
    for t in range(n):
        if not _learned(m32, Z[t], Y[t]):
            break
        m64.learn_one(Z[t], Y[t])
        assert _rel(m32.theta, m64.theta) <= 1e-2, f"drifted at t={t}"


@pytest.mark.parametrize("B", [1.0, 8.0])
def test_sketch_float32_never_refuses_an_ordinary_user(B):
    """The sketch's drift guard never refuses an ordinary user (Bradley-Terry pairs, power-law
    spectrum, d = 8, rank 2 and 4, 3 x 10^4 updates; 10^6 long): float32 within 1e-2 of float64
    (bench/numerics.py --calibrate --sketch: the guard's statistic on ordinary streams)."""
    d = 8
    n = 1_000_000 if LONG else (400 if JIT_DISABLED else 30_000)
    Z, Y = _ordinary(d, n, B)
    for rank in (2, 4):
        _ordinary_lockstep(Z, Y, solver="sketch", sketch_rank=rank)


@pytest.mark.parametrize("B", [1.0, 8.0])
def test_cg_float32_never_refuses_an_ordinary_user(B):
    """cg's drift guard (linalg.move_drift in cg._step, the sketch's) never refuses an ordinary
    user (Bradley-Terry pairs, power-law spectrum, d = 8, 3 x 10^4 updates; 10^6 long): float32
    within 1e-2 of float64 (bench/numerics.py --calibrate --cg: the statistic peaks ~160x below
    the limit on ordinary streams at d = 8 and 384). The scales stream, which drifted 0.27 off a
    stable float64 unrefused, is test_float32_holds_or_refuses[cg-scales]."""
    d = 8
    n = 1_000_000 if LONG else (400 if JIT_DISABLED else 30_000)
    Z, Y = _ordinary(d, n, B)
    _ordinary_lockstep(Z, Y, solver="cg")


@pytest.mark.parametrize("lam, small", [(0.1, 1e-2), (0.01, 1e-3)])
def test_sketch_float32_choice_refuses_before_drifting_on_a_scaled_repeat(lam, small):
    """The same stream as choices between z and 0 (learn_choice: the choice kernels' move
    eta V^T b): 1.0 (lam = 0.1) and 70 (lam = 0.01) off float64 with no NumericalError before
    the choice path got the pair's drift guard."""
    d, n = 8, 400
    Z, Y = _scaled_repeat(d, n, 1500.0, small)
    cfg = dict(solver="sketch", sketch_rank=2, lam=lam)
    m32 = RewardModel(d, dtype="float32", **cfg)
    m64 = RewardModel(d, dtype="float64", **cfg)
    for t in range(n):
        P, chosen = np.stack([Z[t], np.zeros(d)]), 0 if Y[t] == 1.0 else 1
        try:
            m32.learn_choice(P, chosen)
        except NumericalError:
            before = m32.to_bytes()
            with pytest.raises(NumericalError):
                m32.learn_choice(P, chosen)
            assert m32.to_bytes() == before, "a refused choice changed the state"
            break
        m64.learn_choice(P, chosen)
        assert _rel(m32.theta, m64.theta) <= 1e-2, f"drifted at t={t}"
