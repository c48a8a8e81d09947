"""Diagonal local norm: cal_H ~ diag(h), the floor when no sketch fits the budget.

    tilde_H = diag(h) + a z z^T  is solved exactly (Sherman-Morrison with a diagonal):
    v = z / h,  q = z^T v,  theta' = theta - eta w (sigma - y) v / (1 + a q)
    h <- forget h + (1 - forget) lam + w sigma'(theta_new.z) z*z
"""
from typing import NamedTuple

import numpy as np

from edge_omd import linalg
from edge_omd._numba import both, kernel
from edge_omd.solvers import ExplicitTheta


class DiagonalState(NamedTuple):
    theta: np.ndarray  # (d,) reward parameter
    h: np.ndarray      # (d,) diagonal of cal_H (lam included)
    v: np.ndarray      # (d,) work


@kernel(both("f8(F[::1], F[::1], F[::1], F[::1], f8, f8, f8)"))
def _step(theta, h, z, v, y, w, eta):
    m = linalg.dot(theta, z)
    q = 0.0
    for i in range(z.shape[0]):
        vi = float(z[i]) / float(h[i])
        v[i] = vi
        q += vi * float(z[i])
    return linalg.omd_move(theta, v, m, q, y, w, eta)


@kernel(both("f8(F[::1], F[::1], F[::1], f8, f8, f8)"))
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


class DiagonalSolver(ExplicitTheta):
    name = "diagonal"
    code = 4
    supports_forget = True

    @staticmethod
    def state_bytes(d, itemsize, rank=None):
        return 3 * d * itemsize

    def __init__(self, d, dtype, lam, **_):
        self.lam = float(lam)
        self.state = DiagonalState(*(np.zeros(d, dtype) for _ in range(3)))
        self.reset()

    def reset(self):
        for a in self.state:
            a.fill(0)
        self.state.h.fill(self.lam)

    def step(self, z, y, w, eta, t):
        st = self.state
        return _step(st.theta, st.h, z, st.v, y, w, eta)

    def absorb(self, z, w, forget, t, fresh=False):
        st = self.state
        return _absorb(st.theta, st.h, z, w, forget, self.lam)

    def matvec(self, vec, t):
        return self.state.h.astype(np.float64) * vec

    def widths(self, V, out, t):
        _widths(self.state.h, V, out)

    @staticmethod
    def invalid(arrays):
        """Why a loaded payload cannot be a diagonal state (None if it can)."""
        return None if (arrays[1] > 0).all() else "the diagonal local norm is not positive"

    def payload(self):
        return [self.state.theta, self.state.h]
