"""Step 3 of Algorithm 1: theta_{t+1} = argmin_{||theta||_2 <= B} ||theta - theta'||_{tilde_H}.

A trust-region subproblem (TRS) with Hessian tilde_H and linear term -tilde_H theta'. When
||theta'|| > B the minimiser is, by the KKT conditions,

    theta(mu) = (tilde_H + mu I)^{-1} tilde_H theta' = theta' - mu (tilde_H + mu I)^{-1} theta'
              = (I + mu M)^{-1} theta',        M = tilde_H^{-1},

with the unique mu > 0 such that ||theta(mu)|| = B (||theta(mu)|| decreases in mu).

Krylov solve (GLTR's idea, Gould, Lucidi, Roma, Toint 1999, with a better start): ONE Lanczos
basis Q_k per projection, then the secular equation on the small tridiagonal T_k = Q_k^T Op Q_k.
Two differences from GLTR, both measured in bench/projection.py:
  * the basis starts at theta' itself, not at the gradient tilde_H theta'. theta(0) = theta', so
    theta' is the solution when mu -> 0 (the usual case: a step leaves the ball by a little), and
    a space that contains it exactly converges in a few steps where GLTR's would need a full CG
    solve of tilde_H x = tilde_H theta'.
  * the operator. Op = tilde_H ("H" mode): theta_k = |theta'| Q_k (T_k + mu I)^{-1} T_k e1, the
    Galerkin solution of the TRS on span(Q_k); its shifted system tilde_H + mu I has condition
    (l_max + mu) / (l_min + mu). Op = M = tilde_H^{-1} ("M" mode): theta_k = |theta'| Q_k
    (I + mu T_k)^{-1} e1, Galerkin on (I + mu M) theta = theta', condition
    (1 + mu / l_min) / (1 + mu / l_max). The two condition numbers multiply to l_max / l_min:
    M mode wins when mu < sqrt(l_min l_max), i.e. for the small mu of a step that left the ball
    by a little (mu / l_min ~ 0.01-0.15 measured): to agree with the naive projection to 1e-8
    it needed 3-5 steps where H mode needed 6-12 and GLTR's start (the gradient) 8-14
    (bench/projection.py, d = 384 and 2048).
    M costs what tilde_H costs for exact (two triangular sweeps of U instead of two products)
    and sketch (Woodbury), so they use it; cg has only products (an inverse is a whole CG
    solve) and uses H mode; the diagonal solves the secular equation directly in O(d) per
    Newton step (tilde_H = diag + rank one: no Krylov space needed).
Residuals (exact arithmetic): r_k = beta_k |h_k| (H) or mu beta_k |h_k| (M), the norm of
(tilde_H + mu I) theta_k - tilde_H theta' resp. (I + mu M) theta_k - theta': theta_k is then the
exact projection of a theta' perturbed by r_k (or tilde_H^{-1} r_k). Everything is solved for
theta' / B and the unit ball (mu is scale-free), and the test is r_k <= tol (M) or
r_k <= tol (l_min + mu) (H, l_min from below: the damping), tol = TOL[dtype].

The secular equation phi(mu) = 1/||h(mu)|| - 1/B = 0 on T_k is solved by Newton's method from
mu = 0 (phi is concave and increasing in both modes, as in More-Sorensen, so Newton from the
left converges monotonically); each evaluation is two tridiagonal solves, O(k).

Memory: a `Workspace` of fixed arrays made once per model (KMAX + 1 basis vectors of d float64
and a few d-vectors): never allocated per update, and counted in the model's nbytes. If the
basis is full before the residual test passes, Lanczos continues with two rolling vectors
(reorthogonalised against the stored ones) and theta_k is assembled in a second pass that
regenerates those vectors: no allocation either, and no step limit below STEPS_MAX.

Failure: if theta_k is not finite in the state's dtype, the model restores theta_t (taken
before step 2) and raises NumericalError: nothing changes.
"""
import math
from typing import NamedTuple

import numpy as np

from edge_omd import linalg
from edge_omd._numba import both, kernel, lanes_dot

KMAX = 24         # stored Lanczos vectors (the usual projection needs 2-8, bench/projection.py)
STEPS_MAX = 512   # total Lanczos steps (stored + continued) before giving up
# Relative residual test (module docstring), per state dtype: a float32 state stores theta to
# 6e-8 and drifts 1e-4..1e-3 from float64 over long streams (bench/runtime.py), so 1e-6 is below
# anything it can show and saves 1-2 Lanczos steps (bench/projection.py); float64 states get 1e-8.
TOL = {"float32": 1e-6, "float64": 1e-8}
MODE_H, MODE_M = 0, 1
# scal slots
S_C0, S_RADIUS, S_MODE, S_MU, S_RES, S_LOWER = 0, 1, 2, 3, 4, 5


class Workspace(NamedTuple):
    """Preallocated arrays of one model's projection (float64)."""
    Q: np.ndarray       # (kmax + 1, d) Lanczos basis q_0 = theta' / |theta'|, q_1, ...
    roll: np.ndarray    # (3, d)        rolling vectors once the basis is full
    w: np.ndarray       # (d,)          Op q_j
    tmp: np.ndarray     # (d,)          operator scratch (triangular solves, M z)
    theta0: np.ndarray  # (d,)          theta' in float64
    out: np.ndarray     # (d,)          the projected theta
    prev: np.ndarray    # (2, d)        theta_t before step 2 (phi and theta for exact): rollback
    T: np.ndarray       # (2, steps)    Lanczos alpha_j (row 0), beta_j (row 1)
    h: np.ndarray       # (steps,)      the small TRS solution
    work: np.ndarray    # (4, steps)    tridiagonal solver scratch
    scal: np.ndarray    # (8,)          c0, radius, mode, mu, residual, l_min bound, rollback
    small: np.ndarray   # (2, m)        operator scratch of size m (the sketch's rows), m >= 1


def workspace_bytes(d, small=1, kmax=KMAX, steps=STEPS_MAX):
    """Bytes of `make_workspace(d, ...)` (counted in RewardModel.nbytes when radius is set)."""
    kmax, steps, small = min(kmax, d), min(steps, 4 * d + 8), max(small, 1)
    return 8 * ((kmax + 1) * d + 3 * d + 4 * d + 2 * d + 7 * steps + 8 + 2 * small)


def make_workspace(d, small=1, kmax=KMAX, steps=STEPS_MAX):
    kmax, steps, small = min(kmax, d), min(steps, 4 * d + 8), max(small, 1)
    f8 = np.float64
    return Workspace(Q=np.zeros((kmax + 1, d), f8), roll=np.zeros((3, d), f8),
                     w=np.zeros(d, f8), tmp=np.zeros(d, f8), theta0=np.zeros(d, f8),
                     out=np.zeros(d, f8), prev=np.zeros((2, d), f8), T=np.zeros((2, steps), f8),
                     h=np.zeros(steps, f8), work=np.zeros((4, steps), f8), scal=np.zeros(8, f8),
                     small=np.zeros((2, small), f8))


# ---------------------------------------------------------------------------- kernels
norm2, dot64 = linalg.norm64, linalg.dot64  # ||v||, a.b of float64 vectors (lanes_dot)


@kernel(both("f8(F[::1], f8[::1])"))
def load(theta, out):
    """out = theta in float64; returns ||theta||."""
    acc = 0.0  # summed in a loop that stores nothing (linalg.cg_solve says why)
    for i in range(theta.shape[0]):
        v = float(theta[i])
        acc += v * v
    for i in range(theta.shape[0]):
        out[i] = theta[i]
    return math.sqrt(acc)


@kernel(["f8(f8[::1], f8, f8[::1])"])
def start(theta0, c0, q0):
    """q_0 = theta' / |theta'|."""
    inv = 1.0 / c0
    for i in range(theta0.shape[0]):
        q0[i] = theta0[i] * inv
    return c0


@kernel(["f8(f8[:, ::1], i8, f8[::1], f8[::1], f8[::1], f8[:, ::1], i8, f8[::1])"])
def lanczos(Q, nq, qprev, qcur, w, T, j, qnext):
    """One Lanczos step given w = Op q_j: alpha_j = q_j.w, w -= alpha_j q_j + beta_{j-1} q_{j-1},
    reorthogonalised (classical Gram-Schmidt, twice) against the stored rows Q[:nq], then
    beta_j = ||w|| and q_{j+1} = w / beta_j. Returns beta_j (0: the Krylov space is invariant)."""
    d = w.shape[0]
    alpha = lanes_dot(qcur, w)
    bprev = T[1, j - 1] if j > 0 else 0.0
    if j > 0:
        for i in range(d):
            w[i] -= alpha * qcur[i] + bprev * qprev[i]
    else:
        for i in range(d):
            w[i] -= alpha * qcur[i]
    for _ in range(2):
        for r in range(nq):
            row = Q[r]
            c = lanes_dot(row, w)
            for i in range(d):
                w[i] -= c * row[i]
    beta = math.sqrt(lanes_dot(w, w))
    T[0, j] = alpha
    T[1, j] = beta
    if beta > 0.0:
        inv = 1.0 / beta
        for i in range(d):
            qnext[i] = w[i] * inv
    return beta


@kernel(["void(f8[:, ::1], i8, f8, i8, f8[::1], f8[::1], f8[::1], f8[::1])"])
def _tri_solve(T, k, mu, mode, rhs, out, cp, dp):
    """out = A^{-1} rhs, A = T_k + mu I (H mode) or I + mu T_k (M mode); SPD tridiagonal (Thomas)."""
    for i in range(k):
        if mode == 0:
            di, oi = T[0, i] + mu, T[1, i]
        else:
            di, oi = 1.0 + mu * T[0, i], mu * T[1, i]
        ol = 0.0
        if i > 0:
            ol = mu * T[1, i - 1] if mode == 1 else T[1, i - 1]
        den = di - (ol * cp[i - 1] if i > 0 else 0.0)
        cp[i] = oi / den
        dp[i] = (rhs[i] - (ol * dp[i - 1] if i > 0 else 0.0)) / den
    out[k - 1] = dp[k - 1]
    for i in range(k - 2, -1, -1):
        out[i] = dp[i] - cp[i] * out[i + 1]


@kernel(["f8(f8[:, ::1], i8, f8[::1], f8[:, ::1], f8[::1])"])
def secular(T, k, h, work, scal):
    """Solve the TRS on T_k: mu >= 0 with ||h(mu)|| = radius, where
        H mode: h(mu) = c0 (T_k + mu I)^{-1} T_k e1   (not c0 e1 - mu c0 (T_k + mu I)^{-1} e1,
                which cancels catastrophically when mu >> T_k: a radius far inside theta')
        M mode: h(mu) = c0 (I + mu T_k)^{-1} e1
    by Newton on 1/||h|| - 1/radius from scal[S_MU] (or 0), bracketed. Leaves h(mu) in h, mu in
    scal[S_MU], and returns the residual r_k (module docstring), also stored in scal[S_RES]."""
    c0, radius, mode = scal[S_C0], scal[S_RADIUS], int(scal[S_MODE])
    e, g, cp, dp = work[0], work[1], work[2], work[3]
    for i in range(k):
        e[i] = 0.0
    if mode == 0:  # c0 T_k e1
        e[0] = c0 * T[0, 0]
        if k > 1:
            e[1] = c0 * T[1, 0]
    else:
        e[0] = c0
    lo, hi = 0.0, math.inf
    mu = scal[S_MU]
    if not mu > 0.0:
        mu = 0.0
    nh = c0
    for it in range(200):
        # h(mu)
        _tri_solve(T, k, mu, mode, e, h, cp, dp)
        nh = 0.0
        for i in range(k):
            nh += h[i] * h[i]
        nh = math.sqrt(nh)
        if abs(nh - radius) <= 1e-14 * radius:
            break
        if nh > radius:
            lo = mu
        else:
            hi = mu
        # h' = -(T + mu I)^{-1} h  (H)   or   -(I + mu T)^{-1} T h  (M)
        if mode == 0:
            for i in range(k):
                g[i] = h[i]
        else:
            for i in range(k):
                acc = T[0, i] * h[i]
                if i > 0:
                    acc += T[1, i - 1] * h[i - 1]
                if i < k - 1:
                    acc += T[1, i] * h[i + 1]
                g[i] = acc
        _tri_solve(T, k, mu, mode, g, g, cp, dp)
        hhp = 0.0
        for i in range(k):
            hhp += h[i] * g[i]   # = -h.h'
        # Newton on phi = 1/|h| - 1/radius, phi' = (h.(-h')) / |h|^3, written without cubes
        mu_new = mu + ((nh - radius) / radius) * (nh * (nh / hhp)) if hhp > 0.0 else -1.0
        if not (lo < mu_new < hi):
            mu_new = 0.5 * (lo + hi) if hi < math.inf else 2.0 * lo + 1e-300
        if mu_new == mu:
            break
        mu = mu_new
    scal[S_MU] = mu
    beta = T[1, k - 1]
    res = beta * abs(h[k - 1])
    if mode == 1:
        res *= mu
    scal[S_RES] = res
    return res


@kernel(["void(f8[:, ::1], i8, f8[::1], f8, f8[::1])"])
def combine(Q, n, h, scale, out):
    """out = scale sum_{j < n} h_j Q[j]."""
    d = out.shape[0]
    for i in range(d):
        out[i] = 0.0
    for j in range(n):
        hj = scale * h[j]
        row = Q[j]
        for i in range(d):
            out[i] += hj * row[i]


@kernel(["void(f8, f8[::1], f8[::1])"])
def axpy(a, x, y):
    for i in range(y.shape[0]):
        y[i] += a * x[i]


@kernel(["b1(f8[::1], f8, f8)"])
def finish(out, radius, fmax):
    """Land exactly on the sphere (rounding) and check every entry is within the state dtype's
    theta limit (linalg.THETA_LIMIT of its largest finite number)."""
    nx = math.sqrt(lanes_dot(out, out))
    if not math.isfinite(nx):
        return False
    if nx > radius:
        s = radius / nx
        for i in range(out.shape[0]):
            out[i] *= s
    lim = fmax * linalg.THETA_LIMIT  # the limit every update keeps theta within
    for i in range(out.shape[0]):
        if not abs(out[i]) < lim:
            return False
    return True


# ---------------------------------------------------------------------------- driver
def lanczos_project(apply, ws, c0, radius, mode, lower, tol, kmax=None, max_steps=None):
    """Project ws.theta0 (|theta0| = c0 > radius) with `apply(v, out)` = Op v; result in ws.out.

    The problem is solved for theta' / radius and the unit ball (the projection commutes with
    scaling: mu is unchanged), so a tiny or huge radius neither underflows nor overflows.
    Returns the number of Lanczos steps taken (operator applications in the first pass), or a
    negative number if the small problem had no finite solution."""
    Q, T, h, scal = ws.Q, ws.T, ws.h, ws.scal
    nstore = Q.shape[0] - 1 if kmax is None else min(kmax, Q.shape[0] - 1)
    steps_max = T.shape[1] if max_steps is None else min(max_steps, T.shape[1])
    scal[S_C0], scal[S_RADIUS], scal[S_MODE], scal[S_MU] = c0 / radius, 1.0, mode, 0.0
    start(ws.theta0, c0, Q[0])
    thr = tol
    k = 0
    qprev = qcur = Q[0]
    while True:
        # q_k is qcur (k <= nstore: Q[k]; beyond: a rolling vector)
        apply(qcur, ws.w)
        if k < nstore:
            qnext = Q[k + 1]
            beta = lanczos(Q, k + 1, qprev, qcur, ws.w, T, k, qnext)
        else:
            qnext = ws.roll[(k - nstore) % 3]
            beta = lanczos(Q, nstore + 1, qprev, qcur, ws.w, T, k, qnext)
        k += 1
        res = secular(T, k, h, ws.work, scal)
        if not math.isfinite(res):
            return -k
        limit = thr if mode == MODE_M else thr * (lower + scal[S_MU])
        if res <= limit or beta == 0.0 or k >= steps_max:
            break
        qprev, qcur = qcur, qnext
    combine(Q, min(k, nstore + 1), h, radius, ws.out)
    if k > nstore + 1:  # second pass: regenerate q_{nstore+1}, ... exactly as before
        T2 = ws.work  # alpha/beta of the replay are recomputed identically; keep T intact
        qprev, qcur = Q[nstore - 1] if nstore > 0 else Q[0], Q[nstore]
        for j in range(nstore, k - 1):
            apply(qcur, ws.w)
            qnext = ws.roll[(j - nstore) % 3]
            T2[0, j] = T[0, j]  # lanczos reads beta_{j-1} from row 1 of its T argument
            T2[1, j - 1] = T[1, j - 1]
            lanczos(Q, nstore + 1, qprev, qcur, ws.w, T2, j, qnext)
            axpy(radius * h[j + 1], qnext, ws.out)
            qprev, qcur = qcur, qnext
    return k
