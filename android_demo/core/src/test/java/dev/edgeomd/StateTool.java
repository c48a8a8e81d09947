package dev.edgeomd;

import java.nio.file.Paths;

/**
 * JVM check driven by tests/android/test_java_reader.py: StateTool STATE_FILE prints
 * "solver dim rank t", theta one per line, and "reward_ones R"; or "ERROR message" with exit 3
 * when the state is refused.
 */
public final class StateTool {
    private StateTool() {
    }

    public static void main(String[] args) throws Exception {
        RewardModel m;
        try {
            m = RewardModel.load(Paths.get(args[0]));
        } catch (StateFormatException e) {
            System.out.println("ERROR " + e.getMessage());
            System.exit(3);
            return;
        }
        System.out.println(m.solver() + " " + m.dim() + " " + m.rank() + " " + m.t());
        StringBuilder out = new StringBuilder();
        for (double v : m.theta()) {
            out.append(v).append('\n');
        }
        System.out.print(out);
        double[] ones = new double[m.dim()];
        java.util.Arrays.fill(ones, 1.0);
        System.out.println("reward_ones " + m.reward(ones));
    }
}
