"""Exact local norm: cal_H = U^T U kept as its upper Cholesky factor U (d x d).

Why a Cholesky factor and not the Sherman-Morrison inverse: every update ADDS curvature, which
is a Cholesky *update* (rotations, unconditionally stable, diagonal stays positive), while the
inverse would need a *downdate* P - c u u^T whose cancellation errors pile up in float32 until
P stops being positive definite after long streams. The factor stays SPD by construction, so no
periodic refactorisation is needed. Cost per update: two triangular solves and one rank-one
update, O(d^2), over the upper triangle only.

Per observation (z, y, w) of Algorithm 1 (tilde_H = cal_H + a z z^T, a = eta w sigma'(theta.z)):
    v = cal_H^{-1} z,  q = z^T v                       (U^T u = z, U v = u)
    tilde_H^{-1} z = v / (1 + a q)                       (Sherman-Morrison on a vector)
    theta' = theta - eta w (sigma(theta.z) - y) v / (1 + a q)
    cal_H <- cal_H + w sigma'(theta_new.z) z z^T           (chol_update_upper)
"""
from typing import NamedTuple

import numpy as np

from edge_omd import linalg
from edge_omd._numba import both, kernel


class ExactState(NamedTuple):
    theta: np.ndarray  # (d,)   reward parameter
    U: np.ndarray      # (d, d) upper Cholesky factor of cal_H (lower triangle unused, zero)
    u: np.ndarray      # (d,)   work: U^{-T} z
    v: np.ndarray      # (d,)   work: cal_H^{-1} z
    x: np.ndarray      # (d,)   work: the rank-one update vector (destroyed by the update)


@kernel(both("f8(F[::1], F[:, ::1], F[::1], F[::1], F[::1], f8, f8, f8)"))
def _step(theta, U, z, u, v, y, w, eta):
    m = linalg.dot(theta, z)
    q = linalg.solve_upper_t(U, z, u)
    linalg.solve_upper(U, u, v)
    s = linalg.sigmoid(m)
    a = eta * w * s * (1.0 - s)
    coef = eta * w * (s - y) / (1.0 + a * q)
    for i in range(theta.shape[0]):
        theta[i] -= coef * float(v[i])
    return a


@kernel(both("f8(F[::1], F[:, ::1], F[::1], F[::1], f8)"))
def _absorb(theta, U, z, x, w):
    c = w * linalg.dsigmoid(linalg.dot(theta, z))
    sc = np.sqrt(c)
    for i in range(z.shape[0]):
        x[i] = sc * float(z[i])
    linalg.chol_update_upper(U, x)
    return c


@kernel(both("void(F[:, ::1], F[:, ::1], F[::1], f8[::1])"))
def _widths(U, V, work, out):
    for n in range(V.shape[0]):
        out[n] = np.sqrt(linalg.solve_upper_t(U, V[n], work))


@kernel(both("void(F[:, ::1], f8[::1], f8[::1], f8[::1])"))
def _hv(U, vec, tmp, out):
    """out = U^T U vec (upper triangle only), float64 in and out."""
    d = U.shape[0]
    for i in range(d):
        acc = 0.0
        for k in range(i, d):
            acc += float(U[i, k]) * vec[k]
        tmp[i] = acc
    for k in range(d):
        out[k] = 0.0
    for i in range(d):
        ti = tmp[i]
        for k in range(i, d):
            out[k] += float(U[i, k]) * ti


class ExactSolver:
    name = "exact"
    code = 1
    supports_forget = False

    @staticmethod
    def state_bytes(d, itemsize, rank=None):
        return (d * d + 4 * d) * itemsize

    def __init__(self, d, dtype, lam, **_):
        self.lam = float(lam)
        self.state = ExactState(*(np.zeros(s, dtype) for s in (d, (d, d), d, d, d)))
        self.reset()

    def reset(self):
        st = self.state
        for a in st:
            a.fill(0)
        np.fill_diagonal(st.U, np.sqrt(self.lam))

    def step(self, z, y, w, eta, t):
        st = self.state
        return _step(st.theta, st.U, z, st.u, st.v, y, w, eta)

    def absorb(self, z, w, forget, t):
        st = self.state
        return _absorb(st.theta, st.U, z, st.x, w)

    def matvec(self, vec, t):
        """cal_H vec in float64 (used by the projection)."""
        tmp, out = np.empty_like(vec), np.empty_like(vec)
        _hv(self.state.U, vec, tmp, out)
        return out

    def widths(self, V, out, t):
        _widths(self.state.U, V, self.state.u, out)

    def payload(self):
        return [self.state.theta, self.state.U]
