"""Exact local norm: cal_H = U^T U kept as its upper Cholesky factor U (d x d), with theta kept
implicitly as phi = U theta.

Why a Cholesky factor and not the Sherman-Morrison inverse: every update ADDS curvature, which
is a Cholesky *update* (Givens rotations: backward stable, the diagonal stays positive), so the
factor is SPD by construction and needs no periodic re-symmetrisation or refactorisation. The
inverse would need a *downdate* P - c u u^T, whose positive definiteness float32 rounding does
not guarantee. (Measured in bench/runtime.py, 100k float32 updates in an 8-dim subspace of
d=64: both stay accurate, theta within 2.4e-3 (Cholesky) and 1.1e-3 (inverse) of float64; the
guarantee, not an observed failure, is the reason.)

Why phi = U theta: with it one step needs only the forward solve u = U^{-T} z:
    theta.z = phi.u,   z^T cal_H^{-1} z = u.u,   U (cal_H^{-1} z) = u
so theta' = theta - coef cal_H^{-1} z  is  phi' = phi - coef u, with no back substitution. The
rank-one update cal_H + x x^T (x = sqrt(w sigma'(theta'.z)) z) rotates [U; x^T] into [U_new; 0];
the same rotations applied to [phi'; x.theta'] give U_new theta' (the system is rotated as a
whole), O(d) extra. The update is deferred to the next step and fused with its forward solve
(both sweep U top-down), so one step is ONE read-write pass over the upper triangle.
theta itself is recovered by back substitution only when asked for (scoring, persistence).
This module holds the state and the solver's verbs; the Numba kernels are in exact_kernels.py.

Per observation (z, y, w) of Algorithm 1, a = eta w sigma'(theta.z):
    tilde_H^{-1} z = cal_H^{-1} z / (1 + a q),   q = z^T cal_H^{-1} z        (Sherman-Morrison on a vector)
    theta' = theta - eta w (sigma(theta.z) - y) cal_H^{-1} z / (1 + a q)
    cal_H <- cal_H + w sigma'(theta'.z) z z^T
"""
import math

import numpy as np

from edge_omd import linalg, projection
from edge_omd._numba import per_cpu_module
from edge_omd.solvers import load_checks, prior_start
from edge_omd.solvers.base import F, F8, ArraySpec, Solver, SolverSpec
from edge_omd.solvers.exact_kernels import (BOUND, PENDING, THETA_OK, _TINY,
                                            _absorb, _choice_absorb, _choice_step,
                                            _fantasy_curvature, _hv, _inv_apply, _phi_drift,
                                            _phi_from_theta, _phi_tolerance, _step, _sweep,
                                            _tilde_apply, _theta64, _theta_from_phi, _widths)

# The exact solver's states agree across CPUs to a tolerance: its update kernels (exact_kernels)
# are declared per_cpu, and PER_CPU_MODULES is read by solver module.
per_cpu_module(__name__)

SPEC = SolverSpec("exact", code=1, supports_forget=False, doc=(
    "cal_H = U^T U. theta is derived from U and phi with every pending update applied, so a "
    "loaded state is written back byte for byte."), arrays=(
    ArraySpec("theta", "d", F, True, "theta = U^{-1} phi, refreshed on demand (aux[THETA_OK])"),
    ArraySpec("U", "d, d", F, True, "upper Cholesky factor of cal_H (lower triangle zero)"),
    ArraySpec("phi", "d", F8, True, "U theta"),
    ArraySpec("xp", "d", F, False, "pending rank-one update vector x (aux[PENDING]); destroyed by it"),
    ArraySpec("u", "d", F, False, "work: U^{-T} z"),
    ArraySpec("rot", "3", F, False, "work: one Givens rotation in the state's dtype"),
    ArraySpec("aux", "4", F8, False, "x.theta of the pending update, pending flag, theta-valid "
              "flag, an upper bound on ||theta||_2 (overflow guard)"),
))


class ExactSolver(Solver):
    spec = SPEC
    MIN_LAM_FLOAT32 = 1e-6  # the step's guard (c ||z||^2 eps <= lam / 10) at ||z|| = 1

    @staticmethod
    def projection_shape(d, rank=None):
        """make_workspace arguments of this solver's projection (edge_omd/projection.py)."""
        return dict(small=1, kmax=projection.KMAX, steps=projection.STEPS_MAX)

    def reset(self):
        super().reset()
        np.fill_diagonal(self.state.U, np.sqrt(self.lam))
        self.state.aux[THETA_OK] = 1.0

    def _start(self, theta0, c, V, sign):
        """A prior's start (Solver.start): U = the Cholesky factor of (lam + c) I + sign V^T V,
        from sqrt(lam + c) I by r rank-one updates (sign = -1: downdates, pivots floored at
        sqrt(lam), the floor cal_H_0 >= lam I gives) in one float64 pass
        (prior_start.chol_rows_upper, O(r d^2)), rounded to the dtype once; theta = theta0 rounded;
        phi = U theta from the rounded arrays (so phi = U theta holds as the loader checks it).
        Nothing of the start is lost."""
        st, d = self.state, self.state.U.shape[0]
        U = np.zeros((d, d))
        np.fill_diagonal(U, math.sqrt(self.lam + c))
        if V.shape[0]:
            prior_start.chol_rows_upper(U, V.copy(), sign, self.lam)
        st.U[...] = U
        st.theta[:] = theta0
        theta = st.theta.astype(np.float64)
        _phi_from_theta(st.U, theta, st.phi)
        st.aux[:] = (0.0, 0.0, 1.0, projection.norm2(theta))

    def flush(self):
        """Apply the pending rank-one update now (U and phi become current)."""
        st = self.state
        if st.aux[PENDING] != 0.0:
            _sweep(st.U, st.phi, st.xp, st.xp, st.u, st.rot, st.aux, False)

    def theta(self):
        """theta as the state's array (refreshed by back substitution if stale)."""
        st = self.state
        if st.aux[THETA_OK] != 1.0:
            # Always derived from the FLUSHED U, phi: the sweep is flush-invariant, so these are
            # the same bits however often the live model was flushed, and a recovered model
            # (checkpoint + replay) scores with exactly the live model's theta. A valid theta
            # survives later flushes (fantasize leaves it bit-stable).
            self.flush()
            _theta_from_phi(st.U, st.phi, st.theta)
            st.aux[THETA_OK] = 1.0
        return st.theta

    def set_theta(self, theta64):
        """Replace theta (after a projection); U must be current (it is, right after a step)."""
        st = self.state
        st.theta[:] = theta64
        _phi_from_theta(st.U, theta64, st.phi)
        st.aux[THETA_OK] = 0.0  # re-derive from phi so theta and phi agree exactly
        st.aux[BOUND] = projection.norm2(theta64)

    def step(self, z, y, w):
        st = self.state
        if self._precision_lost():
            return math.nan
        return _step(st.U, st.phi, st.theta, st.xp, z, st.u, st.rot, st.aux, y, w,
                     self.config.eta, self.lam, self.fmax, self.eps)

    def _precision_lost(self):
        """The precision guard, run before an update every linalg.probe_period(d) updates
        (amortised O(d) per update): True (refuse; nothing has moved) once
        eps * lambda_max / lambda_min of cal_H > linalg.KAPPA_EPS_LIMIT, both estimated by
        linalg.EIG_STEPS power-iteration steps on cal_H and on cal_H^{-1} (two triangular
        sweeps each). The factor holds cal_H only to ~eps lambda_max (rounding that piles up
        over the updates), which is noise against the smallest eigenvalue once the condition
        number nears 1 / eps: theta = U^{-1} phi then drifts from what float64 gives (a
        nearly-collinear stream, float32: 1e-2 after ~1.9e5 updates at d = 6). A pending update
        is applied first (the sweep is flush-invariant): the probe reads the flushed U, a
        function of the observations alone, so a replayed model refuses where the live one did."""
        if not linalg.probe_due(int(self.counter[0]), self.state.U.shape[0]):
            return False
        lmax, lmin = self.extreme_eigenvalues()
        return not self.eps * lmax <= linalg.KAPPA_EPS_LIMIT * lmin

    def _start_problem(self, theta0, c, V, sign):
        """Solver._start_problem, and a start the precision guard would refuse at its first
        probe: eps * lambda_max / lambda_min of cal_H_0 = (lam + c) I + sign V^T V above
        linalg.KAPPA_EPS_LIMIT (exact eigenvalues: lam + c + sign those of V^T V,
        prior_start.low_rank_extremes, O(r^2 d + min(r, d)^3))."""
        problem = super()._start_problem(theta0, c, V, sign)
        if problem:
            return problem
        a = self.lam + c
        gmax, gmin = prior_start.low_rank_extremes(V)
        lmax, lmin = (a + gmax, a + gmin) if sign > 0.0 else (a - gmin, max(a - gmax, self.lam))
        if not self.eps * lmax <= linalg.KAPPA_EPS_LIMIT * lmin:
            return (f"its condition number ({lmax / lmin:.3g}) is beyond what "
                    f"{self.state.U.dtype.name} holds (eps * kappa <= {linalg.KAPPA_EPS_LIMIT:g}, the "
                    "exact solver's precision guard); lower the prior's strength, raise lam, or "
                    "use float64")
        return None

    def extreme_eigenvalues(self):
        """(lmax, lmin): the precision guard's estimates of cal_H's extreme eigenvalues
        (linalg.extreme_eigenvalues; lmax / lmin never overstates the condition number).
        Flushes a pending update (bytes unchanged: the sweep is flush-invariant)."""
        st = self.state
        d = st.U.shape[0]
        self.flush()
        U, tmp = st.U, np.empty(d)

        def apply(v, out):
            _hv(U, v, tmp, out)

        def apply_inv(v, out):
            _inv_apply(U, st.u, 0.0, v, tmp, out)  # a = 0: u is not read
        return linalg.extreme_eigenvalues(apply, apply_inv, d)

    def absorb(self, z, w):
        """Step 4, right after a step: u = U^{-T} z is current, the update is deferred."""
        st = self.state
        return _absorb(st.phi, st.xp, z, st.u, st.aux, w)

    def fantasize(self, z, w):
        """No step before: make U current and solve for z first. Returns c, or NaN (nothing
        changed) when c z z^T is beyond what the dtype holds next to lam (the step's guard).

        theta stays bit for bit (scoring is stable) while the update rotates U and phi: phi is
        then U theta only up to the rotation's rounding, which the dtype amplifies by up to
        sqrt(1 + c z^T cal_H^{-1} z) (the Givens recurrence divides by the old diagonal; float32,
        lam = 1e-9: 287 x the loader's tolerance after ONE fantasize). So the update is applied
        now (the same bits as a later flush) and phi checked against U theta as the loader
        checks it (O(d^2), one pass); past a quarter of its tolerance phi is set to U theta (the
        theta the state holds, not moved). Ordinary inputs never come near it: bytes unchanged."""
        st = self.state
        self.flush()
        linalg.solve_upper_t(st.U, z, st.u)
        c = _fantasy_curvature(st.phi, z, st.u, w)
        if not (math.isfinite(c) and c * linalg.dot(z, z) * self.eps <= 0.1 * self.lam):
            return math.nan
        c = _absorb(st.phi, st.xp, z, st.u, st.aux, w)
        if st.aux[THETA_OK] == 1.0:
            self.flush()
            tol = 0.25 * _phi_tolerance(st.U.dtype, st.U.shape[0])
            if _phi_drift(st.U, st.theta, st.phi, tol, _TINY[st.U.dtype.itemsize]):
                _phi_from_theta(st.U, st.theta.astype(np.float64), st.phi)
        return c

    def matvec(self, vec):
        """cal_H vec in float64 (tests and benches; allocates its result)."""
        tmp, out = np.empty_like(vec), np.empty_like(vec)
        _hv(self.state.U, vec, tmp, out)
        return out

    # ---- step 3 (edge_omd/projection.py): right after a step, U is current and u = U^{-T} z
    projection_mode = projection.MODE_M

    def keep(self, ws):
        """Remember theta_t before step 2 (phi, theta and their flags) for a rollback. The
        pending curvature update is applied first (one extra read of U per update, only with a
        radius): step 2's fused sweep would rotate phi with it, and a rollback must give back
        exactly the bits a model that never saw this observation has (the flush-invariant
        sweep: a flush and the fused sweep give the same U and phi)."""
        st = self.state
        self.flush()
        ws.prev[0, :] = st.phi
        ws.prev[1, :] = st.theta
        ws.scal[6], ws.scal[7] = st.aux[THETA_OK], st.aux[BOUND]

    def restore(self, ws):
        """Undo step 2 (U is as `keep` left it: flushed)."""
        st = self.state
        st.phi[:] = ws.prev[0]
        st.theta[:] = ws.prev[1]
        st.aux[THETA_OK], st.aux[BOUND] = ws.scal[6], ws.scal[7]

    def project(self, ws, z, a, mode=None, tol=None, kmax=None, max_steps=None):
        """Step 3 in place. Returns the Lanczos steps taken (0: theta' was inside the ball), or
        a negative number (nothing changed) if no finite projection was found."""
        st, radius = self.state, self.config.radius
        tol = projection.TOL[st.theta.dtype.name] if tol is None else tol
        c0 = _theta64(st.U, st.phi, ws.theta0)
        if not c0 > radius:
            return 0 if c0 == c0 else -1
        mode = self.projection_mode if mode is None else mode
        U, u, tmp = st.U, st.u, ws.tmp
        if mode == projection.MODE_M:
            def apply(v, out):
                _inv_apply(U, u, a, v, tmp, out)
        else:
            def apply(v, out):
                _tilde_apply(U, z, a, v, tmp, out)
        k = projection.lanczos_project(apply, ws, c0, radius, mode, self.lam, tol, kmax,
                                            max_steps)
        if k < 0 or not projection.finish(ws.out, radius, self.fmax):
            return -1
        self.set_theta(ws.out)
        return k

    def widths(self, V, out):
        self.flush()
        _widths(self.state.U, V, self.state.u, out)

    def invalid(self, arrays):
        """Why a loaded payload cannot be an exact state (None if it can). O(d^2) (blocked):
        U upper triangular with a diagonal >= sqrt(lam) (a Cholesky update never lowers it, and
        U_kk^2 is a Schur complement of cal_H >= lam I), entries with headroom, phi = U theta to
        sqrt(eps) of |U| |theta| (componentwise, float64), and no eigenvalue of
        cal_H = U^T U below lam / FLOOR_SLACK along PROBE_STEPS power-iteration steps of
        cal_H^{-1} (two triangular sweeps each; the estimate never exceeds the truth, so a
        refusal is certain, and a state far below the floor is caught with high probability)."""
        theta, U, phi = arrays
        d, F = U.shape[0], U.dtype
        eps, fmax = float(np.finfo(F).eps), float(np.finfo(F).max)
        problem = load_checks.theta_problem(theta)
        if problem:
            return problem
        if load_checks.below_diagonal(U):
            return "the Cholesky factor is not upper triangular"
        if not (np.diagonal(U) >= float(F.type(math.sqrt(self.lam))) * (1.0 - 2.0 * eps)).all():
            return "the Cholesky factor's diagonal is below sqrt(lam)"
        if not load_checks.max_abs(U) <= math.sqrt(fmax * load_checks.HEADROOM):  # cal_H = U^T U
            return "the Cholesky factor has entries beyond the dtype's headroom"
        # theta is re-derived from phi after every step, but a fantasize keeps it while it
        # rotates U and phi (bit-stable scoring): each rotation adds ~eps |U| |theta| (more for
        # a large one, which fantasize repairs). sqrt(eps) (float32: 3.5e-4 relative) admits
        # thousands of them and no real mismatch. The check is `_phi_drift`'s, on the model's
        # own (writable) buffers, refilled on load.
        st = self.state
        st.U[...] = U
        st.theta[:] = theta
        st.phi[:] = phi
        if _phi_drift(st.U, st.theta, st.phi, _phi_tolerance(F, d), _TINY[F.itemsize]):
            return "phi is not U theta"
        st.u.fill(0)
        x, tmp, out = load_checks.probe_start(d).copy(), np.empty(d), np.empty(d)
        for _ in range(load_checks.PROBE_STEPS):
            _inv_apply(st.U, st.u, 0.0, x, tmp, out)  # cal_H^{-1} x
            rho = linalg.norm64(out)
            if not rho * self.lam <= load_checks.FLOOR_SLACK:
                return "cal_H has an eigenvalue below lam / 4"
            x = out / rho
        return None

    def payload(self):
        # theta as `theta()` derives it (from the flushed U, phi): the bytes are a function of
        # the observations alone (a journal replay gives the same bytes), and a loaded state is
        # written back unchanged
        self.theta()
        return super().payload()

    def rederive(self):
        """theta = U^{-1} phi in this dtype (a float32 theta is only near U^{-1} phi to float32's
        rounding, beyond the float64 loader's phi tolerance)."""
        st = self.state
        _theta_from_phi(st.U, st.phi, st.theta)
        self.loaded()

    def loaded(self):
        """After payload arrays were filled from a file: theta and phi are both current."""
        theta = self.state.theta.astype(np.float64)
        self.state.aux[:] = (0.0, 0.0, 1.0, projection.norm2(theta))

    # ---- choice among k (edge_omd/solvers/mnl.py): n = k - 1 rank-one terms per observation
    def choice_keep(self, cw):
        """Apply a pending update, then remember theta_t (phi, theta, flags) for a rollback."""
        st = self.state
        self.flush()
        cw.keep[0] = st.phi
        cw.keep[1] = st.theta
        cw.aux[0], cw.aux[1] = st.aux[THETA_OK], st.aux[BOUND]

    def choice_restore(self, cw):
        st = self.state
        st.phi[:] = cw.keep[0]
        st.theta[:] = cw.keep[1]
        st.aux[THETA_OK], st.aux[BOUND] = cw.aux[0], cw.aux[1]

    def choice_step(self, cw, w, eta):
        """Steps 1-2: V = U^{-T} Z in one pass over U (so theta.z_j = phi.v_j and
        C = Z cal_H^{-1} Z^T = V V^T), then phi' = phi - eta V^T b. False: nothing moved."""
        st = self.state
        if self._precision_lost():
            return False
        return not math.isnan(_choice_step(st.U, st.phi, cw.Z, cw.V, cw.m, cw.q, cw.Lw, cw.C,
                                           cw.K, cw.t, cw.b, st.aux, cw.g, w, eta, self.lam,
                                           self.fmax))

    def choice_absorb(self, cw, w):
        """Step 4: the n rows x_i at theta_{t+1} (theta.z_j = phi.v_j: U is unchanged since the
        solve) added by n Cholesky updates in one pass over U. False (nothing changed) when the
        rows would wipe out the factor's precision (the pair's guard: trace eps > lam / 10)."""
        st = self.state
        return bool(_choice_absorb(st.U, st.phi, cw.Z, cw.V, cw.X, cw.m, cw.q, cw.Lw, cw.e,
                                   cw.rot, st.aux, w, self.eps, self.lam))

    def choice_hv(self, vec, out, tmp):
        """cal_H vec (float64) for step 3 (U is current: flushed before the step)."""
        _hv(self.state.U, vec, tmp, out)

    def choice_lower(self):
        return self.lam

    def choice_inv(self, vec, out, tmp):
        """cal_H^{-1} vec (float64): two triangular sweeps (step 3's M mode, as the pair's)."""
        _inv_apply(self.state.U, self.state.u, 0.0, vec, tmp, out)

    def choice_theta0(self, ws):
        """theta' in float64 into ws.theta0; returns its norm."""
        return _theta64(self.state.U, self.state.phi, ws.theta0)
