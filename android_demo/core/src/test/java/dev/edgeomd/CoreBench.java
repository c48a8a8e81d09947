package dev.edgeomd;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * JVM benchmark of the Java core, driven by bench/java_core.py (which prints it next to the
 * Python runtime). Modes:
 *   update SOLVER DTYPE D WARMUP N     per-update latency of learnPair (unit-norm features)
 *   tokenize TOKENIZER_JSON TEXTS_JSON REPEATS   encode throughput (texts/s, tokens/s)
 * Prints one JSON object per line.
 */
public final class CoreBench {
    private CoreBench() {
    }

    static double[] unit(Random g, int d) {
        double[] v = new double[d];
        double n = 0;
        for (int i = 0; i < d; i++) {
            v[i] = g.nextGaussian();
            n += v[i] * v[i];
        }
        n = Math.sqrt(n);
        for (int i = 0; i < d; i++) {
            v[i] /= n;
        }
        return v;
    }

    public static void main(String[] args) throws Exception {
        if (args[0].equals("update")) {
            String solver = args[1], dtype = args[2];
            int d = Integer.parseInt(args[3]), warm = Integer.parseInt(args[4]), n = Integer.parseInt(args[5]);
            RewardModel.Config c = new RewardModel.Config(d);
            c.solver = solver;
            c.dtype = dtype;
            RewardModel m = new RewardModel(c);
            Random g = new Random(0);
            int pool = 256;
            double[][] A = new double[pool][], B = new double[pool][];
            for (int i = 0; i < pool; i++) {
                A[i] = unit(g, d);
                B[i] = unit(g, d);
            }
            for (int i = 0; i < warm; i++) {
                m.learnPair(A[i % pool], B[(i * 7 + 3) % pool], 1.0);
            }
            long[] ns = new long[n];
            for (int i = 0; i < n; i++) {
                long t0 = System.nanoTime();
                m.learnPair(A[i % pool], B[(i * 7 + 3) % pool], 1.0);
                ns[i] = System.nanoTime() - t0;
            }
            double mean = 0;
            for (long x : ns) {
                mean += x;
            }
            mean /= n;
            long[] s = ns.clone();
            Arrays.sort(s);
            System.out.println("{\"mode\":\"update\",\"solver\":\"" + m.solver() + "\",\"rank\":" + m.rank() + ",\"dtype\":\""
                    + dtype + "\",\"d\":" + d + ",\"n\":" + n + ",\"median_us\":" + s[n / 2] / 1e3 + ",\"p99_us\":"
                    + s[(int) (0.99 * (n - 1))] / 1e3 + ",\"mean_us\":" + mean / 1e3 + "}");
        } else if (args[0].equals("tokenize")) {
            Tokenizer tok = Tokenizer.load(Paths.get(args[1]));
            List<Object> texts = Json.arr(Json.parse(new String(Files.readAllBytes(Paths.get(args[2])),
                    StandardCharsets.UTF_8)));
            int repeats = Integer.parseInt(args[3]);
            List<String> ts = new ArrayList<>();
            for (Object o : texts) {
                ts.add((String) o);
            }
            long tokens = 0;
            for (String t : ts) {  // warm-up
                tokens += tok.encode(t, true).size();
            }
            double[] secs = new double[repeats];
            for (int r = 0; r < repeats; r++) {
                long t0 = System.nanoTime();
                for (String t : ts) {
                    tok.encode(t, true);
                }
                secs[r] = (System.nanoTime() - t0) / 1e9;
            }
            Arrays.sort(secs);
            double med = secs[repeats / 2];
            System.out.println("{\"mode\":\"tokenize\",\"texts\":" + ts.size() + ",\"tokens\":" + tokens
                    + ",\"median_s\":" + med + ",\"texts_per_s\":" + ts.size() / med + ",\"tokens_per_s\":" + tokens / med + "}");
        }
    }
}
