package dev.edgeomd;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.edgeomd.TestRunner.raises;
import static dev.edgeomd.TestRunner.require;

/**
 * Population packs on the phone (issue 19, item 6), beyond the golden streams that start at one
 * (ModelGoldenTests): the reader accepts exactly the pack files Python accepts, with Python's
 * digest; a started model resets to the pack; a pack of another dim, lam or head is refused;
 * UserStore starts new users at the pack, keeps its digest in every checkpoint it rewrites,
 * and refuses a pack fitted on another head.
 */
final class PackTests {
    private PackTests() {
    }

    static String hex(byte[] b) {
        StringBuilder s = new StringBuilder();
        for (byte x : b) {
            s.append(String.format("%02x", x & 0xff));
        }
        return s.toString();
    }

    static void run(TestRunner T, Path root, Path out) throws Exception {
        Path refuse = root.resolve("pack_refuse");
        Map<String, Object> verdicts = ModelGoldenTests.readJson(refuse.resolve("verdicts.json"));
        T.check("packs: Java reads exactly the pack files Python reads (" + verdicts.size() + " files), same digest", () -> {
            StringBuilder bad = new StringBuilder();
            for (Map.Entry<String, Object> e : verdicts.entrySet()) {
                Map<String, Object> v = Json.obj(e.getValue());
                byte[] data = Files.readAllBytes(refuse.resolve(e.getKey() + ".bin"));
                Pack p = null;
                String err = null;
                try {
                    p = Pack.fromBytes(data);
                } catch (StateFormatException x) {
                    err = x.getMessage();
                }
                boolean ok = (Boolean) v.get("ok");
                if (ok != (p != null)) {
                    bad.append(e.getKey()).append(": Python ").append(ok ? "accepts" : "refuses").append(", Java ")
                            .append(err == null ? "accepts" : "refuses (" + err + ")").append("; ");
                } else if (ok && (!hex(p.digest()).equals(v.get("digest")) || p.k != Json.integer(v.get("k")))) {
                    bad.append(e.getKey()).append(": digest or k differs; ");
                }
            }
            require(bad.length() == 0, bad.toString());
        });
        List<Object> names = Json.arr(Json.parse(new String(Files.readAllBytes(root.resolve("index.json")),
                java.nio.charset.StandardCharsets.UTF_8)));
        T.check("packs: a started model resets to the pack's start; reset is Python's", () -> {
            int n = 0;
            for (Object o : names) {
                Path folder = root.resolve((String) o);
                Map<String, Object> c = ModelGoldenTests.readJson(folder.resolve("case.json"));
                if (!c.containsKey("pack")) {
                    continue;
                }
                n++;
                Pack pack = Pack.load(folder.resolve((String) c.get("pack")));
                require(hex(pack.digest()).equals(c.get("pack_digest")), o + ": digest");
                RewardModel.Config cfg = ModelGoldenTests.config(c, (int) Json.integer(c.get("dim")));
                RewardModel m = new RewardModel(cfg, pack);
                byte[] start = Files.readAllBytes(folder.resolve("s0.eomd"));
                List<Object> steps = Json.arr(c.get("steps"));
                for (int k = 0; k < 5; k++) {
                    ModelGoldenTests.apply(m, Json.obj(steps.get(k)));
                }
                m.reset();
                require(m.t() == 0 && m.pack() == pack, o + ": reset");
                require(Arrays.equals(m.toBytes(), start) == (Boolean) c.get("reset_bytes_equal_s0"),
                        o + ": the reset state is not Python's");
            }
            require(n >= 11, "pack cases: " + n);
        });
        T.check("packs: another dim, lam or head, or a sketch with directions, is refused; nothing changes", () -> {
            Path folder = root.resolve("pack_exact_float64");
            Pack pack = Pack.load(folder.resolve("pack.eomdpop"));
            RewardModel.Config cfg = new RewardModel.Config(pack.dim);
            cfg.dtype = "float64";
            raises(ConfigException.class, () -> new RewardModel(cfg, pack), "lam 1 vs the pack's");
            cfg.lam = pack.lam;
            RewardModel m = new RewardModel(cfg, pack);
            byte[] before = m.toBytes();
            RewardModel.Config wide = new RewardModel.Config(pack.dim + 1);
            wide.lam = pack.lam;
            raises(ConfigException.class, () -> new RewardModel(wide, pack), "dim");
            RewardModel.Config bound = new RewardModel.Config(pack.dim);
            bound.lam = pack.lam;
            bound.headFingerprint = new byte[32];
            Pack other = Pack.load(root.resolve("pack_store").resolve("other_head.eomdpop"));
            RewardModel.Config b8 = new RewardModel.Config(other.dim);
            b8.lam = other.lam;
            b8.headFingerprint = new byte[32];
            b8.headFingerprint[0] = 1;                       // not the pack's head
            raises(ConfigException.class, () -> new RewardModel(b8, other), "another head");
            RewardModel.Config sk = new RewardModel.Config(pack.dim);
            sk.lam = pack.lam;
            sk.solver = "sketch";
            sk.sketchRank = java.util.OptionalInt.of(3);
            raises(ConfigException.class, () -> new RewardModel(sk, pack), "sketch with directions");
            RewardModel unbound = new RewardModel(cfg);
            unbound.startAt(pack);                          // an unbound model: the pack's head
            require(Arrays.equals(unbound.toBytes(), before), "startAt = the constructor");
        });
        Path ps = root.resolve("pack_store");
        T.check("packs: UserStore starts a new user at the pack, keeps its digest in every checkpoint, refuses "
                + "another head's pack", () -> {
            Pack pack = Pack.load(ps.resolve("pack.eomdpop"));
            Pack other = Pack.load(ps.resolve("other_head.eomdpop"));
            Map<String, Object> info = ModelGoldenTests.readJson(ps.resolve("pack.json"));
            RewardModel.Config cfg = new RewardModel.Config(pack.dim);
            cfg.solver = "exact";
            cfg.dtype = "float64";
            cfg.lam = pack.lam;
            cfg.headFingerprint = ModelGoldenTests.hex((String) info.get("fingerprint"));
            Path folder = out.resolve("pack_store_java");
            if (Files.exists(folder)) {                      // a rerun into the same OUT
                try (java.util.stream.Stream<Path> w = Files.walk(folder)) {
                    for (Path p : (Iterable<Path>) w.sorted(java.util.Comparator.reverseOrder())::iterator) {
                        Files.delete(p);
                    }
                }
            }
            raises(ConfigException.class, () -> UserStore.open(folder, "ann", cfg, 3, other), "another head's pack");
            require(!Files.exists(folder.resolve(UserStore.KEY_FILE)) || !Files.exists(UserStore.statePath(folder, "ann")),
                    "a refused open wrote the user");
            byte[] start = Files.readAllBytes(ps.resolve("start.eomd"));
            Random g = new Random(3);
            try (UserStore s = UserStore.open(folder, "ann", cfg, 3, pack)) {
                require(Arrays.equals(s.model().toBytes(), start), "a new user's state is Python's start");
                require(hex(s.packDigest()).equals(info.get("digest")), "new user's digest");
                for (int i = 0; i < 7; i++) {                 // two checkpoint rewrites
                    s.learnThumb(ModelGoldenTests.randomVec(g, pack.dim, 0.4), i % 2 == 0, 1.0);
                }
            }
            require(headerHas(UserStore.statePath(folder, "ann"), (String) info.get("digest")),
                    "the rewritten checkpoint lost the pack digest");
            try (UserStore s = UserStore.open(folder, "ann", cfg, 3)) {   // opened without the pack
                require(hex(s.packDigest()).equals(info.get("digest")), "reopened: digest");
                require(s.updates() == 7, "updates " + s.updates());
                s.learnThumb(ModelGoldenTests.randomVec(g, pack.dim, 0.4), true, 1.0);
                s.checkpoint();
            }
            require(headerHas(UserStore.statePath(folder, "ann"), (String) info.get("digest")),
                    "a store opened without the pack dropped the digest");
            try (UserStore s = UserStore.open(folder, "ann", cfg, 3, pack)) {
                s.reset();                                    // back at the pack's start
                require(Arrays.equals(s.model().toBytes(), start), "reset: the pack's start");
                require(hex(s.packDigest()).equals(info.get("digest")), "reset: digest");
            }
            RewardModel.Config cold = new RewardModel.Config(pack.dim);
            cold.headFingerprint = cfg.headFingerprint;
            try (UserStore s = UserStore.open(folder, "cy", cold, 3)) {
                require(s.packDigest() == null, "a user without a pack has no digest");
                s.learnThumb(ModelGoldenTests.randomVec(g, pack.dim, 0.4), true, 1.0);
                s.checkpoint();
            }
            require(!headerHas(UserStore.statePath(folder, "cy"), "pack_digest"), "no digest written without a pack");
        });
    }

    /** Whether the checkpoint file's JSON header holds this text. */
    static boolean headerHas(Path p, String text) throws java.io.IOException {
        byte[] b = Files.readAllBytes(p);
        int n = java.nio.ByteBuffer.wrap(b, 8, 4).order(java.nio.ByteOrder.LITTLE_ENDIAN).getInt();
        return new String(b, 12, n, java.nio.charset.StandardCharsets.UTF_8).contains(text);
    }
}
