package dev.edgeomd;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static dev.edgeomd.TestRunner.close;
import static dev.edgeomd.TestRunner.require;

/**
 * The solvers' numerical guards against Python's verdicts (tests/android/test_java_guards.py
 * writes the cases): java dev.edgeomd.GuardTests CASES_DIR [-v]. One check per case:
 * <ul>
 * <li>stream: from Python's initial state, every update Python refused (NumericalError) is
 * refused here (NumericalException) with toBytes unchanged, every other one is taken, and every
 * state left after each step loads (fromBytes); the final
 * theta and widths match Python's (1e-4 relative in float32, 1e-9 in float64, or the case's
 * tol32 / tol64 where the case says why);</li>
 * <li>load: a crafted state is refused (StateFormatException) exactly when Python's loader
 * refused it;</li>
 * <li>cg_probe: CgSolver.step after t = 64 updates refuses from the given curvature S exactly when
 * Python's did (the Lanczos PSD probe);</li>
 * <li>projection: from each of Python's states with a radius, keep / step / Solver.project /
 * absorb give Python's next theta; lanczos_unit: the Lanczos driver against a dense solution;</li>
 * <li>greedy: Strategies.greedyQueries from Python's state picks Python's rows (a row whose
 * fantasize is refused on the copy included);</li>
 * <li>head_features: HeadManifest.features (the app's features) equal Python's head rule with
 * and without a style block; guard_start: the precision probes' start vector is Python's.</li>
 * <li>new_model: a new model of the case's settings is built, or refused (ConfigException) with
 * Python's ConfigError message (a float32 lam below the solver's MIN_LAM_FLOAT32).</li>
 * </ul>
 */
public final class GuardTests {
    private GuardTests() {
    }

    public static void main(String[] args) throws Exception {
        Path dir = Paths.get(args[0]);
        boolean verbose = args.length > 1 && args[1].equals("-v");
        List<Object> cases = Json.arr(Json.parse(new String(Files.readAllBytes(dir.resolve("cases.json")),
                StandardCharsets.UTF_8)));
        TestRunner t = new TestRunner(verbose);
        for (Object o : cases) {
            Map<String, Object> c = Json.obj(o);
            String name = (String) c.get("name");
            switch ((String) c.get("kind")) {
                case "stream":
                    t.check(name, () -> stream(dir, name, c));
                    break;
                case "load":
                    t.check(name, () -> load(dir, name, (String) c.get("verdict")));
                    break;
                case "cg_probe":
                    t.check(name, () -> cgProbe(c));
                    break;
                case "projection":
                    t.check(name, () -> projection(dir, name, c));
                    break;
                case "head_features":
                    t.check(name, () -> headFeatures(dir, c));
                    break;
                case "guard_start":
                    t.check(name, () -> close(Num.guardStart((int) Json.integer(c.get("d"))),
                            Json.doubles(c.get("x")), 1e-15, "guard start"));
                    break;
                case "greedy":
                    t.check(name, () -> greedy(dir, name, c));
                    break;
                case "thumb_shown":
                    t.check(name, () -> thumbShown(dir, name, c));
                    break;
                case "new_model":
                    t.check(name, () -> newModel(c));
                    break;
                case "lanczos_unit":
                    t.check(name, () -> lanczosUnit((int) Json.integer(c.get("d")), Json.integer(c.get("seed"))));
                    break;
                default:
                    throw new IllegalArgumentException("case kind " + c.get("kind"));
            }
        }
        System.exit(t.finish());
    }

    /** A new model of the case's settings is built, or refused with Python's message. */
    static void newModel(Map<String, Object> c) {
        RewardModel.Config cfg = ModelGoldenTests.config(c, (int) Json.integer(c.get("dim")));
        String got;
        try {
            new RewardModel(cfg);
            got = "ok";
        } catch (ConfigException e) {
            got = e.getMessage();
        }
        require(got.equals(c.get("verdict")), "Java: " + got + "; Python: " + c.get("verdict"));
    }

    static void stream(Path dir, String name, Map<String, Object> c) throws Exception {
        RewardModel m = RewardModel.fromBytes(Files.readAllBytes(dir.resolve(name + ".init.eomd")));
        List<Object> steps = Json.arr(c.get("steps"));
        List<Object> verdicts = Json.arr(c.get("verdicts"));
        for (int k = 0; k < steps.size(); k++) {
            byte[] before = m.toBytes();
            String got;
            try {
                ModelGoldenTests.apply(m, Json.obj(steps.get(k)));
                got = "ok";
            } catch (NumericalException e) {
                got = "numerical";
                require(Arrays.equals(m.toBytes(), before), "step " + k + ": a refused update changed the state");
            }
            require(got.equals(verdicts.get(k)), "step " + k + ": Java " + got + ", Python " + verdicts.get(k));
            try {  // every state an update or a refusal leaves loads
                RewardModel.fromBytes(m.toBytes());
            } catch (StateFormatException e) {
                throw new AssertionError("step " + k + ": the state no longer loads: " + e.getMessage());
            }
        }
        RewardModel py = RewardModel.fromBytes(Files.readAllBytes(dir.resolve(name + ".final.eomd")));
        double tol = "float32".equals(m.dtype()) ? (c.containsKey("tol32") ? Json.num(c.get("tol32")) : 1e-4)
                : (c.containsKey("tol64") ? Json.num(c.get("tol64")) : 1e-9);
        require(m.t() == py.t(), "t " + m.t() + " vs " + py.t());
        close(m.theta(), py.theta(), tol, "theta");
        double[][] probes = ModelGoldenTests.matrix(c.get("probes"));
        close(m.width(probes, null), Json.doubles(c.get("widths")), tol, "widths");
    }

    /** Strategies.greedyQueries from Python's state: the same rows in the same order, widths to
     * 1e-5 relative (fantasize refusals on the copy included), the model unchanged. */
    static void greedy(Path dir, String name, Map<String, Object> c) throws Exception {
        RewardModel m = RewardModel.fromBytes(Files.readAllBytes(dir.resolve(name + ".init.eomd")));
        byte[] before = m.toBytes();
        List<double[]> got = Strategies.greedyQueries(m, ModelGoldenTests.matrix(c.get("Z")),
                (int) Json.integer(c.get("k")));
        List<Object> want = Json.arr(c.get("picks"));
        require(Arrays.equals(before, m.toBytes()), "greedy queries changed the model");
        require(got.size() == want.size(), "picks " + got.size() + " vs " + want.size());
        for (int i = 0; i < got.size(); i++) {
            List<Object> w = Json.arr(want.get(i));
            require(got.get(i)[0] == Json.integer(w.get(0)), "pick " + i + ": row " + got.get(i)[0]);
            close(new double[]{got.get(i)[1]}, new double[]{Json.num(w.get(1))}, 1e-5, "width of pick " + i);
        }
    }

    static void load(Path dir, String name, String verdict) throws Exception {
        byte[] data = Files.readAllBytes(dir.resolve(name + ".load.eomd"));
        String got;
        try {
            RewardModel.fromBytes(data);
            got = "accepted";
        } catch (StateFormatException e) {
            got = e.getMessage();
        }
        require(got.equals("accepted") == verdict.equals("accepted"), "Java: " + got + "; Python: " + verdict);
    }

    /**
     * From each Python state, one update as Python's RewardModel._update runs it, on the model's
     * solver: keep, step (steps 1-2), Solver.project (step 3, Lanczos in the solver's mode),
     * absorb (step 4); theta must equal Python's next state's (1e-5 relative in float32, 1e-7 in
     * float64: both projections stop at a residual test).
     */
    static void projection(Path dir, String name, Map<String, Object> c) throws Exception {
        List<Object> steps = Json.arr(c.get("steps"));
        double radius = Json.num(c.get("radius")), eta = Json.num(c.get("eta")), forget = Json.num(c.get("forget"));
        java.lang.reflect.Field sf = RewardModel.class.getDeclaredField("solver");
        sf.setAccessible(true);
        int projected = 0;
        for (int k = 1; k <= steps.size(); k++) {
            RewardModel m = RewardModel.fromBytes(Files.readAllBytes(dir.resolve(name + ".s" + (k - 1) + ".eomd")));
            RewardModel py = RewardModel.fromBytes(Files.readAllBytes(dir.resolve(name + ".s" + k + ".eomd")));
            Solver s = (Solver) sf.get(m);
            boolean f32 = "float32".equals(m.dtype());
            Map<String, Object> st = Json.obj(steps.get(k - 1));
            double[] a = Json.doubles(st.get("a")), b = Json.doubles(st.get("b"));
            double[] z = new double[a.length];
            for (int i = 0; i < z.length; i++) {
                z[i] = Num.rd(a[i] - b[i], f32);
            }
            double w = Json.num(st.get("w"));
            s.keep();
            double am = s.step(z, 1.0, w, eta, m.t());
            require(!Double.isNaN(am), "step " + k + " refused");
            int steps3 = s.project(z, am, radius, m.t());
            require(steps3 >= 0, "step " + k + ": projection refused");
            projected += steps3;
            s.absorb(z, w, forget, m.t(), true);
            close(s.theta(), py.theta(), f32 ? 1e-5 : 1e-7, "step " + k + " theta");
            require(Num.norm(s.theta()) <= radius * (1 + 1e-6), "outside the ball");
        }
        require(projected > 0, "no step left the ball");
    }

    /**
     * Projection.lanczosProject against the dense solution (eigendecomposition, mu by bisection)
     * on an ill-conditioned SPD operator, both modes, with the full basis and with kmax = 3 (the
     * rolling vectors and the second pass).
     */
    static void lanczosUnit(int d, long seed) {
        java.util.Random rng = new java.util.Random(seed);
        double[] A = new double[d * d];
        double[][] G = new double[d][d];
        for (int i = 0; i < d; i++) {
            for (int j = 0; j < d; j++) {
                G[i][j] = rng.nextGaussian();
            }
        }
        double[] ev = new double[d];
        for (int i = 0; i < d; i++) {
            ev[i] = Math.pow(10.0, 3.0 * i / (d - 1));  // 1 .. 1e3
        }
        SymEigen basis = new SymEigen(gram(G, d), d);  // an orthonormal basis V
        double[][] V = basis.vectors;
        for (int i = 0; i < d; i++) {
            for (int j = 0; j < d; j++) {
                double acc = 0.0;
                for (int k = 0; k < d; k++) {
                    acc += V[i][k] * ev[k] * V[j][k];
                }
                A[i * d + j] = acc;
            }
        }
        double[] theta0 = new double[d];
        for (int i = 0; i < d; i++) {
            theta0[i] = rng.nextGaussian();
        }
        double c0 = Num.norm(theta0), radius = 0.3 * c0;
        double[] coef = new double[d];  // V^T theta0
        for (int k = 0; k < d; k++) {
            for (int i = 0; i < d; i++) {
                coef[k] += V[i][k] * theta0[i];
            }
        }
        double lo = 0.0, hi = 1e12;
        for (int it = 0; it < 400; it++) {  // ||theta(mu)|| = radius, theta(mu) = V diag(l / (l + mu)) V^T theta0
            double mu = 0.5 * (lo + hi), nn = 0.0;
            for (int k = 0; k < d; k++) {
                double x = ev[k] / (ev[k] + mu) * coef[k];
                nn += x * x;
            }
            if (Math.sqrt(nn) > radius) {
                lo = mu;
            } else {
                hi = mu;
            }
        }
        double mu = 0.5 * (lo + hi);
        double[] exact = new double[d];
        for (int i = 0; i < d; i++) {
            for (int k = 0; k < d; k++) {
                exact[i] += V[i][k] * ev[k] / (ev[k] + mu) * coef[k];
            }
        }
        Projection.Apply hOp = (v, out) -> {
            for (int i = 0; i < d; i++) {
                out[i] = Num.dot(A, i * d, v, 0, d);
            }
        };
        Projection.Apply mOp = (v, out) -> {  // A^{-1} v = V diag(1 / l) V^T v
            double[] c = new double[d];
            for (int k = 0; k < d; k++) {
                for (int i = 0; i < d; i++) {
                    c[k] += V[i][k] * v[i];
                }
                c[k] /= ev[k];
            }
            for (int i = 0; i < d; i++) {
                double acc = 0.0;
                for (int k = 0; k < d; k++) {
                    acc += V[i][k] * c[k];
                }
                out[i] = acc;
            }
        };
        for (int kmax : new int[]{Projection.KMAX, 3}) {
            double[] h = Projection.lanczosProject(hOp, theta0, c0, radius, Projection.MODE_H, 1.0, 1e-10, kmax,
                    Projection.STEPS_MAX);
            double[] m = Projection.lanczosProject(mOp, theta0, c0, radius, Projection.MODE_M, 1.0, 1e-10, kmax,
                    Projection.STEPS_MAX);
            require(h != null && m != null, "no projection");
            close(h, exact, 1e-7, "H mode, kmax " + kmax);
            close(m, exact, 1e-7, "M mode, kmax " + kmax);
        }
    }

    static double[] gram(double[][] G, int d) {
        double[] out = new double[d * d];
        for (int i = 0; i < d; i++) {
            for (int j = 0; j < d; j++) {
                double acc = 0.0;
                for (int k = 0; k < d; k++) {
                    acc += G[i][k] * G[j][k];
                }
                out[i * d + j] = acc;
            }
        }
        return out;
    }

    /**
     * HeadManifest.features (what the app's OnnxFeatureHead returns) against Python's
     * FeatureHead.features rule: the graph's rows, then the style block of each response when
     * the manifest has one; a model of featureDim() learns from them.
     */
    static void headFeatures(Path dir, Map<String, Object> c) throws Exception {
        HeadManifest h = HeadManifest.load(dir.resolve((String) c.get("folder")));
        double[][] graph = ModelGoldenTests.matrix(c.get("graph")), want = ModelGoldenTests.matrix(c.get("features"));
        List<String> responses = new java.util.ArrayList<>();
        for (Object r : Json.arr(c.get("responses"))) {
            responses.add((String) r);
        }
        double[][] got = h.features(graph, responses);
        require(got.length == want.length, "rows");
        require(h.featureDim() == want[0].length, "featureDim " + h.featureDim() + " vs " + want[0].length);
        for (int i = 0; i < got.length; i++) {
            require(got[i].length == want[i].length, "row " + i + " length");
            for (int j = 0; j < got[i].length; j++) {
                require(Math.abs(got[i][j] - want[i][j]) <= 1e-6 * Math.max(1.0, Math.abs(want[i][j])),
                        "row " + i + " feature " + j + ": " + got[i][j] + " vs " + want[i][j]);
            }
        }
        RewardModel m = new RewardModel(new RewardModel.Config(h.featureDim()));
        m.learnPair(got[1], got[0], 1.0);
        TestRunner.raises(InvalidInputException.class, () -> h.features(graph, responses.subList(0, 2)),
                "rows and responses differ");
    }

    /**
     * A thumb against what was shown: the observation Python's Personalizer rule learns, bit
     * for bit, and the model after it (to the twins' usual tolerance).
     */
    static void thumbShown(Path dir, String name, Map<String, Object> c) throws Exception {
        RewardModel m = RewardModel.fromBytes(Files.readAllBytes(dir.resolve(name + ".init.eomd")));
        double[][] rows = ModelGoldenTests.matrix(c.get("phi"));
        double[][] shown = Arrays.copyOfRange(rows, 1, rows.length);
        boolean up = Boolean.TRUE.equals(c.get("up"));
        m.learnOne(RewardModel.thumbObservation(rows[0], shown), up ? 1.0 : 0.0, 1.0);
        require(Arrays.equals(m.observation(), Json.doubles(c.get("z"))), "observation differs from Python's");
        RewardModel py = RewardModel.fromBytes(Files.readAllBytes(dir.resolve(name + ".final.eomd")));
        close(m.theta(), py.theta(), "float32".equals(m.dtype()) ? 1e-5 : 1e-12, "theta");
        TestRunner.raises(InvalidInputException.class, () -> RewardModel.thumbObservation(rows[0], new double[0][]),
                "nothing shown");
    }

    static void cgProbe(Map<String, Object> c) {
        int d = (int) Json.integer(c.get("d"));
        boolean f32 = "float32".equals(c.get("dtype"));
        CgSolver s = new CgSolver(d, f32, Json.num(c.get("lam")), 3, 0, 1e-6, false);
        double[] S = Json.doubles(c.get("S"));
        System.arraycopy(S, 0, s.S, 0, d * d);
        double[] z = Json.doubles(c.get("z"));
        for (int i = 0; i < d; i++) {
            z[i] = Num.rd(z[i], f32);
        }
        double[] theta0 = s.theta();
        double a = s.step(z, 1.0, 1.0, 1.0, Json.integer(c.get("t")));
        String got = Double.isNaN(a) ? "numerical" : "ok";
        require(got.equals(c.get("verdict")), "Java " + got + ", Python " + c.get("verdict"));
        if (Double.isNaN(a)) {
            require(Arrays.equals(s.theta(), theta0), "a refused step moved theta");
        }
    }
}
