package dev.edgeomd;

/**
 * RewardModel's checks of what a caller passes (edge_omd/_checks.py and RewardModel's own), with
 * Python's messages: InvalidInputException for a bad vector, label, weight or chosen index,
 * ConfigException for a setting out of range. Each returns normally or throws; none changes state.
 */
final class InputChecks {
    private InputChecks() {
    }

    /** A feature vector of length d: finite, |entries| <= MAX_ABS_INPUT. */
    static void vector(double[] x, String name, int d) {
        if (x == null || x.length != d) {
            throw new InvalidInputException(name + " must have length " + d + ", got "
                    + (x == null ? "null" : String.valueOf(x.length)));
        }
        double top = 0.0;
        for (double v : x) {
            double a = Math.abs(v);
            if (!(a <= Double.MAX_VALUE)) {
                throw new InvalidInputException(name + " contains NaN or inf");
            }
            top = Math.max(top, a);
        }
        if (top > RewardModel.MAX_ABS_INPUT) {
            throw new InvalidInputException(name + " has entries above 1e+06 in magnitude; features are "
                    + "expected L2-normalised");
        }
    }

    /** 2 to MAX_CHOICES rows of length d (each row's values checked by the caller). */
    static void choiceShape(double[][] Phi, int d) {
        if (Phi == null) {
            throw new InvalidInputException("Phi must have shape (k, " + d + "), got null");
        }
        if (Phi.length < 2 || Phi.length > RewardModel.MAX_CHOICES) {
            throw new InvalidInputException("a choice needs 2 to " + RewardModel.MAX_CHOICES + " candidates, got "
                    + Phi.length);
        }
        for (double[] row : Phi) {
            if (row == null || row.length != d) {
                throw new InvalidInputException("Phi must have shape (k, " + d + "), got a row of length "
                        + (row == null ? "null" : String.valueOf(row.length)));
            }
        }
    }

    /**
     * A replayed vector exactly as a live call can have left it (Python's _checks.exact_array):
     * length d, finite, within 2 MAX_ABS_INPUT (a pair's difference), float32 values for a float32
     * state.
     */
    static void exact(double[] x, String name, int d, boolean f32) {
        if (x == null || x.length != d) {
            throw new InvalidInputException(name + " must have length " + d);
        }
        for (double v : x) {
            if (!Double.isFinite(v)) {
                throw new InvalidInputException(name + " contains NaN or inf");
            }
            if (Math.abs(v) > 2 * RewardModel.MAX_ABS_INPUT) {
                throw new InvalidInputException(name + " has entries above 2e+06 in magnitude; features are "
                        + "expected L2-normalised");
            }
            if (f32 && (double) (float) v != v) {
                throw new InvalidInputException(name + " must hold float32 values for a float32 state");
            }
        }
    }

    static int chosenIndex(int chosen, int k) {
        if (chosen < 0 || chosen >= k) {
            throw new InvalidInputException("chosen must be in [0, " + (k - 1) + "], got " + chosen);
        }
        return chosen;
    }

    static double label(double y) {
        if (!Double.isFinite(y)) {
            throw new InvalidInputException("y must be finite, got " + y);
        }
        if (!(y >= 0.0 && y <= 1.0)) {
            throw new InvalidInputException("y must be in [0, 1], got " + y);
        }
        return y;
    }

    static double weight(double w) {
        if (!Double.isFinite(w)) {
            throw new InvalidInputException("weight must be finite, got " + w);
        }
        if (!(w > 0.0 && w <= RewardModel.MAX_WEIGHT)) {
            throw new InvalidInputException("weight must be in (0, 1e+06], got " + w);
        }
        return w;
    }

    /** x as Python's f"{x:g}" writes it (6 significant digits, no trailing zeros), for messages. */
    static String pyG(double x) {
        if (x == 0.0 || !Double.isFinite(x)) {
            return x == 0.0 ? (1.0 / x < 0 ? "-0" : "0") : Double.isNaN(x) ? "nan" : x > 0 ? "inf" : "-inf";
        }
        java.math.BigDecimal b = new java.math.BigDecimal(x).round(new java.math.MathContext(6));
        int exp = b.precision() - b.scale() - 1;
        if (exp < -4 || exp >= 6) {
            String m = b.movePointLeft(exp).stripTrailingZeros().toPlainString();
            return m + "e" + (exp < 0 ? "-" : "+") + (Math.abs(exp) < 10 ? "0" : "") + Math.abs(exp);
        }
        return b.stripTrailingZeros().toPlainString();
    }

    /** x in [lo, hi] ((lo, hi] when lo is 0), else ConfigException naming the setting. */
    static double rangeParam(String name, double x, double lo, double hi) {
        boolean okLo = lo == 0.0 ? x > lo : x >= lo;
        if (!Double.isFinite(x) || !okLo || x > hi) {
            throw new ConfigException(name + " must be in " + (lo == 0.0 ? "(" : "[") + lo + ", " + hi + "], got " + x);
        }
        return x;
    }
}
