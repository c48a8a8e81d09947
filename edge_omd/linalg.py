"""Small Numba kernels shared by the solvers: dot products, the logistic link, Cholesky
rank-one updates, triangular solves, a symmetric eigensolver, a textbook conjugate gradient and
the precision probes the updates run. (A population prior's start: solvers/prior_start.py; the checks
of a loaded state: solvers/load_checks.py.)

All arrays are C-contiguous and of one float dtype F (float32 or float64); every scalar and
every reduction is carried in float64 so a float32 state loses no more than its storage
precision. Every sum runs in a fixed order (long ones by _numba.lanes_dot), with no BLAS or
LAPACK, so every result has the same bits on every CPU (edge_omd/_numba.py says why). Nothing
here allocates but the Python helpers of the precision probes.
"""
import math

import numpy as np

from edge_omd._numba import both, calls, kernel, lanes_dot

#: |theta_i| stays below fmax * THETA_LIMIT of the state's dtype (float32: 3.1e26): with inputs
#: up to 1e6 every product theta_i z_i stays inside float32's range (compiled float32 dot products
#: form them in float32, measured: 1e38 * 1e4 gave inf, then NaN), and rewards stay finite.
THETA_LIMIT = 2.0 ** -40


@kernel(both("f8(F[::1], F[::1])"))
def dot(a, b):
    """sum_i a_i b_i in float64, in _numba.lanes_dot's fixed order (kernels with other argument
    types call lanes_dot itself)."""
    return lanes_dot(a, b)


@kernel(["f8(f8[::1], f8[::1])"])
def dot64(a, b):
    """`dot` of two float64 vectors, for any model (the probes' and projection's vectors)."""
    return lanes_dot(a, b)


@kernel(["f8(f8[::1])"])
def norm64(a):
    """||a|| of a float64 vector (lanes_dot)."""
    return math.sqrt(lanes_dot(a, a))


@kernel(both("void(f8[:, ::1], F[::1], f8[::1])", readonly=(0,)))  # P: the caller's rows
def rows_dot(P, theta, out):
    """out_n = P_n . theta for each row (the rewards), by lanes_dot."""
    for n in range(P.shape[0]):
        out[n] = lanes_dot(P[n], theta)


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


# fdlibm 5.3's e_exp.c (Sun Microsystems, 1993; the exp of Java's StrictMath): its constants,
# and its tests on the high word of |x| written as comparisons with the doubles they stand for.
_EXP_HI_HALF_LN2 = 0.3465735912322998      # |x| >= this  <=>  high word > 0x3fd62e42
_EXP_HI_1P5_LN2 = 1.0397205352783203       # |x| < this   <=>  high word < 0x3ff0a2b2
_EXP_HI_BIG = 709.7822265625               # |x| >= this  <=>  high word >= 0x40862e42
_EXP_TINY, _TWO_M1000 = 2.0 ** -28, 2.0 ** -1000
_EXP_O, _EXP_U = 7.09782712893383973096e+02, -7.45133219101941108420e+02
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_P1, _P2, _P3 = 1.66666666666666019037e-01, -2.77777777770155933842e-03, 6.61375632143793436117e-05
_P4, _P5 = -1.65339022054652515390e-06, 4.13813679705723846039e-08


@kernel(["f8(f8)"])
def exp(x):
    """e^x by fdlibm's e_exp.c, operation for operation (< 1 ulp): the same bits on every CPU
    and in the NUMBA_DISABLE_JIT path, and those of Java's StrictMath.exp. (math.exp is the C
    library's, which glibc picks per CPU: its FMA variant rounds differently.) Reduction
    x = k ln2 + r with ln2 in two parts, a degree-5 minimax polynomial for the rational
    approximation of r, then 2^k (math.ldexp, exact where it is used)."""
    ax = abs(x)
    if not ax < _EXP_HI_BIG:
        if x != x:
            return x + x
        if x > _EXP_O:
            return math.inf
        if x < _EXP_U:
            return 0.0
    k = 0
    hi = lo = 0.0
    if ax >= _EXP_HI_HALF_LN2:
        if ax < _EXP_HI_1P5_LN2:
            if x > 0.0:
                hi, lo, k = x - _LN2_HI, _LN2_LO, 1
            else:
                hi, lo, k = x + _LN2_HI, -_LN2_LO, -1
        else:
            k = int(_INV_LN2 * x + (0.5 if x > 0.0 else -0.5))  # C's (int): toward zero
            t = float(k)
            hi = x - t * _LN2_HI  # exact: t * ln2_hi has trailing zeros
            lo = t * _LN2_LO
        x = hi - lo
    elif ax < _EXP_TINY:
        return 1.0 + x
    t = x * x
    c = x - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    if k == 0:
        return 1.0 - ((x * c) / (c - 2.0) - x)
    y = 1.0 - ((lo - (x * c) / (2.0 - c)) - hi)
    if k >= -1021:
        return math.ldexp(y, k)  # exact (fdlibm adds k to the exponent)
    return math.ldexp(y, k + 1000) * _TWO_M1000  # one rounding, as fdlibm's


@kernel(["f8(f8)"])
def sigmoid(m):
    """sigma(m) = 1 / (1 + exp(-m)), without overflow for large |m| (exp: fdlibm's, above)."""
    if m >= 0.0:
        return 1.0 / (1.0 + exp(-m))
    e = exp(m)
    return e / (1.0 + e)


@kernel(["f8(f8)"])
def dsigmoid(m):
    """sigma'(m) = sigma(m) (1 - sigma(m)), the logistic curvature."""
    s = sigmoid(m)
    return s * (1.0 - s)


@kernel(both("f8(F[::1])"))
def theta_max(theta):
    """The largest |theta_i| an update may leave in theta's dtype: fmax * THETA_LIMIT."""
    return (3.4028234663852886e38 if theta.itemsize == 4 else 1.7976931348623157e308) * THETA_LIMIT


@kernel(both("b1(F[::1], F[::1], f8)"))
def move_checked(theta, v, coef):
    """theta <- theta - coef v, only if every new entry is within THETA_LIMIT of the state's
    dtype (finite in float64 is not enough: it can overflow float32; and compiled float32 dot
    products form theta_i z_i in float32, so |theta_i| |z_i| must stay below its range too).
    The work vector v receives the candidate and is consumed. Returns False, theta untouched,
    otherwise."""
    lim = theta_max(theta)
    for i in range(theta.shape[0]):
        v[i] = float(theta[i]) - coef * float(v[i])  # rounded to F on the store
        if not abs(float(v[i])) <= lim:
            return False
    for i in range(theta.shape[0]):
        theta[i] = v[i]
    return True


#: A step is refused when its own rounding may move theta by more than DRIFT_LIMIT of
#: max(||theta'||, 1) (`move_drift`): the dtype holds a solve with tilde_H only to ~eps kappa
#: (kappa: tilde_H's condition number), and a large step of an ill-conditioned solve would carry
#: that into theta (the sketch, whose rows are stored in the dtype; cg, whose CG vectors and S
#: are). Calibrated by `python -m edge_omd_bench.numerics --calibrate --sketch` / `--cg`.
DRIFT_LIMIT = 1e-3


@kernel(both("f8(F[::1], F[::1], f8, f8, f8)"))
def move_drift(theta, v, coef, kappa, eps):
    """eps kappa ||coef v|| / max(||theta - coef v||, 1): a bound on the relative move of theta
    by the dtype's rounding of the solve v (condition number <= kappa) of the step
    theta' = theta - coef v. O(d)."""
    vv = 0.0
    tt = 0.0
    for j in range(v.shape[0]):
        vj = coef * float(v[j])
        vv += vj * vj
        tj = float(theta[j]) - vj
        tt += tj * tj
    return eps * kappa * math.sqrt(vv) / max(math.sqrt(tt), 1.0)


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
    """out = (S + lam I) v for a full symmetric S (row dot products, lanes_dot)."""
    for i in range(S.shape[0]):
        out[i] = lam * float(v[i]) + lanes_dot(S[i], v)


@kernel(both("void(F[:, ::1], f8, f8, F[::1])"))
def syr_scaled(S, gamma, c, z):
    """In place: S <- gamma S + c z z^T for a full symmetric S, exactly symmetric: the upper
    triangle is computed in float64, rounded once, and mirrored ((c z_i) z_k and (c z_k) z_i
    round differently, so computing both halves let S drift from symmetry)."""
    d = S.shape[0]
    for i in range(d):
        czi = c * float(z[i])
        row, zt = S[i, i:], z[i:]
        for k in range(row.shape[0]):
            row[k] = gamma * float(row[k]) + czi * float(zt[k])
    for i in range(d):
        for k in range(i + 1, d):
            S[k, i] = S[i, k]


@kernel(both("f8(F[::1], F[::1], F[::1], F[::1], f8, f8)"))
def cg_advance(x, r, p, Ap, rr, pAp):
    """One CG update after the operator product Ap = A p and pAp = p.Ap: x += alpha p,
    r -= alpha Ap, p = r + beta p (Fletcher-Reeves); returns the new r.r. The sum runs in a
    loop that stores nothing (see cg_solve)."""
    d = x.shape[0]
    alpha = rr / pAp
    rr_new = 0.0
    for i in range(d):
        ri = float(r[i]) - alpha * float(Ap[i])
        rr_new += ri * ri
    for i in range(d):
        x[i] += alpha * float(p[i])
        r[i] = float(r[i]) - alpha * float(Ap[i])
    beta = rr_new / rr
    for i in range(d):
        p[i] = float(r[i]) + beta * float(p[i])
    return rr_new


@kernel(["void(f8[:, ::1], i8, f8)"])
def cholesky_floored(A, n, floor):
    """A[:n, :n] <- its lower Cholesky factor, in place (the lower triangle is read), each
    pivot floored at `floor`, a lower bound of A's spectrum the caller knows (so the floor only
    absorbs rounding): the sketch's small factor (floor alpha) and a choice's (n x n) systems
    (solvers/mnl.py). O(n^3)."""
    for i in range(n):
        for k in range(i + 1):
            acc = A[i, k] - lanes_dot(A[i, :k], A[k, :k])
            if i == k:
                A[i, i] = math.sqrt(max(acc, floor))
            else:
                A[i, k] = acc / A[k, k]


@kernel(["void(f8[:, ::1], i8, f8[::1], f8[::1])"])
def cholesky_solve(L, n, b, out):
    """out[:n] = (L L^T)^{-1} b[:n] for the factor of `cholesky_floored` (out may be b): forward
    by rows of L (lanes_dot), backward by columns of L^T, i.e. rows of L again (an element-wise
    update: no sum to order). O(n^2)."""
    for i in range(n):  # L y = b
        out[i] = (b[i] - lanes_dot(L[i, :i], out[:i])) / L[i, i]
    for i in range(n - 1, -1, -1):  # L^T out = y
        oi = out[i] / L[i, i]
        out[i] = oi
        row, ot = L[i, :i], out[:i]
        for k in range(row.shape[0]):
            ot[k] -= row[k] * oi


@kernel(["f8(f8, f8)"])
def _hypot(a, b):
    """sqrt(a^2 + b^2) without overflow, by JAMA's formula (the C library's hypot is not
    specified to the last bit)."""
    x, y = abs(a), abs(b)
    big, small = max(x, y), min(x, y)
    if big == 0.0:
        return 0.0
    r = small / big
    return big * math.sqrt(1.0 + r * r)


@kernel(["b1(f8[:, ::1], i8, f8[::1], f8[::1])"])
def sym_eigen(A, n, d, e):
    """Eigendecomposition of the symmetric A[:n, :n], in place: A's first n rows become the
    unit eigenvectors, d[:n] the eigenvalues ascending (row i belongs to d[i]); e: (>= n,)
    scratch. Householder tridiagonalisation and the implicit QL algorithm (EISPACK's tred2 /
    tql2 as in the public-domain JAMA library; the Java core's SymEigen.java, the same steps
    with A read as its transposed V, which for a symmetric A is A). Fixed operations only, no
    LAPACK: the same bits on every CPU. O(n^3). Returns False if QL did not converge (300
    sweeps for one eigenvalue: never seen on finite input)."""
    if n == 0:
        return True
    for j in range(n):
        d[j] = A[j, n - 1]
    for i in range(n - 1, 0, -1):  # tred2: Householder reduction to tridiagonal form
        scale = 0.0
        h = 0.0
        for k in range(i):
            scale += abs(d[k])
        if scale == 0.0:
            e[i] = d[i - 1]
            for j in range(i):
                d[j] = A[j, i - 1]
                A[j, i] = 0.0
                A[i, j] = 0.0
        else:
            for k in range(i):
                d[k] /= scale
                h += d[k] * d[k]
            f = d[i - 1]
            g = math.sqrt(h)
            if f > 0.0:
                g = -g
            e[i] = scale * g
            h = h - f * g
            d[i - 1] = f - g
            for j in range(i):
                e[j] = 0.0
            for j in range(i):
                f = d[j]
                A[i, j] = f
                row = A[j, j + 1:i]
                g = (e[j] + A[j, j] * f) + lanes_dot(row, d[j + 1:i])
                et = e[j + 1:i]
                for k in range(row.shape[0]):
                    et[k] += row[k] * f
                e[j] = g
            f = 0.0
            for j in range(i):
                e[j] /= h
                f += e[j] * d[j]
            hh = f / (h + h)
            for j in range(i):
                e[j] -= hh * d[j]
            for j in range(i):
                f = d[j]
                g = e[j]
                row = A[j]
                for k in range(j, i):
                    row[k] -= f * e[k] + g * d[k]
                d[j] = A[j, i - 1]
                A[j, i] = 0.0
        d[i] = h
    for i in range(n - 1):  # accumulate the transformations
        A[i, n - 1] = A[i, i]
        A[i, i] = 1.0
        h = d[i + 1]
        if h != 0.0:
            for k in range(i + 1):
                d[k] = A[i + 1, k] / h
            for j in range(i + 1):
                g = lanes_dot(A[i + 1, :i + 1], A[j, :i + 1])
                for k in range(i + 1):
                    A[j, k] -= g * d[k]
        for k in range(i + 1):
            A[i + 1, k] = 0.0
    for j in range(n):
        d[j] = A[j, n - 1]
        A[j, n - 1] = 0.0
    A[n - 1, n - 1] = 1.0
    e[0] = 0.0
    for i in range(1, n):  # tql2: implicit QL on the tridiagonal (d, e)
        e[i - 1] = e[i]
    e[n - 1] = 0.0
    f = 0.0
    tst1 = 0.0
    eps = 2.0 ** -52
    for l in range(n):
        tst1 = max(tst1, abs(d[l]) + abs(e[l]))
        m = l
        while m < n - 1:
            if abs(e[m]) <= eps * tst1:
                break
            m += 1
        if m > l:
            it = 0
            while True:
                it += 1
                if it > 300:
                    return False
                g = d[l]
                p = (d[l + 1] - g) / (2.0 * e[l])
                r = _hypot(p, 1.0)
                if p < 0.0:
                    r = -r
                d[l] = e[l] / (p + r)
                d[l + 1] = e[l] * (p + r)
                dl1 = d[l + 1]
                h = g - d[l]
                for i in range(l + 2, n):
                    d[i] -= h
                f = f + h
                p = d[m]
                c = 1.0
                c2 = c
                c3 = c
                el1 = e[l + 1]
                s = 0.0
                s2 = 0.0
                for i in range(m - 1, l - 1, -1):
                    c3 = c2
                    c2 = c
                    s2 = s
                    g = c * e[i]
                    h = c * p
                    r = _hypot(p, e[i])
                    e[i + 1] = s * r
                    s = e[i] / r
                    c = p / r
                    p = c * d[i] - s * g
                    d[i + 1] = h + s * (c * g + s * d[i])
                    vi, vi1 = A[i], A[i + 1]
                    for k in range(n):
                        h = vi1[k]
                        vi1[k] = s * vi[k] + c * h
                        vi[k] = c * vi[k] - s * h
                p = -s * s2 * c3 * el1 * e[l] / dl1
                e[l] = s * p
                d[l] = c * p
                if not abs(e[l]) > eps * tst1:
                    break
        d[l] = d[l] + f
        e[l] = 0.0
    for i in range(n - 1):  # ascending, vectors with them (selection sort)
        k = i
        p = d[i]
        for j in range(i + 1, n):
            if d[j] < p:
                k = j
                p = d[j]
        if k != i:
            d[k] = d[i]
            d[i] = p
            for j in range(n):
                t = A[i, j]
                A[i, j] = A[k, j]
                A[k, j] = t
    return True


# ---------------------------------------------------------------- conjugate gradient
@kernel(both("f8(F[::1], F[::1], F[::1], F[::1])"))
def cg_start(b, x, r, p):
    """The start of a CG solve from x0 = 0: x = 0, r = p = b; returns b.b (float64). The sum
    runs in a loop that stores nothing, the stores in one of their own (cg_solve says why)."""
    bb = 0.0
    for i in range(b.shape[0]):
        bb += float(b[i]) * float(b[i])
    for i in range(b.shape[0]):
        x[i] = 0.0
        r[i] = b[i]
        p[i] = b[i]
    return bb


@kernel(both("i8(F[:, ::1], f8, F[::1], f8, F[::1], F[::1], F[::1], F[::1], F[::1], i8, f8)"))
def cg_solve(S, lam, z, a, b, x, r, p, Ap, max_steps, tol):
    """Conjugate gradient for (S + lam I + a z z^T) x = b, from x0 = 0.

    Textbook CG: alpha = r.r / p.Ap, Fletcher-Reeves beta = r_new.r_new / r_old.r_old, stops
    after min(max_steps, 4 d + 8) steps or when ||r|| <= tol ||b||. Returns the steps taken.
    """
    d = b.shape[0]
    # Exact arithmetic ends in d steps; in floating point a few d more reach the attainable
    # accuracy and nothing improves beyond. The cap bounds one call's time whatever max_steps
    # holds (cg_steps is a header field of a loaded state: up to 2^20).
    max_steps = min(max_steps, 4 * d + 8)
    # Every sum below runs in a loop that stores nothing, and the stores follow in a loop of
    # their own: a loop that did both is vectorised behind a runtime alias check, and arrays
    # that happen to lie within 128 bytes of each other take the scalar loop, which sums in
    # another order (the result depended on where malloc put the arrays: a loaded or replayed
    # model diverged; tests/runtime/test_no_stale_reads.py). The same holds for every kernel.
    bb = cg_start(b, x, r, p)
    rr = bb
    stop = tol * tol * bb
    steps = 0
    while steps < max_steps and rr > stop:
        symv_plus(S, p, lam, Ap)
        zp = dot(z, p)
        pAp = 0.0
        for i in range(d):
            pAp += float(p[i]) * (float(Ap[i]) + a * float(z[i]) * zp)
        for i in range(d):
            Ap[i] = float(Ap[i]) + a * float(z[i]) * zp
        if pAp <= 0.0:
            break
        rr = cg_advance(x, r, p, Ap, rr, pAp)
        steps += 1
    return steps


# ---------------------------------------------------------------- precision probes (updates)
# Run by the solvers' updates every probe_period(d) updates (amortised O(d) per update): they
# refuse to go on from a local norm the state's dtype can no longer hold (NumericalError,
# nothing moved). Deterministic functions of the state (fixed start, fixed step count), so a
# replayed or reloaded model refuses exactly where the live one did.

#: The exact solver refuses an update once eps * kappa(cal_H) > KAPPA_EPS_LIMIT (eps of the
#: state's dtype, kappa = lambda_max / lambda_min as estimated by `extreme_eigenvalues`).
#: Why kappa and not lambda_max / lam: the float32 factor's rounding is ~eps lambda_max in
#: absolute terms and matters against the smallest eigenvalue, which grows with the data for an
#: ordinary user (lambda_max / lam alone refused ordinary users after ~5e4 updates at d = 8).
#: Calibrated by `python -m edge_omd_bench.numerics --calibrate` (bench/numerics.py): on the
#: nearly-collinear stream (d = 6) float32 theta drifts 1e-2 from float64 at eps kappa ~ 2.8e-3
#: (1.4e-3 at eps kappa = 1e-3), while ordinary streams stay far below the limit.
KAPPA_EPS_LIMIT = 1e-3
EIG_STEPS = 4  # power-iteration steps on A and on A^{-1} per probe


def probe_period(d):
    """Updates between two precision probes of a d-dimensional state (cg, exact)."""
    return max(d, 64)


def probe_due(t, d):
    """Is a precision probe due before the update after t updates? (never at t = 0)"""
    return t > 0 and t % probe_period(d) == 0


@calls(norm64)
def guard_start(d):
    """The precision probes' fixed start: x_i = frac((i + 1) * 2654435761 / 2^32) - 1/2 (a
    Weyl sequence in integer arithmetic, so another implementation, e.g. the Java core, builds
    the same vector), normalised to unit length (norm64: the same bits on every CPU)."""
    i = np.arange(1, d + 1, dtype=np.uint64)
    x = ((i * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)).astype(np.float64) / 2.0 ** 32 - 0.5
    return x / norm64(x)


@calls(dot64, norm64, guard_start)
def extreme_eigenvalues(apply, apply_inv, d, steps=EIG_STEPS):
    """(lmax, lmin) estimates of an SPD operator A of size d: the best Rayleigh quotients of
    `steps` power-iteration steps on A (apply(v, out): out = A v) and on A^{-1} (apply_inv),
    float64, from the fixed start `guard_start`. lmax <= lambda_max and lmin >= lambda_min
    always (Rayleigh quotients lie inside the spectrum), so lmax / lmin never overstates the
    condition number; the extreme eigenvalues are what power iteration finds first. Allocates
    three float64 work vectors of d; 2 * steps operator applications."""
    lmax, inv_lmin = 0.0, 0.0
    out = np.empty(d)
    for op in (apply, apply_inv):
        x = guard_start(d)
        best = 0.0
        for _ in range(steps):
            op(x, out)
            rq = dot64(x, out)
            best = max(best, rq)
            nrm = norm64(out)
            if not (nrm > 0.0 and math.isfinite(nrm)):
                break
            x = out / nrm
        if op is apply:
            lmax = best
        else:
            inv_lmin = best
    lmin = 1.0 / inv_lmin if inv_lmin > 0.0 else math.inf
    return lmax, lmin
