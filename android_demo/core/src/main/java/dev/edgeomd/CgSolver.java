package dev.edgeomd;

import java.nio.ByteBuffer;

/**
 * The paper's practical variant (edge_omd/solvers/cg.py): cal_H_t = lambda_t I + S_t with S the
 * full d x d curvature sum, tilde_H^{-1} z by K steps of conjugate gradient, lambda_t =
 * lambda_0 min(1, t / T). Arrays rounded to the dtype on every store, float64 arithmetic.
 */
final class CgSolver extends ExplicitThetaSolver {
    static final double WIDTH_TOL = 1e-10;
    final int cgSteps;
    final long lamWarmup;
    final double cgTol;
    final double[] S, x, r, p, Ap;
    /** A bound on S's spectral drift since S was last known PSD ({@link #fantasize}). */
    private double drift;
    /** The repair curvatureLost scheduled for step 4 (0: none). */
    private double shift;

    /** sigma' step 4 uses at most, for step 2's precision guard: 1/4 where step 3 may move
     * theta (a radius), else 0 (step 4's own, at the theta step 2 leaves). */
    private final double sigCap;

    CgSolver(int d, boolean f32, double lam, int cgSteps, long lamWarmup, double cgTol, boolean projected) {
        super(d, f32, lam);
        this.sigCap = projected ? 0.25 : 0.0;
        this.cgSteps = cgSteps;
        this.lamWarmup = lamWarmup;
        this.cgTol = cgTol;
        S = new double[d * d];
        x = new double[d];
        r = new double[d];
        p = new double[d];
        Ap = new double[d];
    }

    /** The drift guard (eps kappa) at ||z|| = 1 (cg.CGSolver; docs/ALGORITHM.md). */
    static final double MIN_LAM_FLOAT32 = 1e-4;

    static long stateBytes(long d, int itemsize) {
        return (d * d + 5 * d) * itemsize;
    }

    @Override
    int code() {
        return 2;
    }

    @Override
    boolean supportsForget() {
        return true;
    }

    @Override
    void reset() {
        for (double[] a : new double[][]{theta, S, x, r, p, Ap}) {
            java.util.Arrays.fill(a, 0);
        }
        drift = 0.0;
        shift = 0.0;
    }

    /** Only the loader's floor is known of a loaded S: probe before the first fantasize. */
    @Override
    void loaded() {
        drift = Double.POSITIVE_INFINITY;
    }

    /** cal_H_0's damping is lambda_1 (the warm-up schedule still applies). */
    @Override
    double startDamping() {
        return lamAt(1);
    }

    /** S = c I + sign V^T V in float64 (PackStart.lowRankPlus), rounded to the dtype once. */
    @Override
    void startArrays(double[] theta0, double c, double[][] V, double sign) {
        PackStart.lowRankPlus(V, c, sign, S, d);
        for (int i = 0; i < S.length; i++) {
            S[i] = Num.rd(S[i], f32);
        }
        for (int i = 0; i < d; i++) {
            theta[i] = Num.rd(theta0[i], f32);
        }
        drift = Double.POSITIVE_INFINITY;  // rounded to the dtype: probe before a fantasize
    }

    /** lambda_t = lambda_0 min(1, t / T) at round t (1-based); T = 0 means constant. */
    double lamAt(long t) {
        if (lamWarmup <= 0) {
            return lam;
        }
        return lam * Math.min(1.0, (double) t / (double) lamWarmup);
    }

    /** CG for (S + lam I + a z z^T) x = b from x0 = 0 (linalg.cg_solve), at most 4 d + 8 steps
     * (a loaded cg_steps of 2^20 would take seconds; nothing improves beyond). */
    int cgSolve(double lamT, double[] z, double a, double[] b, int maxSteps, double tol) {
        maxSteps = (int) Math.min(maxSteps, 4L * d + 8);
        double bb = cgStart(b);
        double rr = bb;
        double stop = tol * tol * bb;
        int steps = 0;
        while (steps < maxSteps && rr > stop) {
            symvPlus(lamT);
            double zp = Num.dot(z, p);
            double pAp = 0.0;
            for (int i = 0; i < d; i++) {
                double api = Ap[i] + a * z[i] * zp;
                Ap[i] = Num.rd(api, f32);
                pAp += p[i] * api;
            }
            if (pAp <= 0.0) {
                break;
            }
            rr = cgAdvance(rr, pAp);
            steps++;
        }
        return steps;
    }

    /** CG for (S + lam I + X^T X) x = b (cg._cg_solve_rows: a choice's rank-n term instead of a
     * z z^T), from x0 = 0, at most 4 d + 8 steps. */
    int cgSolveRows(double lamT, double[][] X, double[] b, int maxSteps, double tol) {
        maxSteps = (int) Math.min(maxSteps, 4L * d + 8);
        int n = X.length;
        double[] xp = new double[n];
        double bb = cgStart(b);
        double rr = bb;
        double stop = tol * tol * bb;
        int steps = 0;
        while (steps < maxSteps && rr > stop) {
            symvPlus(lamT);
            for (int l = 0; l < n; l++) {
                xp[l] = Num.dot(X[l], p);
            }
            double pAp = 0.0;
            for (int i = 0; i < d; i++) {
                double api = Ap[i];
                for (int l = 0; l < n; l++) {
                    api += X[l][i] * xp[l];
                }
                Ap[i] = Num.rd(api, f32);
                pAp += p[i] * api;
            }
            if (pAp <= 0.0) {
                break;
            }
            rr = cgAdvance(rr, pAp);
            steps++;
        }
        return steps;
    }

    /** x = 0, r = p = b; returns b.b (linalg.cg_start). */
    private double cgStart(double[] b) {
        double bb = 0.0;
        for (int i = 0; i < d; i++) {
            x[i] = 0.0;
            r[i] = b[i];
            p[i] = b[i];
            bb += b[i] * b[i];
        }
        return bb;
    }

    /** Ap = (S + lam I) p, rounded to the dtype (linalg.symv_plus). */
    private void symvPlus(double lamT) {
        for (int i = 0; i < d; i++) {
            double acc = lamT * p[i];
            int row = i * d;
            for (int k = 0; k < d; k++) {
                acc += S[row + k] * p[k];
            }
            Ap[i] = Num.rd(acc, f32);
        }
    }

    /** x += alpha p, r -= alpha Ap, p = r + beta p (Fletcher-Reeves); returns the new r.r
     * (linalg.cg_advance). */
    private double cgAdvance(double rr, double pAp) {
        double alpha = rr / pAp;
        double rrNew = 0.0;
        for (int i = 0; i < d; i++) {
            x[i] = Num.rd(x[i] + alpha * p[i], f32);
            double ri = r[i] - alpha * Ap[i];
            r[i] = Num.rd(ri, f32);
            rrNew += ri * ri;
        }
        double beta = rrNew / rr;
        for (int i = 0; i < d; i++) {
            p[i] = Num.rd(r[i] + beta * p[i], f32);
        }
        return rrNew;
    }

    /**
     * Steps 1-2 (cg.CGSolver.step and cg._step); NaN with nothing moved when the step is not
     * finite, when S has gone indefinite beyond -lambda_t / 8 (a Lanczos probe every max(d, 64)
     * updates, amortised O(d)), when the step's own rounding may move theta by more than
     * Num.DRIFT_LIMIT (the drift guard), or when the curvature step 4 would add pushes the trace
     * of S beyond 0.1 lambda_t / eps (the dtype's rounding of S would swamp the damping).
     */
    @Override
    double step(double[] z, double y, double w, double eta, long t) {
        double lamT = lamAt(t + 1);
        if (curvatureLost(t)) {
            return Double.NaN;
        }
        double m = Num.dot(theta, z);
        double s = Num.sigmoid(m);
        double a = eta * w * s * (1.0 - s);
        cgSolve(lamT, z, a, z, cgSteps, cgTol);
        double coef = eta * w * (s - y);
        if (!Double.isFinite(coef)) {
            return Double.NaN;
        }
        double tr = trace();
        double zz = Num.dot(z, z);
        // the drift guard (cg._step, the sketch's): the CG vectors and S are held in the dtype,
        // so x holds only to ~eps kappa, kappa <= 1 + (trace S + a ||z||^2) / lambda_t
        if (Num.moveDrift(theta, x, coef, 1.0 + (tr + a * zz) / lamT, f32) > Num.DRIFT_LIMIT) {
            return Double.NaN;
        }
        System.arraycopy(theta, 0, p, 0, d);  // theta_t (p is free after the solve)
        if (!Num.moveChecked(theta, x, coef, f32)) {
            return Double.NaN;
        }
        // the trace guard on step 4's own c (cg._step): every state left is inside invalid()'s bound
        double sig = sigCap > 0.0 ? sigCap : Num.dsigmoid(Num.dot(theta, z));
        if (!((tr + w * sig * zz) * Num.eps(f32) <= 0.1 * lamT)) {
            System.arraycopy(p, 0, theta, 0, d);
            return Double.NaN;
        }
        return a;
    }

    /**
     * The PSD probe before an update (pair or choice) every Num.probePeriod(d) updates
     * (cg.CGSolver._curvature_lost), on the lowest Ritz value rho: true (refuse; nothing has
     * moved) when S is indefinite beyond -psdFloor(lambda_{t+1}); below a quarter of the
     * loader's floor (psdFloor(lambda_1)) it schedules the repair S += 2 |rho| I, applied by
     * step 4 once the update has succeeded (repair).
     */
    boolean curvatureLost(long t) {
        shift = 0.0;
        if (!Num.probeDue(t, d)) {
            return false;
        }
        double rho = Num.lowestRitz(S, d, f32);
        if (rho < -psdFloor(lamAt(t + 1))) {
            return true;
        }
        if (rho < -0.25 * psdFloor(lamAt(1))) {
            shift = -2.0 * rho;  // the rounding repair step 4 applies (repair)
        }
        return false;
    }

    /** Step 4's end (cg.CGSolver._repair): S += shift I where curvatureLost scheduled it. */
    void repair() {
        if (shift > 0.0) {
            for (int i = 0; i < d; i++) {
                S[i * d + i] = Num.rd(S[i * d + i] + shift, f32);
            }
            shift = 0.0;
            drift = Double.POSITIVE_INFINITY;
        }
    }

    /** trace S in float64. */
    double trace() {
        double tr = 0.0;
        for (int i = 0; i < d; i++) {
            tr += S[i * d + i];
        }
        return tr;
    }

    /** cal_H = lambda_{t+1} I + S >= lambda_{t+1} I: the H-mode residual test's lower bound. */
    @Override
    double projectionLower(long t) {
        return lamAt(t + 1);
    }

    /**
     * How far below zero S may reach (cg.CGSolver._psd_floor): lam_t / 8, or the dtype's own
     * rounding of S (8 d eps max|S|) where a small lam_t (warm-up) is below it.
     */
    double psdFloor(double lamT) {
        return Math.max(lamT / (2.0 * Num.FLOOR_SLACK), 8.0 * d * Num.eps(f32) * Num.maxAbs(S));
    }

    /** Step 4: S <- forget S + c z z^T, exactly symmetric (linalg.syr_scaled: the upper
     * triangle computed, rounded once and mirrored; (c z_i) z_k and (c z_k) z_i round apart). */
    @Override
    double absorb(double[] z, double w, double forget, long t, boolean fresh) {
        double c = syr(z, w, forget);
        drift += trace() * Num.eps(f32);  // fantasize's drift budget
        repair();
        return c;
    }

    /**
     * S += c z z^T (no forgetting), or NaN (nothing changed) when the loader could refuse the
     * result (cg.CGSolver.fantasize): each such update moves S's spectrum by at most e = eps
     * (trace S + c ||z||^2). e > lambda_{t+1} / 10 (the step's trace guard) or e > floor / 4 is
     * refused (floor: the loader's, psdFloor(lambda_1)), and once the e summed since the last
     * probe (drift, also fed by absorb) would pass 3/4 floor, the PSD probe runs at floor / 4
     * first: S stays >= -floor, so every state left loads.
     */
    @Override
    double fantasize(double[] z, double w, long t) {
        double eps = Num.eps(f32);
        double c = w * Num.dsigmoid(Num.dot(theta, z));
        double e = (trace() + c * Num.dot(z, z)) * eps;
        if (!(e <= 0.1 * lamAt(t + 1))) {
            return Double.NaN;
        }
        double lam1 = lamAt(1);
        double floor = lam1 / (2.0 * Num.FLOOR_SLACK);  // psdFloor's first term: max|S| only when needed
        if (e > 0.25 * floor || drift + e > 0.75 * floor) {
            floor = psdFloor(lam1);
        }
        if (!(e <= 0.25 * floor)) {
            return Double.NaN;
        }
        if (!(drift + e <= 0.75 * floor)) {
            if (Num.indefiniteDirection(S, d, 0.25 * floor, f32)) {
                return Double.NaN;
            }
            drift = 0.0;
        }
        drift += e;
        return syr(z, w, 1.0);
    }

    /** S <- forget S + c z z^T, c = w sigma'(theta.z) (cg._absorb); returns c. */
    double syr(double[] z, double w, double forget) {
        double c = w * Num.dsigmoid(Num.dot(theta, z));
        for (int i = 0; i < d; i++) {
            double czi = c * z[i];
            int row = i * d;
            for (int k = i; k < d; k++) {
                S[row + k] = Num.rd(forget * S[row + k] + czi * z[k], f32);
            }
        }
        mirrorUpper();
        return c;
    }

    /** S's lower triangle from its upper one, in 32 x 32 tiles (a plain column walk of the
     * stores cost ~40% of an update at d = 384). */
    void mirrorUpper() {
        final int tile = 32;
        for (int i0 = 0; i0 < d; i0 += tile) {
            int i1 = Math.min(d, i0 + tile);
            for (int k0 = i0; k0 < d; k0 += tile) {
                int k1 = Math.min(d, k0 + tile);
                for (int i = i0; i < i1; i++) {
                    int row = i * d;
                    for (int k = Math.max(k0, i + 1); k < k1; k++) {
                        S[k * d + i] = S[row + k];
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ choice among k (Mnl)
    /**
     * Steps 1-2 (cg.CGSolver.choice_step): K CG steps on (lambda_t I + S + eta X^T X) x = g,
     * g = Z^T a (CG from 0 is linear in the right-hand side: k = 2 is the pair's step), after the
     * pair's PSD probe; theta -= eta x within the theta limit, refused by the pair's drift guard.
     */
    @Override
    boolean choiceStep(Mnl.Work cw, double w, double eta, long t) {
        if (curvatureLost(t)) {
            return false;
        }
        Mnl.margins(theta, cw.Z, cw.m);
        Mnl.weights(cw.m, w, cw.q, cw.Lw);
        Mnl.rows(cw.Lw, cw.Z, Math.sqrt(eta), cw.X, f32);
        for (int j = 0; j < cw.n; j++) {
            cw.b[j] = cw.q[j] * -w;
        }
        Mnl.combine(cw.Z, cw.b, cw.g, f32);
        double lam = lamAt(t + 1);
        cgSolveRows(lam, cw.X, cw.g, cgSteps, cgTol);
        double kappa = 1.0 + (trace() + Mnl.sumSq(cw.X)) / lam;  // the pair's drift guard
        if (Num.moveDrift(theta, x, eta, kappa, f32) > Num.DRIFT_LIMIT) {
            return false;
        }
        return Num.moveChecked(theta, x, eta, f32);
    }

    /**
     * Step 4: S <- forget S + sum_i x_i x_i^T at theta_{t+1}; false (nothing changed) when the
     * curvature sum would outgrow what the dtype holds next to the damping (the pair's precision
     * guard: (trace S + sum_i ||x_i||^2) eps > lambda_t / 10).
     */
    @Override
    boolean choiceAbsorb(Mnl.Work cw, double w, double forget, long t) {
        Mnl.hessianRows(cw, theta, w, f32);
        if (!((trace() + Mnl.sumSq(cw.X)) * Num.eps(f32) <= 0.1 * lamAt(t + 1))) {
            return false;
        }
        for (int i = 0; i < d; i++) {  // the upper triangle, then mirrored (cg._syr_rows: exactly symmetric)
            int row = i * d;
            for (int k = i; k < d; k++) {
                double acc = forget * S[row + k];
                for (double[] xl : cw.X) {
                    acc += xl[i] * xl[k];
                }
                S[row + k] = Num.rd(acc, f32);
            }
        }
        mirrorUpper();
        repair();
        return true;
    }

    @Override
    double[] matvec(double[] vec, long t) {
        double lamT = lamAt(t + 1);
        double[] out = new double[d];
        for (int i = 0; i < d; i++) {
            double acc = lamT * vec[i];
            int row = i * d;
            for (int k = 0; k < d; k++) {
                acc += S[row + k] * vec[k];
            }
            out[i] = acc;
        }
        return out;
    }

    @Override
    void widths(double[][] V, double[] out, long t) {
        double lamT = lamAt(t + 1);
        for (int n = 0; n < V.length; n++) {
            cgSolve(lamT, V[n], 0.0, V[n], 4 * d, WIDTH_TOL);
            out[n] = Math.sqrt(Math.max(Num.dot(V[n], x), 0.0));
        }
    }

    @Override
    void writePayload(ByteBuffer b) {
        writeArray(b, f32, theta);
        writeArray(b, f32, S);
    }

    @Override
    void readPayload(ByteBuffer b) {
        readArray(b, f32, theta);
        readArray(b, f32, S);
    }

    @Override
    boolean finite() {
        return Num.allFinite(theta) && Num.allFinite(S);
    }

    /**
     * Why a loaded payload cannot be a cg state (cg.CGSolver.invalid), or null: theta within
     * its limit, S with headroom, symmetric and PSD as far as cheap tests see (diagonal, every
     * 2 x 2 principal minor, the Lanczos probe) down to -psdFloor(lambda_1), the threshold at
     * which step refuses to go on.
     */
    @Override
    String invalid() {
        return invalid(0);
    }

    /** invalid() after t updates: also trace S eps <= lambda_{t+1} / 10 (cg.TRACE_SLACK). */
    @Override
    String invalid(long t) {
        String problem = Num.thetaProblem(theta, f32);
        if (problem != null) {
            return problem;
        }
        if (!(Num.maxAbs(S) <= Num.fmax(f32) * Num.HEADROOM)) {
            return "the curvature matrix has entries beyond the dtype's headroom";
        }
        double lamNext = lamAt(t + 1);
        if (!(trace() * Num.eps(f32) <= 0.1 * lamNext * (1.0 + TRACE_SLACK))) {
            return "the curvature matrix's trace is beyond what the dtype holds next to lambda_t";
        }
        return symmetricPsdProblem(psdFloor(lamAt(1)));
    }

    /** cg.TRACE_SLACK: the loader's trace bound over the updates' guard (rounding). */
    static final double TRACE_SLACK = 1e-4;

    /** load_checks.symmetric_psd_problem on S (the same tests and order, sums in S's dtype). */
    String symmetricPsdProblem(double floor) {
        double top = Num.maxAbs(S);
        for (int i = 0; i < d; i++) {
            if (S[i * d + i] < -floor) {
                return "the curvature matrix has a negative diagonal";
            }
        }
        double sc = top > 1.0 ? 1.0 / top : 1.0;  // scaled to max <= 1: squares cannot overflow
        double scF = Num.rd(sc, f32), f = floor * sc;
        double[] dg = new double[d];
        for (int i = 0; i < d; i++) {
            dg[i] = Num.rd(S[i * d + i] * sc + f, f32);
        }
        double symTol = 1e-5 * top * sc;
        final int rows = 256, tile = 32;  // row blocks as load_checks.blocks; tiles: S^T read in cache
        for (int i0 = 0; i0 < d; i0 += rows) {
            int i1 = Math.min(d, i0 + rows);
            for (int t0 = i0; t0 < i1; t0 += tile) {
                int t1 = Math.min(i1, t0 + tile);
                for (int k0 = 0; k0 < d; k0 += tile) {
                    int k1 = Math.min(d, k0 + tile);
                    for (int i = t0; i < t1; i++) {
                        for (int k = k0; k < k1; k++) {
                            double a = Num.rd(S[i * d + k] * scF, f32), b = Num.rd(S[k * d + i] * scF, f32);
                            if (Num.rd(a - b, f32) > symTol || Num.rd(b - a, f32) > symTol) {
                                return "the curvature matrix is not symmetric";
                            }
                        }
                    }
                }
            }
            for (int i = i0; i < i1; i++) {
                for (int k = 0; k < d; k++) {
                    double a = Num.rd(S[i * d + k] * scF, f32);
                    if (Num.rd(a * a, f32) > Num.rd(dg[i] * dg[k], f32)) {
                        return "the curvature matrix has a 2 x 2 principal minor below zero";
                    }
                }
            }
        }
        if (Num.indefiniteDirection(S, d, floor, f32)) {
            return "the curvature matrix is not positive semi-definite";
        }
        return null;
    }

    @Override
    double[] denseH(long t) {
        double[] H = S.clone();
        double lamT = lamAt(t + 1);
        for (int i = 0; i < d; i++) {
            H[i * d + i] += lamT;
        }
        return H;
    }
}
