package dev.edgeomd;

/**
 * Choose-one-of-k (multinomial logit, Plackett-Luce first choice): the solver-independent part of
 * one {@link RewardModel#learnChoice} update, the twin of edge_omd/solvers/mnl.py (docs/ALGORITHM.md,
 * "Choice among k").
 *
 * <p>The user saw k candidates phi_0..phi_{k-1} and chose phi_c: P(c) = softmax_j(theta.phi_j)_c.
 * In the chosen-minus-other basis z_j = phi_c - phi_j (j != c, input order), m_j = theta.z_j,
 * q_j = P(j) = exp(-m_j) / (1 + sum_l exp(-m_l)), the gradient is Z^T a with a = -w q and the
 * Hessian w Z^T (diag(q) - q q^T) Z = sum_i x_i x_i^T, x_i = sum_l (sqrt(w) L)_li z_l with the
 * closed-form Cholesky factor L of diag(q) - q q^T ({@link #weights}): n = k - 1 rank-one terms,
 * what every solver absorbs. Step 2 with tilde_H = cal_H + eta X^T X by Woodbury, V = cal_H^{-1}
 * Z^T (the solver's n solves), C = Z cal_H^{-1} Z^T: tilde_H^{-1} g = V b, b = a - Lw K^{-1} Lw^T
 * C a, K = I / eta + Lw^T C Lw ({@link #stepCoef}). k = 2 is the pair's step.
 *
 * <p>Numerics as the rest of the core: the (n, d) rows hold values rounded to the state's dtype
 * (float32 states round every store), every scalar, reduction and n x n matrix is float64. The
 * scratch of one call ({@link Work}) is allocated per call and dropped, as in Python: it is not
 * part of the state (nbytes is the same with or without choices).
 */
final class Mnl {
    /** The most candidates one choice may hold (mnl.MAX_K; the scratch is (MAX_K - 1) x d). */
    static final int MAX_K = 16;

    private Mnl() {
    }

    /** Scratch of one choice, n = k - 1 rows (mnl.Work; n x n matrices row-major, flat). */
    static final class Work {
        final int n, d;
        final double[][] Z, V, X;  // (n, d) F: z_j = phi_c - phi_j; cal_H^{-1} z_j (exact: U^{-T} z_j); rows x_i
        final double[] g;          // (d) F: the gradient / a candidate theta
        final double[] m, q, e, b, t;  // (n): margins, others' probabilities, x_i.theta, step coefficients, scratch
        final double[] Lw, C, K;   // (n, n): sqrt(w) L, Z cal_H^{-1} Z^T, I / eta + Lw^T C Lw then its factor

        Work(int n, int d) {
            this.n = n;
            this.d = d;
            Z = new double[n][d];
            V = new double[n][d];
            X = new double[n][d];
            g = new double[d];
            m = new double[n];
            q = new double[n];
            e = new double[n];
            b = new double[n];
            t = new double[n];
            Lw = new double[n * n];
            C = new double[n * n];
            K = new double[n * n];
        }
    }

    // ------------------------------------------------------------------ n x n
    /**
     * From the margins m_j = theta.z_j: q (the others' probabilities) and Lw = sqrt(w) L, the
     * Cholesky factor of w (diag(q) - q q^T), column i from the masses after and before row i,
     * s_i = p_c + sum_{l > i} q_l and s_i + q_i (suffix sums: no cancellation). Returns p_c.
     */
    static double weights(double[] m, double w, double[] q, double[] Lw) {
        int n = m.length;
        double lo = 0.0;  // the largest score, relative to the chosen one's: -lo
        for (int j = 0; j < n; j++) {
            if (m[j] < lo) {
                lo = m[j];
            }
        }
        double ec = Math.exp(lo);
        for (int j = 0; j < n; j++) {
            q[j] = Math.exp(lo - m[j]);
        }
        double tot = ec;
        for (int j = 0; j < n; j++) {
            tot += q[j];
        }
        double inv = 1.0 / tot, pc = ec * inv;
        for (int j = 0; j < n; j++) {
            q[j] *= inv;
        }
        double after = pc;
        for (int i = n - 1; i >= 0; i--) {
            double before = after + q[i];
            Lw[i * n + i] = before > 0.0 ? Math.sqrt(w * q[i] * after / before) : 0.0;
            double off = after > 0.0 ? Math.sqrt(w * q[i] / (after * before)) : 0.0;
            for (int l = i + 1; l < n; l++) {
                Lw[l * n + i] = -q[l] * off;
            }
            for (int l = 0; l < i; l++) {
                Lw[l * n + i] = 0.0;
            }
            after = before;
        }
        return pc;
    }

    /** r[:n] <- (L L^T)^{-1} r[:n] in place (L: lower, row-major with stride n). */
    static void choleskySolve(double[] L, double[] r, int n) {
        for (int i = 0; i < n; i++) {
            double acc = r[i];
            for (int j = 0; j < i; j++) {
                acc -= L[i * n + j] * r[j];
            }
            r[i] = acc / L[i * n + i];
        }
        for (int i = n - 1; i >= 0; i--) {
            double acc = r[i];
            for (int j = i + 1; j < n; j++) {
                acc -= L[j * n + i] * r[j];
            }
            r[i] = acc / L[i * n + i];
        }
    }

    /**
     * b = a - Lw K^{-1} Lw^T C a, a = -w q, K = I / eta + Lw^T C Lw (its Cholesky factor in place,
     * pivots floored at 1 / eta: K >= I / eta): tilde_H^{-1} g = cal_H^{-1} Z^T b. Returns b^T C b,
     * or NaN if anything is not finite.
     */
    static double stepCoef(Work cw, double w, double eta) {
        int n = cw.n;
        double[] C = cw.C, Lw = cw.Lw, q = cw.q, K = cw.K, t = cw.t, b = cw.b;
        for (int i = 0; i < n; i++) {  // t = Lw^T C a; K = Lw^T C Lw + I / eta
            double acc = 0.0;
            for (int j = 0; j < n; j++) {
                double cj = 0.0;
                for (int l = 0; l < n; l++) {
                    cj += C[j * n + l] * (-w * q[l]);
                }
                acc += Lw[j * n + i] * cj;
            }
            t[i] = acc;
            for (int k = 0; k <= i; k++) {
                acc = 0.0;
                for (int j = 0; j < n; j++) {
                    double lc = 0.0;
                    for (int l = 0; l < n; l++) {
                        lc += C[j * n + l] * Lw[l * n + k];
                    }
                    acc += Lw[j * n + i] * lc;
                }
                K[i * n + k] = acc + (i == k ? 1.0 / eta : 0.0);
            }
        }
        Num.choleskyFloored(K, n, n, 1.0 / eta);
        choleskySolve(K, t, n);
        for (int j = 0; j < n; j++) {
            double acc = -w * q[j];
            for (int i = 0; i < n; i++) {
                acc -= Lw[j * n + i] * t[i];
            }
            b[j] = acc;
        }
        double bcb = 0.0;
        for (int j = 0; j < n; j++) {
            for (int l = 0; l < n; l++) {
                bcb += b[j] * C[j * n + l] * b[l];
            }
        }
        return Double.isFinite(bcb) ? bcb : Double.NaN;
    }

    /**
     * Steps 1-2's coefficients for a solver that holds theta and has put cal_H^{-1} z_j in V:
     * margins, weights, C = Z V^T (symmetrised) and b ({@link #stepCoef}). false: not finite.
     */
    static boolean coefficients(Work cw, double[] theta, double w, double eta) {
        margins(theta, cw.Z, cw.m);
        weights(cw.m, w, cw.q, cw.Lw);
        gram(cw.V, cw.Z, cw.C);
        return !Double.isNaN(stepCoef(cw, w, eta));
    }

    /** Step 4's rows: the Hessian's x_i at theta (theta_{t+1}), into X. */
    static void hessianRows(Work cw, double[] theta, double w, boolean f32) {
        margins(theta, cw.Z, cw.m);
        weights(cw.m, w, cw.q, cw.Lw);
        rows(cw.Lw, cw.Z, 1.0, cw.X, f32);
    }

    // ------------------------------------------------------------------ n x d
    /** Z = [phi_c - phi_j for j != c], in input order, rounded to the state's dtype. */
    static void differences(double[][] P, int c, double[][] Z, boolean f32) {
        int r = 0;
        for (int j = 0; j < P.length; j++) {
            if (j != c) {
                for (int i = 0; i < P[j].length; i++) {
                    Z[r][i] = Num.rd(P[c][i] - P[j][i], f32);
                }
                r++;
            }
        }
    }

    /** m_j = theta.z_j. */
    static void margins(double[] theta, double[][] Z, double[] m) {
        for (int j = 0; j < Z.length; j++) {
            m[j] = Num.dot(theta, Z[j]);
        }
    }

    /** C_jl = (v_j.z_l + v_l.z_j) / 2: Z cal_H^{-1} Z^T, exactly symmetric. */
    static void gram(double[][] V, double[][] Z, double[] C) {
        int n = Z.length, d = Z[0].length;
        for (int j = 0; j < n; j++) {
            for (int l = 0; l <= j; l++) {
                double a = 0.0, b = 0.0;
                final double[] vj = V[j], zl = Z[l], vl = V[l], zj = Z[j];
                for (int i = 0; i < d; i++) {
                    a += vj[i] * zl[i];
                    b += vl[i] * zj[i];
                }
                double c = 0.5 * (a + b);
                C[j * n + l] = c;
                C[l * n + j] = c;
            }
        }
    }

    /** X_i = scale sum_l Lw_li z_l (Lw lower triangular), rounded to the dtype on every store. */
    static void rows(double[] Lw, double[][] Z, double scale, double[][] X, boolean f32) {
        int n = Z.length, d = Z[0].length;
        for (int i = 0; i < n; i++) {
            final double[] xi = X[i];
            java.util.Arrays.fill(xi, 0.0);
            for (int l = i; l < n; l++) {
                double coef = scale * Lw[l * n + i];
                if (coef != 0.0) {
                    final double[] zl = Z[l];
                    for (int c = 0; c < d; c++) {
                        xi[c] = Num.rd(xi[c] + coef * zl[c], f32);
                    }
                }
            }
        }
    }

    /** out = V^T b = sum_j b_j v_j, rounded to the dtype on every store. */
    static void combine(double[][] V, double[] b, double[] out, boolean f32) {
        java.util.Arrays.fill(out, 0.0);
        for (int j = 0; j < V.length; j++) {
            double bj = b[j];
            final double[] vj = V[j];
            for (int c = 0; c < out.length; c++) {
                out[c] = Num.rd(out[c] + bj * vj[c], f32);
            }
        }
    }

    /**
     * theta <- theta - eta V^T b, only if every new entry is within THETA_LIMIT of the state's
     * dtype, as the pair's step keeps it (mnl.move; cand receives the candidate). Returns
     * false, theta untouched, otherwise.
     */
    static boolean move(double[] theta, double[][] V, double[] b, double eta, double[] cand, boolean f32) {
        double lim = Num.thetaLimit(f32);  // as Num.moveChecked: the loader's theta bound
        for (int c = 0; c < theta.length; c++) {
            double acc = theta[c];
            for (int j = 0; j < V.length; j++) {
                acc -= eta * b[j] * V[j][c];
            }
            cand[c] = Num.rd(acc, f32);
            if (!(Math.abs(cand[c]) <= lim)) {
                return false;
            }
        }
        System.arraycopy(cand, 0, theta, 0, theta.length);
        return true;
    }

    /** sum_i ||x_i||^2: the trace of the Hessian the rows hold. */
    static double sumSq(double[][] X) {
        double acc = 0.0;
        for (double[] row : X) {
            for (double x : row) {
                acc += x * x;
            }
        }
        return acc;
    }

    // ------------------------------------------------------------------ step 3
    /** out += X^T X vec: the rank-n part of tilde_H in step 3 (H mode). */
    static void addRowsHv(double[][] X, double[] vec, double[] out) {
        for (double[] row : X) {
            double acc = 0.0;
            for (int c = 0; c < row.length; c++) {
                acc += row[c] * vec[c];
            }
            for (int c = 0; c < row.length; c++) {
                out[c] += acc * row[c];
            }
        }
    }

    /** G = the lower Cholesky factor of I + X W^T (W = cal_H^{-1} X^T; >= I: pivots floored at 1). */
    static void cholCapacitance(double[][] X, double[][] W, double[] G) {
        int n = X.length, d = X[0].length;
        for (int i = 0; i < n; i++) {
            for (int k = 0; k <= i; k++) {
                double a = 0.0, b = 0.0;
                for (int c = 0; c < d; c++) {
                    a += X[i][c] * W[k][c];
                    b += X[k][c] * W[i][c];
                }
                G[i * n + k] = 0.5 * (a + b) + (i == k ? 1.0 : 0.0);
            }
        }
        Num.choleskyFloored(G, n, n, 1.0);
    }

    /** out <- out - W^T (I + X W^T)^{-1} W v: cal_H^{-1} v on entry, tilde_H^{-1} v on return. */
    static void woodburyRows(double[][] W, double[] G, double[] v, double[] r, double[] out) {
        int n = W.length;
        for (int i = 0; i < n; i++) {
            r[i] = Num.dot(W[i], v);
        }
        choleskySolve(G, r, n);
        for (int i = 0; i < n; i++) {
            double ri = r[i];
            for (int c = 0; c < out.length; c++) {
                out[c] -= ri * W[i][c];
            }
        }
    }

    /**
     * Step 3 for a choice (mnl.project): argmin_{||theta|| <= radius} ||theta - theta'||_{tilde_H},
     * tilde_H = cal_H + X^T X (X: the sqrt(eta)-scaled rows at theta_t), by the Lanczos TRS of
     * {@link Projection}, in M mode over the solver's cal_H^{-1} (Woodbury for the rows) where it
     * offers one (exact, sketch, diagonal), else in H mode (cg). Commits the result with setTheta;
     * returns 0 (theta' inside), 1 (projected) or -1 (nothing changed: not finite).
     */
    static int project(Solver s, double[][] X, double radius, long t) {
        double[] theta0 = s.choiceTheta0();
        double c0 = 0.0;
        for (double v : theta0) {
            c0 += v * v;
        }
        c0 = Math.sqrt(c0);
        if (!(c0 > radius)) {
            return c0 == c0 ? 0 : -1;
        }
        int n = X.length, d = theta0.length;
        final Projection.Apply inv = s.choiceInverse();
        Projection.Apply op;
        int mode;
        if (inv != null) {
            final double[][] W = new double[n][d];
            final double[] G = new double[n * n], r = new double[n];
            for (int i = 0; i < n; i++) {
                inv.apply(X[i], W[i]);
            }
            cholCapacitance(X, W, G);
            op = (v, out) -> {
                inv.apply(v, out);
                woodburyRows(W, G, v, r, out);
            };
            mode = Projection.MODE_M;
        } else {
            op = (v, out) -> {
                s.choiceHv(v, out, t);
                addRowsHv(X, v, out);
            };
            mode = Projection.MODE_H;
        }
        double[] out = Projection.lanczosProject(op, theta0, c0, radius, mode, s.choiceLower(t), s.choiceTol(),
                Projection.KMAX, Projection.STEPS_MAX);
        return s.finishProjection(out, radius);
    }
}
