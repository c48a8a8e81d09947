"""What a loaded state must satisfy before any verb may use it (the solvers' `invalid`).

Each check is O(d^2) time and O(ROWS d) memory at most (row blocks), never a factorisation of a
d x d matrix: a recovery of a d = 4096 user stays cheap. numpy, but for the Lanczos kernel of
the PSD probe (`lowest_ritz`), whose sums run in a fixed order (the same verdict on every CPU).
"""
import functools
import math

import numpy as np

from edge_omd._numba import both, calls, kernel, lanes_dot
from edge_omd.linalg import THETA_LIMIT, sym_eigen

#: A loaded local norm must have no eigenvalue below lam / FLOOR_SLACK (cg: S none below
#: -lam_1 / FLOOR_SLACK). States the updates make satisfy it with lam itself up to rounding;
#: the slack leaves float32 rounding room and is what the exact solver's overflow guard assumes.
FLOOR_SLACK = 4.0
#: Curvature entries of a loaded state stay below fmax * HEADROOM (float32: 3e32): the largest
#: update the front allows (w sigma' ||z||^2 <= 2.5e17) then needs > 10^15 updates to overflow.
HEADROOM = 2.0 ** -20
ROWS = 256          # rows per block of the blocked checks (bounds their temporaries)
PROBE_STEPS = 6     # power-iteration steps of the eigenvalue probes


def blocks(n):
    for i in range(0, n, ROWS):
        yield i, min(i + ROWS, n)


def max_abs(a):
    """max |a_ij| in float64 (0 for an empty array), blocked."""
    top = 0.0
    flat = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(1, -1)
    for i, j in blocks(flat.shape[0]):
        if flat[i:j].size:
            top = max(top, float(np.abs(flat[i:j]).max()))
    return top


def theta_problem(theta):
    """Why a loaded theta cannot be used (None if it can); finiteness is checked by the format.
    Its entries stay within THETA_LIMIT of the dtype's range, as every update keeps them."""
    top = max_abs(theta)
    if not top <= float(np.finfo(theta.dtype).max) * THETA_LIMIT:
        return f"theta has entries of {top:.3g}, beyond the dtype's limit"
    return None


def below_diagonal(U):
    """Is any entry of the square U below its diagonal non-zero?"""
    for i, j in blocks(U.shape[0]):
        if np.tril(U[i:j, :j], i - 1).any():
            return True
    return False


def above_diagonal(L):
    """Is any entry of the square L above its diagonal non-zero?"""
    for i, j in blocks(L.shape[0]):
        if np.triu(L[i:j, i:], 1).any():
            return True
    return False


@functools.lru_cache(maxsize=8)
def _probe_start(d, k):
    x = np.empty(d)
    s, mask = (0x9E3779B97F4A7C15 + k * 0x632BE59BD9B4E019) & ((1 << 64) - 1), (1 << 64) - 1
    nn = 0.0
    for i in range(d):
        s = (s * 6364136223846793005 + 1442695040888963407) & mask
        x[i] = (((s >> 11) + 0.5) / 9007199254740992.0 - 0.5) + (1e-3 if i % 2 == 0 else -1e-3)
        nn += x[i] * x[i]
    x *= 1.0 / math.sqrt(nn)
    x.setflags(write=False)
    return x


def probe_start(d, k=0):
    """The load probes' fixed unit vectors (float64; k = 0, 1, ...: independent ones): x_i =
    u_i - 1/2 +- 1e-3 (alternating sign) with u_i in (0, 1) from a 64-bit LCG in integer
    arithmetic, normalised by a sequential sum: the same bits on every CPU, and for k = 0 the
    Java core's Num.probeStart. Read-only (cached)."""
    return _probe_start(int(d), int(k))


@kernel(both("i8(F[:, ::1], f8, f8[:, ::1], f8[::1], f8[::1], f8[::1])", readonly=(0,)))
def lanczos_scaled(S, sc, Q, w, alpha, beta):
    """Lanczos on sc S (symmetric) from the unit Q[0], at most Q.shape[0] steps, float64 with
    full reorthogonalisation (modified Gram-Schmidt, twice): T's diagonal in alpha, its
    off-diagonal in beta, the basis in Q; returns the steps n. O(n d^2) (row products of S in
    its dtype, summed in float64 by lanes_dot)."""
    k, d = Q.shape
    n = 0
    for j in range(k):
        q = Q[j]
        for i in range(d):
            w[i] = lanes_dot(S[i], q) * sc
        alpha[j] = lanes_dot(q, w)
        for _ in range(2):
            for r in range(j + 1):
                qr = Q[r]
                c = lanes_dot(qr, w)
                for i in range(d):
                    w[i] -= c * qr[i]
        n = j + 1
        b = math.sqrt(lanes_dot(w, w))
        if not b > 1e-12 * (abs(alpha[j]) + 1e-300) or j == k - 1:
            break
        beta[j] = b
        nxt = Q[j + 1]
        for i in range(d):
            nxt[i] = w[i] / b
    return n


@calls(lanczos_scaled, sym_eigen)
def lowest_ritz(S, steps=16):
    """The lowest Ritz value of S (symmetric) along a Krylov space of `steps` Lanczos steps
    (`lanczos_scaled` on S / max|S|, fixed start `probe_start`), in S's units; +inf when the
    small eigenproblem does not converge (no verdict). Ritz values lie inside the spectrum, so
    it is >= lambda_min(S); the extreme eigenvalues are what Lanczos finds first. Kernels only
    (no BLAS, no LAPACK): the same value on every CPU. O(steps d^2) time, O(steps d) memory."""
    d = S.shape[0]
    k = min(d, steps)
    top = max_abs(S)
    sc = 1.0 / top if top > 0.0 else 1.0  # Lanczos on S / max|S|: nothing overflows
    Q, w, alpha, beta = np.zeros((k, d)), np.empty(d), np.zeros(k), np.zeros(k)
    Q[0] = probe_start(d)
    n = lanczos_scaled(S, sc, Q, w, alpha, beta)
    T = np.diag(alpha[:n]) + np.diag(beta[: n - 1], 1) + np.diag(beta[: n - 1], -1)
    ev = np.empty(n)
    if not sym_eigen(T, n, ev, np.empty(n)):
        return math.inf
    return float(ev[0]) / sc


@calls(lowest_ritz)
def indefinite_direction(S, floor, steps=16):
    """Does S (symmetric) have an eigenvalue below -floor along `lowest_ritz`'s Krylov space?
    True is certain (a Ritz value is an eigenvalue bound); no convergence answers False."""
    return bool(lowest_ritz(S, steps) < -floor)


@calls(indefinite_direction)
def symmetric_psd_problem(S, floor):
    """Why the symmetric curvature S cannot be a PSD sum (None if it can): symmetry to 1e-5 of
    its largest entry, no negative diagonal, every 2 x 2 principal minor and the Ritz values of
    a 16-step Lanczos run (indefinite_direction) above -floor. Refusals are certain (each is a
    direction where S < -floor); a PSD S always passes."""
    d = S.shape[0]
    top = max_abs(S)
    diag = np.diagonal(S).astype(np.float64)
    if (diag < -floor).any():
        return "the curvature matrix has a negative diagonal"
    sc = 1.0 / top if top > 1.0 else 1.0  # scaled to max <= 1: the squares cannot overflow
    f = floor * sc
    dg = (diag * sc + f).astype(S.dtype)
    for i, j in blocks(d):
        rows = S[i:j] * S.dtype.type(sc)  # S's dtype: a float64 copy costs 2x at d = 4096
        if np.abs(rows - S[:, i:j].T * S.dtype.type(sc)).max(initial=0.0) > 1e-5 * top * sc:
            return "the curvature matrix is not symmetric"
        # [[a + f, b], [b, c + f]] PSD: b^2 <= (a + f)(c + f). Rounding in S's dtype is ~eps of
        # a c, far below the margin f (a + c) that floor >= 8 d eps max|S| leaves
        if (rows * rows > dg[i:j, None] * dg[None, :]).any():
            return "the curvature matrix has a 2 x 2 principal minor below zero"
    if indefinite_direction(S, floor):
        return "the curvature matrix is not positive semi-definite"
    return None
