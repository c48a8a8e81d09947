package dev.edgeomd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.CRC32;

/**
 * Reads an edge-omd RewardModel state (format version 1, docs/STATE_FORMAT.md) and scores
 * features with it: r(phi) = theta . phi. Plain Java 8+ (java.nio, java.util.zip), no Android
 * dependency, so the same class runs on a phone and in a JVM test.
 *
 * Every check the Python loader makes is made here too, before anything is allocated:
 * magic, version, codes, dim, the payload length the header implies, the file length, CRC-32.
 */
public final class RewardState {
    public static final int HEADER_BYTES = 136;
    public static final int VERSION = 1;
    private static final byte[] MAGIC = {'E', 'D', 'G', 'E', 'O', 'M', 'D', 0};
    private static final String[] SOLVERS = {null, "exact", "cg", "sketch", "diagonal"};
    private static final int MAX_DIM = 1 << 16;

    public final String solver;
    public final int dim;
    public final int rank;
    public final long t;
    public final double eta;
    public final double lam;
    public final byte[] fingerprint;  // 32 bytes, or null when unset
    private final double[] theta;

    private RewardState(String solver, int dim, int rank, long t, double eta, double lam,
                        byte[] fingerprint, double[] theta) {
        this.solver = solver;
        this.dim = dim;
        this.rank = rank;
        this.t = t;
        this.eta = eta;
        this.lam = lam;
        this.fingerprint = fingerprint;
        this.theta = theta;
    }

    /** Thrown for any malformed, truncated, corrupt or unsupported state. */
    public static final class StateFormatException extends IOException {
        public StateFormatException(String message) {
            super(message);
        }
    }

    public static RewardState read(Path path) throws IOException {
        return parse(Files.readAllBytes(path));
    }

    public static RewardState parse(byte[] data) throws StateFormatException {
        if (data.length < HEADER_BYTES + 4) {
            throw new StateFormatException("state is truncated: " + data.length + " bytes");
        }
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < MAGIC.length; i++) {
            if (data[i] != MAGIC[i]) {
                throw new StateFormatException("not an edge-omd state (bad magic bytes)");
            }
        }
        int version = Short.toUnsignedInt(b.getShort(8));
        if (version != VERSION) {
            throw new StateFormatException("state format version " + version + " is not supported");
        }
        int code = Byte.toUnsignedInt(b.get(10));
        int itemsize = Byte.toUnsignedInt(b.get(11));
        long dimL = Integer.toUnsignedLong(b.getInt(12));
        long rankL = Integer.toUnsignedLong(b.getInt(16));
        int flags = b.getInt(24);
        if (code < 1 || code > 4) {
            throw new StateFormatException("unknown solver code " + code);
        }
        if (itemsize != 4 && itemsize != 8) {
            throw new StateFormatException("unknown dtype code " + itemsize);
        }
        if (dimL < 1 || dimL > MAX_DIM) {
            throw new StateFormatException("dim " + dimL + " out of range");
        }
        String solver = SOLVERS[code];
        int dim = (int) dimL;
        if ("sketch".equals(solver) ? (rankL < 1 || rankL > dim) : rankL != 0) {
            throw new StateFormatException("rank " + rankL + " invalid for " + solver);
        }
        if ((flags & ~3) != 0) {
            throw new StateFormatException("unknown flags " + flags);
        }
        int rank = (int) rankL;
        long expected = payloadBytes(solver, dim, itemsize, rank);
        long payloadLen = b.getLong(128);
        if (payloadLen != expected) {
            throw new StateFormatException("payload length " + payloadLen + " does not match the header (" + expected + ")");
        }
        if (data.length != HEADER_BYTES + expected + 4) {
            throw new StateFormatException("state is " + data.length + " bytes, the header says " + (HEADER_BYTES + expected + 4));
        }
        CRC32 crc = new CRC32();
        crc.update(data, 0, data.length - 4);
        long stored = Integer.toUnsignedLong(b.getInt(data.length - 4));
        if (crc.getValue() != stored) {
            throw new StateFormatException("checksum mismatch: the state is corrupt");
        }
        double[] theta = new double[dim];
        for (int i = 0; i < dim; i++) {
            int off = HEADER_BYTES + i * itemsize;
            theta[i] = itemsize == 4 ? b.getFloat(off) : b.getDouble(off);
            if (!Double.isFinite(theta[i])) {
                throw new StateFormatException("state holds non-finite values");
            }
        }
        byte[] fp = null;
        if ((flags & 2) != 0) {
            fp = new byte[32];
            System.arraycopy(data, 96, fp, 0, 32);
        }
        return new RewardState(solver, dim, rank, b.getLong(32), b.getDouble(56), b.getDouble(64), fp, theta);
    }

    static long payloadBytes(String solver, long d, int itemsize, long rank) {
        switch (solver) {
            case "exact":
                return (d + d * d) * itemsize + d * 8;
            case "cg":
                return (d + d * d) * itemsize;
            case "sketch":
                long m = 2 * rank;
                return (d + m * d) * itemsize + (m * m + 2) * 8;
            default:
                return 2 * d * itemsize;
        }
    }

    /** theta (a copy). */
    public double[] theta() {
        return theta.clone();
    }

    /** r(phi) = theta . phi for one feature vector of length dim. */
    public double reward(float[] phi) {
        if (phi.length != dim) {
            throw new IllegalArgumentException("phi has length " + phi.length + ", the state has dim " + dim);
        }
        double acc = 0.0;
        for (int i = 0; i < dim; i++) {
            acc += theta[i] * phi[i];
        }
        return acc;
    }
}
