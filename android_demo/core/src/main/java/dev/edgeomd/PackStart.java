package dev.edgeomd;

/**
 * The start kernels of a population pack (edge_omd/solvers/prior_start.py):
 * cal_H_0 = (lam + c) I + sign V^T V from V (r x d, float64), every sum in Python's order in
 * float64, so a Java start rounds to the same state as Python's (the golden tests compare the
 * bytes), and the checks of Python's Solver._start_problem.
 */
final class PackStart {
    private PackStart() {
    }

    /** ||V||_F^2, summed row by row in order (prior_start.sum_sq64). */
    static double sumSq(double[][] V) {
        double acc = 0.0;
        for (double[] row : V) {
            for (double x : row) {
                acc += x * x;
            }
        }
        return acc;
    }

    /** out (d x d, row-major) = c I + sign V^T V (prior_start.low_rank_plus). */
    static void lowRankPlus(double[][] V, double c, double sign, double[] out, int d) {
        for (int i = 0; i < d; i++) {
            int o = i * d;
            for (int k = 0; k < d; k++) {
                out[o + k] = 0.0;
            }
            for (double[] v : V) {
                double vi = v[i];
                for (int k = 0; k < d; k++) {
                    out[o + k] += vi * v[k];
                }
            }
            for (int k = 0; k < d; k++) {
                out[o + k] = sign * out[o + k];
            }
            out[o + i] = c + out[o + i];
        }
    }

    /** out_i = sum_j V_ji^2, over the rows in order (prior_start.col_sum_sq). */
    static void colSumSq(double[][] V, double[] out) {
        java.util.Arrays.fill(out, 0.0);
        for (double[] v : V) {
            for (int i = 0; i < out.length; i++) {
                out[i] += v[i] * v[i];
            }
        }
    }

    /**
     * In place: U^T U += sign sum_i x_i x_i^T for an upper-triangular float64 U (rows as arrays,
     * U[k][j] for j >= k), X destroyed, in one top-down pass (prior_start.chol_rows_upper: Givens
     * rotations for sign +1, the downdate's mixed hyperbolic rotations for -1, each downdated
     * pivot^2 floored at {@code floor}).
     */
    static void cholRowsUpper(double[][] U, double[][] X, double sign, double floor) {
        int d = U.length;
        for (int k = 0; k < d; k++) {
            double ukk = U[k][k];
            double[] row = U[k];
            for (double[] xt : X) {
                double xk = xt[k];
                if (xk == 0.0) {
                    continue;
                }
                double rr = ukk * ukk + sign * (xk * xk);
                if (sign < 0.0) {
                    rr = Math.max(rr, floor);
                }
                double rk = Math.sqrt(rr);
                double s = xk / ukk, c = rk / ukk, invC = ukk / rk;
                double ss = sign * s;
                for (int j = k + 1; j < d; j++) {
                    double ukj = (row[j] + ss * xt[j]) * invC;
                    row[j] = ukj;
                    xt[j] = c * xt[j] - s * ukj;
                }
                ukk = rk;
            }
            U[k][k] = ukk;
        }
    }

    /** {largest, smallest} eigenvalue of V^T V (the smallest 0 when r < d), as prior_start.low_rank_extremes. */
    static double[] lowRankExtremes(double[][] V, int d) {
        int r = V.length;
        if (r == 0) {
            return new double[]{0.0, 0.0};
        }
        int n = Math.min(r, d);
        double[] G = new double[n * n];
        if (r <= d) {
            for (int i = 0; i < r; i++) {
                for (int k = 0; k <= i; k++) {
                    double acc = 0.0;
                    for (int j = 0; j < d; j++) {
                        acc += V[i][j] * V[k][j];
                    }
                    G[i * n + k] = acc;
                    G[k * n + i] = acc;
                }
            }
        } else {
            lowRankPlus(V, 0.0, 1.0, G, d);
        }
        double[] ev = new SymEigen(G, n).values;
        return new double[]{Math.max(ev[n - 1], 0.0), r >= d ? Math.max(ev[0], 0.0) : 0.0};
    }

    /** Why a solver of this dtype cannot start here (Python's Solver._start_problem), or null. */
    static String problem(Solver s, double[] theta0, double c, double[][] V, double sign, double damping) {
        if (sign != 1.0 && sign != -1.0) {
            return "sign must be +1 or -1, got " + sign;
        }
        double eps = s.f32 ? Math.ulp(1.0f) : Math.ulp(1.0);
        double fmax = s.f32 ? Float.MAX_VALUE : Double.MAX_VALUE;
        double top = 0.0;
        for (double x : theta0) {
            top = Math.max(top, Math.abs(x));
        }
        if (!(top <= fmax * Num.THETA_LIMIT)) {
            return "theta0 has entries of " + top + ", beyond what " + (s.f32 ? "float32" : "float64") + " holds";
        }
        if (sign < 0.0) {
            double gmax = lowRankExtremes(V, s.d)[0];
            if (!(gmax <= c + 8.0 * Math.max(V.length, 1) * 0x1p-52 * gmax)) {
                return "the negative part's largest eigenvalue (" + gmax + ") exceeds c = " + c
                        + ": cal_H_0 = (lam + c) I - V^T V would fall below lam I";
            }
        }
        double trace = c * s.d + sign * sumSq(V);
        if (!(trace * eps <= 0.1 * damping)) {
            return "its curvature (trace " + trace + ") is beyond what " + (s.f32 ? "float32" : "float64")
                    + " holds next to the damping " + damping + " (trace * eps <= damping / 10)";
        }
        return null;
    }
}
