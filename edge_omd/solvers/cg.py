"""The paper's practical variant (Sec. 6.1 / App. G): cal_H kept as a full d x d matrix and
tilde_H^{-1} g approximated by K steps of conjugate gradient, with the damping schedule
lambda_t = lambda_0 min(1, t / T).

    cal_H_t = lambda_t I + S_t,     S_{t+1} = forget S_t + w sigma'(theta_{t+1}.z) z z^T
    x ~ tilde_H^{-1} z  by CG (K steps, x0 = 0, Fletcher-Reeves, residual test)
    theta' = theta - eta w (sigma(theta.z) - y) x         (CG is linear in b, so solving for z
                                                           and scaling equals solving for g)
Unlike the official code: beta is Fletcher-Reeves (not r.r / r.r = 1), S is accumulated across
steps (not replaced by a constant damping), and the CG result is never blended with the gradient.
The damping lambda_t plays the prior's role, so forgetting discounts S only.
"""
import math

import numpy as np

from edge_omd import linalg, projection
from edge_omd._numba import both, kernel, lanes_dot
from edge_omd.solvers import load_checks, mnl, prior_start
from edge_omd.solvers.base import F, ArraySpec, ExplicitTheta, SolverSpec

SPEC = SolverSpec("cg", code=2, doc="cal_H = lambda_t I + S (lambda_t from the header's lam, "
                  "lam_warmup and t).", arrays=(
    ArraySpec("theta", "d", F, True, "reward parameter"),
    ArraySpec("S", "d, d", F, True, "curvature sum_i w_i sigma'_i z_i z_i^T (no damping)"),
    ArraySpec("x", "d", F, False, "work: CG iterate"),
    ArraySpec("r", "d", F, False, "work: residual"),
    ArraySpec("p", "d", F, False, "work: search direction"),
    ArraySpec("Ap", "d", F, False, "work: tilde_H p"),
))


@kernel(both("f8(F[:, ::1])"))
def _trace(S):
    """trace S in float64, with no temporary (np.trace(S, dtype=float64) buffers a cast copy of
    the diagonal: an O(d) allocation per update)."""
    acc = 0.0
    for i in range(S.shape[0]):
        acc += float(S[i, i])
    return acc


@kernel(both("f8(F[::1], F[:, ::1], F[::1], F[::1], F[::1], F[::1], F[::1], f8, f8, f8, f8, i8, f8, f8, "
              "f8)"))
def _step(theta, S, z, x, r, p, Ap, y, w, eta, lam_t, steps, tol, eps, sig_cap):
    """Steps 1-2; returns a, or NaN with nothing moved (non-finite, or beyond the precision of
    the dtype, see the guards below; the exact solver guards the same way). sig_cap: the
    sigma' step 4 will use at most (1/4 where step 3 may still move theta), or 0: step 4's
    own, at the theta this step leaves."""
    m = linalg.dot(theta, z)
    s = linalg.sigmoid(m)
    a = eta * w * s * (1.0 - s)
    linalg.cg_solve(S, lam_t, z, a, z, x, r, p, Ap, steps, tol)
    coef = eta * w * (s - y)
    if not math.isfinite(coef):
        return math.nan  # nothing moved
    tr = _trace(S)
    zz = linalg.dot(z, z)
    # Drift guard (the sketch's): the CG vectors and S are held in the dtype, so x holds only to
    # ~eps kappa, kappa <= 1 + (trace S + a ||z||^2) / lam_t; a step whose rounding could move
    # theta by more than DRIFT_LIMIT is refused (float32 on the scales stream, d = 6: 0.27 off
    # a stable float64 after 1000 updates, unrefused, with eps kappa ~ 4e-3 under the trace guard)
    if linalg.move_drift(theta, x, coef, 1.0 + (tr + a * zz) / lam_t, eps) > linalg.DRIFT_LIMIT:
        return math.nan
    for i in range(theta.shape[0]):
        p[i] = theta[i]  # theta_t (p is free after the solve), for the guard below
    if not linalg.move_checked(theta, x, coef):
        return math.nan
    # Precision guard: S + c z z^T (step 4) must stay within 0.1 lam_t / eps in trace, or the
    # dtype's rounding of S (~eps ||S||) and of the CG vectors swamps the damping lam_t and
    # the small directions of cal_H become noise (float32: trace 8e5 lam_t, ~3e6 unit-feature
    # updates at lam = 1 without forgetting; forget < 1 bounds the trace). c is step 4's own
    # (at the rounded theta_{t+1}, or bounded by sig_cap), so every state an update leaves is
    # inside the loader's trace bound (`CGSolver.invalid`). O(d).
    sig = sig_cap if sig_cap > 0.0 else linalg.dsigmoid(linalg.dot(theta, z))
    if not (tr + w * sig * zz) * eps <= 0.1 * lam_t:
        for i in range(theta.shape[0]):
            theta[i] = p[i]
        return math.nan
    return a


@kernel(both("f8(F[::1], F[:, ::1], F[::1], f8, f8)"))
def _absorb(theta, S, z, w, forget):
    """Step 4: S <- forget S + w sigma'(theta.z) z z^T (exactly symmetric)."""
    c = w * linalg.dsigmoid(linalg.dot(theta, z))
    linalg.syr_scaled(S, forget, c, z)
    return c


@kernel(both("void(F[:, ::1], f8, f8[::1], f8[::1])"))
def _hv(S, lam, vec, out):
    """out = (S + lam I) vec with float64 vectors: the projection's operator, no float64 copy of S."""
    for i in range(S.shape[0]):
        out[i] = lam * vec[i] + lanes_dot(S[i], vec)


@kernel(both("void(F[:, ::1], f8, F[::1], f8, f8[::1], f8[::1])"))
def _tilde_hv(S, lam, z, a, vec, out):
    """out = tilde_H vec = (S + lam I) vec + a z (z.vec): the projection's operator (H mode).
    (Row dot products over the full S: a one-pass upper-triangle version, half the bytes, ran
    2.4x slower at d=384 with fastmath: its two updates per element do not vectorise.)"""
    azv = a * lanes_dot(z, vec)
    for i in range(S.shape[0]):
        out[i] = (lam * vec[i] + azv * float(z[i])) + lanes_dot(S[i], vec)


#: Relative slack of the loader's trace bound (eps trace S <= lambda_{t+1} / 10) over the
#: updates' own guard: the rounding of S's diagonal and of the guard's float64 sum.
TRACE_SLACK = 1e-4


class CGSolver(ExplicitTheta):
    spec = SPEC
    MIN_LAM_FLOAT32 = 1e-4  # the drift guard (eps kappa) at ||z|| = 1: docs/ALGORITHM.md
    width_tol = 1e-10  # widths are read with CG run to convergence, not K steps

    @staticmethod
    def projection_shape(d, rank=None):
        """make_workspace arguments of this solver's projection (edge_omd/projection.py)."""
        return dict(small=1, kmax=projection.KMAX, steps=projection.STEPS_MAX)

    def reset(self):
        super().reset()
        self._drift = 0.0  # a bound on S's spectral drift since S was last known PSD (`fantasize`)
        self._shift = 0.0  # the repair step 4 applies (`_curvature_lost`)

    def loaded(self):
        self._drift = math.inf  # only the loader's floor is known: probe before a fantasize

    def lam_at(self, t):
        """lambda_t = lambda_0 min(1, t / T) at round t (1-based); T = 0 means constant."""
        warmup = self.config.lam_warmup
        if warmup <= 0:
            return self.lam
        return self.lam * min(1.0, t / warmup)

    def start_damping(self):
        """cal_H_0's damping is lambda_1 (the warm-up schedule still applies)."""
        return self.lam_at(1)

    def _start(self, theta0, c, V, sign):
        """A prior's start (Solver.start): S = c I + sign V^T V in float64
        (prior_start.low_rank_plus: exactly symmetric, O(r d^2)), rounded to the dtype once;
        cal_H_0 = lambda_1 I + S (the damping stays lambda_t's, so with a warm-up cal_H_0's
        isotropic part is lambda_1 + c, not lam + c). With sign = -1, S >= 0 as the caller
        guarantees. Nothing is lost."""
        st = self.state
        d = st.S.shape[0]
        S = np.empty((d, d))
        prior_start.low_rank_plus(V, c, sign, S)
        st.S[...] = S
        st.theta[:] = theta0
        self._drift = math.inf  # rounded to the dtype: probe before a fantasize

    def lam_next(self):
        """The damping of the next round, lambda_{t+1} (t = updates absorbed so far)."""
        return self.lam_at(int(self.counter[0]) + 1)

    def step(self, z, y, w):
        st, cfg = self.state, self.config
        lam_t = self.lam_next()
        if self._curvature_lost(lam_t):
            return math.nan
        return _step(st.theta, st.S, z, st.x, st.r, st.p, st.Ap, y, w, cfg.eta, lam_t,
                     cfg.cg_steps, cfg.cg_tol, self.eps, 0.0 if cfg.radius is None else 0.25)

    def _curvature_lost(self, lam_t):
        """The PSD probe, run before an update (pair or choice) every linalg.probe_period(d)
        updates, O(16 d^2) (amortised O(16 d)), on the lowest Ritz value rho of S
        (load_checks.lowest_ritz). Rounding piles up in S when updates repeat a direction (float32,
        one thumb toggled on the same answer, d = 64, ||z|| = 5: the loader refused the state by
        toggle 2,800 when this probe only refused). So:
        - rho < -floor / 4 (floor: the loader's, `_psd_floor` at lambda_1) schedules a repair,
          S += 2 |rho| I, applied by step 4 (`_repair`) once the update has succeeded: the
          shift is twice the rounding the probe measured (<= lambda_t / 4), the learned
          curvature is kept, and S is back above -floor / 4 with the probe period's drift to
          spare, so every state an update leaves loads;
        - rho < -`_psd_floor`(lambda_t) (only a state past the loader's floor, never one an
          update leaves) refuses: True, nothing has moved.
        Deterministic functions of the state and t, so a replay repairs where the live model
        did."""
        S = self.state.S
        self._shift = 0.0
        if not linalg.probe_due(int(self.counter[0]), S.shape[0]):
            return False
        rho = load_checks.lowest_ritz(S)
        if rho < -self._psd_floor(S, lam_t):
            return True
        if rho < -0.25 * self._psd_floor(S, self.lam_at(1)):
            self._shift = -2.0 * rho
        return False

    def _repair(self):
        """Step 4's end: the shift `_curvature_lost` scheduled (0: none)."""
        if self._shift > 0.0:
            _shift_diagonal(self.state.S, self._shift)
            self._shift = 0.0
            self._drift = math.inf  # rounded anew: probe before a fantasize

    def absorb(self, z, w):
        st = self.state
        c = _absorb(st.theta, st.S, z, w, self.config.forget)
        self._drift += _trace(st.S) * self.eps  # `fantasize`
        self._repair()
        return c

    def fantasize(self, z, w):
        """S += c z z^T (no forgetting), or NaN (nothing changed) when the loader could refuse
        the result. Without a guard, repeated fantasizes piled rounding into S until it did
        (float32, a nearly repeated ||z|| = 30: 2 x 2 minors below the floor after 7,500 at
        lam = 1, not PSD after 20,000 at lam = 1e3). Each S += c z z^T moves S's spectrum by at
        most e = eps (trace S + c ||z||^2) (its rounding, entrywise <= eps |S_ij|, has a norm
        <= eps ||S||_F <= eps trace S). So: e > lambda_{t+1} / 10 (the step's trace guard) or
        e > floor / 4 is refused (floor: the loader's, `_psd_floor` at lambda_1), and once the e
        summed since the last probe (`_drift`, also fed by `absorb`) would pass 3/4 floor, the
        PSD probe runs at floor / 4 first (O(16 d^2), every ~floor / e fantasizes: rare at
        ordinary scales; the first one after a load): S stays >= -floor, so every state left
        loads."""
        st = self.state
        S, eps = st.S, self.eps
        c = w * linalg.dsigmoid(linalg.dot(st.theta, z))
        e = (_trace(S) + c * linalg.dot(z, z)) * eps
        if not e <= 0.1 * self.lam_next():  # the step's guard
            return math.nan
        lam_1 = self.lam_at(1)
        floor = lam_1 / (2.0 * load_checks.FLOOR_SLACK)  # _psd_floor's first term: max|S| (a pass
        if e > 0.25 * floor or self._drift + e > 0.75 * floor:  # over S) only when needed
            floor = self._psd_floor(S, lam_1)
        if not e <= 0.25 * floor:
            return math.nan
        if not self._drift + e <= 0.75 * floor:
            if load_checks.indefinite_direction(S, 0.25 * floor):
                return math.nan
            self._drift = 0.0
        self._drift += e
        return _absorb(st.theta, S, z, w, 1.0)

    def matvec(self, vec):
        """cal_H vec in float64 for the local norm after t updates (damping lambda_{t+1})."""
        out = np.empty_like(vec)
        _hv(self.state.S, self.lam_next(), vec, out)
        return out

    # step 3: H mode (an inverse would be a whole CG solve per Lanczos step)
    projection_mode = projection.MODE_H

    def project(self, ws, z, a, mode=None, tol=None, kmax=None, max_steps=None):
        """Step 3 in place (see ExactSolver.project). cal_H is that of step 1 (damping
        lambda_{t+1}); only H mode is offered."""
        st, radius = self.state, self.config.radius
        tol = projection.TOL[st.theta.dtype.name] if tol is None else tol
        c0 = projection.load(st.theta, ws.theta0)
        if not c0 > radius:
            return 0 if c0 == c0 else -1
        S, lam = st.S, self.lam_next()

        def apply(v, out):
            _tilde_hv(S, lam, z, a, v, out)
        k = projection.lanczos_project(apply, ws, c0, radius, projection.MODE_H, lam, tol, kmax,
                                            max_steps)
        if k < 0 or not projection.finish(ws.out, radius, self.fmax):
            return -1
        st.theta[:] = ws.out
        return k

    def widths(self, V, out):
        st = self.state
        d = V.shape[1]
        lam = self.lam_next()
        for n in range(V.shape[0]):
            linalg.cg_solve(st.S, lam, V[n], 0.0, V[n], st.x, st.r, st.p, st.Ap, 4 * d, self.width_tol)
            out[n] = np.sqrt(max(linalg.dot(V[n], st.x), 0.0))

    def invalid(self, arrays):
        """Why a loaded payload cannot be a cg state (None if it can). O(d^2) (blocked): S with
        headroom, its trace within the updates' precision guard (eps trace S <= lambda_{t+1} /
        10, t read from the header: a larger one refuses every update), symmetric, and PSD as far
        as cheap tests can see (its diagonal, every 2 x 2 principal minor, Lanczos Ritz values:
        load_checks.symmetric_psd_problem), to -lambda_1 / 8, the threshold at which `step` refuses to
        go on: cal_H = lambda_t I + S stays >= 3/4 lambda_t."""
        theta, S = arrays[0], arrays[1]
        problem = load_checks.theta_problem(theta)
        if problem:
            return problem
        if not load_checks.max_abs(S) <= float(np.finfo(S.dtype).max) * load_checks.HEADROOM:
            return "the curvature matrix has entries beyond the dtype's headroom"
        # The step's precision guard keeps trace S eps <= lambda_{t+1} / 10 after every update,
        # fantasize and start; a larger trace refuses every update and makes widths NaN. The
        # slack covers the rounding of S's diagonal (relative eps / 2) and of the sum. Exact
        # sum (fsum): the same verdict on every CPU.
        lam_next = self.lam_next()
        tr = math.fsum(np.diagonal(S).tolist())
        if not tr * self.eps <= 0.1 * lam_next * (1.0 + TRACE_SLACK):
            return (f"the curvature matrix's trace ({tr:.3g}) is beyond what "
                    f"{S.dtype.name} holds next to lambda_t = {lam_next:.3g}")
        return load_checks.symmetric_psd_problem(S, self._psd_floor(S, self.lam_at(1)))

    @staticmethod
    def _psd_floor(S, lam_t):
        """How far below zero S may reach: lam_t / 8 (cal_H >= 3/4 lam_t with room for the
        drift between two probes), or the dtype's own rounding of S (8 d eps max|S|) where a
        small lam_t (warm-up) is below it."""
        d, eps = S.shape[0], float(np.finfo(S.dtype).eps)
        return max(lam_t / (2.0 * load_checks.FLOOR_SLACK), 8.0 * d * eps * load_checks.max_abs(S))

    # ---- choice among k (edge_omd/solvers/mnl.py): n = k - 1 rank-one terms per observation
    def choice_step(self, cw, w, eta):
        """Steps 1-2: K CG steps on (lambda_t I + S + eta X^T X) x = g, g = Z^T a (solved for g
        itself: CG from 0 is linear in the right-hand side, so k = 2 is the pair's step)."""
        st, cfg = self.state, self.config
        if self._curvature_lost(self.lam_next()):  # the pair's PSD probe (_syr_rows as syr_scaled)
            return False
        mnl.margins(st.theta, cw.Z, cw.m)
        mnl.weights(cw.m, w, cw.q, cw.Lw)
        mnl.rows(cw.Lw, cw.Z, math.sqrt(eta), cw.X)
        np.multiply(cw.q, -w, out=cw.b)
        mnl.combine(cw.Z, cw.b, cw.g)
        lam = self.lam_next()
        _cg_solve_rows(st.S, lam, cw.X, cw.g, st.x, st.r, st.p, st.Ap, cw.t, cfg.cg_steps,
                       cfg.cg_tol)
        kappa = 1.0 + (_trace(st.S) + mnl.sum_sq(cw.X)) / lam  # the pair's drift guard
        if linalg.move_drift(st.theta, st.x, eta, kappa, self.eps) > linalg.DRIFT_LIMIT:
            return False
        return bool(linalg.move_checked(st.theta, st.x, eta))

    def choice_absorb(self, cw, w):
        """Step 4: S <- forget S + sum_i x_i x_i^T at theta_{t+1}. False (nothing changed)
        when the curvature sum would outgrow what the dtype holds next to the damping: the
        pair's precision guard, (trace S + sum_i ||x_i||^2) eps > lambda_t / 10."""
        st = self.state
        mnl.margins(st.theta, cw.Z, cw.m)
        mnl.weights(cw.m, w, cw.q, cw.Lw)
        mnl.rows(cw.Lw, cw.Z, 1.0, cw.X)
        trace = _trace(st.S) + mnl.sum_sq(cw.X)
        if not trace * self.eps <= 0.1 * self.lam_next():
            return False
        _syr_rows(st.S, self.config.forget, cw.X)
        self._repair()
        return True

    def choice_hv(self, vec, out, tmp):
        _hv(self.state.S, self.lam_next(), vec, out)

    def choice_lower(self):
        return self.lam_next()

    def choice_theta0(self, ws):
        return projection.load(self.state.theta, ws.theta0)


@kernel(both("i8(F[:, ::1], f8, F[:, ::1], F[::1], F[::1], F[::1], F[::1], F[::1], f8[::1], i8, f8)"), group="choice")
def _cg_solve_rows(S, lam, X, b, x, r, p, Ap, xp, max_steps, tol):
    """linalg.cg_solve for (S + lam I + X^T X) x = b (a rank-n term instead of a z z^T);
    xp: (n,) scratch. Returns the steps taken."""
    d, n = b.shape[0], X.shape[0]
    max_steps = min(max_steps, 4 * d + 8)
    bb = linalg.cg_start(b, x, r, p)  # sums in loops that store nothing (linalg.cg_solve)
    rr = bb
    stop = tol * tol * bb
    steps = 0
    while steps < max_steps and rr > stop:
        linalg.symv_plus(S, p, lam, Ap)
        for l in range(n):
            xp[l] = linalg.dot(X[l], p)
        pAp = 0.0  # (the i loop holds a loop: never vectorised, one order whatever the addresses)
        for i in range(d):
            api = float(Ap[i])
            for l in range(n):
                api += float(X[l, i]) * xp[l]
            Ap[i] = api
            pAp += float(p[i]) * api
        if pAp <= 0.0:
            break
        rr = linalg.cg_advance(x, r, p, Ap, rr, pAp)
        steps += 1
    return steps


@kernel(both("void(F[:, ::1], f8)"))
def _shift_diagonal(S, mu):
    """S <- S + mu I (the probe's repair, `CGSolver._curvature_lost`)."""
    for i in range(S.shape[0]):
        S[i, i] = float(S[i, i]) + mu


@kernel(both("void(F[:, ::1], f8, F[:, ::1])"), group="choice")
def _syr_rows(S, gamma, X):
    """In place: S <- gamma S + sum_i x_i x_i^T (full symmetric storage, exactly symmetric)."""
    d, n = S.shape[0], X.shape[0]
    for i in range(d):
        row = S[i]
        for k in range(d):
            acc = gamma * float(row[k])
            for l in range(n):
                acc += float(X[l, i]) * float(X[l, k])
            row[k] = acc
