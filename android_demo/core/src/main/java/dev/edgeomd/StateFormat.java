package dev.edgeomd;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32;

/**
 * The versioned binary layout of one RewardModel state (docs/STATE_FORMAT.md; the Python sources
 * of truth are edge_omd/state_format.py HEADER_FIELDS and the solvers' specs). Everything
 * little-endian:
 *
 * <pre>
 * 0 magic "EDGEOMD\0" | 8 u16 version | 10 u8 solver | 11 u8 dtype | 12 u32 dim | 16 u32 rank
 * 20 u32 cg_steps | 24 u32 flags | 28 u32 reserved | 32 u64 t | 40 u64 lam_warmup | 48 u64 budget
 * 56 f64 eta | 64 f64 lam | 72 f64 radius | 80 f64 forget | 88 f64 cg_tol | 96 32B fingerprint
 * 128 u64 payload_len | 136 payload (the solver's arrays, C order) | end-4 u32 CRC-32
 * </pre>
 *
 * A new format version changes this class only: {@link #VERSION}, {@link #decodeHeader},
 * {@link #encodeHeader} and {@link #payloadSpec} (the model reads and writes through them).
 * Nothing is allocated from a header value before the header, the implied payload length and the
 * real length agree, so a corrupt or hostile header cannot make the reader allocate gigabytes.
 * Android: API 26+ (java.nio.file, java.util.zip.CRC32).
 */
public final class StateFormat {
    public static final int VERSION = 1;
    public static final int HEADER_BYTES = 136;
    public static final int CRC_BYTES = 4;
    public static final int MAX_DIM = 1 << 16;
    public static final long MAX_T = 1L << 62;
    public static final int FLAG_RADIUS = 1;
    public static final int FLAG_FINGERPRINT = 2;
    static final byte[] MAGIC = {'E', 'D', 'G', 'E', 'O', 'M', 'D', 0};
    /** Solver codes of the format; index = code. */
    public static final String[] SOLVER_NAMES = {null, "exact", "cg", "sketch", "diagonal"};
    /** Java arrays are int-indexed: the largest payload array this reader can hold. */
    static final long MAX_ARRAY = Integer.MAX_VALUE - 8;

    private StateFormat() {
    }

    /** The fixed header, as decoded (unsigned fields widened; u64 fields kept as raw longs). */
    public static final class Header {
        public int version = VERSION;
        public int solverCode;        // 1 exact, 2 cg, 3 sketch, 4 diagonal
        public int itemsize;          // 4 float32, 8 float64
        public int dim;
        public int rank;              // sketch rank ell, 0 otherwise
        public long cgSteps;          // u32
        public int flags;
        public long reserved;         // u32, written as read (Python ignores it)
        public long t;
        public long lamWarmup;        // u64, raw bits (a value >= 2^63 is negative here)
        public long budget;           // 0: unlimited
        public double eta, lam, radius, forget, cgTol;
        public byte[] fingerprint = new byte[32];
        public long payloadLen;

        public String solver() {
            return SOLVER_NAMES[solverCode];
        }

        public boolean hasRadius() {
            return (flags & FLAG_RADIUS) != 0;
        }

        public boolean hasFingerprint() {
            return (flags & FLAG_FINGERPRINT) != 0;
        }

        /** Total bytes of the file this header describes. */
        public long totalBytes() {
            return HEADER_BYTES + payloadLen + CRC_BYTES;
        }
    }

    /** One payload array: element count and itemsize (8 = float64 unless isInt). */
    public static final class ArraySpec {
        public final long count;
        public final int itemsize;
        public final boolean isInt;

        ArraySpec(long count, int itemsize, boolean isInt) {
            this.count = count;
            this.itemsize = itemsize;
            this.isInt = isInt;
        }
    }

    /**
     * The payload arrays of a solver, in file order: the twin of the Python solvers' specs
     * (edge_omd/solvers/&lt;solver&gt;.py SPEC, the source of truth). StateLayoutCheck compares the
     * two on the layout Python writes (tests/runtime/golden/state_layout.json).
     */
    public static ArraySpec[] payloadSpec(int solverCode, long d, int itemsize, long rank) {
        switch (solverCode) {
            case 1:
                return new ArraySpec[]{new ArraySpec(d, itemsize, false), new ArraySpec(d * d, itemsize, false),
                        new ArraySpec(d, 8, false)};
            case 2:
                return new ArraySpec[]{new ArraySpec(d, itemsize, false), new ArraySpec(d * d, itemsize, false)};
            case 3: {
                long m = 2 * rank;
                return new ArraySpec[]{new ArraySpec(d, itemsize, false), new ArraySpec(m * d, itemsize, false),
                        new ArraySpec(m * m, 8, false), new ArraySpec(1, 8, false), new ArraySpec(1, 8, true)};
            }
            default:
                return new ArraySpec[]{new ArraySpec(d, itemsize, false), new ArraySpec(d, itemsize, false)};
        }
    }

    static long specBytes(ArraySpec[] spec) {
        long n = 0;
        for (ArraySpec a : spec) {
            n += a.count * a.itemsize;
        }
        return n;
    }

    /** Validate the fixed header (the first 136 bytes of {@code head}). Allocates nothing sized by it. */
    public static Header decodeHeader(byte[] head, int length) throws StateFormatException {
        if (length < HEADER_BYTES) {
            throw new StateFormatException("state is truncated: " + length + " bytes, the header alone is "
                    + HEADER_BYTES);
        }
        ByteBuffer b = ByteBuffer.wrap(head, 0, HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < MAGIC.length; i++) {
            if (head[i] != MAGIC[i]) {
                throw new StateFormatException("not an edge-omd state (bad magic bytes)");
            }
        }
        Header h = new Header();
        h.version = Short.toUnsignedInt(b.getShort(8));
        if (h.version != VERSION) {
            throw new StateFormatException("state format version " + h.version
                    + " is not supported (this SDK reads " + VERSION + ")");
        }
        h.solverCode = Byte.toUnsignedInt(b.get(10));
        h.itemsize = Byte.toUnsignedInt(b.get(11));
        long dim = Integer.toUnsignedLong(b.getInt(12));
        long rank = Integer.toUnsignedLong(b.getInt(16));
        h.cgSteps = Integer.toUnsignedLong(b.getInt(20));
        long flags = Integer.toUnsignedLong(b.getInt(24));
        h.reserved = Integer.toUnsignedLong(b.getInt(28));
        h.t = b.getLong(32);
        h.lamWarmup = b.getLong(40);
        h.budget = b.getLong(48);
        h.eta = b.getDouble(56);
        h.lam = b.getDouble(64);
        h.radius = b.getDouble(72);
        h.forget = b.getDouble(80);
        h.cgTol = b.getDouble(88);
        System.arraycopy(head, 96, h.fingerprint, 0, 32);
        h.payloadLen = b.getLong(128);
        if (h.solverCode < 1 || h.solverCode > 4) {
            throw new StateFormatException("unknown solver code " + h.solverCode);
        }
        if (h.itemsize != 4 && h.itemsize != 8) {
            throw new StateFormatException("unknown dtype code " + h.itemsize);
        }
        if (dim < 1 || dim > MAX_DIM) {
            throw new StateFormatException("dim " + dim + " outside [1, " + MAX_DIM + "]");
        }
        boolean sketch = h.solverCode == 3;
        if (sketch && (rank < 1 || rank > dim)) {
            throw new StateFormatException("sketch rank " + rank + " outside [1, dim=" + dim + "]");
        }
        if (!sketch && rank != 0) {
            throw new StateFormatException("rank " + rank + " given for solver '" + SOLVER_NAMES[h.solverCode] + "'");
        }
        if (h.t < 0 || h.t > MAX_T) {  // u64 >= 2^63 reads negative
            throw new StateFormatException("update counter t=" + Long.toUnsignedString(h.t) + " is beyond " + MAX_T);
        }
        if ((flags & ~(long) (FLAG_RADIUS | FLAG_FINGERPRINT)) != 0) {
            throw new StateFormatException("unknown flags 0x" + Long.toHexString(flags));
        }
        h.dim = (int) dim;
        h.rank = (int) rank;
        h.flags = (int) flags;
        long expect = specBytes(payloadSpec(h.solverCode, dim, h.itemsize, rank));
        if (h.payloadLen != expect) {
            throw new StateFormatException("payload length " + Long.toUnsignedString(h.payloadLen)
                    + " does not match the header (" + expect + " bytes for " + h.solver() + ", d=" + dim + ")");
        }
        return h;
    }

    /** Write the fixed header into b[0, 136). */
    static void encodeHeader(Header h, ByteBuffer b) {
        for (int i = 0; i < MAGIC.length; i++) {
            b.put(i, MAGIC[i]);
        }
        b.putShort(8, (short) VERSION);
        b.put(10, (byte) h.solverCode);
        b.put(11, (byte) h.itemsize);
        b.putInt(12, h.dim);
        b.putInt(16, h.rank);
        b.putInt(20, (int) h.cgSteps);
        b.putInt(24, h.flags);
        b.putInt(28, (int) h.reserved);
        b.putLong(32, h.t);
        b.putLong(40, h.lamWarmup);
        b.putLong(48, h.budget);
        b.putDouble(56, h.eta);
        b.putDouble(64, h.lam);
        b.putDouble(72, h.hasRadius() ? h.radius : 0.0);
        b.putDouble(80, h.forget);
        b.putDouble(88, h.cgTol);
        for (int i = 0; i < 32; i++) {
            b.put(96 + i, h.hasFingerprint() ? h.fingerprint[i] : 0);
        }
        b.putLong(128, h.payloadLen);
    }

    /** Check total length and CRC of a whole state held in memory; returns its header. */
    public static Header checkWhole(byte[] data) throws StateFormatException {
        Header h = decodeHeader(data, data.length);
        if (data.length != h.totalBytes()) {
            throw new StateFormatException("state is " + data.length + " bytes, the header says " + h.totalBytes());
        }
        CRC32 crc = new CRC32();
        crc.update(data, 0, data.length - CRC_BYTES);
        long stored = Integer.toUnsignedLong(ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN)
                .getInt(data.length - CRC_BYTES));
        if (crc.getValue() != stored) {
            throw new StateFormatException("checksum mismatch: the state is corrupt");
        }
        if (h.totalBytes() > MAX_ARRAY) {
            throw new StateFormatException("state of " + h.totalBytes() + " bytes is too large for this reader");
        }
        return h;
    }

    /** Append the CRC-32 of data[0, n-4) into its last 4 bytes. */
    static void seal(byte[] data) {
        CRC32 crc = new CRC32();
        crc.update(data, 0, data.length - CRC_BYTES);
        ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).putInt(data.length - CRC_BYTES, (int) crc.getValue());
    }

    /**
     * Read a state file: the header is read and checked, and the file size compared with what
     * it implies, before the payload is read (an oversized header allocates nothing).
     */
    public static byte[] readFile(Path path) throws IOException {
        try (InputStream in = Files.newInputStream(path)) {
            byte[] head = new byte[HEADER_BYTES];
            int n = 0;
            while (n < HEADER_BYTES) {
                int r = in.read(head, n, HEADER_BYTES - n);
                if (r < 0) {
                    break;
                }
                n += r;
            }
            Header h = decodeHeader(head, n);
            long size = Files.size(path);
            if (size != h.totalBytes()) {
                throw new StateFormatException(path + ": file is " + size + " bytes, the header says " + h.totalBytes());
            }
            if (size > MAX_ARRAY) {
                throw new StateFormatException(path + ": state of " + size + " bytes is too large for this reader");
            }
            byte[] all = new byte[(int) size];
            System.arraycopy(head, 0, all, 0, HEADER_BYTES);
            int off = HEADER_BYTES;
            while (off < all.length) {
                int r = in.read(all, off, all.length - off);
                if (r < 0) {
                    throw new StateFormatException(path + ": file shrank while being read");
                }
                off += r;
            }
            return all;
        }
    }

    /**
     * Write {@code data} to {@code path} atomically: a temp file in the same folder, fsync,
     * rename over the target (the commit point), fsync of the folder where the platform allows.
     * An interrupted save leaves the previous file intact.
     */
    public static void writeFileAtomic(Path path, byte[] data) throws IOException {
        Path abs = path.toAbsolutePath();
        Path folder = abs.getParent();
        Path tmp = Files.createTempFile(folder, ".tmp-", ".eomd");
        boolean done = false;
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer buf = ByteBuffer.wrap(data);
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
                ch.force(true);
            }
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
            done = true;
        } finally {
            if (!done) {
                Files.deleteIfExists(tmp);
            }
        }
        try (FileChannel dir = FileChannel.open(folder, StandardOpenOption.READ)) {
            dir.force(true);
        } catch (IOException | UnsupportedOperationException e) {
            // platforms without directory fsync: the rename is still atomic
        }
    }
}
