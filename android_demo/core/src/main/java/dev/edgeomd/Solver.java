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
    /**
     * The smallest lam a NEW float32 model of this solver takes (solvers/base.py MIN_LAM_FLOAT32;
     * each solver class hides it with its own): below it the step's guards refuse a unit-norm
     * observation from the first update. A loaded state is not held to it.
     */
    static final double MIN_LAM_FLOAT32 = 1e-9;

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

    /**
     * Reset, then start at theta = theta0, cal_H = damping I + c I + sign V^T V (a population
     * pack, {@link Pack}; Python's Solver.start): null, or why this state cannot hold the start
     * (nothing changed). V: r x d float64 rows; sign +1 or -1.
     */
    final String start(double[] theta0, double c, double[][] V, double sign) {
        String problem = PackStart.problem(this, theta0, c, V, sign, startDamping());
        if (problem == null) {
            problem = startProblem(theta0, c, V, sign);
        }
        if (problem != null) {
            return problem;
        }
        reset();
        startArrays(theta0, c, V, sign);
        return null;
    }

    /** The damping of the first update (the lam I part of cal_H_0). */
    double startDamping() {
        return lam;
    }

    /** This solver's own reasons to refuse a start (after the common checks), or null. */
    String startProblem(double[] theta0, double c, double[][] V, double sign) {
        return null;
    }

    /** Set the arrays of a freshly reset state to the start (Python's _start). */
    abstract void startArrays(double[] theta0, double c, double[][] V, double sign);

    /** Steps 1-2 of Algorithm 1; returns a = eta w sigma'(theta.z) or NaN (nothing moved). */
    abstract double step(double[] z, double y, double w, double eta, long t);

    /** Step 4: add w sigma'(theta.z) z z^T (fresh: right after this z's step). */
    abstract double absorb(double[] z, double w, double forget, long t, boolean fresh);

    /**
     * A hypothetical observation's curvature w sigma'(theta.z) z z^T added to the local norm
     * without moving theta (greedy active selection, on a copy; no forgetting). Returns c, or NaN
     * with nothing changed where the solver's guards refuse it (exact and cg: Python's
     * solver.fantasize); this default (sketch, diagonal) has none, as in Python.
     */
    double fantasize(double[] z, double w, long t) {
        return absorb(z, w, 1.0, t, false);
    }

    /** theta in float64 (a fresh copy of the stored, dtype-rounded values). */
    abstract double[] theta();

    /** Replace theta after a projection (float64 in, rounded to the dtype). */
    abstract void setTheta(double[] theta64);

    /** cal_H v in float64 for the local norm after t updates. */
    abstract double[] matvec(double[] v, long t);

    /** Remember theta_t before step 2, for a rollback if step 3 fails (Python's keep(ws)). */
    abstract void keep();

    /** Undo step 2: theta_t as keep() saw it (Python's restore(ws)). */
    abstract void restore();

    /**
     * Step 3 in place, right after step(z, ...) returned a (Python's solver.project): the
     * tilde_H-norm projection of theta' onto ||theta|| <= radius by {@link Projection}. Returns the
     * Lanczos steps taken (0: theta' was inside the ball), or -1 (theta' left as it is: the caller
     * restores theta_t) when no finite projection within the dtype's theta limit exists. This
     * default runs H mode on matvec + a z z^T with lower bound {@link #projectionLower}; exact and
     * sketch apply tilde_H^{-1} (M mode) as Python does.
     */
    int project(double[] z, double a, double radius, long t) {
        double[] th = theta();
        double c0 = Num.norm(th);
        if (!(c0 > radius)) {
            return c0 == c0 ? 0 : -1;
        }
        final double[] z64 = z.clone();
        Projection.Apply op = (v, out) -> {
            double[] hv = matvec(v, t);
            double zv = Num.dot(z64, v);
            for (int i = 0; i < d; i++) {
                out[i] = hv[i] + a * zv * z64[i];
            }
        };
        return finishProjection(Projection.lanczosProject(op, th, c0, radius, Projection.MODE_H,
                projectionLower(t), Projection.tol(f32), Projection.KMAX, Projection.STEPS_MAX), radius);
    }

    /** A lower bound on cal_H's spectrum after t updates (the H-mode residual test): lam. */
    double projectionLower(long t) {
        return lam;
    }

    /** Commit a projection's result (setTheta) if it is finite and within the theta limit. */
    final int finishProjection(double[] out, double radius) {
        if (out == null || !Projection.finish(out, radius, f32)) {
            return -1;
        }
        setTheta(out);
        return 1;
    }

    // ------------------------------------------------------------------ choice among k (Mnl)
    // The n = k - 1 rank-one terms of one choice live in the call's scratch cw (Mnl.Work); a
    // refused choice is rolled back with keep() / restore(), as Python's choice_keep /
    // choice_restore (the same rollback as a step 3 that fails).

    /**
     * Steps 1-2 of a choice with tilde_H = cal_H + eta X^T X, X the Hessian's rows at theta_t
     * (solver.choice_step): false with theta unmoved when a guard refuses it.
     */
    abstract boolean choiceStep(Mnl.Work cw, double w, double eta, long t);

    /** Step 4 of a choice: the n rows at theta_{t+1} into cal_H (forget applies); false with
     * nothing changed when they are beyond what the dtype holds (solver.choice_absorb). */
    abstract boolean choiceAbsorb(Mnl.Work cw, double w, double forget, long t);

    /** cal_H vec (float64) for a choice's step 3 in H mode (solver.choice_hv). */
    void choiceHv(double[] vec, double[] out, long t) {
        System.arraycopy(matvec(vec, t), 0, out, 0, d);
    }

    /** A lower bound on cal_H's spectrum (solver.choice_lower): the H-mode residual test's. */
    double choiceLower(long t) {
        return projectionLower(t);
    }

    /** out = cal_H^{-1} v (float64) for step 3 in M mode (solver.choice_inv), or null: H mode. */
    Projection.Apply choiceInverse() {
        return null;
    }

    /** The residual test of a choice's step 3 (solver.choice_tol, default projection.TOL). */
    double choiceTol() {
        return Projection.tol(f32);
    }

    /** theta' in float64 after a choice's step 2 (solver.choice_theta0). */
    double[] choiceTheta0() {
        return theta();
    }

    /** ||v||_{cal_H^{-1}} for each row of V (rows rounded to the dtype). */
    abstract void widths(double[][] V, double[] out, long t);

    /** Write the payload arrays (state_format.payload_spec order). */
    abstract void writePayload(ByteBuffer b);

    /** Fill the payload arrays from a checked buffer positioned at the payload. */
    abstract void readPayload(ByteBuffer b);

    /** Why the loaded payload cannot be a state of this solver (null if it can). */
    abstract String invalid();

    /** invalid() of a state loaded after t updates (cg's bound reads lambda_{t+1}). */
    String invalid(long t) {
        return invalid();
    }

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

    /** A float array (the float32 exact solver's): f32 must be true. */
    static void readArray(ByteBuffer b, boolean f32, float[] a) {
        if (!f32) {
            throw new IllegalArgumentException("a float array in a float64 state");
        }
        for (int i = 0; i < a.length; i++) {
            a[i] = b.getFloat();
        }
    }

    static void writeArray(ByteBuffer b, boolean f32, float[] a) {
        if (!f32) {
            throw new IllegalArgumentException("a float array in a float64 state");
        }
        for (float x : a) {
            b.putFloat(x);
        }
    }
}
