package dev.edgeomd;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32;

/**
 * Journal records (format version 1, edge_omd/store/journal.py): one committed observation each, so a
 * user's state is a checkpoint (the RewardModel's bytes) plus the records learned since, and
 * recovery = load the checkpoint, then {@link #apply} every record in order. Little-endian:
 *
 * <pre>
 * 0 magic "EOJR" | 4 u32 length (whole record) | 8 u16 version | 10 u8 kind | 11 u8 itemsize
 * 12 u32 dim | 16 u32 k (vectors) | 20 u32 flags | 24 u64 epoch | 32 u64 seq | 40 f64 label
 * 48 f64 weight | 56 f64 time | 64 k*d*itemsize vectors | end-4 u32 CRC-32 of every byte before it
 * </pre>
 * Kind 1: a GLM observation (k = 1, label y in [0, 1], the vector z as the model used it); kind 2:
 * a choice among k vectors (2 <= k <= 16, label = the chosen index, the candidates as the model
 * used them: RewardModel.choiceInput), what Python's Personalizer.choose and
 * {@link UserStore#learnChoice} append. A reader stops at the first record that fails a check;
 * nothing after it is applied. A complete, checksummed record of a newer record version, or of version 1 with a kind or flags
 * no edge-omd reader knows today, was written by a NEWER edge-omd (docs/JOURNAL_FORMAT.md,
 * "Forward compatibility"): the reader stops there with {@link Parsed#newer} set and UserStore
 * refuses the user (upgrade), never cuts it. Every version keeps bytes 0-9 (magic, u32 length,
 * u16 version) and the trailing CRC-32; nothing else is assumed of a newer version.
 */
public final class Journal {
    public static final int VERSION = 1;
    public static final int KIND_GLM = 1, KIND_CHOICE = 2;
    public static final int HEADER_BYTES = 64, CRC_BYTES = 4;
    /** magic, u32 length, u16 version: the same in every record version. */
    public static final int FRAME_BYTES = 10;
    public static final int MAX_K = 1024;
    /** Candidates of one kind-2 record (edge_omd/solvers/mnl.py MAX_K). */
    public static final int MAX_CHOICE_K = 16;
    public static final long MAX_SEQ = 1L << 62;
    static final byte[] MAGIC = {'E', 'O', 'J', 'R'};

    private Journal() {
    }

    /** One decoded record; vectors (k rows of d) hold the stored values (float-exact for itemsize 4). */
    public static final class Record {
        public final int kind, itemsize;
        public final long epoch, seq;
        /** y (kind 1) or the chosen index (kind 2). */
        public final double label, weight, time;
        public final double[][] vectors;
        /** The first vector: a kind-1 record's observation z. */
        public final double[] z;

        Record(int kind, int itemsize, long epoch, long seq, double label, double weight, double time,
               double[][] vectors) {
            this.kind = kind;
            this.itemsize = itemsize;
            this.epoch = epoch;
            this.seq = seq;
            this.label = label;
            this.weight = weight;
            this.time = time;
            this.vectors = vectors;
            this.z = vectors[0];
        }
    }

    public static long recordSize(long dim, int itemsize, long k) {
        return HEADER_BYTES + k * dim * itemsize + CRC_BYTES;
    }

    /** One kind-1 record of z (already in the state's dtype: {@link RewardModel#observation()}). */
    public static byte[] encode(long epoch, long seq, double[] z, int itemsize, double label, double weight,
                                double when) {
        return encode(KIND_GLM, epoch, seq, new double[][]{z}, itemsize, label, weight, when);
    }

    /** One kind-2 record: the k candidates as the model used them ({@link RewardModel#choiceInput})
     * and the chosen index. */
    public static byte[] encodeChoice(long epoch, long seq, double[][] candidates, int itemsize, int chosen,
                                      double weight, double when) {
        if (candidates.length < 2 || candidates.length > MAX_CHOICE_K || chosen < 0 || chosen >= candidates.length) {
            throw new InvalidInputException("a kind-2 (choice) record holds 2 to " + MAX_CHOICE_K
                    + " vectors and the chosen index, got k=" + candidates.length + ", chosen=" + chosen);
        }
        return encode(KIND_CHOICE, epoch, seq, candidates, itemsize, chosen, weight, when);
    }

    private static byte[] encode(int kind, long epoch, long seq, double[][] vectors, int itemsize, double label,
                                 double weight, double when) {
        if (itemsize != 4 && itemsize != 8) {
            throw new InvalidInputException("itemsize must be 4 or 8, got " + itemsize);
        }
        int dim = vectors[0].length;
        for (double[] v : vectors) {
            if (v.length != dim) {
                throw new InvalidInputException("journal vectors must all have length " + dim);
            }
        }
        int n = (int) recordSize(dim, itemsize, vectors.length);
        byte[] out = new byte[n];
        ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC).putInt(n).putShort((short) VERSION).put((byte) kind).put((byte) itemsize)
                .putInt(dim).putInt(vectors.length).putInt(0).putLong(epoch).putLong(seq)
                .putDouble(label).putDouble(weight).putDouble(when);
        for (double[] vec : vectors) {
            for (double v : vec) {
                if (itemsize == 4) {
                    b.putFloat((float) v);
                } else {
                    b.putDouble(v);
                }
            }
        }
        CRC32 crc = new CRC32();
        crc.update(out, 0, n - CRC_BYTES);
        b.putInt(n - CRC_BYTES, (int) crc.getValue());
        return out;
    }

    /** The outcome of checking one record: the record and the next offset, or why it is refused. */
    public static final class Check {
        public final Record record;
        public final int next;
        public final String reason;
        /** A complete, checksummed record of a newer edge-omd (newer version, unknown kind/flags). */
        public final boolean newer;
        /** Version-1 header of a newer record (sequence rules apply); else false. */
        final boolean v1;
        final long epoch, seq;

        Check(Record record, int next, String reason) {
            this(record, next, reason, false, false, 0, 0);
        }

        Check(Record record, int next, String reason, boolean newer, boolean v1, long epoch, long seq) {
            this.record = record;
            this.next = next;
            this.reason = reason;
            this.newer = newer;
            this.v1 = v1;
            this.epoch = epoch;
            this.seq = seq;
        }
    }

    /** A Check with newer set if the record at off is complete and intact but of a version, kind or
     * flags no reader of this format version knows (edge_omd/store/journal.py _newer); null otherwise. */
    static Check newer(byte[] buf, int off, long left) {
        if (left < FRAME_BYTES) {
            return null;
        }
        for (int i = 0; i < 4; i++) {
            if (buf[off + i] != MAGIC[i]) {
                return null;
            }
        }
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
        long n = Integer.toUnsignedLong(b.getInt(off + 4));
        int version = Short.toUnsignedInt(b.getShort(off + 8));
        if (n < FRAME_BYTES + CRC_BYTES || n > left) {
            return null;
        }
        Check why;
        if (version == VERSION) {  // the header first: a record of a known kind costs no second CRC
            if (n < HEADER_BYTES + CRC_BYTES) {
                return null;
            }
            int kind = Byte.toUnsignedInt(b.get(off + 10));
            long flags = Integer.toUnsignedLong(b.getInt(off + 20));
            long epoch = b.getLong(off + 24), seq = b.getLong(off + 32);
            if ((kind == KIND_GLM || kind == KIND_CHOICE) && flags == 0) {
                return null;
            }
            why = new Check(null, off + (int) n, "record " + Long.toUnsignedString(seq) + " of kind " + kind
                    + " with flags 0x" + Long.toHexString(flags) + ", which this SDK does not know (it reads kinds "
                    + KIND_GLM + " and " + KIND_CHOICE + ", flags 0): written by a newer edge-omd",
                    true, true, epoch, seq);
        } else if (version > VERSION) {
            why = new Check(null, off + (int) n, "record version " + version + " (this SDK reads " + VERSION
                    + "): written by a newer edge-omd", true, false, 0, 0);
        } else {
            return null;
        }
        CRC32 crc = new CRC32();
        crc.update(buf, off, (int) n - CRC_BYTES);
        return crc.getValue() == Integer.toUnsignedLong(b.getInt(off + (int) n - CRC_BYTES)) ? why : null;
    }

    /** Check the record at off, in the Python reader's order of checks. */
    public static Check checkOne(byte[] buf, int off, int dim, int itemsize) {
        long left = buf.length - off;
        Check nw = newer(buf, off, left);
        if (nw != null) {
            return nw;
        }
        if (left < HEADER_BYTES + CRC_BYTES) {
            return new Check(null, off, "torn record: " + left + " bytes at the end");
        }
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 4; i++) {
            if (buf[off + i] != MAGIC[i]) {
                return new Check(null, off, "bad magic (not the start of a record)");
            }
        }
        long n = Integer.toUnsignedLong(b.getInt(off + 4));
        int version = Short.toUnsignedInt(b.getShort(off + 8));
        int kind = Byte.toUnsignedInt(b.get(off + 10));
        int item = Byte.toUnsignedInt(b.get(off + 11));
        long d = Integer.toUnsignedLong(b.getInt(off + 12));
        long k = Integer.toUnsignedLong(b.getInt(off + 16));
        long flags = Integer.toUnsignedLong(b.getInt(off + 20));
        long epoch = b.getLong(off + 24), seq = b.getLong(off + 32);
        double label = b.getDouble(off + 40), weight = b.getDouble(off + 48), when = b.getDouble(off + 56);
        boolean itemOk = item == 4 || item == 8;
        if (!(k > 0 && k <= MAX_K) || n != recordSize(d, itemOk ? item : 0, k) || !itemOk) {
            return new Check(null, off, "inconsistent record length " + n + " (k=" + k + ", d=" + d
                    + ", itemsize=" + item + ")");
        }
        if (n > left) {
            return new Check(null, off, "torn record: " + left + " of " + n + " bytes");
        }
        CRC32 crc = new CRC32();
        crc.update(buf, off, (int) n - CRC_BYTES);
        if (crc.getValue() != Integer.toUnsignedLong(b.getInt(off + (int) n - CRC_BYTES))) {
            return new Check(null, off, "checksum mismatch");
        }
        if (version != VERSION) {
            return new Check(null, off, "record version " + version + " (this SDK reads " + VERSION + ")");
        }
        if (d != dim || item != itemsize) {
            return new Check(null, off, "record for d=" + d + "/itemsize " + item + ", the state has d=" + dim
                    + "/itemsize " + itemsize);
        }
        boolean glm = kind == KIND_GLM && k == 1, choice = kind == KIND_CHOICE && k >= 2 && k <= MAX_CHOICE_K;
        if (!(glm || choice) || flags != 0) {
            return new Check(null, off, "record kind " + kind + " with k=" + k + ", flags 0x"
                    + Long.toHexString(flags) + " is not supported");
        }
        if (glm && !(Double.isFinite(label) && label >= 0.0 && label <= 1.0)) {
            return new Check(null, off, "label " + label + " outside [0, 1]");
        }
        if (choice && !(Double.isFinite(label) && label == Math.rint(label) && label >= 0 && label < k)) {
            return new Check(null, off, "chosen index " + label + " is not one of the record's " + k + " vectors");
        }
        if (!(Double.isFinite(weight) && weight > 0.0 && weight <= RewardModel.MAX_WEIGHT)) {
            return new Check(null, off, "weight " + weight + " outside (0, 1e+06]");
        }
        if (seq < 0 || seq > MAX_SEQ) {
            return new Check(null, off, "seq " + Long.toUnsignedString(seq) + " beyond " + MAX_SEQ);
        }
        double[][] vectors = new double[(int) k][dim];
        int p = off + HEADER_BYTES;
        for (int j = 0; j < k; j++) {
            for (int i = 0; i < dim; i++, p += item) {
                double v = item == 4 ? b.getFloat(p) : b.getDouble(p);
                if (!Double.isFinite(v)) {  // docs/JOURNAL_FORMAT.md check 5
                    return new Check(null, off, "the record's vector is not finite (vector " + j + ", entry " + i + ")");
                }
                vectors[j][i] = v;
            }
        }
        return new Check(new Record(kind, item, epoch, seq, label, weight, when, vectors), off + (int) n, null);
    }

    /** The valid records of buf[start:] that continue a state at counter {@code after}. */
    public static final class Parsed {
        public final List<Record> records = new ArrayList<>();
        public final List<Integer> ends = new ArrayList<>();
        public int skippedEnd;
        public String stop;     // null: clean end
        public int stopAt;
        /** Stopped at a record written by a newer edge-omd (not damage: refuse, keep it). */
        public boolean newer;
    }

    /**
     * Records with seq &lt;= after are skipped first when skipOlder (a crash between a checkpoint
     * and the journal's truncation); then every record must carry the checkpoint's epoch and
     * seq = after + 1, after + 2, ...; parsing stops at the first that does not, or is torn or
     * corrupt, and says why. A version-1 record of a newer edge-omd (a kind or flags this core
     * does not know) follows the same sequence rules (skipped when older, a plain stop for another
     * incarnation or a gap), then stops with newer set; a newer version always does.
     */
    public static Parsed parse(byte[] buf, long epoch, long after, int dim, int itemsize, int start,
                               boolean skipOlder) {
        Parsed out = new Parsed();
        int off = start;
        out.skippedEnd = start;
        long expect = after + 1;
        while (off < buf.length) {
            Check c = checkOne(buf, off, dim, itemsize);
            if (c.record == null && c.v1) {  // a newer edge-omd's version-1 record: the sequence rules first
                if (skipOlder && out.records.isEmpty() && Long.compareUnsigned(c.seq, after) <= 0) {
                    off = c.next;
                    out.skippedEnd = off;
                    continue;
                }
                out.stopAt = off;
                if (c.epoch != epoch) {
                    out.stop = "record of another incarnation (epoch " + Long.toUnsignedString(c.epoch)
                            + ", expected " + Long.toUnsignedString(epoch) + ")";
                    return out;
                }
                if (c.seq != expect) {
                    out.stop = "record seq " + Long.toUnsignedString(c.seq) + ", expected " + expect;
                    return out;
                }
            }
            if (c.record == null) {
                out.stop = c.reason;
                out.stopAt = off;
                out.newer = c.newer;
                return out;
            }
            Record r = c.record;
            if (skipOlder && out.records.isEmpty() && r.seq <= after) {
                off = c.next;
                out.skippedEnd = off;
                continue;
            }
            if (r.epoch != epoch) {
                out.stop = "record of another incarnation (epoch " + Long.toUnsignedString(r.epoch) + ", expected "
                        + Long.toUnsignedString(epoch) + ")";
                out.stopAt = off;
                return out;
            }
            if (r.seq != expect) {
                out.stop = "record seq " + r.seq + ", expected " + expect;
                out.stopAt = off;
                return out;
            }
            out.records.add(r);
            off = c.next;
            out.ends.add(off);
            expect++;
        }
        out.stopAt = off;
        return out;
    }

    /** Learn one record on the model exactly as the live model learned it (edge_omd/store/journal.py apply). */
    public static void apply(RewardModel model, Record r) {
        if (r.kind == KIND_CHOICE) {
            model.learnChoiceObservation(r.vectors, (int) r.label, r.weight);
        } else {
            model.learnObservation(r.z, r.label, r.weight);
        }
    }
}
