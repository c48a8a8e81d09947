package dev.edgeomd;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;

import static dev.edgeomd.TestRunner.require;

/**
 * WordingView against Python's wording view (android_demo/golden/make_golden_wording.py), bit
 * for bit: java dev.edgeomd.WordingGoldenTests GOLDEN_DIR [-v]. Prints "N passed, N failed".
 */
final class WordingGoldenTests {
    private WordingGoldenTests() {
    }

    private static long bits(String hex) {
        return Long.parseUnsignedLong(hex, 16);
    }

    static void run(TestRunner T, Path golden) throws Exception {
        Map<String, Object> cases = Json.obj(Json.parse(new String(Files.readAllBytes(
                golden.resolve("wording").resolve("cases.json")), StandardCharsets.UTF_8)));
        List<Object> texts = Json.arr(cases.get("texts"));
        Map<String, Object> lg = Json.obj(cases.get("log1p"));
        T.check("StrictMath.log1p = Python's fdlibm port, bit for bit, on integer counts", () -> {
            long[] x = Json.longs(lg.get("x"));
            List<Object> y = Json.arr(lg.get("y"));
            int bad = 0;
            for (int i = 0; i < x.length; i++) {
                bad += Double.doubleToRawLongBits(StrictMath.log1p((double) x[i])) == bits((String) y.get(i)) ? 0 : 1;
            }
            require(bad == 0, bad + " of " + x.length + " differ");
        });
        T.check("MurmurHash3_x86_32 over 32-bit words = Python's", () -> {
            for (Object o : Json.arr(cases.get("murmur"))) {
                Map<String, Object> c = Json.obj(o);
                long[] w = Json.longs(c.get("words"));
                int[] words = new int[w.length];
                for (int i = 0; i < w.length; i++) {
                    words[i] = (int) w[i];
                }
                int h = WordingView.murmur3(words, words.length, (int) Json.integer(c.get("seed")));
                require((h & 0xffffffffL) == Json.integer(c.get("hash")), "murmur3 of " + c.get("words"));
            }
        });
        for (Object vo : Json.arr(cases.get("views"))) {
            Map<String, Object> v = Json.obj(vo);
            WordingView view = WordingView.fromManifest(v.get("manifest"), "golden");
            List<Object> rows = Json.arr(v.get("rows"));
            T.check("wording view " + Json.quote(String.valueOf(v.get("manifest"))) + ": tokens, buckets and "
                    + "float64 values of " + texts.size() + " texts bit for bit", () -> {
                int bad = 0;
                StringBuilder first = new StringBuilder();
                for (int i = 0; i < texts.size(); i++) {
                    String text = (String) texts.get(i);
                    Map<String, Object> r = Json.obj(rows.get(i));
                    String why = null;
                    long[] h1 = Json.longs(r.get("h1"));
                    int[] got = WordingView.tokenHashes(text);
                    if (got.length != h1.length) {
                        why = got.length + " tokens vs " + h1.length;
                    }
                    for (int k = 0; why == null && k < h1.length; k++) {
                        if ((got[k] & 0xffffffffL) != h1[k]) {
                            why = "token " + k + " hash";
                        }
                    }
                    double[] x = view.apply(text);
                    long[] idx = Json.longs(r.get("idx"));
                    List<Object> val = Json.arr(r.get("val"));
                    int nz = 0;
                    for (double e : x) {
                        nz += e != 0 ? 1 : 0;
                    }
                    if (why == null && nz != idx.length) {
                        why = nz + " nonzero buckets vs " + idx.length;
                    }
                    for (int k = 0; why == null && k < idx.length; k++) {
                        if (Double.doubleToRawLongBits(x[(int) idx[k]]) != bits((String) val.get(k))) {
                            why = "bucket " + idx[k] + ": " + x[(int) idx[k]] + " vs "
                                    + Double.longBitsToDouble(bits((String) val.get(k)));
                        }
                    }
                    if (why != null) {
                        if (bad < 5) {
                            first.append("\n  text=").append(Json.quote(text.length() > 80 ? text.substring(0, 80) : text))
                                    .append(": ").append(why);
                        }
                        bad++;
                    }
                }
                require(bad == 0, bad + " of " + texts.size() + " differ:" + first);
            });
        }
        Map<String, Object> manifests = Json.obj(cases.get("manifests"));
        T.check("wording manifests: Java accepts exactly what Python's from_manifest accepts ("
                + manifests.size() + ")", () -> {
            StringBuilder bad = new StringBuilder();
            for (Map.Entry<String, Object> e : manifests.entrySet()) {
                Map<String, Object> c = Json.obj(e.getValue());
                boolean ok;
                try {
                    WordingView.fromManifest(c.get("manifest"), e.getKey());
                    ok = true;
                } catch (HeadException ex) {
                    ok = false;
                }
                if (ok != (Boolean) c.get("ok")) {
                    bad.append(e.getKey()).append(" (Python ").append(c.get("ok")).append(") ");
                }
            }
            require(bad.length() == 0, bad.toString());
        });
        T.check("append: the graph's features, then the view as float32", () -> {
            WordingView view = new WordingView(4, 2, "log1p", 0.5);
            double[][] out = view.append(new double[][]{{1.0, 2.0}}, java.util.Collections.singletonList(
                    new String[]{"prompt", "Perhaps, I'm sorry!"}));
            double[] b = view.apply("Perhaps, I'm sorry!");
            require(out[0].length == 2 + 16 && out[0][0] == 1.0 && out[0][1] == 2.0, "layout");
            for (int j = 0; j < 16; j++) {
                require(out[0][2 + j] == (float) b[j], "float32 at " + j);
            }
        });
    }

    public static void main(String[] args) throws Exception {
        TestRunner t = new TestRunner(args.length > 1 && args[1].equals("-v"));
        run(t, Paths.get(args[0]));
        System.exit(t.finish());
    }
}
