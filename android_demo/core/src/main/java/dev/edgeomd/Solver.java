package dev.edgeomd;

import java.nio.ByteBuffer;

/**
 * One local-norm representation (edge_omd/solvers/): fixed arrays sized once, the same small
 * interface as the Python solvers. Inputs z are already rounded to the state's dtype.
 */
abstract class Solver {
    final int d;
    final boolean f32;
    final double lam;

    Solver(int d, boolean f32, double lam) {
        this.d = d;
        this.f32 = f32;
        this.lam = lam;
    }

    abstract int code();

    final String name() {
        return StateFormat.SOLVER_NAMES[code()];
    }

    abstract boolean supportsForget();

    abstract void reset();

    /** Steps 1-2 of Algorithm 1; returns a = eta w sigma'(theta.z) or NaN (nothing moved). */
    abstract double step(double[] z, double y, double w, double eta, long t);

    /** Step 4: add w sigma'(theta.z) z z^T (fresh: right after this z's step). */
    abstract double absorb(double[] z, double w, double forget, long t, boolean fresh);

    /** theta in float64 (a fresh copy of the stored, dtype-rounded values). */
    abstract double[] theta();

    /** Replace theta after a projection (float64 in, rounded to the dtype). */
    abstract void setTheta(double[] theta64);

    /** cal_H v in float64 for the local norm after t updates. */
    abstract double[] matvec(double[] v, long t);

    /** ||v||_{cal_H^{-1}} for each row of V (rows rounded to the dtype). */
    abstract void widths(double[][] V, double[] out, long t);

    /** Write the payload arrays (state_format.payload_spec order). */
    abstract void writePayload(ByteBuffer b);

    /** Fill the payload arrays from a checked buffer positioned at the payload. */
    abstract void readPayload(ByteBuffer b);

    /** Why the loaded payload cannot be a state of this solver (null if it can). */
    abstract String invalid();

    /** Every float entry finite (checked before invalid()). */
    abstract boolean finite();

    /** After readPayload + invalid() == null. */
    void loaded() {
    }

    /** The local norm as a dense float64 d x d matrix cal_H (tests; O(d^2) memory). */
    abstract double[] denseH(long t);

    static double get(ByteBuffer b, boolean f32) {
        return f32 ? b.getFloat() : b.getDouble();
    }

    static void put(ByteBuffer b, boolean f32, double x) {
        if (f32) {
            b.putFloat((float) x);
        } else {
            b.putDouble(x);
        }
    }

    static void readArray(ByteBuffer b, boolean f32, double[] a) {
        for (int i = 0; i < a.length; i++) {
            a[i] = get(b, f32);
        }
    }

    static void writeArray(ByteBuffer b, boolean f32, double[] a) {
        for (double x : a) {
            put(b, f32, x);
        }
    }
}
