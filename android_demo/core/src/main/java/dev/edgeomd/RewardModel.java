package dev.edgeomd;

import static dev.edgeomd.InputChecks.choiceShape;
import static dev.edgeomd.InputChecks.chosenIndex;
import static dev.edgeomd.InputChecks.exact;
import static dev.edgeomd.InputChecks.label;
import static dev.edgeomd.InputChecks.rangeParam;
import static dev.edgeomd.InputChecks.vector;
import static dev.edgeomd.InputChecks.weight;

import java.io.IOException;
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

    // package-private: ModelBytes writes and reads them
    final int d;
    final boolean f32;
    final int rank;
    final Solver solver;
    final double eta, lam, forget, cgTol;
    final double radius;  // NaN: no step 3 (Config.radius empty)
    final long budget;    // 0: unlimited (Config.budgetBytes empty), as the header stores it
    final long cgSteps, lamWarmup;
    byte[] fingerprint;
    private final double[] z;  // the current observation, rounded to the dtype
    long t;
    private Pack pack;         // where the model starts and resets (null: theta = 0, lam I)

    public RewardModel(Config c) {
        this(c, true);
    }

    /**
     * fresh: a new model, whose float32 lam must be at least its solver's MIN_LAM_FLOAT32
     * (Python's _new_config); false: settings read from a state's header (ModelBytes), held to
     * the range checks only, as Python's loader is.
     */
    RewardModel(Config c, boolean fresh) {
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
        ModelSize.Pick pick = new ModelSize(d, itemsize, budget, radius).pick(c.solver, forcedRank, forget);
        String name = pick.solver;
        rank = pick.rank;
        if (forget != 1.0 && "exact".equals(name)) {
            throw new ConfigException("forget < 1 is not available with solver 'exact' (its Cholesky factor "
                    + "cannot absorb a full-rank discount in O(d^2)); use 'cg', 'sketch' or 'diagonal'");
        }
        long need = ModelSize.solverBytes(name, d, itemsize, rank);
        if (need > StateFormat.MAX_ARRAY) {
            throw new ConfigException("a " + name + " state of d=" + d + " does not fit a Java array");
        }
        double low = minLamFloat32(name);
        if (fresh && f32 && lam < low) {
            throw new ConfigException("lam=" + InputChecks.pyG(lam) + " is too small for a float32 " + name
                    + " state (its first update would be refused): use lam >= " + InputChecks.pyG(low)
                    + ", or dtype='float64'");
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

    private static double minLamFloat32(String solver) {
        switch (solver) {
            case "exact":
                return ExactState64.MIN_LAM_FLOAT32;
            case "cg":
                return CgSolver.MIN_LAM_FLOAT32;
            case "sketch":
                return SketchState.MIN_LAM_FLOAT32;
            default:
                return Solver.MIN_LAM_FLOAT32;
        }
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

    /** Bytes of the whole state of a model with these settings (as Python's state_bytes / nbytes). */
    public static long stateBytes(int dim, String solver, String dtype, int rank) {
        return ModelSize.solverBytes(solver, dim, "float32".equals(dtype) ? 4 : 8, rank)
                + ModelSize.frontBytes(dim, "float32".equals(dtype) ? 4 : 8);
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
        return stateBytes(d, solver.name(), dtype(), rank) + ModelSize.projectionBytes(solver.name(), d, rank, radius);
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
        vector(zIn, "z", d);
        double yy = label(y);
        double w = weight(weight);
        for (int i = 0; i < d; i++) {
            z[i] = Num.rd(zIn[i], f32);
        }
        update(yy, w);
    }

    /** One preference: phiChosen preferred to phiRejected (z = difference, y = 1). */
    public void learnPair(double[] phiChosen, double[] phiRejected, double weight) {
        vector(phiChosen, "phi_chosen", d);
        vector(phiRejected, "phi_rejected", d);
        double w = weight(weight);
        for (int i = 0; i < d; i++) {
            z[i] = Num.rd(phiChosen[i] - phiRejected[i], f32);
        }
        update(1.0, w);
    }

    /** One thumbs up (up = true) or down on a single response: z = phi, y = up. */
    public void learnThumb(double[] phi, boolean up, double weight) {
        vector(phi, "phi", d);
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
        exact(zIn, "z", d, f32);
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
        choiceShape(Phi, d);
        double[][] P = new double[Phi.length][d];
        for (int j = 0; j < Phi.length; j++) {
            vector(Phi[j], "Phi", d);
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
        choiceShape(Phi, d);
        double[][] P = new double[Phi.length][];
        for (int j = 0; j < Phi.length; j++) {
            exact(Phi[j], "Phi", d, f32);
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
        vector(zIn, "z", d);
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
        vector(phi, "phi", d);
        double[] th = solver.theta();
        return Num.dot(phi, th);
    }

    /** r for each row of Phi. */
    public double[] reward(double[][] Phi) {
        double[] th = solver.theta();
        double[] out = new double[Phi.length];
        for (int n = 0; n < Phi.length; n++) {
            vector(Phi[n], "Phi", d);
            out[n] = Num.dot(Phi[n], th);
        }
        return out;
    }

    /** ||phi - ref||_{cal_H^{-1}} for each row of Phi (ref may be null). */
    public double[] width(double[][] Phi, double[] ref) {
        if (ref != null) {
            vector(ref, "ref", d);
        }
        double[][] V = new double[Phi.length][];
        for (int n = 0; n < Phi.length; n++) {
            vector(Phi[n], "Phi", d);
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
    /** Serialise the state (docs/STATE_FORMAT.md); Python's RewardModel.from_bytes reads it. */
    public byte[] toBytes() {
        return ModelBytes.encode(this);
    }

    /** Rebuild a model from state bytes; StateFormatException if anything is off (nothing allocated
     * from the header before its sizes and the checksum agree). */
    public static RewardModel fromBytes(byte[] data) throws StateFormatException {
        return ModelBytes.decode(data);
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
}
