package dev.edgeomd;

import java.nio.file.Paths;

/**
 * JVM check driven by tests/runtime/test_java_reader.py (javac + java only: no JUnit, no Gradle).
 * Usage: RewardStateCheck STATE_FILE   -> prints "solver dim rank t" then theta, one per line,
 * or "ERROR <message>" and exit code 3 when the state is refused.
 */
public final class RewardStateCheck {
    public static void main(String[] args) throws Exception {
        RewardState s;
        try {
            s = RewardState.read(Paths.get(args[0]));
        } catch (RewardState.StateFormatException e) {
            System.out.println("ERROR " + e.getMessage());
            System.exit(3);
            return;
        }
        System.out.println(s.solver + " " + s.dim + " " + s.rank + " " + s.t);
        StringBuilder out = new StringBuilder();
        for (double v : s.theta()) {
            out.append(Double.toString(v)).append('\n');
        }
        System.out.print(out);
        float[] ones = new float[s.dim];
        java.util.Arrays.fill(ones, 1.0f);
        System.out.println("reward_ones " + s.reward(ones));
    }
}
