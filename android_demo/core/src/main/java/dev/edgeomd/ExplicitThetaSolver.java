package dev.edgeomd;

/**
 * For solvers that store theta as such (all but exact, which stores U theta): the Java twin of
 * Python's ExplicitTheta mixin (edge_omd/solvers/__init__.py).
 */
abstract class ExplicitThetaSolver extends Solver {
    /** theta_t, values rounded to the state's dtype. */
    final double[] theta;

    ExplicitThetaSolver(int d, boolean f32, double lam) {
        super(d, f32, lam);
        theta = new double[d];
    }

    @Override
    final double[] theta() {
        return theta.clone();
    }

    @Override
    final void setTheta(double[] theta64) {
        for (int i = 0; i < d; i++) {
            theta[i] = Num.rd(theta64[i], f32);
        }
    }

    private double[] kept;

    @Override
    final void keep() {
        if (kept == null) {
            kept = new double[d];
        }
        System.arraycopy(theta, 0, kept, 0, d);
    }

    @Override
    final void restore() {
        System.arraycopy(kept, 0, theta, 0, d);
    }
}
