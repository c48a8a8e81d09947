"""The solver contract and the per-solver spec: the one place where a solver's arrays are listed.

A solver is one module (exact.py, cg.py, sketch.py, diagonal.py) holding its Numba kernels (the
exact solver's in exact_kernels.py) and one `Solver` subclass whose `spec` lists its arrays in order: name, shape (an expression in d and
the sketch rank ell), dtype ("F" the state's dtype, "f8" float64, "i8" int64), and whether it is
saved in the state file (the payload, in spec order) or work memory. From the spec alone come:

    - the allocation of the state (`SolverSpec.allocate`, a NamedTuple of fixed arrays);
    - the byte sizes (`SolverSpec.nbytes`: the whole state; `payload_bytes`: the file's part)
      and the largest sketch rank a budget holds (`SolverSpec.max_rank`);
    - the payload layout the state format writes and reads (edge_omd/state_format.py);
    - the table of docs/STATE_FORMAT.md (`render_table`, checked by a test);
    - the Java reader's layout golden (tests/runtime/golden/state_layout.json, `layout_golden`),
      which android_demo/core's StateFormat.payloadSpec is checked against.

Subclasses register themselves by code and name (`REGISTRY`); edge_omd/solvers/__init__.py
imports the solver modules, one line each. Adding a fifth solver = one module + that line.

The contract (what the RewardModel front calls; t is never passed: a solver that needs the
update counter reads the front's (1,) int64 `counter`, hyperparameters come from `config`):

    step(z, y, w) -> a          Algorithm 1, steps 1-2; NaN if nothing moved (non-finite)
    absorb(z, w) -> c           step 4, right after a step (config.forget applies)
    fantasize(z, w) -> c        the curvature of a hypothetical observation (no step before,
                                no forgetting): greedy active selection on a copy
    theta() / set_theta(v)      theta_t in the state's dtype / replace it (float64 in)
    keep(ws) / restore(ws)      remember theta_t before step 2 / roll back a failed step 3
    project(ws, z, a, ...)      step 3 onto ||theta|| <= config.radius; Lanczos steps or < 0
    widths(V, out)              ||v||_{cal_H^{-1}} for each row of V
    matvec(vec)                 cal_H vec in float64 (tests and benches)
    reset()                     theta = 0, cal_H = lam I
    start(theta0, c, V, sign)   theta = theta0, cal_H = (lam + c) I + sign V^T V (sign +-1):
                                a population prior's start (edge_omd/prior.py), exactly as
                                far as the representation holds it; returns why not (nothing
                                changed)
    flush()                     apply deferred work (default: none)
    payload()                   the saved arrays, in spec order, current
    loaded()                    after the payload arrays were filled from a file (default: none)
    invalid(arrays)             why a loaded payload (a `Payload`) cannot be this solver's
    projection_shape(d, rank)   make_workspace arguments of its step 3

and for a choice among k (RewardModel.learn_choice; the n = k - 1 rank-one terms of one
observation live in the call's scratch `cw`, edge_omd/solvers/mnl.py):

    choice_keep(cw) / choice_restore(cw)   remember theta_t / roll back a refused choice
    choice_step(cw, w, eta) -> ok          steps 1-2 with tilde_H = cal_H + eta X^T X
    choice_absorb(cw, w) -> ok             step 4: the n terms at theta_{t+1}
    choice_hv(vec, out, tmp)               cal_H vec (step 3's operator, float64)
    choice_lower()                         a lower bound on cal_H's spectrum (step 3)
    choice_theta0(ws)                      ||theta'|| with theta' loaded into ws.theta0
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from edge_omd import linalg
from edge_omd.solvers import prior_start

#: dtype tags of an array: the state's dtype (float32 or float64), float64, int64
F, F8, I8 = "F", "f8", "i8"
_FIXED = {F8: np.dtype("<f8"), I8: np.dtype("<i8")}


@dataclass(frozen=True)
class ArraySpec:
    """One array of a solver's state."""
    name: str
    shape: str       # comma-separated expressions in d, ell and the spec's constants: "2 * ell, d"
    dtype: str       # F (the state's dtype), F8 or I8
    saved: bool      # part of the state file's payload (in spec order), else work memory
    doc: str = ""

    def __post_init__(self):
        if self.dtype not in (F, F8, I8):
            raise ValueError(f"{self.name}: dtype tag {self.dtype!r}")
        object.__setattr__(self, "_code", compile(f"({self.shape},)", self.name, "eval"))

    def dims(self, d: int, ell: int, consts: dict) -> tuple:
        # the expression is a constant of the solver's source, evaluated with no builtins
        return tuple(int(n) for n in eval(self._code, {"__builtins__": {}},  # noqa: S307
                                          dict(consts, d=d, ell=ell, min=min)))

    def np_dtype(self, itemsize: int) -> np.dtype:
        return np.dtype(f"<f{itemsize}") if self.dtype == F else _FIXED[self.dtype]

    def type_name(self) -> str:
        """The dtype as the docs write it: F (the state's dtype), f64 or i64."""
        return {F: "F", F8: "f64", I8: "i64"}[self.dtype]


@dataclass(frozen=True)
class SolverSpec:
    """Everything the format, the sizes and the allocation need to know about one solver."""
    name: str
    code: int                    # the u8 solver field of the state header
    arrays: tuple                # ArraySpec, in state order; the saved ones in file order
    ranked: bool = False         # has a rank ell (header field rank; 0 for the others)
    supports_forget: bool = True
    consts: tuple = ()           # ((name, value), ...) usable in shape expressions
    doc: str = ""

    def __post_init__(self):
        if not 1 <= self.code <= 255:
            raise ValueError(f"solver code {self.code} is not a u8 > 0")
        names = [a.name for a in self.arrays]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate array names")

    def _ell(self, rank) -> int:
        return int(rank) if self.ranked else 0

    def shapes(self, d: int, rank=None, itemsize: int = 4, saved_only: bool = False) -> list:
        """[(name, shape, numpy dtype)] in state order (the payload's, with saved_only)."""
        consts, ell = dict(self.consts), self._ell(rank)
        return [(a.name, a.dims(d, ell, consts), a.np_dtype(itemsize)) for a in self.arrays
                if a.saved or not saved_only]

    def payload(self, d: int, rank, itemsize: int) -> list:
        """[(shape, dtype)] of the payload arrays, in file order."""
        return [(shape, dt) for _n, shape, dt in self.shapes(d, rank, itemsize, saved_only=True)]

    @staticmethod
    def _bytes(shapes) -> int:
        return sum(int(np.prod(s, dtype=np.int64)) * dt.itemsize for _n, s, dt in shapes)

    def nbytes(self, d: int, rank, itemsize: int) -> int:
        """Bytes of every array of the state (saved and work)."""
        return self._bytes(self.shapes(d, rank, itemsize))

    def payload_bytes(self, d: int, rank, itemsize: int) -> int:
        return self._bytes(self.shapes(d, rank, itemsize, saved_only=True))

    def payload_offsets(self, d: int, rank, itemsize: int) -> dict:
        """name -> byte offset of each payload array from the start of the payload."""
        out, off = {}, 0
        for n, s, dt in self.shapes(d, rank, itemsize, saved_only=True):
            out[n] = off
            off += int(np.prod(s, dtype=np.int64)) * dt.itemsize
        return out

    def allocate(self, d: int, rank, dtype) -> dict:
        """Zeroed arrays, name -> array, in state order."""
        return {n: np.zeros(s, dt.newbyteorder("=")) for n, s, dt in
                self.shapes(d, rank, np.dtype(dtype).itemsize)}

    def state_type(self, typename: str, saved_only: bool = False):
        """The NamedTuple of this solver's arrays (Numba-friendly, fixed fields); with
        saved_only, of its payload (what a loader checks, by name and in file order)."""
        return NamedTuple(typename, [(a.name, np.ndarray) for a in self.arrays
                                     if a.saved or not saved_only])

    def max_rank(self, d: int, itemsize: int, budget: int, extra=lambda ell: 0) -> int:
        """Largest ell <= d with nbytes(d, ell) + extra(ell) <= budget (0 if not even ell = 1);
        sizes grow with ell."""
        lo, hi = 0, d
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.nbytes(d, mid, itemsize) + extra(mid) <= budget:
                lo = mid
            else:
                hi = mid - 1
        return lo


#: name -> Solver subclass, filled as the solver modules are imported (edge_omd/solvers/__init__.py)
REGISTRY: dict = {}


def by_code(code: int):
    """The Solver class of a header's solver code, or None."""
    for cls in REGISTRY.values():
        if cls.spec.code == code:
            return cls
    return None


class Solver(abc.ABC):
    """The contract every solver fulfils (see the module docstring); one subclass per module."""
    spec: ClassVar[SolverSpec]
    State: ClassVar[type]      # NamedTuple of every array of the spec
    Payload: ClassVar[type]    # NamedTuple of the saved ones, in file order (what `invalid` gets)
    name: ClassVar[str]
    code: ClassVar[int]
    supports_forget: ClassVar[bool]

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        spec = cls.__dict__.get("spec")
        if spec is None:  # an intermediate base (ExplicitTheta)
            return
        for other in REGISTRY.values():
            if other.spec.code == spec.code and other.spec.name != spec.name:
                raise ValueError(f"solver code {spec.code} of {spec.name!r} is {other.spec.name!r}'s")
        cls.name, cls.code, cls.supports_forget = spec.name, spec.code, spec.supports_forget
        cls.State = spec.state_type(f"{cls.__name__.replace('Solver', '')}State")
        cls.Payload = spec.state_type(f"{cls.__name__.replace('Solver', '')}Payload", True)
        REGISTRY[spec.name] = cls

    #: The smallest lam a NEW float32 model of this solver takes (RewardModel refuses less,
    #: naming the fix): below it the step's guards refuse a unit-norm observation from the
    #: first update (measured at d = 16 and 384, docs/ALGORITHM.md "Numerics in float32").
    MIN_LAM_FLOAT32: ClassVar[float] = 1e-9

    def __init__(self, config, counter):
        """config: the model's frozen ModelConfig (edge_omd/config.py); counter: the front's (1,)
        int64 array of updates absorbed (t)."""
        self.config = config
        self.counter = counter
        dtype = np.dtype(config.dtype)
        self.state = self.State(**self.spec.allocate(config.dim, config.rank, dtype))
        self.fmax, self.eps = float(np.finfo(dtype).max), float(np.finfo(dtype).eps)
        self.reset()

    @property
    def lam(self) -> float:
        return self.config.lam

    # ---- the verbs (see the module docstring)
    @abc.abstractmethod
    def step(self, z, y, w):
        ...

    @abc.abstractmethod
    def absorb(self, z, w):
        ...

    @abc.abstractmethod
    def fantasize(self, z, w):
        ...

    @abc.abstractmethod
    def theta(self):
        ...

    @abc.abstractmethod
    def set_theta(self, theta64):
        ...

    @abc.abstractmethod
    def keep(self, ws):
        ...

    @abc.abstractmethod
    def restore(self, ws):
        ...

    @abc.abstractmethod
    def project(self, ws, z, a, mode=None, tol=None, kmax=None, max_steps=None):
        ...

    @abc.abstractmethod
    def widths(self, V, out):
        ...

    @abc.abstractmethod
    def matvec(self, vec):
        ...

    @staticmethod
    @abc.abstractmethod
    def projection_shape(d, rank=None):
        ...

    # ---- choice among k (see the module docstring)
    @abc.abstractmethod
    def choice_keep(self, cw):
        ...

    @abc.abstractmethod
    def choice_restore(self, cw):
        ...

    @abc.abstractmethod
    def choice_step(self, cw, w, eta):
        ...

    @abc.abstractmethod
    def choice_absorb(self, cw, w):
        ...

    @abc.abstractmethod
    def choice_hv(self, vec, out, tmp):
        ...

    @abc.abstractmethod
    def choice_lower(self):
        ...

    @abc.abstractmethod
    def choice_theta0(self, ws):
        ...

    def reset(self):
        """theta = 0 and every other array zero; subclasses then set cal_H = lam I."""
        for a in self.state:
            a.fill(0)

    def start(self, theta0, c, V, sign=1.0):
        """Reset, then start at theta = theta0, cal_H_0 = (lam + c) I + sign V^T V (a population
        prior, edge_omd/prior.py: c = strength c_0, V = sqrt(strength) V_0). theta0: (d,)
        float64, c >= 0, V: (r, d) float64, sign = +1 or -1. With sign = -1 the caller
        guarantees every eigenvalue of V^T V is <= c, so cal_H_0 >= lam I (the loaders' floor);
        it is checked here (lambda_max(V V^T) by prior_start.low_rank_extremes, to the rounding of
        its own computation). Each solver sets its arrays from these in float64, every sum in a
        fixed order with no BLAS or LAPACK (linalg's start kernels), and rounds them to the
        state's dtype once (`_start`), so a started state is an ordinary one (saved, loaded and
        checked as any other) with the same bits on every CPU. Returns None, or why this state
        cannot hold the start (nothing changed): a sign other than +-1, a negative part beyond
        c, theta0 beyond the dtype's THETA_LIMIT, or a curvature whose trace exceeds what the
        dtype holds next to the damping (the solvers' per-update precision guard,
        trace eps <= damping / 10)."""
        if sign not in (1.0, -1.0):
            return f"sign must be +1 or -1, got {sign!r}"
        theta0 = prior_start.kernel_f8(theta0)
        V = prior_start.kernel_f8(np.reshape(V, (-1, theta0.shape[0])))
        prior_start.ensure_start_compiled()
        problem = self._start_problem(theta0, float(c), V, float(sign))
        if problem:
            return problem
        self.reset()
        self._start(theta0, float(c), V, float(sign))
        return None

    def _start_problem(self, theta0, c, V, sign):
        """Why this state cannot hold the start (see `start`), or None."""
        dtype = np.dtype(self.config.dtype)
        eps, fmax = float(np.finfo(dtype).eps), float(np.finfo(dtype).max)
        top = linalg.max_abs_or_inf(theta0) if theta0.size else 0.0
        if not top <= fmax * linalg.THETA_LIMIT:
            return f"theta0 has entries of {top:.3g}, beyond what {dtype.name} holds"
        if sign < 0.0:
            gmax = prior_start.low_rank_extremes(V)[0]
            if not gmax <= c + 8.0 * max(V.shape[0], 1) * 2.0 ** -52 * gmax:
                return (f"the negative part's largest eigenvalue ({gmax:.6g}) exceeds c = {c:.6g}: "
                        "cal_H_0 = (lam + c) I - V^T V would fall below lam I")
        trace = c * theta0.shape[0] + sign * prior_start.sum_sq64(V)
        damping = self.start_damping()
        if not trace * eps <= 0.1 * damping:
            return (f"its curvature (trace {trace:.3g}) is beyond what {dtype.name} holds next "
                    f"to the damping {damping:g} (trace * eps <= damping / 10); lower the "
                    "prior's strength, raise lam, or use float64")
        return None

    def start_damping(self) -> float:
        """The damping of the first update (the lam I part of cal_H_0)."""
        return self.lam

    @abc.abstractmethod
    def _start(self, theta0, c, V, sign):
        """Set the arrays of a freshly reset state to the start (see `start`)."""

    def flush(self):
        """Apply deferred work (none by default)."""

    def payload(self):
        """The saved arrays, in file order, current."""
        self.flush()
        return [getattr(self.state, a.name) for a in self.spec.arrays if a.saved]

    def loaded(self):
        """The payload arrays were just filled from a file (nothing to derive by default)."""

    def rederive(self):
        """After `loaded`, for a payload cast from another dtype (RewardModel.astype): derive
        anew, in this dtype, what the saved arrays imply (nothing by default)."""

    def invalid(self, arrays):
        """Why a loaded payload cannot be this solver's state with this config (None if it
        can). `arrays`: a `Payload` (by name or in file order; shapes and dtypes are the spec's
        and every float is finite, the reader checked)."""
        return None


class ExplicitTheta(Solver):
    """For solvers that store theta as such (all but exact, which stores U theta)."""

    def theta(self):
        return self.state.theta

    def set_theta(self, theta64):
        self.state.theta[:] = theta64

    # ---- step 3 (edge_omd/projection.py)
    def keep(self, ws):
        """Remember theta_t before step 2, for a rollback if the projection fails."""
        ws.prev[0, :] = self.state.theta

    def restore(self, ws):
        self.state.theta[:] = ws.prev[0]

    # ---- choice among k (edge_omd/solvers/mnl.py): the same rollback for a choice
    def choice_keep(self, cw):
        cw.keep[0] = self.state.theta

    def choice_restore(self, cw):
        self.state.theta[:] = cw.keep[0]


# ---------------------------------------------------------------- generated artefacts
def solvers_by_code() -> list:
    return sorted(REGISTRY.values(), key=lambda c: c.spec.code)


def render_table() -> str:
    """The payload table of docs/STATE_FORMAT.md (Markdown), from the specs."""
    rows = ["| code | solver | payload arrays, in file order (C order; F = the state's dtype) |",
            "|-----:|--------|------------------------------------------------------------------|"]
    for cls in solvers_by_code():
        s = cls.spec
        parts = [f"`{a.name}` ({a.shape}) {a.type_name()}" for a in s.arrays if a.saved]
        rows.append(f"| {s.code} | {s.name} | {', '.join(parts)} |")
    notes = []
    for cls in solvers_by_code():
        s = cls.spec
        consts = ", ".join(f"{k} = {v}" for k, v in s.consts)
        saved = [f"`{a.name}`: {a.doc}" for a in s.arrays if a.saved and a.doc]
        work = [f"`{a.name}` ({a.shape}) {a.type_name()}" for a in s.arrays if not a.saved]
        line = f"- **{s.name}**: {s.doc}" if s.doc else f"- **{s.name}**:"
        line += f" {'; '.join(saved)}." if saved else ""
        line += f" Work memory, not saved: {', '.join(work)}." if work else ""
        line += f" ({consts})" if consts else ""
        notes.append(line)
    return "\n".join(rows + [""] + notes) + "\n"


#: (d, rank, itemsize) triples of the layout golden: small and large, both dtypes, odd ranks
LAYOUT_CASES = [(1, 1, 4), (6, 2, 4), (6, 2, 8), (13, 5, 8), (384, 48, 4), (4096, 151, 8)]


def layout_golden() -> dict:
    """The per-solver payload layout for a few sizes, as the Java reader's check reads it:
    {"solvers": [{"code", "name", "ranked", "cases": [{"d", "rank", "itemsize", "arrays":
    [[count, itemsize, is_int], ...], "bytes"}]}]}."""
    out = []
    for cls in solvers_by_code():
        s = cls.spec
        cases = []
        for d, rank, itemsize in LAYOUT_CASES:
            r = rank if s.ranked else 0
            arrays = [[int(np.prod(shape, dtype=np.int64)), dt.itemsize, dt.kind == "i"]
                      for shape, dt in s.payload(d, r, itemsize)]
            cases.append(dict(d=d, rank=r, itemsize=itemsize, arrays=arrays,
                              bytes=s.payload_bytes(d, r, itemsize)))
        out.append(dict(code=s.code, name=s.name, ranked=s.ranked, cases=cases))
    return dict(solvers=out)
