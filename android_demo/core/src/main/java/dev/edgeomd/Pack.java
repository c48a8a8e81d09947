package dev.edgeomd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * A population pack (edge_omd/population/pack.py, docs/FORMATS.md "Population pack"): where a
 * new user starts, theta = theta0, cal_H_0 = (lam + c) I + sign V^T V. Read-only: packs are
 * fitted on a laptop or server (`edge-omd population fit`) and shipped to the phone as files
 * "EOMDPOP1", u32 header length, header JSON, theta0 f64[d], V f64[K d], CRC-32. Every check of
 * Python's reader, in its order; any refusal is a StateFormatException and nothing is built.
 * {@link #digest} is SHA-256 of the file's bytes: a UserStore record keeps it, so the phone
 * knows which pack a user learned against.
 *
 * <pre>
 *   Pack pack = Pack.load(path);
 *   RewardModel m = new RewardModel(config, pack);   // starts (and resets) at the pack
 * </pre>
 */
public final class Pack {
    static final byte[] MAGIC = "EOMDPOP1".getBytes(StandardCharsets.US_ASCII);
    public static final int VERSION = 1, MAX_K = 1024, MAX_PACK_ID = 128;
    static final int MAX_JSON_HEADER = 1 << 16;
    private static final double SIGN_TOL = 1e-9;

    public final String packId;
    public final int dim, k;
    public final double lam, c, sign;
    private final double[] theta0;
    private final double[][] V;
    private final byte[] fingerprint, digest;

    private Pack(String packId, int dim, int k, double lam, double c, double sign, double[] theta0,
                 double[][] V, byte[] fingerprint, byte[] digest) {
        this.packId = packId;
        this.dim = dim;
        this.k = k;
        this.lam = lam;
        this.c = c;
        this.sign = sign;
        this.theta0 = theta0;
        this.V = V;
        this.fingerprint = fingerprint;
        this.digest = digest;
    }

    /** theta_pop (a copy). */
    public double[] theta0() {
        return theta0.clone();
    }

    /** The K directions' rows (copies). */
    public double[][] V() {
        double[][] out = new double[k][];
        for (int i = 0; i < k; i++) {
            out[i] = V[i].clone();
        }
        return out;
    }

    /** The head the pack was fitted on (32 bytes), or null. */
    public byte[] fingerprint() {
        return fingerprint == null ? null : fingerprint.clone();
    }

    /** SHA-256 of the pack's bytes (what Python's Pack.digest and the store record hold). */
    public byte[] digest() {
        return digest.clone();
    }

    /** Read a pack file (header and size checked against the file before the body is used). */
    public static Pack load(Path path) throws IOException {
        long size = Files.size(path);
        long limit = MAGIC.length + 8L + MAX_JSON_HEADER + 8L * StateFormat.MAX_DIM * (MAX_K + 1);
        if (size > limit) {
            throw new StateFormatException(path + " is not a population pack (" + size + " bytes)");
        }
        return fromBytes(Files.readAllBytes(path));
    }

    public static Pack fromBytes(byte[] buf) throws StateFormatException {
        String what = "the population pack", fix = "; write it again with `edge-omd population fit` or Pack.save";
        int m = MAGIC.length;
        if (buf.length < m + 8 || !java.util.Arrays.equals(java.util.Arrays.copyOf(buf, m), MAGIC)) {
            throw new StateFormatException(what + " is not an edge-omd file of this kind (bad magic)" + fix);
        }
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
        CRC32 crc = new CRC32();
        crc.update(buf, 0, buf.length - 4);
        if (crc.getValue() != Integer.toUnsignedLong(b.getInt(buf.length - 4))) {
            throw new StateFormatException(what + " is corrupt (checksum mismatch)" + fix);
        }
        long hlen = Integer.toUnsignedLong(b.getInt(m));
        int start = m + 4;
        if (hlen > MAX_JSON_HEADER || start + hlen > buf.length - 4) {
            throw new StateFormatException(what + " is corrupt (header length " + hlen + ")" + fix);
        }
        String w = "the population pack's header";
        Map<String, Object> h;
        try {
            h = Json.obj(Json.parse(new String(buf, start, (int) hlen, StandardCharsets.UTF_8)));
        } catch (IllegalArgumentException | ClassCastException e) {
            throw new StateFormatException(what + " is corrupt (header: " + e.getMessage() + ")" + fix);
        }
        long version = intField(h, "format_version", 0, (1L << 31) - 1, w);
        if (version != VERSION) {
            throw new StateFormatException(w + ": format_version " + version + " is not " + VERSION
                    + "; upgrade edge-omd" + fix);
        }
        Object id = h.get("pack_id");
        if (!(id instanceof String) || ((String) id).codePointCount(0, ((String) id).length()) > MAX_PACK_ID) {
            throw new StateFormatException(w + ": field 'pack_id' must be a string");
        }
        int d = (int) intField(h, "dim", 1, StateFormat.MAX_DIM, w);
        int k = (int) intField(h, "k", 0, Math.min(d, MAX_K), w);
        double lam = realField(h, "lam", w), c = realField(h, "c", w), sign = realField(h, "sign", w);
        if (!(lam >= RewardModel.MIN_LAM && lam <= RewardModel.MAX_LAM) || c < 0 || (sign != -1.0 && sign != 1.0)) {
            throw new StateFormatException(w + ": lam must be in [" + RewardModel.MIN_LAM + ", " + RewardModel.MAX_LAM
                    + "], c >= 0, sign -1 or 1, got " + lam + ", " + c + ", " + sign + fix);
        }
        if (!h.containsKey("head_fingerprint")) {
            throw new StateFormatException(w + ": field 'head_fingerprint' is missing" + fix);
        }
        byte[] fp = null;
        Object fph = h.get("head_fingerprint");
        if (fph != null) {
            fp = hexField(fph, 32, "head_fingerprint", w);
        }
        if (!(h.get("fit") instanceof Map)) {
            throw new StateFormatException(w + ": field 'fit' must be an object");
        }
        long body = buf.length - 4 - (start + hlen);
        if (body != 8L * d * (k + 1)) {
            throw new StateFormatException(what + " is corrupt: its body is " + body + " bytes, the header (d=" + d
                    + ", k=" + k + ") says " + 8L * d * (k + 1) + fix);
        }
        b.position(start + (int) hlen);
        double[] theta0 = new double[d];
        double[][] V = new double[k][d];
        for (int i = 0; i < d; i++) {
            theta0[i] = b.getDouble();
        }
        for (double[] row : V) {
            for (int j = 0; j < d; j++) {
                row[j] = b.getDouble();
            }
        }
        for (double x : theta0) {
            finite(x, what, fix);
        }
        for (double[] row : V) {
            for (double x : row) {
                finite(x, what, fix);
            }
        }
        if (sign < 0 && k > 0) {
            double top = PackStart.lowRankExtremes(V, d)[0];
            if (!(top <= c * (1.0 + SIGN_TOL))) {
                throw new StateFormatException(what + " is inconsistent: V V^T has an eigenvalue " + top
                        + " above c = " + c + fix);
            }
        }
        byte[] digest;
        try {
            digest = MessageDigest.getInstance("SHA-256").digest(buf);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is not available", e);
        }
        return new Pack((String) id, d, k, lam, c, sign, theta0, V, fp, digest);
    }

    private static void finite(double x, String what, String fix) throws StateFormatException {
        if (!Double.isFinite(x)) {
            throw new StateFormatException(what + " holds NaN or inf" + fix);
        }
    }

    private static long intField(Map<String, Object> h, String key, long lo, long hi, String w)
            throws StateFormatException {
        Object v = h.get(key);
        if (!(v instanceof Long) || (Long) v < lo || (Long) v > hi) {
            throw new StateFormatException(w + ": field '" + key + "' must be an integer in [" + lo + ", " + hi + "]");
        }
        return (Long) v;
    }

    private static double realField(Map<String, Object> h, String key, String w) throws StateFormatException {
        Object v = h.get(key);
        if (!(v instanceof Number) || !Double.isFinite(((Number) v).doubleValue())) {
            throw new StateFormatException(w + ": field '" + key + "' must be a finite number");
        }
        return ((Number) v).doubleValue();
    }

    static byte[] hexField(Object v, int n, String key, String w) throws StateFormatException {
        if (!(v instanceof String) || ((String) v).length() != 2 * n) {
            throw new StateFormatException(w + ": field '" + key + "' must be " + n + " bytes in hex");
        }
        String s = (String) v;
        byte[] out = new byte[n];
        for (int i = 0; i < n; i++) {
            char a = s.charAt(2 * i), z = s.charAt(2 * i + 1);
            int hi = a < 128 ? Character.digit(a, 16) : -1, lo = z < 128 ? Character.digit(z, 16) : -1;
            if (hi < 0 || lo < 0) {
                throw new StateFormatException(w + ": field '" + key + "' is not hex");
            }
            out[i] = (byte) (hi * 16 + lo);
        }
        return out;
    }
}
