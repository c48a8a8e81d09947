"""Small Numba kernels shared by the solvers: dot products, the logistic link, Cholesky
rank-one updates, triangular solves and a textbook conjugate gradient.

All arrays are C-contiguous and of one float dtype F (float32 or float64); every scalar and
every reduction is carried in float64 so a float32 state loses no more than its storage
precision. Nothing here allocates.
"""
import math

from edge_omd._numba import both, kernel


@kernel(both("f8(F[::1], F[::1])"))
def dot(a, b):
    """sum_i a_i b_i, accumulated in float64."""
    acc = 0.0
    for i in range(a.shape[0]):
        acc += float(a[i]) * float(b[i])
    return acc


@kernel(both("f8(F[::1])", readonly=(0,), any_dtype=True))  # a: the caller's array
def max_abs_or_inf(a):
    """max_i |a_i|, or inf if any entry is NaN or inf: input validation without a temporary."""
    acc = 0.0
    for i in range(a.shape[0]):
        v = abs(float(a[i]))
        if not v <= 1.7976931348623157e308:  # NaN or inf
            return math.inf
        if v > acc:
            acc = v
    return acc


@kernel(["f8(f8)"])
def sigmoid(m):
    """sigma(m) = 1 / (1 + exp(-m)), without overflow for large |m|."""
    if m >= 0.0:
        return 1.0 / (1.0 + math.exp(-m))
    e = math.exp(m)
    return e / (1.0 + e)


@kernel(["f8(f8)"])
def dsigmoid(m):
    """sigma'(m) = sigma(m) (1 - sigma(m)), the logistic curvature."""
    s = sigmoid(m)
    return s * (1.0 - s)


@kernel(both("b1(F[::1], F[::1], f8)"))
def move_checked(theta, v, coef):
    """theta <- theta - coef v, only if every new entry is finite IN THE STATE'S DTYPE (a float64
    value can be finite and still overflow float32). The work vector v receives the candidate
    and is consumed. Returns False, theta untouched, otherwise."""
    for i in range(theta.shape[0]):
        v[i] = float(theta[i]) - coef * float(v[i])  # rounded to F on the store
        if not math.isfinite(float(v[i])):
            return False
    for i in range(theta.shape[0]):
        theta[i] = v[i]
    return True


@kernel(both("f8(F[::1], F[::1], f8, f8, f8, f8, f8)"))
def omd_move(theta, v, m, q, y, w, eta):
    """Steps 1-2 of Algorithm 1 given v = cal_H^{-1} z, m = theta.z and q = z^T cal_H^{-1} z:
        a = eta w sigma'(m),  theta <- theta - eta w (sigma(m) - y) v / (1 + a q)
    (Sherman-Morrison for tilde_H = cal_H + a z z^T on a vector). Returns a, or NaN with theta
    untouched when the step would not be finite."""
    s = sigmoid(m)
    a = eta * w * s * (1.0 - s)
    coef = eta * w * (s - y) / (1.0 + a * q)
    if not (math.isfinite(coef) and math.isfinite(q)):
        return math.nan
    return a if move_checked(theta, v, coef) else math.nan



@kernel(both("void(F[:, ::1], F[::1], F[::1])"))
def chol_update_upper(U, x, rot):
    """In place: U^T U <- U^T U + x x^T for upper-triangular U (row-major). x is destroyed.

    LINPACK's dchud recurrence (Givens rotations row by row): stable, keeps U's diagonal
    positive, O(d^2) and touches only the upper triangle. Each rotation is computed in float64
    and rounded to the arrays' dtype through the 3-element scratch `rot`, so the row loop runs
    entirely in that dtype and vectorises (a float64 scalar would promote it: 2.4x slower at
    d=384 in float32, measured).
    """
    d = U.shape[0]
    for k in range(d):
        ukk = float(U[k, k])
        xk = float(x[k])
        if xk == 0.0:
            continue
        r = math.sqrt(ukk * ukk + xk * xk)
        U[k, k] = r
        rot[0] = xk / ukk
        rot[1] = r / ukk
        rot[2] = ukk / r
        s, c, inv_c = rot[0], rot[1], rot[2]
        row, xt = U[k, k + 1:], x[k + 1:]  # 0-based tails: no wraparound branch, vectorises
        for j in range(row.shape[0]):
            ukj = (row[j] + s * xt[j]) * inv_c
            row[j] = ukj
            xt[j] = c * xt[j] - s * ukj


@kernel(both("f8(F[:, ::1], F[::1], F[::1])"))
def solve_upper_t(U, b, out):
    """out = U^{-T} b (forward substitution with U^T lower); returns ||out||^2 = b^T (U^T U)^{-1} b."""
    d = U.shape[0]
    for i in range(d):
        out[i] = b[i]
    acc = 0.0
    for j in range(d):
        oj = out[j] / U[j, j]
        out[j] = oj
        acc += float(oj) * float(oj)
        row, ot = U[j, j + 1:], out[j + 1:]  # 0-based tails: no wraparound branch, vectorises
        for k in range(row.shape[0]):
            ot[k] -= oj * row[k]
    return acc


@kernel(both("void(F[:, ::1], F[::1], f8, F[::1])"))
def symv_plus(S, v, lam, out):
    """out = (S + lam I) v for a full symmetric S."""
    d = S.shape[0]
    for i in range(d):
        acc = lam * float(v[i])
        for k in range(d):
            acc += float(S[i, k]) * float(v[k])
        out[i] = acc


@kernel(both("void(F[:, ::1], f8, f8, F[::1])"))
def syr_scaled(S, gamma, c, z):
    """In place: S <- gamma S + c z z^T (full symmetric storage, stays exactly symmetric)."""
    d = S.shape[0]
    for i in range(d):
        czi = c * float(z[i])
        for k in range(d):
            S[i, k] = gamma * float(S[i, k]) + czi * float(z[k])


@kernel(both("i8(F[:, ::1], f8, F[::1], f8, F[::1], F[::1], F[::1], F[::1], F[::1], i8, f8)"))
def cg_solve(S, lam, z, a, b, x, r, p, Ap, max_steps, tol):
    """Conjugate gradient for (S + lam I + a z z^T) x = b, from x0 = 0.

    Textbook CG: alpha = r.r / p.Ap, Fletcher-Reeves beta = r_new.r_new / r_old.r_old, stops
    after `max_steps` steps or when ||r|| <= tol ||b||. Returns the number of steps taken.
    """
    d = b.shape[0]
    bb = 0.0
    for i in range(d):
        x[i] = 0.0
        r[i] = b[i]
        p[i] = b[i]
        bb += float(b[i]) * float(b[i])
    rr = bb
    stop = tol * tol * bb
    steps = 0
    while steps < max_steps and rr > stop:
        symv_plus(S, p, lam, Ap)
        zp = dot(z, p)
        pAp = 0.0
        for i in range(d):
            api = float(Ap[i]) + a * float(z[i]) * zp
            Ap[i] = api
            pAp += float(p[i]) * api
        if pAp <= 0.0:
            break
        alpha = rr / pAp
        rr_new = 0.0
        for i in range(d):
            x[i] += alpha * float(p[i])
            ri = float(r[i]) - alpha * float(Ap[i])
            r[i] = ri
            rr_new += ri * ri
        beta = rr_new / rr
        for i in range(d):
            p[i] = float(r[i]) + beta * float(p[i])
        rr = rr_new
        steps += 1
    return steps
