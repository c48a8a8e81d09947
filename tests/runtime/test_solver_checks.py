"""Every check of tests/runtime/check_solver.py over every solver x dtype x setting of the
registry (tests/solvers.py), and the naive twin at d = 10, 67, 203.

Adding a solver to the runtime's registry adds it here (and to every other solver-parametrised
test) with no edit; the NUMBA_DISABLE_JIT pass runs the naive comparison at d = 10 only (the
larger d are marked jit)."""
import pytest

from edge_omd import RewardModel
from tests import solvers
from tests.runtime import check_solver

D = 7

SETTINGS = solvers.SETTINGS


def _factory(solver, dtype, setting, d=D, **over):
    return solvers.factory(solver, dtype, setting, d, **over)


def _check_params():
    return [pytest.param(check, solver, dtype, setting, id=f"{check.__name__[6:]}-{solver}-{dtype}-{setting}")
            for check in check_solver.CHECKS for solver, dtype in solvers.grid() for setting in SETTINGS]


@pytest.mark.parametrize("check,solver,dtype,setting", _check_params())
def test_check(check, solver, dtype, setting):
    check(_factory(solver, dtype, setting))


# d -> stream length: the large d keep the stream short so that they stay fast (the naive twin
# solves a dense d x d system per step), and run without the projection, whose naive twin needs
# an eigendecomposition per step (step 3 against its twin: d = 10 here, test_projection.py)
NAIVE_D = {10: 200, 67: 60, 203: 20}


def _naive_params():
    out = []
    for d, T in NAIVE_D.items():
        marks = () if d <= 10 else (pytest.mark.jit,)
        for solver, dtype in solvers.grid():
            for setting in SETTINGS if d <= 10 else ("plain", "tuned"):
                out.append(pytest.param(solver, dtype, setting, d, T, marks=marks,
                                        id=f"{solver}-{dtype}-{setting}-d{d}"))
    return out


@pytest.mark.parametrize("solver,dtype,setting,d,T", _naive_params())
def test_matches_naive(solver, dtype, setting, d, T):
    over = {} if d <= 10 else dict(radius=None)
    check_solver.check_matches_naive(_factory(solver, dtype, setting, d, **over), T, seed=d)


def test_every_registered_solver_builds():
    """The one list is the registry, and each solver builds from solvers.options alone at the
    sizes the tests use (a new solver that needs an option must add it to solvers.NEEDS)."""
    from edge_omd import reward_model
    assert solvers.SOLVERS == tuple(reward_model.SOLVERS) and len(solvers.SOLVERS) >= 4
    for solver, dtype in solvers.grid():
        for d in (1, 2, D, *NAIVE_D):
            m = RewardModel(d, **solvers.options(solver, d, dtype=dtype))
            assert (m.solver, m.dtype, m.dim) == (solver, dtype, d)
