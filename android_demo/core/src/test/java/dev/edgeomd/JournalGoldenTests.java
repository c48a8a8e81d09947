package dev.edgeomd;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static dev.edgeomd.TestRunner.close;
import static dev.edgeomd.TestRunner.require;

/** Journal records (edge_omd/store/journal.py) against the Python goldens (make_golden.py, journal/). */
final class JournalGoldenTests {
    private JournalGoldenTests() {
    }

    static void run(TestRunner T, Path golden, Path out) throws Exception {
        Path root = golden.resolve("journal");
        List<Object> names = Json.arr(Json.parse(new String(Files.readAllBytes(root.resolve("index.json")),
                StandardCharsets.UTF_8)));
        for (Object nameO : names) {
            String name = (String) nameO;
            Path folder = root.resolve(name);
            Map<String, Object> c = ModelGoldenTests.readJson(folder.resolve("case.json"));
            int dim = (int) Json.integer(c.get("dim")), item = (int) Json.integer(c.get("itemsize"));
            long epoch = Json.integer(c.get("epoch")), after = Json.integer(c.get("after"));
            double tol = item == 4 ? ModelGoldenTests.TOL32 : ModelGoldenTests.TOL64;
            byte[] checkpoint = Files.readAllBytes(folder.resolve("checkpoint.eomd"));
            Map<String, Object> verdicts = Json.obj(c.get("verdicts"));
            T.check("journal " + name + ": parse verdicts of " + verdicts.size() + " (damaged) journals match Python", () -> {
                for (Map.Entry<String, Object> e : verdicts.entrySet()) {
                    Map<String, Object> v = Json.obj(e.getValue());
                    byte[] buf = Files.readAllBytes(folder.resolve(e.getKey() + ".journal"));
                    Journal.Parsed p = Journal.parse(buf, epoch, after, dim, item, 0, true);
                    String w = e.getKey();
                    require(p.records.size() == Json.integer(v.get("n")), w + ": records " + p.records.size());
                    long[] ends = Json.longs(v.get("ends"));
                    for (int i = 0; i < ends.length; i++) {
                        require(p.ends.get(i) == ends[i], w + ": end " + i);
                    }
                    require(p.skippedEnd == Json.integer(v.get("skipped_end")), w + ": skipped_end");
                    require(p.stopAt == Json.integer(v.get("stop_at")), w + ": stop_at " + p.stopAt);
                    require((p.stop == null) == (v.get("stop") == null), w + ": stop " + p.stop + " vs " + v.get("stop"));
                    int off = p.skippedEnd;
                    for (Journal.Record r : p.records) {  // Java writes the same bytes
                        byte[] again = r.kind == Journal.KIND_CHOICE
                                ? Journal.encodeChoice(r.epoch, r.seq, r.vectors, r.itemsize, (int) r.label, r.weight, r.time)
                                : Journal.encode(r.epoch, r.seq, r.z, r.itemsize, r.label, r.weight, r.time);
                        require(Arrays.equals(again, Arrays.copyOfRange(buf, off, off + again.length)), w + ": re-encode");
                        off += again.length;
                    }
                }
            });
            T.check("journal " + name + ": checkpoint + Java replay matches Python's replay and the live model", () -> {
                for (String w : verdicts.keySet()) {
                    byte[] buf = Files.readAllBytes(folder.resolve(w + ".journal"));
                    Journal.Parsed p = Journal.parse(buf, epoch, after, dim, item, 0, true);
                    RewardModel m = RewardModel.fromBytes(checkpoint);
                    for (Journal.Record r : p.records) {
                        Journal.apply(m, r);
                    }
                    RewardModel py = RewardModel.fromBytes(Files.readAllBytes(folder.resolve(w + ".replayed.eomd")));
                    require(m.t() == py.t(), w + ": t");
                    close(m.theta(), py.theta(), tol, w + ": theta");
                    close(m.localNorm(), py.localNorm(), tol, w + ": local norm");
                }
                RewardModel live = RewardModel.fromBytes(Files.readAllBytes(folder.resolve("live.eomd")));
                RewardModel m = RewardModel.fromBytes(checkpoint);
                for (Journal.Record r : Journal.parse(Files.readAllBytes(folder.resolve("clean.journal")), epoch, after,
                        dim, item, 0, true).records) {
                    Journal.apply(m, r);
                }
                close(m.theta(), live.theta(), tol, "clean replay vs live theta");
            });
        }
        userStore(T, out);
        replacedKey(T, out, null);
        if (Files.exists(root.resolve("users.json"))) {
            folderStore(T, golden, out);
            replacedKey(T, out, root.resolve("folder_store"));
        }
        T.check("journal: a Java model's records replay to its own bytes exactly (same JVM)", () -> {
            for (String dtype : new String[]{"float32", "float64"}) {
                RewardModel.Config cfg = new RewardModel.Config(9);
                cfg.dtype = dtype;
                RewardModel live = new RewardModel(cfg);
                byte[] ck = live.toBytes();
                java.io.ByteArrayOutputStream j = new java.io.ByteArrayOutputStream();
                java.util.Random g = new java.util.Random(5);
                for (int i = 0; i < 25; i++) {
                    double[] a = ModelGoldenTests.randomVec(g, 9, 0.3), b = ModelGoldenTests.randomVec(g, 9, 0.3);
                    if (i % 2 == 0) {
                        live.learnPair(a, b, 1.0);
                        j.write(Journal.encode(3, live.t(), live.observation(), "float32".equals(dtype) ? 4 : 8, 1.0, 1.0, i));
                    } else {
                        live.learnThumb(a, i % 3 == 0, 0.5);
                        j.write(Journal.encode(3, live.t(), live.observation(), "float32".equals(dtype) ? 4 : 8,
                                i % 3 == 0 ? 1.0 : 0.0, 0.5, i));
                    }
                }
                RewardModel r = RewardModel.fromBytes(ck);
                Journal.Parsed p = Journal.parse(j.toByteArray(), 3, 0, 9, "float32".equals(dtype) ? 4 : 8, 0, true);
                require(p.stop == null && p.records.size() == 25, "parse");
                for (Journal.Record rec : p.records) {
                    Journal.apply(r, rec);
                }
                require(Arrays.equals(r.toBytes(), live.toBytes()), dtype + ": replay bytes");
            }
        });
    }

    /**
     * A folder whose .omdkey was replaced by another folder's names none of its users (Python's
     * FolderStore._check_names): UserStore.open refuses it, for a stored user and a new one,
     * with every file as it was; with its own key back it opens. from: a Python FolderStore
     * folder to copy, or null for one Java writes (two users).
     */
    static void replacedKey(TestRunner T, Path out, Path from) {
        String what = from == null ? "Java" : "Python FolderStore";
        T.check("UserStore refuses a " + what + " folder whose key was replaced by another folder's, "
                + "nothing changed", () -> {
            Path dir = Files.createTempDirectory(out, "rekeyed"), other = Files.createTempDirectory(out, "other");
            RewardModel.Config cfg = new RewardModel.Config(5);
            String user = "u1";
            if (from == null) {
                for (String u : new String[]{"u1", "u2"}) {
                    try (UserStore s = UserStore.open(dir, u, cfg, 10)) {
                        s.learnThumb(new double[]{0.1, 0.2, 0.0, -0.1, 0.3}, true, 1.0);
                    }
                }
            } else {
                try (java.util.stream.Stream<Path> files = Files.list(from)) {
                    for (Path f : (Iterable<Path>) files::iterator) {
                        if (Files.isRegularFile(f) && !f.getFileName().toString().endsWith(".omdlk")) {
                            Files.copy(f, dir.resolve(f.getFileName()));
                        }
                    }
                }
                Map<String, Object> u = Json.obj(Json.arr(Json.parse(new String(Files.readAllBytes(
                        from.resolveSibling("users.json")), StandardCharsets.UTF_8))).get(0));
                user = (String) u.get("user");
                cfg = new RewardModel.Config((int) Json.integer(u.get("dim")));
            }
            UserStore.nameOf(other, "someone");  // makes the other folder's key
            Path key = dir.resolve(UserStore.KEY_FILE), own = out.resolve(dir.getFileName() + ".key");
            Files.move(key, own);
            Files.copy(other.resolve(UserStore.KEY_FILE), key);
            Map<String, byte[]> before = snapshot(dir);
            for (String id : new String[]{user, "newcomer"}) {
                final RewardModel.Config c = cfg;
                try (UserStore s = UserStore.open(dir, id, c, 10)) {
                    throw new AssertionError(id + ": opened a folder whose key names none of its users");
                } catch (java.io.IOException e) {
                    require(e.getMessage().contains("does not name the users in this folder")
                            && e.getMessage().contains("recover_key"), id + ": " + e.getMessage());
                }
                Map<String, byte[]> after = snapshot(dir);
                require(after.keySet().equals(before.keySet()), id + ": files made or erased " + after.keySet());
                for (String n : before.keySet()) {
                    require(Arrays.equals(before.get(n), after.get(n)), id + ": " + n + " changed");
                }
            }
            Files.copy(own, key, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            try (UserStore s = UserStore.open(dir, user, cfg, 10)) {
                require(s.updates() > 0, "its own key back: the user opens with what it learned");
            }
        });
    }

    /** Every regular file of a folder: name -> bytes. */
    static Map<String, byte[]> snapshot(Path dir) throws java.io.IOException {
        Map<String, byte[]> out = new java.util.TreeMap<>();
        try (java.util.stream.Stream<Path> files = Files.list(dir)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                if (Files.isRegularFile(f)) {
                    out.put(f.getFileName().toString(), Files.readAllBytes(f));
                }
            }
        }
        return out;
    }

    static void userStore(TestRunner T, Path out) {
        T.check("UserStore: reopen = checkpoint + journal replay, byte for byte; torn tail and stale records ignored", () -> {
            for (String dtype : new String[]{"float32", "float64"}) {
                Path dir = Files.createTempDirectory(out, "store");
                RewardModel.Config cfg = new RewardModel.Config(7);
                cfg.dtype = dtype;
                java.util.Random g = new java.util.Random(11);
                byte[] live;
                try (UserStore s = UserStore.open(dir, "u1", cfg, 10)) {
                    for (int i = 0; i < 23; i++) {
                        if (i % 3 == 0) {
                            s.learnThumb(ModelGoldenTests.randomVec(g, 7, 0.4), i % 2 == 0, 1.0);
                        } else {
                            s.learnPair(ModelGoldenTests.randomVec(g, 7, 0.4), ModelGoldenTests.randomVec(g, 7, 0.4), 0.7);
                        }
                    }
                    live = s.model().toBytes();
                    require(UserStore.readCheckpoint(UserStore.statePath(dir, "u1"), "u1").updates == 20, "checkpoint every 10");
                    try (java.util.stream.Stream<Path> names = Files.list(dir)) {
                        require(names.noneMatch(f -> f.getFileName().toString().contains("u1")), "no id in file names");
                    }
                    TestRunner.raises(java.io.IOException.class, () -> UserStore.open(dir, "u1", cfg, 10), "second open");
                }
                try (UserStore s = UserStore.open(dir, "u1", cfg, 10)) {
                    require(Arrays.equals(s.model().toBytes(), live), dtype + ": reopen");
                    require(s.updates() == 23, "updates");
                }
                Path keyFile = dir.resolve(UserStore.KEY_FILE), keyBak = dir.resolve("key.bak");
                Files.move(keyFile, keyBak);
                TestRunner.raises(java.io.IOException.class, () -> UserStore.open(dir, "u1", cfg, 10),
                        "a lost key with named users there");
                TestRunner.raises(java.io.IOException.class, () -> UserStore.open(dir, "u2", cfg, 10),
                        "a lost key refuses new users too");
                require(!Files.exists(keyFile), "no new key made over named users");
                Files.move(keyBak, keyFile);
                Path j = UserStore.journalPath(dir, "u1");
                long size = Files.size(j);
                Files.write(j, new byte[]{'E', 'O', 'J', 'R', 1, 2, 3}, java.nio.file.StandardOpenOption.APPEND);
                try (UserStore s = UserStore.open(dir, "u1", cfg, 10)) {
                    require(Arrays.equals(s.model().toBytes(), live), dtype + ": torn tail");
                    require(Files.size(j) == size, "torn tail cut");
                    byte[] before = Files.readAllBytes(j);
                    s.checkpoint();  // crash between the checkpoint and the journal's truncation:
                    Files.write(j, before);
                }
                try (UserStore s = UserStore.open(dir, "u1", cfg, 10)) {
                    require(Arrays.equals(s.model().toBytes(), live), dtype + ": stale records skipped");
                    s.learnPair(ModelGoldenTests.randomVec(g, 7, 0.4), new double[7], 1.0);
                    live = s.model().toBytes();
                }
                try (UserStore s = UserStore.open(dir, "u1", cfg, 10)) {
                    require(Arrays.equals(s.model().toBytes(), live), dtype + ": after more feedback");
                    s.reset();
                }
                try (UserStore s = UserStore.open(dir, "u1", cfg, 10)) {
                    require(s.model().t() == 0 && s.updates() == 0, "reset persisted");
                }
                TestRunner.raises(InvalidInputException.class, () -> UserStore.open(dir, "../x", cfg, 10), "user id");
                // the layout of older versions (id in the names): read, and moved to the keyed names
                byte[] kept;
                try (UserStore s = UserStore.open(dir, "u1", cfg, 10)) {
                    s.learnPair(ModelGoldenTests.randomVec(g, 7, 0.4), new double[7], 1.0);
                    kept = s.model().toBytes();
                }
                Files.move(UserStore.statePath(dir, "u1"), dir.resolve("u1.omdstate"));
                Files.move(UserStore.journalPath(dir, "u1"), dir.resolve("u1.omdjournal"));
                try (UserStore s = UserStore.open(dir, "u1", cfg, 10)) {
                    require(Arrays.equals(s.model().toBytes(), kept), dtype + ": old names read");
                    require(!Files.exists(dir.resolve("u1.omdstate")) && !Files.exists(dir.resolve("u1.omdjournal"))
                            && Files.exists(UserStore.statePath(dir, "u1")), "moved to keyed names");
                }
            }
        });
        T.check("UserStore: choices are journaled as kind-2 records and replay to the live bytes; a bad chosen "
                + "index is damage (cut)", () -> {
            for (String dtype : new String[]{"float32", "float64"}) {
                Path dir = Files.createTempDirectory(out, "choice");
                RewardModel.Config cfg = new RewardModel.Config(5);
                cfg.dtype = dtype;
                java.util.Random g = new java.util.Random(3);
                byte[] live;
                long updates;
                try (UserStore s = UserStore.open(dir, "u2", cfg, 100)) {
                    for (int i = 0; i < 12; i++) {
                        if (i % 3 == 0) {
                            s.learnPair(ModelGoldenTests.randomVec(g, 5, 0.4), ModelGoldenTests.randomVec(g, 5, 0.4), 1.0);
                        } else {
                            int k = i % 3 == 1 ? 3 : RewardModel.MAX_CHOICES;
                            double[][] phi = new double[k][];
                            for (int j = 0; j < k; j++) {
                                phi[j] = ModelGoldenTests.randomVec(g, 5, 0.4);
                            }
                            s.learnChoice(phi, i % k, 0.5 + i % 2);
                        }
                    }
                    live = s.model().toBytes();
                    updates = s.updates();
                }
                require(updates == 12, "updates " + updates);
                try (UserStore s = UserStore.open(dir, "u2", cfg, 100)) {
                    require(Arrays.equals(s.model().toBytes(), live), dtype + ": replayed choices");
                }
                Path jp = UserStore.journalPath(dir, "u2");
                byte[] head = Files.readAllBytes(jp);
                int item = "float32".equals(dtype) ? 4 : 8;
                long epoch = Journal.checkOne(head, 0, 5, item).record.epoch;
                byte[] rec = Journal.encodeChoice(epoch, updates + 1, new double[3][5], item, 0, 1.0, 0.0);
                java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(rec).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                b.putDouble(40, 3.0);  // chosen index 3 of k = 3, resealed: a valid CRC, a bad record
                java.util.zip.CRC32 crc = new java.util.zip.CRC32();
                crc.update(rec, 0, rec.length - 4);
                b.putInt(rec.length - 4, (int) crc.getValue());
                byte[] both = new byte[head.length + rec.length];
                System.arraycopy(head, 0, both, 0, head.length);
                System.arraycopy(rec, 0, both, head.length, rec.length);
                Journal.Parsed p = Journal.parse(both, epoch, 0, 5, item, 0, true);
                require(!p.newer && p.records.size() == 12 && p.stopAt == head.length
                        && p.stop.contains("chosen index"), "parse: " + p.stop);
                Files.write(jp, both);
                try (UserStore s = UserStore.open(dir, "u2", cfg, 100)) {
                    require(Arrays.equals(s.model().toBytes(), live) && s.updates() == 12, dtype + ": valid prefix");
                }
                require(Arrays.equals(Files.readAllBytes(jp), head), dtype + ": the bad record was cut");
            }
        });
        T.check("UserStore: a newer edge-omd's record (version 2, kind 9) is refused, never cut; a torn one is cut", () -> {
            for (String what : new String[]{"version", "kind9"}) {
                Path dir = Files.createTempDirectory(out, "newer");
                RewardModel.Config cfg = new RewardModel.Config(5);
                java.util.Random g = new java.util.Random(4);
                long updates;
                try (UserStore s = UserStore.open(dir, "u3", cfg, 100)) {
                    for (int i = 0; i < 2; i++) {
                        s.learnPair(ModelGoldenTests.randomVec(g, 5, 0.4), ModelGoldenTests.randomVec(g, 5, 0.4), 1.0);
                    }
                    updates = s.updates();
                }
                Path jp = UserStore.journalPath(dir, "u3");
                byte[] head = Files.readAllBytes(jp);
                long epoch = Journal.checkOne(head, 0, 5, 4).record.epoch;
                byte[] fut = Journal.encode(epoch, updates + 1, new double[]{1, 2, 3, 4, 5}, 4, 1.0, 1.0, 0.0);
                java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(fut).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                if (what.equals("version")) {
                    b.putShort(8, (short) (Journal.VERSION + 1));
                } else {
                    b.put(10, (byte) 9);
                }
                java.util.zip.CRC32 crc = new java.util.zip.CRC32();
                crc.update(fut, 0, fut.length - 4);
                b.putInt(fut.length - 4, (int) crc.getValue());
                byte[] both = new byte[head.length + fut.length];
                System.arraycopy(head, 0, both, 0, head.length);
                System.arraycopy(fut, 0, both, head.length, fut.length);
                Files.write(jp, both);
                Journal.Parsed p = Journal.parse(both, epoch, 0, 5, 4, 0, true);
                require(p.newer && p.records.size() == 2 && p.stopAt == head.length
                        && p.stop.contains("newer edge-omd"), what + " parse: " + p.stop);
                TestRunner.raises(StateFormatException.class, () -> UserStore.open(dir, "u3", cfg, 100), what);
                require(Arrays.equals(Files.readAllBytes(jp), both), what + ": the journal is kept whole");
                byte[] torn = Arrays.copyOf(both, both.length - 3);  // the same record torn: cut as before
                require(!Journal.parse(torn, epoch, 0, 5, 4, 0, true).newer, what + ": torn is not newer");
                Files.write(jp, torn);
                try (UserStore s = UserStore.open(dir, "u3", cfg, 100)) {
                    require(s.updates() == updates, what + ": the valid prefix opens");
                }
                require(Arrays.equals(Files.readAllBytes(jp), head), what + ": the torn tail was cut");
            }
        });
    }

    /**
     * Python FolderStore users (make_golden.py write_folder_store: every solver x dtype, two with a
     * radius; journals with pairs, thumbs and choices): UserStore opens each one (replaying its
     * kind-1 and kind-2 records), matches Python's live model, continues with the observations
     * Python continued with (matching Python's state after each), and leaves the folder for
     * Python to open (tests/android/test_java_core.py).
     */
    static void folderStore(TestRunner T, Path golden, Path out) throws Exception {
        Path root = golden.resolve("journal"), src = root.resolve("folder_store");
        Path dir = out.resolve("folder_store"), javaLive = out.resolve("folder_java_live");
        Files.createDirectories(dir);
        Files.createDirectories(javaLive);
        try (java.util.stream.Stream<Path> files = Files.list(src)) {   // key, checkpoints, journals
            for (Path f : (Iterable<Path>) files::iterator) {
                if (Files.isRegularFile(f)) {
                    Files.copy(f, dir.resolve(f.getFileName()), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                }
            }
        }
        List<Object> users = Json.arr(Json.parse(new String(Files.readAllBytes(root.resolve("users.json")),
                StandardCharsets.UTF_8)));
        for (Object o : users) {
            Map<String, Object> u = Json.obj(o);
            String user = (String) u.get("user");
            int dim = (int) Json.integer(u.get("dim"));
            RewardModel.Config cfg = ModelGoldenTests.config(u, dim);
            double tol = "float32".equals(cfg.dtype) ? ModelGoldenTests.TOL32
                    : !cfg.radius.isPresent() ? ModelGoldenTests.TOL64 : ModelGoldenTests.TOL64_PROJECTION;
            T.check("UserStore opens Python FolderStore user " + user + " (choices replayed), continues it as "
                    + "Python does, and leaves it for Python", () -> {
                RewardModel live = RewardModel.fromBytes(Files.readAllBytes(root.resolve("folder_live")
                        .resolve(user + ".eomd")));
                try (UserStore s = UserStore.open(dir, user, new RewardModel.Config(dim), 1000)) {
                    long n = Json.integer(u.get("updates"));
                    require(s.updates() == n && s.model().t() == n, "updates " + s.updates());
                    require(s.model().solver().equals(cfg.solver) && s.model().dtype().equals(cfg.dtype), "settings");
                    close(s.model().theta(), live.theta(), tol, "theta after replay vs Python's live model");
                    close(s.model().localNorm(), live.localNorm(), tol, "local norm after replay");
                    require(Arrays.equals(s.model().headFingerprint(), live.headFingerprint()), "fingerprint");
                    List<Object> next = Json.arr(u.get("next"));
                    for (int k = 1; k <= next.size(); k++) {
                        learn(s, Json.obj(next.get(k - 1)));
                        RewardModel py = RewardModel.fromBytes(Files.readAllBytes(root.resolve("folder_next")
                                .resolve(user + "." + k + ".eomd")));
                        require(s.model().t() == py.t(), "t after continued step " + k);
                        close(s.model().theta(), py.theta(), tol, "theta after continued step " + k);
                        close(s.model().localNorm(), py.localNorm(), tol, "local norm after continued step " + k);
                    }
                    Files.write(javaLive.resolve(user + ".eomd"), s.model().toBytes());
                }
            });
        }
    }

    /** One golden observation through the store (what the app calls: each is journaled). */
    static void learn(UserStore s, Map<String, Object> step) throws java.io.IOException {
        double w = Json.num(step.get("w"));
        switch ((String) step.get("kind")) {
            case "one": s.learnOne(Json.doubles(step.get("z")), Json.num(step.get("y")), w); break;
            case "pair": s.learnPair(Json.doubles(step.get("a")), Json.doubles(step.get("b")), w); break;
            case "thumb": s.learnThumb(Json.doubles(step.get("phi")), (Boolean) step.get("up"), w); break;
            case "choice":
                s.learnChoice(ModelGoldenTests.matrix(step.get("P")), (int) Json.integer(step.get("c")), w);
                break;
            default: throw new IllegalArgumentException((String) step.get("kind"));
        }
    }
}
