package dev.edgeomd;

/**
 * The memory side of a RewardModel's settings (edge_omd/reward_model.py _choose_solver and the
 * solvers' state_bytes): the bytes of each solver's state, of the model's front (z and t) and of
 * step 3's workspace, and which solver and sketch rank a budget holds. Budgets and nbytes agree
 * with Python, so the same settings pick the same solver and rank on both sides.
 */
final class ModelSize {
    /** The solver a budget holds and its sketch rank (0 for the other solvers). */
    static final class Pick {
        final String solver;
        final int rank;

        Pick(String solver, int rank) {
            this.solver = solver;
            this.rank = rank;
        }
    }

    private final int d, itemsize;
    private final long budget;    // 0: unlimited
    private final double radius;  // NaN: no step 3

    ModelSize(int d, int itemsize, long budget, double radius) {
        this.d = d;
        this.itemsize = itemsize;
        this.budget = budget;
        this.radius = radius;
    }

    /**
     * Solver {@code name} ("auto" or one of the four) for this budget: "auto" takes exact (cg when
     * forget < 1) if it fits, else the largest sketch of rank >= 2, else diagonal; ConfigException
     * when nothing fits, with Python's messages.
     */
    Pick pick(String name, int forcedRank, double forget) {
        long front = frontBytes(d, itemsize);
        switch (name) {
            case "auto": {
                String full = forget == 1.0 ? "exact" : "cg";
                if (fits(full, 0)) {
                    return new Pick(full, 0);
                }
                int r = sketchRankForBudget(forcedRank);
                if (r >= 2) {
                    return new Pick("sketch", r);
                }
                if (fits("diagonal", 0)) {
                    return new Pick("diagonal", 0);
                }
                throw new ConfigException("budget_bytes=" + budget + " is below the smallest state for d=" + d
                        + " (diagonal: " + (DiagonalSolver.stateBytes(d, itemsize) + front) + " bytes)");
            }
            case "sketch": {
                int r = sketchRankForBudget(forcedRank);
                if (r < 1) {
                    throw new ConfigException("budget_bytes=" + budget + " holds no sketch for d=" + d
                            + " (rank 1 needs " + (SketchState.stateBytes(d, itemsize, 1) + front) + " bytes)");
                }
                return new Pick("sketch", r);
            }
            case "exact":
            case "cg":
            case "diagonal":
                if (!fits(name, 0)) {
                    throw new ConfigException("solver '" + name + "' needs " + (solverBytes(name, d, itemsize, 0) + front)
                            + " bytes for d=" + d + ", budget_bytes=" + budget);
                }
                return new Pick(name, 0);
            default:
                throw new ConfigException("solver must be 'auto' or one of [cg, diagonal, exact, sketch], got '"
                        + name + "'");
        }
    }

    private boolean fits(String name, int r) {
        return budget == 0 || solverBytes(name, d, itemsize, r) + frontBytes(d, itemsize)
                + projectionBytes(name, d, r, radius) <= budget;
    }

    private int sketchRankForBudget(int forced) {
        if (forced > 0) {
            return fits("sketch", forced) ? forced : 0;
        }
        if (budget == 0) {
            return Math.min(d, 64);
        }
        int lo = 0, hi = SketchState.maxRank(d, itemsize, budget - frontBytes(d, itemsize));
        while (lo < hi && !Double.isNaN(radius)) {  // the projection's workspace grows with the rank
            int mid = (lo + hi + 1) / 2;
            if (fits("sketch", mid)) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return hi;
    }

    /**
     * Bytes Python's RewardModel counts for step 3's fixed workspace when a radius is set
     * (edge_omd/projection.py workspace_bytes with each solver's projection_shape).
     */
    static long projectionBytes(String name, long d, long rank, double radius) {
        if (Double.isNaN(radius)) {
            return 0;
        }
        long small = 1, kmax = 24, steps = 512;
        if ("diagonal".equals(name)) {
            kmax = 0;
            steps = 0;
        } else if ("sketch".equals(name)) {
            small = 2 * rank;
            kmax = Math.min(24, 2 * rank + 2);
            steps = 4 * rank + 12;
        }
        kmax = Math.min(kmax, d);
        steps = Math.min(steps, 4 * d + 8);
        small = Math.max(small, 1);
        return 8 * ((kmax + 1) * d + 3 * d + 4 * d + 2 * d + 7 * steps + 8 + 2 * small);
    }

    static long frontBytes(long d, int itemsize) {
        return d * itemsize + 8;
    }

    static long solverBytes(String name, long d, int itemsize, long rank) {
        switch (name) {
            case "exact":
                return ExactState64.stateBytes(d, itemsize);
            case "cg":
                return CgSolver.stateBytes(d, itemsize);
            case "sketch":
                return SketchState.stateBytes(d, itemsize, rank);
            default:
                return DiagonalSolver.stateBytes(d, itemsize);
        }
    }
}
