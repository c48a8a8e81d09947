package dev.edgeomd;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static dev.edgeomd.TestRunner.require;

/** The Java tokenizer and TextEncoder against Python's tokenizers (make_golden_tok.py). */
final class TokenizerGoldenTests {
    private TokenizerGoldenTests() {
    }

    static void run(TestRunner T, Path golden) throws Exception {
        Path root = golden.resolve("tok");
        List<Object> names = Json.arr(Json.parse(new String(Files.readAllBytes(root.resolve("index.json")),
                StandardCharsets.UTF_8)));
        if (Files.isDirectory(root.resolve("manifests"))) {
            manifests(T, root.resolve("manifests"));
        }
        for (Object nameO : names) {
            String name = (String) nameO;
            Path folder = root.resolve(name);
            Map<String, Object> cases = Json.obj(Json.parse(new String(Files.readAllBytes(folder.resolve("cases.json")),
                    StandardCharsets.UTF_8)));
            Tokenizer tok = Tokenizer.load(folder.resolve("tokenizer.json"));
            List<Object> texts = Json.arr(cases.get("texts"));
            T.check(name + ": ids, offsets, special masks and style-block features of " + texts.size() + " encodings", () -> {
                int bad = 0;
                StringBuilder first = new StringBuilder();
                for (Object o : texts) {
                    Map<String, Object> c = Json.obj(o);
                    String text = (String) c.get("text");
                    boolean add = (Boolean) c.get("add_special_tokens");
                    Tokenizer.Encoding e = tok.encode(text, add);
                    long[] ids = Json.longs(c.get("ids"));
                    List<Object> offs = Json.arr(c.get("offsets"));
                    long[] special = Json.longs(c.get("special"));
                    String why = null;
                    if (!Arrays.equals(toLong(e.ids), ids)) {
                        why = "ids " + Arrays.toString(e.ids) + " vs " + Arrays.toString(ids);
                    } else {
                        for (int i = 0; i < ids.length && why == null; i++) {
                            long[] o2 = Json.longs(offs.get(i));
                            if (e.start[i] != o2[0] || e.end[i] != o2[1]) {
                                why = "offset " + i + " (" + e.start[i] + "," + e.end[i] + ") vs (" + o2[0] + "," + o2[1] + ")";
                            } else if ((e.special[i] ? 1 : 0) != special[i]) {
                                why = "special mask at " + i;
                            }
                        }
                    }
                    if (why == null && c.containsKey("style")) {   // the style block's raw features
                        double[] got = StyleBlock.raw(text);
                        List<Object> want = Json.arr(c.get("style"));
                        for (int j = 0; j < StyleBlock.K && why == null; j++) {
                            double w = Double.parseDouble((String) want.get(j));
                            if (!(Math.abs(got[j] - w) <= 1e-14 * Math.max(1.0, Math.abs(w)))) {
                                why = "style " + StyleBlock.FEATURES[j] + " " + got[j] + " vs " + w;
                            }
                        }
                    }
                    if (why != null) {
                        if (bad < 5) {
                            first.append("\n  text=").append(Json.quote(text)).append(" add=").append(add).append(": ").append(why);
                        }
                        bad++;
                    }
                }
                require(bad == 0, bad + " of " + texts.size() + " differ:" + first);
            });
            List<Object> manifests = Json.arr(cases.get("manifests"));
            List<Object> batches = Json.arr(cases.get("batches"));
            T.check(name + ": TextEncoder batches (template, truncation, padding, response span) of " + batches.size() + " batches", () -> {
                int bad = 0;
                StringBuilder first = new StringBuilder();
                for (Object o : batches) {
                    Map<String, Object> b = Json.obj(o);
                    Map<String, Object> m = Json.obj(manifests.get((int) Json.integer(b.get("template_index"))));
                    TextEncoder enc = new TextEncoder(tok, (String) m.get("template"), (int) Json.integer(m.get("max_length")),
                            (Boolean) m.get("add_special_tokens"), (int) Json.integer(m.get("pad_token_id")),
                            (String) b.get("padding_side"));
                    List<String[]> pairs = new ArrayList<>();
                    for (Object p : Json.arr(b.get("pairs"))) {
                        List<Object> pl = Json.arr(p);
                        pairs.add(new String[]{(String) pl.get(0), (String) pl.get(1)});
                    }
                    String why = null;
                    try {
                        TextEncoder.Batch got = enc.encodeBatch(pairs, true, 0);
                        if (b.containsKey("error")) {
                            why = "Python refused (" + b.get("error") + "), Java encoded";
                        } else {
                            long[][] ids = matrix(b.get("ids")), mask = matrix(b.get("mask"));
                            if (!Arrays.deepEquals(got.ids, ids)) {
                                why = "ids " + Arrays.deepToString(got.ids) + " vs " + Arrays.deepToString(ids);
                            } else if (!Arrays.deepEquals(got.mask, mask)) {
                                why = "mask";
                            } else if (!Arrays.deepEquals(got.pool, matrix(b.get("pool")))) {
                                why = "pool_mask " + Arrays.deepToString(got.pool) + " vs " + b.get("pool");
                            } else if (got.truncated != Json.integer(b.get("n_trunc"))) {
                                why = "n_trunc";
                            }
                        }
                    } catch (InvalidInputException e) {
                        if (!b.containsKey("error")) {
                            why = "Java refused: " + e.getMessage();
                        }
                    }
                    if (why != null) {
                        if (bad < 3) {
                            first.append("\n  ").append(why.length() > 600 ? why.substring(0, 600) : why);
                        }
                        bad++;
                    }
                }
                require(bad == 0, bad + " of " + batches.size() + " differ:" + first);
            });
        }
    }

    static void manifests(TestRunner T, Path folder) throws Exception {
        Map<String, Object> verdicts = Json.obj(Json.parse(new String(Files.readAllBytes(folder.resolve("verdicts.json")),
                StandardCharsets.UTF_8)));
        T.check("manifests: Java accepts exactly the manifests Python's validate_manifest accepts ("
                + verdicts.size() + ")", () -> {
            StringBuilder bad = new StringBuilder();
            for (Map.Entry<String, Object> e : verdicts.entrySet()) {
                Object m = Json.parse(new String(Files.readAllBytes(folder.resolve(e.getKey() + ".json")),
                        StandardCharsets.UTF_8));
                boolean ok;
                try {
                    HeadManifest h = HeadManifest.validate(m, e.getKey());
                    ok = true;
                    require(h.fingerprint != null && h.fingerprint.length == 32, "fingerprint bytes");
                } catch (HeadException ex) {
                    ok = false;
                }
                if (ok != (Boolean) e.getValue()) {
                    bad.append(e.getKey()).append(" (Python ").append(e.getValue()).append(") ");
                }
            }
            require(bad.length() == 0, bad.toString());
        });
        if (Files.isDirectory(folder.resolve("signed_ok"))) {
            T.check("head fingerprint: Java recomputes the exporter's; refuses edited tokenizer, template, graph", () -> {
                HeadManifest ok = HeadManifest.load(folder.resolve("signed_ok"));
                ok.verify(folder.resolve("signed_ok"));
                for (String bad : new String[]{"signed_bad_tokenizer", "signed_bad_template", "signed_bad_graph"}) {
                    HeadManifest m = HeadManifest.load(folder.resolve(bad));
                    TestRunner.raises(HeadException.class, () -> m.verify(folder.resolve(bad)), bad);
                }
                TextEncoder enc = ok.textEncoder(folder.resolve("signed_ok"));
                require(enc.maxLength == 256 && enc.addSpecialTokens, "text encoder settings");
                require(ok.style != null && ok.wording != null && ok.featureDim() == ok.d + StyleBlock.K + 256,
                        "style block and wording view parsed");
                Map<String, Object> sc = Json.obj(Json.parse(new String(Files.readAllBytes(
                        folder.resolve("style_check.json")), StandardCharsets.UTF_8)));
                List<Object> probe = Json.arr(sc.get("texts")), rows = Json.arr(sc.get("block"));
                for (int i = 0; i < probe.size(); i++) {
                    double[] got = ok.style.apply((String) probe.get(i));
                    List<Object> want = Json.arr(rows.get(i));
                    for (int j = 0; j < StyleBlock.K; j++) {
                        double w = Double.parseDouble((String) want.get(j));
                        require(Math.abs(got[j] - w) <= 1e-12 * Math.max(1.0, Math.abs(w)),
                                "style block of probe " + i + " feature " + j + ": " + got[j] + " vs " + w);
                    }
                }
            });
        }
    }

    static long[] toLong(int[] a) {
        long[] out = new long[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = a[i];
        }
        return out;
    }

    static long[][] matrix(Object o) {
        List<Object> rows = Json.arr(o);
        long[][] out = new long[rows.size()][];
        for (int i = 0; i < out.length; i++) {
            out[i] = Json.longs(rows.get(i));
        }
        return out;
    }
}
