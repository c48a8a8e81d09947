"""Sketched local norm: robust Frequent Directions (Luo et al., "Robust Frequent Directions",
and the sketched online Newton of Luo et al. 2016), rank ell chosen from the memory budget.

    cal_H ~ alpha I + B^T B,     B: up to 2*ell rows of sqrt(w sigma') z,  alpha starts at lam

Each absorbed curvature row is appended to B. When the 2*ell-row buffer is full, B is shrunk
(Frequent Directions): with B B^T = Q diag(s) Q^T, s descending, delta = s[ell] (the ell+1-th
largest), the rows become sqrt(max(s_i - delta, 0)) times the i-th right singular vector, i < ell,
and the shrinkage mass is added back to the diagonal: alpha <- alpha + delta / 2 (the "robust"
part). Without that compensation the sketch under-estimates the local norm in every direction it
shrank, steps grow too large and accuracy collapses (measured in bench/runtime.py).

Solves use Woodbury through the small matrix K = alpha I_m + B B^T (m = rows in use), kept as
its Cholesky factor L (float64, extended by one row per append in O(m^2)):
    cal_H^{-1} z = (z - B^T K^{-1} B z) / alpha
With rank ell >= d nothing is ever lost (delta = 0) and the solver is exact.
Forgetting: alpha <- forget alpha + (1 - forget) lam, B <- sqrt(forget) B, K refactored (O(m^3)).
"""
import contextlib
import math

import numpy as np

from edge_omd import linalg, projection
from edge_omd._numba import both, kernel, lanes_dot, per_cpu_module
from edge_omd.errors import NumericalError
from edge_omd.solvers import load_checks, mnl, prior_start
from edge_omd.solvers.base import F, F8, I8, ArraySpec, ExplicitTheta, SolverSpec

CHUNK = 32  # columns per block of the in-place shrink transform (bounds its scratch buffer)
# The shrink's eigendecomposition and products run on LAPACK / BLAS, which pick their kernels per
# CPU: a sketch state is bit for bit the same on one machine, across CPUs to a tolerance. Chosen
# by the rule of bench/kernels.py (issue 18, item 2): a port of the Java core's SymEigen to a
# kernel made a d = 384, rank-64 sketch's update 1.17x [0.94, 1.48] as costly (the shrink's
# eigensolver, 3.4x LAPACK's at 128 x 128), the CI beyond the rule's 1.3x.
per_cpu_module(__name__)
_BLAS = []   # a threadpoolctl controller, made on first shrink


def _single_blas_thread():
    """The shrink's small eigh/matmul run on ONE BLAS thread: OpenBLAS's pool busy-waits, and on
    a loaded 2-core machine a 302 x 302 shrink took 150-860 ms multi-threaded against 7-13 ms
    single-threaded (measured, d=384, rank 151). Only the BLAS thread count is touched, only
    for the duration of the shrink."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it the shrink still works, just with BLAS's default
        return contextlib.nullcontext()
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


SPEC = SolverSpec("sketch", code=3, ranked=True, consts=(("CHUNK", CHUNK),), doc=(
    "cal_H ~ alpha I + B^T B (robust Frequent Directions, rank ell = the header's rank); "
    "rows of B and L beyond `rows` are zero."), arrays=(
    ArraySpec("theta", "d", F, True, "reward parameter"),
    ArraySpec("B", "2 * ell, d", F, True, "sketch rows; rows[0] of them in use"),
    ArraySpec("L", "2 * ell, 2 * ell", F8, True, "lower Cholesky factor of alpha I + B B^T"),
    ArraySpec("alpha", "1", F8, True, "diagonal mass (lam + robust FD compensation)"),
    ArraySpec("rows", "1", I8, True, "rows of B in use"),
    ArraySpec("bz", "2 * ell", F8, False, "work: B z"),
    ArraySpec("c", "2 * ell", F8, False, "work: K^{-1} B z"),
    ArraySpec("v", "d", F, False, "work: cal_H^{-1} z"),
    ArraySpec("W", "2 * ell, 2 * ell", F8, False, "work: Gram matrix for shrink / refactor"),
    ArraySpec("scratch", "ell, min(d, CHUNK)", F, False,
              "work: one column block of the shrink transform"),
))


@kernel(both("f8(F[:, ::1], f8[:, ::1], i8, f8, F[::1], f8[::1], f8[::1], F[::1])"))
def _solve(B, L, m, alpha, z, bz, c, v):
    """v = cal_H^{-1} z by Woodbury; returns z^T cal_H^{-1} z."""
    d = z.shape[0]
    for i in range(m):
        bz[i] = linalg.dot(B[i], z)
    linalg.cholesky_solve(L, m, bz, c)
    for j in range(d):
        v[j] = z[j]
    for i in range(m):
        ci = c[i]
        for j in range(d):
            v[j] -= ci * float(B[i, j])
    inv_a = 1.0 / alpha
    q = 0.0  # summed in a loop that stores nothing (linalg.cg_solve says why)
    for j in range(d):
        q += (float(v[j]) * inv_a) * float(z[j])
    for j in range(d):
        v[j] = float(v[j]) * inv_a
    return q


@kernel(["f8(f8[:, ::1], i8, f8)"])
def _kappa_bound(L, m, alpha):
    """trace(L L^T) / alpha - m + 1 >= 1 + lambda_max(B B^T) / alpha >= kappa(cal_H) (L L^T =
    alpha I + B B^T over the m rows in use). O(m^2)."""
    tr = 0.0
    for i in range(m):
        tr += lanes_dot(L[i, :i + 1], L[i, :i + 1])
    return max(tr / alpha - m, 0.0) + 1.0


@kernel(both("f8(F[::1], f8[:, ::1], i8, f8, F[::1], f8, f8)"))
def _step_drift(theta, L, m, alpha, v, coef, eps):
    """linalg.move_drift of the step theta - coef v with kappa = `_kappa_bound`: the sketch's
    rows are stored in the dtype, so the sketched cal_H^{-1} z holds only to ~eps kappa (an
    entry's rounding, eps ||B||^2 in norm, meets the 1 / alpha of the small directions).
    O(m^2 + d)."""
    return linalg.move_drift(theta, v, coef, _kappa_bound(L, m, alpha), eps)


@kernel(both("f8(F[::1], F[:, ::1], f8[:, ::1], f8[::1], i8[::1], F[::1], f8[::1], f8[::1], F[::1], f8, f8, f8, f8)"))
def _step(theta, B, L, alpha, rows, z, bz, c, v, y, w, eta, eps):
    """Steps 1-2; returns a, or NaN with nothing moved (non-finite, or beyond the precision of
    the dtype: step 4 appends the row b = sqrt(w sigma'(theta'.z)) z, and with ||b||^2 above
    0.1 alpha / eps its rounding (the row is stored in the dtype, L is extended from B z) and
    the cancellation in L's new pivot alpha + ||b||^2 - ||L^{-1} B b||^2 swamp alpha: L stops
    factoring alpha I + B B^T. The exact and cg solvers guard the same way)."""
    m = linalg.dot(theta, z)
    q = _solve(B, L, rows[0], alpha[0], z, bz, c, v)
    s = linalg.sigmoid(m)
    coef = eta * w * (s - y) / (1.0 + eta * w * s * (1.0 - s) * q)  # as omd_move computes it
    if w * linalg.dsigmoid(m - coef * q) * linalg.dot(z, z) * eps > 0.1 * alpha[0]:
        return math.nan
    if _step_drift(theta, L, rows[0], alpha[0], v, coef, eps) > linalg.DRIFT_LIMIT:
        return math.nan
    return linalg.omd_move(theta, v, m, q, y, w, eta)


@kernel(["void(f8[:, ::1], f8[::1], i8, f8, f8)"])
def _border(L, g, m, zz, alpha):
    """Extend L (L L^T = alpha I + B_m B_m^T) by row m for a new row b of B with g = B_m b and
    zz = ||b||^2: L[m, :m] = L^{-1} g, then the pivot."""
    ll = 0.0
    for i in range(m):  # L[m, :m] = L^{-1} g
        li = (g[i] - lanes_dot(L[i, :i], L[m, :i])) / L[i, i]
        L[m, i] = li
        ll += li * li
    # L[m, m]^2 = alpha (1 + b^T cal_H^{-1} b) >= alpha exactly; alpha + zz - ll cancels when
    # ||b||^2 >> alpha, so the exact floor is applied (a Schur complement of alpha I + B B^T)
    L[m, m] = np.sqrt(max(alpha + zz - ll, alpha))


@kernel(both("f8(F[::1], F[:, ::1], f8[:, ::1], f8[::1], i8[::1], F[::1], f8[::1], f8, b1)"))
def _append(theta, B, L, alpha, rows, z, g, w, g_is_bz):
    """Append the row sqrt(w sigma'(theta.z)) z to B and extend L by one row. Needs rows < 2 ell.

    g_is_bz: g already holds B_m z from this step's solve (B unchanged since), so B_m b_new is
    sqrt(c) g and the O(m d) product is skipped."""
    cw = w * linalg.dsigmoid(linalg.dot(theta, z))
    sc = np.sqrt(cw)
    m = rows[0]
    for j in range(z.shape[0]):
        B[m, j] = sc * float(z[j])
    zz = lanes_dot(B[m], B[m])
    if g_is_bz:
        for i in range(m):
            g[i] *= sc
    else:
        for i in range(m):  # g = B_m b_new
            g[i] = linalg.dot(B[i], B[m])
    _border(L, g, m, zz, alpha[0])
    rows[0] = m + 1
    return cw


@kernel(both("void(F[:, ::1], f8[:, ::1], f8[::1], i8[::1], f8[:, ::1], f8, f8)"))
def _forget(B, L, alpha, rows, W, gamma, lam):
    """alpha <- gamma alpha + (1 - gamma) lam, B <- sqrt(gamma) B, L <- chol(alpha I + B B^T)."""
    m = rows[0]
    a_old = alpha[0]
    a_new = gamma * a_old + (1.0 - gamma) * lam
    sg = np.sqrt(gamma)
    for i in range(m):
        for j in range(B.shape[1]):
            B[i, j] = sg * float(B[i, j])
    for i in range(m):  # W = gamma (L L^T - a_old I) + a_new I   (lower triangle)
        for k in range(i + 1):
            acc = lanes_dot(L[i, :k + 1], L[k, :k + 1])
            if i == k:
                acc -= a_old
            W[i, k] = gamma * acc + (a_new if i == k else 0.0)
    for i in range(m):  # L <- chol(W): W >= a_new I, its Schur complements too
        for k in range(i + 1):
            L[i, k] = W[i, k]
    linalg.cholesky_floored(L, m, a_new)
    alpha[0] = a_new


@kernel(both("void(F[:, ::1], f8[:, ::1], f8[:, ::1], i8, f8)"))
def _cholesky_shifted(B, W, L, m, alpha):
    """L[:m, :m] = chol(alpha I + B_m B_m^T), the Gram matrix of the stored rows formed in
    float64 in W (lower triangle), each pivot floored at alpha (alpha I + B B^T >= alpha I:
    every Schur complement is too). O(m^2 d + m^3)."""
    for i in range(m):
        for k in range(i + 1):
            W[i, k] = lanes_dot(B[i], B[k])
    for i in range(m):
        for k in range(i + 1):
            L[i, k] = W[i, k] + (alpha if i == k else 0.0)
    linalg.cholesky_floored(L, m, alpha)


@kernel(both("f8(F[:, ::1], i8)"))
def _max_row_sq(B, m):
    """max_i ||b_i||^2 over the m rows in use (the scale of the loader's factor check)."""
    top = 0.0
    for i in range(m):
        top = max(top, lanes_dot(B[i], B[i]))
    return top


@kernel(both("f8(F[:, ::1], f8[:, ::1], i8, f8)"))
def _factor_error(B, L, m, alpha):
    """max_ik |(L L^T)_ik - (alpha I + B B^T)_ik| over the m rows in use (the loader's check of
    the small factor). O(m^2 (d + m))."""
    off = 0.0
    for i in range(m):
        for k in range(i + 1):
            want = lanes_dot(B[i], B[k]) + (alpha if i == k else 0.0)
            off = max(off, abs(lanes_dot(L[i, :k + 1], L[k, :k + 1]) - want))
    return off


@kernel(both("f8(F[:, ::1], f8[:, ::1], i8, f8, f8[::1], f8[::1], f8[::1])"))
def _factor_error_along(B, L, m, alpha, x, lx, bx):
    """|x^T (L L^T - alpha I - B B^T) x| = | ||L^T x||^2 - alpha - ||B^T x||^2 | for a unit x
    of the m rows in use (lx: (m,), bx: (d,) scratch). O(m (d + m))."""
    for j in range(m):
        lx[j] = 0.0
    for j in range(bx.shape[0]):
        bx[j] = 0.0
    for i in range(m):
        xi = x[i]
        row, lt = L[i, :i + 1], lx[:i + 1]
        for j in range(row.shape[0]):
            lt[j] += row[j] * xi
        brow = B[i]
        for j in range(bx.shape[0]):
            bx[j] += float(brow[j]) * xi
    return abs(lanes_dot(lx[:m], lx[:m]) - alpha - lanes_dot(bx, bx))


@kernel(both("void(F[:, ::1], f8[:, ::1], f8, i8, F[:, ::1], f8[::1], f8[::1], f8[::1])"))
def _widths(B, L, alpha, m, V, bz, c, out):
    for n in range(V.shape[0]):
        vv = linalg.dot(V[n], V[n])
        for i in range(m):
            bz[i] = linalg.dot(B[i], V[n])
        acc = 0.0
        for i in range(m):  # ||L^{-1} B v||^2
            t = (bz[i] - lanes_dot(L[i, :i], c[:i])) / L[i, i]
            c[i] = t
            acc += t * t
        out[n] = np.sqrt(max(vv - acc, 0.0) / alpha)


@kernel(both("void(F[:, ::1], i8, f8, f8[::1], f8[::1], f8[::1])"))
def _hv(B, m, alpha, vec, tmp, out):
    """out = (alpha I + B_m^T B_m) vec with float64 vectors (the projection's operator)."""
    for i in range(m):
        tmp[i] = lanes_dot(B[i], vec)
    for j in range(vec.shape[0]):
        out[j] = alpha * vec[j]
    for i in range(m):
        ti = tmp[i]
        for j in range(B.shape[1]):
            out[j] += float(B[i, j]) * ti


@kernel(both("void(F[:, ::1], f8[:, ::1], i8, f8, f8[::1], f8[::1], f8[::1], f8[::1])"))
def _woodbury64(B, L, m, alpha, vec, bz, c, out):
    """out = cal_H^{-1} vec = (vec - B^T K^{-1} B vec) / alpha, float64 vectors."""
    d = vec.shape[0]
    for i in range(m):
        bz[i] = lanes_dot(B[i], vec)
    linalg.cholesky_solve(L, m, bz, c)
    inv_a = 1.0 / alpha
    for j in range(d):
        out[j] = vec[j] * inv_a
    for i in range(m):
        ci = c[i] * inv_a
        row = B[i]
        for j in range(d):
            out[j] -= ci * float(row[j])


@kernel(both("void(F[:, ::1], f8[:, ::1], i8, f8, f8[::1], f8, f8, f8[::1], f8[::1], f8[::1], f8[::1])"))
def _inv_apply(B, L, m, alpha, pz, a, zpz, vec, bz, c, out):
    """out = tilde_H^{-1} vec = P vec - a (Pz.vec) / (1 + a z.Pz) Pz, P = cal_H^{-1}, pz = P z
    (the projection's operator in M mode)."""
    _woodbury64(B, L, m, alpha, vec, bz, c, out)
    zv = lanes_dot(pz, vec)
    coef = a * zv / (1.0 + a * zpz)
    for j in range(vec.shape[0]):
        out[j] -= coef * pz[j]


@kernel(both("void(F[:, ::1], i8, f8, F[::1], f8, f8[::1], f8[::1], f8[::1])"))
def _tilde_hv(B, m, alpha, z, a, vec, tmp, out):
    """out = tilde_H vec = (alpha I + B^T B) vec + a z (z.vec) (the projection's H mode)."""
    _hv(B, m, alpha, vec, tmp, out)
    zv = lanes_dot(z, vec)
    for j in range(vec.shape[0]):
        out[j] += a * zv * float(z[j])


class SketchSolver(ExplicitTheta):
    spec = SPEC
    MIN_LAM_FLOAT32 = 1e-4  # the drift guard (eps kappa) at ||z|| = 1: docs/ALGORITHM.md
    robust = True  # add delta/2 back to alpha at each shrink; False = plain FD (bench/runtime.py only)

    @staticmethod
    def projection_shape(d, rank=None):
        """make_workspace arguments of this solver's projection: tilde_H^{-1} - I / alpha has
        rank <= 2 ell + 1, so no Krylov space has more than 2 ell + 2 dimensions."""
        return dict(small=2 * rank, kmax=min(projection.KMAX, 2 * rank + 2), steps=4 * rank + 12)

    @property
    def rank(self):
        return self.config.rank

    def reset(self):
        super().reset()
        self.state.alpha[0] = self.lam

    def _start_problem(self, theta0, c, V, sign):
        """Solver._start_problem, and no negative part: alpha I + B B^T cannot hold one."""
        if sign < 0.0:
            return ("the sketch (alpha I + B B^T) cannot hold a negative low-rank part "
                    "(cal_H_0 = (lam + c) I - V^T V); use the exact, cg or diagonal solver")
        return super()._start_problem(theta0, c, V, sign)

    def _start(self, theta0, c, V, sign):
        """A prior's start (Solver.start, sign = +1): alpha = lam + c and V's rows as the first
        rows of B when r <= ell; with r > ell, the top ell right singular directions of V (rows
        s_i v_i = q_i^T V, q_i the eigenvectors of V V^T by prior_start.gram_eigen's sym_eigen, in
        float64), and the curvature beyond them (s_i^2 for i >= ell) is DROPPED (not added to
        alpha: robust FD's compensation is for directions a stream shrank, and the prior's own
        isotropic part is c). L = chol(alpha I + B B^T) of the rows as stored."""
        st, ell = self.state, self.rank
        r = V.shape[0]
        if r > ell:
            G, ev = np.empty((r, r)), np.empty(r)
            prior_start.gram64(V, G)
            if not linalg.sym_eigen(G, r, ev, np.empty(r)):
                raise NumericalError("the eigensolver did not converge on V V^T")
            top = np.ascontiguousarray(G[::-1][:ell])  # eigenvectors, largest eigenvalue first
            rows = np.empty((ell, V.shape[1]))
            prior_start.combine_rows(top, V, rows)
            V = rows
        m = V.shape[0]
        st.alpha[0] = self.lam + c
        st.B[:m] = V
        _cholesky_shifted(st.B, st.W, st.L, m, float(st.alpha[0]))
        st.W.fill(0)
        st.rows[0] = m
        st.theta[:] = theta0

    def step(self, z, y, w):
        st = self.state
        return _step(st.theta, st.B, st.L, st.alpha, st.rows, z, st.bz, st.c, st.v, y, w,
                     self.config.eta, self.eps)

    def absorb(self, z, w):
        """Step 4 right after a step: bz still holds B z unless B changes first."""
        return self._append(z, w, self.config.forget, True)

    def fantasize(self, z, w):
        return self._append(z, w, 1.0, False)

    def _append(self, z, w, forget, bz_current):
        st = self.state
        if forget != 1.0:
            _forget(st.B, st.L, st.alpha, st.rows, st.W, forget, self.lam)
            bz_current = False
        if st.rows[0] == st.B.shape[0]:
            self.shrink()
            bz_current = False
        return _append(st.theta, st.B, st.L, st.alpha, st.rows, z, st.bz, w, bz_current)

    def shrink(self):
        """Frequent-Directions shrink of the full 2 ell-row buffer down to ell rows (robust FD).

        Amortised O(ell d) per update. The eigendecomposition allocates O(ell^2) transient
        memory; the d-sized work happens in place, one CHUNK-column block at a time.
        """
        with _single_blas_thread():
            self._shrink()

    def _shrink(self):
        st, ell = self.state, self.rank
        m = int(st.rows[0])
        alpha = float(st.alpha[0])
        np.matmul(st.L[:m, :m], st.L[:m, :m].T, out=st.W[:m, :m])  # B B^T = L L^T - alpha I
        st.W[:m, :m].flat[:: m + 1] -= alpha
        s, Q = np.linalg.eigh(st.W[:m, :m])
        s, Q = s[::-1], Q[:, ::-1]                                 # descending
        delta = max(float(s[ell]), 0.0) if m > ell else 0.0
        keep = s[:ell] > delta
        scale = np.zeros(ell)
        scale[keep] = np.sqrt((s[:ell][keep] - delta) / s[:ell][keep])
        Mt = np.ascontiguousarray((Q[:, :ell] * scale).T, dtype=st.B.dtype)  # (ell, m)
        d = st.B.shape[1]
        for j in range(0, d, CHUNK):
            cols = slice(j, min(j + CHUNK, d))
            blk = st.scratch[:, : cols.stop - j]
            np.matmul(Mt, st.B[:m, cols], out=blk)
            st.B[:ell, cols] = blk
        st.B[ell:m] = 0
        st.alpha[0] = alpha + (delta / 2.0 if self.robust else 0.0)
        # L = chol(alpha I + B B^T) of the rows AS STORED, in float64: the transform's rows are
        # rounded to the dtype, and in float32 a diagonal L from the eigenvalues would be off by
        # eps ||B||^2, beyond alpha once ||B||^2 > alpha / eps (||z|| = 1e4: the sketch ended 11x
        # off float64). O(ell^2 d), as the transform.
        st.L.fill(0)
        _cholesky_shifted(st.B, st.W, st.L, ell, float(st.alpha[0]))
        st.rows[0] = ell

    def matvec(self, vec):
        st = self.state
        m = int(st.rows[0])
        out = np.empty_like(vec)
        _hv(st.B, m, float(st.alpha[0]), vec, np.empty(max(m, 1)), out)
        return out

    # step 3: M mode (Woodbury solves cost what products cost)
    projection_mode = projection.MODE_M

    def project(self, ws, z, a, mode=None, tol=None, kmax=None, max_steps=None):
        """Step 3 in place (see ExactSolver.project); B is unchanged since the step."""
        st, radius = self.state, self.config.radius
        tol = projection.TOL[st.theta.dtype.name] if tol is None else tol
        c0 = projection.load(st.theta, ws.theta0)
        if not c0 > radius:
            return 0 if c0 == c0 else -1
        mode = self.projection_mode if mode is None else mode
        B, L, m, alpha = st.B, st.L, int(st.rows[0]), float(st.alpha[0])
        bz, c, pz = ws.small[0], ws.small[1], ws.tmp
        if mode == projection.MODE_M:
            projection.load(z, ws.w)
            _woodbury64(B, L, m, alpha, ws.w, bz, c, pz)
            zpz = projection.dot64(ws.w, pz)

            def apply(v, out):
                _inv_apply(B, L, m, alpha, pz, a, zpz, v, bz, c, out)
        else:
            def apply(v, out):
                _tilde_hv(B, m, alpha, z, a, v, bz, out)
        k = projection.lanczos_project(apply, ws, c0, radius, mode, alpha, tol, kmax,
                                            max_steps)
        if k < 0 or not projection.finish(ws.out, radius, self.fmax):
            return -1
        st.theta[:] = ws.out
        return k

    def widths(self, V, out):
        st = self.state
        _widths(st.B, st.L, float(st.alpha[0]), int(st.rows[0]), V, st.bz, st.c, out)

    def invalid(self, arrays):
        """Why a loaded payload cannot be a sketch state (None if it can): rows in use within
        the buffer, lam <= alpha (alpha only grows from lam, and forgetting mixes in lam), B
        with headroom, nothing beyond the rows in use, L lower triangular with a diagonal >=
        sqrt(alpha) (L L^T >= alpha I), and L L^T = alpha I + B B^T to 1e-4 of its scale:
        entirely for m <= 256 rows in use (O(m^2 d + m^3)), else along PROBE_STEPS random
        directions (O(m d) each)."""
        theta, B, L, alpha, rows = arrays
        m, a = int(rows[0]), float(alpha[0])
        fmax = float(np.finfo(B.dtype).max)
        problem = load_checks.theta_problem(theta)
        if problem:
            return problem
        if not 0 <= m <= B.shape[0]:
            return f"{m} rows in use of {B.shape[0]}"
        if not self.lam * (1.0 - 1e-9) <= a <= fmax * load_checks.HEADROOM:
            return f"alpha {a} is outside [lam, the dtype's headroom]"
        if not load_checks.max_abs(B) <= np.sqrt(fmax * load_checks.HEADROOM):
            return "the sketch has entries beyond the dtype's headroom"
        if B[m:].any() or L[m:].any() or L[:, m:].any():
            return "rows beyond those in use are not zero"
        Lm = L[:m, :m]
        if load_checks.above_diagonal(Lm):
            return "the small Cholesky factor is not lower triangular"
        if not (np.diagonal(Lm) >= np.sqrt(a) * (1.0 - 1e-9)).all():
            return "the small Cholesky factor's diagonal is below sqrt(alpha)"
        if m == 0:
            return None
        st = self.state  # the kernels take the model's own (writable) buffers, refilled on load
        st.B[...] = B
        st.L[...] = L
        scale = a + _max_row_sq(st.B, m)
        if m <= 256:
            off = _factor_error(st.B, st.L, m, a)
        else:
            lx, bx = np.empty(m), np.empty(B.shape[1])
            off = max(_factor_error_along(st.B, st.L, m, a, load_checks.probe_start(m, k).copy(),
                                          lx, bx) for k in range(load_checks.PROBE_STEPS))
        if not off <= 1e-4 * scale:
            return "the small Cholesky factor does not factor alpha I + B B^T"
        return None

    # ---- choice among k (edge_omd/solvers/mnl.py): n = k - 1 rank-one terms per observation
    def choice_step(self, cw, w, eta):
        """Steps 1-2: v_j = cal_H^{-1} z_j by Woodbury (n solves), C = Z V^T, theta -= eta V^T b."""
        st = self.state
        m, alpha = int(st.rows[0]), float(st.alpha[0])
        for j in range(cw.Z.shape[0]):
            _solve(st.B, st.L, m, alpha, cw.Z[j], st.bz, st.c, cw.V[j])
        mnl.margins(st.theta, cw.Z, cw.m)
        mnl.weights(cw.m, w, cw.q, cw.Lw)
        mnl.gram(cw.V, cw.Z, cw.C)
        if math.isnan(mnl.step_coef(cw.C, cw.Lw, cw.q, w, eta, cw.K, cw.t, cw.b)):
            return False
        if _choice_drift(st.theta, st.L, m, alpha, cw.V, cw.b, eta, self.eps) > linalg.DRIFT_LIMIT:
            return False  # the pair's drift guard (_step_drift) on the move eta V^T b
        return bool(mnl.move(st.theta, cw.V, cw.b, eta, cw.g))

    def choice_absorb(self, cw, w):
        """Step 4: forget once, then append the n rows x_i at theta_{t+1} to B (a shrink
        whenever the 2 ell-row buffer is full)."""
        st = self.state
        mnl.margins(st.theta, cw.Z, cw.m)
        mnl.weights(cw.m, w, cw.q, cw.Lw)
        mnl.rows(cw.Lw, cw.Z, 1.0, cw.X)
        if self.config.forget != 1.0:
            _forget(st.B, st.L, st.alpha, st.rows, st.W, self.config.forget, self.lam)
        for i in range(cw.X.shape[0]):
            if st.rows[0] == st.B.shape[0]:
                self.shrink()
            _append_row(st.B, st.L, st.alpha, st.rows, cw.X[i], st.bz)
        return True

    def choice_hv(self, vec, out, tmp):
        st = self.state
        _hv(st.B, int(st.rows[0]), float(st.alpha[0]), vec, st.bz, out)

    def choice_lower(self):
        return float(self.state.alpha[0])

    def choice_inv(self, vec, out, tmp):
        """cal_H^{-1} vec (float64) by Woodbury (step 3's M mode, as the pair's)."""
        st = self.state
        _woodbury64(st.B, st.L, int(st.rows[0]), float(st.alpha[0]), vec, st.bz, st.c, out)

    def choice_theta0(self, ws):
        return projection.load(self.state.theta, ws.theta0)


@kernel(both("f8(F[::1], f8[:, ::1], i8, f8, F[:, ::1], f8[::1], f8, f8)"), group="choice")
def _choice_drift(theta, L, m, alpha, V, b, eta, eps):
    """_step_drift of a choice's move eta V^T b (V: rows cal_H^{-1} z_j). O(m^2 + n d)."""
    kappa = _kappa_bound(L, m, alpha)
    vv = 0.0
    tt = 0.0
    for c in range(theta.shape[0]):
        acc = 0.0
        for j in range(V.shape[0]):
            acc += eta * b[j] * float(V[j, c])
        vv += acc * acc
        tc = float(theta[c]) - acc
        tt += tc * tc
    return eps * kappa * math.sqrt(vv) / max(math.sqrt(tt), 1.0)


@kernel(both("void(F[:, ::1], f8[:, ::1], f8[::1], i8[::1], F[::1], f8[::1])"), group="choice")
def _append_row(B, L, alpha, rows, x, g):
    """Append the row x to B and extend L by one row (_append with the row given). Needs
    rows < 2 ell."""
    m = rows[0]
    for j in range(x.shape[0]):
        B[m, j] = x[j]
    zz = lanes_dot(B[m], B[m])
    for i in range(m):
        g[i] = linalg.dot(B[i], B[m])
    _border(L, g, m, zz, alpha[0])
    rows[0] = m + 1
