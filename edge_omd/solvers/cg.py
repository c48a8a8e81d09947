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
from typing import NamedTuple

import numpy as np

from edge_omd import linalg, projection
from edge_omd._numba import both, kernel
from edge_omd.solvers import ExplicitTheta


class CGState(NamedTuple):
    theta: np.ndarray  # (d,)   reward parameter
    S: np.ndarray      # (d, d) accumulated curvature sum_i w_i sigma'_i z_i z_i^T (no damping)
    x: np.ndarray      # (d,)   work: CG iterate
    r: np.ndarray      # (d,)   work: residual
    p: np.ndarray      # (d,)   work: search direction
    Ap: np.ndarray     # (d,)   work: tilde_H p


@kernel(both("f8(F[::1], F[:, ::1], F[::1], F[::1], F[::1], F[::1], F[::1], f8, f8, f8, f8, i8, f8)"))
def _step(theta, S, z, x, r, p, Ap, y, w, eta, lam_t, steps, tol):
    m = linalg.dot(theta, z)
    s = linalg.sigmoid(m)
    a = eta * w * s * (1.0 - s)
    linalg.cg_solve(S, lam_t, z, a, z, x, r, p, Ap, steps, tol)
    coef = eta * w * (s - y)
    if not math.isfinite(coef):
        return math.nan  # nothing moved
    return a if linalg.move_checked(theta, x, coef) else math.nan


@kernel(both("f8(F[::1], F[:, ::1], F[::1], f8, f8)"))
def _absorb(theta, S, z, w, forget):
    c = w * linalg.dsigmoid(linalg.dot(theta, z))
    linalg.syr_scaled(S, forget, c, z)
    return c


@kernel(both("void(F[:, ::1], f8, f8[::1], f8[::1])"))
def _hv(S, lam, vec, out):
    """out = (S + lam I) vec with float64 vectors: the projection's operator, no float64 copy of S."""
    for i in range(S.shape[0]):
        acc = lam * vec[i]
        row = S[i]
        for k in range(row.shape[0]):
            acc += float(row[k]) * vec[k]
        out[i] = acc


@kernel(both("void(F[:, ::1], f8, F[::1], f8, f8[::1], f8[::1])"))
def _tilde_hv(S, lam, z, a, vec, out):
    """out = tilde_H vec = (S + lam I) vec + a z (z.vec): the projection's operator (H mode).
    (Row dot products over the full S: a one-pass upper-triangle version, half the bytes, ran
    2.4x slower at d=384: its two updates per element do not vectorise.)"""
    zv = 0.0
    for i in range(z.shape[0]):
        zv += float(z[i]) * vec[i]
    azv = a * zv
    for i in range(S.shape[0]):
        acc = lam * vec[i] + azv * float(z[i])
        row = S[i]
        for k in range(row.shape[0]):
            acc += float(row[k]) * vec[k]
        out[i] = acc


class CGSolver(ExplicitTheta):
    name = "cg"
    code = 2
    supports_forget = True
    width_tol = 1e-10  # widths are read with CG run to convergence, not K steps

    @staticmethod
    def projection_shape(d, rank=None):
        """make_workspace arguments of this solver's projection (edge_omd/projection.py)."""
        return dict(small=1, kmax=projection.KMAX, steps=projection.STEPS_MAX)

    @staticmethod
    def state_bytes(d, itemsize, rank=None):
        return (d * d + 5 * d) * itemsize

    def __init__(self, d, dtype, lam, cg_steps=3, lam_warmup=0, cg_tol=1e-10, **_):
        self.lam = float(lam)
        self.cg_steps = int(cg_steps)
        self.lam_warmup = int(lam_warmup)
        self.cg_tol = float(cg_tol)
        self.state = CGState(*(np.zeros(s, dtype) for s in (d, (d, d), d, d, d, d)))
        self.fmax = float(np.finfo(dtype).max)

    def reset(self):
        for a in self.state:
            a.fill(0)

    def lam_at(self, t):
        """lambda_t = lambda_0 min(1, t / T) at round t (1-based); T = 0 means constant."""
        if self.lam_warmup <= 0:
            return self.lam
        return self.lam * min(1.0, t / self.lam_warmup)

    def step(self, z, y, w, eta, t):
        st = self.state
        return _step(st.theta, st.S, z, st.x, st.r, st.p, st.Ap, y, w, eta, self.lam_at(t + 1),
                     self.cg_steps, self.cg_tol)

    def absorb(self, z, w, forget, t, fresh=False):
        st = self.state
        return _absorb(st.theta, st.S, z, w, forget)

    def matvec(self, vec, t):
        """cal_H vec in float64 for the local norm after t updates (damping lambda_{t+1})."""
        out = np.empty_like(vec)
        _hv(self.state.S, self.lam_at(t + 1), vec, out)
        return out

    # step 3: H mode (an inverse would be a whole CG solve per Lanczos step)
    projection_mode = projection.MODE_H

    def project(self, ws, z, a, radius, t, mode=None, tol=None, kmax=None,
                max_steps=None):
        """Step 3 in place (see ExactSolver.project). cal_H is that of step 1 (damping
        lambda_{t+1}); only H mode is offered."""
        st = self.state
        tol = projection.TOL[st.theta.dtype.name] if tol is None else tol
        c0 = projection.load(st.theta, ws.theta0)
        if not c0 > radius:
            return 0 if c0 == c0 else -1
        S, lam = st.S, self.lam_at(t + 1)

        def apply(v, out):
            _tilde_hv(S, lam, z, a, v, out)
        k = projection.lanczos_project(apply, ws, c0, radius, projection.MODE_H, lam, tol, kmax,
                                            max_steps)
        if k < 0 or not projection.finish(ws.out, radius, self.fmax):
            return -1
        st.theta[:] = ws.out
        return k

    def widths(self, V, out, t):
        st = self.state
        d = V.shape[1]
        lam = self.lam_at(t + 1)
        for n in range(V.shape[0]):
            linalg.cg_solve(st.S, lam, V[n], 0.0, V[n], st.x, st.r, st.p, st.Ap, 4 * d, self.width_tol)
            out[n] = np.sqrt(max(linalg.dot(V[n], st.x), 0.0))

    @staticmethod
    def invalid(arrays):
        """Why a loaded payload cannot be a cg state (None if it can)."""
        S = arrays[1]
        top = float(np.abs(S).max()) if S.size else 0.0
        if float(np.abs(S - S.T).max()) > 1e-5 * top:
            return "the curvature matrix is not symmetric"
        if (np.diagonal(S) < 0).any():
            return "the curvature matrix has a negative diagonal"
        return None

    def payload(self):
        return [self.state.theta, self.state.S]
