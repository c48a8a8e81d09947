package dev.edgeomd;

/**
 * Sketched local norm by robust Frequent Directions (edge_omd/solvers/sketch.py), the update on
 * the state of {@link SketchState}: solves by Woodbury through L, rows appended to B, a shrink to
 * ell rows when the buffer is full with the shrinkage mass delta / 2 added to alpha, forgetting,
 * steps 1-4 of a pair or a choice among k, and the drift guard that refuses a step the dtype
 * cannot hold.
 */
final class SketchSolver extends SketchState {
    SketchSolver(int d, boolean f32, double lam, int rank) {
        super(d, f32, lam, rank);
    }

    /** v = cal_H^{-1} z by Woodbury; returns z^T cal_H^{-1} z. */
    double solve(double[] z) {
        int m = (int) rows;
        for (int i = 0; i < m; i++) {
            bz[i] = Num.dot(B[i], z);
        }
        for (int i = 0; i < m; i++) {
            double acc = bz[i];
            for (int k = 0; k < i; k++) {
                acc -= L[i * mMax + k] * c[k];
            }
            c[i] = acc / L[i * mMax + i];
        }
        for (int i = m - 1; i >= 0; i--) {
            double acc = c[i];
            for (int k = i + 1; k < m; k++) {
                acc -= L[k * mMax + i] * c[k];
            }
            c[i] = acc / L[i * mMax + i];
        }
        System.arraycopy(z, 0, v, 0, d);
        // v = z - B^T c, accumulated in float64 and rounded to the dtype once (the Numba kernel
        // rounds a float32 v after every row: up to m roundings; the difference is far inside
        // the 1e-5 the goldens check, and the loop vectorises: 5x faster at d=384, rank 64)
        for (int i = 0; i < m; i++) {
            double ci = c[i];
            final double[] row = B[i];
            for (int j = 0; j < d; j++) {
                v[j] -= ci * row[j];
            }
        }
        double invA = 1.0 / alpha;
        double q = 0.0;
        for (int j = 0; j < d; j++) {
            double vj = Num.rd(v[j], f32) * invA;
            v[j] = Num.rd(vj, f32);
            q += vj * z[j];
        }
        return q;
    }

    /**
     * Steps 1-2 (sketch._step); NaN with nothing moved when not finite, or beyond the dtype's
     * precision: the row step 4 appends, b = sqrt(w sigma'(theta'.z)) z, with ||b||^2 eps above
     * 0.1 alpha would swamp alpha in L's new pivot (L would stop factoring alpha I + B B^T).
     */
    @Override
    double step(double[] z, double y, double w, double eta, long t) {
        double m = Num.dot(theta, z);
        double q = solve(z);
        double s = Num.sigmoid(m);
        double coef = eta * w * (s - y) / (1.0 + eta * w * s * (1.0 - s) * q);  // as omdMove
        if (w * Num.dsigmoid(m - coef * q) * Num.dot(z, z) * Num.eps(f32) > 0.1 * alpha) {
            return Double.NaN;
        }
        if (stepDrift(coef) > Num.DRIFT_LIMIT) {
            return Double.NaN;
        }
        return Num.omdMove(theta, v, m, q, y, w, eta, f32);
    }

    /**
     * sketch._step_drift: Num.moveDrift of the step theta - coef v, v = cal_H^{-1} z, with
     * kappa = trace(L L^T) / alpha - m + 1 (>= 1 + lambda_max(B B^T) / alpha).
     */
    double stepDrift(double coef) {
        return Num.moveDrift(theta, v, coef, kappaBound(), f32);
    }

    /**
     * trace(L L^T) / alpha - m + 1 >= 1 + lambda_max(B B^T) / alpha >= kappa(cal_H)
     * (sketch._kappa_bound). O(m^2).
     */
    double kappaBound() {
        int m = (int) rows;
        double tr = 0.0;
        for (int i = 0; i < m; i++) {
            for (int k = 0; k <= i; k++) {
                double l = L[i * mMax + k];
                tr += l * l;
            }
        }
        return Math.max(tr / alpha - m, 0.0) + 1.0;
    }

    @Override
    double absorb(double[] z, double w, double forget, long t, boolean fresh) {
        if (forget != 1.0) {
            forget(forget);
            fresh = false;
        }
        if (rows == mMax) {
            shrink();
            fresh = false;
        }
        return append(z, w, fresh);
    }

    /** Append the row sqrt(w sigma'(theta.z)) z to B and extend L (sketch._append); gIsBz: bz
     * holds B z from this step's solve (B unchanged since), so B b = sqrt(c) bz. */
    double append(double[] z, double w, boolean gIsBz) {
        double cw = w * Num.dsigmoid(Num.dot(theta, z));
        double sc = Math.sqrt(cw);
        int m = (int) rows;
        final double[] bm = B[m];
        for (int j = 0; j < d; j++) {
            bm[j] = Num.rd(sc * z[j], f32);
        }
        if (gIsBz) {
            for (int i = 0; i < m; i++) {
                bz[i] *= sc;
            }
            extend(m);
        } else {
            appendRow(bm);
        }
        return cw;
    }

    /** Append the row x (already in the dtype) to B and extend L by one row (sketch._append_row). */
    void appendRow(double[] x) {
        int m = (int) rows;
        final double[] bm = B[m];
        if (x != bm) {
            System.arraycopy(x, 0, bm, 0, d);
        }
        for (int i = 0; i < m; i++) {
            bz[i] = Num.dot(B[i], bm);
        }
        extend(m);
    }

    /** L's row m for B's new row m, with bz = B_m b (border), then rows = m + 1. */
    private void extend(int m) {
        final double[] bm = B[m];
        double zz = 0.0;
        for (int j = 0; j < d; j++) {
            zz += bm[j] * bm[j];
        }
        border(bz, m, zz);
        rows = m + 1;
    }

    /**
     * Extend L (L L^T = alpha I + B_m B_m^T) by row m for a new row b of B with g = B_m b and
     * zz = ||b||^2 (sketch._border): L[m, :m] = L^{-1} g, then the pivot, floored at sqrt(alpha):
     * L[m, m]^2 = alpha (1 + b^T cal_H^{-1} b) >= alpha exactly, and alpha + zz - ll cancels
     * when ||b||^2 >> alpha.
     */
    void border(double[] g, int m, double zz) {
        double ll = 0.0;
        for (int i = 0; i < m; i++) {
            double acc = g[i];
            for (int k = 0; k < i; k++) {
                acc -= L[i * mMax + k] * L[m * mMax + k];
            }
            double li = acc / L[i * mMax + i];
            L[m * mMax + i] = li;
            ll += li * li;
        }
        L[m * mMax + m] = Math.sqrt(Math.max(alpha + zz - ll, alpha));
    }

    /** alpha <- gamma alpha + (1 - gamma) lam, B <- sqrt(gamma) B, L <- chol(alpha I + B B^T). */
    void forget(double gamma) {
        int m = (int) rows;
        double aOld = alpha;
        double aNew = gamma * aOld + (1.0 - gamma) * lam;
        double sg = Math.sqrt(gamma);
        for (int i = 0; i < m; i++) {
            final double[] row = B[i];
            for (int j = 0; j < d; j++) {
                row[j] = Num.rd(sg * row[j], f32);
            }
        }
        double[] W = new double[m * m];
        for (int i = 0; i < m; i++) {
            for (int k = 0; k <= i; k++) {
                double acc = 0.0;
                for (int j = 0; j <= k; j++) {
                    acc += L[i * mMax + j] * L[k * mMax + j];
                }
                if (i == k) {
                    acc -= aOld;
                }
                W[i * m + k] = gamma * acc + (i == k ? aNew : 0.0);
            }
        }
        for (int i = 0; i < m; i++) {
            for (int k = 0; k <= i; k++) {
                L[i * mMax + k] = W[i * m + k];
            }
        }
        Num.choleskyFloored(L, mMax, m, aNew);  // W >= a_new I: its Schur complements too
        alpha = aNew;
    }

    /** Frequent-Directions shrink of the full buffer down to ell rows (robust FD). */
    void shrink() {
        int m = (int) rows, ell = rank;
        double a = alpha;
        double[] W = new double[m * m];  // B B^T = L L^T - alpha I
        for (int i = 0; i < m; i++) {
            for (int k = 0; k < m; k++) {
                double acc = 0.0;
                int up = Math.min(i, k);
                for (int j = 0; j <= up; j++) {
                    acc += L[i * mMax + j] * L[k * mMax + j];
                }
                W[i * m + k] = i == k ? acc - a : acc;
            }
        }
        SymEigen eig = new SymEigen(W, m);
        double[] s = new double[m];
        double[][] Q = eig.vectors;
        for (int i = 0; i < m; i++) {
            s[i] = eig.values[m - 1 - i];  // descending; column m-1-i of Q
        }
        double delta = m > ell ? Math.max(s[ell], 0.0) : 0.0;
        double[] Mt = new double[ell * m];  // (ell, m), rounded to the dtype
        double[] lk = new double[ell];
        for (int i = 0; i < ell; i++) {
            boolean keep = s[i] > delta;
            double scale = keep ? Math.sqrt((s[i] - delta) / s[i]) : 0.0;
            lk[i] = keep ? s[i] - delta : 0.0;
            int col = m - 1 - i;
            for (int k = 0; k < m; k++) {
                Mt[i * m + k] = Num.rd(Q[k][col] * scale, f32);
            }
        }
        double[][] blk = new double[ell][d];
        for (int i = 0; i < ell; i++) {
            final double[] bi = blk[i];
            for (int k = 0; k < m; k++) {
                double mik = Mt[i * m + k];
                if (mik == 0.0) {
                    continue;
                }
                final double[] bk = B[k];
                for (int j = 0; j < d; j++) {
                    bi[j] += mik * bk[j];
                }
            }
        }
        for (int i = 0; i < ell; i++) {
            for (int j = 0; j < d; j++) {
                B[i][j] = Num.rd(blk[i][j], f32);
            }
        }
        for (int i = ell; i < m; i++) {
            java.util.Arrays.fill(B[i], 0.0);
        }
        alpha = a + delta / 2.0;
        // L = chol(alpha I + B B^T) of the rows AS STORED (sketch._shrink): in float32 a
        // diagonal L from the eigenvalues is off by eps ||B||^2, beyond alpha once ||B||^2 >
        // alpha / eps (||z|| = 1e4: the sketch ended 11x off float64). O(ell^2 d).
        java.util.Arrays.fill(L, 0.0);
        choleskyShifted(ell);
        rows = ell;
    }

    /**
     * L[:m, :m] = chol(alpha I + B_m B_m^T) from the stored rows (sketch._cholesky_shifted):
     * the Gram matrix in float64, each pivot floored at alpha (alpha I + B B^T >= alpha I, and
     * so is every Schur complement). O(m^2 d + m^3).
     */
    void choleskyShifted(int m) {
        double[] W = new double[m * m];
        for (int i = 0; i < m; i++) {
            for (int k = 0; k <= i; k++) {
                W[i * m + k] = Num.dot(B[i], B[k]);
            }
        }
        for (int i = 0; i < m; i++) {
            for (int k = 0; k <= i; k++) {
                L[i * mMax + k] = W[i * m + k] + (i == k ? alpha : 0.0);
            }
        }
        Num.choleskyFloored(L, mMax, m, alpha);
    }

    // ------------------------------------------------------------------ choice among k (Mnl)
    /**
     * Steps 1-2 (sketch.SketchSolver.choice_step): v_j = cal_H^{-1} z_j by Woodbury (n solves),
     * C = Z V^T, theta -= eta V^T b, refused (theta unmoved) by the pair's drift guard on that
     * move or when not finite.
     */
    @Override
    boolean choiceStep(Mnl.Work cw, double w, double eta, long t) {
        for (int j = 0; j < cw.n; j++) {
            solve(cw.Z[j]);
            System.arraycopy(v, 0, cw.V[j], 0, d);
        }
        if (!Mnl.coefficients(cw, theta, w, eta)) {
            return false;
        }
        double kappa = kappaBound(), vv = 0.0, tt = 0.0;  // sketch._choice_drift
        for (int c = 0; c < d; c++) {
            double acc = 0.0;
            for (int j = 0; j < cw.n; j++) {
                acc += eta * cw.b[j] * cw.V[j][c];
            }
            vv += acc * acc;
            double tc = theta[c] - acc;
            tt += tc * tc;
        }
        if (Num.eps(f32) * kappa * Math.sqrt(vv) / Math.max(Math.sqrt(tt), 1.0) > Num.DRIFT_LIMIT) {
            return false;
        }
        return Mnl.move(theta, cw.V, cw.b, eta, cw.g, f32);
    }

    /** Step 4: forget once, then append the n rows x_i at theta_{t+1} to B (a shrink whenever the
     * 2 ell-row buffer is full). */
    @Override
    boolean choiceAbsorb(Mnl.Work cw, double w, double forget, long t) {
        Mnl.hessianRows(cw, theta, w, f32);
        if (forget != 1.0) {
            forget(forget);
        }
        for (double[] x : cw.X) {
            if (rows == mMax) {
                shrink();
            }
            appendRow(x);
        }
        return true;
    }

    @Override
    double choiceLower(long t) {
        return alpha;
    }

    /** cal_H^{-1} v by Woodbury: step 3 of a choice in M mode, as the pair's. */
    @Override
    Projection.Apply choiceInverse() {
        final double[] bzw = new double[Math.max(mMax, 1)], cw = new double[Math.max(mMax, 1)];
        return (v, out) -> woodbury64(v, bzw, cw, out);
    }

    /**
     * Step 3 in M mode (sketch.SketchSolver.project): tilde_H^{-1} v = P v - a (Pz.v) / (1 + a
     * z.Pz) Pz with P = cal_H^{-1} by Woodbury; B is unchanged since the step. Krylov spaces have at
     * most 2 ell + 2 dimensions (tilde_H^{-1} - I / alpha has rank <= 2 ell + 1).
     */
    @Override
    int project(double[] z, double a, double radius, long t) {
        double c0 = Num.norm(theta);
        if (!(c0 > radius)) {
            return c0 == c0 ? 0 : -1;
        }
        final double[] bzw = new double[Math.max(mMax, 1)], cw = new double[Math.max(mMax, 1)];
        final double[] pz = new double[d];
        woodbury64(z, bzw, cw, pz);
        final double zpz = Num.dot(z, pz);
        Projection.Apply op = (v, out) -> {
            woodbury64(v, bzw, cw, out);
            double coef = a * Num.dot(pz, v) / (1.0 + a * zpz);
            for (int j = 0; j < d; j++) {
                out[j] -= coef * pz[j];
            }
        };
        return finishProjection(Projection.lanczosProject(op, theta.clone(), c0, radius, Projection.MODE_M, alpha,
                Projection.tol(f32), Math.min(Projection.KMAX, 2 * rank + 2), 4 * rank + 12), radius);
    }

    @Override
    void widths(double[][] V, double[] out, long t) {
        int m = (int) rows;
        for (int n = 0; n < V.length; n++) {
            double[] vn = V[n];
            double vv = Num.dot(vn, vn);
            for (int i = 0; i < m; i++) {
                bz[i] = Num.dot(B[i], vn);
            }
            double acc = 0.0;
            for (int i = 0; i < m; i++) {
                double tt = bz[i];
                for (int k = 0; k < i; k++) {
                    tt -= L[i * mMax + k] * c[k];
                }
                tt /= L[i * mMax + i];
                c[i] = tt;
                acc += tt * tt;
            }
            out[n] = Math.sqrt(Math.max(vv - acc, 0.0) / alpha);
        }
    }
}
