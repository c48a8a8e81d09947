package dev.edgeomd;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The wording view of a feature head (edge_omd/head/wording.py, the same definitions): a hashed
 * lexical view of the response in D = 2^bits buckets, bit for bit what Python computes.
 * Tokens over the response's code points ({@link String#codePoints()}: surrogate pairs joined,
 * lone surrogates kept): runs of ASCII letters folded to a-z, runs of ASCII digits as "0",
 * tab / line tabulation / form feed / carriage return / space separate, every other code point
 * is a token. Unigrams (and bigrams when ngrams = 2) hashed by MurmurHash3_x86_32 over 32-bit
 * words (unigram: its code points, seed 1; bigram: the two unigram hashes, seed 2); bucket =
 * low bits, sign = bit 31; integer counts; log1p (StrictMath, fdlibm) / binary / raw; divided by
 * the L2 norm summed over buckets in ascending order, times scale. Golden-tested against
 * Python (WordingGoldenTests).
 */
public final class WordingView {
    public static final int VERSION = 1;
    public static final String HASH = "murmur3_x86_32";
    public static final int MAX_BITS = 24;
    public static final List<String> TRANSFORMS = Arrays.asList("log1p", "binary", "raw");

    public final int bits, ngrams;
    public final String transform;
    public final double scale;

    public WordingView(int bits, int ngrams, String transform, double scale) throws HeadException {
        if (bits < 1 || bits > MAX_BITS) {
            throw new HeadException("wording view: bits must be an int in [1, " + MAX_BITS + "], got " + bits);
        }
        if (ngrams != 1 && ngrams != 2) {
            throw new HeadException("wording view: ngrams must be 1 or 2, got " + ngrams);
        }
        if (!TRANSFORMS.contains(transform)) {
            throw new HeadException("wording view: transform must be one of log1p, binary, raw, got " + transform);
        }
        if (!(Double.isFinite(scale) && scale > 0)) {
            throw new HeadException("wording view: scale must be a positive finite number, got " + scale);
        }
        this.bits = bits;
        this.ngrams = ngrams;
        this.transform = transform;
        this.scale = scale;
    }

    public int dim() {
        return 1 << bits;
    }

    /** MurmurHash3_x86_32 of 32-bit words (each one block), as an int (bit 31 = sign). */
    static int murmur3(int[] words, int n, int seed) {
        int h = seed;
        for (int i = 0; i < n; i++) {
            int k = words[i] * 0xcc9e2d51;
            k = Integer.rotateLeft(k, 15) * 0x1b873593;
            h ^= k;
            h = Integer.rotateLeft(h, 13) * 5 + 0xe6546b64;
        }
        h ^= 4 * n;
        h ^= h >>> 16;
        h *= 0x85ebca6b;
        h ^= h >>> 13;
        h *= 0xc2b2ae35;
        return h ^ (h >>> 16);
    }

    private static boolean letter(int c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    }

    private static boolean digit(int c) {
        return c >= '0' && c <= '9';
    }

    private static boolean separator(int c) {
        return c == 0x09 || c == 0x0B || c == 0x0C || c == 0x0D || c == 0x20;
    }

    /** The unigram hash of every token of the text, left to right. */
    static int[] tokenHashes(String text) {
        int[] cps = text.codePoints().toArray();
        int[] out = new int[cps.length];
        int[] buf = new int[cps.length];
        int n = 0;
        for (int i = 0; i < cps.length; ) {
            int c = cps[i];
            if (letter(c)) {
                int len = 0;
                while (i < cps.length && letter(cps[i])) {
                    int x = cps[i++];
                    buf[len++] = x <= 'Z' ? x + 32 : x;
                }
                out[n++] = murmur3(buf, len, 1);
            } else if (digit(c)) {
                while (i < cps.length && digit(cps[i])) {
                    i++;
                }
                buf[0] = '0';
                out[n++] = murmur3(buf, 1, 1);
            } else {
                i++;
                if (!separator(c)) {
                    buf[0] = c;
                    out[n++] = murmur3(buf, 1, 1);
                }
            }
        }
        return Arrays.copyOf(out, n);
    }

    /** The signed integer count of every bucket. */
    public long[] counts(String text) {
        int[] h1 = tokenHashes(text);
        long[] c = new long[dim()];
        int mask = dim() - 1;
        for (int h : h1) {
            c[h & mask] += h < 0 ? -1 : 1;
        }
        if (ngrams == 2) {
            int[] pair = new int[2];
            for (int i = 0; i + 1 < h1.length; i++) {
                pair[0] = h1[i];
                pair[1] = h1[i + 1];
                int h = murmur3(pair, 2, 2);
                c[h & mask] += h < 0 ? -1 : 1;
            }
        }
        return c;
    }

    /** The view of one response, float64. */
    public double[] apply(String response) {
        long[] c = counts(response);
        double[] v = new double[c.length];
        double ss = 0;
        for (int j = 0; j < c.length; j++) {
            if (c[j] == 0) {
                continue;
            }
            double x;
            if (transform.equals("raw")) {
                x = c[j];
            } else if (transform.equals("binary")) {
                x = c[j] > 0 ? 1.0 : -1.0;
            } else {
                x = Math.copySign(StrictMath.log1p((double) Math.abs(c[j])), (double) c[j]);
            }
            v[j] = x;
            ss += x * x;
        }
        if (ss == 0) {
            return v;
        }
        double norm = Math.sqrt(ss);
        for (int j = 0; j < v.length; j++) {
            if (v[j] != 0) {
                v[j] = v[j] / norm * scale;
            }
        }
        return v;
    }

    /** Each row of phi followed by the view of pairs[i][1] (the response), as float32. */
    public double[][] append(double[][] phi, List<String[]> pairs) {
        double[][] out = new double[phi.length][];
        for (int i = 0; i < phi.length; i++) {
            double[] b = apply(pairs.get(i)[1]);
            out[i] = Arrays.copyOf(phi[i], phi[i].length + b.length);
            for (int j = 0; j < b.length; j++) {
                out[i][phi[i].length + j] = (float) b[j];   // float32, as Python's head returns
            }
        }
        return out;
    }

    /** Python's WordingView.from_manifest, rule for rule. */
    public static WordingView fromManifest(Object o, String where) throws HeadException {
        String bad = where + ": wording must be {version: " + VERSION + ", hash: '" + HASH + "', bits, ngrams, "
                + "transform, scale} (a head from another edge-omd version? re-export it)";
        if (!(o instanceof Map)) {
            throw new HeadException(bad);
        }
        Map<String, Object> m = Json.obj(o);
        List<String> keys = new ArrayList<>(m.keySet());
        keys.sort(null);
        Object v = m.get("version");
        if (!keys.equals(Arrays.asList("bits", "hash", "ngrams", "scale", "transform", "version"))
                || !(v instanceof Long) || (Long) v != VERSION || !HASH.equals(m.get("hash"))) {
            throw new HeadException(bad);
        }
        Object sc = m.get("scale"), b = m.get("bits"), n = m.get("ngrams"), t = m.get("transform");
        if (!(sc instanceof String) || !((String) sc).matches("[0-9]+(\\.[0-9]+)?(e[-+]?[0-9]+)?")) {
            throw new HeadException(where + ": wording scale must be a decimal string like '0.5', got " + sc);
        }
        if (!(b instanceof Long) || !(n instanceof Long) || !(t instanceof String)) {
            throw new HeadException(where + ": wording bits and ngrams must be integers and transform a string");
        }
        long bl = (Long) b, nl = (Long) n;
        if (bl < 1 || bl > MAX_BITS || nl < 1 || nl > 2) {   // the constructor's messages, without an int overflow
            throw new HeadException(where + ": wording view: bits must be an int in [1, " + MAX_BITS
                    + "] and ngrams 1 or 2, got " + bl + " and " + nl);
        }
        try {
            return new WordingView((int) bl, (int) nl, (String) t, Double.parseDouble((String) sc));
        } catch (HeadException e) {
            throw new HeadException(where + ": " + e.getMessage(), e);
        }
    }
}
