package dev.edgeomd;

import java.util.ArrayList;
import java.util.List;

/** A tiny test runner (no JUnit here): named checks, failures collected, "N passed, N failed". */
final class TestRunner {
    interface Check {
        void run() throws Exception;
    }

    int passed, failed;
    final List<String> failures = new ArrayList<>();
    final boolean verbose;

    TestRunner(boolean verbose) {
        this.verbose = verbose;
    }

    void check(String name, Check c) {
        try {
            c.run();
            passed++;
            if (verbose) {
                System.out.println("PASS " + name);
            }
        } catch (Throwable e) {
            failed++;
            String msg = "FAIL " + name + ": " + e;
            failures.add(msg);
            System.out.println(msg);
            if (verbose) {
                e.printStackTrace(System.out);
            }
        }
    }

    static void require(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    /** max |a - b| <= tol * max(max |b|, floor): relative to the compared vector's scale. */
    static double relErr(double[] a, double[] b) {
        require(a.length == b.length, "length " + a.length + " != " + b.length);
        double diff = 0, scale = 0;
        for (int i = 0; i < a.length; i++) {
            diff = Math.max(diff, Math.abs(a[i] - b[i]));
            scale = Math.max(scale, Math.abs(b[i]));
        }
        return scale == 0 ? diff : diff / scale;
    }

    static void close(double[] a, double[] b, double tol, String what) {
        double e = relErr(a, b);
        if (!(e <= tol)) {
            throw new AssertionError(what + ": relative error " + e + " > " + tol);
        }
    }

    static void raises(Class<? extends Throwable> type, Check c, String what) {
        try {
            c.run();
        } catch (Throwable e) {
            if (type.isInstance(e)) {
                return;
            }
            throw new AssertionError(what + ": expected " + type.getSimpleName() + ", got " + e);
        }
        throw new AssertionError(what + ": expected " + type.getSimpleName() + ", nothing raised");
    }

    int finish() {
        System.out.println(passed + " passed, " + failed + " failed");
        return failed == 0 ? 0 : 1;
    }
}
