package dev.edgeomd;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The feature-head folder's manifest.json (edge_omd/head/manifest.py): checked with the same
 * rules as Python's validate_manifest (keys, types, ranges, template slots, relative file names,
 * 64-hex digests), then the settings the phone needs: template and truncation (for
 * {@link TextEncoder}), the graph files and I/O names (for ONNX Runtime), d, and the head
 * fingerprint that a reward state is bound to.
 */
public final class HeadManifest {
    public static final String MANIFEST_NAME = "manifest.json";
    public static final String FORMAT_NAME = "edge-omd-feature-head";
    public static final int FORMAT_VERSION = 1;

    /** Required keys and their JSON types: S string, I integer, B boolean, L list. */
    static final String[][] REQUIRED = {
            {"format", "S"}, {"format_version", "I"}, {"architecture", "S"}, {"kind", "S"}, {"d", "I"},
            {"pooling", "S"}, {"normalize", "B"}, {"dtype", "S"}, {"opset", "I"}, {"max_length", "I"},
            {"template", "S"}, {"add_special_tokens", "B"}, {"pad_token_id", "I"}, {"padding_side", "S"},
            {"graph_files", "L"}, {"graph_sha256", "S"}, {"fingerprint", "S"}, {"tokenizer_file", "S"},
            {"inputs", "L"}, {"output", "S"}};

    public final Map<String, Object> raw;
    public final int d, maxLength, padTokenId;
    public final String template, paddingSide, tokenizerFile, output, kind, pooling;
    public final boolean addSpecialTokens;
    public final String[] graphFiles, inputs;
    public final int[] staticShape;   // null, or {batch, length}
    public final StyleBlock style;    // null, or the style block appended to the graph's d features
    public final WordingView wording; // null, or the wording view appended after the style block
    public final byte[] fingerprint;  // 32 bytes

    private HeadManifest(Map<String, Object> m, StyleBlock style, WordingView wording) {
        raw = m;
        this.style = style;
        this.wording = wording;
        d = (int) Json.integer(m.get("d"));
        maxLength = (int) Json.integer(m.get("max_length"));
        padTokenId = (int) Json.integer(m.get("pad_token_id"));
        template = (String) m.get("template");
        paddingSide = (String) m.get("padding_side");
        tokenizerFile = (String) m.get("tokenizer_file");
        output = (String) m.get("output");
        kind = (String) m.get("kind");
        pooling = (String) m.get("pooling");
        addSpecialTokens = (Boolean) m.get("add_special_tokens");
        graphFiles = strings(Json.arr(m.get("graph_files")));
        inputs = strings(Json.arr(m.get("inputs")));
        Object ss = m.get("static_shape");
        staticShape = ss == null ? null : new int[]{(int) Json.integer(Json.arr(ss).get(0)),
                (int) Json.integer(Json.arr(ss).get(1))};
        fingerprint = hex((String) m.get("fingerprint"));
    }

    /** The head's feature dimension: the graph's d, plus the columns of its views (style, wording). */
    public int featureDim() {
        return d + (style == null ? 0 : StyleBlock.K) + (wording == null ? 0 : wording.dim());
    }

    /**
     * The head's features of (prompt, response) rows, as Python's FeatureHead.features returns
     * them (edge_omd/head/runner.py): each row of the graph's output (d values, float32) followed,
     * when the manifest has a style block, by the block of that row's RESPONSE (standardised with
     * the manifest's mean and sd, scaled by its weight / sqrt(K), float32), then, when it has a
     * wording view, by the view of the RESPONSE (float32; edge_omd/head/views.py). Rows have
     * {@link #featureDim()} entries: what a RewardModel of that dim learns from.
     *
     * @param graph     the graph's output, one row of d per response
     * @param responses the response of each row (the prompt never enters the block)
     */
    public double[][] features(double[][] graph, List<String> responses) {
        if (graph == null || responses == null || graph.length != responses.size()) {
            throw new InvalidInputException("features: one graph row per response, got "
                    + (graph == null ? "null" : graph.length) + " rows and "
                    + (responses == null ? "null" : responses.size()) + " responses");
        }
        double[][] out = new double[graph.length][];
        for (int i = 0; i < graph.length; i++) {
            if (graph[i] == null || graph[i].length != d) {
                throw new InvalidInputException("features: graph row " + i + " must have the manifest's d=" + d
                        + " values");
            }
            if (responses.get(i) == null) {
                throw new InvalidInputException("features: response " + i + " is null");
            }
            double[] row = new double[featureDim()];
            for (int j = 0; j < d; j++) {
                row[j] = (float) graph[i][j];
            }
            int at = d;
            if (style != null) {
                double[] b = style.apply(responses.get(i));
                for (int j = 0; j < StyleBlock.K; j++) {
                    row[at++] = (float) b[j];
                }
            }
            if (wording != null) {
                double[] w = wording.apply(responses.get(i));
                for (int j = 0; j < w.length; j++) {
                    row[at++] = (float) w[j];
                }
            }
            out[i] = row;
        }
        return out;
    }

    private static String[] strings(List<Object> a) {
        String[] out = new String[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (String) a.get(i);
        }
        return out;
    }

    static byte[] hex(String s) {
        if (s == null || s.length() != 64) {
            return null;
        }
        byte[] out = new byte[32];
        for (int i = 0; i < 32; i++) {
            int hi = Character.digit(s.charAt(2 * i), 16), lo = Character.digit(s.charAt(2 * i + 1), 16);
            if (hi < 0 || lo < 0) {
                return null;
            }
            out[i] = (byte) (hi * 16 + lo);
        }
        return out;
    }

    /** Read and validate folder/manifest.json. */
    public static HeadManifest load(Path folder) throws HeadException {
        Path path = folder.resolve(MANIFEST_NAME);
        if (!Files.isDirectory(folder)) {
            throw new HeadException("feature head folder " + folder + " does not exist; export one with "
                    + "`edge-omd export CHECKPOINT_DIR OUTPUT_DIR` and push it to the device");
        }
        String text;
        try {
            text = new String(Files.readAllBytes(path), StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new HeadException(path + " is missing: " + folder + " is not an exported feature head");
        } catch (IOException e) {
            throw new HeadException(path + " cannot be read (" + e + ")", e);
        }
        Object parsed;
        try {
            parsed = Json.parse(text);
        } catch (IllegalArgumentException e) {
            throw new HeadException(path + " is corrupt (" + e.getMessage() + "); re-export the head", e);
        }
        return validate(parsed, path.toString());
    }

    /** Python's validate_manifest, rule for rule; HeadException says what is wrong. */
    public static HeadManifest validate(Object o, String where) throws HeadException {
        if (!(o instanceof Map)) {
            throw new HeadException(where + ": expected a JSON object");
        }
        Map<String, Object> m = Json.obj(o);
        if (!FORMAT_NAME.equals(m.get("format"))) {
            throw new HeadException(where + ": not an edge-omd feature-head manifest (format=" + m.get("format") + ")");
        }
        Object fv = m.get("format_version");
        if (!(fv instanceof Long) || (Long) fv != FORMAT_VERSION) {
            throw new HeadException(where + ": format_version " + fv + " is not supported (this reader reads "
                    + FORMAT_VERSION + "); re-export the head");
        }
        for (String[] kt : REQUIRED) {
            if (!m.containsKey(kt[0])) {
                throw new HeadException(where + ": missing key '" + kt[0] + "'; re-export the head");
            }
            Object v = m.get(kt[0]);
            boolean ok;
            switch (kt[1]) {
                case "S": ok = v instanceof String; break;
                case "I": ok = v instanceof Long; break;
                case "B": ok = v instanceof Boolean; break;
                default: ok = v instanceof List;
            }
            if (!ok) {
                throw new HeadException(where + ": key '" + kt[0] + "' has the wrong type");
            }
        }
        if (!m.get("kind").equals("decoder") && !m.get("kind").equals("encoder")) {
            throw new HeadException(where + ": kind must be 'decoder' or 'encoder', got " + m.get("kind"));
        }
        List<String> wantInputs = INPUTS_BY_POOLING.get(m.get("pooling"));
        if (wantInputs == null) {
            throw new HeadException(where + ": pooling must be one of last_token, mean, response_mean, got "
                    + m.get("pooling") + " (a head from a newer edge-omd? upgrade)");
        }
        if (!wantInputs.equals(m.get("inputs"))) {
            throw new HeadException(where + ": pooling '" + m.get("pooling") + "' takes the graph inputs " + wantInputs
                    + ", the manifest lists " + m.get("inputs") + "; re-export the head");
        }
        if (!m.get("padding_side").equals("left") && !m.get("padding_side").equals("right")) {
            throw new HeadException(where + ": padding_side must be 'left' or 'right'");
        }
        long d = (Long) m.get("d"), maxLength = (Long) m.get("max_length");
        if (d <= 0 || maxLength < 2) {
            throw new HeadException(where + ": d and max_length must be positive (d=" + d + ", max_length=" + maxLength + ")");
        }
        String t = (String) m.get("template");
        int p = t.indexOf(TextEncoder.PROMPT_SLOT), r = t.indexOf(TextEncoder.RESPONSE_SLOT);
        if (count(t, TextEncoder.PROMPT_SLOT) != 1 || count(t, TextEncoder.RESPONSE_SLOT) != 1 || p > r) {
            throw new HeadException(where + ": template must contain {prompt} then {response} once each");
        }
        List<Object> graphs = Json.arr(m.get("graph_files"));
        if (graphs.isEmpty()) {
            throw new HeadException(where + ": graph_files must be a non-empty list of file names");
        }
        for (Object g : graphs) {
            if (!(g instanceof String)) {
                throw new HeadException(where + ": graph_files must be a non-empty list of file names");
            }
        }
        List<Object> names = new java.util.ArrayList<>(graphs);
        names.add(m.get("tokenizer_file"));
        for (Object nameO : names) {
            String name = (String) nameO;
            boolean abs = name.startsWith("/") || (name.length() > 2 && name.charAt(1) == ':' && name.charAt(2) == '\\');
            boolean up = false;
            for (String part : name.replace('\\', '/').split("/", -1)) {
                up |= part.equals("..");
            }
            if (abs || up) {
                throw new HeadException(where + ": file name '" + name + "' must be relative to the head folder");
            }
        }
        for (String key : new String[]{"graph_sha256", "fingerprint", "tokenizer_sha256"}) {
            if (!m.containsKey(key)) {
                continue;
            }
            Object v = m.get(key);
            if (!(v instanceof String) || hexLoose((String) v) == null) {
                throw new HeadException(where + ": " + key + " must be 64 hex characters");
            }
        }
        if ((Long) m.get("pad_token_id") < 0) {
            throw new HeadException(where + ": pad_token_id must be >= 0, got " + m.get("pad_token_id"));
        }
        Object ss = m.get("static_shape");
        if (ss != null) {
            boolean ok = ss instanceof List && Json.arr(ss).size() == 2;
            if (ok) {
                for (Object v : Json.arr(ss)) {
                    ok &= v instanceof Long && (Long) v > 0;
                }
            }
            if (!ok) {
                throw new HeadException(where + ": static_shape must be null or [batch, length]");
            }
            if ((Long) Json.arr(ss).get(1) != maxLength) {
                throw new HeadException(where + ": static_shape " + ss + " does not match max_length " + maxLength
                        + "; re-export the head");
            }
        }
        Object mp = m.get("max_positions");
        if (mp != null) {
            if (!(mp instanceof Long) || (Long) mp < 2) {
                throw new HeadException(where + ": max_positions must be null or an int >= 2, got " + mp);
            }
            if (maxLength > (Long) mp) {
                throw new HeadException(where + ": max_length " + maxLength + " exceeds the model's " + mp
                        + " positions; re-export with max_length <= " + mp);
            }
        }
        if (d > StateFormat.MAX_DIM || maxLength > Integer.MAX_VALUE) {
            throw new HeadException(where + ": d=" + d + " is beyond what a reward state can hold");
        }
        StyleBlock style = m.get("style") == null ? null : StyleBlock.fromManifest(m.get("style"), where);
        WordingView wording = m.get("wording") == null ? null : WordingView.fromManifest(m.get("wording"), where);
        long views = (style == null ? 0 : StyleBlock.K) + (wording == null ? 0 : wording.dim());
        if (d + views > StateFormat.MAX_DIM) {
            throw new HeadException(where + ": d plus the views' dimensions exceeds " + StateFormat.MAX_DIM
                    + "; re-export with fewer wording buckets");
        }
        return new HeadManifest(new LinkedHashMap<>(m), style, wording);
    }

    /** Python's bytes.fromhex(...) of length 32: hex digits, spaces allowed between bytes. */
    static byte[] hexLoose(String s) {
        String compact = s.replace(" ", "");
        if (compact.length() != s.length()) {
            return null;  // Python accepts spaces between bytes; no manifest writes them: refuse
        }
        return hex(compact);
    }

    private static int count(String s, String sub) {
        int n = 0;
        for (int i = s.indexOf(sub); i >= 0; i = s.indexOf(sub, i + sub.length())) {
            n++;
        }
        return n;
    }

    /** Graph inputs per pooling (edge_omd/head/manifest.py INPUTS_BY_POOLING): "response_mean"
     *  graphs take the response-span pool_mask (TextEncoder.Batch.pool) as a third input. */
    static final Map<String, List<String>> INPUTS_BY_POOLING = new LinkedHashMap<>();

    static {
        INPUTS_BY_POOLING.put("last_token", java.util.Arrays.asList("input_ids", "attention_mask"));
        INPUTS_BY_POOLING.put("mean", java.util.Arrays.asList("input_ids", "attention_mask"));
        INPUTS_BY_POOLING.put("response_mean", java.util.Arrays.asList("input_ids", "attention_mask", "pool_mask"));
    }

    /** Manifest keys that define the feature map (edge_omd/head/manifest.py FINGERPRINT_KEYS). */
    static final String[] FINGERPRINT_KEYS = {"architecture", "kind", "d", "pooling", "normalize", "dtype", "variant",
            "max_length", "template", "add_special_tokens", "pad_token_id", "static_shape", "inputs", "output"};
    static final String FINGERPRINT_SCHEME = "edge-omd-head-fingerprint/1";
    /** Views a head may append, in order (edge_omd/head/manifest.py VIEW_KEYS). */
    static final String[] VIEW_KEYS = {"style", "wording"};

    /**
     * Recompute the head fingerprint from the files in folder (SHA-256 of the graph files in
     * order, of tokenizer.json, and of the canonical JSON of the feature settings) and refuse a
     * head whose files or settings no longer match the manifest's (what Python's
     * FeatureHead.open checks): an edited tokenizer.json cannot keep the identity of the head
     * a reward state is bound to.
     */
    public void verify(Path folder) throws HeadException {
        byte[] graph = sha256Files(folder, graphFiles, "graph");
        byte[] tok = sha256Files(folder, new String[]{tokenizerFile}, "tokenizer");
        Map<String, Object> features = new java.util.TreeMap<>();
        for (String k : FINGERPRINT_KEYS) {
            features.put(k, raw.get(k));
        }
        for (String view : VIEW_KEYS) {   // only the views the head has (Python feature_settings)
            if (raw.get(view) != null) {
                features.put(view, raw.get(view));
            }
        }
        Map<String, Object> record = new java.util.TreeMap<>();
        record.put("scheme", FINGERPRINT_SCHEME);
        record.put("graph_sha256", toHex(graph));
        record.put("tokenizer_sha256", toHex(tok));
        record.put("features", features);
        byte[] fp;
        try {
            fp = java.security.MessageDigest.getInstance("SHA-256")
                    .digest(canonicalJson(record).getBytes(StandardCharsets.US_ASCII));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new HeadException("SHA-256 is not available", e);
        }
        if (!java.util.Arrays.equals(fp, fingerprint)) {
            throw new HeadException(folder + ": the head's files or feature settings do not match its fingerprint "
                    + "(edited or corrupt); re-export the head");
        }
    }

    private static byte[] sha256Files(Path folder, String[] names, String what) throws HeadException {
        try {
            java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            for (String name : names) {
                try (java.io.InputStream in = Files.newInputStream(folder.resolve(name))) {
                    for (int n; (n = in.read(buf)) > 0; ) {
                        md.update(buf, 0, n);
                    }
                }
            }
            return md.digest();
        } catch (IOException e) {
            throw new HeadException("feature head " + folder + ": cannot read " + what + " file (" + e + ")", e);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new HeadException("SHA-256 is not available", e);
        }
    }

    static String toHex(byte[] b) {
        StringBuilder s = new StringBuilder();
        for (byte x : b) {
            s.append(Character.forDigit((x >> 4) & 15, 16)).append(Character.forDigit(x & 15, 16));
        }
        return s.toString();
    }

    /** Python's json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True). */
    static String canonicalJson(Object o) {
        StringBuilder b = new StringBuilder();
        write(o, b);
        return b.toString();
    }

    private static void write(Object o, StringBuilder b) {
        if (o == null) {
            b.append("null");
        } else if (o instanceof Boolean) {
            b.append(((Boolean) o) ? "true" : "false");
        } else if (o instanceof Long || o instanceof Integer) {
            b.append(o);
        } else if (o instanceof Double) {
            throw new IllegalArgumentException("floats do not occur in the fingerprint's settings");
        } else if (o instanceof String) {
            String s = (String) o;
            b.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"': b.append("\\\""); break;
                    case '\\': b.append("\\\\"); break;
                    case '\n': b.append("\\n"); break;
                    case '\r': b.append("\\r"); break;
                    case '\t': b.append("\\t"); break;
                    case '\b': b.append("\\b"); break;
                    case '\f': b.append("\\f"); break;
                    default:
                        if (c < 0x20 || c > 0x7e) {
                            b.append(String.format("\\u%04x", (int) c));
                        } else {
                            b.append(c);
                        }
                }
            }
            b.append('"');
        } else if (o instanceof List) {
            b.append('[');
            List<?> l = (List<?>) o;
            for (int i = 0; i < l.size(); i++) {
                if (i > 0) {
                    b.append(',');
                }
                write(l.get(i), b);
            }
            b.append(']');
        } else if (o instanceof Map) {
            Map<?, ?> m = new java.util.TreeMap<>((Map<?, ?>) o);
            b.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                write(e.getKey(), b);
                b.append(':');
                write(e.getValue(), b);
            }
            b.append('}');
        } else {
            throw new IllegalArgumentException("cannot serialise " + o.getClass());
        }
    }

    /** The TextEncoder for this head's tokenizer.json in folder. */
    public TextEncoder textEncoder(Path folder) throws IOException {
        Tokenizer tok = Tokenizer.load(folder.resolve(tokenizerFile));
        return new TextEncoder(tok, template, maxLength, addSpecialTokens, padTokenId, paddingSide);
    }
}
