package dev.edgeomd;

/**
 * The exact solver's update (edge_omd/solvers/exact.py) on the state of {@link ExactState64}:
 * the rank-one update of U is deferred and fused with the next forward solve into one top-down
 * sweep of the upper triangle; steps 1-4 of a pair, a thumb or a choice among k, fantasize,
 * widths, step 3's projection, and the precision and overflow guards that refuse an update
 * before anything moves.
 *
 * <p>ExactSolver32 is generated from this file by android_demo/core/gen_exact32.py (F-marked
 * types and casts become float: the kernel's rotation coefficients are in the state's dtype).
 */
final class ExactSolver64 extends ExactState64 {
    ExactSolver64(int d, double lam) {
        super(d, lam);
    }

    /** One top-down pass: the pending update on U and phi, and (if solve) u = U_new^{-T} z. */
    void sweep(/*F*/double[] z, boolean solve) {
        final int d = this.d;
        final /*F*/double[][] U = this.U;
        final /*F*/double[] xp = this.xp, u = this.u;
        final double[] phi = this.phi;
        boolean pending = aux[PENDING] != 0.0;
        double e = aux[E];
        if (solve) {
            System.arraycopy(z, 0, u, 0, d);
        }
        for (int k = 0; k < d; k++) {
            final /*F*/double[] row = U[k];
            double xk = pending ? xp[k] : 0.0;
            if (xk != 0.0) {
                double ukk = row[k];
                double r = Math.sqrt(ukk * ukk + xk * xk);
                row[k] = (/*F*/double) r;
                double invUkk = 1.0 / ukk, invR = 1.0 / r;
                double cs = ukk * invR, sn = xk * invR;
                /*F*/double s = (/*F*/double) (xk * invUkk), c = (/*F*/double) (r * invUkk), invC = (/*F*/double) cs;
                double pk = phi[k];
                phi[k] = cs * pk + sn * e;
                e = cs * e - sn * pk;
                if (solve) {
                    /*F*/double uk = u[k] / row[k];
                    u[k] = uk;
                    for (int j = k + 1; j < d; j++) {
                        /*F*/double ukj = (row[j] + s * xp[j]) * invC;
                        row[j] = ukj;
                        xp[j] = c * xp[j] - s * ukj;
                        u[j] -= uk * ukj;
                    }
                } else {
                    for (int j = k + 1; j < d; j++) {
                        /*F*/double ukj = (row[j] + s * xp[j]) * invC;
                        row[j] = ukj;
                        xp[j] = c * xp[j] - s * ukj;
                    }
                }
            } else if (solve) {
                /*F*/double uk = u[k] / row[k];
                u[k] = uk;
                for (int j = k + 1; j < d; j++) {
                    u[j] -= uk * row[j];
                }
            }
        }
        aux[PENDING] = 0.0;
        aux[E] = 0.0;
    }

    /**
     * The precision guard (exact.ExactSolver._precision_lost), before an update every
     * Num.probePeriod(d) updates (amortised O(d)): true (refuse; nothing has moved) once eps
     * lambda_max / lambda_min of cal_H > KAPPA_EPS_LIMIT, both estimated by power steps on cal_H
     * and on cal_H^{-1}; the factor holds cal_H only to ~eps lambda_max, noise against the
     * smallest eigenvalue once the condition number nears 1 / eps. A pending update is applied
     * first (the sweep is flush-invariant: the bytes do not change).
     */
    boolean precisionLost(long t) {
        if (!Num.probeDue(t, d)) {
            return false;
        }
        double[] l = extremeEigenvalues();
        return !(eps * l[0] <= Num.KAPPA_EPS_LIMIT * l[1]);
    }

    /** (lmax, lmin) of cal_H as the precision guard estimates them; flushes a pending update. */
    double[] extremeEigenvalues() {
        flush();
        final double[] tmp = new double[d];
        return Num.extremeEigenvalues((v, out) -> System.arraycopy(matvec(v, 0), 0, out, 0, d),
                (v, out) -> invApply(v, tmp, out), d);
    }

    @Override
    double step(double[] z, double y, double w, double eta, long t) {
        if (precisionLost(t)) {
            return Double.NaN;
        }
        for (int i = 0; i < d; i++) {
            zbuf[i] = (/*F*/double) z[i];
        }
        sweep(zbuf, true);
        double m = 0.0, q = 0.0;
        for (int i = 0; i < d; i++) {
            double ui = u[i];
            m += phi[i] * ui;
            q += ui * ui;
        }
        double s = Num.sigmoid(m);
        double a = eta * w * s * (1.0 - s);
        double coef = eta * w * (s - y) / (1.0 + a * q);
        if (!(Double.isFinite(coef) && Double.isFinite(q))) {
            return Double.NaN;
        }
        double zz = 0.0;
        for (int i = 0; i < d; i++) {
            zz += z[i] * z[i];
        }
        if (w * Num.dsigmoid(m - coef * q) * zz * eps > 0.1 * lam) {
            return Double.NaN;
        }
        // Overflow guard (exact._step): cal_H >= lam I up to rounding, >= lam / 4 for a loaded
        // state (invalid), so ||U^{-1} v|| <= 2 ||v|| / sqrt(lam) and aux[BOUND] bounds ||theta||.
        // Only when it nears fmax * THETA_LIMIT is the candidate theta = U^{-1}(phi - coef u)
        // computed for real, in xp (free: the sweep consumed the pending update), so a refusal
        // leaves theta's bytes and its flag exactly as they were.
        double bound = aux[BOUND] + Math.abs(coef) * Math.sqrt(4.0 * q / lam);
        double limit = Num.THETA_LIMIT * fmax;
        if (!(bound < limit)) {
            double norm2 = 0.0;
            for (int i = d - 1; i >= 0; i--) {
                double acc = phi[i] - coef * u[i];
                for (int k = i + 1; k < d; k++) {
                    acc -= (double) U[i][k] * xp[k];
                }
                xp[i] = (/*F*/double) (acc / U[i][i]);
                double ti = xp[i];
                if (!Double.isFinite(ti)) {
                    return Double.NaN;
                }
                norm2 += ti * ti;
            }
            bound = Math.sqrt(norm2);
            if (!(bound < limit)) {
                return Double.NaN;
            }
        }
        for (int i = 0; i < d; i++) {
            phi[i] -= coef * u[i];
        }
        aux[BOUND] = bound;
        aux[THETA_OK] = 0.0;
        return a;
    }

    /** Apply the pending rank-one update now (U and phi become current; a valid theta stays:
     * exact.ExactSolver.flush, so fantasize leaves the scoring theta bit-stable). */
    @Override
    void flush() {
        if (aux[PENDING] != 0.0) {
            sweep(xp, false);
        }
    }

    @Override
    double absorb(double[] z, double w, double forget, long t, boolean fresh) {
        for (int i = 0; i < d; i++) {
            zbuf[i] = (/*F*/double) z[i];
        }
        if (!fresh) {
            flush();
            solveUpperT(zbuf, u);
        }
        double mNew = 0.0;
        for (int i = 0; i < d; i++) {
            mNew += phi[i] * u[i];
        }
        double c = w * Num.dsigmoid(mNew);
        double sc = Math.sqrt(c);
        for (int i = 0; i < d; i++) {
            xp[i] = (/*F*/double) (sc * zbuf[i]);
        }
        aux[E] = sc * mNew;
        aux[PENDING] = 1.0;
        return c;
    }

    /**
     * A hypothetical observation's curvature (exact.ExactSolver.fantasize): U made current and z
     * solved first; NaN (nothing changed) when c ||z||^2 eps > lam / 10, the step's precision
     * guard. theta stays bit for bit while the update rotates U and phi, so phi is U theta only up
     * to the rotation's rounding, amplified by up to sqrt(1 + c z^T cal_H^{-1} z): the update is
     * applied now (the bits of a later flush) and phi checked against U theta as the loader checks
     * it; past a quarter of its tolerance phi is set to U theta (theta not moved).
     */
    @Override
    double fantasize(double[] z, double w, long t) {
        for (int i = 0; i < d; i++) {
            zbuf[i] = (/*F*/double) z[i];
        }
        flush();
        solveUpperT(zbuf, u);
        double m = 0.0;  // theta.z = phi.u (exact._fantasy_curvature)
        for (int i = 0; i < d; i++) {
            m += phi[i] * u[i];
        }
        double c = w * Num.dsigmoid(m), zz = 0.0;
        for (int i = 0; i < d; i++) {
            zz += (double) zbuf[i] * zbuf[i];
        }
        if (!(Double.isFinite(c) && c * zz * eps <= 0.1 * lam)) {
            return Double.NaN;
        }
        c = absorb(z, w, 1.0, t, true);  // u = U^{-T} z is current
        if (aux[THETA_OK] == 1.0) {
            flush();
            if (phiDrift(0.25 * phiTolerance())) {
                double[] th = new double[d];
                for (int i = 0; i < d; i++) {
                    th[i] = theta[i];
                }
                phiFromTheta(th, phi);
            }
        }
        return c;
    }

    @Override
    /*F*/double[] thetaRef() {
        if (aux[THETA_OK] != 1.0) {
            // always derived from the FLUSHED U, phi (exact.ExactSolver.theta): the sweep is
            // flush-invariant, so these are the bits Python derives however often either flushed
            flush();
            thetaFromPhi();
            aux[THETA_OK] = 1.0;
        }
        return theta;
    }

    @Override
    double[] theta() {
        /*F*/double[] th = thetaRef();
        double[] out = new double[d];
        for (int i = 0; i < d; i++) {
            out[i] = th[i];
        }
        return out;
    }

    private double[] keptPhi, keptTheta;
    private double keptOk, keptBound;

    /**
     * Remember theta_t before step 2 (phi, theta and their flags) for a rollback; the pending
     * curvature update is applied first, so a rollback gives back exactly the bits a model that
     * never saw this observation has (exact.ExactSolver.keep).
     */
    @Override
    void keep() {
        flush();
        if (keptPhi == null) {
            keptPhi = new double[d];
            keptTheta = new double[d];
        }
        System.arraycopy(phi, 0, keptPhi, 0, d);
        for (int i = 0; i < d; i++) {
            keptTheta[i] = theta[i];
        }
        keptOk = aux[THETA_OK];
        keptBound = aux[BOUND];
    }

    @Override
    void restore() {
        System.arraycopy(keptPhi, 0, phi, 0, d);
        for (int i = 0; i < d; i++) {
            theta[i] = (/*F*/double) keptTheta[i];
        }
        aux[THETA_OK] = keptOk;
        aux[BOUND] = keptBound;
    }

    /**
     * Step 3 in M mode (exact.ExactSolver.project), right after a step: U is current and u =
     * U^{-T} z; theta' = U^{-1} phi in float64; the result is committed by setTheta.
     */
    @Override
    int project(double[] z, double a, double radius, long t) {
        double[] theta0 = new double[d];
        double c0 = theta64(theta0);
        if (!(c0 > radius)) {
            return c0 == c0 ? 0 : -1;
        }
        final double[] tmp = new double[d];
        Projection.Apply op = (v, out) -> invApply(v, a, tmp, out);
        return finishProjection(Projection.lanczosProject(op, theta0, c0, radius, Projection.MODE_M, lam,
                Projection.tol(f32), Projection.KMAX, Projection.STEPS_MAX), radius);
    }

    @Override
    void setTheta(double[] theta64) {
        for (int i = 0; i < d; i++) {
            theta[i] = (/*F*/double) theta64[i];
        }
        phiFromTheta(theta64, phi);
        aux[THETA_OK] = 0.0;
        aux[BOUND] = Num.norm(theta64);
    }

    @Override
    void widths(double[][] V, double[] out, long t) {
        flush();
        for (int n = 0; n < V.length; n++) {
            for (int i = 0; i < d; i++) {
                zbuf[i] = (/*F*/double) V[n][i];
            }
            out[n] = Math.sqrt(solveUpperT(zbuf, u));
        }
    }

    // ------------------------------------------------------------------ choice among k (Mnl)
    /**
     * Steps 1-2 (exact.ExactSolver.choice_step), after the precision guard: V = U^{-T} Z in one
     * pass over U, so theta.z_j = phi.v_j and C = Z cal_H^{-1} Z^T = V V^T; then phi' = phi -
     * eta V^T b with the pair's overflow guard. false: nothing moved.
     */
    @Override
    boolean choiceStep(Mnl.Work cw, double w, double eta, long t) {
        if (precisionLost(t)) {
            return false;
        }
        solveRows(cw.Z, cw.V);
        margins64(cw.V, cw.m);
        Mnl.weights(cw.m, w, cw.q, cw.Lw);
        Mnl.gram(cw.V, cw.V, cw.C);
        if (Double.isNaN(Mnl.stepCoef(cw, w, eta))) {
            return false;
        }
        return choiceMove(cw.V, cw.b, eta, cw.g);
    }

    /**
     * Step 4 (exact.ExactSolver.choice_absorb): the n rows x_i at theta_{t+1} (theta.z_j = phi.v_j:
     * U is unchanged since the solve) added by n Cholesky updates in one pass over U; false
     * (nothing changed) when they would wipe out the factor's precision (the pair's guard: trace
     * eps > lam / 10).
     */
    @Override
    boolean choiceAbsorb(Mnl.Work cw, double w, double forget, long t) {
        margins64(cw.V, cw.m);
        Mnl.weights(cw.m, w, cw.q, cw.Lw);
        Mnl.rows(cw.Lw, cw.Z, 1.0, cw.X, f32);
        if (!(Mnl.sumSq(cw.X) * eps <= 0.1 * lam)) {
            return false;
        }
        int n = cw.n;
        for (int i = 0; i < n; i++) {  // x_i.theta_{t+1}
            double acc = 0.0;
            for (int l = i; l < n; l++) {
                acc += cw.Lw[l * n + i] * cw.m[l];
            }
            cw.e[i] = acc;
        }
        rotateRows(cw.X, cw.e);
        aux[THETA_OK] = 0.0;
        return true;
    }

    /** m_j = phi.v_j (theta.z_j = (U theta).(U^{-T} z_j)). */
    void margins64(double[][] V, double[] m) {
        for (int j = 0; j < V.length; j++) {
            double acc = 0.0;
            final double[] vj = V[j];
            for (int i = 0; i < d; i++) {
                acc += phi[i] * vj[i];
            }
            m[j] = acc;
        }
    }

    /** V_j = U^{-T} z_j for every row: forward substitution, ONE top-down pass over U for all rows
     * (exact._solve_rows), in the dtype's arithmetic. */
    void solveRows(double[][] Z, double[][] V) {
        for (int j = 0; j < Z.length; j++) {
            System.arraycopy(Z[j], 0, V[j], 0, d);
        }
        for (int k = 0; k < d; k++) {
            final /*F*/double[] row = U[k];
            /*F*/double ukk = row[k];
            for (final double[] vj : V) {
                /*F*/double vk = (/*F*/double) vj[k] / ukk;
                vj[k] = vk;
                for (int i = k + 1; i < d; i++) {
                    vj[i] = (/*F*/double) vj[i] - vk * row[i];
                }
            }
        }
    }

    /**
     * phi <- phi - eta V^T b (exact._choice_move) with the pair's overflow guard: theta moves by
     * at most 2 ||eta V^T b|| / sqrt(lam); only when aux[BOUND] plus that nears fmax THETA_LIMIT
     * is the candidate theta built (in cand) and checked. false: nothing changed.
     */
    boolean choiceMove(double[][] V, double[] b, double eta, double[] cand) {
        double nn = 0.0;
        for (int i = 0; i < d; i++) {
            double acc = 0.0;
            for (int j = 0; j < V.length; j++) {
                acc += b[j] * V[j][i];
            }
            nn += acc * acc;
        }
        double step = eta * Math.sqrt(nn);
        if (!Double.isFinite(step)) {
            return false;
        }
        double bound = aux[BOUND] + step * Math.sqrt(4.0 / lam);
        double limit = Num.THETA_LIMIT * fmax;
        if (!(bound < limit)) {
            double norm2 = 0.0;
            for (int i = d - 1; i >= 0; i--) {
                double acc = phi[i];
                for (int j = 0; j < V.length; j++) {
                    acc -= eta * b[j] * V[j][i];
                }
                final /*F*/double[] row = U[i];
                for (int k = i + 1; k < d; k++) {
                    acc -= (double) row[k] * cand[k];
                }
                cand[i] = (/*F*/double) (acc / row[i]);
                double ti = cand[i];
                if (!Double.isFinite(ti)) {
                    return false;
                }
                norm2 += ti * ti;
            }
            bound = Math.sqrt(norm2);
            if (!(bound < limit)) {
                return false;
            }
        }
        for (int i = 0; i < d; i++) {
            double acc = 0.0;
            for (int j = 0; j < V.length; j++) {
                acc += b[j] * V[j][i];
            }
            phi[i] -= eta * acc;
        }
        aux[BOUND] = bound;
        aux[THETA_OK] = 0.0;
        return true;
    }

    /**
     * cal_H <- cal_H + sum_i x_i x_i^T as n Cholesky updates in ONE top-down pass
     * (exact._rotate_rows): at row k the n rotations are formed first (each from the diagonal the
     * previous one left), then applied to the row's tail two at a time. [phi; e_i] is rotated
     * alongside, so phi = U theta holds (e_i = x_i.theta). X and e are destroyed.
     */
    void rotateRows(double[][] X, double[] e) {
        int n = X.length;
        /*F*/double[] rot = new /*F*/double[3 * n];  // (s, c, 1/c) per row, in the dtype
        for (int k = 0; k < d; k++) {
            final /*F*/double[] row = U[k];
            double ukk = row[k];
            for (int i = 0; i < n; i++) {
                double xk = X[i][k];
                if (xk == 0.0) {  // the identity
                    rot[3 * i] = 0;
                    rot[3 * i + 1] = 1;
                    rot[3 * i + 2] = 1;
                    continue;
                }
                double r = Math.sqrt(ukk * ukk + xk * xk);
                double invUkk = 1.0 / ukk, invR = 1.0 / r;
                double cs = ukk * invR, sn = xk * invR;
                rot[3 * i] = (/*F*/double) (xk * invUkk);
                rot[3 * i + 1] = (/*F*/double) (r * invUkk);
                rot[3 * i + 2] = (/*F*/double) cs;
                double pk = phi[k];
                phi[k] = cs * pk + sn * e[i];
                e[i] = cs * e[i] - sn * pk;
                ukk = r;
            }
            row[k] = (/*F*/double) ukk;
            int i = 0;
            for (; i + 1 < n; i += 2) {
                /*F*/double s1 = rot[3 * i], c1 = rot[3 * i + 1], ic1 = rot[3 * i + 2];
                /*F*/double s2 = rot[3 * i + 3], c2 = rot[3 * i + 4], ic2 = rot[3 * i + 5];
                final double[] x1 = X[i], x2 = X[i + 1];
                for (int j = k + 1; j < d; j++) {
                    /*F*/double x1j = (/*F*/double) x1[j], x2j = (/*F*/double) x2[j];
                    /*F*/double u1 = (row[j] + s1 * x1j) * ic1;
                    x1[j] = c1 * x1j - s1 * u1;
                    /*F*/double u2 = (u1 + s2 * x2j) * ic2;
                    x2[j] = c2 * x2j - s2 * u2;
                    row[j] = u2;
                }
            }
            if (i < n) {
                /*F*/double s1 = rot[3 * i], c1 = rot[3 * i + 1], ic1 = rot[3 * i + 2];
                final double[] x1 = X[i];
                for (int j = k + 1; j < d; j++) {
                    /*F*/double x1j = (/*F*/double) x1[j];
                    /*F*/double u1 = (row[j] + s1 * x1j) * ic1;
                    x1[j] = c1 * x1j - s1 * u1;
                    row[j] = u1;
                }
            }
        }
    }

    /** cal_H^{-1} v by two triangular sweeps: step 3 of a choice in M mode, as the pair's. */
    @Override
    Projection.Apply choiceInverse() {
        final double[] tmp = new double[d];
        return (v, out) -> invApply(v, tmp, out);
    }

    /** theta' = U^{-1} phi in float64 (U is current: flushed before the step). */
    @Override
    double[] choiceTheta0() {
        double[] out = new double[d];
        theta64(out);
        return out;
    }
}
