"""The Numba kernels of the exact solver (the math and the state: edge_omd/solvers/exact.py).

A pair's step with the deferred rank-one update fused into one top-down pass over U (`_step`,
`_sweep`), its absorb and a fantasize's curvature, the substitutions between theta and
phi = U theta, the loader's phi check, and the kernels of a choice among k (group "choice",
compiled at a model's first choice: `_choice_step`, `_choice_absorb`).
"""
import math

import numpy as np

from edge_omd import linalg
from edge_omd._numba import both, kernel, lanes_dot
from edge_omd.solvers import mnl

# aux slots (float64)
E, PENDING, THETA_OK, BOUND = 0, 1, 2, 3


@kernel(both("void(F[:, ::1], f8[::1], F[::1], F[::1], F[::1], F[::1], f8[::1], b1)"), per_cpu=True)
def _sweep(U, phi, xp, z, u, rot, aux, solve):
    """One top-down pass: apply the pending update to U and phi, and (if `solve`) the forward
    substitution u = U_new^{-T} z on each row right after it is final."""
    d = U.shape[0]
    pending = aux[PENDING] != 0.0
    e = aux[E]
    if solve:
        for i in range(d):
            u[i] = z[i]
    for k in range(d):
        # Tails as 0-based views: Numba then knows the indices are >= 0, drops its negative-index
        # wraparound branch, and LLVM vectorises the loops (5x faster at d=384, measured).
        row, xt, ut = U[k, k + 1:], xp[k + 1:], u[k + 1:]
        n = row.shape[0]
        xk = float(xp[k]) if pending else 0.0
        if xk != 0.0:
            ukk = float(U[k, k])
            r = math.sqrt(ukk * ukk + xk * xk)
            U[k, k] = r
            inv_ukk, inv_r = 1.0 / ukk, 1.0 / r  # two divisions per row, not six
            cs, sn = ukk * inv_r, xk * inv_r
            rot[0] = xk * inv_ukk
            rot[1] = r * inv_ukk
            rot[2] = cs
            s, c, inv_c = rot[0], rot[1], rot[2]
            pk = phi[k]
            phi[k] = cs * pk + sn * e
            e = cs * e - sn * pk
            for j in range(n):
                ukj = (row[j] + s * xt[j]) * inv_c
                row[j] = ukj
                xt[j] = c * xt[j] - s * ukj
        if solve:
            # The solve runs over the row just rotated (still in cache) with the SAME loop,
            # deferred update or not: with fastmath's reassociation a fused loop rounds
            # differently, and a journal replay must give the live model's bits exactly.
            uk = u[k] / U[k, k]
            u[k] = uk
            for j in range(n):
                ut[j] -= uk * row[j]
    aux[PENDING] = 0.0
    aux[E] = 0.0


@kernel(both("f8(F[:, ::1], f8[::1], F[::1], F[::1], F[::1], F[::1], F[::1], f8[::1], f8, f8, f8, f8, f8, f8)"), per_cpu=True)
def _step(U, phi, theta, xp, z, u, rot, aux, y, w, eta, lam, fmax, eps):
    """Steps 1-2 of Algorithm 1 on phi. Returns a = eta w sigma'(theta.z), or NaN (nothing
    moved) when the step would not be finite.

    Overflow guard: theta = U^{-1} phi is only materialised on demand, in the state's dtype, so a
    step that keeps phi finite could still give a theta beyond float32's range. Since
    cal_H >= lam I (>= lam / 4 for a loaded state, ExactSolver.invalid), ||U^{-1} v|| <=
    2 ||v|| / sqrt(lam): the step moves theta by at most 2 |coef| sqrt(q / lam), and aux[BOUND]
    accumulates that bound. Only if it nears fmax * THETA_LIMIT (linalg) is the
    candidate theta computed for real (O(d^2), never in sane use) and the step refused if not finite."""
    _sweep(U, phi, xp, z, u, rot, aux, True)
    m = lanes_dot(phi, u)
    q = lanes_dot(u, u)
    s = linalg.sigmoid(m)
    a = eta * w * s * (1.0 - s)
    coef = eta * w * (s - y) / (1.0 + a * q)
    if not (math.isfinite(coef) and math.isfinite(q)):
        return math.nan
    # Precision guard: step 4 will add c z z^T, c = w sigma'(theta_new.z), theta_new.z = m - coef q.
    # A rank-one term beyond lam / eps of the dtype wipes out the factor's small directions
    # (float32: curvature ratio above ~1e6 in one update) and theta = U^{-1} phi becomes garbage.
    zz = lanes_dot(z, z)
    if w * linalg.dsigmoid(m - coef * q) * zz * eps > 0.1 * lam:
        return math.nan
    # cal_H >= lam I up to rounding; a loaded state is checked to lam / FLOOR_SLACK = lam / 4
    bound = aux[BOUND] + abs(coef) * math.sqrt(4.0 * q / lam)
    if not bound < linalg.THETA_LIMIT * fmax:
        # the cheap bound is exhausted: check the real candidate theta = U^{-1}(phi - coef u),
        # built in xp (free: the sweep consumed the pending update), so a refusal leaves theta
        # and its flag exactly as they were
        d = U.shape[0]
        norm2 = 0.0
        for i in range(d - 1, -1, -1):
            acc = (phi[i] - coef * float(u[i])) - lanes_dot(U[i, i + 1:], xp[i + 1:])
            xp[i] = acc / float(U[i, i])
            ti = float(xp[i])
            if not math.isfinite(ti):
                return math.nan
            norm2 += ti * ti
        bound = math.sqrt(norm2)
        if not bound < linalg.THETA_LIMIT * fmax:
            return math.nan
    for i in range(phi.shape[0]):
        phi[i] -= coef * float(u[i])
    aux[BOUND] = bound
    aux[THETA_OK] = 0.0
    return a


@kernel(both("f8(f8[::1], F[::1], F[::1], F[::1], f8[::1], f8)"), per_cpu=True)
def _absorb(phi, xp, z, u, aux, w):
    """Step 4, deferred: with u = U^{-T} z and phi = U theta_new, queue x = sqrt(c) z."""
    m_new = lanes_dot(phi, u)
    c = w * linalg.dsigmoid(m_new)
    sc = math.sqrt(c)
    for i in range(z.shape[0]):
        xp[i] = sc * float(z[i])
    aux[E] = sc * m_new
    aux[PENDING] = 1.0
    return c


@kernel(both("void(F[:, ::1], f8[::1], F[::1])"))
def _theta_from_phi(U, phi, theta):
    """theta = U^{-1} phi (back substitution, float64 accumulation)."""
    for i in range(U.shape[0] - 1, -1, -1):
        theta[i] = (phi[i] - lanes_dot(U[i, i + 1:], theta[i + 1:])) / float(U[i, i])


@kernel(both("void(F[:, ::1], f8[::1], f8[::1])"))
def _phi_from_theta(U, theta, phi):
    """phi = U theta (upper-triangular product, float64 accumulation)."""
    for i in range(U.shape[0]):
        phi[i] = lanes_dot(U[i, i:], theta[i:])


@kernel(both("void(F[:, ::1], F[:, ::1], F[::1], f8[::1])"))
def _widths(U, V, work, out):
    for n in range(V.shape[0]):
        out[n] = math.sqrt(linalg.solve_upper_t(U, V[n], work))


@kernel(both("void(F[:, ::1], f8[::1], f8[::1], f8[::1])"))
def _hv(U, vec, tmp, out):
    """out = U^T U vec (upper triangle only), float64 in and out."""
    _phi_from_theta(U, vec, tmp)
    d = U.shape[0]
    for k in range(d):
        out[k] = 0.0
    for i in range(d):
        ti = tmp[i]
        row, ot = U[i, i:], out[i:]
        for k in range(row.shape[0]):
            ot[k] += float(row[k]) * ti


@kernel(both("f8(F[:, ::1], f8[::1], f8[::1])"))
def _theta64(U, phi, out):
    """out = U^{-1} phi in float64 (theta' for the projection); returns ||out||."""
    nn = 0.0
    for i in range(U.shape[0] - 1, -1, -1):
        oi = (phi[i] - lanes_dot(U[i, i + 1:], out[i + 1:])) / float(U[i, i])
        out[i] = oi
        nn += oi * oi
    return math.sqrt(nn)


@kernel(both("void(F[:, ::1], F[::1], f8, f8[::1], f8[::1], f8[::1])"))
def _inv_apply(U, u, a, v, tmp, out):
    """out = tilde_H^{-1} v = U^{-1} (I + a u u^T)^{-1} U^{-T} v, u = U^{-T} z (the projection's
    operator in M mode: two triangular sweeps, Sherman-Morrison in between)."""
    d = U.shape[0]
    for i in range(d):
        tmp[i] = v[i]
    uy = 0.0
    uu = 0.0
    for j in range(d):  # forward: tmp = U^{-T} v, row by row of U
        tj = tmp[j] / float(U[j, j])
        tmp[j] = tj
        uj = float(u[j])
        uy += uj * tj
        uu += uj * uj
        row, tt = U[j, j + 1:], tmp[j + 1:]
        for k in range(row.shape[0]):
            tt[k] -= tj * float(row[k])
    if a != 0.0:  # a = 0 (cal_H^{-1} alone): u is not this call's and is not read
        c = a * uy / (1.0 + a * uu)
        for j in range(d):
            tmp[j] -= c * float(u[j])
    for i in range(d - 1, -1, -1):  # backward: out = U^{-1} tmp
        out[i] = (tmp[i] - lanes_dot(U[i, i + 1:], out[i + 1:])) / float(U[i, i])


@kernel(both("void(F[:, ::1], F[::1], f8, f8[::1], f8[::1], f8[::1])"))
def _tilde_apply(U, z, a, v, tmp, out):
    """out = tilde_H v = U^T U v + a z (z.v) (the projection's operator in H mode)."""
    _hv(U, v, tmp, out)
    zv = lanes_dot(z, v)
    for i in range(z.shape[0]):
        out[i] += a * zv * float(z[i])


#: the loader's phi = U theta check: slack tol |U| |theta| + _TINY sum_j |U_ij| per row (a theta
#: rounded to the dtype's subnormal spacing), by itemsize
_TINY = {4: 2.0 * float(np.finfo(np.float32).smallest_subnormal),
         8: 2.0 * float(np.finfo(np.float64).smallest_subnormal)}


def _phi_tolerance(dtype, d):
    """The loader's relative tolerance of phi = U theta: sqrt(eps) of the dtype (+ float64's own
    rounding of the products)."""
    return math.sqrt(float(np.finfo(dtype).eps)) + 4.0 * d * 2.0 ** -52


@kernel(both("f8(f8[::1], F[::1], F[::1], f8)"))
def _fantasy_curvature(phi, z, u, w):
    """c = w sigma'(theta.z) of a fantasize (theta.z = phi.u), as _absorb computes it."""
    return w * linalg.dsigmoid(lanes_dot(phi, u))


@kernel(both("b1(F[:, ::1], F[::1], f8[::1], f8, f8)"))
def _phi_drift(U, theta, phi, tol, tiny):
    """Is |U theta - phi|_i > tol (|U| |theta|)_i + tiny sum_j |U_ij| for some row i (the
    loader's check, ExactSolver.invalid, at tolerance `tol`)? One pass over the upper triangle."""
    d = U.shape[0]
    for i in range(d):
        row, tt = U[i, i:], theta[i:]
        acc = lanes_dot(row, tt)
        mag = 0.0
        ab = 0.0
        for k in range(row.shape[0]):
            uk = abs(float(row[k]))
            mag += uk * abs(float(tt[k]))
            ab += uk
        if not abs(acc - phi[i]) <= tol * mag + tiny * ab:
            return True
    return False


@kernel(both("void(F[:, ::1], F[:, ::1], F[:, ::1])"), group="choice")
def _solve_rows(U, Z, V):
    """V_j = U^{-T} z_j for every row: forward substitution, ONE top-down pass over U for all
    rows (row k of U is read once and applied to each right-hand side)."""
    d, n = U.shape[0], Z.shape[0]
    for j in range(n):
        for i in range(d):
            V[j, i] = Z[j, i]
    for k in range(d):
        row = U[k, k + 1:]
        ukk = U[k, k]
        for j in range(n):
            vt = V[j, k + 1:]
            vk = V[j, k] / ukk
            V[j, k] = vk
            for i in range(row.shape[0]):
                vt[i] -= vk * row[i]


@kernel(both("f8(F[:, ::1], f8[::1], F[:, ::1], f8[::1], f8, f8[::1], F[::1], f8, f8)"), group="choice")
def _choice_move(U, phi, V, b, eta, aux, cand, lam, fmax):
    """phi <- phi - eta V^T b (theta' = theta - eta tilde_H^{-1} g in phi = U theta), with the
    pair's overflow guard (ExactSolver's _step): the move of theta is at most
    2 ||eta V^T b|| / sqrt(lam); only when that bound nears fmax is the candidate theta built
    (in `cand`) and checked. Returns 0, or NaN with nothing changed."""
    d = phi.shape[0]
    nn = 0.0
    for i in range(d):
        acc = 0.0
        for j in range(V.shape[0]):
            acc += b[j] * float(V[j, i])
        nn += acc * acc
    step = eta * math.sqrt(nn)
    if not math.isfinite(step):
        return math.nan
    bound = aux[BOUND] + step * math.sqrt(4.0 / lam)
    if not bound < linalg.THETA_LIMIT * fmax:  # the pair's limit, which the loader enforces
        norm2 = 0.0
        for i in range(d - 1, -1, -1):
            acc = phi[i]
            for j in range(V.shape[0]):
                acc -= eta * b[j] * float(V[j, i])
            cand[i] = (acc - lanes_dot(U[i, i + 1:], cand[i + 1:])) / float(U[i, i])
            ti = float(cand[i])
            if not math.isfinite(ti):
                return math.nan
            norm2 += ti * ti
        bound = math.sqrt(norm2)
        if not bound < linalg.THETA_LIMIT * fmax:
            return math.nan
    for i in range(d):
        acc = 0.0
        for j in range(V.shape[0]):
            acc += b[j] * float(V[j, i])
        phi[i] -= eta * acc
    aux[BOUND] = bound
    aux[THETA_OK] = 0.0
    return 0.0


@kernel(both("void(F[:, ::1], f8[::1], F[:, ::1], f8[::1], F[::1])"), group="choice")
def _rotate_rows(U, phi, X, e, rot):
    """cal_H <- cal_H + sum_i x_i x_i^T as n Cholesky updates in ONE top-down pass (the same
    recurrence as linalg.chol_update_upper, applied to each x_i in turn): at row k the n
    rotations are formed first (each from the diagonal the previous one left), then applied
    to the row's tail two at a time, so the row is read and written once per two updates.
    [phi; e_i] is rotated alongside, so phi = U theta holds (e_i = x_i.theta). X and e are
    destroyed; rot: (3 n,) rotations in the state's dtype."""
    d, n = U.shape[0], X.shape[0]
    for k in range(d):
        ukk = float(U[k, k])
        for i in range(n):
            xk = float(X[i, k])
            if xk == 0.0:  # the identity: (s, c, 1/c) = (0, 1, 1)
                rot[3 * i], rot[3 * i + 1], rot[3 * i + 2] = 0.0, 1.0, 1.0
                continue
            r = math.sqrt(ukk * ukk + xk * xk)
            inv_ukk, inv_r = 1.0 / ukk, 1.0 / r
            cs, sn = ukk * inv_r, xk * inv_r
            rot[3 * i] = xk * inv_ukk
            rot[3 * i + 1] = r * inv_ukk
            rot[3 * i + 2] = cs
            pk = phi[k]
            phi[k] = cs * pk + sn * e[i]
            e[i] = cs * e[i] - sn * pk
            ukk = r
        U[k, k] = ukk
        row = U[k, k + 1:]
        i = 0
        while i + 1 < n:
            s1, c1, ic1 = rot[3 * i], rot[3 * i + 1], rot[3 * i + 2]
            s2, c2, ic2 = rot[3 * i + 3], rot[3 * i + 4], rot[3 * i + 5]
            x1, x2 = X[i, k + 1:], X[i + 1, k + 1:]
            for j in range(row.shape[0]):
                u1 = (row[j] + s1 * x1[j]) * ic1
                x1[j] = c1 * x1[j] - s1 * u1
                u2 = (u1 + s2 * x2[j]) * ic2
                x2[j] = c2 * x2[j] - s2 * u2
                row[j] = u2
            i += 2
        if i < n:
            s1, c1, ic1 = rot[3 * i], rot[3 * i + 1], rot[3 * i + 2]
            x1 = X[i, k + 1:]
            for j in range(row.shape[0]):
                u1 = (row[j] + s1 * x1[j]) * ic1
                x1[j] = c1 * x1[j] - s1 * u1
                row[j] = u1


@kernel(both("f8(F[:, ::1], f8[::1], F[:, ::1], F[:, ::1], f8[::1], f8[::1], f8[:, ::1], "
             "f8[:, ::1], f8[:, ::1], f8[::1], f8[::1], f8[::1], F[::1], f8, f8, f8, f8)"), group="choice")
def _choice_step(U, phi, Z, V, m, q, Lw, C, K, t, b, aux, cand, w, eta, lam, fmax):
    """Steps 1-2 of a choice (ExactSolver.choice_step) in one call. Returns 0 or NaN (nothing
    moved)."""
    _solve_rows(U, Z, V)
    mnl.margins64(phi, V, m)
    mnl.weights(m, w, q, Lw)
    mnl.gram(V, V, C)
    if math.isnan(mnl.step_coef(C, Lw, q, w, eta, K, t, b)):
        return math.nan
    return _choice_move(U, phi, V, b, eta, aux, cand, lam, fmax)


@kernel(both("b1(F[:, ::1], f8[::1], F[:, ::1], F[:, ::1], F[:, ::1], f8[::1], f8[::1], "
             "f8[:, ::1], f8[::1], F[::1], f8[::1], f8, f8, f8)"), group="choice")
def _choice_absorb(U, phi, Z, V, X, m, q, Lw, e, rot, aux, w, eps, lam):
    """Step 4 of a choice (ExactSolver.choice_absorb) in one call; False: nothing changed.
    rot: (>= 3 n,) scratch in the state's dtype (the rotations)."""
    mnl.margins64(phi, V, m)
    mnl.weights(m, w, q, Lw)
    mnl.rows(Lw, Z, 1.0, X)
    if not mnl.sum_sq(X) * eps <= 0.1 * lam:
        return False
    n = m.shape[0]
    for i in range(n):  # x_i.theta_{t+1}
        acc = 0.0
        for l in range(i, n):
            acc += Lw[l, i] * m[l]
        e[i] = acc
    _rotate_rows(U, phi, X, e, rot)
    aux[THETA_OK] = 0.0
    return True
