package dev.edgeomd;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.edgeomd.TestRunner.close;
import static dev.edgeomd.TestRunner.raises;
import static dev.edgeomd.TestRunner.require;

/** The Java core against the Python goldens (android_demo/golden/make_golden.py, part "model"). */
final class ModelGoldenTests {
    static final double TOL32 = 1e-5, TOL64 = 1e-12;
    /** float64 steps with a radius: Python's projection is an iterative (Lanczos) solve stopped
     * at a relative residual of 1e-8 (edge_omd/projection.py TOL), Java's converges further. */
    static final double TOL64_PROJECTION = 1e-7;

    private ModelGoldenTests() {
    }

    static Map<String, Object> readJson(Path p) throws Exception {
        return Json.obj(Json.parse(new String(Files.readAllBytes(p), StandardCharsets.UTF_8)));
    }

    static RewardModel.Config config(Map<String, Object> c, int dim) {
        RewardModel.Config cfg = new RewardModel.Config(dim);
        Map<String, Object> m = Json.obj(c.get("config"));
        for (Map.Entry<String, Object> e : m.entrySet()) {
            Object v = e.getValue();
            switch (e.getKey()) {
                case "solver": cfg.solver = (String) v; break;
                case "dtype": cfg.dtype = (String) v; break;
                case "eta": cfg.eta = Json.num(v); break;
                case "lam": cfg.lam = Json.num(v); break;
                case "radius": cfg.radius = java.util.OptionalDouble.of(Json.num(v)); break;
                case "forget": cfg.forget = Json.num(v); break;
                case "cg_steps": cfg.cgSteps = Json.integer(v); break;
                case "lam_warmup": cfg.lamWarmup = Json.integer(v); break;
                case "cg_tol": cfg.cgTol = Json.num(v); break;
                case "sketch_rank": cfg.sketchRank = java.util.OptionalInt.of((int) Json.integer(v)); break;
                case "budget_bytes": cfg.budgetBytes = java.util.OptionalLong.of(Json.integer(v)); break;
                case "head_fingerprint": cfg.headFingerprint = hex((String) v); break;
                default: throw new IllegalArgumentException("unknown setting " + e.getKey());
            }
        }
        return cfg;
    }

    static byte[] hex(String s) {
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }

    static void apply(RewardModel m, Map<String, Object> s) {
        String kind = (String) s.get("kind");
        double w = Json.num(s.get("w"));
        switch (kind) {
            case "one": m.learnOne(Json.doubles(s.get("z")), Json.num(s.get("y")), w); break;
            case "pair": m.learnPair(Json.doubles(s.get("a")), Json.doubles(s.get("b")), w); break;
            case "thumb": m.learnThumb(Json.doubles(s.get("phi")), (Boolean) s.get("up"), w); break;
            case "fantasize": m.fantasize(Json.doubles(s.get("z")), w); break;
            case "choice": m.learnChoice(matrix(s.get("P")), (int) Json.integer(s.get("c")), w); break;
            default: throw new IllegalArgumentException(kind);
        }
    }

    static double[][] matrix(Object o) {
        List<Object> rows = Json.arr(o);
        double[][] out = new double[rows.size()][];
        for (int i = 0; i < out.length; i++) {
            out[i] = Json.doubles(rows.get(i));
        }
        return out;
    }

    static void run(TestRunner T, Path golden, Path out) throws Exception {
        Path root = golden.resolve("model");
        List<Object> names = Json.arr(Json.parse(new String(Files.readAllBytes(root.resolve("index.json")),
                StandardCharsets.UTF_8)));
        Path javaOut = out.resolve("java_states");
        Files.createDirectories(javaOut);
        for (Object nameO : names) {
            String name = (String) nameO;
            Path folder = root.resolve(name);
            Map<String, Object> c = readJson(folder.resolve("case.json"));
            int dim = (int) Json.integer(c.get("dim"));
            RewardModel.Config cfg = config(c, dim);
            // a case started at a population pack (PackTests checks the pack itself)
            Pack pack = c.containsKey("pack") ? Pack.load(folder.resolve((String) c.get("pack"))) : null;
            double tol = "float32".equals(cfg.dtype) ? TOL32 : !cfg.radius.isPresent() ? TOL64 : TOL64_PROJECTION;
            List<Object> steps = Json.arr(c.get("steps"));
            List<Object> outs = Json.arr(c.get("outputs"));
            double[][] probes = matrix(c.get("probes"));
            int K = steps.size();
            byte[][] py = new byte[K + 1][];
            for (int k = 0; k <= K; k++) {
                py[k] = Files.readAllBytes(folder.resolve("s" + k + ".eomd"));
            }
            T.check(name + ": fresh state byte-identical to Python's", () -> {
                RewardModel m = fresh(cfg, pack);
                require(m.solver().equals(c.get("solver")), "solver " + m.solver() + " vs " + c.get("solver"));
                require(m.rank() == Json.integer(c.get("rank")), "rank " + m.rank());
                require(m.nbytes() == Json.integer(c.get("nbytes")), "nbytes " + m.nbytes() + " vs " + c.get("nbytes"));
                require(Arrays.equals(m.toBytes(), py[0]), "bytes differ");
                if (cfg.headFingerprint != null) {  // bindHead: an unbound state bound to the head
                    RewardModel.Config unbound = config(c, dim);
                    unbound.headFingerprint = null;
                    RewardModel u = fresh(unbound, pack);
                    u.bindHead(cfg.headFingerprint);
                    require(Arrays.equals(u.toBytes(), py[0]), "bindHead: bytes differ from Python's bound state");
                    u.bindHead(cfg.headFingerprint);  // the same head again: accepted
                    byte[] other = cfg.headFingerprint.clone();
                    other[0] ^= 1;
                    raises(IllegalStateException.class, () -> u.bindHead(other), "bindHead: another head");
                }
            });
            T.check(name + ": read-then-write byte-identical at every step", () -> {
                for (int k = 0; k <= K; k++) {
                    RewardModel m = RewardModel.fromBytes(py[k]);
                    require(Arrays.equals(m.toBytes(), py[k]), "step " + k);
                    require(m.t() == RewardModel.fromBytes(py[k]).t(), "t");
                }
            });
            T.check(name + ": one Java step from each Python state matches Python's next state", () -> {
                for (int k = 1; k <= K; k++) {
                    RewardModel m = RewardModel.fromBytes(py[k - 1]);
                    apply(m, Json.obj(steps.get(k - 1)));
                    RewardModel p = RewardModel.fromBytes(py[k]);
                    require(m.t() == p.t(), "t at step " + k);
                    close(m.theta(), p.theta(), tol, "theta at step " + k);
                    close(m.localNorm(), p.localNorm(), tol, "local norm at step " + k);
                }
            });
            T.check(name + ": Java trajectory matches Python at every step (theta, H, rewards, widths, picks)", () -> {
                RewardModel m = fresh(cfg, pack);
                for (int k = 0; k <= K; k++) {
                    if (k > 0) {
                        apply(m, Json.obj(steps.get(k - 1)));
                    }
                    RewardModel p = RewardModel.fromBytes(py[k]);
                    Map<String, Object> o = Json.obj(outs.get(k));
                    require(m.t() == p.t(), "t at step " + k);
                    close(m.theta(), p.theta(), tol, "theta at step " + k);
                    close(m.localNorm(), p.localNorm(), tol, "local norm at step " + k);
                    double[] r = m.reward(probes);
                    close(r, Json.doubles(o.get("rewards")), tol, "rewards at step " + k);
                    close(m.width(probes, null), Json.doubles(o.get("widths")), tol, "widths at step " + k);
                    close(m.width(probes, probes[0]), Json.doubles(o.get("widths_ref")), tol,
                            "widths (ref) at step " + k);
                    close(Strategies.pessimisticScores(r, m.width(probes, null), 0.5),
                            Json.doubles(o.get("pessimistic")), tol, "pessimistic scores at step " + k);
                    Map<String, Object> ch = Json.obj(o.get("choices"));
                    for (Map.Entry<String, Object> e : ch.entrySet()) {
                        int[] got = Strategies.choosePair(m, probes, e.getKey(), 1.0, 4.0, null);
                        long[] want = Json.longs(e.getValue());
                        require(got[0] == want[0] && got[1] == want[1], e.getKey() + " at step " + k + ": "
                                + Arrays.toString(got) + " vs " + Arrays.toString(want));
                    }
                }
                double[][] Z = new double[probes.length - 1][dim];
                for (int i = 1; i < probes.length; i++) {
                    for (int j = 0; j < dim; j++) {
                        Z[i - 1][j] = probes[i][j] - probes[0][j];
                    }
                }
                byte[] before = m.toBytes();
                java.util.List<double[]> got = Strategies.greedyQueries(m, Z, 4);
                List<Object> want = Json.arr(c.get("greedy"));
                require(Arrays.equals(before, m.toBytes()), "greedy queries changed the model");
                require(got.size() == want.size(), "greedy picks " + got.size() + " vs " + want.size());
                for (int i = 0; i < got.size(); i++) {
                    List<Object> w = Json.arr(want.get(i));
                    require(got.get(i)[0] == Json.integer(w.get(0)), "greedy pick " + i);
                    close(new double[]{got.get(i)[1]}, new double[]{Json.num(w.get(1))}, tol, "greedy width " + i);
                }
                m.save(javaOut.resolve(name + ".eomd"));
                RewardModel back = RewardModel.load(javaOut.resolve(name + ".eomd"));
                require(Arrays.equals(back.toBytes(), m.toBytes()), "save/load round trip");
            });
        }
        refusals(T, root.resolve("refuse"));
        PackTests.run(T, root, out);
        units(T, out);
    }

    /** A fresh model of the case: started at its pack when it has one. */
    static RewardModel fresh(RewardModel.Config cfg, Pack pack) {
        return pack == null ? new RewardModel(cfg) : new RewardModel(cfg, pack);
    }

    static void refusals(TestRunner T, Path folder) throws Exception {
        Map<String, Object> verdicts = readJson(folder.resolve("verdicts.json"));
        T.check("refusals: Java accepts exactly the files Python accepts (" + verdicts.size() + " files)", () -> {
            StringBuilder bad = new StringBuilder();
            for (Map.Entry<String, Object> e : verdicts.entrySet()) {
                Map<String, Object> v = Json.obj(e.getValue());
                boolean ok = (Boolean) v.get("ok");
                Path p = folder.resolve(e.getKey() + ".bin");
                byte[] data = Files.readAllBytes(p);
                String err = null;
                RewardModel m = null;
                try {
                    m = RewardModel.load(p);
                    RewardModel m2 = RewardModel.fromBytes(data);
                    require(Arrays.equals(m.toBytes(), m2.toBytes()), "load vs fromBytes");
                } catch (StateFormatException ex) {
                    err = ex.getMessage();
                    try {
                        RewardModel.fromBytes(data);
                        bad.append(e.getKey()).append(": load refused but fromBytes accepted; ");
                    } catch (StateFormatException ex2) {
                        // both refuse
                    }
                }
                if (ok && err != null) {
                    bad.append(e.getKey()).append(": Python accepts, Java refuses (").append(err).append("); ");
                } else if (!ok && err == null) {
                    bad.append(e.getKey()).append(": Python refuses (").append(v.get("error"))
                            .append("), Java accepts; ");
                } else if (ok && (Boolean) v.get("same") && !Arrays.equals(m.toBytes(), data)) {
                    bad.append(e.getKey()).append(": round trip not byte-identical; ");
                }
            }
            require(bad.length() == 0, bad.toString());
        });
    }

    static double[] randomVec(Random g, int d, double scale) {
        double[] v = new double[d];
        for (int i = 0; i < d; i++) {
            v[i] = g.nextGaussian() * scale;
        }
        return v;
    }

    static void units(TestRunner T, Path out) {
        T.check("SymEigen: A V = V diag(s), V orthonormal, ascending", () -> {
            Random g = new Random(3);
            for (int n : new int[]{1, 2, 5, 17, 64}) {
                double[] A = new double[n * n];
                for (int i = 0; i < n; i++) {
                    for (int j = 0; j <= i; j++) {
                        double x = g.nextGaussian();
                        A[i * n + j] = x;
                        A[j * n + i] = x;
                    }
                }
                if (n == 17) {  // repeated eigenvalues: rank-2 matrix
                    double[] u = randomVec(g, n, 1), v = randomVec(g, n, 1);
                    for (int i = 0; i < n; i++) {
                        for (int j = 0; j < n; j++) {
                            A[i * n + j] = u[i] * u[j] + v[i] * v[j];
                        }
                    }
                }
                SymEigen e = new SymEigen(A, n);
                double err = 0, orth = 0;
                for (int j = 0; j < n; j++) {
                    if (j > 0) {
                        require(e.values[j] >= e.values[j - 1], "ascending");
                    }
                    for (int i = 0; i < n; i++) {
                        double av = 0;
                        for (int k = 0; k < n; k++) {
                            av += A[i * n + k] * e.vectors[k][j];
                        }
                        err = Math.max(err, Math.abs(av - e.values[j] * e.vectors[i][j]));
                    }
                    for (int j2 = 0; j2 < n; j2++) {
                        double dot = 0;
                        for (int k = 0; k < n; k++) {
                            dot += e.vectors[k][j] * e.vectors[k][j2];
                        }
                        orth = Math.max(orth, Math.abs(dot - (j == j2 ? 1 : 0)));
                    }
                }
                require(err < 1e-12 * n && orth < 1e-12 * n, "n=" + n + " residual " + err + " orth " + orth);
            }
        });
        T.check("bad input is refused with a typed error and changes nothing", () -> {
            for (String solver : new String[]{"exact", "cg", "sketch", "diagonal"}) {
                RewardModel.Config cfg = new RewardModel.Config(6);
                cfg.solver = solver;
                RewardModel m = new RewardModel(cfg);
                Random g = new Random(1);
                m.learnPair(randomVec(g, 6, 0.4), randomVec(g, 6, 0.4), 1.0);
                byte[] before = m.toBytes();
                double[] nan = randomVec(g, 6, 1);
                nan[2] = Double.NaN;
                raises(InvalidInputException.class, () -> m.learnOne(nan, 1.0, 1.0), "NaN");
                raises(InvalidInputException.class, () -> m.learnOne(new double[5], 1.0, 1.0), "length");
                raises(InvalidInputException.class, () -> m.learnOne(new double[6], 1.5, 1.0), "label");
                raises(InvalidInputException.class, () -> m.learnOne(new double[6], 1.0, 0.0), "weight 0");
                raises(InvalidInputException.class, () -> m.learnOne(new double[6], 1.0, Double.NaN), "weight NaN");
                double[] big = new double[6];
                big[0] = 2e6;
                raises(InvalidInputException.class, () -> m.learnPair(big, new double[6], 1.0), "scale");
                raises(InvalidInputException.class, () -> m.reward(new double[][]{nan}), "reward NaN");
                raises(InvalidInputException.class, () -> m.width(new double[][]{new double[6]}, nan), "ref NaN");
                require(Arrays.equals(before, m.toBytes()), solver + ": state changed");
            }
            RewardModel.Config bad = new RewardModel.Config(4);
            bad.eta = 0;
            raises(ConfigException.class, () -> new RewardModel(bad), "eta 0");
            RewardModel.Config ex = new RewardModel.Config(4);
            ex.solver = "exact";
            ex.forget = 0.9;
            raises(ConfigException.class, () -> new RewardModel(ex), "exact + forget");
            RewardModel.Config tiny = new RewardModel.Config(100);
            tiny.budgetBytes = java.util.OptionalLong.of(100);
            raises(ConfigException.class, () -> new RewardModel(tiny), "budget");
            // unset is an empty optional; a present value is checked as Python checks it (0 is
            // not "unset": budget_bytes=0 and sketch_rank=0 are ConfigErrors in Python too)
            RewardModel.Config zero = new RewardModel.Config(4);
            zero.budgetBytes = java.util.OptionalLong.of(0);
            raises(ConfigException.class, () -> new RewardModel(zero), "budget 0");
            RewardModel.Config rank0 = new RewardModel.Config(4);
            rank0.solver = "sketch";
            rank0.sketchRank = java.util.OptionalInt.of(0);
            raises(ConfigException.class, () -> new RewardModel(rank0), "sketch rank 0");
            RewardModel.Config nan = new RewardModel.Config(4);
            nan.radius = java.util.OptionalDouble.of(Double.NaN);
            raises(ConfigException.class, () -> new RewardModel(nan), "radius NaN");
            RewardModel.Config unset = new RewardModel.Config(4);
            unset.radius = null;
            raises(ConfigException.class, () -> new RewardModel(unset), "null for an optional");
        });
        T.check("budget picks the solver like Python (exact, sketch, diagonal)", () -> {
            RewardModel.Config c = new RewardModel.Config(384);
            require(new RewardModel(c).solver().equals("exact"), "unlimited -> exact");
            c.budgetBytes = java.util.OptionalLong.of(200_000);
            RewardModel s = new RewardModel(c);
            require(s.solver().equals("sketch") && s.nbytes() <= 200_000, "200 kB -> sketch " + s);
            c.budgetBytes = java.util.OptionalLong.of(7000);
            RewardModel g = new RewardModel(c);
            require(g.solver().equals("diagonal"), "7 kB -> diagonal " + g);
            require(Arrays.equals(Strategies.order(new double[]{1, 3, 3, 0, 3}), new int[]{1, 2, 4, 0, 3}), "ties by index");
        });
        T.check("random strategy: seeded, two distinct indices in range", () -> {
            Random g = new Random(42);
            int[] counts = new int[5];
            for (int i = 0; i < 2000; i++) {
                int[] p = Strategies.choosePair(new double[5], null, "random", 1, 4, g);
                require(p[0] != p[1] && p[0] >= 0 && p[0] < 5 && p[1] >= 0 && p[1] < 5, "pair");
                counts[p[0]]++;
                counts[p[1]]++;
            }
            for (int cnt : counts) {
                require(cnt > 600 && cnt < 1000, "uniform " + Arrays.toString(counts));
            }
            int[] a = Strategies.choosePair(new double[9], null, "random", 1, 4, new Random(7));
            int[] b = Strategies.choosePair(new double[9], null, "random", 1, 4, new Random(7));
            require(Arrays.equals(a, b), "seeded");
            raises(ConfigException.class, () -> Strategies.choosePair(new double[3], null, "nope", 1, 4, null), "name");
            raises(InvalidInputException.class, () -> Strategies.choosePair(new double[1], null, "best_worst", 1, 4, null), "n");
        });
        T.check("atomic save: a failed save leaves the previous file and no temp file", () -> {
            Path dir = Files.createTempDirectory(out, "save");
            RewardModel m = new RewardModel(new RewardModel.Config(5));
            Path p = dir.resolve("user.eomd");
            m.save(p);
            byte[] first = Files.readAllBytes(p);
            m.learnThumb(new double[]{0.1, 0.2, 0.3, 0.4, 0.5}, true, 1.0);
            m.save(p);
            require(!Arrays.equals(first, Files.readAllBytes(p)), "second save");
            require(RewardModel.load(p).t() == 1, "t");
            Path missing = dir.resolve("no-such-dir").resolve("x.eomd");
            raises(java.io.IOException.class, () -> m.save(missing), "save into a missing folder");
            try (java.util.stream.Stream<Path> s = Files.list(dir)) {
                require(s.count() == 1, "temp files left");
            }
        });
        T.check("fuzz: 3000 resealed random corruptions of states and journals raise only the typed errors", () -> {
            Random g = new Random(99);
            List<byte[]> bases = new java.util.ArrayList<>();
            for (String solver : new String[]{"exact", "cg", "sketch", "diagonal"}) {
                for (String dtype : new String[]{"float32", "float64"}) {
                    RewardModel.Config c = new RewardModel.Config(5);
                    c.solver = solver;
                    c.dtype = dtype;
                    if ("sketch".equals(solver)) {
                        c.sketchRank = java.util.OptionalInt.of(2);
                    }
                    RewardModel m = new RewardModel(c);
                    for (int i = 0; i < 6; i++) {
                        m.learnPair(randomVec(g, 5, 0.4), randomVec(g, 5, 0.4), 1.0);
                    }
                    bases.add(m.toBytes());
                }
            }
            int accepted = 0;
            for (int it = 0; it < 3000; it++) {
                byte[] b = bases.get(it % bases.size()).clone();
                int flips = 1 + g.nextInt(4);
                for (int f = 0; f < flips; f++) {
                    int pos = g.nextInt(it % 3 == 0 ? Math.min(b.length, StateFormat.HEADER_BYTES) : b.length - 4);
                    b[pos] = (byte) (it % 2 == 0 ? b[pos] ^ (1 << g.nextInt(8)) : g.nextInt(256));
                }
                if (it % 5 == 0) {
                    b = Arrays.copyOf(b, g.nextInt(b.length + 8));
                }
                if (b.length >= 4) {
                    StateFormat.seal(b);
                }
                try {
                    RewardModel m = RewardModel.fromBytes(b);
                    accepted++;
                    RewardModel.fromBytes(m.toBytes());  // what it writes back loads again
                    m.learnPair(randomVec(g, 5, 0.3), randomVec(g, 5, 0.3), 1.0);
                } catch (StateFormatException | NumericalException e) {
                    // typed refusal
                }
                byte[] j = Journal.encode(1, 1, randomVec(g, 5, 0.3), 4, 1.0, 1.0, 0.0);
                j[g.nextInt(j.length)] ^= (byte) (1 << g.nextInt(8));
                Journal.parse(j, 1, 0, 5, 4, 0, true);  // must return, never throw
            }
            require(accepted < 3000, "some corruptions must be refused");
        });
        T.check("oversized header: refused without allocating (JVM heap is small)", () -> {
            byte[] h = new RewardModel(new RewardModel.Config(3)).toBytes();
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(h).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            b.putInt(12, 65536);
            long d = 65536;
            b.putLong(128, (d * d + d) * 4 + d * 8);
            raises(StateFormatException.class, () -> RewardModel.fromBytes(h), "fromBytes");
            Path p = Files.createTempFile(out, "huge", ".eomd");
            Files.write(p, h);
            raises(StateFormatException.class, () -> RewardModel.load(p), "load");
        });
    }
}
