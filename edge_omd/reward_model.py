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

This class is the checked front: it validates every argument (edge_omd/_checks.py), converts it
into fixed buffers, and calls the solver's Numba kernels (edge_omd/solvers/), which never
allocate. Its settings are one frozen ModelConfig (edge_omd/config.py); the solver a budget
picks and the state's size are edge_omd/sizing.py's.
"""
import math

import numpy as np

from edge_omd import _checks, _deprecated, linalg, projection, state_format
from edge_omd.population.pack import Pack
from edge_omd.prior import Prior
from edge_omd.config import DTYPES as DTYPE_NAMES
from edge_omd.config import HYPERPARAMETERS, ITEMSIZE, MAX_DIM, ModelConfig
from edge_omd.errors import BudgetError, ConfigError, InvalidInputError, NumericalError, StateFormatError
from edge_omd.head.binding import check_binding
from edge_omd.solvers import SOLVERS, mnl
from edge_omd.solvers.mnl import MAX_K
from edge_omd.sizing import FRONT, _new_config, _resolve, _size

DTYPES = {name: np.dtype(name).type for name in DTYPE_NAMES}  # name -> numpy scalar type

#: astype's default: keep the model's own budget_bytes
_KEEP = object()


class RewardModel:
    """A per-user reward model r(phi) = theta^T phi with a constant-size state.

    Parameters (hyperparameters only here; all keyword-only after `dim`; their defaults, ranges
    and meaning are the fields of edge_omd.config.ModelConfig):
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
            counts in nbytes and the budget. Below config.MIN_RADIUS[dtype]: ConfigError.
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
        population: a population pack (edge_omd.population.Pack; a Prior is taken as
            `Pack.from_prior(prior)`): the model starts (and `reset` returns) at theta =
            pack.theta0, cal_H_0 = (lam + c) I + sign V^T V, held as far as the solver can
            (exact and cg exactly, diagonal its diagonal; the sketch refuses sign -1: ConfigError
            naming the fix). docs/ALGORITHM.md, "Population pack". Its dim must be `dim`, its
            lam the model's lam (else ConfigError), its fingerprint the head_fingerprint when
            both are set (an unbound model takes the pack's), ||theta0|| <= radius when a radius
            is set. The state stays an ordinary one: to_bytes does not hold the pack, and a
            loaded model resets to theta = 0.
        prior: the same argument under its older name (a Prior or a Pack); give one of the two.
    Invalid settings raise ConfigError (BudgetError when nothing fits the budget).
    """

    def __init__(self, dim, *, solver="auto", sketch_rank=None, head_fingerprint=None,
                 population=None, prior=None, **hyperparameters):
        unknown = sorted(set(hyperparameters) - set(HYPERPARAMETERS))
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; RewardModel takes "
                              f"{', '.join(HYPERPARAMETERS)}, solver, sketch_rank, head_fingerprint, "
                              "population")
        config = ModelConfig(dim=dim, solver=solver, rank=sketch_rank, **hyperparameters)
        fp = None if head_fingerprint is None else _checks.fingerprint(head_fingerprint, ConfigError)
        self._init(_new_config(config), fp, _one_population(population, prior))

    @classmethod
    def from_config(cls, config, head_fingerprint=None, population=None):
        """A fresh model of a ModelConfig (solver "auto" and the rank resolved as the
        constructor does), started at `population` (a Pack or a Prior) if given."""
        if not isinstance(config, ModelConfig):
            raise ConfigError(f"config must be a ModelConfig, got {type(config).__name__}")
        fp = None if head_fingerprint is None else _checks.fingerprint(head_fingerprint, ConfigError)
        model = cls.__new__(cls)
        model._init(_new_config(config), fp, _one_population(population, None))
        return model

    def _init(self, config, fingerprint, given=None):
        pack = None
        if given is not None:  # checked before anything is built
            pack = given if isinstance(given, Pack) else Pack.from_prior(given)
            fingerprint = _check_pack(pack, config, fingerprint)
        cls = SOLVERS[config.solver]
        d, dtype = config.dim, np.dtype(config.dtype)
        self._config = config
        self._d, self._dtype = d, dtype
        front = {a.name: np.zeros(a.dims(d, 0, {}), a.np_dtype(dtype.itemsize).newbyteorder("="))
                 for a in FRONT}
        self._z = front["z"]  # the current observation, converted once
        self._t = front["t"]  # updates absorbed; the solvers read it (cg's lambda_t)
        self._solver = cls(config, self._t)
        # step 3's preallocated Krylov workspace (edge_omd/projection.py), part of the state's bytes
        self._proj = None if config.radius is None else projection.make_workspace(
            d, **cls.projection_shape(d, config.rank))
        self._fingerprint = fingerprint
        self._prior, self._pack = given, pack
        if pack is not None:
            self._start()
        assert self.nbytes == _size(cls, d, dtype.itemsize, config.rank, config.radius)

    # ------------------------------------------------------------------ sizes and properties
    @staticmethod
    def state_bytes(dim, solver, dtype="float32", sketch_rank=None, radius=None, **old):
        """Bytes of the whole state of a model with these settings (equals `model.nbytes`);
        a radius adds the projection's fixed workspace (edge_omd/projection.py). `rank=` is
        sketch_rank's deprecated name."""
        rank = _deprecated.argument("RewardModel.state_bytes", "sketch_rank", sketch_rank,
                                    "rank", old, default=None)
        if solver not in SOLVERS:
            raise ConfigError(f"solver must be one of {sorted(SOLVERS)}, got {solver!r}")
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        dim = _checks.int_in("dim", dim, 1, MAX_DIM, ConfigError)
        cls = SOLVERS[solver]
        if cls.spec.ranked:
            if rank is None:
                raise ConfigError(f"the {solver}'s size depends on its rank: pass sketch_rank=")
            rank = _checks.int_in("sketch_rank", rank, 1, dim, ConfigError)
        if radius is not None:
            radius = _checks.real_in("radius", radius, 0.0, math.inf, ConfigError, open_lo=True)
        return _size(cls, dim, ITEMSIZE[dtype], rank if cls.spec.ranked else None, radius)

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
    def sketch_rank(self):
        """Sketch rank ell, or None for the other solvers (the constructor's `sketch_rank`; the
        state header's `rank` field)."""
        return self._config.rank

    rank = _deprecated.attribute("RewardModel", "rank", "sketch_rank")

    @property
    def config(self):
        """The frozen ModelConfig (solver and rank resolved)."""
        return self._config

    @property
    def hyperparameters(self):
        return self._config.hyperparameters()

    @property
    def head_fingerprint(self):
        """32-byte fingerprint of the feature head this state belongs to, or None."""
        return self._fingerprint

    def bind_head(self, fingerprint):
        """Attach the state to a feature head; a state bound to another head is refused."""
        fp = _checks.fingerprint(fingerprint)
        check_binding(self._fingerprint, self._d, fp, self._d, what="this state")
        self._fingerprint = fp

    def __repr__(self):
        rank = f", sketch_rank={self.sketch_rank}" if self.sketch_rank else ""
        return (f"RewardModel(dim={self._d}, solver={self.solver!r}{rank}, dtype={self.dtype!r}, "
                f"t={self.t}, nbytes={self.nbytes})")

    # ------------------------------------------------------------------ learning verbs
    def learn_one(self, z, y, weight=1.0):
        """One logistic-GLM observation: P(y = 1) = sigma(theta^T z); y in [0, 1] (soft ok)."""
        z = self._vector(z, "z")
        y = _checks.label(y)
        w = _checks.weight(weight)
        np.copyto(self._z, z, casting="unsafe")
        self._update(y, w)

    def learn_pair(self, phi_chosen, phi_rejected, weight=1.0):
        """One preference: phi_chosen preferred to phi_rejected (z = difference, y = 1)."""
        a = self._vector(phi_chosen, "phi_chosen")
        b = self._vector(phi_rejected, "phi_rejected")
        w = _checks.weight(weight)
        np.subtract(a, b, out=self._z, casting="unsafe")
        self._update(1.0, w)

    def learn_thumb(self, phi, up, weight=1.0):
        """One thumbs up (up=True) or down on a single response: z = phi, y = up.

        The same GLM as a comparison against a neutral reference whose reward is 0.
        """
        phi = self._vector(phi, "phi")
        up = _checks.flag("up", up)
        w = _checks.weight(weight)
        np.copyto(self._z, phi, casting="unsafe")
        self._update(1.0 if up else 0.0, w)

    def _learn_observation(self, z, y, weight=1.0):
        """Learn z exactly as given (no conversion): the replay of a journal record.

        z: (d,) finite, already in the state's dtype (what `_observation` held after the live
        learn_* call); y in [0, 1]. Same kernels on the same bits: the model ends with the
        bytes the live model had (edge_omd/store/journal.py)."""
        z = _checks.exact_array(z, "z", (self._d,), self._dtype)
        y = _checks.label(y)
        w = _checks.weight(weight)
        np.copyto(self._z, z)
        self._update(y, w)

    def learn_choice(self, Phi, picked=_deprecated.UNSET, weight=1.0, **old):
        """The user saw the k candidates Phi (k, d) and picked row `picked` (an index; `chosen=`
        is its deprecated name): one multinomial-logit (Plackett-Luce first choice)
        observation, P(picked) = softmax_j(theta.phi_j)[picked],
        learned by the same one-pass step as a pair (docs/ALGORITHM.md, "Choice among k"):
        its Hessian, rank k - 1, at theta_t inside tilde_H, at theta_{t+1} into cal_H.

        2 <= k <= MAX_K (16); duplicate rows are allowed. k = 2 is `learn_pair(Phi[picked],
        Phi[1 - picked])` up to rounding. Phi is converted once into the state's dtype (what a
        journal record of the choice stores); learning allocates O(k d) scratch for the call,
        not kept (nbytes is unchanged). Bad input: InvalidInputError; a non-finite update:
        NumericalError; the state is unchanged in both cases."""
        picked = _deprecated.argument("RewardModel.learn_choice", "picked", picked, "chosen", old)
        P = self._choice_input(Phi)
        c = _checks.int_in("picked", picked, 0, P.shape[0] - 1)
        w = _checks.weight(weight)
        self._choice(P, c, w)

    def _choice_input(self, Phi):
        """Phi checked (a (k, d) real array, 2 <= k <= MAX_K, finite and bounded) and converted
        into a new C-contiguous (k, d) array of the state's dtype: what `learn_choice` learns
        from and a journal record of the choice stores (`_learn_choice_observation`)."""
        a = _checks.real_array(Phi, "Phi")
        if a.ndim != 2 or a.shape[1] != self._d:
            raise InvalidInputError(f"Phi must have shape (k, {self._d}), got {a.shape}")
        if not 2 <= a.shape[0] <= MAX_K:
            raise InvalidInputError(f"a choice needs 2 to {MAX_K} candidates, got {a.shape[0]}")
        if a.dtype.kind in "iu":
            a = a.astype(np.float64)
        _checks.finite_and_bounded(a, "Phi", top=_top_matrix)
        return np.array(a, dtype=self._dtype, order="C")

    def _learn_choice_observation(self, Phi, picked, weight=1.0):
        """Learn a choice exactly as given (no conversion): the replay of a kind-2 journal
        record. Phi: (k, d) finite, already in the state's dtype (`_choice_input`'s result);
        same kernels on the same bits, so the model ends with the live model's bytes."""
        a = _checks.real_array(Phi, "Phi")  # (a ragged list: InvalidInputError, not ValueError)
        k = a.shape[0] if a.ndim == 2 else -1
        P = _checks.exact_array(a, "Phi", (k, self._d), self._dtype)
        if not 2 <= k <= MAX_K:
            raise InvalidInputError(f"a choice needs 2 to {MAX_K} candidates, got {k}")
        c = _checks.int_in("picked", picked, 0, k - 1)
        w = _checks.weight(weight)
        self._choice(np.ascontiguousarray(P), c, w)

    def _choice(self, P, c, w):
        k, d = P.shape
        cw = mnl.make_work(k - 1, d, self._dtype)  # scratch of this call (solvers/mnl.py)
        mnl.differences(P, c, cw.Z)  # z_j = phi_c - phi_j (j != c), in the state's dtype
        solver, eta = self._solver, self._config.eta
        solver.choice_keep(cw)
        if not solver.choice_step(cw, w, eta):  # steps 1-2
            solver.choice_restore(cw)
            raise NumericalError(self._refused("choice"))
        if self._config.radius is not None:  # step 3, tilde_H = cal_H + eta X^T X at theta_t
            mnl.rows(cw.Lw, cw.Z, math.sqrt(eta), cw.X)
            if mnl.project(solver, cw.X, solver.choice_lower(), solver.choice_theta0,
                           solver.set_theta) < 0:
                solver.choice_restore(cw)
                raise NumericalError("the projection onto ||theta|| <= radius has no finite "
                                     "result; the state was left unchanged (check radius and "
                                     "the feature scale)")
        if not solver.choice_absorb(cw, w):  # step 4
            solver.choice_restore(cw)
            raise NumericalError("the choice's curvature is beyond what the state's dtype can "
                                 "hold next to lam; the state was left unchanged. Check the "
                                 "feature scale; if choices keep being refused, "
                                 + self._way_out())
        self._t[0] = min(self._t[0] + 1, state_format.MAX_T)

    @property
    def _observation(self):
        """z of the last learn_* call as the model used it (state dtype; a pair's difference
        phi_chosen - phi_rejected converted once). A read-only view, valid until the next call
        that learns or fantasizes: what a journal record stores (`_learn_observation`)."""
        v = self._z.view()
        v.flags.writeable = False
        return v

    # The journal's replay verbs, public until the next release (docs/API.md): a store replays
    # its records itself (edge_omd/store/journal.py); an app learns with the learn_* verbs.
    learn_observation = _deprecated.method(
        "RewardModel", "learn_observation", "_learn_observation",
        use="RewardModel.learn_one (journal replay is the store's: edge_omd/store/journal.py)")
    learn_choice_observation = _deprecated.method(
        "RewardModel", "learn_choice_observation", "_learn_choice_observation",
        use="RewardModel.learn_choice (journal replay is the store's: edge_omd/store/journal.py)")
    choice_input = _deprecated.method(
        "RewardModel", "choice_input", "_choice_input",
        use="RewardModel.learn_choice, which converts Phi itself (the journal keeps what it used)")
    observation = _deprecated.attribute(
        "RewardModel", "observation", "_observation",
        use="the z you pass to RewardModel.learn_one (the journal keeps what the model used)")

    def fantasize(self, z, weight=1.0):
        """Add the curvature w sigma'(theta.z) z z^T of a hypothetical observation to the local
        norm without moving theta or t (greedy, non-redundant active selection on a copy)."""
        z = self._vector(z, "z")
        w = _checks.weight(weight)
        np.copyto(self._z, z, casting="unsafe")
        if math.isnan(self._solver.fantasize(self._z, w)):  # the solver's guards: nothing moved
            raise NumericalError("the fantasized curvature is beyond what the state's dtype can "
                                 "hold next to lam; the state was left unchanged (check the "
                                 "feature scale)")

    def reset(self):
        """Forget everything learned: theta = 0, cal_H = lam I, t = 0 (settings kept); with a
        population pack, back to its start."""
        self._t[0] = 0
        self._solver.reset()
        if self._pack is not None:
            self._start()

    def _start(self):
        """theta = theta0, cal_H = cal_H_0 of the pack (t = 0: cg's damping is lambda_1)."""
        theta0, c, V, sign = self._pack.start()
        theta0, V = np.array(theta0), np.array(V)      # writable copies for the kernels
        problem = self._solver.start(theta0, c, V, sign)
        if problem:
            fix = ""
            if self.solver == "sketch" and sign < 0:
                fix = ("; the sketch (alpha I + B B^T) cannot hold a pack's weak directions: give "
                       "the model a budget that keeps the exact solver (budget_bytes=None, or "
                       "solver='exact'), or use a pack with K = 0")
            raise ConfigError(f"the {self.solver} {self.dtype} state cannot start at this "
                              f"population pack: {problem}{fix}")

    # ---- a user moved to another pack (edge_omd/population/migrate.py)
    def _curvature(self):
        """cal_H as the state holds it, float64: (d, d), or (d,) its diagonal for the diagonal
        solver (column by column from the solver's matvec, O(d) of them)."""
        self._solver.flush()        # exact: the deferred rank-one update (bytes unchanged)
        if self.solver == "diagonal":
            return self._solver.matvec(np.ones(self._d))
        return np.stack([self._solver.matvec(e) for e in np.eye(self._d)], axis=1)

    def _damping(self, t):
        """The isotropic floor of cal_H after t updates: cg's lambda_{t+1}, else lam."""
        lam_at = getattr(self._solver, "lam_at", None)
        return self._config.lam if lam_at is None else lam_at(t + 1)

    def _restart(self, theta0, c, V, sign, t):
        """theta = theta0, cal_H = `_damping(t)` I + c I + sign V^T V, t updates absorbed;
        ConfigError, nothing changed, if the solver cannot hold it."""
        problem = self._solver.start(np.array(theta0, np.float64), c, np.array(V, np.float64),
                                     sign)
        if problem:
            raise ConfigError(f"the {self.solver} {self.dtype} state cannot hold the moved "
                              f"user: {problem}")
        self._t[0] = t

    @property
    def prior(self):
        """What this model starts (and resets) at, as it was given (a Prior or a Pack), or
        None."""
        return self._prior

    @property
    def population(self):
        """The population pack this model starts (and resets) at (a Prior as a Pack), or
        None."""
        return self._pack

    def _update(self, y, w):
        solver = self._solver
        if self._proj is not None:
            solver.keep(self._proj)  # theta_t, to undo step 2 if step 3 fails
        a = solver.step(self._z, y, w)  # steps 1-2
        if math.isnan(a):  # the kernel checked before moving anything
            raise NumericalError(self._refused("update"))
        if self._proj is not None:                          # step 3
            k = solver.project(self._proj, self._z, a)
            if k < 0:
                solver.restore(self._proj)
                raise NumericalError("the projection onto ||theta|| <= radius has no finite "
                                     "result; the state was left unchanged (check radius and "
                                     "the feature scale)")
        solver.absorb(self._z, w)  # step 4
        self._t[0] = min(self._t[0] + 1, state_format.MAX_T)

    # ------------------------------------------------------------------ scoring
    def reward(self, Phi):
        """r(phi) = theta^T phi for each row of Phi ((n, d) or (d,)); returns (n,) float64."""
        P = np.ascontiguousarray(_checks.matrix(Phi, "Phi", self._d))
        out = np.empty(P.shape[0])
        linalg.rows_dot(P, self._solver.theta(), out)  # the same bits on every CPU (no BLAS)
        return out

    def width(self, Phi, ref=None):
        """||phi - ref||_{cal_H^{-1}} for each row (ref: (d,) or None); returns (n,) float64.

        The confidence width of the paper: the pessimistic ranking subtracts beta times it, the
        deployment rule adds 2 beta times it, active selection maximises it.
        """
        P = _checks.matrix(Phi, "Phi", self._d)
        if ref is not None:
            P = P - self._vector(ref, "ref")
        V = np.ascontiguousarray(P, dtype=self._dtype)
        if not V.flags.writeable:  # the kernels take the model's own buffers, never a read-only one
            V = V.copy()
        out = np.empty(V.shape[0], np.float64)
        self._solver.widths(V, out)
        return out

    # ------------------------------------------------------------------ persistence
    def to_bytes(self):
        """Serialise the state (format documented in edge_omd/state_format.py, docs/STATE_FORMAT.md)."""
        return state_format.encode(self._config, self.t, self._fingerprint, self._solver.payload())

    @classmethod
    def from_bytes(cls, data):
        """Rebuild a model from `to_bytes()` output; StateFormatError if anything is off."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInputError(f"from_bytes needs bytes, got {type(data).__name__}")
        config, t, fingerprint, arrays = state_format.decode(data)
        try:
            model = cls.__new__(cls)
            model._init(_resolve(config), fingerprint)
        except ConfigError as e:
            raise StateFormatError(f"state holds invalid settings: {e}") from e
        model._t[0] = t  # (cg's checks read lambda_{t+1})
        problem = model._solver.invalid(model._solver.Payload(*arrays))
        if problem:
            raise StateFormatError(f"inconsistent {model.solver} state: {problem}")
        for dst, src in zip(model._solver.payload(), arrays):
            dst[...] = src
        model._solver.loaded()
        model._t[0] = t
        return model

    def save(self, path):
        """Write the state to `path` atomically (temp file + fsync + rename). A file-system
        failure (missing folder, no permission, disk full) raises the OSError that `open`
        would, and leaves the previous file intact."""
        state_format.write_file(path, self.to_bytes())

    @classmethod
    def load(cls, path):
        """Read a state written by `save`; checks header and size before reading the payload.
        A corrupt or foreign file raises StateFormatError; a missing or unreadable one the
        OSError that `open` would (FileNotFoundError, PermissionError), as for any file."""
        return cls.from_bytes(state_format.read_file(path))

    def copy(self):
        """An independent model with the same bytes (and the same prior to reset to)."""
        out = type(self).from_bytes(self.to_bytes())
        out._prior, out._pack = self._prior, self._pack
        return out

    def astype(self, dtype, *, budget_bytes=_KEEP):
        """This model with its arrays in `dtype` ("float64" or "float32"), everything learned
        kept: theta, the local norm and t as they are (float32 -> float64 is exact; exact
        re-derives theta = U^{-1} phi in float64). The way out of a float32 refusal
        (NumericalError: "the state's dtype can no longer hold the local norm"): the float64
        state holds a condition number 2^29 times larger. `budget_bytes`: the model's own
        unless given (None: no bound); BudgetError (nothing changed) if the new state does not
        fit. ConfigError if the result is not a state the loader accepts (float64 -> float32 of
        a state float32 cannot hold). Returns a new model; this one is unchanged.

            >>> m = RewardModel(4)
            >>> m.learn_one([1.0, 0.0, 0.0, 0.0], 1.0)
            >>> m.astype("float64").dtype
            'float64'
        """
        if dtype not in DTYPE_NAMES:
            raise ConfigError(f"dtype must be one of {sorted(DTYPE_NAMES)}, got {dtype!r}")
        budget = self._config.budget_bytes if budget_bytes is _KEEP else budget_bytes
        config = self._config.replace(dtype=dtype, budget_bytes=budget)
        need = _size(type(self._solver), self._d, config.itemsize, config.rank, config.radius)
        if budget is not None and need > budget:
            raise BudgetError(f"the {dtype} {self.solver} state needs {need} bytes, above "
                              f"budget_bytes={budget}: pass a larger budget_bytes= (None: no "
                              "bound); the model was left unchanged")
        out = type(self).__new__(type(self))
        out._init(config, self._fingerprint)
        for dst, src in zip(out._solver.payload(), self._solver.payload()):
            dst[...] = src
        out._solver.loaded()
        out._solver.rederive()
        out._t[0] = self.t
        try:
            out = type(self).from_bytes(out.to_bytes())  # the loader's checks, as on a reload
        except StateFormatError as e:
            raise ConfigError(f"this {self.solver} state cannot be held in {dtype}: {e}") from None
        out._prior, out._pack = self._prior, self._pack
        return out

    def __eq__(self, other):
        return isinstance(other, RewardModel) and self.to_bytes() == other.to_bytes()

    __hash__ = None

    def _refused(self, what):
        """The message of a refused step: what the guards refuse and the ways out this model
        has (docs/ALGORITHM.md, "Numerics in float32")."""
        return (f"the {what} was refused: it would give a non-finite theta, or the state's dtype "
                f"can no longer hold the local norm accurately; the state was left unchanged. "
                f"If it is the feature scale or eta, check them; if updates keep being refused, "
                f"{self._way_out()}")

    def _way_out(self):
        """What a user whose updates keep being refused can do, for this model."""
        if self.dtype == "float32":
            out = ("convert it to float64, learning kept: model = model.astype('float64') "
                   "(a stored user: Personalizer.to_float64()); or reset")
        else:
            out = "reset"
        if self._solver.supports_forget and self._config.forget == 1.0:
            out += "; a new model with forget < 1 bounds the curvature"
        return out

    # ------------------------------------------------------------------ input checks
    def _vector(self, x, name):
        return _checks.vector(x, name, self._d, top=_top)


def _top_matrix(a):
    """max |a_ij| or inf for a C-contiguous float matrix through the 1-D kernel (no temporary)."""
    if a.flags.c_contiguous and a.dtype in (np.float32, np.float64):
        return linalg.max_abs_or_inf(a.reshape(-1))
    return _checks.max_abs_or_inf(a)


def _top(a):
    """max |a_i| or inf (NaN / inf): the allocation-free kernel for the per-update vector."""
    if a.ndim == 1 and a.dtype in (np.float32, np.float64) and a.flags.c_contiguous:
        return linalg.max_abs_or_inf(a)
    return _checks.max_abs_or_inf(a)


def _one_population(population, prior):
    """The population argument (a Pack or a Prior) of `population=` or its older name
    `prior=`; ConfigError for both or for anything else."""
    if population is not None and prior is not None:
        raise ConfigError("give the population pack once: population= (prior= is its older name)")
    given = population if population is not None else prior
    if given is not None and not isinstance(given, (Pack, Prior)):
        raise ConfigError(f"population must be an edge_omd.population.Pack (or an "
                          f"edge_omd.prior.Prior), got {type(given).__name__}")
    return given


def _check_pack(pack, config, fingerprint):
    """The fingerprint the model gets (the pack's when the model has none); ConfigError unless
    `pack` has this dim and lam, the same head when both are bound, theta0 inside the radius."""
    if pack.dim != config.dim:
        raise ConfigError(f"the population pack has dim {pack.dim}, the model {config.dim}")
    if pack.lam != config.lam:   # the pack's precisions are (lam + c) - s_k: lam is part of it
        raise ConfigError(f"the population pack was fitted for lam = {pack.lam:g}, the model "
                          f"has lam = {config.lam:g}; build the model with lam={pack.lam!r} "
                          f"(the Personalizer does so by itself) or refit it for "
                          f"lam={config.lam:g} (fit_prior(..., lam={config.lam:g}), edge-omd "
                          f"prior ... --lam {config.lam:g})")
    if pack.fingerprint is not None:
        fp = pack.fingerprint
        if fingerprint is not None and fp != fingerprint:
            raise ConfigError(f"the population pack was fitted on head {fp.hex()[:16]}..., not "
                              f"on this model's head {fingerprint.hex()[:16]}...; fit one on "
                              "this head (edge-omd population fit FEEDBACK OUT --head HEAD)")
        fingerprint = fp
    if config.radius is not None:
        norm = float(np.linalg.norm(pack.theta0))
        if not norm <= config.radius:
            raise ConfigError(f"the population pack's ||theta0|| = {norm:.4g} is beyond radius = "
                              f"{config.radius:g}; raise the radius or refit the pack")
    return fingerprint
