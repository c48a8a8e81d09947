package dev.edgeomd;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/**
 * Entry point of the Java core's tests: java dev.edgeomd.CoreTests GOLDEN_DIR OUT_DIR [-v] [model|tok]
 * (goldens from android_demo/golden/make_golden.py). Prints "N passed, N failed"; exit 1 on failure.
 */
public final class CoreTests {
    private CoreTests() {
    }

    public static void main(String[] args) throws Exception {
        Path golden = Paths.get(args[0]);
        Path out = Paths.get(args[1]);
        Files.createDirectories(out);
        boolean verbose = false;
        String only = null;
        for (int i = 2; i < args.length; i++) {
            if (args[i].equals("-v")) {
                verbose = true;
            } else {
                only = args[i];
            }
        }
        TestRunner t = new TestRunner(verbose);
        if ((only == null || only.equals("model")) && Files.isDirectory(golden.resolve("model"))) {
            ModelGoldenTests.run(t, golden, out);
        }
        if ((only == null || only.equals("journal")) && Files.isDirectory(golden.resolve("journal"))) {
            JournalGoldenTests.run(t, golden, out);
        }
        if ((only == null || only.equals("tok")) && Files.isDirectory(golden.resolve("tok"))) {
            TokenizerGoldenTests.run(t, golden);
        }
        System.exit(t.finish());
    }
}
