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
 * refused here (NumericalException) with toBytes unchanged, every other one is taken; the final
 * theta and widths match Python's (1e-4 relative in float32, 1e-9 in float64);</li>
 * <li>load: a crafted state is refused (StateFormatException) exactly when Python's loader
 * refused it;</li>
 * <li>cg_probe: CgSolver.step after t = 64 updates refuses from the given curvature S exactly when
 * Python's did (the Lanczos PSD probe).</li>
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
                default:
                    throw new IllegalArgumentException("case kind " + c.get("kind"));
            }
        }
        System.exit(t.finish());
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
        }
        RewardModel py = RewardModel.fromBytes(Files.readAllBytes(dir.resolve(name + ".final.eomd")));
        double tol = "float32".equals(m.dtype()) ? (c.containsKey("tol32") ? Json.num(c.get("tol32")) : 1e-4) : 1e-9;
        require(m.t() == py.t(), "t " + m.t() + " vs " + py.t());
        close(m.theta(), py.theta(), tol, "theta");
        double[][] probes = ModelGoldenTests.matrix(c.get("probes"));
        close(m.width(probes, null), Json.doubles(c.get("widths")), tol, "widths");
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

    static void cgProbe(Map<String, Object> c) {
        int d = (int) Json.integer(c.get("d"));
        boolean f32 = "float32".equals(c.get("dtype"));
        CgSolver s = new CgSolver(d, f32, Json.num(c.get("lam")), 3, 0, 1e-6);
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
