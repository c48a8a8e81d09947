package dev.edgeomd;

import java.nio.ByteBuffer;

/**
 * The sketch solver's state (edge_omd/solvers/sketch.py): cal_H ~ alpha I + B^T B with up to
 * 2 ell rows in B (rounded to the dtype on every store) and the lower Cholesky factor L of
 * K = alpha I + B B^T (float64). This class holds the arrays and what only reads them: the sizes,
 * the start at a pack, cal_H and its Woodbury inverse in float64, the payload's bytes and the
 * loader's checks. The update (steps, the Frequent-Directions shrink, forgetting, choices) is
 * {@link SketchSolver}.
 */
abstract class SketchState extends ExplicitThetaSolver {
    static final int CHUNK = 32;
    final int rank, mMax;
    final double[] L, bz, c, v;
    final double[][] B;  // (2 ell, d) rows as arrays: C2 vectorises row loops
    double alpha;
    long rows;

    SketchState(int d, boolean f32, double lam, int rank) {
        super(d, f32, lam);
        this.rank = rank;
        this.mMax = 2 * rank;
        B = new double[mMax][d];
        L = new double[mMax * mMax];
        bz = new double[mMax];
        c = new double[mMax];
        v = new double[d];
        reset();
    }

    /** The drift guard (eps kappa) at ||z|| = 1 (sketch.SketchSolver; docs/ALGORITHM.md). */
    static final double MIN_LAM_FLOAT32 = 1e-4;

    static long stateBytes(long d, int itemsize, long rank) {
        long m = 2 * rank;
        return (d + m * d + d + rank * Math.min(d, CHUNK)) * itemsize + (2 * m * m + 2 * m + 2) * 8;
    }

    /** Largest ell <= d whose state fits budget bytes (0 if not even ell = 1). */
    static int maxRank(int d, int itemsize, long budget) {
        int lo = 0, hi = d;
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if (stateBytes(d, itemsize, mid) <= budget) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return lo;
    }

    @Override
    int code() {
        return 3;
    }

    @Override
    boolean supportsForget() {
        return true;
    }

    @Override
    void reset() {
        for (double[] a : new double[][]{theta, L, bz, c, v}) {
            java.util.Arrays.fill(a, 0);
        }
        for (double[] row : B) {
            java.util.Arrays.fill(row, 0);
        }
        rows = 0;
        alpha = lam;
    }

    /** The phone's sketch starts only at a pack without directions (alpha = lam + c). */
    @Override
    String startProblem(double[] theta0, double c, double[][] V, double sign) {
        if (sign < 0.0) {
            return "the sketch (alpha I + B B^T) cannot hold a negative low-rank part "
                    + "(cal_H_0 = (lam + c) I - V^T V); use the exact, cg or diagonal solver";
        }
        if (V.length > 0) {
            return "the Java sketch starts only at a pack without directions (K = 0); use the exact solver";
        }
        return null;
    }

    @Override
    void startArrays(double[] theta0, double c, double[][] V, double sign) {
        alpha = lam + c;
        for (int i = 0; i < d; i++) {
            theta[i] = Num.rd(theta0[i], f32);
        }
    }

    @Override
    double[] matvec(double[] vec, long t) {
        int m = (int) rows;
        double[] tmp = new double[Math.max(m, 1)], out = new double[d];
        for (int i = 0; i < m; i++) {
            tmp[i] = Num.dot(B[i], vec);
        }
        for (int j = 0; j < d; j++) {
            out[j] = alpha * vec[j];
        }
        for (int i = 0; i < m; i++) {
            double ti = tmp[i];
            for (int j = 0; j < d; j++) {
                out[j] += B[i][j] * ti;
            }
        }
        return out;
    }

    /** out = cal_H^{-1} vec = (vec - B^T K^{-1} B vec) / alpha in float64 (sketch._woodbury64). */
    void woodbury64(double[] vec, double[] bzw, double[] cw, double[] out) {
        int m = (int) rows;
        for (int i = 0; i < m; i++) {
            bzw[i] = Num.dot(B[i], vec);
        }
        for (int i = 0; i < m; i++) {
            double acc = bzw[i];
            for (int k = 0; k < i; k++) {
                acc -= L[i * mMax + k] * cw[k];
            }
            cw[i] = acc / L[i * mMax + i];
        }
        for (int i = m - 1; i >= 0; i--) {
            double acc = cw[i];
            for (int k = i + 1; k < m; k++) {
                acc -= L[k * mMax + i] * cw[k];
            }
            cw[i] = acc / L[i * mMax + i];
        }
        double invA = 1.0 / alpha;
        for (int j = 0; j < d; j++) {
            out[j] = vec[j] * invA;
        }
        for (int i = 0; i < m; i++) {
            double ci = cw[i] * invA;
            final double[] row = B[i];
            for (int j = 0; j < d; j++) {
                out[j] -= ci * row[j];
            }
        }
    }

    @Override
    void writePayload(ByteBuffer b) {
        writeArray(b, f32, theta);
        for (double[] row : B) {
            writeArray(b, f32, row);
        }
        writeArray(b, false, L);
        b.putDouble(alpha);
        b.putLong(rows);
    }

    @Override
    void readPayload(ByteBuffer b) {
        readArray(b, f32, theta);
        for (double[] row : B) {
            readArray(b, f32, row);
        }
        readArray(b, false, L);
        alpha = b.getDouble();
        rows = b.getLong();
    }

    private boolean rowsFinite() {
        for (double[] row : B) {
            if (!Num.allFinite(row)) {
                return false;
            }
        }
        return true;
    }

    @Override
    boolean finite() {
        return Num.allFinite(theta) && rowsFinite() && Num.allFinite(L) && Double.isFinite(alpha);
    }

    /**
     * Why a loaded payload cannot be a sketch state (sketch.SketchSolver.invalid), or null: theta
     * within its limit, rows in use within the buffer, lam <= alpha <= the headroom, B with
     * headroom, nothing beyond the rows in use, L lower triangular with a diagonal >= sqrt(alpha)
     * and L L^T = alpha I + B B^T to 1e-4 of its scale (whole for m <= 256, else along
     * PROBE_STEPS fixed pseudo-random directions).
     */
    @Override
    String invalid() {
        String problem = Num.thetaProblem(theta, f32);
        if (problem != null) {
            return problem;
        }
        long m = rows;
        if (!(0 <= m && m <= mMax)) {
            return m + " rows in use of " + mMax;
        }
        double fmax = Num.fmax(f32);
        if (!(lam * (1.0 - 1e-9) <= alpha && alpha <= fmax * Num.HEADROOM)) {
            return "alpha " + alpha + " is outside [lam, the dtype's headroom]";
        }
        double topB = 0.0;
        for (double[] row : B) {
            topB = Math.max(topB, Num.maxAbs(row));
        }
        if (!(topB <= Math.sqrt(fmax * Num.HEADROOM))) {
            return "the sketch has entries beyond the dtype's headroom";
        }
        int mi = (int) m;
        for (int i = mi; i < mMax; i++) {
            for (double x : B[i]) {
                if (x != 0) {
                    return "rows beyond those in use are not zero";
                }
            }
        }
        for (int i = 0; i < mMax; i++) {
            for (int k = 0; k < mMax; k++) {
                if ((i >= mi || k >= mi) && L[i * mMax + k] != 0) {
                    return "rows beyond those in use are not zero";
                }
            }
        }
        for (int i = 0; i < mi; i++) {
            for (int k = i + 1; k < mi; k++) {
                if (L[i * mMax + k] != 0) {
                    return "the small Cholesky factor is not lower triangular";
                }
            }
        }
        double sa = Math.sqrt(alpha) * (1.0 - 1e-9);
        for (int i = 0; i < mi; i++) {
            if (!(L[i * mMax + i] >= sa)) {
                return "the small Cholesky factor's diagonal is below sqrt(alpha)";
            }
        }
        if (mi == 0) {
            return null;
        }
        double scale = 0.0, off = 0.0;
        for (int i = 0; i < mi; i++) {
            scale = Math.max(scale, Num.dot(B[i], B[i]));
        }
        scale += alpha;
        if (mi <= 256) {
            for (int i = 0; i < mi; i++) {
                for (int k = 0; k < mi; k++) {
                    double ll = 0.0;
                    for (int j = 0; j <= Math.min(i, k); j++) {
                        ll += L[i * mMax + j] * L[k * mMax + j];
                    }
                    double kk = Num.dot(B[i], B[k]) + (i == k ? alpha : 0.0);
                    off = Math.max(off, Math.abs(ll - kk));
                }
            }
        } else {
            java.util.Random rng = new java.util.Random(12);
            for (int p = 0; p < Num.PROBE_STEPS; p++) {
                double[] x = new double[mi];
                double nn = 0.0;
                for (int i = 0; i < mi; i++) {
                    x[i] = rng.nextGaussian();
                    nn += x[i] * x[i];
                }
                double lx2 = 0.0;
                double[] bx = new double[d];
                for (int j = 0; j < mi; j++) {  // (L^T x)_j = sum_{i >= j} L[i, j] x_i
                    double acc = 0.0;
                    for (int i = j; i < mi; i++) {
                        acc += L[i * mMax + j] * x[i];
                    }
                    lx2 += acc * acc;
                }
                for (int i = 0; i < mi; i++) {
                    for (int j = 0; j < d; j++) {
                        bx[j] += B[i][j] * x[i];
                    }
                }
                off = Math.max(off, Math.abs(lx2 - alpha * nn - Num.dot(bx, bx)) / nn);
            }
        }
        if (!(off <= 1e-4 * scale)) {
            return "the small Cholesky factor does not factor alpha I + B B^T";
        }
        return null;
    }

    /** B^T B + alpha I (d x d), the local norm's action (B's rows may differ by a rotation). */
    @Override
    double[] denseH(long t) {
        int m = (int) rows;
        double[] H = new double[d * d];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < d; j++) {
                double bij = B[i][j];
                if (bij == 0) {
                    continue;
                }
                for (int k = 0; k < d; k++) {
                    H[j * d + k] += bij * B[i][k];
                }
            }
        }
        for (int j = 0; j < d; j++) {
            H[j * d + j] += alpha;
        }
        return H;
    }
}
