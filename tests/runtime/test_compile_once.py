"""Every kernel has exactly its declared float32/float64 signatures after a whole stream:
no silent recompiles (Optax's 'second update does not recompile' check)."""
import numpy as np
import pytest

from edge_omd import RewardModel, linalg
from edge_omd._numba import JIT_DISABLED
from edge_omd.solvers import cg, diagonal, exact, sketch
from tests.runtime.streams import feed, mixed_stream

pytestmark = pytest.mark.skipif(JIT_DISABLED, reason="NUMBA_DISABLE_JIT=1: nothing is compiled")


def _kernels():
    for mod in (linalg, exact, cg, sketch, diagonal):
        for name in dir(mod):
            obj = getattr(mod, name)
            if hasattr(obj, "signatures") and hasattr(obj, "py_func"):
                yield f"{mod.__name__}.{name}", obj


def test_stream_compiles_nothing_new():
    before = {name: len(k.signatures) for name, k in _kernels()}
    assert before and all(n >= 1 for n in before.values())
    for solver in ("exact", "cg", "sketch", "diagonal"):
        for dtype in ("float32", "float64"):
            m = RewardModel(7, solver=solver, dtype=dtype, sketch_rank=2 if solver == "sketch" else None,
                            radius=0.5, forget=1.0 if solver == "exact" else 0.99)
            for kind, args, w in mixed_stream(7, 60, seed=0):
                feed(m, kind, args, w)
            m.width(np.eye(7), ref=np.ones(7) / 7)
            m.fantasize(np.ones(7) / 7)
    after = {name: len(k.signatures) for name, k in _kernels()}
    assert after == before
    assert set(after.values()) <= {1, 2}
