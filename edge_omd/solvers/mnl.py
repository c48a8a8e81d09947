"""Choose-one-of-k (multinomial logit, Plackett-Luce first choice): the small, solver-independent
part of one `RewardModel.learn_choice` update (docs/ALGORITHM.md, "Choice among k").

The user saw k candidates phi_0..phi_{k-1} and chose phi_c: P(c) = softmax_j(theta.phi_j)_c. The
loss depends on theta only through the n = k - 1 differences, in the chosen-minus-other basis

    z_j = phi_c - phi_j   (j != c, in input order),   m_j = theta.z_j,
    q_j = P(j) = exp(-m_j) / (1 + sum_l exp(-m_l)),  p_c = 1 - sum_j q_j,
    g(theta) = -w sum_j q_j z_j = Z^T a,             a = -w q
    H(theta) = w Z^T (diag(q) - q q^T) Z             (rank <= n = k - 1)

(k = 2: z = phi_c - phi_r, q = sigma(-m), the pair's gradient and Hessian exactly.)
diag(q) - q q^T is positive definite (its Schur complement is p_c > 0) with the closed-form
Cholesky factor L, column i (0-based), written with the masses after and before row i,
s_i = p_c + sum_{l > i} q_l and s_i + q_i (suffix sums: no cancellation):

    L_ii = sqrt(q_i s_i / (s_i + q_i)),   L_li = -q_l sqrt(q_i / (s_i (s_i + q_i)))   (l > i)

so H = sum_i x_i x_i^T with x_i = sum_l (sqrt(w) L)_li z_l: n rank-one terms, what every solver
absorbs (exact: n Cholesky updates; cg: n outer products; sketch: n rows; diagonal: sum x_i^2).

Step 2 with tilde_H = cal_H + eta X^T X (X = Lw^T Z, Lw = sqrt(w) L, at theta_t) by Woodbury,
with V = cal_H^{-1} Z^T (the solver's n solves) and C = Z cal_H^{-1} Z^T (n x n):

    tilde_H^{-1} g = V b,   b = a - Lw K^{-1} Lw^T C a,   K = I / eta + Lw^T C Lw   (SPD, >= I/eta)

so theta' = theta - eta V b: k = 2 gives the pair's Sherman-Morrison step. Everything here is
O(n^2 d + n^3) with n <= MAX_K - 1; the d x d work stays in the solvers.

Memory: the (n, d) arrays of one update (`Work`) are scratch of that call, allocated by the front
and released when it returns, like the (n, d) copy `RewardModel.width(Phi)` makes: at most
(MAX_K - 1) d entries each. They are not part of the state, so `nbytes` and `state_bytes` are
the same with or without choices, and the budget logic is unchanged.
"""
import math
from typing import NamedTuple

import numpy as np

from edge_omd import linalg, projection
from edge_omd._numba import both, kernel, lanes_dot

#: the most candidates one choice may hold (the transient workspace is (MAX_K - 1) x d)
MAX_K = 16


class Work(NamedTuple):
    """Scratch of one choice update (n = k - 1 rows; F = the state's dtype)."""
    Z: np.ndarray      # (n, d) F   z_j = phi_c - phi_j
    V: np.ndarray      # (n, d) F   cal_H^{-1} z_j (exact: U^{-T} z_j)
    X: np.ndarray      # (n, d) F   Hessian rows: sqrt(eta) x_i at theta_t (step 3),
                       #            x_i at theta_{t+1} (step 4)
    g: np.ndarray      # (d,)   F   the gradient / a candidate theta
    m: np.ndarray      # (n,)   f8  margins theta.z_j
    q: np.ndarray      # (n,)   f8  probabilities of the others
    e: np.ndarray      # (n,)   f8  x_i.theta (exact: rotated with phi)
    b: np.ndarray      # (n,)   f8  step coefficients
    t: np.ndarray      # (n,)   f8  small solve scratch
    Lw: np.ndarray     # (n, n) f8  sqrt(w) L
    C: np.ndarray      # (n, n) f8  Z cal_H^{-1} Z^T
    K: np.ndarray      # (n, n) f8  I / eta + Lw^T C Lw, then its Cholesky factor
    keep: np.ndarray   # (2, d) f8  theta_t (and exact's phi) for a rollback
    aux: np.ndarray    # (8,)   f8  solver flags for a rollback
    rot: np.ndarray    # (3n,)  F   rotations (exact's step 4)


def make_work(n, d, dtype):
    """The scratch of one choice (views of a few allocations)."""
    F = np.dtype(dtype)
    big, vec = np.empty((3, n, d), F), np.empty(d + 3 * n, F)
    sm, nn = np.empty((5, n)), np.empty((3, n, n))
    return Work(big[0], big[1], big[2], vec[:d], sm[0], sm[1], sm[2], sm[3], sm[4], nn[0],
                nn[1], nn[2], np.empty((2, d)), np.empty(8), vec[d:])


# ---------------------------------------------------------------------------- kernels (n x n)
@kernel(["f8(f8[::1], f8, f8[::1], f8[:, ::1])"], group="choice")
def weights(m, w, q, Lw):
    """From the margins m_j = theta.z_j: q (the others' probabilities) and Lw = sqrt(w) L, the
    Cholesky factor of w (diag(q) - q q^T) (module docstring). Returns p_c."""
    n = m.shape[0]
    lo = 0.0  # the largest score, relative to the chosen one's: max(0, max_j -m_j) = -lo
    for j in range(n):
        if m[j] < lo:
            lo = m[j]
    ec = linalg.exp(lo)  # fdlibm's: the same bits on every CPU
    for j in range(n):
        q[j] = linalg.exp(lo - m[j])
    tot = ec  # summed in a loop that stores nothing (linalg.cg_solve says why)
    for j in range(n):
        tot += q[j]
    inv = 1.0 / tot
    pc = ec * inv
    for j in range(n):
        q[j] *= inv
    after = pc  # s_i = p_c + sum_{l > i} q_l, from the last row up
    for i in range(n - 1, -1, -1):
        before = after + q[i]
        Lw[i, i] = math.sqrt(w * q[i] * after / before) if before > 0.0 else 0.0
        off = math.sqrt(w * q[i] / (after * before)) if after > 0.0 else 0.0
        for l in range(i + 1, n):
            Lw[l, i] = -q[l] * off
        for l in range(i):
            Lw[l, i] = 0.0
        after = before
    return pc


@kernel(["f8(f8[:, ::1], f8[:, ::1], f8[::1], f8, f8, f8[:, ::1], f8[::1], f8[::1])"], group="choice")
def step_coef(C, Lw, q, w, eta, K, t, b):
    """b = a - Lw K^{-1} Lw^T C a, a = -w q, K = I / eta + Lw^T C Lw (Cholesky in place):
    tilde_H^{-1} g = cal_H^{-1} Z^T b. Returns b^T C b (||V b||^2 in the cal_H norm), or NaN if
    anything is not finite."""
    n = q.shape[0]
    for i in range(n):  # t = Lw^T C a; K = Lw^T C Lw + I / eta
        acc = 0.0
        for j in range(n):
            cj = 0.0
            for l in range(n):
                cj += C[j, l] * (-w * q[l])
            acc += Lw[j, i] * cj
        t[i] = acc
        for k in range(i + 1):
            acc = 0.0
            for j in range(n):
                lc = 0.0
                for l in range(n):
                    lc += C[j, l] * Lw[l, k]
                acc += Lw[j, i] * lc
            K[i, k] = acc + (1.0 / eta if i == k else 0.0)
    linalg.cholesky_floored(K, n, 1.0 / eta)  # K >= I / eta: every Schur complement too
    linalg.cholesky_solve(K, n, t, t)
    for j in range(n):
        acc = -w * q[j]
        for i in range(n):
            acc -= Lw[j, i] * t[i]
        b[j] = acc
    bcb = 0.0
    for j in range(n):
        for l in range(n):
            bcb += b[j] * C[j, l] * b[l]
    return bcb if math.isfinite(bcb) else math.nan


# ---------------------------------------------------------------------------- kernels (n x d)
@kernel(both("void(F[:, ::1], i8, F[:, ::1])", readonly=(0,)), group="choice")  # P: a journal record's bytes
def differences(P, c, Z):
    """Z = [phi_c - phi_j for j != c], in input order (the subtraction in the state's dtype)."""
    r = 0
    for j in range(P.shape[0]):
        if j != c:
            for i in range(P.shape[1]):
                Z[r, i] = P[c, i] - P[j, i]
            r += 1


@kernel(both("void(F[::1], F[:, ::1], f8[::1])"), group="choice")
def margins(theta, Z, m):
    """m_j = theta.z_j (lanes_dot)."""
    for j in range(Z.shape[0]):
        m[j] = lanes_dot(theta, Z[j])


@kernel(both("void(f8[::1], F[:, ::1], f8[::1])"), group="choice")
def margins64(phi, V, m):
    """m_j = phi.v_j with a float64 phi (exact: theta.z_j = (U theta).(U^{-T} z_j))."""
    for j in range(V.shape[0]):
        m[j] = lanes_dot(phi, V[j])


@kernel(both("void(F[:, ::1], F[:, ::1], f8[:, ::1])"), group="choice")
def gram(V, Z, C):
    """C_jl = (v_j.z_l + v_l.z_j) / 2: Z cal_H^{-1} Z^T, exactly symmetric."""
    n = Z.shape[0]
    for j in range(n):
        for l in range(j + 1):
            c = 0.5 * (lanes_dot(V[j], Z[l]) + lanes_dot(V[l], Z[j]))
            C[j, l] = c
            C[l, j] = c


@kernel(both("void(f8[:, ::1], F[:, ::1], f8, F[:, ::1])"), group="choice")
def rows(Lw, Z, scale, X):
    """X_i = scale sum_l Lw_li z_l: the rank-one rows of the Hessian (times scale)."""
    n, d = Z.shape[0], Z.shape[1]
    for i in range(n):
        xi = X[i]
        for c in range(d):
            xi[c] = 0.0
        for l in range(i, n):  # Lw is lower triangular
            coef = scale * Lw[l, i]
            if coef != 0.0:
                zl = Z[l]
                for c in range(d):
                    xi[c] += coef * float(zl[c])


@kernel(both("void(F[:, ::1], f8[::1], F[::1])"), group="choice")
def combine(V, b, out):
    """out = V^T b = sum_j b_j v_j."""
    d = out.shape[0]
    for c in range(d):
        out[c] = 0.0
    for j in range(V.shape[0]):
        bj = b[j]
        vj = V[j]
        for c in range(d):
            out[c] += bj * float(vj[c])


@kernel(both("b1(F[::1], F[:, ::1], f8[::1], f8, F[::1])"), group="choice")
def move(theta, V, b, eta, cand):
    """theta <- theta - eta V^T b, only if every new entry is within THETA_LIMIT of the state's
    dtype, as the pair's step keeps it (linalg.move_checked; cand receives the candidate).
    Returns False, theta untouched, otherwise."""
    d = theta.shape[0]
    lim = linalg.theta_max(theta)
    for c in range(d):
        acc = float(theta[c])
        for j in range(V.shape[0]):
            acc -= eta * b[j] * float(V[j, c])
        cand[c] = acc
        if not abs(float(cand[c])) <= lim:
            return False
    for c in range(d):
        theta[c] = cand[c]
    return True


@kernel(both("f8(F[:, ::1])"), group="choice")
def sum_sq(X):
    """sum_i ||x_i||^2 = trace of the Hessian the rows hold."""
    acc = 0.0
    for i in range(X.shape[0]):
        acc += lanes_dot(X[i], X[i])
    return acc


@kernel(both("void(F[:, ::1], f8[::1], f8[::1])"), group="choice")
def add_rows_hv(X, vec, out):
    """out += X^T X vec (float64 vectors): the rank-n part of tilde_H in step 3."""
    for i in range(X.shape[0]):
        row = X[i]
        acc = lanes_dot(row, vec)
        for c in range(row.shape[0]):
            out[c] += acc * float(row[c])


# ---------------------------------------------------------------------------- step 3
@kernel(["void(f8[:, ::1], f8[:, ::1], f8[:, ::1])"], group="choice")
def chol_capacitance(X, W, G):
    """G = lower Cholesky factor of I + X W^T (X: the rows, W = cal_H^{-1} X^T: both (n, d)
    float64; I + X cal_H^{-1} X^T >= I, so each pivot is floored at 1)."""
    n = X.shape[0]
    for i in range(n):
        for k in range(i + 1):
            G[i, k] = 0.5 * (lanes_dot(X[i], W[k]) + lanes_dot(X[k], W[i])) + (1.0 if i == k else 0.0)
    linalg.cholesky_floored(G, n, 1.0)


@kernel(["void(f8[:, ::1], f8[:, ::1], f8[::1], f8[::1], f8[::1])"], group="choice")
def woodbury_rows(W, G, v, r, out):
    """out <- out - W^T (I + X W^T)^{-1} W v: with out = cal_H^{-1} v on entry, tilde_H^{-1} v
    on return (Woodbury for tilde_H = cal_H + X^T X; W = cal_H^{-1} X^T, G its capacitance's
    Cholesky factor, r: (n,) scratch)."""
    n = W.shape[0]
    for i in range(n):
        r[i] = lanes_dot(W[i], v)
    linalg.cholesky_solve(G, n, r, r)
    for i in range(n):
        ri = r[i]
        for c in range(out.shape[0]):
            out[c] -= ri * W[i, c]


def project(solver, X, lower, theta0_loader, setter):
    """Step 3 for a choice: argmin_{||theta|| <= radius} ||theta - theta'||_{tilde_H} with
    tilde_H = cal_H + X^T X (X: the sqrt(eta)-scaled rows at theta_t), by the Lanczos TRS of
    edge_omd/projection.py, in the solver's mode: M mode (Op = tilde_H^{-1}, Woodbury over
    `solver.choice_inv` = cal_H^{-1}) where the solver offers it, as its pair projection does
    (exact, sketch; the diagonal too, to the precision of its pair's secular solve:
    `solver.choice_tol`), else H mode (`solver.choice_hv` = cal_H v, `lower` a lower bound of
    its spectrum: cg). So k = 2 takes the pair's own path. The Krylov workspace and the
    Woodbury rows are scratch of the call. theta0_loader(ws) -> ||theta'|| loads theta' into
    ws.theta0; setter(ws.out) stores the result. Returns the Lanczos steps (0: inside), or < 0
    (nothing changed) if not finite."""
    radius = solver.config.radius
    n, d = X.shape
    ws = projection.make_workspace(d)
    c0 = theta0_loader(ws)
    if not c0 > radius:
        return 0 if c0 == c0 else -1
    tmp = np.empty(d)
    dtype = np.dtype(solver.config.dtype).name
    tol = getattr(solver, "choice_tol", projection.TOL)[dtype]
    inv = getattr(solver, "choice_inv", None)
    if inv is not None:
        X64 = np.ascontiguousarray(X, dtype=np.float64)
        W, G, r = np.empty((n, d)), np.empty((n, n)), np.empty(n)
        for i in range(n):
            inv(X64[i], W[i], tmp)
        chol_capacitance(X64, W, G)

        def apply(v, out):
            inv(v, out, tmp)
            woodbury_rows(W, G, v, r, out)
        mode = projection.MODE_M
    else:
        def apply(v, out):
            solver.choice_hv(v, out, tmp)
            add_rows_hv(X, v, out)
        mode = projection.MODE_H
    k = projection.lanczos_project(apply, ws, c0, radius, mode, lower, tol)
    if k < 0 or not projection.finish(ws.out, radius, solver.fmax):
        return -1
    setter(ws.out)
    return k
