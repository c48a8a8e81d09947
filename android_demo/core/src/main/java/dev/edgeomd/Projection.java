package dev.edgeomd;

/**
 * Step 3 of Algorithm 1 (edge_omd/projection.py): the tilde_H-norm projection of theta' onto
 * {||theta||_2 <= B}: theta(mu) = (tilde_H + mu I)^{-1} tilde_H theta' with Newton on
 * 1/||theta(mu)|| - 1/B safeguarded by bisection, each solve by float64 CG. The rare path.
 */
final class Projection {
    interface Op {
        double[] apply(double[] v);
    }

    private Projection() {
    }

    static double[] cg(Op matvec, double[] b, double[] x0, double tol, int maxSteps) {
        int d = b.length;
        double[] x = x0.clone();
        double[] Ax = matvec.apply(x);
        double[] r = new double[d];
        for (int i = 0; i < d; i++) {
            r[i] = b[i] - Ax[i];
        }
        double[] p = r.clone();
        double rr = Num.dot(r, r);
        double stop = tol * tol * Num.dot(b, b);
        for (int it = 0; it < maxSteps; it++) {
            if (rr <= stop) {
                break;
            }
            double[] Ap = matvec.apply(p);
            double alpha = rr / Num.dot(p, Ap);
            for (int i = 0; i < d; i++) {
                x[i] += alpha * p[i];
                r[i] -= alpha * Ap[i];
            }
            double rrNew = Num.dot(r, r);
            double beta = rrNew / rr;
            for (int i = 0; i < d; i++) {
                p[i] = r[i] + beta * p[i];
            }
            rr = rrNew;
        }
        return x;
    }

    static double[] projectToBall(double[] thetaPrime, Op tilde, double radius) {
        final double tol = 1e-12;
        final int maxIter = 100;
        int d = thetaPrime.length;
        if (Num.norm(thetaPrime) <= radius) {
            return thetaPrime.clone();
        }
        double[] b = tilde.apply(thetaPrime);
        double lo = 0.0, hi = Num.norm(b) / radius;
        double mu = 0.0;
        double[] x = thetaPrime.clone();
        for (int it = 0; it < maxIter; it++) {
            final double muF = mu;
            Op shifted = v -> {
                double[] out = tilde.apply(v);
                for (int i = 0; i < d; i++) {
                    out[i] += muF * v[i];
                }
                return out;
            };
            x = cg(shifted, b, x, 1e-13, 10 * d);
            double nx = Num.norm(x);
            if (Math.abs(nx - radius) <= tol * radius) {
                break;
            }
            if (nx > radius) {
                lo = mu;
            } else {
                hi = mu;
            }
            double[] w = cg(shifted, x, new double[d], 1e-13, 10 * d);
            double dphi = Num.dot(x, w) / (nx * nx * nx);
            double muNew = dphi > 0 ? mu - (1.0 / nx - 1.0 / radius) / dphi : 0.5 * (lo + hi);
            if (!(lo < muNew && muNew < hi)) {
                muNew = 0.5 * (lo + hi);
            }
            mu = muNew;
        }
        double nx = Num.norm(x);
        if (nx > radius) {
            double[] out = new double[d];
            for (int i = 0; i < d; i++) {
                out[i] = x[i] * (radius / nx);
            }
            return out;
        }
        return x;
    }
}
