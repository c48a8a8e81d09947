"""Step 3 of Algorithm 1: theta = argmin_{||theta||_2 <= B} ||theta - theta'||_{tilde_H}.

When ||theta'|| > B the minimiser is theta(mu) = (tilde_H + mu I)^{-1} tilde_H theta' with the
unique mu > 0 such that ||theta(mu)|| = B (KKT; ||theta(mu)|| decreases in mu). mu is found by
Newton's method on phi(mu) = 1/||theta(mu)|| - 1/B (nearly linear in mu, as in More-Sorensen
trust-region solvers), safeguarded by bisection on [0, ||tilde_H theta'|| / B]; each evaluation
solves with conjugate gradient to 1e-12 relative residual. It only needs products with tilde_H,
so it serves every representation. It runs in float64 and allocates O(d) temporaries: it is the
rare path (only when an update leaves the ball), documented as such.
"""
import numpy as np


def _cg(matvec, b, x0, tol=1e-13, max_steps=None):
    """Textbook CG (Fletcher-Reeves) for SPD matvec, float64."""
    max_steps = max_steps or 10 * b.shape[0]
    x = x0.copy()
    r = b - matvec(x)
    p = r.copy()
    rr = r @ r
    stop = tol * tol * (b @ b)
    for _ in range(max_steps):
        if rr <= stop:
            break
        Ap = matvec(p)
        alpha = rr / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def project_to_ball(theta_prime, tilde_matvec, radius, tol=1e-12, max_iter=100):
    """Return the tilde_H-norm projection of theta_prime (float64) onto {||theta||_2 <= radius}."""
    theta_prime = np.asarray(theta_prime, dtype=np.float64)
    if np.linalg.norm(theta_prime) <= radius:
        return theta_prime.copy()
    b = tilde_matvec(theta_prime)
    lo, hi = 0.0, np.linalg.norm(b) / radius
    mu = 0.0
    x = theta_prime.copy()
    for _ in range(max_iter):
        shifted = lambda v, mu=mu: tilde_matvec(v) + mu * v  # noqa: E731
        x = _cg(shifted, b, x)
        nx = np.linalg.norm(x)
        if abs(nx - radius) <= tol * radius:
            break
        if nx > radius:
            lo = mu
        else:
            hi = mu
        # d||x||/dmu = -x^T (T + mu I)^{-1} x / ||x||
        w = _cg(shifted, x, np.zeros_like(x))
        dphi = (x @ w) / nx ** 3
        mu_new = mu - (1.0 / nx - 1.0 / radius) / dphi if dphi > 0 else 0.5 * (lo + hi)
        if not (lo < mu_new < hi):
            mu_new = 0.5 * (lo + hi)
        mu = mu_new
    # Land exactly on the sphere (removes the last 1e-12 of slack) when outside.
    nx = np.linalg.norm(x)
    return x * (radius / nx) if nx > radius else x
