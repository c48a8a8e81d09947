package dev.edgeomd;

/**
 * Step 3 of Algorithm 1 (edge_omd/projection.py): theta_{t+1} = argmin_{||theta|| <= B}
 * ||theta - theta'||_{tilde_H}, a trust-region subproblem whose minimiser, when ||theta'|| > B, is
 * theta(mu) = (tilde_H + mu I)^{-1} tilde_H theta' = (I + mu M)^{-1} theta' (M = tilde_H^{-1})
 * with the unique mu > 0 where ||theta(mu)|| = B.
 *
 * <p>As in Python: ONE Lanczos basis per projection, started at theta' itself, then the secular
 * equation 1/||h(mu)|| - 1/B = 0 on the small tridiagonal T_k by Newton from mu = 0 (bracketed).
 * The operator is tilde_H ("H" mode: cg, whose inverse would be a whole CG solve) or tilde_H^{-1}
 * ("M" mode: exact by two triangular sweeps, sketch by Woodbury); the residual r_k = beta_k |h_k|
 * (H) or mu beta_k |h_k| (M) is tested against tol (M) or tol (lower + mu) (H, lower: a lower
 * bound on tilde_H's spectrum, the damping), tol = {@link #tol} of the state's dtype. Solved for
 * theta' / B and the unit ball (mu is scale-free). When the KMAX stored vectors are full, Lanczos
 * continues with rolling vectors and theta_k is assembled in a second pass that regenerates them.
 * A result that is not finite, or beyond the dtype's theta limit, is refused (null): the caller
 * restores theta_t and raises NumericalException.
 */
final class Projection {
    static final int KMAX = 24, STEPS_MAX = 512;
    static final int MODE_H = 0, MODE_M = 1;

    /** out = Op v (float64 vectors). */
    interface Apply {
        void apply(double[] v, double[] out);
    }

    /** Old operator interface: returns Op v. */
    interface Op {
        double[] apply(double[] v);
    }

    private Projection() {
    }

    /** The relative residual test per state dtype (projection.TOL: float32 1e-6, float64 1e-8). */
    static double tol(boolean f32) {
        return f32 ? 1e-6 : 1e-8;
    }

    /**
     * One Lanczos step given w = Op q_j (projection.lanczos): alpha_j = q_j.w, w -= alpha_j q_j +
     * beta_{j-1} q_{j-1}, reorthogonalised twice against Q[0..nq), beta_j = ||w||, q_{j+1} = w / beta_j
     * (into qnext). Returns beta_j (0: the Krylov space is invariant).
     */
    static double lanczos(double[][] Q, int nq, double[] qprev, double[] qcur, double[] w, double[][] T, int j,
                          double[] qnext) {
        int d = w.length;
        double alpha = 0.0;
        for (int i = 0; i < d; i++) {
            alpha += qcur[i] * w[i];
        }
        double bprev = j > 0 ? T[1][j - 1] : 0.0;
        if (j > 0) {
            for (int i = 0; i < d; i++) {
                w[i] -= alpha * qcur[i] + bprev * qprev[i];
            }
        } else {
            for (int i = 0; i < d; i++) {
                w[i] -= alpha * qcur[i];
            }
        }
        for (int pass = 0; pass < 2; pass++) {
            for (int r = 0; r < nq; r++) {
                double c = 0.0;
                final double[] row = Q[r];
                for (int i = 0; i < d; i++) {
                    c += row[i] * w[i];
                }
                for (int i = 0; i < d; i++) {
                    w[i] -= c * row[i];
                }
            }
        }
        double beta = 0.0;
        for (int i = 0; i < d; i++) {
            beta += w[i] * w[i];
        }
        beta = Math.sqrt(beta);
        T[0][j] = alpha;
        T[1][j] = beta;
        if (beta > 0.0) {
            double inv = 1.0 / beta;
            for (int i = 0; i < d; i++) {
                qnext[i] = w[i] * inv;
            }
        }
        return beta;
    }

    /** out = A^{-1} rhs, A = T_k + mu I (H) or I + mu T_k (M): SPD tridiagonal, Thomas algorithm. */
    static void triSolve(double[][] T, int k, double mu, int mode, double[] rhs, double[] out, double[] cp,
                         double[] dp) {
        for (int i = 0; i < k; i++) {
            double di, oi;
            if (mode == MODE_H) {
                di = T[0][i] + mu;
                oi = T[1][i];
            } else {
                di = 1.0 + mu * T[0][i];
                oi = mu * T[1][i];
            }
            double ol = 0.0;
            if (i > 0) {
                ol = mode == MODE_M ? mu * T[1][i - 1] : T[1][i - 1];
            }
            double den = di - (i > 0 ? ol * cp[i - 1] : 0.0);
            cp[i] = oi / den;
            dp[i] = (rhs[i] - (i > 0 ? ol * dp[i - 1] : 0.0)) / den;
        }
        out[k - 1] = dp[k - 1];
        for (int i = k - 2; i >= 0; i--) {
            out[i] = dp[i] - cp[i] * out[i + 1];
        }
    }

    /**
     * The TRS on T_k (projection.secular): mu >= 0 with ||h(mu)|| = radius, h(mu) = c0 (T_k + mu
     * I)^{-1} T_k e1 (H) or c0 (I + mu T_k)^{-1} e1 (M), by Newton on 1/||h|| - 1/radius from
     * scal[MU], bracketed. Leaves h(mu) in h, mu in scal[MU]; returns the residual r_k.
     */
    static double secular(double[][] T, int k, double[] h, double[][] work, double[] scal) {
        double c0 = scal[C0], radius = scal[RADIUS];
        int mode = (int) scal[MODE];
        double[] e = work[0], g = work[1], cp = work[2], dp = work[3];
        for (int i = 0; i < k; i++) {
            e[i] = 0.0;
        }
        if (mode == MODE_H) {
            e[0] = c0 * T[0][0];
            if (k > 1) {
                e[1] = c0 * T[1][0];
            }
        } else {
            e[0] = c0;
        }
        double lo = 0.0, hi = Double.POSITIVE_INFINITY;
        double mu = scal[MU];
        if (!(mu > 0.0)) {
            mu = 0.0;
        }
        for (int it = 0; it < 200; it++) {
            triSolve(T, k, mu, mode, e, h, cp, dp);
            double nh = 0.0;
            for (int i = 0; i < k; i++) {
                nh += h[i] * h[i];
            }
            nh = Math.sqrt(nh);
            if (Math.abs(nh - radius) <= 1e-14 * radius) {
                break;
            }
            if (nh > radius) {
                lo = mu;
            } else {
                hi = mu;
            }
            if (mode == MODE_H) {
                System.arraycopy(h, 0, g, 0, k);
            } else {
                for (int i = 0; i < k; i++) {
                    double acc = T[0][i] * h[i];
                    if (i > 0) {
                        acc += T[1][i - 1] * h[i - 1];
                    }
                    if (i < k - 1) {
                        acc += T[1][i] * h[i + 1];
                    }
                    g[i] = acc;
                }
            }
            triSolve(T, k, mu, mode, g, g, cp, dp);
            double hhp = 0.0;
            for (int i = 0; i < k; i++) {
                hhp += h[i] * g[i];
            }
            double muNew = hhp > 0.0 ? mu + ((nh - radius) / radius) * (nh * (nh / hhp)) : -1.0;
            if (!(lo < muNew && muNew < hi)) {
                muNew = hi < Double.POSITIVE_INFINITY ? 0.5 * (lo + hi) : 2.0 * lo + 1e-300;
            }
            if (muNew == mu) {
                break;
            }
            mu = muNew;
        }
        scal[MU] = mu;
        double res = T[1][k - 1] * Math.abs(h[k - 1]);
        if (mode == MODE_M) {
            res *= mu;
        }
        return res;
    }

    private static final int C0 = 0, RADIUS = 1, MODE = 2, MU = 3;

    /**
     * Project theta0 (||theta0|| = c0 > radius) with op = Op (projection.lanczos_project); returns
     * the projected theta (float64), or null when the small problem has no finite solution.
     * kmax / stepsMax: stored Lanczos vectors and total steps (each solver's projection_shape).
     */
    static double[] lanczosProject(Apply op, double[] theta0, double c0, double radius, int mode, double lower,
                                   double tol, int kmax, int stepsMax) {
        int d = theta0.length;
        int nstore = Math.min(kmax, d);
        int steps = Math.min(stepsMax, 4 * d + 8);
        double[][] Q = new double[nstore + 1][d], roll = new double[3][d];
        double[][] T = new double[2][steps], work = new double[4][steps];
        double[] h = new double[steps], w = new double[d], out = new double[d];
        double[] scal = {c0 / radius, 1.0, mode, 0.0};
        double inv = 1.0 / c0;
        for (int i = 0; i < d; i++) {
            Q[0][i] = theta0[i] * inv;
        }
        int k = 0;
        double[] qprev = Q[0], qcur = Q[0];
        while (true) {
            op.apply(qcur, w);
            double[] qnext;
            double beta;
            if (k < nstore) {
                qnext = Q[k + 1];
                beta = lanczos(Q, k + 1, qprev, qcur, w, T, k, qnext);
            } else {
                qnext = roll[(k - nstore) % 3];
                beta = lanczos(Q, nstore + 1, qprev, qcur, w, T, k, qnext);
            }
            k++;
            double res = secular(T, k, h, work, scal);
            if (!Double.isFinite(res)) {
                return null;
            }
            double limit = mode == MODE_M ? tol : tol * (lower + scal[MU]);
            if (res <= limit || beta == 0.0 || k >= steps) {
                break;
            }
            qprev = qcur;
            qcur = qnext;
        }
        int n = Math.min(k, nstore + 1);  // out = radius sum_{j < n} h_j Q[j]
        for (int j = 0; j < n; j++) {
            double hj = radius * h[j];
            for (int i = 0; i < d; i++) {
                out[i] += hj * Q[j][i];
            }
        }
        if (k > nstore + 1) {  // second pass: regenerate q_{nstore+1}, ... exactly as before
            double[][] T2 = new double[2][steps];
            qprev = nstore > 0 ? Q[nstore - 1] : Q[0];
            qcur = Q[nstore];
            for (int j = nstore; j < k - 1; j++) {
                op.apply(qcur, w);
                double[] qnext = roll[(j - nstore) % 3];
                T2[0][j] = T[0][j];
                if (j > 0) {
                    T2[1][j - 1] = T[1][j - 1];
                }
                lanczos(Q, nstore + 1, qprev, qcur, w, T2, j, qnext);
                double a = radius * h[j + 1];
                for (int i = 0; i < d; i++) {
                    out[i] += a * qnext[i];
                }
                qprev = qcur;
                qcur = qnext;
            }
        }
        return out;
    }

    /**
     * Land exactly on the sphere (rounding) and check every entry is within the state dtype's
     * theta limit (projection.finish); false: refuse.
     */
    static boolean finish(double[] out, double radius, boolean f32) {
        double nx = Math.sqrt(Num.dot(out, out));
        if (!Double.isFinite(nx)) {
            return false;
        }
        if (nx > radius) {
            double s = radius / nx;
            for (int i = 0; i < out.length; i++) {
                out[i] *= s;
            }
        }
        double lim = Num.thetaLimit(f32);
        for (double x : out) {
            if (!(Math.abs(x) < lim)) {
                return false;
            }
        }
        return true;
    }

    /**
     * Step 3 through a tilde_H operator alone (H mode, no lower bound on its spectrum known, so
     * the residual test is the strictest one, tol mu, at float64's tolerance): what callers use
     * that hold no solver. Solvers project with {@link Solver#project}, in their own mode.
     * Returns theta' itself when it is inside the ball; NumericalException when no finite
     * projection exists (nothing is changed here; the caller restores theta_t).
     */
    static double[] projectToBall(double[] thetaPrime, Op tilde, double radius) {
        double c0 = Num.norm(thetaPrime);
        if (!(c0 > radius)) {
            if (c0 != c0) {
                throw new NumericalException("the projection onto ||theta|| <= radius has no finite result");
            }
            return thetaPrime.clone();
        }
        double[] out = lanczosProject((v, o) -> System.arraycopy(tilde.apply(v), 0, o, 0, v.length), thetaPrime,
                c0, radius, MODE_H, 0.0, tol(false), KMAX, STEPS_MAX);
        if (out == null || !finish(out, radius, false)) {
            throw new NumericalException("the projection onto ||theta|| <= radius has no finite result; check "
                    + "radius and the feature scale");
        }
        return out;
    }
}
