package dev.edgeomd;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.IntFunction;

/**
 * Which two responses to show (edge_omd/strategies.py, choose_pair). Best first, ties broken by
 * index, so every strategy but "random" is deterministic and matches Python exactly.
 */
public final class Strategies {
    public static final String[] STRATEGIES = {"ucb", "best_quantile", "best_second", "best_worst", "random"};
    public static final double DEFAULT_BETA = 1.0;
    public static final double DEFAULT_Q = 4.0;

    private Strategies() {
    }

    /** Indices sorted best first (descending value, ties by index). */
    static int[] order(double[] r) {
        Integer[] idx = new Integer[r.length];
        for (int i = 0; i < r.length; i++) {
            idx[i] = i;
        }
        java.util.Arrays.sort(idx, (a, b) -> {
            int c = Double.compare(r[b], r[a]);
            return c != 0 ? c : Integer.compare(a, b);
        });
        int[] out = new int[r.length];
        for (int i = 0; i < r.length; i++) {
            out[i] = idx[i];
        }
        return out;
    }

    /**
     * (first, second) of the two responses to show. widthFrom.apply(a) returns the widths
     * ||phi_b - phi_a||_{cal_H^{-1}} (only "ucb" needs it); rng only for "random".
     */
    public static int[] choosePair(double[] rewards, IntFunction<double[]> widthFrom, String strategy,
                                   double beta, double q, Random rng) {
        int n = rewards.length;
        if (n < 2) {
            throw new InvalidInputException("choose_pair needs at least 2 candidates, got " + n);
        }
        for (double r : rewards) {
            if (Double.isNaN(r)) {
                throw new InvalidInputException("rewards contain NaN");
            }
        }
        switch (strategy == null ? "" : strategy) {
            case "random": {
                Random g = rng == null ? new Random() : rng;
                int i = g.nextInt(n);
                int j = g.nextInt(n - 1);
                if (j >= i) {
                    j++;
                }
                return new int[]{i, j};
            }
            case "best_second": {
                int[] o = order(rewards);
                return new int[]{o[0], o[1]};
            }
            case "best_worst": {
                int[] o = order(rewards);
                return new int[]{o[0], o[n - 1]};
            }
            case "best_quantile": {
                if (!(q >= 1)) {
                    throw new ConfigException("q must be >= 1, got " + q);
                }
                int[] o = order(rewards);
                int k = (int) Math.min(n, Math.max(2, Math.ceil(n / q)));
                return new int[]{o[0], o[k - 1]};
            }
            case "ucb": {
                if (widthFrom == null) {
                    throw new ConfigException("strategy 'ucb' needs the widths ||phi_b - phi_best||_{H^-1}");
                }
                if (!(Double.isFinite(beta) && beta >= 0)) {
                    throw new ConfigException("beta must be a finite number >= 0, got " + beta);
                }
                int best = order(rewards)[0];
                double[] w = widthFrom.apply(best);
                double[] ucb = new double[n];
                for (int i = 0; i < n; i++) {
                    ucb[i] = rewards[i] + 2.0 * beta * w[i];
                }
                ucb[best] = Double.NEGATIVE_INFINITY;
                return new int[]{best, order(ucb)[0]};
            }
            default:
                throw new ConfigException("unknown strategy '" + strategy + "'; choose one of ucb, best_quantile, "
                        + "best_second, best_worst, random");
        }
    }

    /** choosePair on a model and candidate features (the Personalizer's use). */
    public static int[] choosePair(RewardModel model, double[][] phi, String strategy, double beta, double q,
                                   Random rng) {
        double[] r = model.reward(phi);
        return choosePair(r, a -> model.width(phi, phi[a]), strategy, beta, q, rng);
    }

    /**
     * Active setting (strategies.greedy_queries): pick up to k rows of Z (candidate directions
     * z = phi - phi') of maximal width, adding each pick's curvature to a COPY of the model
     * (fantasize) so the k queries are not redundant; rows of zero width are never picked, a row
     * whose fantasized curvature the dtype cannot hold is still picked (the copy unchanged).
     * Returns {row, width at pick time} pairs in pick order; the model does not change.
     */
    public static List<double[]> greedyQueries(RewardModel model, double[][] Z, int k) {
        List<double[]> out = new ArrayList<>();
        if (Z.length == 0) {
            return out;
        }
        RewardModel m = model.copy();
        boolean[] taken = new boolean[Z.length];
        for (int round = 0; round < Math.min(k, Z.length); round++) {
            double[] w = m.width(Z, null);
            int j = -1;
            double best = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < w.length; i++) {
                double wi = taken[i] ? Double.NEGATIVE_INFINITY : w[i];
                if (j < 0 || wi > best) {  // argmax, first index on ties (as numpy)
                    best = wi;
                    j = i;
                }
            }
            if (!(best > 0.0)) {
                break;
            }
            out.add(new double[]{j, best});
            taken[j] = true;
            try {
                m.fantasize(Z[j], 1.0);
            } catch (NumericalException e) {
                // the copy is unchanged (fantasize's guards; learning it would be refused too):
                // the row is still picked, the next rounds see the widths without it
            }
        }
        return out;
    }

    /** Lower confidence bound r_a - beta w_a (passive setting). */
    public static double[] pessimisticScores(double[] rewards, double[] widths, double beta) {
        double[] out = new double[rewards.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = rewards[i] - beta * widths[i];
        }
        return out;
    }
}
