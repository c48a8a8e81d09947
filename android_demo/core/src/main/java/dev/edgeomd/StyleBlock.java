package dev.edgeomd;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The optional style block of a feature head (edge_omd/head/style.py, the same definitions):
 * 12 answer-form features of the response over its Unicode code points (never UTF-16 units),
 * ASCII character classes only, standardised with the manifest's mean and sd and scaled by
 * weight / sqrt(12); appended to the graph's features. Golden-tested against Python
 * (TokenizerGoldenTests).
 */
public final class StyleBlock {
    public static final String[] FEATURES = {"log_codepoints", "log_words", "log_lines", "list_items", "headers",
            "code_blocks", "questions", "exclamations", "bold", "digit_ratio", "upper_ratio", "paragraphs"};
    public static final int VERSION = 1;
    public static final int K = FEATURES.length;

    public final double[] mean, sd;
    public final double weight;

    public StyleBlock(double[] mean, double[] sd, double weight) throws HeadException {
        boolean ok = mean.length == K && sd.length == K && Double.isFinite(weight) && weight > 0;
        for (int j = 0; ok && j < K; j++) {
            ok = Double.isFinite(mean[j]) && Double.isFinite(sd[j]) && sd[j] > 0;
        }
        if (!ok) {
            throw new HeadException("style block: mean and sd must be " + K + " finite numbers (sd > 0) and weight "
                    + "a positive number; re-export the head");
        }
        this.mean = mean.clone();
        this.sd = sd.clone();
        this.weight = weight;
    }

    static boolean isSpace(int c) {
        return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680
                || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F
                || c == 0x3000;
    }

    /** Non-overlapping occurrences of the ASCII pattern p in cps, from the left (Python str.count). */
    private static int count(int[] cps, String p) {
        int n = 0;
        for (int i = 0; i + p.length() <= cps.length; ) {
            boolean hit = true;
            for (int k = 0; k < p.length() && hit; k++) {
                hit = cps[i + k] == p.charAt(k);
            }
            if (hit) {
                n++;
                i += p.length();
            } else {
                i++;
            }
        }
        return n;
    }

    private static boolean listItem(int[] line) {
        int i = 0;
        while (i < line.length && isSpace(line[i])) {
            i++;
        }
        if (i + 1 < line.length && (line[i] == '-' || line[i] == '*' || line[i] == '+') && line[i + 1] == ' ') {
            return true;
        }
        int j = i;
        while (j < line.length && line[j] >= '0' && line[j] <= '9') {
            j++;
        }
        return j > i && j + 1 < line.length && (line[j] == '.' || line[j] == ')') && line[j + 1] == ' ';
    }

    /** The 12 raw features of one response. */
    public static double[] raw(String text) {
        int[] cps = text.codePoints().toArray();
        int n = cps.length, words = 0, digits = 0, upper = 0, letters = 0;
        boolean inWord = false;
        for (int c : cps) {
            boolean sp = isSpace(c);
            if (!sp && !inWord) {
                words++;
            }
            inWord = !sp;
            if (c >= '0' && c <= '9') {
                digits++;
            } else if (c >= 'A' && c <= 'Z') {
                upper++;
                letters++;
            } else if (c >= 'a' && c <= 'z') {
                letters++;
            }
        }
        int full = 0, lists = 0, headers = 0, paragraphs = 0;
        boolean prevFull = false;
        int start = 0;
        for (int i = 0; i <= n; i++) {
            if (i < n && cps[i] != '\n') {
                continue;
            }
            int[] line = Arrays.copyOfRange(cps, start, i);
            start = i + 1;
            int f = 0;
            while (f < line.length && isSpace(line[f])) {
                f++;
            }
            boolean isFull = f < line.length;
            if (isFull) {
                full++;
                if (!prevFull) {
                    paragraphs++;
                }
                if (line[f] == '#') {
                    headers++;
                }
            }
            prevFull = isFull;
            if (listItem(line)) {
                lists++;
            }
        }
        return new double[]{Math.log1p(n), Math.log1p(words), Math.log1p(full), Math.log1p(lists),
                Math.log1p(headers), Math.log1p(count(cps, "```") / 2), Math.log1p(count(cps, "?")),
                Math.log1p(count(cps, "!")), Math.log1p(count(cps, "**") / 2),
                digits / (double) Math.max(1, n), upper / (double) Math.max(1, letters), Math.log1p(paragraphs)};
    }

    /** The standardised, scaled block of one response. */
    public double[] apply(String response) {
        double[] x = raw(response);
        double s = weight / Math.sqrt(K);
        for (int j = 0; j < K; j++) {
            x[j] = (x[j] - mean[j]) / sd[j] * s;
        }
        return x;
    }

    /** Each row of phi (graph features) followed by the block of pairs[i][1] (the response). */
    public double[][] append(double[][] phi, List<String[]> pairs) {
        double[][] out = new double[phi.length][];
        for (int i = 0; i < phi.length; i++) {
            double[] b = apply(pairs.get(i)[1]);
            out[i] = Arrays.copyOf(phi[i], phi[i].length + K);
            for (int j = 0; j < K; j++) {
                out[i][phi[i].length + j] = (float) b[j];   // float32, as Python's head returns
            }
        }
        return out;
    }

    /** Python's StyleBlock.from_manifest, rule for rule. */
    public static StyleBlock fromManifest(Object o, String where) throws HeadException {
        String bad = where + ": style must be {version: " + VERSION + ", features: [...], mean, sd, weight} (a head "
                + "from another edge-omd version? re-export it)";
        if (!(o instanceof Map)) {
            throw new HeadException(bad);
        }
        Map<String, Object> m = Json.obj(o);
        Object v = m.get("version");
        if (!(v instanceof Long) || (Long) v != VERSION || !Arrays.asList((Object[]) FEATURES).equals(m.get("features"))) {
            throw new HeadException(bad);
        }
        try {
            return new StyleBlock(numbers(m.get("mean")), numbers(m.get("sd")), number(m.get("weight")));
        } catch (ClassCastException | IllegalArgumentException | NullPointerException e) {
            throw new HeadException(where + ": style mean, sd and weight must be decimal strings", e);
        }
    }

    private static double number(Object o) {
        if (!(o instanceof String)) {
            throw new ClassCastException("not a string");
        }
        return Double.parseDouble((String) o);
    }

    private static double[] numbers(Object o) {
        List<Object> l = Json.arr(o);
        double[] out = new double[l.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = number(l.get(i));
        }
        return out;
    }
}
