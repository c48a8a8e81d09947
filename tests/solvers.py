"""The one list of solvers and dtypes the tests run over, read from the runtime's registry.

Every solver-parametrised test imports SOLVERS / DTYPES / options from here, so a solver added
to the registry is tested everywhere at once. The only thing a new solver may have to add here
is its entry in NEEDS: the constructor options it cannot be built without at a given d, beyond
the rank a ranked spec (the sketch) gets here already; `test_solver_checks.
test_every_registered_solver_builds` fails until a solver that needs one has it.

    >>> model = make("sketch", 10, dtype="float64", radius=0.5)   # sketch_rank chosen for d=10
"""
from edge_omd import config
from edge_omd.reward_model import RewardModel
from edge_omd.solvers import SOLVERS as REGISTRY  # name -> Solver class (edge_omd/solvers/base.py)

#: solver names in registry order (exact, cg, sketch, diagonal today) and the state dtypes
SOLVERS = tuple(REGISTRY)
DTYPES = tuple(config.DTYPES)

#: solver -> (d, rank) -> the options it needs besides solver=, for solvers whose spec alone
#: does not say (a ranked spec gets sketch_rank below); `rank` is the test's wish, None: a small
#: default that still makes the buffer shrink on short streams
NEEDS = {}


def _needs(solver, d, rank):
    if solver in NEEDS:
        return NEEDS[solver](d, rank)
    if REGISTRY[solver].spec.ranked:
        return {"sketch_rank": min(d, rank if rank is not None else max(2, d // 3))}
    return {}


def supports_forget(solver):
    """Whether the solver takes forget < 1 (exact's Cholesky factor cannot)."""
    return bool(REGISTRY[solver].supports_forget)


def options(solver, d, rank=None, **kw):
    """RewardModel keyword arguments for `solver` at dimension d (plus kw); rank: the sketch
    rank wanted (ignored by solvers without a rank)."""
    return dict(solver=solver, **_needs(solver, d, rank), **kw)


def make(solver, d, rank=None, **kw):
    """RewardModel(d, **options(solver, d, rank, **kw))."""
    return RewardModel(d, **options(solver, d, rank, **kw))


def grid(*, dtypes=DTYPES):
    """(solver, dtype) pairs, for pytest.mark.parametrize("solver,dtype", grid())."""
    return [(s, dt) for s in SOLVERS for dt in dtypes]


#: settings the contract checks run under: plain, with the projection (step 3) active on most
#: updates, and with every other hyperparameter moved off its default (forget where allowed)
SETTINGS = {
    "plain": lambda s: {},
    "radius": lambda s: dict(radius=0.5),
    "tuned": lambda s: dict(eta=2.0, lam=0.5, cg_steps=2, lam_warmup=20, radius=0.8,
                            forget=0.97 if supports_forget(s) else 1.0),
}


def factory(solver, dtype, setting, d, **over):
    """A zero-argument builder of RewardModel(d) for one (solver, dtype, SETTINGS[setting])."""
    kw = options(solver, d, dtype=dtype, **{**SETTINGS[setting](solver), **over})
    return lambda: RewardModel(d, **kw)
