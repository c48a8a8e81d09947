"""RewardModel: one user's linear Bradley-Terry reward, learned by one-pass online mirror
descent with a second-order local norm (Algorithm 1 of Li, Qian, Zhao, Zhou, NeurIPS 2025),
inside a fixed memory budget.

Per observation (z, y) with weight w, at the old iterate theta_t (g = w (sigma(theta.z) - y) z):
    1. tilde_H = cal_H_t + eta w sigma'(theta_t.z) z z^T
    2. theta'  = theta_t - eta tilde_H^{-1} g
    3. theta_{t+1} = argmin_{||theta|| <= radius} ||theta - theta'||_{tilde_H}     (if radius set)
    4. cal_H_{t+1} = forget cal_H_t + (1 - forget) lam I + w sigma'(theta_{t+1}.z) z z^T
The sample is then discarded: time and memory per update are O(1) in t.

    >>> import numpy as np
    >>> from edge_omd import RewardModel
    >>> m = RewardModel(4, dtype="float64")
    >>> m.learn_pair(np.array([1., 0, 0, 0]), np.array([0., 1, 0, 0]))
    >>> float(m.reward(np.eye(4))[0]) > float(m.reward(np.eye(4))[1])
    True

This class is the checked front: it validates every argument, converts it into fixed buffers,
and calls the solver's Numba kernels (edge_omd/solvers/), which never allocate.
"""
import math
import numbers

import numpy as np

from edge_omd import linalg, projection, state_format
from edge_omd._numba import ensure_compiled
from edge_omd.errors import (BudgetError, ConfigError, InvalidInputError, NumericalError,
                             StateFormatError)
from edge_omd.head.binding import check_binding
from edge_omd.solvers.cg import CGSolver
from edge_omd.solvers.diagonal import DiagonalSolver
from edge_omd.solvers.exact import ExactSolver
from edge_omd.solvers.sketch import SketchSolver

SOLVERS = {"exact": ExactSolver, "cg": CGSolver, "sketch": SketchSolver, "diagonal": DiagonalSolver}
DTYPES = {"float32": np.float32, "float64": np.float64}
# Inputs beyond this magnitude are refused: the model expects L2-normalised features (|z_i| <= 2),
# and anything near float32's range would overflow the curvature terms.
MAX_ABS_INPUT = 1e6
MAX_WEIGHT = 1e6
# Hyperparameter ranges: far outside anything useful, but they keep every update of a float32
# state finite (one step moves theta by at most eta w |z| / lam per unit of curvature).
MAX_ETA, MIN_LAM, MAX_LAM = 1e6, 1e-9, 1e9
# The smallest radius whose ball the dtype can hold: theta on the sphere has an entry of at least
# radius / sqrt(d), which float32 stores as a normal number (> 1.2e-38) only above ~1e-30 for any
# d; float64 solves the projection scaled to the unit ball, and radius^2 stays normal above 1e-150.
MIN_RADIUS = {"float32": 1e-30, "float64": 1e-150}


def _front_bytes(d, itemsize):
    # The front's own buffers: the input z (d) converted once, and the counter t.
    return d * itemsize + 8


class RewardModel:
    """A per-user reward model r(phi) = theta^T phi with a constant-size state.

    Parameters (hyperparameters only here; all keyword-only after `dim`):
        dim: feature dimension d.
        budget_bytes: upper bound on the WHOLE state (theta, local norm, buffers, counters).
            None = unlimited. With solver="auto": the exact d x d state if it fits, else the
            largest Frequent-Directions sketch that fits, else the diagonal; below the diagonal
            floor a BudgetError is raised.
        eta: OMD step size (paper: eta = log(2)/2 + B L + 1 in theory; tuned in practice).
            Default 1.0, with lam 1.0, tuned on L2-normalised features (bench/runtime.py).
        lam: prior / damping: cal_H_1 = lam I.
        radius: B of the projection onto ||theta||_2 <= B in the tilde_H norm; None skips it
            (as the paper's experiments do). Once theta reaches the sphere it runs on most
            updates: a few Lanczos steps (edge_omd/projection.py), in a fixed workspace that
            counts in nbytes and the budget. Below MIN_RADIUS[dtype]: ConfigError.
        forget: in (0, 1]; 1.0 is the paper. < 1 discounts old curvature geometrically while
            keeping the prior lam I (users whose taste drifts). Not available with "exact",
            whose Cholesky factor cannot absorb a full-rank discount in O(d^2).
        dtype: "float32" (default, on-device) or "float64" for the large arrays; scalars and
            reductions are always float64.
        solver: "auto", "exact", "cg" (the paper's practical variant: CG with `cg_steps` steps
            and lambda_t = lam min(1, t / lam_warmup)), "sketch", "diagonal".
        cg_steps, lam_warmup, cg_tol: the cg solver's K, T and relative residual test.
        sketch_rank: force the sketch rank ell (else chosen from budget_bytes).
        head_fingerprint: 32-byte SHA-256 of the feature head this state belongs to.
    """

    def __init__(self, dim, *, budget_bytes=None, eta=1.0, lam=1.0, radius=None, forget=1.0,
                 dtype="float32", solver="auto", cg_steps=3, lam_warmup=0, cg_tol=1e-6,
                 sketch_rank=None, head_fingerprint=None):
        d = _int_param("dim", dim, 1, state_format.MAX_DIM)
        eta = _range_param("eta", eta, 0.0, MAX_ETA)
        lam = _range_param("lam", lam, MIN_LAM, MAX_LAM)
        radius = None if radius is None else _pos_param("radius", radius)
        if radius is not None and dtype in MIN_RADIUS and radius < MIN_RADIUS[dtype]:
            raise ConfigError(f"radius={radius:g} is too small for {dtype} (the projected theta "
                              f"would underflow); use radius >= {MIN_RADIUS[dtype]:g}, or float64")
        forget = _float_param("forget", forget)
        if not 0.0 < forget <= 1.0:
            raise ConfigError(f"forget must be in (0, 1], got {forget}")
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if solver != "auto" and solver not in SOLVERS:
            raise ConfigError(f"solver must be 'auto' or one of {sorted(SOLVERS)}, got {solver!r}")
        cg_steps = _int_param("cg_steps", cg_steps, 1, 1 << 20)
        lam_warmup = _int_param("lam_warmup", lam_warmup, 0, 1 << 62)
        cg_tol = _float_param("cg_tol", cg_tol)
        if not 0.0 <= cg_tol < 1.0:
            raise ConfigError(f"cg_tol must be in [0, 1), got {cg_tol}")
        if budget_bytes is not None:
            budget_bytes = _int_param("budget_bytes", budget_bytes, 1, 1 << 62)
        if sketch_rank is not None:
            sketch_rank = _int_param("sketch_rank", sketch_rank, 1, d)
        fingerprint = None if head_fingerprint is None else _fingerprint(head_fingerprint)

        itemsize = np.dtype(DTYPES[dtype]).itemsize
        name, rank = _choose_solver(solver, d, itemsize, budget_bytes, forget, sketch_rank,
                                    radius)
        cls = SOLVERS[name]
        if forget != 1.0 and not cls.supports_forget:
            raise ConfigError(f"forget < 1 is not available with solver {name!r} (its Cholesky "
                              "factor cannot absorb a full-rank discount in O(d^2)); use 'cg', "
                              "'sketch' or 'diagonal'")
        # Compile (or load from the kernel cache) only what this solver and dtype run, once.
        ensure_compiled(np.dtype(DTYPES[dtype]), __name__, cls.__module__,
                        *(["edge_omd.projection"] if radius is not None else []))
        self._hyper = dict(eta=eta, lam=lam, radius=radius, forget=forget, dtype=dtype,
                           cg_steps=cg_steps, lam_warmup=lam_warmup, cg_tol=cg_tol,
                           budget_bytes=budget_bytes)
        self._d, self._dtype, self._rank = d, np.dtype(DTYPES[dtype]), rank
        self._solver = cls(d, self._dtype, lam, rank=rank, cg_steps=cg_steps,
                           lam_warmup=lam_warmup, cg_tol=cg_tol)
        self._z = np.zeros(d, self._dtype)  # the current observation, converted once
        self._t = np.zeros(1, np.int64)
        # step 3's preallocated Krylov workspace (edge_omd/projection.py), part of the state's bytes
        self._proj = None if radius is None else projection.make_workspace(
            d, **cls.projection_shape(d, rank))
        self._fingerprint = fingerprint
        assert self.nbytes == self.state_bytes(d, name, dtype, rank, radius)

    # ------------------------------------------------------------------ sizes and properties
    @staticmethod
    def state_bytes(dim, solver, dtype="float32", rank=None, radius=None):
        """Bytes of the whole state of a model with these settings (equals `model.nbytes`);
        a radius adds the projection's fixed workspace (edge_omd/projection.py)."""
        if solver not in SOLVERS:
            raise ConfigError(f"solver must be one of {sorted(SOLVERS)}, got {solver!r}")
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        dim = _int_param("dim", dim, 1, state_format.MAX_DIM)
        if solver == "sketch":
            if rank is None:
                raise ConfigError("the sketch's size depends on its rank: pass rank=")
            rank = _int_param("rank", rank, 1, dim)
        itemsize = np.dtype(DTYPES[dtype]).itemsize
        return (SOLVERS[solver].state_bytes(dim, itemsize, rank) + _front_bytes(dim, itemsize)
                + _projection_bytes(SOLVERS[solver], dim, rank, radius))

    @property
    def nbytes(self):
        """True size of the state in bytes; fixed at construction, never grows."""
        arrays = list(self._solver.state) + [self._z, self._t] + list(self._proj or ())
        return int(sum(a.nbytes for a in arrays))

    @property
    def theta(self):
        """theta_t as a read-only float64 copy."""
        out = self._solver.theta().astype(np.float64)
        out.flags.writeable = False
        return out

    @property
    def t(self):
        """Number of observations absorbed."""
        return int(self._t[0])

    @property
    def dim(self):
        return self._d

    @property
    def dtype(self):
        return self._dtype.name

    @property
    def solver(self):
        """The representation in use: 'exact', 'cg', 'sketch' or 'diagonal'."""
        return self._solver.name

    @property
    def rank(self):
        """Sketch rank ell, or None for the other solvers."""
        return self._rank

    @property
    def hyperparameters(self):
        return dict(self._hyper)

    @property
    def head_fingerprint(self):
        """32-byte fingerprint of the feature head this state belongs to, or None."""
        return self._fingerprint

    def bind_head(self, fingerprint):
        """Attach the state to a feature head; a state bound to another head is refused."""
        fp = _fingerprint(fingerprint)
        check_binding(self._fingerprint, self._d, fp, self._d, what="this state")
        self._fingerprint = fp

    def __repr__(self):
        rank = f", rank={self._rank}" if self._rank else ""
        return (f"RewardModel(dim={self._d}, solver={self.solver!r}{rank}, dtype={self.dtype!r}, "
                f"t={self.t}, nbytes={self.nbytes})")

    # ------------------------------------------------------------------ learning verbs
    def learn_one(self, z, y, weight=1.0):
        """One logistic-GLM observation: P(y = 1) = sigma(theta^T z); y in [0, 1] (soft ok)."""
        z = self._vector(z, "z")
        y = _label(y)
        w = _weight(weight)
        np.copyto(self._z, z, casting="unsafe")
        self._update(y, w)

    def learn_pair(self, phi_chosen, phi_rejected, weight=1.0):
        """One preference: phi_chosen preferred to phi_rejected (z = difference, y = 1)."""
        a = self._vector(phi_chosen, "phi_chosen")
        b = self._vector(phi_rejected, "phi_rejected")
        w = _weight(weight)
        np.subtract(a, b, out=self._z, casting="unsafe")
        self._update(1.0, w)

    def learn_thumb(self, phi, up, weight=1.0):
        """One thumbs up (up=True) or down on a single response: z = phi, y = up.

        The same GLM as a comparison against a neutral reference whose reward is 0.
        """
        phi = self._vector(phi, "phi")
        if not isinstance(up, (bool, np.bool_)):
            raise InvalidInputError(f"up must be a bool, got {type(up).__name__}")
        w = _weight(weight)
        np.copyto(self._z, phi, casting="unsafe")
        self._update(1.0 if up else 0.0, w)

    def learn_observation(self, z, y, weight=1.0):
        """Learn z exactly as given (no conversion): the replay of a journal record.

        z: (d,) finite, already in the state's dtype (what `observation` held after the live
        learn_* call); y in [0, 1]. Same kernels on the same bits: the model ends with the
        bytes the live model had (edge_omd/journal.py)."""
        z = np.asarray(z)
        if z.shape != (self._d,) or z.dtype != self._dtype:
            raise InvalidInputError(f"z must be ({self._d},) {self.dtype}, got {z.shape} {z.dtype}")
        if not np.isfinite(z).all():
            raise InvalidInputError("z contains NaN or inf")
        y = _label(y)
        w = _weight(weight)
        np.copyto(self._z, z)
        self._update(y, w)

    @property
    def observation(self):
        """z of the last learn_* call as the model used it (state dtype; a pair's difference
        phi_chosen - phi_rejected converted once). A read-only view, valid until the next call
        that learns or fantasizes: what a journal record stores."""
        v = self._z.view()
        v.flags.writeable = False
        return v

    def fantasize(self, z, weight=1.0):
        """Add the curvature w sigma'(theta.z) z z^T of a hypothetical observation to the local
        norm without moving theta or t (greedy, non-redundant active selection on a copy)."""
        z = self._vector(z, "z")
        w = _weight(weight)
        np.copyto(self._z, z, casting="unsafe")
        self._solver.absorb(self._z, w, 1.0, self.t, fresh=False)

    def reset(self):
        """Forget everything learned: theta = 0, cal_H = lam I, t = 0 (settings kept)."""
        self._solver.reset()
        self._t[0] = 0

    def _update(self, y, w):
        solver, h = self._solver, self._hyper
        if self._proj is not None:
            solver.keep(self._proj)  # theta_t, to undo step 2 if step 3 fails
        a = solver.step(self._z, y, w, h["eta"], self.t)  # steps 1-2
        if math.isnan(a):  # the kernel checked before moving anything
            raise NumericalError("the update would produce a non-finite theta; the state was "
                                 "left unchanged (check the feature scale and eta)")
        if self._proj is not None:                          # step 3
            k = solver.project(self._proj, self._z, a, h["radius"], self.t)
            if k < 0:
                solver.restore(self._proj)
                raise NumericalError("the projection onto ||theta|| <= radius has no finite "
                                     "result; the state was left unchanged (check radius and "
                                     "the feature scale)")
        solver.absorb(self._z, w, h["forget"], self.t, fresh=True)  # step 4
        self._t[0] = min(self._t[0] + 1, state_format.MAX_T)

    # ------------------------------------------------------------------ scoring
    def reward(self, Phi):
        """r(phi) = theta^T phi for each row of Phi ((n, d) or (d,)); returns (n,) float64."""
        P = self._matrix(Phi, "Phi")
        return P @ self._solver.theta().astype(np.float64)

    def width(self, Phi, ref=None):
        """||phi - ref||_{cal_H^{-1}} for each row (ref: (d,) or None); returns (n,) float64.

        The confidence width of the paper: the pessimistic ranking subtracts beta times it, the
        deployment rule adds 2 beta times it, active selection maximises it.
        """
        P = self._matrix(Phi, "Phi")
        if ref is not None:
            P = P - self._vector(ref, "ref")
        V = np.ascontiguousarray(P, dtype=self._dtype)
        if not V.flags.writeable:  # the kernels take the model's own buffers, never a read-only one
            V = V.copy()
        out = np.empty(V.shape[0], np.float64)
        self._solver.widths(V, out, self.t)
        return out

    # ------------------------------------------------------------------ persistence
    def to_bytes(self):
        """Serialise the state (format documented in edge_omd/state_format.py, docs/STATE_FORMAT.md)."""
        h = self._hyper
        meta = dict(solver_code=self._solver.code, itemsize=self._dtype.itemsize, dim=self._d,
                    rank=self._rank, cg_steps=h["cg_steps"], t=self.t, lam_warmup=h["lam_warmup"],
                    budget=h["budget_bytes"], eta=h["eta"], lam=h["lam"], radius=h["radius"],
                    forget=h["forget"], cg_tol=h["cg_tol"], fingerprint=self._fingerprint)
        return state_format.encode(meta, self._solver.payload())

    @classmethod
    def from_bytes(cls, data):
        """Rebuild a model from `to_bytes()` output; StateFormatError if anything is off."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInputError(f"from_bytes needs bytes, got {type(data).__name__}")
        if isinstance(data, memoryview) and not data.c_contiguous:
            data = data.tobytes()
        meta, arrays = state_format.decode(data)
        for a in arrays:
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                raise StateFormatError("state holds non-finite values")
        try:
            model = cls(meta["dim"], budget_bytes=meta["budget"], eta=meta["eta"], lam=meta["lam"],
                        radius=meta["radius"], forget=meta["forget"],
                        dtype="float32" if meta["itemsize"] == 4 else "float64",
                        solver=meta["solver"], cg_steps=meta["cg_steps"],
                        lam_warmup=meta["lam_warmup"], cg_tol=meta["cg_tol"],
                        sketch_rank=meta["rank"], head_fingerprint=meta["fingerprint"])
        except ConfigError as e:
            raise StateFormatError(f"state holds invalid settings: {e}") from e
        problem = model._solver.invalid(arrays)
        if problem:
            raise StateFormatError(f"inconsistent {model.solver} state: {problem}")
        for dst, src in zip(model._solver.payload(), arrays):
            dst[...] = src
        if hasattr(model._solver, "loaded"):
            model._solver.loaded()
        model._t[0] = meta["t"]
        return model

    def save(self, path):
        """Write the state to `path` atomically (temp file + fsync + rename)."""
        state_format.write_file_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path):
        """Read a state written by `save`; checks header and size before reading the payload."""
        return cls.from_bytes(state_format.read_file(path))

    def copy(self):
        return type(self).from_bytes(self.to_bytes())

    def __eq__(self, other):
        return isinstance(other, RewardModel) and self.to_bytes() == other.to_bytes()

    __hash__ = None

    # ------------------------------------------------------------------ input checks
    def _vector(self, x, name):
        a = _real_array(x, name)
        if a.shape != (self._d,):
            raise InvalidInputError(f"{name} must have shape ({self._d},), got {a.shape}")
        if a.dtype.kind in "iu":  # differences of unsigned/small ints would wrap around
            a = a.astype(np.float64)
        _check_finite(a, name)
        return a

    def _matrix(self, X, name):
        a = _real_array(X, name)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] != self._d:
            raise InvalidInputError(f"{name} must have shape (n, {self._d}) or ({self._d},), got {a.shape}")
        _check_finite(a, name)
        return a.astype(np.float64, copy=False)


def _projection_bytes(cls, d, rank, radius):
    return 0 if radius is None else projection.workspace_bytes(d, **cls.projection_shape(d, rank))


def _choose_solver(solver, d, itemsize, budget, forget, sketch_rank, radius=None):
    """Pick (solver name, sketch rank) for the budget; BudgetError when nothing fits."""
    front = _front_bytes(d, itemsize)

    def size(name, rank=None):
        cls = SOLVERS[name]
        return cls.state_bytes(d, itemsize, rank) + front + _projection_bytes(cls, d, rank, radius)

    def fits(name, rank=None):
        return budget is None or size(name, rank) <= budget

    def sketch_rank_for_budget():
        if sketch_rank is not None:
            return sketch_rank if fits("sketch", sketch_rank) else 0
        if budget is None:
            return min(d, 64)
        lo, hi = 0, SketchSolver.max_rank(d, itemsize, budget - front)
        while lo < hi and radius is not None:  # the projection's workspace grows with the rank
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits("sketch", mid) else (lo, mid - 1)
        return hi

    if solver == "auto":
        full = "exact" if forget == 1.0 else "cg"
        if fits(full):
            return full, None
        rank = sketch_rank_for_budget()
        if rank >= 2:
            return "sketch", rank
        if fits("diagonal"):
            return "diagonal", None
        raise BudgetError(f"budget_bytes={budget} is below the smallest state for d={d} "
                          f"(diagonal: {size('diagonal')} bytes)")
    if solver == "sketch":
        rank = sketch_rank_for_budget()
        if rank < 1:
            raise BudgetError(f"budget_bytes={budget} holds no sketch for d={d} (rank 1 needs "
                              f"{size('sketch', 1)} bytes)")
        return "sketch", rank
    if not fits(solver):
        need = size(solver)
        raise BudgetError(f"solver {solver!r} needs {need} bytes for d={d}, budget_bytes={budget}")
    return solver, None


def _real_array(x, name):
    try:
        a = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise InvalidInputError(f"{name} is not an array of numbers: {e}") from e
    if a.dtype.kind not in "fiu":
        raise InvalidInputError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return a


def _check_finite(a, name):
    if a.ndim == 1 and a.dtype in (np.float32, np.float64) and a.flags.c_contiguous:
        top = linalg.max_abs_or_inf(a)  # the per-update path: no temporaries
    else:
        top = float(np.abs(a).max()) if a.size else 0.0
        if not np.isfinite(a).all():
            top = math.inf
    if top == math.inf:
        raise InvalidInputError(f"{name} contains NaN or inf")
    if top > MAX_ABS_INPUT:
        raise InvalidInputError(f"{name} has entries above {MAX_ABS_INPUT:g} in magnitude; "
                                "features are expected L2-normalised")


def _scalar(x, name):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise InvalidInputError(f"{name} must be a real number, got {type(x).__name__}")
    x = float(x)
    if not math.isfinite(x):
        raise InvalidInputError(f"{name} must be finite, got {x}")
    return x


def _label(y):
    if isinstance(y, (bool, np.bool_)):
        return float(y)
    y = _scalar(y, "y")
    if not 0.0 <= y <= 1.0:
        raise InvalidInputError(f"y must be in [0, 1], got {y}")
    return y


def _weight(w):
    w = _scalar(w, "weight")
    if not 0.0 < w <= MAX_WEIGHT:
        raise InvalidInputError(f"weight must be in (0, {MAX_WEIGHT:g}], got {w}")
    return w


def _config_number(name, x):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real) or not math.isfinite(float(x)):
        raise ConfigError(f"{name} must be a finite real number, got {x!r}")
    return x


def _float_param(name, x):
    return float(_config_number(name, x))


def _range_param(name, x, lo, hi):
    """lo < x <= hi for lo == 0, else lo <= x <= hi."""
    x = _float_param(name, x)
    if not ((lo < x) if lo == 0.0 else (lo <= x)) or x > hi:
        raise ConfigError(f"{name} must be in {'(' if lo == 0.0 else '['}{lo:g}, {hi:g}], got {x}")
    return x


def _pos_param(name, x):
    x = _float_param(name, x)
    if x <= 0:
        raise ConfigError(f"{name} must be > 0, got {x}")
    return x


def _int_param(name, x, lo, hi):
    x = _config_number(name, x)
    if not isinstance(x, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {x!r}")
    x = int(x)
    if not lo <= x <= hi:
        raise ConfigError(f"{name} must be in [{lo}, {hi}], got {x}")
    return x


def _fingerprint(fp):
    if not isinstance(fp, (bytes, bytearray)) or len(fp) != 32:
        raise InvalidInputError("a head fingerprint is 32 bytes (SHA-256 digest)")
    return bytes(fp)
