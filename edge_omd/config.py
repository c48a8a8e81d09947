"""The frozen configuration of one RewardModel: its size, representation and hyperparameters.

One place for the list (nanoGPT's GPTConfig): the RewardModel constructor builds it, the state
header is written from it and read back into it (`to_header` / `from_header`), `copy` and
`hyperparameters` read it, and the solvers read their settings from it instead of copying them.

    >>> from edge_omd.config import ModelConfig
    >>> ModelConfig(dim=8, solver="cg", cg_steps=5).cg_steps
    5
    >>> ModelConfig(dim=8, solver="cg", eta=-1.0)
    Traceback (most recent call last):
    ...
    edge_omd.errors.ConfigError: eta must be in (0, 1e+06], got -1.0

Every field is validated when the config is made (ConfigError, nothing else). Which solvers
exist, what fits a budget and which solver takes `forget < 1` are the solvers' facts
(edge_omd/solvers/), checked by the RewardModel front when it resolves solver="auto".
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from edge_omd import _checks
from edge_omd.errors import ConfigError

DTYPES = ("float32", "float64")
ITEMSIZE = {"float32": 4, "float64": 8}     # the header's dtype field is the itemsize
DTYPE_OF_ITEMSIZE = {v: k for k, v in ITEMSIZE.items()}
MAX_DIM = 1 << 16           # the u32 dim of the header is refused above this
MAX_COUNT = 1 << 62         # t, lam_warmup and budget_bytes are u64 fields kept far from 2^64
# Hyperparameter ranges: far outside anything useful, but they keep every update of a float32
# state finite (one step moves theta by at most eta w |z| / lam per unit of curvature).
MAX_ETA, MIN_LAM, MAX_LAM = 1e6, 1e-9, 1e9
MAX_CG_STEPS = 1 << 20
# The smallest radius whose ball the dtype can hold: theta on the sphere has an entry of at least
# radius / sqrt(d), which float32 stores as a normal number (> 1.2e-38) only above ~1e-30 for any
# d; float64 solves the projection scaled to the unit ball, and radius^2 stays normal above 1e-150.
MIN_RADIUS = {"float32": 1e-30, "float64": 1e-150}

#: The fields a user sets (RewardModel keyword arguments) and `hyperparameters` returns.
HYPERPARAMETERS = ("eta", "lam", "radius", "forget", "dtype", "cg_steps", "lam_warmup", "cg_tol",
                   "budget_bytes")


@dataclass(frozen=True)
class ModelConfig:
    """Settings of one model; a state file's header holds every field."""
    dim: int                             # feature dimension d
    solver: str = "auto"                 # "auto" until the front resolves it, then a solver name
    rank: Optional[int] = None           # sketch rank ell (asked for, or chosen from the budget)
    dtype: str = "float32"               # of the large arrays; scalars are always float64
    eta: float = 1.0                     # OMD step size (tuned on L2-normalised features)
    lam: float = 1.0                     # prior / damping: cal_H_1 = lam I
    radius: Optional[float] = None       # B of ||theta||_2 <= B (step 3); None skips it
    forget: float = 1.0                  # in (0, 1]; < 1 discounts old curvature
    cg_steps: int = 3                    # K of the cg solver
    lam_warmup: int = 0                  # T of lambda_t = lam min(1, t / T); 0: constant
    cg_tol: float = 1e-6                 # cg's relative residual test
    budget_bytes: Optional[int] = None   # bound on the whole state; None: unlimited

    def __post_init__(self):
        err = ConfigError
        put = object.__setattr__
        put(self, "dim", _checks.int_in("dim", self.dim, 1, MAX_DIM, err))
        if not isinstance(self.solver, str):
            raise ConfigError(f"solver must be a name, got {self.solver!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        put(self, "eta", _checks.real_in("eta", self.eta, 0.0, MAX_ETA, err, open_lo=True))
        put(self, "lam", _checks.real_in("lam", self.lam, MIN_LAM, MAX_LAM, err))
        if self.radius is not None:
            r = _checks.real_in("radius", self.radius, 0.0, float("inf"), err, open_lo=True)
            if r < MIN_RADIUS[self.dtype]:
                raise ConfigError(f"radius={r:g} is too small for {self.dtype} (the projected "
                                  f"theta would underflow); use radius >= "
                                  f"{MIN_RADIUS[self.dtype]:g}, or float64")
            put(self, "radius", r)
        put(self, "forget", _checks.real_in("forget", self.forget, 0.0, 1.0, err, open_lo=True))
        put(self, "cg_steps", _checks.int_in("cg_steps", self.cg_steps, 1, MAX_CG_STEPS, err))
        put(self, "lam_warmup", _checks.int_in("lam_warmup", self.lam_warmup, 0, MAX_COUNT, err))
        put(self, "cg_tol", _checks.real_in("cg_tol", self.cg_tol, 0.0, 1.0, err, open_hi=True))
        if self.budget_bytes is not None:
            put(self, "budget_bytes",
                _checks.int_in("budget_bytes", self.budget_bytes, 1, MAX_COUNT, err))
        if self.rank is not None:
            put(self, "rank", _checks.int_in("sketch_rank", self.rank, 1, self.dim, err))

    # ---------------------------------------------------------------- views
    @property
    def itemsize(self) -> int:
        return ITEMSIZE[self.dtype]

    def hyperparameters(self) -> dict:
        """The user-set hyperparameters, as RewardModel keyword arguments."""
        return {k: getattr(self, k) for k in HYPERPARAMETERS}

    def replace(self, **changes) -> "ModelConfig":
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------- the state header
    def to_header(self) -> dict:
        """This config's fields of the state header (edge_omd/state_format.py), as stored:
        the solver by name (state_format maps it to its code), None as 0 with a flag."""
        return dict(solver=self.solver, itemsize=self.itemsize, dim=self.dim,
                    rank=self.rank or 0, cg_steps=self.cg_steps, lam_warmup=self.lam_warmup,
                    budget=self.budget_bytes or 0, eta=self.eta, lam=self.lam,
                    radius=0.0 if self.radius is None else self.radius,
                    radius_set=self.radius is not None, forget=self.forget, cg_tol=self.cg_tol)

    @classmethod
    def from_header(cls, h: dict) -> "ModelConfig":
        """The config of a decoded header (`to_header`'s keys); ConfigError if a value is out
        of range (the reader turns it into a StateFormatError)."""
        return cls(dim=h["dim"], solver=h["solver"], rank=h["rank"] or None,
                   dtype=DTYPE_OF_ITEMSIZE[h["itemsize"]], eta=h["eta"], lam=h["lam"],
                   radius=h["radius"] if h["radius_set"] else None, forget=h["forget"],
                   cg_steps=h["cg_steps"], lam_warmup=h["lam_warmup"], cg_tol=h["cg_tol"],
                   budget_bytes=h["budget"] or None)
