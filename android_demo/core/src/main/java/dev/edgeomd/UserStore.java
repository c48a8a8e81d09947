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
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.Map;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.util.regex.Pattern;
import java.util.zip.CRC32;

/**
 * One user's model in a folder, in the layout of the Python SDK's FolderStore
 * (docs/JOURNAL_FORMAT.md, docs/FORMATS.md), so a folder pulled from the phone opens in Python
 * and back. File names do not reveal the user id: they are {@code <h>.omdck} (the checkpoint:
 * "EOMDREC2", u32 header length, header JSON, the RewardModel state, CRC-32; replaced atomically:
 * temp file, fsync, rename, fsync of the folder), {@code <h>.omdjr} (one {@link Journal} record,
 * O(d) bytes, appended and fsynced, per observation learned since) and {@code <h>.omdlk} (the
 * lock), where h = the first 32 hex digits of HMAC-SHA256(key, "edge-omd user id\0" + id) and
 * the key is the folder's {@code .omdkey} ("EOMDKEY1", 32 random bytes, CRC-32; made by the
 * first store that opens the folder, Python or Java). A user found under the names of older
 * versions ({@code <id>.omdstate}, {@code <id>.omdjournal}) is moved to the keyed names when it
 * is opened (journal copy, then checkpoint copy, each durable, then the old files erased). Opening = load the checkpoint and replay the journal's
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
    public static final String STATE_SUFFIX = ".omdck", JOURNAL_SUFFIX = ".omdjr", LOCK_SUFFIX = ".omdlk";
    static final String LEGACY_STATE = ".omdstate", LEGACY_JOURNAL = ".omdjournal", LEGACY_LOCK = ".lock";
    public static final String KEY_FILE = ".omdkey";
    static final byte[] KEY_MAGIC = "EOMDKEY1".getBytes(StandardCharsets.US_ASCII);
    static final byte[] MAGIC = "EOMDREC2".getBytes(StandardCharsets.US_ASCII);
    static final byte[] MAGIC_V1 = "EOMDREC1".getBytes(StandardCharsets.US_ASCII);
    public static final int RECORD_FORMAT = 2;
    public static final long MAX_UPDATES = (1L << 40) - 1;
    static final Pattern USER_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._@-]{0,127}");
    static final Pattern KEYED_CHECKPOINT = Pattern.compile("[0-9a-f]{32}\\" + STATE_SUFFIX);
    /** Keyed checkpoints looked at when a folder opens, among at most KEY_SCAN names (Python's
     * _KEY_SAMPLE, _KEY_SCAN): a few reads whatever the folder's size. */
    static final int KEY_SAMPLE = 8, KEY_SCAN = 512;
    /** The longest checkpoint header JSON a peek reads (envelope.MAX_JSON_HEADER). */
    static final int MAX_JSON_HEADER = 1 << 16;
    private static final SecureRandom RANDOM = new SecureRandom();

    private final Path folder, statePath, journalPath;
    private final String userId;
    private final int checkpointEvery;
    private RewardModel model;
    private final int itemsize;
    private final FileChannel lockChannel, journal;
    private final FileLock lock;
    private long epoch, updates, createdAt;
    private int pending;
    private final Pack pack;        // new users and resets start here (null: theta = 0)
    private RewardModel.Config fresh;  // a reset user's settings when a pack is given
    private byte[] packDigest;      // the record's: the pack this incarnation started from, or null

    private UserStore(Path folder, String userId, RewardModel model, int checkpointEvery, FileChannel lockChannel,
                      FileLock lock, Pack pack) throws IOException {
        this.folder = folder;
        this.pack = pack;
        this.userId = userId;
        String name = nameOf(folder, userId);
        this.statePath = folder.resolve(name + STATE_SUFFIX);
        this.journalPath = folder.resolve(name + JOURNAL_SUFFIX);
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
        return open(folder, userId, fresh, checkpointEvery, null);
    }

    /**
     * As {@link #open(Path, String, RewardModel.Config, int)}, and a new user (and a reset)
     * starts at the population {@code pack} (null: none), whose digest the checkpoint keeps, as
     * Python's store record does. The pack must be fitted on the head of {@code fresh}
     * (the same fingerprint, or both none) and have its dim: ConfigException otherwise, before
     * any file is touched. A stored user keeps their state and the digest of the pack they
     * learned against (moving them to another pack is Python's HeadRegistry's job).
     */
    public static UserStore open(Path folder, String userId, RewardModel.Config fresh, int checkpointEvery,
                                 Pack pack) throws IOException {
        if (pack != null && (pack.dim != fresh.dim
                || !java.util.Arrays.equals(pack.fingerprint(), fresh.headFingerprint))) {
            throw new ConfigException("the population pack was fitted on another head (dim " + pack.dim
                    + ") than this store's (dim " + fresh.dim + "); fit one on this head: "
                    + "edge-omd population fit FEEDBACK OUT --head HEAD");
        }
        if (userId == null || !USER_ID.matcher(userId).matches()) {
            throw new InvalidInputException("invalid user id '" + userId + "': use 1-128 characters from letters, "
                    + "digits and '._@-', starting with a letter or digit");
        }
        if (checkpointEvery < 1) {
            throw new ConfigException("checkpointEvery must be >= 1, got " + checkpointEvery);
        }
        Files.createDirectories(folder);
        checkNames(folder);
        FileChannel lc = FileChannel.open(folder.resolve(nameOf(folder, userId) + LOCK_SUFFIX),
                StandardOpenOption.CREATE, StandardOpenOption.WRITE);
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
            return openLocked(folder, userId, fresh, checkpointEvery, lc, lock, pack);
        } catch (IOException | RuntimeException e) {
            lock.release();
            lc.close();
            throw e;
        }
    }

    private static UserStore openLocked(Path folder, String userId, RewardModel.Config fresh, int every,
                                        FileChannel lc, FileLock lock, Pack pack) throws IOException {
        migrate(folder, userId);
        Path state = statePath(folder, userId);
        if (!Files.exists(state)) {
            RewardModel m = pack == null ? new RewardModel(fresh) : new RewardModel(fresh, pack);
            UserStore s = new UserStore(folder, userId, m, every, lc, lock, pack);
            s.packDigest = pack == null ? null : pack.digest();
            s.fresh = fresh;
            s.createdAt = System.currentTimeMillis();
            s.newEpoch();
            return s;
        }
        Checkpoint ck = readCheckpoint(state, userId);
        UserStore s = new UserStore(folder, userId, ck.model, every, lc, lock, pack);
        s.packDigest = ck.packDigest;
        s.fresh = fresh;
        s.epoch = ck.epoch;
        s.updates = ck.updates;
        s.createdAt = ck.createdAtMillis;
        byte[] buf = Files.readAllBytes(s.journalPath);
        Journal.Parsed p = Journal.parse(buf, ck.epoch, ck.updates, ck.model.dim(), s.itemsize, 0, true);
        if (p.newer) {  // written by a newer edge-omd (docs/JOURNAL_FORMAT.md): refuse, never cut it away
            s.journal.close();
            throw new StateFormatException("user " + userId + ": the journal stops at a " + p.stop + " (after "
                    + p.records.size() + " records this SDK reads); upgrade edge-omd to open this user "
                    + "(nothing was changed: every record is kept)");
        }
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

    /** The checkpoint file of {@code userId} in {@code folder} (keyed name). */
    public static Path statePath(Path folder, String userId) throws IOException {
        return folder.resolve(nameOf(folder, userId) + STATE_SUFFIX);
    }

    /** The journal file of {@code userId} in {@code folder} (keyed name). */
    public static Path journalPath(Path folder, String userId) throws IOException {
        return folder.resolve(nameOf(folder, userId) + JOURNAL_SUFFIX);
    }

    /** The file name stem of {@code userId}: keyed hash, the folder's key made if missing. */
    public static String nameOf(Path folder, String userId) throws IOException {
        byte[] key = folderKey(folder);
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            mac.update("edge-omd user id\0".getBytes(StandardCharsets.US_ASCII));
            byte[] h = mac.doFinal(userId.getBytes(StandardCharsets.UTF_8));
            return hex(h, 16);
        } catch (GeneralSecurityException e) {
            throw new IOException("HMAC-SHA256 is not available: " + e);
        }
    }

    static byte[] folderKey(Path folder) throws IOException {
        Path path = folder.resolve(KEY_FILE);
        byte[] key = readKey(path);
        if (key != null) {
            return key;
        }
        Files.createDirectories(folder);
        refuseNewKeyOverUsers(folder);
        key = new byte[32];
        RANDOM.nextBytes(key);
        byte[] out = new byte[KEY_MAGIC.length + 32 + 4];
        ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        b.put(KEY_MAGIC).put(key);
        CRC32 crc = new CRC32();
        crc.update(out, 0, out.length - 4);
        b.putInt((int) crc.getValue());
        Path tmp = folder.resolve("." + KEY_FILE + "." + hex(randomBytes(6), 6) + ".tmp");
        try {
            writeSynced(tmp, out);
            try {
                Files.createLink(path, tmp);   // never replaces a key another process made first
            } catch (FileAlreadyExistsException e) {
                return readKey(path);
            } catch (UnsupportedOperationException e) {
                Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
        syncFolder(folder);
        return readKey(path);
    }

    /** A lost {@code .omdkey} must never be replaced while checkpoints named by it are there:
     * a new key would hide those users (they would read as new, and deleting one would miss its
     * files). Python's FolderStore refuses the same way; its {@code recover_key} renames them. */
    private static void refuseNewKeyOverUsers(Path folder) throws IOException {
        try (java.util.stream.Stream<Path> names = Files.list(folder)) {
            java.util.Optional<String> named = names.map(f -> f.getFileName().toString())
                    .filter(n -> KEYED_CHECKPOINT.matcher(n).matches()).findFirst();
            if (named.isPresent()) {
                throw new java.io.IOException(folder + ": the key file " + KEY_FILE + " is missing, but user "
                        + "checkpoints named with it are there (e.g. " + named.get() + "): a new key would hide "
                        + "them. Restore .omdkey from a backup of this folder, or run Python's "
                        + "FolderStore.recover_key on it (nothing was changed)");
            }
        }
    }

    /**
     * The key must name the users in the folder (Python's FolderStore._check_names): of the first
     * keyed checkpoints met (at most KEY_SAMPLE among the first KEY_SCAN names), one at least must
     * carry the name the key gives to the user id inside. A key replaced by another folder's names
     * none of them: IOException, before any file is made or changed.
     */
    static void checkNames(Path folder) throws IOException {
        java.util.List<String> seen = new java.util.ArrayList<>();
        try (DirectoryStream<Path> names = Files.newDirectoryStream(folder)) {
            int i = 0;
            for (Path f : names) {
                if (i++ >= KEY_SCAN) {
                    break;
                }
                String name = f.getFileName().toString();
                if (!KEYED_CHECKPOINT.matcher(name).matches()) {
                    continue;
                }
                String uid = peekUserId(f);
                if (uid == null) {
                    continue;
                }
                if (nameOf(folder, uid).equals(name.substring(0, name.length() - STATE_SUFFIX.length()))) {
                    return;
                }
                seen.add(name);
                if (seen.size() >= KEY_SAMPLE) {
                    break;
                }
            }
        }
        if (!seen.isEmpty()) {
            throw new IOException(folder + ": the key file " + KEY_FILE + " does not name the users in this "
                    + "folder (none of " + seen.subList(0, Math.min(3, seen.size())) + "... carries the name it "
                    + "gives to the user id inside): it was replaced, e.g. by another folder's key. Restore this "
                    + "folder's .omdkey from a backup, or run Python's FolderStore.recover_key on it to rename "
                    + "every user's files after the key that is there now (nothing was changed)");
        }
    }

    /** The user id in a checkpoint's header (the header alone; the CRC is checked when the user is
     * read), or null if it cannot be read (Python's FolderStore._peek_user_id). */
    static String peekUserId(Path path) {
        if (!Files.isRegularFile(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            return null;
        }
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            ByteBuffer head = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
            while (head.hasRemaining() && ch.read(head, head.position()) > 0) {
                continue;
            }
            byte[] h = head.array();
            if (head.position() < 12 || !(startsWith(h, MAGIC) || startsWith(h, MAGIC_V1))) {
                return null;
            }
            long hlen = Integer.toUnsignedLong(head.getInt(8));
            if (hlen > MAX_JSON_HEADER) {
                return null;
            }
            ByteBuffer json = ByteBuffer.allocate((int) hlen);
            while (json.hasRemaining() && ch.read(json, 12 + json.position()) > 0) {
                continue;
            }
            json.flip();
            Object uid = Json.obj(Json.parse(StandardCharsets.UTF_8.newDecoder().decode(json).toString()))
                    .get("user_id");
            return uid instanceof String && USER_ID.matcher((String) uid).matches() ? (String) uid : null;
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    private static byte[] readKey(Path path) throws IOException {
        if (!Files.exists(path)) {
            return null;
        }
        byte[] blob = Files.readAllBytes(path);
        int n = KEY_MAGIC.length + 32;
        boolean ok = blob.length == n + 4 && startsWith(blob, KEY_MAGIC);
        if (ok) {
            CRC32 crc = new CRC32();
            crc.update(blob, 0, n);
            ok = crc.getValue() == Integer.toUnsignedLong(
                    ByteBuffer.wrap(blob).order(ByteOrder.LITTLE_ENDIAN).getInt(n));
        }
        if (!ok) {
            throw new StateFormatException(path + " is corrupt: it holds the key that names this folder's user files; "
                    + "restore it from a backup, or start a new folder");
        }
        return java.util.Arrays.copyOfRange(blob, KEY_MAGIC.length, n);
    }

    /** Files under the names of older versions (the id in clear) move to the keyed names. */
    private static void migrate(Path folder, String userId) throws IOException {
        Path oldState = folder.resolve(userId + LEGACY_STATE), oldJournal = folder.resolve(userId + LEGACY_JOURNAL);
        Path newState = statePath(folder, userId), newJournal = journalPath(folder, userId);
        if (Files.exists(oldState) && !Files.exists(newState)) {
            byte[] j = Files.exists(oldJournal) ? Files.readAllBytes(oldJournal) : new byte[0];
            replaceAtomically(folder, newJournal, j);
            replaceAtomically(folder, newState, Files.readAllBytes(oldState));
        }
        boolean any = false;
        for (Path p : new Path[]{oldJournal, oldState, folder.resolve(userId + LEGACY_LOCK)}) {
            any |= Files.deleteIfExists(p);
        }
        if (any) {
            syncFolder(folder);
        }
    }

    private static void writeSynced(Path path, byte[] data) throws IOException {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ByteBuffer w = ByteBuffer.wrap(data);
            while (w.hasRemaining()) {
                ch.write(w);
            }
            ch.force(true);
        }
    }

    /** temp file beside it, fsync, rename over it, fsync of the folder. */
    private static void replaceAtomically(Path folder, Path target, byte[] data) throws IOException {
        Path tmp = folder.resolve("." + target.getFileName() + "." + hex(randomBytes(6), 6) + ".tmp");
        try {
            writeSynced(tmp, data);
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
        syncFolder(folder);
    }

    private static void syncFolder(Path folder) {
        try (FileChannel dir = FileChannel.open(folder, StandardOpenOption.READ)) {
            dir.force(true);
        } catch (IOException | UnsupportedOperationException e) {
            // no directory fsync on this platform: the rename is still atomic
        }
    }

    /** Temporary files of this user's interrupted checkpoint writes (call under its lock). */
    private void removeStaleTemps() throws IOException {
        String prefix = "." + statePath.getFileName() + ".";
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(folder)) {
            for (Path p : ds) {
                String n = p.getFileName().toString();
                if (n.startsWith(prefix) && n.endsWith(".tmp")) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private static byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        RANDOM.nextBytes(b);
        return b;
    }

    private static String hex(byte[] b, int n) {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < n; i++) {
            s.append(String.format("%02x", b[i] & 0xff));
        }
        return s.toString();
    }

    static final class Checkpoint {
        RewardModel model;
        long epoch, updates, createdAtMillis;
        byte[] packDigest;  // absent in records written before packs existed: null
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
            if (h.containsKey("pack_digest") && h.get("pack_digest") != null) {
                ck.packDigest = Pack.hexField(h.get("pack_digest"), 32, "pack_digest", bad + " (header)");
            }
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

    /** The digest of the population pack this user's incarnation started from (the record's), or null. */
    public byte[] packDigest() {
        return packDigest == null ? null : packDigest.clone();
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

    /**
     * The user saw the candidates Phi and chose row {@code chosen}: one multinomial-logit
     * observation ({@link RewardModel#learnChoice}), journaled as one kind-2 record of the
     * candidates as the model used them (what Python's Personalizer.choose appends).
     */
    public void learnChoice(double[][] Phi, int chosen, double weight) throws IOException {
        double[][] P = model.choiceInput(Phi);
        model.learnChoiceObservation(P, chosen, weight);
        append(Journal.encodeChoice(epoch, updates + 1, P, itemsize, chosen, weight, System.currentTimeMillis() / 1000.0));
    }

    private void commit(double label, double weight) throws IOException {
        append(Journal.encode(epoch, updates + 1, model.observation(), itemsize, label, weight,
                System.currentTimeMillis() / 1000.0));
    }

    /** Append one record (fsynced), count it, checkpoint every checkpointEvery records. */
    private void append(byte[] rec) throws IOException {
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

    /**
     * Forget everything learned: a new incarnation (epoch), an empty journal; with a pack, a new
     * model of the store's settings at the pack's start (model() returns it), else the settings
     * kept and theta = 0.
     */
    public void reset() throws IOException {
        if (pack != null) {
            model = new RewardModel(fresh, pack);  // the pack's settings (its lam), as Python's reset
        } else {
            model.reset();
        }
        packDigest = pack == null ? null : pack.digest();
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
                + createdAt / 1000.0 + ", \"updated_at\": " + System.currentTimeMillis() / 1000.0
                + (packDigest == null ? "" : ", \"pack_digest\": \"" + hex(packDigest, 32) + "\"") + "}";
        byte[] hb = header.getBytes(StandardCharsets.UTF_8);
        byte[] state = model.toBytes();
        byte[] out = new byte[8 + 4 + hb.length + state.length + 4];
        ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC).putInt(hb.length).put(hb).put(state);
        CRC32 crc = new CRC32();
        crc.update(out, 0, out.length - 4);
        b.putInt((int) crc.getValue());
        removeStaleTemps();
        replaceAtomically(folder, statePath, out);
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
