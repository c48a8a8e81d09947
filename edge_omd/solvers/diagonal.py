"""Diagonal local norm: cal_H ~ diag(h), the floor when no sketch fits the budget.

    tilde_H = diag(h) + a z z^T  is solved exactly (Sherman-Morrison with a diagonal):
    v = z / h,  q = z^T v,  theta' = theta - eta w (sigma - y) v / (1 + a q)
    h <- forget h + (1 - forget) lam + w sigma'(theta_new.z) z*z
"""
import math

import numpy as np

from edge_omd import linalg, projection
from edge_omd._numba import both, kernel
from edge_omd.solvers import load_checks, mnl, prior_start
from edge_omd.solvers.base import F, ArraySpec, ExplicitTheta, SolverSpec

SPEC = SolverSpec("diagonal", code=4, doc="cal_H ~ diag(h).", arrays=(
    ArraySpec("theta", "d", F, True, "reward parameter"),
    ArraySpec("h", "d", F, True, "diagonal of cal_H (lam included)"),
    ArraySpec("v", "d", F, False, "work"),
))


@kernel(both("f8(F[::1], F[::1], F[::1], F[::1], f8, f8, f8)"), per_cpu=True)
def _step(theta, h, z, v, y, w, eta):
    m = linalg.dot(theta, z)
    for i in range(z.shape[0]):
        v[i] = float(z[i]) / float(h[i])
    return linalg.omd_move(theta, v, m, linalg.dot(v, z), y, w, eta)  # q = z.v, as stored


@kernel(both("f8(F[::1], F[::1], F[::1], f8, f8, f8)"), per_cpu=True)
def _absorb(theta, h, z, w, forget, lam):
    c = w * linalg.dsigmoid(linalg.dot(theta, z))
    floor = (1.0 - forget) * lam
    for i in range(z.shape[0]):
        zi = float(z[i])
        h[i] = forget * float(h[i]) + floor + c * zi * zi
    return c


@kernel(both("void(F[::1], F[:, ::1], f8[::1])"))
def _widths(h, V, out):
    for n in range(V.shape[0]):
        acc = 0.0
        for i in range(V.shape[1]):
            vi = float(V[n, i])
            acc += vi * vi / float(h[i])
        out[n] = np.sqrt(acc)


@kernel(both("i8(F[::1], F[::1], F[::1], f8, f8, f8[::1])"))
def _project(theta, h, z, a, radius, out):
    """Step 3 for tilde_H = diag(h) + a z z^T, no Krylov space needed: with b = tilde_H theta',
        theta(mu) = (tilde_H + mu I)^{-1} b = (b - c z) / (h + mu),  c = a (z.(b/(h+mu))) / (1 + a z.(z/(h+mu)))
    (Sherman-Morrison), d theta / d mu = -(tilde_H + mu I)^{-1} theta(mu) likewise, and Newton on
    1/||theta(mu)|| - 1/radius from mu = 0 (concave: monotone), bracketed. Two O(d) passes per
    Newton step, no vector but `out`. Returns the Newton steps (0: theta' inside), -1 if not finite."""
    d = theta.shape[0]
    zt = 0.0
    tt = 0.0
    for i in range(d):
        zt += float(z[i]) * float(theta[i])
        tt += float(theta[i]) * float(theta[i])
    if not math.sqrt(tt) > radius:
        return 0 if tt == tt else -1
    # solve for theta' / radius and the unit ball (mu is scale-free): no under/overflow
    sc = 1.0 / radius
    zt *= sc
    mu, lo, hi = 0.0, 0.0, math.inf
    c = 0.0
    it = 0
    while it < 200:
        it += 1
        szb = 0.0
        szz = 0.0
        for i in range(d):
            zi = float(z[i])
            inv = 1.0 / (float(h[i]) + mu)
            bi = float(h[i]) * float(theta[i]) * sc + a * zi * zt
            szb += zi * bi * inv
            szz += zi * zi * inv
        c = a * szb / (1.0 + a * szz)
        nn = 0.0
        sq = 0.0
        szx = 0.0
        for i in range(d):
            zi = float(z[i])
            inv = 1.0 / (float(h[i]) + mu)
            xi = (float(h[i]) * float(theta[i]) * sc + a * zi * zt - c * zi) * inv
            nn += xi * xi
            sq += xi * xi * inv
            szx += zi * xi * inv
        nx = math.sqrt(nn)
        if not math.isfinite(nx):
            return -1
        if abs(nx - 1.0) <= 1e-14:
            break
        if nx > 1.0:
            lo = mu
        else:
            hi = mu
        xg = sq - a * szx / (1.0 + a * szz) * szx   # x.(tilde_H + mu I)^{-1} x = -x.dx/dmu
        mu_new = mu + (nx - 1.0) * (nx * (nx / xg)) if xg > 0.0 else -1.0
        if not (lo < mu_new < hi):
            mu_new = 0.5 * (lo + hi) if hi < math.inf else 2.0 * lo + 1e-300
        if mu_new == mu:
            break
        mu = mu_new
    for i in range(d):
        zi = float(z[i])
        out[i] = radius * (float(h[i]) * float(theta[i]) * sc + a * zi * zt - c * zi) / (float(h[i]) + mu)
    return it


class DiagonalSolver(ExplicitTheta):
    spec = SPEC

    @staticmethod
    def projection_shape(d, rank=None):
        """make_workspace arguments of this solver's projection: no Krylov basis, `out` only."""
        return dict(small=1, kmax=0, steps=0)

    def reset(self):
        super().reset()
        self.state.h.fill(self.lam)

    def _start(self, theta0, c, V, sign):
        """A prior's start (Solver.start): h = the diagonal of (lam + c) I + sign V^T V, i.e.
        lam + c + sign sum_j V_j^2 (prior_start.col_sum_sq), rounded to the dtype once. The
        off-diagonal curvature is dropped, as at every update: an APPROXIMATE start (exact
        only for a diagonal V^T V). With sign = -1, h >= lam (the diagonal of the caller's
        c I - V^T V >= 0), floored at lam for rounding."""
        st = self.state
        h = np.empty(st.h.shape[0])
        prior_start.col_sum_sq(V, h)
        h = (self.lam + c) + sign * h
        st.h[:] = np.maximum(h, self.lam) if sign < 0.0 else h
        st.theta[:] = theta0

    def step(self, z, y, w):
        st = self.state
        return _step(st.theta, st.h, z, st.v, y, w, self.config.eta)

    def absorb(self, z, w):
        st = self.state
        return _absorb(st.theta, st.h, z, w, self.config.forget, self.lam)

    def fantasize(self, z, w):
        st = self.state
        return _absorb(st.theta, st.h, z, w, 1.0, self.lam)

    def matvec(self, vec):
        return self.state.h.astype(np.float64) * vec

    # step 3: the secular equation directly (no Lanczos basis)
    def project(self, ws, z, a, mode=None, tol=None, kmax=None, max_steps=None):
        """Step 3 in place (see ExactSolver.project); returns the Newton steps taken."""
        st, radius = self.state, self.config.radius
        k = _project(st.theta, st.h, z, a, radius, ws.out)
        if k <= 0:
            return k
        if not projection.finish(ws.out, radius, self.fmax):
            return -1
        st.theta[:] = ws.out
        return k

    def widths(self, V, out):
        _widths(self.state.h, V, out)

    def invalid(self, arrays):
        """Why a loaded payload cannot be a diagonal state (None if it can): h >= lam (up to
        its rounding to the dtype; every update keeps h_i >= lam) with headroom."""
        theta, h = arrays[0], arrays[1]
        problem = load_checks.theta_problem(theta)
        if problem:
            return problem
        eps, fmax = float(np.finfo(h.dtype).eps), float(np.finfo(h.dtype).max)
        if not (h >= float(h.dtype.type(self.lam)) * (1.0 - 4.0 * eps)).all():
            return "the diagonal local norm is below lam"
        if not load_checks.max_abs(h) <= fmax * load_checks.HEADROOM:
            return "the diagonal local norm has entries beyond the dtype's headroom"
        return None

    # ---- choice among k (edge_omd/solvers/mnl.py): n = k - 1 rank-one terms per observation
    def choice_step(self, cw, w, eta):
        """Steps 1-2, exactly for tilde_H = diag(h) + eta X^T X (Woodbury): v_j = z_j / h."""
        st = self.state
        _div_rows(st.h, cw.Z, cw.V)
        mnl.margins(st.theta, cw.Z, cw.m)
        mnl.weights(cw.m, w, cw.q, cw.Lw)
        mnl.gram(cw.V, cw.Z, cw.C)
        if math.isnan(mnl.step_coef(cw.C, cw.Lw, cw.q, w, eta, cw.K, cw.t, cw.b)):
            return False
        return bool(mnl.move(st.theta, cw.V, cw.b, eta, cw.g))

    def choice_absorb(self, cw, w):
        """Step 4: h <- forget h + (1 - forget) lam + sum_i x_i^2 (the Hessian's diagonal)."""
        st = self.state
        mnl.margins(st.theta, cw.Z, cw.m)
        mnl.weights(cw.m, w, cw.q, cw.Lw)
        mnl.rows(cw.Lw, cw.Z, 1.0, cw.X)
        _absorb_rows(st.h, cw.X, self.config.forget, self.lam)
        return True

    def choice_hv(self, vec, out, tmp):
        _hv_diag(self.state.h, vec, out)

    def choice_lower(self):
        return self.lam

    #: step 3 of a choice is M-mode Lanczos run to the precision of the pair's secular solve
    choice_tol = {"float32": 1e-13, "float64": 1e-13}

    def choice_inv(self, vec, out, tmp):
        """cal_H^{-1} vec = vec / h (float64)."""
        _inv_diag(self.state.h, vec, out)

    def choice_theta0(self, ws):
        return projection.load(self.state.theta, ws.theta0)


@kernel(both("void(F[::1], F[:, ::1], F[:, ::1])"), group="choice")
def _div_rows(h, Z, V):
    """V_j = z_j / h."""
    for j in range(Z.shape[0]):
        for i in range(h.shape[0]):
            V[j, i] = float(Z[j, i]) / float(h[i])


@kernel(both("void(F[::1], F[:, ::1], f8, f8)"), group="choice")
def _absorb_rows(h, X, forget, lam):
    floor = (1.0 - forget) * lam
    for i in range(h.shape[0]):
        acc = forget * float(h[i]) + floor
        for l in range(X.shape[0]):
            xi = float(X[l, i])
            acc += xi * xi
        h[i] = acc


@kernel(both("void(F[::1], f8[::1], f8[::1])"), group="choice")
def _hv_diag(h, vec, out):
    for i in range(h.shape[0]):
        out[i] = float(h[i]) * vec[i]


@kernel(both("void(F[::1], f8[::1], f8[::1])"), group="choice")
def _inv_diag(h, vec, out):
    for i in range(h.shape[0]):
        out[i] = vec[i] / float(h[i])
