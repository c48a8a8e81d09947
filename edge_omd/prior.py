"""The population prior: where a new user starts (issue 11, item 5).

A new user with no prior starts at theta = 0, cal_H = lam I, and ranks answers no better than
chance. A population of preference pairs, embedded by the same feature head, knows more. After
s pairs of their own, the SDK's cold learner approximates argmin sum_{j<=s} loss_j + lam/2
||theta||^2. A prior "worth s average population pairs" is that objective with the population's
average loss in place of the user's pairs (`fit_prior`, the `edge-omd prior` command):

    theta_0 = argmin_theta  s/W sum_i w_i log(1 + exp(-theta.z_i)) + lam/2 ||theta||^2,
              z_i = phi_chosen - phi_rejected, W = sum_i w_i (Newton in float64);
    H_0     = (1/W) sum_i w_i sigma'(theta_0.z_i) z_i z_i^T, the per-pair AVERAGE curvature at
              theta_0, kept as c I + V^T V: its top r eigenpairs (V's rows sqrt(e_i - c) u_i)
              over c = the mean of the other eigenvalues (the trace is kept), so every solver
              can hold it (docs/ALGORITHM.md, "Population prior");

and a new user starts at theta = theta_0, cal_H_0 = lam I + s H_0: exactly the Hessian of that
objective at its minimiser, i.e. its Laplace approximation. The strength s therefore sets BOTH
how far theta_0 is from 0 (a small s shrinks it towards 0) and how firmly it is held; it is a
fit-time parameter (one way to set it: `fit_prior(strength=)`, `edge-omd prior --strength`), and
the prior records the lam it was fitted for: a model with another lam refuses it (ConfigError).
Measured on HH-RLHF (bench/prior.py, README "Population prior"): the direction of theta_0
alone gives the gain at 0 feedbacks (any s > 0); after that, aligned users keep about as much
as opposing users lose, both shrinking with s (see DEFAULT_STRENGTH). A prior is specific to a
head and a population: the SDK ships none, and Personalizer(prior=None) is the default.

    >>> import numpy as np
    >>> from edge_omd.prior import fit_prior
    >>> Z = np.random.default_rng(0).normal(size=(200, 4)) + [1.0, 0, 0, 0]
    >>> prior = fit_prior(Z, rank=2, strength=10.0)
    >>> prior.dim, prior.rank, prior.strength, prior.lam, bool(prior.theta0[0] > 0)
    (4, 2, 10.0, 1.0, True)

File format (docs/FORMATS.md, "Population prior"): `to_bytes` / `from_bytes` / `save` / `load`,
framed by edge_omd/envelope.py (magic b"EOMDPRI1", JSON header, float64 arrays, CRC-32).
Runtime code: numpy only (no torch, no onnx).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from edge_omd import _checks, envelope
from edge_omd.config import MAX_DIM, MAX_LAM, MIN_LAM, ModelConfig
from edge_omd.errors import ConfigError, StateFormatError

__all__ = ["Prior", "fit_prior", "to_bytes", "from_bytes", "save", "load", "rank_for_budget",
           "DEFAULT_STRENGTH", "DEFAULT_RANK", "DEFAULT_LAM", "MAX_STRENGTH", "MAGIC", "VERSION"]

MAGIC = b"EOMDPRI1"
VERSION = 1
#: what a prior is worth, in average population pairs (module docstring). Chosen by
#: bench/prior.py's rule on HH-RLHF halves (README "Population prior"): at s = 1 aligned users
#: gain +10.5 / +13.1 points at 0 feedbacks (harmless- / helpful-base) and +0.2 / +0.4 at 10,
#: while opposing users trail by under 1 point from 3 / 4 feedbacks on; at s = 3 they trail by
#: 1 point until 15 / 20, at s >= 10 beyond 50 (an opposing user pays about s pairs).
DEFAULT_STRENGTH = 1.0
#: the largest strength (a prior worth 1e9 pairs is the unregularised MLE for any population)
MAX_STRENGTH = 1e9
#: the lam a prior is fitted for when none is given: the models' default (ModelConfig.lam)
DEFAULT_LAM = float(next(f.default for f in dataclasses.fields(ModelConfig) if f.name == "lam"))
#: eigenpairs of H_0 kept (c I + V^T V with r rows). The same rule chose rank 0 (of 0, 16, 64):
#: they differ by at most 0.2 point at s <= 10 on HH-RLHF, and at s >= 30 a rank > 0 held opposing
#: users back by up to 1.7 points more at 50 feedbacks; rank 0 is also the smallest file
DEFAULT_RANK = 0
#: the most eigenpairs a prior keeps (a 4096-dim prior of this rank is 32 MiB)
MAX_RANK = 1024
#: Newton stops when half the squared Newton decrement (the predicted loss decrease) is below
#: NEWTON_TOL, or after NEWTON_MAX_ITER steps. Below NEWTON_FULL (well inside the quadratic
#: convergence region, where a loss difference is at the rounding of the loss itself) the full
#: step is taken without a line search.
NEWTON_TOL = 1e-24
NEWTON_FULL = 1e-10
NEWTON_MAX_ITER = 100
_F8 = np.dtype("<f8")
_HEADER_KEYS = ("format_version", "dim", "rank", "c", "strength", "lam", "n_pairs",
                "has_phi_mean", "head_fingerprint")


def _array(x, name, shape, error=ConfigError) -> np.ndarray:
    """A read-only float64 copy of a real array of this shape, every entry finite."""
    try:
        a = np.array(x, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise error(f"prior {name} is not an array of real numbers: {exc}") from exc
    if a.shape != shape:
        raise error(f"prior {name} must have shape {shape}, got {a.shape}")
    if not np.isfinite(a).all():
        raise error(f"prior {name} contains NaN or inf")
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Prior:
    """A population prior (module docstring): the start theta = theta0, cal_H_0 = lam I +
    strength (c I + V^T V) of every new user. `fit_prior` makes the consistent one (theta0 the
    minimiser for this strength and lam); built by hand, the fields are taken as given. Arrays
    are read-only float64 copies; every field is checked (ConfigError)."""
    theta0: np.ndarray                  # (d,) the population's reward direction
    c: float                            # >= 0: H_0's isotropic part
    V: np.ndarray                       # (r, d), r <= min(d, MAX_RANK): H_0 = c I + V^T V
    strength: float = DEFAULT_STRENGTH  # in [0, MAX_STRENGTH]: worth this many population pairs
    lam: float = DEFAULT_LAM            # the models' lam it was fitted for (they must have it)
    n_pairs: int = 0                    # pairs it was fitted on (informative)
    phi_mean: Optional[np.ndarray] = None  # (d,) mean feature of the population's responses
    fingerprint: Optional[bytes] = None    # the head the features came from (32 bytes)

    def __post_init__(self):
        put = object.__setattr__
        try:
            theta0 = np.asarray(self.theta0)
        except Exception as exc:  # ragged lists and the like
            raise ConfigError(f"prior theta0 is not an array of real numbers: {exc}") from exc
        if theta0.ndim != 1 or not 1 <= theta0.shape[0] <= MAX_DIM:
            raise ConfigError(f"prior theta0 must be a vector of 1 to {MAX_DIM} entries, got "
                              f"shape {theta0.shape}")
        d = theta0.shape[0]
        put(self, "theta0", _array(theta0, "theta0", (d,)))
        try:
            V = np.asarray(self.V, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"prior V is not an array of real numbers: {exc}") from exc
        if V.ndim != 2 or V.shape[1] != d or V.shape[0] > min(d, MAX_RANK):
            raise ConfigError(f"prior V must have shape (r, {d}) with r <= {min(d, MAX_RANK)}, "
                              f"got {V.shape}")
        put(self, "V", _array(V, "V", V.shape))
        put(self, "c", _checks.at_least("prior c", self.c, 0.0, ConfigError))
        put(self, "strength", _checks.real_in("prior strength", self.strength, 0.0, MAX_STRENGTH,
                                              ConfigError))
        put(self, "lam", _checks.real_in("prior lam", self.lam, MIN_LAM, MAX_LAM, ConfigError))
        put(self, "n_pairs", _checks.int_in("prior n_pairs", self.n_pairs, 0, 1 << 62, ConfigError))
        if self.phi_mean is not None:
            put(self, "phi_mean", _array(self.phi_mean, "phi_mean", (d,)))
        if self.fingerprint is not None:
            put(self, "fingerprint", _checks.fingerprint(self.fingerprint, ConfigError))

    # ---------------------------------------------------------------- views
    @property
    def dim(self) -> int:
        return int(self.theta0.shape[0])

    @property
    def rank(self) -> int:
        """r: rows of V."""
        return int(self.V.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of its arrays (theta0, V, phi_mean)."""
        return int(self.theta0.nbytes + self.V.nbytes
                   + (0 if self.phi_mean is None else self.phi_mean.nbytes))

    def H0(self) -> np.ndarray:
        """H_0 = c I + V^T V, dense (d, d) float64 (tests and benches)."""
        H = self.V.T @ self.V
        H.flat[:: self.dim + 1] += self.c
        return H

    def start(self):
        """(theta0, c', V') of a new user's start: cal_H_0 = (lam + c') I + V'^T V', with
        c' = strength c and V' = sqrt(strength) V (what Solver.start takes; lam is the
        model's, which must equal self.lam)."""
        return self.theta0, self.strength * self.c, math.sqrt(self.strength) * self.V

    def __eq__(self, other):
        if not isinstance(other, Prior):
            return NotImplemented
        same = lambda a, b: (a is None and b is None) or (  # noqa: E731
            a is not None and b is not None and np.array_equal(a, b))
        return (same(self.theta0, other.theta0) and self.c == other.c
                and same(self.V, other.V) and self.strength == other.strength
                and self.lam == other.lam
                and self.n_pairs == other.n_pairs and same(self.phi_mean, other.phi_mean)
                and self.fingerprint == other.fingerprint)

    __hash__ = None

    def __repr__(self):
        fp = "None" if self.fingerprint is None else self.fingerprint.hex()[:16] + "..."
        return (f"Prior(dim={self.dim}, rank={self.rank}, c={self.c:.4g}, "
                f"strength={self.strength:g}, lam={self.lam:g}, n_pairs={self.n_pairs}, fingerprint={fp})")

    def to_bytes(self) -> bytes:
        return to_bytes(self)

    @classmethod
    def from_bytes(cls, buf) -> "Prior":
        return from_bytes(buf)

    def save(self, path) -> None:
        save(path, self)

    @classmethod
    def load(cls, path) -> "Prior":
        return load(path)


# -------------------------------------------------------------------- fitting
def _sigma_neg(m):
    """sigma(-m) = 1 / (1 + exp(m)), without overflow."""
    return 0.5 * (1.0 - np.tanh(0.5 * m))


def _loss(Z, w, W, rho, theta):
    return float(w @ np.logaddexp(0.0, -(Z @ theta))) / W + 0.5 * rho * float(theta @ theta)


def _newton(Z, w, rho):
    """argmin (1/W) sum_i w_i log(1 + exp(-theta.z_i)) + rho/2 ||theta||^2 by Newton's method
    with a backtracking (Armijo) line search, in float64: the prior's objective divided by s,
    rho = lam / s (so the loss is of order 1 at any strength and NEWTON_TOL is absolute).
    Strongly convex for rho > 0, so it converges from 0."""
    n, d = Z.shape
    W = float(w.sum())
    theta = np.zeros(d)
    loss = _loss(Z, w, W, rho, theta)
    for _ in range(NEWTON_MAX_ITER):
        p = _sigma_neg(Z @ theta)                       # sigma(-m_i) = 1 - sigma(m_i)
        g = -(Z.T @ (w * p)) / W + rho * theta
        H = (Z.T * (w * p * (1.0 - p) / W)) @ Z
        H.flat[:: d + 1] += rho
        step = np.linalg.solve(H, g)
        dec = float(g @ step)                           # squared Newton decrement
        if not dec > 2.0 * NEWTON_TOL:
            break
        t = 1.0
        if dec > NEWTON_FULL:  # backtracking (Armijo), far from the optimum only
            while True:
                new = _loss(Z, w, W, rho, theta - t * step)
                if new <= loss - 0.25 * t * dec or t < 1e-10:
                    break
                t *= 0.5
        theta = theta - t * step
        loss = _loss(Z, w, W, rho, theta)
    return theta


def _top_eigen(A, r):
    """Eigenvalues (descending) and unit eigenvectors (rows) of A^T A, top r, through the
    smaller of A^T A (d x d) and A A^T (n x n); and trace(A^T A)."""
    n, d = A.shape
    trace = float(np.einsum("ij,ij->", A, A))
    if r == 0:
        return np.zeros(0), np.zeros((0, d)), trace
    if n >= d:
        e, U = np.linalg.eigh(A.T @ A)
        e, U = e[::-1][:r], U[:, ::-1][:, :r].T
    else:
        e, Q = np.linalg.eigh(A @ A.T)
        e, Q = e[::-1][:r], Q[:, ::-1][:, :r]
        keep = e > 0.0
        e, Q = e[keep], Q[:, keep]
        U = (A.T @ Q / np.sqrt(e)).T
        U /= np.linalg.norm(U, axis=1, keepdims=True)
    return np.maximum(e, 0.0), U, trace


def fit_prior(Z, *, strength=DEFAULT_STRENGTH, lam=DEFAULT_LAM, rank=DEFAULT_RANK,
              phi_mean=None, fingerprint=None, weights=None) -> Prior:
    """Fit a population prior worth `strength` average pairs on n preference pairs.

    theta_0 = argmin s/W sum_i w_i log(1 + exp(-theta.z_i)) + lam/2 ||theta||^2 and H_0 the
    per-pair average curvature at theta_0, so that lam I + s H_0 is that objective's Hessian
    (module docstring). Z: (n, d) rows z_i = phi_chosen - phi_rejected (finite, n >= 1).
    strength s in [0, MAX_STRENGTH]: 0 gives theta_0 = 0 (cal_H_0 = lam I, the cold start);
    large s tends to the population's unregularised MLE, held as n pairs would hold it only if
    s = n. lam: the models' lam (default: ModelConfig's); a model with another lam refuses the
    prior. weights: (n,) > 0 or None (all 1). rank: eigenpairs of H_0 kept (<= min(d,
    MAX_RANK); those at or below the mean of the rest are dropped, so prior.rank may be
    smaller). phi_mean: (d,) the population's mean response feature (informative).
    fingerprint: the head the features came from (32 bytes), which binds the prior.
    Bad arguments: ConfigError. Cost: O(n d^2) per Newton step plus one eigendecomposition.
    """
    try:
        A = np.asarray(Z)
    except Exception as exc:  # ragged lists and the like
        raise ConfigError(f"Z is not an array of numbers: {exc}") from exc
    if A.dtype.kind not in "fiu" or A.ndim != 2 or A.shape[0] < 1 or not 1 <= A.shape[1] <= MAX_DIM:
        raise ConfigError(f"Z must be an (n, d) array with n >= 1 and 1 <= d <= {MAX_DIM}, "
                          f"got shape {np.shape(A)}")
    n, d = A.shape
    Z = _array(A, "Z", (n, d))
    if weights is None:
        w = np.ones(n)
    else:
        w = _array(weights, "weights", (n,))
        if not (w > 0).all():
            raise ConfigError("weights must all be > 0")
    strength = _checks.real_in("strength", strength, 0.0, MAX_STRENGTH, ConfigError)
    lam = _checks.real_in("lam", lam, MIN_LAM, MAX_LAM, ConfigError)
    rank = _checks.int_in("rank", rank, 0, MAX_RANK, ConfigError)
    theta0 = _newton(Z, w, lam / strength) if strength > 0 else np.zeros(d)
    p = _sigma_neg(Z @ theta0)
    s = w * p * (1.0 - p) / float(w.sum())              # per-pair sigma'(theta_0.z_i), averaged
    r = min(rank, d)
    e, U, trace = _top_eigen(Z * np.sqrt(s)[:, None], r)
    c = max((trace - float(e.sum())) / (d - r), 0.0) if d > r else 0.0
    keep = e > c
    V = np.sqrt(e[keep] - c)[:, None] * U[keep]
    return Prior(theta0, c, V, strength, lam, n, phi_mean, fingerprint)


def rank_for_budget(dim, budget_bytes) -> int:
    """The largest rank whose prior file (with phi_mean) is at most `budget_bytes` (ConfigError
    if not even rank 0 fits)."""
    dim = _checks.int_in("dim", dim, 1, MAX_DIM, ConfigError)
    budget = _checks.int_in("budget_bytes", budget_bytes, 1, 1 << 62, ConfigError)
    # + 96: the header's numbers c, strength and lam, written as JSON, take up to 24 chars each
    base = 96 + len(to_bytes(Prior(np.zeros(dim), 0.0, np.zeros((0, dim)), n_pairs=1 << 62,
                                   phi_mean=np.zeros(dim), fingerprint=bytes(32))))
    if budget < base:
        raise ConfigError(f"budget_bytes={budget} is below the smallest prior for d={dim} "
                          f"({base} bytes)")
    return int(min(dim, MAX_RANK, (budget - base) // (8 * dim)))


# -------------------------------------------------------------------- the file format
def to_bytes(prior: Prior) -> bytes:
    """magic b"EOMDPRI1" | u32 n | JSON header (n bytes) | theta0 f64[d] | V f64[r d] |
    phi_mean f64[d] (if has_phi_mean) | u32 CRC-32 (docs/FORMATS.md)."""
    if not isinstance(prior, Prior):
        raise ConfigError(f"to_bytes needs a Prior, got {type(prior).__name__}")
    header = {
        "format_version": VERSION, "dim": prior.dim, "rank": prior.rank, "c": prior.c,
        "strength": prior.strength, "lam": prior.lam, "n_pairs": prior.n_pairs,
        "has_phi_mean": prior.phi_mean is not None,
        "head_fingerprint": None if prior.fingerprint is None else prior.fingerprint.hex(),
    }
    arrays = [prior.theta0, prior.V] + ([] if prior.phi_mean is None else [prior.phi_mean])
    body = b"".join(np.ascontiguousarray(a, dtype=_F8).tobytes() for a in arrays)
    return envelope.pack_json(MAGIC, header, body)


def from_bytes(buf) -> Prior:
    """The Prior of `to_bytes` output. Every refusal (bad magic, truncation, checksum, version,
    a field out of range, a body length other than the header implies, a non-finite value) is
    a StateFormatError, raised before anything is built."""
    what, fix = "the prior", "write it again with `edge-omd prior` or Prior.save"
    _magic, h, body = envelope.unpack_json(buf, (MAGIC,), what, fix)
    w = "the prior's header"
    version = envelope.field_int(h, "format_version", 0, (1 << 31) - 1, w)
    if version != VERSION:
        raise StateFormatError(f"{w}: format_version {version} is not {VERSION}; {fix}")
    d = envelope.field_int(h, "dim", 1, MAX_DIM, w)
    r = envelope.field_int(h, "rank", 0, min(d, MAX_RANK), w)
    c = envelope.field_real(h, "c", w)
    strength = envelope.field_real(h, "strength", w)
    lam = envelope.field_real(h, "lam", w)
    if c < 0 or not 0 <= strength <= MAX_STRENGTH or not MIN_LAM <= lam <= MAX_LAM:
        raise StateFormatError(f"{w}: c must be >= 0, strength in [0, {MAX_STRENGTH:g}], lam in "
                               f"[{MIN_LAM:g}, {MAX_LAM:g}], got {c!r}, {strength!r}, {lam!r}")
    n_pairs = envelope.field_int(h, "n_pairs", 0, 1 << 62, w)
    has_mean = h.get("has_phi_mean")
    if not isinstance(has_mean, bool):
        raise StateFormatError(f"{w}: field 'has_phi_mean' must be true or false, "
                               f"got {has_mean!r:.40}")
    fingerprint = envelope.field_hex(h, "head_fingerprint", 32, w, optional=True)
    sizes = [d, r * d] + ([d] if has_mean else [])
    if len(body) != 8 * sum(sizes):
        raise StateFormatError(f"{what} is corrupt: its body is {len(body)} bytes, the header "
                               f"(d={d}, rank={r}) says {8 * sum(sizes)}; {fix}")
    flat = np.frombuffer(body, dtype=_F8).astype(np.float64)
    if not np.isfinite(flat).all():
        raise StateFormatError(f"{what} holds NaN or inf; {fix}")
    theta0, V = flat[:d], flat[d:d + r * d].reshape(r, d)
    phi_mean = flat[d + r * d:] if has_mean else None
    try:
        return Prior(theta0, c, V, strength, lam, n_pairs, phi_mean, fingerprint)
    except ConfigError as exc:
        raise StateFormatError(f"{what} is inconsistent: {exc}; {fix}") from exc


def save(path, prior: Prior) -> None:
    """Write `prior` to `path` atomically (envelope.write_atomic)."""
    data = to_bytes(prior)
    envelope.write_atomic(_checks.path("path", path), data)


def load(path) -> Prior:
    """Read a prior written by `save` (StateFormatError if it is not one; OSError for a missing
    file)."""
    limit = envelope.MAX_JSON_HEADER + 64 + 8 * MAX_DIM * (MAX_RANK + 2)
    return from_bytes(envelope.read_limited(_checks.path("path", path), limit, str(path)))
