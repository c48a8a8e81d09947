package dev.edgeomd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.OptionalLong;

/**
 * One user's linear Bradley-Terry reward r(phi) = theta^T phi, learned by one-pass online mirror
 * descent with a second-order local norm (Algorithm 1), inside a fixed memory budget: the Java
 * twin of edge_omd.RewardModel. It reads and writes the same state bytes, makes the same checks
 * and takes the same steps (float32 states round every stored entry to float, scalars and
 * reductions are float64), so a state moves between a phone and the Python SDK both ways.
 *
 * <pre>
 *   RewardModel m = new RewardModel(new RewardModel.Config(384));   // solver "auto", float32
 *   m.learnPair(phiChosen, phiRejected, 1.0);
 *   double r = m.reward(phi);
 *   m.save(path);                                                   // atomic
 * </pre>
 * Not thread-safe: one model per user, used from one thread at a time.
 */
public final class RewardModel {
    public static final double MAX_ABS_INPUT = 1e6;
    public static final double MAX_WEIGHT = 1e6;
    public static final double MAX_ETA = 1e6, MIN_LAM = 1e-9, MAX_LAM = 1e9;
    /** The most candidates of one choice ({@link #learnChoice}; Python's MAX_K). */
    public static final int MAX_CHOICES = Mnl.MAX_K;

    /**
     * Hyperparameters (edge_omd.RewardModel's keyword arguments, edge_omd.config.ModelConfig's
     * defaults). A setting Python leaves at None is an empty optional here, e.g.
     * {@code c.radius = OptionalDouble.of(0.8)}; a present value is checked as Python checks it.
     */
    public static final class Config {
        public int dim;
        public String solver = "auto";      // auto, exact, cg, sketch, diagonal
        public String dtype = "float32";    // float32, float64
        public OptionalLong budgetBytes = OptionalLong.empty();  // bound on the whole state; empty: unlimited
        public double eta = 1.0;
        public double lam = 1.0;
        public OptionalDouble radius = OptionalDouble.empty();   // B of ||theta|| <= B; empty: no step 3
        public double forget = 1.0;
        public long cgSteps = 3;
        public long lamWarmup = 0;          // T of lambda_t = lam min(1, t / T); 0: constant
        public double cgTol = 1e-6;
        public OptionalInt sketchRank = OptionalInt.empty();     // the sketch's rank; empty: from the budget
        public byte[] headFingerprint = null;  // 32 bytes, or null: not bound to a head

        public Config(int dim) {
            this.dim = dim;
        }
    }

    private final int d;
    private final boolean f32;
    private final int rank;
    private final Solver solver;
    private final double eta, lam, forget, cgTol;
    private final double radius;  // NaN: no step 3 (Config.radius empty)
    private final long budget;    // 0: unlimited (Config.budgetBytes empty), as the header stores it
    private final long cgSteps, lamWarmup;
    private byte[] fingerprint;
    private final double[] z;  // the current observation, rounded to the dtype
    private long t;
    private Pack pack;         // where the model starts and resets (null: theta = 0, lam I)

    public RewardModel(Config c) {
        if (c.dim < 1 || c.dim > StateFormat.MAX_DIM) {
            throw new ConfigException("dim must be in [1, " + StateFormat.MAX_DIM + "], got " + c.dim);
        }
        d = c.dim;
        eta = rangeParam("eta", c.eta, 0.0, MAX_ETA);
        lam = rangeParam("lam", c.lam, MIN_LAM, MAX_LAM);
        if (c.radius == null || c.budgetBytes == null || c.sketchRank == null) {
            throw new ConfigException("radius, budgetBytes and sketchRank are optionals: empty, not null");
        }
        if (c.radius.isPresent()) {
            double r = c.radius.getAsDouble();
            if (!(Double.isFinite(r) && r > 0)) {
                throw new ConfigException("radius must be a finite number > 0, got " + r);
            }
            if (r < ("float32".equals(c.dtype) ? 1e-30 : 1e-150)) {
                throw new ConfigException("radius=" + r + " is too small for " + c.dtype
                        + " (the projected theta would underflow)");
            }
        }
        radius = c.radius.orElse(Double.NaN);
        if (!(Double.isFinite(c.forget) && c.forget > 0.0 && c.forget <= 1.0)) {
            throw new ConfigException("forget must be in (0, 1], got " + c.forget);
        }
        forget = c.forget;
        if (!"float32".equals(c.dtype) && !"float64".equals(c.dtype)) {
            throw new ConfigException("dtype must be one of [float32, float64], got " + c.dtype);
        }
        f32 = "float32".equals(c.dtype);
        if (c.cgSteps < 1 || c.cgSteps > (1 << 20)) {
            throw new ConfigException("cg_steps must be in [1, " + (1 << 20) + "], got " + c.cgSteps);
        }
        cgSteps = c.cgSteps;
        if (c.lamWarmup < 0 || c.lamWarmup > StateFormat.MAX_T) {
            throw new ConfigException("lam_warmup must be in [0, " + StateFormat.MAX_T + "], got "
                    + Long.toUnsignedString(c.lamWarmup));
        }
        lamWarmup = c.lamWarmup;
        if (!(Double.isFinite(c.cgTol) && c.cgTol >= 0.0 && c.cgTol < 1.0)) {
            throw new ConfigException("cg_tol must be in [0, 1), got " + c.cgTol);
        }
        cgTol = c.cgTol;
        long b = c.budgetBytes.orElse(1);
        if (b < 1 || b > StateFormat.MAX_T) {
            throw new ConfigException("budget_bytes must be in [1, " + StateFormat.MAX_T + "], got "
                    + Long.toUnsignedString(b));
        }
        budget = c.budgetBytes.orElse(0);
        int forcedRank = c.sketchRank.orElse(0);
        if (c.sketchRank.isPresent() && (forcedRank < 1 || forcedRank > d)) {
            throw new ConfigException("sketch_rank must be in [1, " + d + "], got " + forcedRank);
        }
        if (c.headFingerprint != null && c.headFingerprint.length != 32) {
            throw new InvalidInputException("a head fingerprint is 32 bytes (SHA-256 digest)");
        }
        fingerprint = c.headFingerprint == null ? null : c.headFingerprint.clone();
        int itemsize = f32 ? 4 : 8;
        String name = c.solver;
        int r = 0;
        long front = frontBytes(d, itemsize);
        switch (name) {
            case "auto": {
                String full = forget == 1.0 ? "exact" : "cg";
                if (fits(full, 0, itemsize)) {
                    name = full;
                    break;
                }
                r = sketchRankForBudget(forcedRank, itemsize);
                if (r >= 2) {
                    name = "sketch";
                } else if (fits("diagonal", 0, itemsize)) {
                    name = "diagonal";
                    r = 0;
                } else {
                    throw new ConfigException("budget_bytes=" + budget + " is below the smallest state for d=" + d
                            + " (diagonal: " + (DiagonalSolver.stateBytes(d, itemsize) + front) + " bytes)");
                }
                break;
            }
            case "sketch":
                r = sketchRankForBudget(forcedRank, itemsize);
                if (r < 1) {
                    throw new ConfigException("budget_bytes=" + budget + " holds no sketch for d=" + d
                            + " (rank 1 needs " + (SketchSolver.stateBytes(d, itemsize, 1) + front) + " bytes)");
                }
                break;
            case "exact":
            case "cg":
            case "diagonal":
                if (!fits(name, 0, itemsize)) {
                    throw new ConfigException("solver '" + name + "' needs " + (solverBytes(name, d, itemsize, 0) + front)
                            + " bytes for d=" + d + ", budget_bytes=" + budget);
                }
                break;
            default:
                throw new ConfigException("solver must be 'auto' or one of [cg, diagonal, exact, sketch], got '"
                        + name + "'");
        }
        rank = "sketch".equals(name) ? r : 0;
        if (forget != 1.0 && "exact".equals(name)) {
            throw new ConfigException("forget < 1 is not available with solver 'exact' (its Cholesky factor "
                    + "cannot absorb a full-rank discount in O(d^2)); use 'cg', 'sketch' or 'diagonal'");
        }
        long need = solverBytes(name, d, itemsize, rank);
        if (need > StateFormat.MAX_ARRAY) {
            throw new ConfigException("a " + name + " state of d=" + d + " does not fit a Java array");
        }
        switch (name) {
            case "exact":
                solver = f32 ? new ExactSolver32(d, lam) : new ExactSolver64(d, lam);
                break;
            case "cg":
                solver = new CgSolver(d, f32, lam, (int) cgSteps, lamWarmup, cgTol, !Double.isNaN(radius));
                break;
            case "sketch":
                solver = new SketchSolver(d, f32, lam, rank);
                break;
            default:
                solver = new DiagonalSolver(d, f32, lam);
        }
        z = new double[d];
        t = 0;
    }

    /** A fresh model of these settings started at a population pack ({@link #startAt}). */
    public RewardModel(Config c, Pack pack) {
        this(c);
        startAt(pack);
    }

    /**
     * Forget everything and start at the population pack: theta = theta_pop, cal_H = cal_H_0
     * (Python's RewardModel(population=pack)); {@link #reset} returns there. The pack's dim and
     * lam must be the model's and, when both are bound, its head the model's (an unbound model
     * takes the pack's); ConfigException (nothing changed) otherwise, or when this solver cannot
     * hold the start (the sketch with a pack's directions).
     */
    public void startAt(Pack p) {
        if (p == null) {
            throw new ConfigException("startAt needs a Pack");
        }
        if (p.dim != d) {
            throw new ConfigException("the population pack has dim " + p.dim + ", the model " + d);
        }
        if (p.lam != lam) {
            throw new ConfigException("the population pack was fitted for lam = " + p.lam + ", the model has lam = "
                    + lam + "; build the model with that lam");
        }
        byte[] pf = p.fingerprint();
        if (pf != null && fingerprint != null && !java.util.Arrays.equals(pf, fingerprint)) {
            throw new ConfigException("the population pack was fitted on another head than this state's; fit one "
                    + "on this head (edge-omd population fit FEEDBACK OUT --head HEAD)");
        }
        double[] theta0 = p.theta0();
        if (!Double.isNaN(radius) && !(Math.sqrt(Num.dot(theta0, theta0)) <= radius)) {
            throw new ConfigException("the population pack's theta0 is beyond radius = " + radius);
        }
        String problem = solver.start(theta0, p.c, p.V(), p.sign);
        if (problem != null) {
            throw new ConfigException("the " + solver.name() + " " + dtype() + " state cannot start at this "
                    + "population pack: " + problem);
        }
        t = 0;
        if (fingerprint == null && pf != null) {
            fingerprint = pf;
        }
        pack = p;
    }

    /** The population pack this model starts and resets at, or null. */
    public Pack pack() {
        return pack;
    }

    private boolean fits(String name, int r, int itemsize) {
        return budget == 0 || solverBytes(name, d, itemsize, r) + frontBytes(d, itemsize)
                + projectionBytes(name, d, r, radius) <= budget;
    }

    /**
     * Bytes Python's RewardModel counts for step 3's fixed workspace when a radius is set
     * (edge_omd/projection.py workspace_bytes with each solver's projection_shape): budgets and
     * nbytes agree with Python, so the same settings pick the same solver and rank.
     */
    static long projectionBytes(String name, long d, long rank, double radius) {
        if (Double.isNaN(radius)) {
            return 0;
        }
        long small = 1, kmax = 24, steps = 512;
        if ("diagonal".equals(name)) {
            kmax = 0;
            steps = 0;
        } else if ("sketch".equals(name)) {
            small = 2 * rank;
            kmax = Math.min(24, 2 * rank + 2);
            steps = 4 * rank + 12;
        }
        kmax = Math.min(kmax, d);
        steps = Math.min(steps, 4 * d + 8);
        small = Math.max(small, 1);
        return 8 * ((kmax + 1) * d + 3 * d + 4 * d + 2 * d + 7 * steps + 8 + 2 * small);
    }

    private int sketchRankForBudget(int forced, int itemsize) {
        if (forced > 0) {
            return fits("sketch", forced, itemsize) ? forced : 0;
        }
        if (budget == 0) {
            return Math.min(d, 64);
        }
        int lo = 0, hi = SketchSolver.maxRank(d, itemsize, budget - frontBytes(d, itemsize));
        while (lo < hi && !Double.isNaN(radius)) {  // the projection's workspace grows with the rank
            int mid = (lo + hi + 1) / 2;
            if (fits("sketch", mid, itemsize)) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return hi;
    }

    static long frontBytes(long d, int itemsize) {
        return d * itemsize + 8;
    }

    static long solverBytes(String name, long d, int itemsize, long rank) {
        switch (name) {
            case "exact":
                return ExactSolver64.stateBytes(d, itemsize);
            case "cg":
                return CgSolver.stateBytes(d, itemsize);
            case "sketch":
                return SketchSolver.stateBytes(d, itemsize, rank);
            default:
                return DiagonalSolver.stateBytes(d, itemsize);
        }
    }

    /** Bytes of the whole state of a model with these settings (as Python's state_bytes / nbytes). */
    public static long stateBytes(int dim, String solver, String dtype, int rank) {
        return solverBytes(solver, dim, "float32".equals(dtype) ? 4 : 8, rank)
                + frontBytes(dim, "float32".equals(dtype) ? 4 : 8);
    }

    // ------------------------------------------------------------------ properties
    public int dim() {
        return d;
    }

    public long t() {
        return t;
    }

    public String solver() {
        return solver.name();
    }

    public String dtype() {
        return f32 ? "float32" : "float64";
    }

    /** Sketch rank ell, 0 for the other solvers. */
    public int rank() {
        return rank;
    }

    public long nbytes() {
        return stateBytes(d, solver.name(), dtype(), rank) + projectionBytes(solver.name(), d, rank, radius);
    }

    /** theta_t as a float64 copy. */
    public double[] theta() {
        return solver.theta();
    }

    public byte[] headFingerprint() {
        return fingerprint == null ? null : fingerprint.clone();
    }

    /** Attach the state to a feature head; a state bound to another head is refused. */
    public void bindHead(byte[] fp) {
        if (fp == null || fp.length != 32) {
            throw new InvalidInputException("a head fingerprint is 32 bytes (SHA-256 digest)");
        }
        if (fingerprint != null && !Arrays.equals(fingerprint, fp)) {
            throw new IllegalStateException("this state was learned on another feature head; features of "
                    + "different heads are not comparable. Use a new RewardModel (or reset()) for the new head");
        }
        fingerprint = fp.clone();
    }

    /** The local norm cal_H as a dense float64 d x d matrix, row-major (tests and debugging). */
    public double[] localNorm() {
        return solver.denseH(t);
    }

    // ------------------------------------------------------------------ learning verbs
    /** One logistic-GLM observation: P(y = 1) = sigma(theta^T z); y in [0, 1]. */
    public void learnOne(double[] zIn, double y, double weight) {
        vector(zIn, "z");
        double yy = label(y);
        double w = weight(weight);
        for (int i = 0; i < d; i++) {
            z[i] = Num.rd(zIn[i], f32);
        }
        update(yy, w);
    }

    /** One preference: phiChosen preferred to phiRejected (z = difference, y = 1). */
    public void learnPair(double[] phiChosen, double[] phiRejected, double weight) {
        vector(phiChosen, "phi_chosen");
        vector(phiRejected, "phi_rejected");
        double w = weight(weight);
        for (int i = 0; i < d; i++) {
            z[i] = Num.rd(phiChosen[i] - phiRejected[i], f32);
        }
        update(1.0, w);
    }

    /** One thumbs up (up = true) or down on a single response: z = phi, y = up. */
    public void learnThumb(double[] phi, boolean up, double weight) {
        vector(phi, "phi");
        double w = weight(weight);
        for (int i = 0; i < d; i++) {
            z[i] = Num.rd(phi[i], f32);
        }
        update(up ? 1.0 : 0.0, w);
    }

    /**
     * The observation of a thumb on the response with features phi while the responses with
     * features shown (1 to 15, the others displayed with it) were on screen, as Python's
     * Personalizer.thumb(..., shown=...): z = phi - mean(shown), to learn with y = up
     * ({@link #learnOne}, a kind-1 journal record). Same float64 operations as numpy's
     * phi[0] - phi[1:].mean(axis=0): the rows summed in order, then divided by their count.
     */
    public static double[] thumbObservation(double[] phi, double[][] shown) {
        if (phi == null || shown == null || shown.length < 1 || shown.length > 15) {
            throw new InvalidInputException("a thumb against what was shown needs phi and 1 to 15 shown rows");
        }
        double[] sum = new double[phi.length];
        for (double[] row : shown) {
            if (row == null || row.length != phi.length) {
                throw new InvalidInputException("every shown row must have length " + phi.length);
            }
            for (int i = 0; i < sum.length; i++) {
                sum[i] += row[i];
            }
        }
        double[] z = new double[phi.length];
        for (int i = 0; i < z.length; i++) {
            z[i] = phi[i] - sum[i] / shown.length;
        }
        return z;
    }

    /**
     * Learn z exactly as given: the replay of a journal record (z already in the state's dtype,
     * as {@link #observation()} held it after the live learn call).
     */
    public void learnObservation(double[] zIn, double y, double weight) {
        exact(zIn, "z");
        double yy = label(y);
        double w = weight(weight);
        System.arraycopy(zIn, 0, z, 0, d);
        update(yy, w);
    }

    /**
     * The user saw the k candidates Phi (k rows of length d) and chose row {@code chosen}: one
     * multinomial-logit (Plackett-Luce first choice) observation, P(chosen) =
     * softmax_j(theta.phi_j)[chosen], learned by the same one-pass step as a pair (Python's
     * RewardModel.learn_choice, docs/ALGORITHM.md "Choice among k"): its Hessian, rank k - 1, at
     * theta_t inside tilde_H and at theta_{t+1} into cal_H. 2 <= k <= 16; duplicate rows are
     * allowed; k = 2 is {@code learnPair(Phi[chosen], Phi[1 - chosen])} up to rounding. Phi is
     * rounded to the state's dtype once ({@link #choiceInput}); O(k d) scratch per call, nothing
     * kept. Bad input: InvalidInputException; a refused update: NumericalException; the state is
     * unchanged in both cases.
     */
    public void learnChoice(double[][] Phi, int chosen, double weight) {
        double[][] P = choiceInput(Phi);
        int c = chosenIndex(chosen, P.length);
        double w = weight(weight);
        choice(P, c, w);
    }

    /**
     * Phi checked (2 to 16 rows of length d, finite, |entries| <= 1e6) and rounded to the state's
     * dtype into a new array: what {@link #learnChoice} learns from and a kind-2 journal record
     * stores ({@link #learnChoiceObservation}).
     */
    public double[][] choiceInput(double[][] Phi) {
        choiceShape(Phi);
        double[][] P = new double[Phi.length][d];
        for (int j = 0; j < Phi.length; j++) {
            vector(Phi[j], "Phi");
            for (int i = 0; i < d; i++) {
                P[j][i] = Num.rd(Phi[j][i], f32);
            }
        }
        return P;
    }

    /**
     * Learn a choice exactly as given (no conversion): the replay of a kind-2 journal record.
     * Phi: 2 to 16 rows of length d, finite, already in the state's dtype ({@link #choiceInput}'s
     * result); the same steps on the same values as the live call.
     */
    public void learnChoiceObservation(double[][] Phi, int chosen, double weight) {
        choiceShape(Phi);
        double[][] P = new double[Phi.length][];
        for (int j = 0; j < Phi.length; j++) {
            exact(Phi[j], "Phi");
            P[j] = Phi[j].clone();
        }
        int c = chosenIndex(chosen, P.length);
        double w = weight(weight);
        choice(P, c, w);
    }

    /** RewardModel._choice: steps 1-4 of Algorithm 1 for a choice (Mnl), rolled back if refused. */
    private void choice(double[][] P, int c, double w) {
        Mnl.Work cw = new Mnl.Work(P.length - 1, d);
        Mnl.differences(P, c, cw.Z, f32);  // z_j = phi_c - phi_j (j != c), in the state's dtype
        solver.keep();
        if (!solver.choiceStep(cw, w, eta, t)) {  // steps 1-2
            solver.restore();
            throw new NumericalException("the choice was refused: it would give a non-finite theta, or the state's "
                    + "dtype can no longer hold the local norm accurately (its condition number nears 1/eps: use "
                    + "dtype='float64', forget < 1, or reset); the state was left unchanged (check the feature "
                    + "scale and eta)");
        }
        if (!Double.isNaN(radius)) {  // step 3, tilde_H = cal_H + eta X^T X at theta_t
            Mnl.rows(cw.Lw, cw.Z, Math.sqrt(eta), cw.X, f32);
            if (Mnl.project(solver, cw.X, radius, t) < 0) {
                solver.restore();
                throw new NumericalException("the projection onto ||theta|| <= radius has no finite result; the "
                        + "state was left unchanged (check radius and the feature scale)");
            }
        }
        if (!solver.choiceAbsorb(cw, w, forget, t)) {  // step 4
            solver.restore();
            throw new NumericalException("the choice's curvature is beyond what the state's dtype can hold next to "
                    + "lam; the state was left unchanged (check the feature scale)");
        }
        t = Math.min(t + 1, StateFormat.MAX_T);
    }

    /** z of the last learn call as the model used it (dtype-rounded): what a journal record stores. */
    public double[] observation() {
        return z.clone();
    }

    /**
     * Add the curvature w sigma'(theta.z) z z^T of a hypothetical observation to the local norm
     * without moving theta or t (greedy, non-redundant active selection on a copy).
     * NumericalException, the state unchanged, where the solver's guards refuse it (a curvature
     * beyond what the dtype holds next to lam: Python's RewardModel.fantasize).
     */
    public void fantasize(double[] zIn, double weight) {
        vector(zIn, "z");
        double w = weight(weight);
        for (int i = 0; i < d; i++) {
            z[i] = Num.rd(zIn[i], f32);
        }
        if (Double.isNaN(solver.fantasize(z, w, t))) {
            throw new NumericalException("the fantasized curvature is beyond what the state's dtype can hold "
                    + "next to lam; the state was left unchanged (check the feature scale)");
        }
    }

    /** Forget everything learned (settings kept): theta = 0, cal_H = lam I, or the pack's start. */
    public void reset() {
        solver.reset();
        t = 0;
        if (pack != null) {
            startAt(pack);
        }
    }

    private void update(double y, double w) {
        boolean project = !Double.isNaN(radius);
        if (project) {
            solver.keep();  // theta_t, to undo step 2 if step 3 fails
        }
        double a = solver.step(z, y, w, eta, t);  // steps 1-2
        if (Double.isNaN(a)) {
            throw new NumericalException("the update would produce a non-finite theta; the state was left "
                    + "unchanged (check the feature scale and eta)");
        }
        if (project && solver.project(z, a, radius, t) < 0) {  // step 3
            solver.restore();
            throw new NumericalException("the projection onto ||theta|| <= radius has no finite result; the "
                    + "state was left unchanged (check radius and the feature scale)");
        }
        solver.absorb(z, w, forget, t, true);
        t = Math.min(t + 1, StateFormat.MAX_T);
    }

    // ------------------------------------------------------------------ scoring
    /** r(phi) = theta^T phi. */
    public double reward(double[] phi) {
        vector(phi, "phi");
        double[] th = solver.theta();
        return Num.dot(phi, th);
    }

    /** r for each row of Phi. */
    public double[] reward(double[][] Phi) {
        double[] th = solver.theta();
        double[] out = new double[Phi.length];
        for (int n = 0; n < Phi.length; n++) {
            vector(Phi[n], "Phi");
            out[n] = Num.dot(Phi[n], th);
        }
        return out;
    }

    /** ||phi - ref||_{cal_H^{-1}} for each row of Phi (ref may be null). */
    public double[] width(double[][] Phi, double[] ref) {
        if (ref != null) {
            vector(ref, "ref");
        }
        double[][] V = new double[Phi.length][];
        for (int n = 0; n < Phi.length; n++) {
            vector(Phi[n], "Phi");
            double[] row = new double[d];
            for (int i = 0; i < d; i++) {
                row[i] = Num.rd(ref == null ? Phi[n][i] : Phi[n][i] - ref[i], f32);
            }
            V[n] = row;
        }
        double[] out = new double[Phi.length];
        solver.widths(V, out, t);
        return out;
    }

    // ------------------------------------------------------------------ persistence
    private StateFormat.Header header() {
        StateFormat.Header h = new StateFormat.Header();
        h.solverCode = solver.code();
        h.itemsize = f32 ? 4 : 8;
        h.dim = d;
        h.rank = rank;
        h.cgSteps = cgSteps;
        h.flags = (Double.isNaN(radius) ? 0 : StateFormat.FLAG_RADIUS)
                | (fingerprint == null ? 0 : StateFormat.FLAG_FINGERPRINT);
        h.t = t;
        h.lamWarmup = lamWarmup;
        h.budget = budget;
        h.eta = eta;
        h.lam = lam;
        h.radius = Double.isNaN(radius) ? 0.0 : radius;
        h.forget = forget;
        h.cgTol = cgTol;
        if (fingerprint != null) {
            h.fingerprint = fingerprint.clone();
        }
        h.payloadLen = StateFormat.specBytes(StateFormat.payloadSpec(h.solverCode, d, h.itemsize, rank));
        return h;
    }

    /** Serialise the state (docs/STATE_FORMAT.md); Python's RewardModel.from_bytes reads it. */
    public byte[] toBytes() {
        StateFormat.Header h = header();
        byte[] out = new byte[(int) h.totalBytes()];
        ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        StateFormat.encodeHeader(h, b);
        b.position(StateFormat.HEADER_BYTES);
        solver.writePayload(b);
        StateFormat.seal(out);
        return out;
    }

    /** Rebuild a model from state bytes; StateFormatException if anything is off (nothing allocated
     * from the header before its sizes and the checksum agree). */
    public static RewardModel fromBytes(byte[] data) throws StateFormatException {
        if (data == null) {
            throw new InvalidInputException("fromBytes needs bytes, got null");
        }
        StateFormat.Header h = StateFormat.checkWhole(data);
        Config c = new Config(h.dim);
        c.solver = h.solver();
        c.dtype = h.itemsize == 4 ? "float32" : "float64";
        c.budgetBytes = h.budget == 0 ? OptionalLong.empty() : OptionalLong.of(h.budget);
        c.eta = h.eta;
        c.lam = h.lam;
        c.radius = h.hasRadius() ? OptionalDouble.of(h.radius) : OptionalDouble.empty();
        c.forget = h.forget;
        c.cgSteps = h.cgSteps;
        c.lamWarmup = h.lamWarmup;
        c.cgTol = h.cgTol;
        c.sketchRank = h.rank == 0 ? OptionalInt.empty() : OptionalInt.of(h.rank);
        c.headFingerprint = h.hasFingerprint() ? h.fingerprint : null;
        if (h.budget < 0) {
            throw new StateFormatException("state holds invalid settings: budget_bytes "
                    + Long.toUnsignedString(h.budget) + " is out of range");
        }
        RewardModel m;
        try {
            m = new RewardModel(c);
        } catch (ConfigException | InvalidInputException e) {
            throw new StateFormatException("state holds invalid settings: " + e.getMessage());
        }
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        b.position(StateFormat.HEADER_BYTES);
        m.solver.readPayload(b);
        if (!m.solver.finite()) {
            throw new StateFormatException("state holds non-finite values");
        }
        String problem = m.solver.invalid(h.t);
        if (problem != null) {
            throw new StateFormatException("inconsistent " + m.solver.name() + " state: " + problem);
        }
        m.solver.loaded();
        m.t = h.t;
        return m;
    }

    /** Write the state to path atomically (temp file + fsync + rename). */
    public void save(Path path) throws IOException {
        StateFormat.writeFileAtomic(path, toBytes());
    }

    /** Read a state written by save (or by Python's RewardModel.save). */
    public static RewardModel load(Path path) throws IOException {
        return fromBytes(StateFormat.readFile(path));
    }

    public RewardModel copy() {
        try {
            return fromBytes(toBytes());
        } catch (StateFormatException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public String toString() {
        return "RewardModel(dim=" + d + ", solver='" + solver() + "'" + (rank > 0 ? ", rank=" + rank : "")
                + ", dtype='" + dtype() + "', t=" + t + ", nbytes=" + nbytes() + ")";
    }

    // ------------------------------------------------------------------ input checks
    private void vector(double[] x, String name) {
        if (x == null || x.length != d) {
            throw new InvalidInputException(name + " must have length " + d + ", got "
                    + (x == null ? "null" : String.valueOf(x.length)));
        }
        double top = 0.0;
        for (double v : x) {
            double a = Math.abs(v);
            if (!(a <= Double.MAX_VALUE)) {
                throw new InvalidInputException(name + " contains NaN or inf");
            }
            top = Math.max(top, a);
        }
        if (top > MAX_ABS_INPUT) {
            throw new InvalidInputException(name + " has entries above 1e+06 in magnitude; features are "
                    + "expected L2-normalised");
        }
    }

    /** 2 to MAX_CHOICES rows (each checked by the caller). */
    private void choiceShape(double[][] Phi) {
        if (Phi == null) {
            throw new InvalidInputException("Phi must have shape (k, " + d + "), got null");
        }
        if (Phi.length < 2 || Phi.length > MAX_CHOICES) {
            throw new InvalidInputException("a choice needs 2 to " + MAX_CHOICES + " candidates, got " + Phi.length);
        }
        for (double[] row : Phi) {
            if (row == null || row.length != d) {
                throw new InvalidInputException("Phi must have shape (k, " + d + "), got a row of length "
                        + (row == null ? "null" : String.valueOf(row.length)));
            }
        }
    }

    /**
     * A replayed vector exactly as a live call can have left it (Python's _checks.exact_array):
     * length d, finite, within 2 MAX_ABS_INPUT (a pair's difference), float32 values for a float32
     * state.
     */
    private void exact(double[] x, String name) {
        if (x == null || x.length != d) {
            throw new InvalidInputException(name + " must have length " + d);
        }
        for (double v : x) {
            if (!Double.isFinite(v)) {
                throw new InvalidInputException(name + " contains NaN or inf");
            }
            if (Math.abs(v) > 2 * MAX_ABS_INPUT) {
                throw new InvalidInputException(name + " has entries above 2e+06 in magnitude; features are "
                        + "expected L2-normalised");
            }
            if (f32 && (double) (float) v != v) {
                throw new InvalidInputException(name + " must hold float32 values for a float32 state");
            }
        }
    }

    private static int chosenIndex(int chosen, int k) {
        if (chosen < 0 || chosen >= k) {
            throw new InvalidInputException("chosen must be in [0, " + (k - 1) + "], got " + chosen);
        }
        return chosen;
    }

    private static double label(double y) {
        if (!Double.isFinite(y)) {
            throw new InvalidInputException("y must be finite, got " + y);
        }
        if (!(y >= 0.0 && y <= 1.0)) {
            throw new InvalidInputException("y must be in [0, 1], got " + y);
        }
        return y;
    }

    private static double weight(double w) {
        if (!Double.isFinite(w)) {
            throw new InvalidInputException("weight must be finite, got " + w);
        }
        if (!(w > 0.0 && w <= MAX_WEIGHT)) {
            throw new InvalidInputException("weight must be in (0, 1e+06], got " + w);
        }
        return w;
    }

    private static double rangeParam(String name, double x, double lo, double hi) {
        boolean okLo = lo == 0.0 ? x > lo : x >= lo;
        if (!Double.isFinite(x) || !okLo || x > hi) {
            throw new ConfigException(name + " must be in " + (lo == 0.0 ? "(" : "[") + lo + ", " + hi + "], got " + x);
        }
        return x;
    }
}
