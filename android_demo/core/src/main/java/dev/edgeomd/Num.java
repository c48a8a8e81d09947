package dev.edgeomd;

/** Scalar helpers shared by the solvers (edge_omd/linalg.py): the logistic link, float64 dots. */
final class Num {
    private Num() {
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

    static double dot(double[] a, int ao, double[] b, int bo, int n) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) {
            acc += a[ao + i] * b[bo + i];
        }
        return acc;
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

    /** theta <- theta - coef v only if every new entry is finite in the state's dtype; v consumed. */
    static boolean moveChecked(double[] theta, double[] v, double coef, boolean f32) {
        for (int i = 0; i < theta.length; i++) {
            double x = rd(theta[i] - coef * v[i], f32);
            v[i] = x;
            if (!Double.isFinite(x)) {
                return false;
            }
        }
        System.arraycopy(v, 0, theta, 0, theta.length);
        return true;
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
}
