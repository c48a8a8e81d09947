"""Local-norm representations, one per module: exact, cg, sketch, diagonal.

Beside them: base (the contract and the spec), exact_kernels (the exact solver's kernels), mnl
(a choice among k, shared), prior_start (cal_H_0 of a population prior) and load_checks (what a
loaded state must satisfy).

The contract every solver fulfils and the per-solver spec (its arrays, shapes, dtypes, in file
order) are in edge_omd/solvers/base.py. A solver registers itself (`REGISTRY`, name -> class)
when its module is imported; the list below is the only place that names the modules.
"""
from edge_omd.solvers.base import (REGISTRY, ArraySpec, ExplicitTheta, Solver, SolverSpec,  # noqa: F401
                                   by_code)

MODULES = ("exact", "cg", "sketch", "diagonal")  # a fifth solver: its module name here

for _m in MODULES:
    __import__(f"{__name__}.{_m}")
del _m

#: name -> Solver class
SOLVERS = REGISTRY
