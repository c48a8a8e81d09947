"""The start of a population prior (Solver.start): cal_H_0 = (lam + c) I + sign V^T V from V:
(r, d) float64, every sum in a fixed order in float64 (no BLAS, no LAPACK), so a started state
has the same bits on every CPU.

Kernels of group "start", compiled once per process in float64 (`ensure_start_compiled`)
whatever the model's dtype; each solver's `start` calls the ones its representation needs.
"""
import math

import numpy as np

from edge_omd._numba import ensure_compiled, kernel, lanes_dot
from edge_omd.errors import NumericalError
from edge_omd.linalg import sym_eigen


@kernel(["f8(f8[:, ::1])"], group="start")
def sum_sq64(V):
    """||V||_F^2, the rows' lanes_dot summed in order."""
    acc = 0.0
    for i in range(V.shape[0]):
        acc += lanes_dot(V[i], V[i])
    return acc


@kernel(["void(f8[:, ::1], f8[:, ::1])"], group="start")
def gram64(V, G):
    """G = V V^T (r x r) by lanes_dot, exactly symmetric."""
    for i in range(V.shape[0]):
        for k in range(i + 1):
            acc = lanes_dot(V[i], V[k])
            G[i, k] = acc
            G[k, i] = acc


@kernel(["void(f8[:, ::1], f8, f8, f8[:, ::1])"], group="start")
def low_rank_plus(V, c, sign, out):
    """out = c I + sign V^T V (d x d, sign = +-1), one row at a time: out_ik = sum_j V_ji V_jk
    over the rows of V in order (the loop over k vectorises element by element), then sign and
    c applied once. Exactly symmetric without mirroring: V_ji V_jk and V_jk V_ji are the same
    product, summed in the same order. O(r d^2)."""
    for i in range(out.shape[0]):
        row = out[i]
        for k in range(row.shape[0]):
            row[k] = 0.0
        for j in range(V.shape[0]):
            v = V[j]
            vi = v[i]
            for k in range(row.shape[0]):
                row[k] += vi * v[k]
        for k in range(row.shape[0]):
            row[k] = sign * row[k]
        row[i] = c + row[i]


@kernel(["void(f8[:, ::1], f8[::1])"], group="start")
def col_sum_sq(V, out):
    """out_i = sum_j V_ji^2 (the diagonal of V^T V), summed over the rows in order."""
    for i in range(out.shape[0]):
        out[i] = 0.0
    for j in range(V.shape[0]):
        v = V[j]
        for i in range(out.shape[0]):
            out[i] += v[i] * v[i]


@kernel(["void(f8[:, ::1], f8[:, ::1], f8[:, ::1])"], group="start")
def combine_rows(C, V, out):
    """out = C V ((n, r) times (r, d), float64), each entry summed over the rows of V in order."""
    for i in range(out.shape[0]):
        o = out[i]
        for j in range(o.shape[0]):
            o[j] = 0.0
        for k in range(V.shape[0]):
            coef, v = C[i, k], V[k]
            for j in range(o.shape[0]):
                o[j] += coef * v[j]


@kernel(["void(f8[:, ::1], f8[:, ::1], f8, f8)"], group="start")
def chol_rows_upper(U, X, sign, floor):
    """In place: U^T U <- U^T U + sign sum_i x_i x_i^T (sign = +-1) for an upper-triangular
    float64 U, the r rows of X (destroyed) in ONE top-down pass: at row k each row's rotation
    is formed from the diagonal the previous one left, then applied to the row's tail (as
    linalg.chol_update_upper for each x_i in turn). sign = +1: Givens rotations (LINPACK's
    dchud). sign = -1: the downdate's hyperbolic rotations in mixed form (r = sqrt(u^2 - x^2),
    u' = (u - s x) / c, x' = c x - s u', s = x / u_kk, c = r / u_kk), stable when every
    intermediate U^T U - sum x_i x_i^T stays >= floor I, which the caller guarantees; each
    downdated pivot^2 is floored at `floor` (a Schur complement of such a matrix is >= floor),
    so the floor only absorbs rounding. O(r d^2)."""
    d, r = U.shape[0], X.shape[0]
    for k in range(d):
        ukk = U[k, k]
        row = U[k, k + 1:]
        for i in range(r):
            xk = X[i, k]
            if xk == 0.0:
                continue
            rr = ukk * ukk + sign * (xk * xk)
            if sign < 0.0:
                rr = max(rr, floor)
            rk = math.sqrt(rr)
            s, c, inv_c = xk / ukk, rk / ukk, ukk / rk
            ss = sign * s
            xt = X[i, k + 1:]
            for j in range(row.shape[0]):
                ukj = (row[j] + ss * xt[j]) * inv_c
                row[j] = ukj
                xt[j] = c * xt[j] - s * ukj
            ukk = rk
        U[k, k] = ukk


@kernel(["b1(f8[:, ::1], f8[:, ::1], f8[::1], f8[::1])"], group="start")
def gram_eigen(V, G, ev, work):
    """The eigenvalues of V^T V's non-trivial part into ev (ascending): sym_eigen of V V^T
    (r <= d) or V^T V (r > d), formed in G (n x n, n = min(r, d)). False: no convergence."""
    r, d = V.shape
    if r <= d:
        gram64(V, G)
    else:
        low_rank_plus(V, 0.0, 1.0, G)
    return sym_eigen(G, min(r, d), ev, work)


def ensure_start_compiled():
    """Compile (or load) the start kernels above, once per process (f8 only: any model)."""
    ensure_compiled("float64", __name__, group="start")


def kernel_f8(a):
    """`a` as the start kernels take it: C-contiguous float64 and writable (their signatures
    name writable arrays, so Numba refuses a read-only one, e.g. a Pack's or np.frombuffer's):
    a copy where `a` is not already so."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    return a if a.flags.writeable else a.copy()


def low_rank_extremes(V):
    """(largest, smallest) eigenvalue of V^T V for V: (r, d) float64 (the smallest is 0 when
    r < d), by `gram_eigen`: the same numbers on every CPU. Allocates O(min(r, d)^2) (and a
    copy of V if it is read-only or not C-contiguous float64)."""
    V = kernel_f8(V)
    r, d = V.shape
    if r == 0:
        return 0.0, 0.0
    ensure_start_compiled()
    n = min(r, d)
    ev = np.empty(n)
    if not gram_eigen(V, np.empty((n, n)), ev, np.empty(n)):
        raise NumericalError("the eigensolver did not converge on V V^T")
    return max(float(ev[-1]), 0.0), (max(float(ev[0]), 0.0) if r >= d else 0.0)
