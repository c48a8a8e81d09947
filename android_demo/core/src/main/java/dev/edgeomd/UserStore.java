package dev.edgeomd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * One user's model persisted in a folder of app storage, crash-safe and cheap per feedback:
 * {@code state.eomd} is a checkpoint (written atomically: temp file, fsync, rename) and
 * {@code state.journal} holds one {@link Journal} record (O(d) bytes, appended and fsynced) per
 * observation learned since. Opening = load the checkpoint, replay the journal's valid records
 * (a torn tail from a crash mid-append is ignored, nothing after a bad record is applied), so
 * the model comes back exactly as it was after its last completed feedback. Every
 * {@code checkpointEvery} records the checkpoint is rewritten and the journal emptied (a crash
 * in between leaves records the new checkpoint already holds: they are skipped by seq).
 * Not thread-safe: use from one thread.
 */
public final class UserStore implements AutoCloseable {
    public static final String STATE = "state.eomd", JOURNAL = "state.journal";
    /** Journal epoch: a reset writes a fresh checkpoint and empties the journal first. */
    static final long EPOCH = 1;

    private final Path folder;
    private final int checkpointEvery;
    private final RewardModel model;
    private final int itemsize;
    private FileChannel journal;
    private int pending;

    private UserStore(Path folder, RewardModel model, int checkpointEvery) throws IOException {
        this.folder = folder;
        this.model = model;
        this.checkpointEvery = checkpointEvery;
        this.itemsize = "float32".equals(model.dtype()) ? 4 : 8;
        this.journal = FileChannel.open(folder.resolve(JOURNAL), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.APPEND);
    }

    /**
     * Open (or create with {@code fresh}) the user's store. Returns the recovered model's store;
     * StateFormatException if the checkpoint is corrupt (the files are left as they are).
     */
    public static UserStore open(Path folder, RewardModel.Config fresh, int checkpointEvery) throws IOException {
        if (checkpointEvery < 1) {
            throw new ConfigException("checkpointEvery must be >= 1, got " + checkpointEvery);
        }
        Files.createDirectories(folder);
        Path state = folder.resolve(STATE), jpath = folder.resolve(JOURNAL);
        RewardModel m;
        int replayed = 0;
        if (Files.exists(state)) {
            m = RewardModel.load(state);
            if (Files.exists(jpath)) {
                byte[] buf = Files.readAllBytes(jpath);
                int item = "float32".equals(m.dtype()) ? 4 : 8;
                Journal.Parsed p = Journal.parse(buf, EPOCH, m.t(), m.dim(), item, 0, true);
                for (Journal.Record r : p.records) {
                    Journal.apply(m, r);
                }
                replayed = p.records.size();
                if (p.stop != null) {  // drop the torn/invalid tail so new records follow valid ones
                    try (FileChannel ch = FileChannel.open(jpath, StandardOpenOption.WRITE)) {
                        ch.truncate(p.stopAt);
                        ch.force(true);
                    }
                }
            }
        } else {
            m = new RewardModel(fresh);
            Files.deleteIfExists(jpath);
            m.save(state);
        }
        UserStore s = new UserStore(folder, m, checkpointEvery);
        s.pending = replayed;
        return s;
    }

    /** The model (read it freely; learn only through this store so nothing is lost). */
    public RewardModel model() {
        return model;
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
        byte[] rec = Journal.encode(EPOCH, model.t(), model.observation(), itemsize, label, weight,
                System.currentTimeMillis() / 1000.0);
        ByteBuffer b = ByteBuffer.wrap(rec);
        while (b.hasRemaining()) {
            journal.write(b);
        }
        journal.force(false);
        if (++pending >= checkpointEvery) {
            checkpoint();
        }
    }

    /** Rewrite the checkpoint atomically, then empty the journal. */
    public void checkpoint() throws IOException {
        model.save(folder.resolve(STATE));
        journal.truncate(0);
        journal.force(true);
        pending = 0;
    }

    /** Forget everything learned (settings kept): a fresh checkpoint, an empty journal. */
    public void reset() throws IOException {
        model.reset();
        journal.truncate(0);
        journal.force(true);
        model.save(folder.resolve(STATE));
        pending = 0;
    }

    @Override
    public void close() throws IOException {
        journal.close();
    }
}
