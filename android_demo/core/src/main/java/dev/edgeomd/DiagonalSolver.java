package dev.edgeomd;

import java.nio.ByteBuffer;

/** Diagonal local norm cal_H ~ diag(h) (edge_omd/solvers/diagonal.py); arrays rounded to the dtype. */
final class DiagonalSolver extends ExplicitThetaSolver {
    final double[] h, v;

    DiagonalSolver(int d, boolean f32, double lam) {
        super(d, f32, lam);
        h = new double[d];
        v = new double[d];
        reset();
    }

    static long stateBytes(long d, int itemsize) {
        return 3 * d * itemsize;
    }

    @Override
    int code() {
        return 4;
    }

    @Override
    boolean supportsForget() {
        return true;
    }

    @Override
    void reset() {
        java.util.Arrays.fill(theta, 0);
        java.util.Arrays.fill(v, 0);
        java.util.Arrays.fill(h, Num.rd(lam, f32));
    }

    /** h = lam + c + sign colsumsq(V) (the diagonal of cal_H_0; floored at lam for sign -1). */
    @Override
    void startArrays(double[] theta0, double c, double[][] V, double sign) {
        double[] s = new double[d];
        PackStart.colSumSq(V, s);
        for (int i = 0; i < d; i++) {
            double hi = (lam + c) + sign * s[i];
            h[i] = Num.rd(sign < 0.0 ? Math.max(hi, lam) : hi, f32);
            theta[i] = Num.rd(theta0[i], f32);
        }
    }

    @Override
    double step(double[] z, double y, double w, double eta, long t) {
        double m = Num.dot(theta, z);
        double q = 0.0;
        for (int i = 0; i < d; i++) {
            double vi = z[i] / h[i];
            v[i] = Num.rd(vi, f32);
            q += vi * z[i];
        }
        return Num.omdMove(theta, v, m, q, y, w, eta, f32);
    }

    @Override
    double absorb(double[] z, double w, double forget, long t, boolean fresh) {
        double c = w * Num.dsigmoid(Num.dot(theta, z));
        double floor = (1.0 - forget) * lam;
        for (int i = 0; i < d; i++) {
            double zi = z[i];
            h[i] = Num.rd(forget * h[i] + floor + c * zi * zi, f32);
        }
        return c;
    }

    // ------------------------------------------------------------------ choice among k (Mnl)
    /** Steps 1-2, exact for tilde_H = diag(h) + eta X^T X (Woodbury): v_j = z_j / h. */
    @Override
    boolean choiceStep(Mnl.Work cw, double w, double eta, long t) {
        for (int j = 0; j < cw.n; j++) {
            for (int i = 0; i < d; i++) {
                cw.V[j][i] = Num.rd(cw.Z[j][i] / h[i], f32);
            }
        }
        if (!Mnl.coefficients(cw, theta, w, eta)) {
            return false;
        }
        return Mnl.move(theta, cw.V, cw.b, eta, cw.g, f32);
    }

    /** Step 4: h <- forget h + (1 - forget) lam + sum_i x_i^2 (the Hessian's diagonal). */
    @Override
    boolean choiceAbsorb(Mnl.Work cw, double w, double forget, long t) {
        Mnl.hessianRows(cw, theta, w, f32);
        double floor = (1.0 - forget) * lam;
        for (int i = 0; i < d; i++) {
            double acc = forget * h[i] + floor;
            for (int l = 0; l < cw.n; l++) {
                double xi = cw.X[l][i];
                acc += xi * xi;
            }
            h[i] = Num.rd(acc, f32);
        }
        return true;
    }

    /** cal_H^{-1} v = v / h: step 3 of a choice in M mode. */
    @Override
    Projection.Apply choiceInverse() {
        return (v, out) -> {
            for (int i = 0; i < d; i++) {
                out[i] = v[i] / h[i];
            }
        };
    }

    /** A choice's step 3 is Lanczos run to the precision of the pair's secular solve. */
    @Override
    double choiceTol() {
        return 1e-13;
    }

    @Override
    double[] matvec(double[] vec, long t) {
        double[] out = new double[d];
        for (int i = 0; i < d; i++) {
            out[i] = h[i] * vec[i];
        }
        return out;
    }

    @Override
    void widths(double[][] V, double[] out, long t) {
        for (int n = 0; n < V.length; n++) {
            double acc = 0.0;
            for (int i = 0; i < d; i++) {
                double vi = V[n][i];
                acc += vi * vi / h[i];
            }
            out[n] = Math.sqrt(acc);
        }
    }

    @Override
    void writePayload(ByteBuffer b) {
        writeArray(b, f32, theta);
        writeArray(b, f32, h);
    }

    @Override
    void readPayload(ByteBuffer b) {
        readArray(b, f32, theta);
        readArray(b, f32, h);
    }

    @Override
    boolean finite() {
        return Num.allFinite(theta) && Num.allFinite(h);
    }

    @Override
    String invalid() {
        // as edge_omd/solvers/diagonal.py `invalid`: theta within its limit, h >= lam (up to
        // its rounding to the dtype; every update keeps h_i >= lam) with headroom
        String problem = Num.thetaProblem(theta, f32);
        if (problem != null) {
            return problem;
        }
        double eps = f32 ? 0x1p-23 : 0x1p-52;
        double floor = (f32 ? (double) (float) lam : lam) * (1.0 - 4.0 * eps);
        for (double x : h) {
            if (!(x >= floor)) {
                return "the diagonal local norm is below lam";
            }
        }
        if (!(Num.maxAbs(h) <= Num.fmax(f32) * Num.HEADROOM)) {
            return "the diagonal local norm has entries beyond the dtype's headroom";
        }
        return null;
    }

    @Override
    double[] denseH(long t) {
        double[] H = new double[d * d];
        for (int i = 0; i < d; i++) {
            H[i * d + i] = h[i];
        }
        return H;
    }
}
