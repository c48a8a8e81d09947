package dev.edgeomd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.zip.CRC32;

/**
 * One user's model in a folder, in the layout of the Python SDK's FolderStore
 * (docs/JOURNAL_FORMAT.md), so a folder pulled from the phone opens in Python and back:
 * {@code <id>.omdstate} is the checkpoint ("EOMDREC2", u32 header length, header JSON, the
 * RewardModel state, CRC-32), replaced atomically (temp file, fsync, rename, fsync of the
 * folder); {@code <id>.omdjournal} holds one {@link Journal} record (O(d) bytes, appended and
 * fsynced) per observation learned since. Opening = load the checkpoint and replay the journal's
 * valid records (a torn tail from a crash mid-append is cut, nothing after a bad record is
 * applied), so the model comes back as it was after its last completed feedback. Every
 * {@code checkpointEvery} records the checkpoint is rewritten, then the journal emptied (a crash
 * in between leaves records the new checkpoint already holds: they are skipped by seq).
 *
 * The store holds an exclusive lock on {@code <id>.lock} while open (a JVM file lock: it keeps
 * two Java processes apart; it is not the Python SDK's flock, so do not open the same folder
 * from both at once). Not thread-safe: use from one thread. Legacy EOMDREC1 files are refused
 * (open them once with the Python SDK, which rewrites them).
 */
public final class UserStore implements AutoCloseable {
    public static final String STATE_SUFFIX = ".omdstate", JOURNAL_SUFFIX = ".omdjournal", LOCK_SUFFIX = ".lock";
    static final byte[] MAGIC = "EOMDREC2".getBytes(StandardCharsets.US_ASCII);
    static final byte[] MAGIC_V1 = "EOMDREC1".getBytes(StandardCharsets.US_ASCII);
    public static final int RECORD_FORMAT = 2;
    public static final long MAX_UPDATES = (1L << 40) - 1;
    static final Pattern USER_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._@-]{0,127}");
    private static final SecureRandom RANDOM = new SecureRandom();

    private final Path folder, statePath, journalPath;
    private final String userId;
    private final int checkpointEvery;
    private final RewardModel model;
    private final int itemsize;
    private final FileChannel lockChannel, journal;
    private final FileLock lock;
    private long epoch, updates, createdAt;
    private int pending;

    private UserStore(Path folder, String userId, RewardModel model, int checkpointEvery, FileChannel lockChannel,
                      FileLock lock) throws IOException {
        this.folder = folder;
        this.userId = userId;
        this.statePath = folder.resolve(userId + STATE_SUFFIX);
        this.journalPath = folder.resolve(userId + JOURNAL_SUFFIX);
        this.model = model;
        this.checkpointEvery = checkpointEvery;
        this.itemsize = "float32".equals(model.dtype()) ? 4 : 8;
        this.lockChannel = lockChannel;
        this.lock = lock;
        this.journal = FileChannel.open(journalPath, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
    }

    /**
     * Open user {@code userId} in {@code folder}, or create it from {@code fresh} (its first
     * checkpoint is written at once). StateFormatException if the checkpoint is corrupt (the
     * files are left as they are).
     */
    public static UserStore open(Path folder, String userId, RewardModel.Config fresh, int checkpointEvery)
            throws IOException {
        if (userId == null || !USER_ID.matcher(userId).matches()) {
            throw new InvalidInputException("invalid user id '" + userId + "': use 1-128 characters from letters, "
                    + "digits and '._@-', starting with a letter or digit");
        }
        if (checkpointEvery < 1) {
            throw new ConfigException("checkpointEvery must be >= 1, got " + checkpointEvery);
        }
        Files.createDirectories(folder);
        FileChannel lc = FileChannel.open(folder.resolve(userId + LOCK_SUFFIX), StandardOpenOption.CREATE,
                StandardOpenOption.WRITE);
        FileLock lock;
        try {
            lock = lc.tryLock();
        } catch (java.nio.channels.OverlappingFileLockException e) {
            lock = null;  // held by this JVM already
        } catch (IOException | RuntimeException e) {
            lc.close();
            throw e;
        }
        if (lock == null) {
            lc.close();
            throw new IOException("user " + userId + " is open elsewhere (" + folder + ")");
        }
        try {
            return openLocked(folder, userId, fresh, checkpointEvery, lc, lock);
        } catch (IOException | RuntimeException e) {
            lock.release();
            lc.close();
            throw e;
        }
    }

    private static UserStore openLocked(Path folder, String userId, RewardModel.Config fresh, int every,
                                        FileChannel lc, FileLock lock) throws IOException {
        Path state = folder.resolve(userId + STATE_SUFFIX);
        if (!Files.exists(state)) {
            UserStore s = new UserStore(folder, userId, new RewardModel(fresh), every, lc, lock);
            s.createdAt = System.currentTimeMillis();
            s.newEpoch();
            return s;
        }
        Checkpoint ck = readCheckpoint(state, userId);
        UserStore s = new UserStore(folder, userId, ck.model, every, lc, lock);
        s.epoch = ck.epoch;
        s.updates = ck.updates;
        s.createdAt = ck.createdAtMillis;
        byte[] buf = Files.readAllBytes(s.journalPath);
        Journal.Parsed p = Journal.parse(buf, ck.epoch, ck.updates, ck.model.dim(), s.itemsize, 0, true);
        for (Journal.Record r : p.records) {
            Journal.apply(s.model, r);
        }
        s.updates += p.records.size();
        s.pending = p.records.size();
        long end = p.ends.isEmpty() ? p.skippedEnd : p.ends.get(p.ends.size() - 1);
        if (p.stop != null) {  // cut the torn/invalid tail so new records follow valid ones
            s.journal.truncate(end);
            s.journal.force(true);
        }
        s.journal.position(s.journal.size());
        return s;
    }

    static final class Checkpoint {
        RewardModel model;
        long epoch, updates, createdAtMillis;
    }

    /** Read and check a FolderStore checkpoint file (the Python reader's checks). */
    static Checkpoint readCheckpoint(Path path, String userId) throws IOException {
        byte[] blob = Files.readAllBytes(path);
        String bad = path + " is corrupt";
        if (blob.length < 16 || !(startsWith(blob, MAGIC) || startsWith(blob, MAGIC_V1))) {
            throw new StateFormatException(bad + " (not an edge-omd state file)");
        }
        ByteBuffer b = ByteBuffer.wrap(blob).order(ByteOrder.LITTLE_ENDIAN);
        CRC32 crc = new CRC32();
        crc.update(blob, 0, blob.length - 4);
        if (crc.getValue() != Integer.toUnsignedLong(b.getInt(blob.length - 4))) {
            throw new StateFormatException(bad + " (checksum mismatch)");
        }
        if (startsWith(blob, MAGIC_V1)) {
            throw new StateFormatException(path + " is a format-1 store file: open it once with the Python SDK "
                    + "(FolderStore rewrites it as format 2)");
        }
        long hlen = Integer.toUnsignedLong(b.getInt(8));
        if (12 + hlen > blob.length - 4) {
            throw new StateFormatException(bad + " (header length " + hlen + ")");
        }
        Map<String, Object> h;
        try {
            h = Json.obj(Json.parse(new String(blob, 12, (int) hlen, StandardCharsets.UTF_8)));
            Object fp = h.get("head_fingerprint");
            if (fp != null && !(fp instanceof String)) {
                throw new IllegalArgumentException("head_fingerprint is not a hex string");
            }
            if (!(h.get("user_id") instanceof String)) {
                throw new IllegalArgumentException("user_id is not a string");
            }
            double created = Json.num(h.get("created_at"));
            Json.num(h.get("updated_at"));
            long upd = Json.integer(h.get("updates"));
            if (upd < 0 || upd > MAX_UPDATES) {
                throw new IllegalArgumentException("updates " + upd + " outside [0, " + MAX_UPDATES + "]");
            }
            Checkpoint ck = new Checkpoint();
            ck.epoch = Json.integer(h.get("epoch"));
            Json.integer(h.get("dim"));
            Json.integer(h.get("format_version"));
            ck.updates = upd;
            ck.createdAtMillis = Math.round(created * 1000.0);
            if (!userId.equals(h.get("user_id"))) {
                throw new IOException(path + " holds user '" + h.get("user_id") + "', not '" + userId + "'");
            }
            byte[] state = java.util.Arrays.copyOfRange(blob, 12 + (int) hlen, blob.length - 4);
            ck.model = RewardModel.fromBytes(state);
            return ck;
        } catch (IllegalArgumentException | NullPointerException | ClassCastException e) {
            throw new StateFormatException(bad + " (header: " + e.getMessage() + ")");
        }
    }

    private static boolean startsWith(byte[] a, byte[] prefix) {
        if (a.length < prefix.length) {
            return false;
        }
        for (int i = 0; i < prefix.length; i++) {
            if (a[i] != prefix[i]) {
                return false;
            }
        }
        return true;
    }

    /** The model (read it freely; learn only through this store so nothing is lost). */
    public RewardModel model() {
        return model;
    }

    /** Observations committed (the journal's counter; equals model().t() for a store only this class wrote). */
    public long updates() {
        return updates;
    }

    public long epoch() {
        return epoch;
    }

    public void learnPair(double[] phiChosen, double[] phiRejected, double weight) throws IOException {
        model.learnPair(phiChosen, phiRejected, weight);
        commit(1.0, weight);
    }

    public void learnThumb(double[] phi, boolean up, double weight) throws IOException {
        model.learnThumb(phi, up, weight);
        commit(up ? 1.0 : 0.0, weight);
    }

    public void learnOne(double[] z, double y, double weight) throws IOException {
        model.learnOne(z, y, weight);
        commit(y, weight);
    }

    private void commit(double label, double weight) throws IOException {
        byte[] rec = Journal.encode(epoch, updates + 1, model.observation(), itemsize, label, weight,
                System.currentTimeMillis() / 1000.0);
        ByteBuffer b = ByteBuffer.wrap(rec);
        while (b.hasRemaining()) {
            journal.write(b);
        }
        journal.force(false);
        updates++;
        if (++pending >= checkpointEvery) {
            checkpoint();
        }
    }

    /** Rewrite the checkpoint atomically, then empty the journal. */
    public void checkpoint() throws IOException {
        writeCheckpoint();
        journal.truncate(0);
        journal.position(0);
        journal.force(true);
        pending = 0;
    }

    /** Forget everything learned (settings kept): a new incarnation (epoch), an empty journal. */
    public void reset() throws IOException {
        model.reset();
        newEpoch();
    }

    private void newEpoch() throws IOException {
        epoch = (RANDOM.nextLong() >>> 2) + 1;
        updates = model.t();
        checkpoint();  // the new checkpoint first: old-epoch records left by a crash are never replayed
    }

    private void writeCheckpoint() throws IOException {
        byte[] fp = model.headFingerprint();
        StringBuilder fph = new StringBuilder();
        if (fp != null) {
            for (byte x : fp) {
                fph.append(String.format("%02x", x & 0xff));
            }
        }
        String header = "{\"user_id\": " + Json.quote(userId) + ", \"dim\": " + model.dim() + ", \"format_version\": "
                + RECORD_FORMAT + ", \"head_fingerprint\": " + (fp == null ? "null" : "\"" + fph + "\"")
                + ", \"updates\": " + updates + ", \"epoch\": " + epoch + ", \"created_at\": "
                + createdAt / 1000.0 + ", \"updated_at\": " + System.currentTimeMillis() / 1000.0 + "}";
        byte[] hb = header.getBytes(StandardCharsets.UTF_8);
        byte[] state = model.toBytes();
        byte[] out = new byte[8 + 4 + hb.length + state.length + 4];
        ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC).putInt(hb.length).put(hb).put(state);
        CRC32 crc = new CRC32();
        crc.update(out, 0, out.length - 4);
        b.putInt((int) crc.getValue());
        byte[] rnd = new byte[6];
        RANDOM.nextBytes(rnd);
        StringBuilder tag = new StringBuilder();
        for (byte x : rnd) {
            tag.append(String.format("%02x", x & 0xff));
        }
        Path tmp = folder.resolve("." + userId + "." + tag + ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                ByteBuffer w = ByteBuffer.wrap(out);
                while (w.hasRemaining()) {
                    ch.write(w);
                }
                ch.force(true);
            }
            try {
                Files.move(tmp, statePath, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, statePath, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
        try (FileChannel dir = FileChannel.open(folder, StandardOpenOption.READ)) {
            dir.force(true);
        } catch (IOException | UnsupportedOperationException e) {
            // no directory fsync on this platform: the rename is still atomic
        }
    }

    @Override
    public void close() throws IOException {
        try {
            journal.close();
        } finally {
            try {
                lock.release();
            } finally {
                lockChannel.close();
            }
        }
    }
}
