"""The paper's baseline: regularised Bradley-Terry MLE refit on the whole history.

Li et al. 2025 (arXiv 2502.07193), Sec. 6: "MLE" re-solves, after every new label,

    theta_t = argmin_theta  sum_{s<=t} w_s l_s(theta) + (lam / 2) ||theta||^2,
    l_s(theta) = log(1 + exp(theta^T z_s)) - y_s theta^T z_s            (logistic, y in [0, 1])

with gradient  sum_s w_s (sigma(theta^T z_s) - y_s) z_s + lam theta.  The sum (not the mean) keeps
the same scale as OMD's local norm cal_H_t = lam I + sum_s H_s, so `lam` means the same thing in
both. Solved by scipy L-BFGS-B in float64, warm-started from the previous theta. It stores every
(z, y, w): O(t) memory, and each refit touches all of it: O(t) work per round (times the number of
L-BFGS iterations), which is what the one-pass update avoids.

`refit_every=k` is the cheaper variant a practitioner would try: store every label, refit only
after every k-th (the model in between is the last refit).

    >>> import numpy as np
    >>> m = MLERefit(3, lam=1.0)
    >>> m.learn_pair(np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    >>> float(m.theta[0]) > 0 > float(m.theta[1])
    True
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize


def _objective(theta, Z, y, w, lam):
    """Regularised negative log-likelihood and its analytic gradient (float64)."""
    m = Z @ theta                                              # (t,)
    # log(1 + e^m) - y m, stable for large |m|
    loss = float(w @ (np.logaddexp(0.0, m) - y * m)) + 0.5 * lam * float(theta @ theta)
    p = 0.5 * (1.0 + np.tanh(0.5 * m))                         # sigma(m), overflow-free
    grad = Z.T @ (w * (p - y)) + lam * theta
    return loss, grad


class MLERefit:
    """L2-regularised logistic Bradley-Terry MLE, refit on the stored history.

    Parameters
    ----------
    dim : feature dimension d.
    lam : L2 weight, the objective carries (lam / 2) ||theta||^2.
    refit_every : refit after every k-th label (1 = the paper's baseline, every round).
    maxiter, gtol : L-BFGS-B limits per refit.
    """

    def __init__(self, dim: int, *, lam: float = 1.0, refit_every: int = 1,
                 maxiter: int = 200, gtol: float = 1e-6):
        if dim < 1 or lam <= 0 or refit_every < 1:
            raise ValueError("MLERefit needs dim >= 1, lam > 0 and refit_every >= 1")
        self.dim, self.lam, self.refit_every = int(dim), float(lam), int(refit_every)
        self.maxiter, self.gtol = int(maxiter), float(gtol)
        self._theta = np.zeros(self.dim)
        # History in amortised-doubling buffers: rows [0, t) are live.
        self._Z = np.empty((16, self.dim))
        self._y = np.empty(16)
        self._w = np.empty(16)
        self._t = 0
        self.n_refits = 0
        self.n_iterations = 0          # total L-BFGS iterations, for the cost analysis

    # -- learned state, read-only ------------------------------------------------------------
    @property
    def theta(self) -> np.ndarray:
        return self._theta.copy()

    @property
    def t(self) -> int:
        return self._t

    @property
    def nbytes(self) -> int:
        """Bytes of live state: theta plus the stored history (z, y, w per label); grows with t."""
        return 8 * (self.dim + self._t * (self.dim + 2))

    # -- verbs ----------------------------------------------------------------------------
    def learn_one(self, z, y: float, weight: float = 1.0) -> None:
        """Store (z, y) and refit if this is a refit round. y in [0, 1] (1: the z-side won)."""
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        if z.shape[0] != self.dim or not np.all(np.isfinite(z)):
            raise ValueError(f"z must be a finite vector of length {self.dim}")
        if not (0.0 <= y <= 1.0) or weight < 0:
            raise ValueError("y must lie in [0, 1] and weight must be >= 0")
        if self._t == self._Z.shape[0]:
            n = 2 * self._t
            self._Z = np.concatenate([self._Z, np.empty((n - self._t, self.dim))])
            self._y = np.concatenate([self._y, np.empty(n - self._t)])
            self._w = np.concatenate([self._w, np.empty(n - self._t)])
        self._Z[self._t], self._y[self._t], self._w[self._t] = z, y, weight
        self._t += 1
        if self._t % self.refit_every == 0:
            self.refit()

    def extend(self, Z, y, weight=None) -> None:
        """Store many labels at once without refitting (used to build a history of size t)."""
        Z = np.asarray(Z, dtype=np.float64).reshape(-1, self.dim)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
        n = self._t + len(y)
        if n > self._Z.shape[0]:
            cap = max(n, 2 * self._Z.shape[0])
            self._Z = np.concatenate([self._Z[:self._t], np.empty((cap - self._t, self.dim))])
            self._y = np.concatenate([self._y[:self._t], np.empty(cap - self._t)])
            self._w = np.concatenate([self._w[:self._t], np.empty(cap - self._t)])
        self._Z[self._t:n], self._y[self._t:n], self._w[self._t:n] = Z, y, w
        self._t = n

    def learn_pair(self, phi_chosen, phi_rejected, weight: float = 1.0) -> None:
        """One comparison: the chosen response beat the rejected one (z = phi_c - phi_r, y = 1)."""
        z = np.asarray(phi_chosen, dtype=np.float64) - np.asarray(phi_rejected, dtype=np.float64)
        self.learn_one(z, 1.0, weight)

    def refit(self, upto: int | None = None) -> None:
        """Solve the regularised MLE on the whole history (or its first `upto` labels),
        warm-started at the current theta."""
        t = self._t if upto is None else min(int(upto), self._t)
        if t <= 0:
            return
        res = minimize(_objective, self._theta, args=(self._Z[:t], self._y[:t], self._w[:t], self.lam),
                       jac=True, method="L-BFGS-B",
                       options={"maxiter": self.maxiter, "gtol": self.gtol})
        if np.all(np.isfinite(res.x)):
            self._theta = np.asarray(res.x, dtype=np.float64)
        self.n_refits += 1
        self.n_iterations += int(res.nit)

    def reward(self, Phi) -> np.ndarray:
        """theta^T phi for each row of Phi: (n, d) -> (n,)."""
        return np.asarray(Phi, dtype=np.float64) @ self._theta
