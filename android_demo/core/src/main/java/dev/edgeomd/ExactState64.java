package dev.edgeomd;

import java.nio.ByteBuffer;

/**
 * The exact solver's state (edge_omd/solvers/exact.py): cal_H = U^T U as its upper Cholesky
 * factor U (row-major d x d), theta kept as phi = U theta, and a deferred rank-one update (xp,
 * aux). This class holds the arrays and what only reads or sets them: the start at a pack, the
 * triangular solves with U, the payload's bytes and the loader's checks. The update itself
 * (step, absorb, fantasize, choices) is {@link ExactSolver64}.
 *
 * <p>One source, two classes: the types and casts marked F are the state's dtype, double in
 * ExactState64 and float in ExactState32, which android_demo/core/gen_exact32.py generates from
 * ExactState64.java (every F-marked double becomes float; the suite fails when the committed
 * ExactState32.java is not its output). As in the Numba kernels, a float32 state's row loops run
 * in float arithmetic; phi and every scalar and reduction stay double.
 */
abstract class ExactState64 extends Solver {
    static final int E = 0, PENDING = 1, THETA_OK = 2, BOUND = 3;
    final /*F*/double[] theta, xp, u, zbuf;
    final /*F*/double[][] U;  // row i: U[i][i..d) (rows as arrays: C2 vectorises row[j] loops)
    final double[] phi;
    final double[] aux = new double[4];
    final double fmax = /*F*/Double.MAX_VALUE, eps = Math.ulp((/*F*/double) 1.0);

    ExactState64(int d, double lam) {
        super(d, /*F*/Double.BYTES == 4, lam);
        theta = new /*F*/double[d];
        U = new /*F*/double[d][d];
        phi = new double[d];
        xp = new /*F*/double[d];
        u = new /*F*/double[d];
        zbuf = new /*F*/double[d];
        reset();
    }

    @Override
    int code() {
        return 1;
    }

    @Override
    boolean supportsForget() {
        return false;
    }

    @Override
    void reset() {
        java.util.Arrays.fill(theta, 0);
        for (/*F*/double[] row : U) {
            java.util.Arrays.fill(row, 0);
        }
        java.util.Arrays.fill(phi, 0);
        java.util.Arrays.fill(xp, 0);
        java.util.Arrays.fill(u, 0);
        java.util.Arrays.fill(aux, 0);
        /*F*/double s = (/*F*/double) Math.sqrt(lam);
        for (int i = 0; i < d; i++) {
            U[i][i] = s;
        }
        aux[THETA_OK] = 1.0;
    }

    /**
     * Python's exact _start_problem beyond the common checks: eps * lambda_max / lambda_min of
     * cal_H_0 above KAPPA_EPS_LIMIT (exact eigenvalues: lam + c + sign those of V^T V).
     */
    @Override
    String startProblem(double[] theta0, double c, double[][] V, double sign) {
        double a = lam + c;
        double[] g = PackStart.lowRankExtremes(V, d);
        double lmax = sign > 0.0 ? a + g[0] : a - g[1];
        double lmin = sign > 0.0 ? a + g[1] : Math.max(a - g[0], lam);
        if (!(eps * lmax <= Num.KAPPA_EPS_LIMIT * lmin)) {
            return "its condition number (" + lmax / lmin + ") is beyond what the state's dtype holds "
                    + "(eps * kappa <= " + Num.KAPPA_EPS_LIMIT + ", the exact solver's precision guard)";
        }
        return null;
    }

    /**
     * U = the Cholesky factor of (lam + c) I + sign V^T V from sqrt(lam + c) I by r rank-one
     * updates (PackStart.cholRowsUpper, float64, pivots floored at lam), rounded to the dtype
     * once; theta = theta0 rounded; phi = U theta from the rounded arrays (Python's _start).
     */
    @Override
    void startArrays(double[] theta0, double c, double[][] V, double sign) {
        double[][] U64 = new double[d][d];
        double s = Math.sqrt(lam + c);
        for (int i = 0; i < d; i++) {
            U64[i][i] = s;
        }
        if (V.length > 0) {
            double[][] X = new double[V.length][];
            for (int i = 0; i < V.length; i++) {
                X[i] = V[i].clone();
            }
            PackStart.cholRowsUpper(U64, X, sign, lam);
        }
        for (int i = 0; i < d; i++) {
            for (int j = i; j < d; j++) {
                U[i][j] = (/*F*/double) U64[i][j];
            }
            theta[i] = (/*F*/double) theta0[i];
        }
        double nrm = 0.0;
        double[] th = new double[d];
        for (int i = 0; i < d; i++) {
            th[i] = theta[i];
        }
        double[] row = new double[d];  // row i of U in double, one buffer for every row
        for (int i = 0; i < d; i++) {  // phi = U theta summed as exact._phi_from_theta (lanes_dot)
            for (int k = i; k < d; k++) {
                row[k] = U[i][k];
            }
            phi[i] = Num.lanesDot(row, i, th, i, d - i);
            nrm += (double) theta[i] * (double) theta[i];
        }
        aux[E] = 0.0;
        aux[PENDING] = 0.0;
        aux[THETA_OK] = 1.0;
        aux[BOUND] = Math.sqrt(nrm);
    }

    /** u = U^{-T} b (U current); returns ||u||^2. */
    double solveUpperT(/*F*/double[] b, /*F*/double[] out) {
        System.arraycopy(b, 0, out, 0, d);
        double acc = 0.0;
        for (int j = 0; j < d; j++) {
            final /*F*/double[] row = U[j];
            /*F*/double oj = out[j] / row[j];
            out[j] = oj;
            acc += (double) oj * oj;
            for (int k = j + 1; k < d; k++) {
                out[k] -= oj * row[k];
            }
        }
        return acc;
    }

    /** The loader's relative tolerance of phi = U theta: sqrt(eps) (+ float64's own rounding). */
    double phiTolerance() {
        return Math.sqrt(eps) + 4.0 * d * 0x1p-52;
    }

    /** The loader's slack for a theta rounded to the dtype's subnormal spacing, per |U_ij|. */
    static final double TINY = 2.0 * /*F*/Double.MIN_VALUE;

    /**
     * Is |U theta - phi|_i > tol (|U| |theta|)_i + TINY sum_j |U_ij| for some row i (the
     * loader's check at tolerance tol, exact._phi_drift)? One pass over the upper triangle.
     */
    boolean phiDrift(double tol) {
        for (int i = 0; i < d; i++) {
            final /*F*/double[] row = U[i];
            double acc = 0.0, mag = 0.0, ab = 0.0;
            for (int k = i; k < d; k++) {
                double uk = row[k], tk = theta[k];
                acc += uk * tk;
                mag += Math.abs(uk) * Math.abs(tk);
                ab += Math.abs(uk);
            }
            if (!(Math.abs(acc - phi[i]) <= tol * mag + TINY * ab)) {
                return true;
            }
        }
        return false;
    }

    void thetaFromPhi() {
        for (int i = d - 1; i >= 0; i--) {
            double acc = phi[i];
            final /*F*/double[] row = U[i];
            for (int k = i + 1; k < d; k++) {
                acc -= (double) row[k] * theta[k];
            }
            theta[i] = (/*F*/double) (acc / row[i]);
        }
    }

    void phiFromTheta(double[] th, double[] out) {
        for (int i = 0; i < d; i++) {
            double acc = 0.0;
            final /*F*/double[] row = U[i];
            for (int k = i; k < d; k++) {
                acc += (double) row[k] * th[k];
            }
            out[i] = acc;
        }
    }

    /** out = U^{-1} phi in float64 (theta' of step 3, exact._theta64); returns ||out||. */
    double theta64(double[] out) {
        double nn = 0.0;
        for (int i = d - 1; i >= 0; i--) {
            double acc = phi[i];
            final /*F*/double[] row = U[i];
            for (int k = i + 1; k < d; k++) {
                acc -= row[k] * out[k];
            }
            out[i] = acc / row[i];
            nn += out[i] * out[i];
        }
        return Math.sqrt(nn);
    }

    @Override
    double[] matvec(double[] v, long t) {
        double[] tmp = new double[d], out = new double[d];
        phiFromTheta(v, tmp);
        for (int i = 0; i < d; i++) {
            double ti = tmp[i];
            final /*F*/double[] row = U[i];
            for (int k = i; k < d; k++) {
                out[k] += (double) row[k] * ti;
            }
        }
        return out;
    }

    @Override
    void writePayload(ByteBuffer b) {
        flush();
        thetaRef();
        writeArray(b, f32, theta);
        for (/*F*/double[] row : U) {
            writeArray(b, f32, row);
        }
        writeArray(b, false, phi);
    }

    @Override
    void readPayload(ByteBuffer b) {
        readArray(b, f32, theta);
        for (/*F*/double[] row : U) {
            readArray(b, f32, row);
        }
        readArray(b, false, phi);
    }

    /**
     * Why a loaded payload cannot be an exact state (exact.ExactSolver.invalid), or null: theta
     * within its limit, U upper triangular with a diagonal >= sqrt(lam) (a Cholesky update never
     * lowers it), entries with headroom, phi = U theta to sqrt(eps) of |U| |theta| componentwise
     * (float64), and no eigenvalue of cal_H below lam / FLOOR_SLACK along PROBE_STEPS power
     * steps of cal_H^{-1} (the estimate never exceeds the truth: a refusal is certain). O(d^2).
     */
    @Override
    String invalid() {
        double[] th = new double[d];
        for (int i = 0; i < d; i++) {
            th[i] = theta[i];
        }
        String problem = Num.thetaProblem(th, f32);
        if (problem != null) {
            return problem;
        }
        for (int i = 1; i < d; i++) {
            for (int k = 0; k < i; k++) {
                if (U[i][k] != 0) {
                    return "the Cholesky factor is not upper triangular";
                }
            }
        }
        double sq = (/*F*/double) Math.sqrt(lam) * (1.0 - 2.0 * eps);
        for (int i = 0; i < d; i++) {
            if (!(U[i][i] >= sq)) {
                return "the Cholesky factor's diagonal is below sqrt(lam)";
            }
        }
        double top = 0.0;
        for (/*F*/double[] row : U) {
            for (/*F*/double x : row) {
                top = Math.max(top, Math.abs(x));
            }
        }
        if (!(top <= Math.sqrt(fmax * Num.HEADROOM))) {  // cal_H = U^T U
            return "the Cholesky factor has entries beyond the dtype's headroom";
        }
        // a fantasize keeps theta while later flushes rotate U and phi: each rotation adds
        // ~eps |U| |theta|; sqrt(eps) admits thousands of them and no real mismatch
        double tol = phiTolerance();
        for (int i = 0; i < d; i++) {
            final /*F*/double[] row = U[i];
            double acc = 0.0, abs = 0.0, rowAbs = 0.0;
            for (int k = 0; k < d; k++) {
                acc += (double) row[k] * th[k];
                abs += Math.abs((double) row[k]) * Math.abs(th[k]);
                rowAbs += Math.abs((double) row[k]);
            }
            if (Math.abs(acc - phi[i]) > tol * abs + TINY * rowAbs) {
                return "phi is not U theta";
            }
        }
        double[] x = Num.probeStart(d), tmp = new double[d], out = new double[d];
        for (int p = 0; p < Num.PROBE_STEPS; p++) {
            invApply(x, tmp, out);
            double rho = Math.sqrt(Num.dot(out, out));
            if (!(rho * lam <= Num.FLOOR_SLACK)) {
                return "cal_H has an eigenvalue below lam / 4";
            }
            for (int i = 0; i < d; i++) {
                x[i] = out[i] / rho;
            }
        }
        return null;
    }

    /** out = cal_H^{-1} v = U^{-1} U^{-T} v in float64 (exact._inv_apply with a = 0). */
    void invApply(double[] v, double[] tmp, double[] out) {
        invApply(v, 0.0, tmp, out);
    }

    /**
     * out = tilde_H^{-1} v = U^{-1} (I + a u u^T)^{-1} U^{-T} v with u = U^{-T} z of this step
     * (exact._inv_apply: step 3's operator in M mode; a = 0: u is not read).
     */
    void invApply(double[] v, double a, double[] tmp, double[] out) {
        System.arraycopy(v, 0, tmp, 0, d);
        double uy = 0.0, uu = 0.0;
        for (int j = 0; j < d; j++) {
            final /*F*/double[] row = U[j];
            double tj = tmp[j] / row[j];
            tmp[j] = tj;
            double uj = u[j];
            uy += uj * tj;
            uu += uj * uj;
            for (int k = j + 1; k < d; k++) {
                tmp[k] -= tj * row[k];
            }
        }
        if (a != 0.0) {
            double c = a * uy / (1.0 + a * uu);
            for (int j = 0; j < d; j++) {
                tmp[j] -= c * u[j];
            }
        }
        for (int i = d - 1; i >= 0; i--) {
            final /*F*/double[] row = U[i];
            double acc = tmp[i];
            for (int k = i + 1; k < d; k++) {
                acc -= row[k] * out[k];
            }
            out[i] = acc / row[i];
        }
    }

    private boolean rowsFinite() {
        for (/*F*/double[] row : U) {
            if (!Num.allFinite(row)) {
                return false;
            }
        }
        return true;
    }

    @Override
    boolean finite() {
        return Num.allFinite(theta) && rowsFinite() && Num.allFinite(phi);
    }

    @Override
    void loaded() {
        aux[E] = 0;
        aux[PENDING] = 0;
        aux[THETA_OK] = 1;
        aux[BOUND] = Num.norm(theta);
    }

    @Override
    double[] denseH(long t) {
        flush();
        double[] H = new double[d * d];
        for (int i = 0; i < d; i++) {
            for (int j = 0; j < d; j++) {
                double acc = 0;
                for (int k = 0; k <= Math.min(i, j); k++) {
                    acc += (double) U[k][i] * U[k][j];
                }
                H[i * d + j] = acc;
            }
        }
        return H;
    }

    /** The step's guard (c ||z||^2 eps <= lam / 10) at ||z|| = 1 (exact.ExactSolver). */
    static final double MIN_LAM_FLOAT32 = 1e-6;

    static long stateBytes(long d, int itemsize) {
        return (d * d + 3 * d + 3) * itemsize + (d + 4) * 8;
    }

    /** Apply the pending rank-one update now (U and phi become current: the update's flush). */
    abstract void flush();

    /** theta in the dtype, derived from the flushed U and phi when it is stale (the update's). */
    abstract /*F*/double[] thetaRef();
}
