package dev.edgeomd;

/** Scalar helpers shared by the solvers (edge_omd/linalg.py): the logistic link, float64 dots. */
final class Num {
    /** |theta_i| stays below fmax * THETA_LIMIT of the state's dtype (linalg.THETA_LIMIT). */
    static final double THETA_LIMIT = 0x1p-40;
    /** Curvature entries of a loaded state stay below fmax * HEADROOM (load_checks.HEADROOM). */
    static final double HEADROOM = 0x1p-20;
    /** A loaded local norm has no eigenvalue below lam / FLOOR_SLACK (load_checks.FLOOR_SLACK). */
    static final double FLOOR_SLACK = 4.0;
    /** Power-iteration steps of the exact loader's eigenvalue probe (load_checks.PROBE_STEPS). */
    static final int PROBE_STEPS = 6;
    /** The exact solver refuses an update once eps kappa(cal_H) > KAPPA_EPS_LIMIT (linalg). */
    static final double KAPPA_EPS_LIMIT = 1e-3;
    /**
     * A step is refused when its own rounding may move theta by more than DRIFT_LIMIT of
     * max(||theta'||, 1) (linalg.DRIFT_LIMIT, {@link #moveDrift}): the sketch and cg hold their
     * solves in the dtype, only to ~eps kappa.
     */
    static final double DRIFT_LIMIT = 1e-3;
    /** Power-iteration steps on A and on A^{-1} per precision probe (linalg.EIG_STEPS). */
    static final int EIG_STEPS = 4;

    /** out = A v (float64 vectors): an operator of the precision probes. */
    interface Op {
        void apply(double[] v, double[] out);
    }

    /**
     * The precision probes' fixed start (linalg.guard_start): x_i = frac((i + 1) 2654435761 /
     * 2^32) - 1/2, a Weyl sequence in integer arithmetic (the same vector as Python's), unit length.
     */
    static double[] guardStart(int d) {
        double[] x = new double[d];
        for (int i = 0; i < d; i++) {
            x[i] = (((i + 1L) * 2654435761L) & 0xFFFFFFFFL) / 4294967296.0 - 0.5;
        }
        double inv = 1.0 / Math.sqrt(dot(x, x));
        for (int i = 0; i < d; i++) {
            x[i] *= inv;
        }
        return x;
    }

    /** Updates between two precision probes of a d-dimensional state (linalg.probe_period). */
    static long probePeriod(int d) {
        return Math.max(d, 64);
    }

    /** Is a precision probe due before the update after t updates? (never at t = 0) */
    static boolean probeDue(long t, int d) {
        return t > 0 && t % probePeriod(d) == 0;
    }

    /**
     * (lmax, lmin) estimates of an SPD operator of size d (linalg.extreme_eigenvalues): the best
     * Rayleigh quotients of EIG_STEPS power steps on A and on A^{-1}, float64, from the fixed
     * start {@link #guardStart} (Python's, bit for bit); lmax <= lambda_max and lmin >= lambda_min
     * always, so lmax / lmin never overstates the condition number.
     */
    static double[] extremeEigenvalues(Op apply, Op applyInv, int d) {
        double lmax = 0.0, invLmin = 0.0;
        double[] out = new double[d];
        for (int which = 0; which < 2; which++) {
            Op op = which == 0 ? apply : applyInv;
            double[] x = guardStart(d);
            double best = 0.0;
            for (int s = 0; s < EIG_STEPS; s++) {
                op.apply(x, out);
                best = Math.max(best, dot(x, out));
                double nrm = Math.sqrt(dot(out, out));
                if (!(nrm > 0.0 && Double.isFinite(nrm))) {
                    break;
                }
                double[] next = new double[d];
                for (int i = 0; i < d; i++) {
                    next[i] = out[i] / nrm;
                }
                x = next;
            }
            if (which == 0) {
                lmax = best;
            } else {
                invLmin = best;
            }
        }
        return new double[]{lmax, invLmin > 0.0 ? 1.0 / invLmin : Double.POSITIVE_INFINITY};
    }

    private Num() {
    }

    /** The largest finite number of the state's dtype. */
    static double fmax(boolean f32) {
        return f32 ? Float.MAX_VALUE : Double.MAX_VALUE;
    }

    /** Machine epsilon of the state's dtype. */
    static double eps(boolean f32) {
        return f32 ? Math.ulp(1.0f) : Math.ulp(1.0);
    }

    /** fmax * THETA_LIMIT: the bound every update keeps theta's entries within. */
    static double thetaLimit(boolean f32) {
        return fmax(f32) * THETA_LIMIT;
    }

    static double maxAbs(double[] a) {
        double top = 0.0;
        for (double x : a) {
            top = Math.max(top, Math.abs(x));
        }
        return top;
    }

    /** Why a loaded theta cannot be used (load_checks.theta_problem), or null. */
    static String thetaProblem(double[] theta, boolean f32) {
        double top = maxAbs(theta);
        if (!(top <= thetaLimit(f32))) {
            return String.format("theta has entries of %.3g, beyond the dtype's limit", top);
        }
        return null;
    }

    /**
     * A fixed unit start vector for the load-time eigenvalue probes (load_checks.probe_start's role:
     * a load is deterministic). Python draws numpy's PCG64 normals, which are not reproduced
     * here; the probes' refusals are certain from any start, and with d <= 16 the cg probe's
     * Krylov space is the whole space, so its verdict does not depend on the start.
     */
    static double[] probeStart(int d) {
        double[] x = new double[d];
        long s = 0x9E3779B97F4A7C15L;
        double nn = 0.0;
        for (int i = 0; i < d; i++) {
            s = s * 6364136223846793005L + 1442695040888963407L;
            double u = ((s >>> 11) + 0.5) / 9007199254740992.0;  // (0, 1)
            x[i] = u - 0.5 + (i % 2 == 0 ? 1e-3 : -1e-3);
            nn += x[i] * x[i];
        }
        double inv = 1.0 / Math.sqrt(nn);
        for (int i = 0; i < d; i++) {
            x[i] *= inv;
        }
        return x;
    }

    /**
     * Does the symmetric d x d S (row-major, values in the dtype) have an eigenvalue below
     * -floor along a Krylov space of min(d, 16) Lanczos steps (load_checks.indefinite_direction:
     * float64, full reorthogonalisation twice, fixed start, S scaled by 1 / max|S|)? Ritz values
     * lie inside the spectrum, so true is certain. O(16 d^2) time, O(16 d) memory.
     */
    static boolean indefiniteDirection(double[] S, int d, double floor, boolean f32) {
        return lowestRitz(S, d, f32) < -floor;
    }

    /**
     * The lowest Ritz value of S along indefiniteDirection's Krylov space, in S's units
     * (load_checks.lowest_ritz): >= lambda_min(S).
     */
    static double lowestRitz(double[] S, int d, boolean f32) {
        int k = Math.min(d, 16);
        double top = maxAbs(S);
        double sc = top > 0.0 ? 1.0 / top : 1.0;
        double[][] Q = new double[k][];
        double[] alpha = new double[k], beta = new double[k];
        double[] q = probeStart(d), qd = new double[d];
        int n = 0;
        for (int j = 0; j < k; j++) {
            Q[j] = q;
            for (int i = 0; i < d; i++) {
                qd[i] = rd(q[i], f32);  // the product in S's dtype, as numpy's S @ q.astype(S.dtype)
            }
            double[] w = new double[d];
            for (int i = 0; i < d; i++) {
                w[i] = rd(dot4(S, i * d, qd, d), f32) * sc;
            }
            alpha[j] = dot(q, w);
            for (int pass = 0; pass < 2; pass++) {
                double[] cj = new double[j + 1];
                for (int r = 0; r <= j; r++) {
                    cj[r] = dot(Q[r], w);
                }
                for (int r = 0; r <= j; r++) {
                    for (int i = 0; i < d; i++) {
                        w[i] -= cj[r] * Q[r][i];
                    }
                }
            }
            n = j + 1;
            double b = Math.sqrt(dot(w, w));
            if (!(b > 1e-12 * (Math.abs(alpha[j]) + 1e-300)) || j == k - 1) {
                break;
            }
            beta[j] = b;
            double[] next = new double[d];
            for (int i = 0; i < d; i++) {
                next[i] = w[i] / b;
            }
            q = next;
        }
        double[] T = new double[n * n];
        for (int i = 0; i < n; i++) {
            T[i * n + i] = alpha[i];
            if (i + 1 < n) {
                T[i * n + i + 1] = beta[i];
                T[(i + 1) * n + i] = beta[i];
            }
        }
        return new SymEigen(T, n).values[0] / sc;
    }

    /**
     * A[:n, :n] <- its lower Cholesky factor in place (row-major with the given stride; the lower
     * triangle is read), each pivot floored at {@code floor}, a lower bound of A's spectrum the
     * caller knows, so the floor only absorbs rounding (linalg.cholesky_floored): the sketch's
     * small factor (floor alpha) and a choice's n x n systems (Mnl). O(n^3).
     */
    static void choleskyFloored(double[] A, int stride, int n, double floor) {
        for (int i = 0; i < n; i++) {
            for (int k = 0; k <= i; k++) {
                double acc = A[i * stride + k];
                for (int j = 0; j < k; j++) {
                    acc -= A[i * stride + j] * A[k * stride + j];
                }
                if (i == k) {
                    A[i * stride + i] = Math.sqrt(Math.max(acc, floor));
                } else {
                    A[i * stride + k] = acc / A[k * stride + k];
                }
            }
        }
    }

    /** sigma(m) = 1 / (1 + exp(-m)), without overflow for large |m|. */
    static double sigmoid(double m) {
        if (m >= 0.0) {
            return 1.0 / (1.0 + Math.exp(-m));
        }
        double e = Math.exp(m);
        return e / (1.0 + e);
    }

    /** sigma'(m) = sigma(m) (1 - sigma(m)). */
    static double dsigmoid(double m) {
        double s = sigmoid(m);
        return s * (1.0 - s);
    }

    /** Round to the state's dtype: float32 states store every array entry rounded to float. */
    static double rd(double x, boolean f32) {
        return f32 ? (double) (float) x : x;
    }

    /** Partial sums of Python's lanes_dot (edge_omd/_numba.py LANES; a test holds them equal). */
    static final int LANES = 16;

    /**
     * sum_{i < n} a[ao + i] b[bo + i] in Python's _numba.lanes_dot order: 16 partial sums (lane
     * l takes i = l mod 16 over the full blocks, in order), combined by the fixed pairwise tree,
     * then the tail added in order. Where Python's kernel sums with lanes_dot and Java must give
     * its bits (a pack's start: phi = U theta).
     */
    static double lanesDot(double[] a, int ao, double[] b, int bo, int n) {
        final int lanes = LANES;
        int nb = n / lanes;
        double[] p = new double[lanes];
        for (int k = 0; k < nb; k++) {
            for (int l = 0; l < lanes; l++) {
                p[l] += a[ao + k * lanes + l] * b[bo + k * lanes + l];
            }
        }
        for (int width = lanes; width > 1; width /= 2) {
            for (int k = 0; k < width / 2; k++) {
                p[k] = p[2 * k] + p[2 * k + 1];
            }
        }
        double tail = 0.0;
        for (int i = nb * lanes; i < n; i++) {
            tail += a[ao + i] * b[bo + i];
        }
        return p[0] + tail;
    }

    static double dot(double[] a, int ao, double[] b, int bo, int n) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) {
            acc += a[ao + i] * b[bo + i];
        }
        return acc;
    }

    /** sum_{i < n} a[ao + i] b_i with four partial sums (as {@link #dot(double[], double[])}). */
    static double dot4(double[] a, int ao, double[] b, int n) {
        int i = 0;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        for (; i + 3 < n; i += 4) {
            s0 += a[ao + i] * b[i];
            s1 += a[ao + i + 1] * b[i + 1];
            s2 += a[ao + i + 2] * b[i + 2];
            s3 += a[ao + i + 3] * b[i + 3];
        }
        for (; i < n; i++) {
            s0 += a[ao + i] * b[i];
        }
        return (s0 + s1) + (s2 + s3);
    }

    /**
     * sum_i a_i b_i with four partial sums (the JIT does not reorder a float64 reduction by
     * itself; Numba's kernels are compiled with reassociation, so their order is not the
     * sequential one either): 2-3x faster at d=384, differences at the 1e-16 level.
     */
    static double dot(double[] a, double[] b) {
        int n = a.length, i = 0;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        for (; i + 3 < n; i += 4) {
            s0 += a[i] * b[i];
            s1 += a[i + 1] * b[i + 1];
            s2 += a[i + 2] * b[i + 2];
            s3 += a[i + 3] * b[i + 3];
        }
        for (; i < n; i++) {
            s0 += a[i] * b[i];
        }
        return (s0 + s1) + (s2 + s3);
    }

    /** Steps 1-2 given v = cal_H^{-1} z, m = theta.z, q = z^T cal_H^{-1} z (linalg.omd_move). */
    static double omdMove(double[] theta, double[] v, double m, double q, double y, double w, double eta,
                          boolean f32) {
        double s = sigmoid(m);
        double a = eta * w * s * (1.0 - s);
        double coef = eta * w * (s - y) / (1.0 + a * q);
        if (!(Double.isFinite(coef) && Double.isFinite(q))) {
            return Double.NaN;
        }
        return moveChecked(theta, v, coef, f32) ? a : Double.NaN;
    }

    /**
     * theta <- theta - coef v only if every new entry is within THETA_LIMIT of the state's dtype
     * (linalg.move_checked: finite in float64 is not enough, it can overflow float32, and
     * |theta_i| |z_i| must stay inside float32's range); v receives the candidate and is consumed.
     * Returns false, theta untouched, otherwise.
     */
    static boolean moveChecked(double[] theta, double[] v, double coef, boolean f32) {
        double lim = thetaLimit(f32);
        for (int i = 0; i < theta.length; i++) {
            double x = rd(theta[i] - coef * v[i], f32);
            v[i] = x;
            if (!(Math.abs(x) <= lim)) {
                return false;
            }
        }
        System.arraycopy(v, 0, theta, 0, theta.length);
        return true;
    }

    /**
     * eps kappa ||coef v|| / max(||theta - coef v||, 1) (linalg.move_drift): a bound on the
     * relative move of theta by the dtype's rounding of the solve v (condition number <= kappa)
     * of the step theta' = theta - coef v. O(d).
     */
    static double moveDrift(double[] theta, double[] v, double coef, double kappa, boolean f32) {
        double vv = 0.0, tt = 0.0;
        for (int j = 0; j < theta.length; j++) {
            double vj = coef * v[j];
            vv += vj * vj;
            double tj = theta[j] - vj;
            tt += tj * tj;
        }
        return eps(f32) * kappa * Math.sqrt(vv) / Math.max(Math.sqrt(tt), 1.0);
    }

    static boolean allFinite(double[] a) {
        for (double x : a) {
            if (!Double.isFinite(x)) {
                return false;
            }
        }
        return true;
    }

    static double norm(double[] a) {
        return Math.sqrt(dot(a, a));
    }

    /** The float arrays of the float32 exact solver (ExactSolver32): every entry finite. */
    static boolean allFinite(float[] a) {
        for (float x : a) {
            if (!Float.isFinite(x)) {
                return false;
            }
        }
        return true;
    }

    /** ||a|| of a float array, summed in float64 in order. */
    static double norm(float[] a) {
        double acc = 0.0;
        for (float x : a) {
            acc += (double) x * x;
        }
        return Math.sqrt(acc);
    }
}
