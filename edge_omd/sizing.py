"""A model's state size and the solver a budget picks.

The state's bytes are the solver's arrays (its spec), the front's own arrays (FRONT) and the
projection's workspace when a radius is set (`_size`). A new or loaded config is resolved here:
solver "auto" becomes exact (cg with forget < 1) when it fits the budget, else the sketch of the
largest rank that fits, else the diagonal (`_choose_solver`); BudgetError when nothing fits.
"""
import numpy as np

from edge_omd import projection
from edge_omd.errors import BudgetError, ConfigError
from edge_omd.solvers import SOLVERS
from edge_omd.solvers.base import F, I8, ArraySpec

#: The front's own arrays, part of every state's bytes (not saved: t is a header field)
FRONT = (ArraySpec("z", "d", F, False, "the current observation, converted once"),
         ArraySpec("t", "1", I8, False, "updates absorbed"))


def _front_bytes(d, itemsize):
    return sum(int(np.prod(a.dims(d, 0, {}))) * a.np_dtype(itemsize).itemsize for a in FRONT)


def _projection_bytes(cls, d, rank, radius):
    return 0 if radius is None else projection.workspace_bytes(d, **cls.projection_shape(d, rank))


def _size(cls, d, itemsize, rank, radius):
    """Bytes of the whole state: the solver's arrays (its spec), the front's, the projection's."""
    return (cls.spec.nbytes(d, rank, itemsize) + _front_bytes(d, itemsize)
            + _projection_bytes(cls, d, rank, radius))


def _resolve(config):
    """The config with solver "auto" and the sketch rank resolved for the budget; ConfigError
    for an unknown solver or forget < 1 where it is not supported, BudgetError when nothing
    fits."""
    if config.solver != "auto" and config.solver not in SOLVERS:
        raise ConfigError(f"solver must be 'auto' or one of {sorted(SOLVERS)}, got {config.solver!r}")
    name, rank = _choose_solver(config)
    if config.forget != 1.0 and not SOLVERS[name].supports_forget:
        raise ConfigError(f"forget < 1 is not available with solver {name!r} (its Cholesky "
                          "factor cannot absorb a full-rank discount in O(d^2)); use 'cg', "
                          "'sketch' or 'diagonal'")
    return config.replace(solver=name, rank=rank)


def _new_config(config):
    """`_resolve` for a NEW model (not a loaded one): also refuses a float32 lam below the
    solver's MIN_LAM_FLOAT32, where a unit-norm observation is refused from the first update."""
    config = _resolve(config)
    low = SOLVERS[config.solver].MIN_LAM_FLOAT32
    if config.dtype == "float32" and config.lam < low:
        raise ConfigError(f"lam={config.lam:g} is too small for a float32 {config.solver} state "
                          f"(its first update would be refused): use lam >= {low:g}, or "
                          "dtype='float64'")
    return config


def _choose_solver(config):
    """Pick (solver name, sketch rank) for the budget; BudgetError when nothing fits."""
    d, itemsize, budget, radius = config.dim, config.itemsize, config.budget_bytes, config.radius
    solver, sketch_rank = config.solver, config.rank
    sketch = SOLVERS["sketch"]

    def size(name, rank=None):
        return _size(SOLVERS[name], d, itemsize, rank, radius)

    def fits(name, rank=None):
        return budget is None or size(name, rank) <= budget

    def sketch_rank_for_budget():
        if sketch_rank is not None:
            return sketch_rank if fits("sketch", sketch_rank) else 0
        if budget is None:
            return min(d, 64)
        return sketch.spec.max_rank(d, itemsize, budget - _front_bytes(d, itemsize),
                                    extra=lambda ell: _projection_bytes(sketch, d, ell, radius))

    if solver == "auto":
        full = "exact" if config.forget == 1.0 else "cg"
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
