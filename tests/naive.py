"""Slow, obviously correct float64 twins of the runtime's fast paths (stumpy's tests/naive.py).

Every formula is written the way docs/ALGORITHM.md states it, with dense matrices and
numpy.linalg: no Sherman-Morrison, no Cholesky updates, no Woodbury.
"""
import numpy as np


def sigmoid(m):
    return 1.0 / (1.0 + np.exp(-m))


def naive_cg(A, b, steps, tol):
    """Textbook CG from x0 = 0 with Fletcher-Reeves beta and a relative residual test."""
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = r @ r
    stop = tol * tol * (b @ b)
    for _ in range(steps):
        if rr <= stop:
            break
        Ap = A @ p
        alpha = rr / (p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def naive_projection(theta_prime, Ht, radius):
    """argmin_{||theta|| <= radius} ||theta - theta'||_Ht by eigendecomposition + bisection."""
    if np.linalg.norm(theta_prime) <= radius:
        return theta_prime
    lam, Q = np.linalg.eigh(Ht)
    c = Q.T @ theta_prime
    norm = lambda mu: np.linalg.norm(lam * c / (lam + mu))  # noqa: E731
    lo, hi = 0.0, 1.0
    while norm(hi) > radius:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if norm(mid) > radius else (lo, mid)
    return Q @ (lam * c / (lam + hi))


class NaiveOMD:
    """Algorithm 1 in float64 with an explicit dense local norm for every solver."""

    def __init__(self, d, *, eta=1.0, lam=1.0, radius=None, forget=1.0, solver="exact",
                 rank=None, cg_steps=3, lam_warmup=0, cg_tol=1e-6, start=None):
        """start: None (theta = 0, cal_H = lam I) or (theta0, c, V[, sign]): a population
        prior's start theta = theta0, cal_H = (lam + c) I + sign V^T V (sign +1 unless given),
        held as each representation holds it (cg: S = c I + sign V^T V beside lambda_t I;
        sketch: the top `rank` directions of V, the rest dropped, and no negative part;
        diagonal: the diagonal)."""
        self.d, self.eta, self.lam, self.radius, self.forget = d, eta, lam, radius, forget
        self.solver, self.rank = solver, rank
        self.cg_steps, self.lam_warmup, self.cg_tol = cg_steps, lam_warmup, cg_tol
        self.theta = np.zeros(d)
        self.t = 0
        if solver in ("exact",):
            self.H = lam * np.eye(d)
        elif solver == "cg":
            self.S = np.zeros((d, d))
        elif solver == "sketch":
            self.B = np.zeros((0, d))
            self.alpha = lam
        elif solver == "diagonal":
            self.h = lam * np.ones(d)
        if start is not None:
            theta0, c, V, sign = (tuple(start) + (1.0,))[:4]
            self.theta = np.array(theta0, dtype=np.float64)
            V = np.asarray(V, dtype=np.float64).reshape(-1, d)
            H0 = c * np.eye(d) + sign * (V.T @ V)
            if solver == "exact":
                self.H = lam * np.eye(d) + H0
            elif solver == "cg":
                self.S = H0
            elif solver == "sketch":
                if sign < 0:
                    raise ValueError("alpha I + B^T B holds no negative part")
                _, sv, Vt = np.linalg.svd(V, full_matrices=False)
                self.B = (sv[:, None] * Vt)[: rank]
                self.alpha = lam + c
            elif solver == "diagonal":
                self.h = lam + np.diag(H0)

    def lam_at(self, t):
        return self.lam if self.lam_warmup <= 0 else self.lam * min(1.0, t / self.lam_warmup)

    def cal_H(self):
        """The local norm cal_H_{t+1} after t updates, dense."""
        if self.solver == "exact":
            return self.H
        if self.solver == "cg":
            return self.lam_at(self.t + 1) * np.eye(self.d) + self.S
        if self.solver == "sketch":
            return self.alpha * np.eye(self.d) + self.B.T @ self.B
        return np.diag(self.h)

    def learn_one(self, z, y, w=1.0):
        z = np.asarray(z, dtype=np.float64)
        s = sigmoid(self.theta @ z)
        g = w * (s - y) * z
        Ht = self.cal_H() + self.eta * w * s * (1 - s) * np.outer(z, z)  # step 1
        if self.solver == "cg":
            step = naive_cg(Ht, g, self.cg_steps, self.cg_tol)
        else:
            step = np.linalg.solve(Ht, g)
        theta = self.theta - self.eta * step                             # step 2
        if self.radius is not None:
            theta = naive_projection(theta, Ht, self.radius)             # step 3
        self.theta = theta
        c = w * sigmoid(theta @ z) * (1 - sigmoid(theta @ z))            # step 4
        self.absorb(z, c)
        self.t += 1

    def absorb(self, z, c):
        f, lam = self.forget, self.lam
        if self.solver == "exact":
            self.H = f * self.H + (1 - f) * lam * np.eye(self.d) + c * np.outer(z, z)
        elif self.solver == "cg":
            self.S = f * self.S + c * np.outer(z, z)
        elif self.solver == "diagonal":
            self.h = f * self.h + (1 - f) * lam + c * z * z
        else:
            self.B = np.sqrt(f) * self.B
            self.alpha = f * self.alpha + (1 - f) * lam
            if self.B.shape[0] == 2 * self.rank:
                self.shrink()
            self.B = np.vstack([self.B, np.sqrt(c) * z])

    def shrink(self):
        """Robust Frequent Directions via a full SVD of the buffer."""
        _, sv, Vt = np.linalg.svd(self.B, full_matrices=False)
        s2 = sv ** 2
        delta = s2[self.rank] if s2.shape[0] > self.rank else 0.0
        keep = np.sqrt(np.maximum(s2[: self.rank] - delta, 0.0))
        self.B = keep[:, None] * Vt[: self.rank]
        self.alpha += delta / 2

    def learn_pair(self, a, b, w=1.0):
        self.learn_one(np.asarray(a, float) - np.asarray(b, float), 1.0, w)

    def width(self, V):
        Hinv = np.linalg.inv(self.cal_H())
        V = np.atleast_2d(V)
        return np.sqrt(np.einsum("nd,de,ne->n", V, Hinv, V))

    # ---------------------------------------------------------------- choice among k
    def choice_grad_hess(self, Phi, c, w, theta):
        """Gradient and Hessian of the multinomial-logit loss -w log softmax(Phi theta)_c, in
        the full softmax form: g = w (sum_j p_j phi_j - phi_c), H = w (sum_j p_j phi_j phi_j^T
        - mu mu^T), mu = sum_j p_j phi_j."""
        s = Phi @ theta
        p = np.exp(s - s.max())
        p /= p.sum()
        mu = p @ Phi
        g = w * (mu - Phi[c])
        H = w * (Phi.T @ (p[:, None] * Phi) - np.outer(mu, mu))
        return g, H, p

    def choice_rows(self, Phi, c, w, theta):
        """H as k - 1 rows: X = L^T Z, Z = [phi_c - phi_j]_{j != c}, L = numpy's Cholesky factor
        of w (diag(q) - q q^T) (q: the others' probabilities); the sketch appends these rows."""
        _, _, p = self.choice_grad_hess(Phi, c, w, theta)
        others = [j for j in range(Phi.shape[0]) if j != c]
        q = p[others]
        L = np.linalg.cholesky(w * (np.diag(q) - np.outer(q, q)))
        return L.T @ (Phi[c] - Phi[others])

    def choice(self, Phi, c, w=1.0):
        """Algorithm 1 on one choice of row c among the rows of Phi (k, d), dense."""
        Phi = np.asarray(Phi, dtype=np.float64)
        g, H, _ = self.choice_grad_hess(Phi, c, w, self.theta)
        Ht = self.cal_H() + self.eta * H                                  # step 1
        if self.solver == "cg":
            step = naive_cg(Ht, g, self.cg_steps, self.cg_tol)
        else:
            step = np.linalg.solve(Ht, g)
        theta = self.theta - self.eta * step                              # step 2
        if self.radius is not None:
            theta = naive_projection(theta, Ht, self.radius)              # step 3
        self.theta = theta
        _, Hn, _ = self.choice_grad_hess(Phi, c, w, theta)                # step 4
        f, lam = self.forget, self.lam
        if self.solver == "exact":
            self.H = f * self.H + (1 - f) * lam * np.eye(self.d) + Hn
        elif self.solver == "cg":
            self.S = f * self.S + Hn
        elif self.solver == "diagonal":
            self.h = f * self.h + (1 - f) * lam + np.diag(Hn)
        else:
            self.B = np.sqrt(f) * self.B
            self.alpha = f * self.alpha + (1 - f) * lam
            for x in self.choice_rows(Phi, c, w, theta):
                if self.B.shape[0] == 2 * self.rank:
                    self.shrink()
                self.B = np.vstack([self.B, x])
        self.t += 1
