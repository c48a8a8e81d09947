package dev.edgeomd;

/**
 * Eigendecomposition of a small symmetric matrix: Householder tridiagonalisation and the
 * implicit QL algorithm (tred2 / tql2 of EISPACK, as in the public-domain JAMA library).
 * Serves the sketch's Frequent-Directions shrink (2 ell x 2 ell); O(n^3), allocates O(n^2).
 */
public final class SymEigen {
    /** Eigenvalues, ascending. */
    public final double[] values;
    /** Eigenvectors as columns: vectors[k][j] is entry k of the j-th eigenvector. */
    public final double[][] vectors;

    /** A: n x n symmetric, row-major (only read). */
    public SymEigen(double[] A, int n) {
        double[][] V = new double[n][n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                V[i][j] = A[i * n + j];
            }
        }
        double[] d = new double[n], e = new double[n];
        if (n > 0) {
            double[][] VT = transpose(V, n);  // both phases walk V's columns: as rows they are contiguous
            tred2(VT, d, e, n);
            tql2(VT, d, e, n);
            V = transpose(VT, n);
        }
        values = d;
        vectors = V;
    }

    private static double[][] transpose(double[][] A, int n) {
        double[][] T = new double[n][n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                T[j][i] = A[i][j];
            }
        }
        return T;
    }

    private static double hypot(double a, double b) {
        double x = Math.abs(a), y = Math.abs(b);
        double big = Math.max(x, y), small = Math.min(x, y);
        if (big == 0.0) {
            return 0.0;
        }
        double r = small / big;
        return big * Math.sqrt(1.0 + r * r);
    }

    /** Householder tridiagonalisation on the TRANSPOSED matrix (VT[j][k] = V[k][j]): JAMA's
     * column walks become contiguous row walks. */
    private static void tred2(double[][] VT, double[] d, double[] e, int n) {
        for (int j = 0; j < n; j++) {
            d[j] = VT[j][n - 1];
        }
        for (int i = n - 1; i > 0; i--) {
            double scale = 0.0, h = 0.0;
            for (int k = 0; k < i; k++) {
                scale += Math.abs(d[k]);
            }
            if (scale == 0.0) {
                e[i] = d[i - 1];
                for (int j = 0; j < i; j++) {
                    d[j] = VT[j][i - 1];
                    VT[j][i] = 0.0;
                    VT[i][j] = 0.0;
                }
            } else {
                for (int k = 0; k < i; k++) {
                    d[k] /= scale;
                    h += d[k] * d[k];
                }
                double f = d[i - 1];
                double g = Math.sqrt(h);
                if (f > 0) {
                    g = -g;
                }
                e[i] = scale * g;
                h = h - f * g;
                d[i - 1] = f - g;
                for (int j = 0; j < i; j++) {
                    e[j] = 0.0;
                }
                for (int j = 0; j < i; j++) {
                    f = d[j];
                    VT[i][j] = f;
                    g = e[j] + VT[j][j] * f;
                    for (int k = j + 1; k <= i - 1; k++) {
                        g += VT[j][k] * d[k];
                        e[k] += VT[j][k] * f;
                    }
                    e[j] = g;
                }
                f = 0.0;
                for (int j = 0; j < i; j++) {
                    e[j] /= h;
                    f += e[j] * d[j];
                }
                double hh = f / (h + h);
                for (int j = 0; j < i; j++) {
                    e[j] -= hh * d[j];
                }
                for (int j = 0; j < i; j++) {
                    f = d[j];
                    g = e[j];
                    for (int k = j; k <= i - 1; k++) {
                        VT[j][k] -= (f * e[k] + g * d[k]);
                    }
                    d[j] = VT[j][i - 1];
                    VT[j][i] = 0.0;
                }
            }
            d[i] = h;
        }
        for (int i = 0; i < n - 1; i++) {
            VT[i][n - 1] = VT[i][i];
            VT[i][i] = 1.0;
            double h = d[i + 1];
            if (h != 0.0) {
                for (int k = 0; k <= i; k++) {
                    d[k] = VT[i + 1][k] / h;
                }
                for (int j = 0; j <= i; j++) {
                    double g = 0.0;
                    for (int k = 0; k <= i; k++) {
                        g += VT[i + 1][k] * VT[j][k];
                    }
                    for (int k = 0; k <= i; k++) {
                        VT[j][k] -= g * d[k];
                    }
                }
            }
            for (int k = 0; k <= i; k++) {
                VT[i + 1][k] = 0.0;
            }
        }
        for (int j = 0; j < n; j++) {
            d[j] = VT[j][n - 1];
            VT[j][n - 1] = 0.0;
        }
        VT[n - 1][n - 1] = 1.0;
        e[0] = 0.0;
    }

    /** Implicit QL on the tridiagonal (d, e); VT holds the eigenvectors as ROWS. */
    private static void tql2(double[][] VT, double[] d, double[] e, int n) {
        for (int i = 1; i < n; i++) {
            e[i - 1] = e[i];
        }
        e[n - 1] = 0.0;
        double f = 0.0, tst1 = 0.0;
        final double eps = Math.ulp(1.0);
        for (int l = 0; l < n; l++) {
            tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
            int m = l;
            while (m < n - 1) {
                if (Math.abs(e[m]) <= eps * tst1) {
                    break;
                }
                m++;
            }
            if (m > l) {
                int iter = 0;
                do {
                    if (++iter > 300) {
                        throw new ArithmeticException("symmetric eigensolver did not converge");
                    }
                    double g = d[l];
                    double p = (d[l + 1] - g) / (2.0 * e[l]);
                    double r = hypot(p, 1.0);
                    if (p < 0) {
                        r = -r;
                    }
                    d[l] = e[l] / (p + r);
                    d[l + 1] = e[l] * (p + r);
                    double dl1 = d[l + 1];
                    double h = g - d[l];
                    for (int i = l + 2; i < n; i++) {
                        d[i] -= h;
                    }
                    f = f + h;
                    p = d[m];
                    double c = 1.0, c2 = c, c3 = c;
                    double el1 = e[l + 1];
                    double s = 0.0, s2 = 0.0;
                    for (int i = m - 1; i >= l; i--) {
                        c3 = c2;
                        c2 = c;
                        s2 = s;
                        g = c * e[i];
                        h = c * p;
                        r = hypot(p, e[i]);
                        e[i + 1] = s * r;
                        s = e[i] / r;
                        c = p / r;
                        p = c * d[i] - s * g;
                        d[i + 1] = h + s * (c * g + s * d[i]);
                        final double[] vi = VT[i], vi1 = VT[i + 1];
                        for (int k = 0; k < n; k++) {
                            h = vi1[k];
                            vi1[k] = s * vi[k] + c * h;
                            vi[k] = c * vi[k] - s * h;
                        }
                    }
                    p = -s * s2 * c3 * el1 * e[l] / dl1;
                    e[l] = s * p;
                    d[l] = c * p;
                } while (Math.abs(e[l]) > eps * tst1);
            }
            d[l] = d[l] + f;
            e[l] = 0.0;
        }
        for (int i = 0; i < n - 1; i++) {  // sort ascending (selection sort, vectors with them)
            int k = i;
            double p = d[i];
            for (int j = i + 1; j < n; j++) {
                if (d[j] < p) {
                    k = j;
                    p = d[j];
                }
            }
            if (k != i) {
                d[k] = d[i];
                d[i] = p;
                double[] t = VT[i];
                VT[i] = VT[k];
                VT[k] = t;
            }
        }
    }
}
