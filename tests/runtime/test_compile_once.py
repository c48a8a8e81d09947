"""Kernels compile lazily, once, and only from their declared lists (Optax's 'second update does
not recompile' check, made able to fail): a fresh process with an empty kernel cache counts
Numba's own compile events. Importing compiles nothing; the first model of a (solver, dtype)
compiles exactly the declared signatures, for that dtype, of the kernels its code needs
(`_numba.plan`: the solver's module, the projection when a radius is set, and the linalg kernels
they call), without its choice kernels; the first choice compiles exactly those (group
"choice": solvers/mnl.py and the solver's own) and the next choices nothing;
a whole stream of every verb (read-only inputs included) then compiles nothing more; a second
process on the same cache compiles nothing at all (every kernel loads from the cache)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edge_omd import RewardModel
from edge_omd._numba import KERNELS
from tests import solvers
from tests.runtime.streams import feed, mixed_stream

pytestmark = pytest.mark.jit

CODE = r"""
import json, sys
import numpy as np
from numba.core import event

compiles = []

class Count(event.Listener):
    def on_start(self, ev):  # our kernels only (numba's own @overload helpers compile too)
        fn = ev.data["dispatcher"].py_func
        if fn.__module__.startswith("edge_omd"):
            compiles.append(fn.__name__)
    def on_end(self, ev):
        pass

event.register("numba:compile", Count())
import edge_omd
from edge_omd import _numba
out = {"import": len(compiles),
       "overloads": sum(len(k.dispatcher.overloads) for k in _numba.KERNELS)}
sys.path.insert(0, sys.argv[1])
from tests.runtime.streams import feed, mixed_stream
for solver, dtype in (("exact", "float32"), ("cg", "float64")):
    before = len(compiles)
    m = edge_omd.RewardModel(7, solver=solver, dtype=dtype, radius=0.5)
    first = len(compiles) - before
    mods = ("edge_omd.reward_model", "edge_omd.projection", f"edge_omd.solvers.{solver}")
    declared = sum(len(k.declared(dtype)) for k in _numba.plan(*mods))
    for kind, args, w in mixed_stream(7, 40, seed=0):
        feed(m, kind, args, w)
    ro = np.ones(7) / 7
    ro.setflags(write=False)
    m.learn_pair(ro, m.theta)
    m.learn_thumb(np.frombuffer(np.ones(7, np.float32).tobytes(), np.float32), True)
    m.width(np.eye(7), ref=ro); m.width(ro); m.reward(ro); m.fantasize(ro)
    edge_omd.RewardModel.from_bytes(m.to_bytes()).learn_one(ro, 1.0)
    stream = len(compiles) - before - first
    mark = len(compiles)
    m.learn_choice(np.eye(7)[:3], 1)
    choice = len(compiles) - mark
    cmods = ("edge_omd.solvers.mnl", f"edge_omd.solvers.{solver}")
    choice_declared = sum(len(k.declared(dtype)) for k in _numba.plan(*cmods, group="choice"))
    mark = len(compiles)
    m.learn_choice(np.eye(7)[2:6], 0)
    m.learn_choice(np.eye(7)[:2], 1)
    out[f"{solver}/{dtype}"] = {"first": first, "declared": declared, "stream": stream,
                                "choice": choice, "choice_declared": choice_declared,
                                "choice_again": len(compiles) - mark}
print("RESULT", json.dumps(out))
"""


def _run(cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-c", CODE, repo], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_lazy_compile_once_from_the_declared_lists(tmp_path):
    cold = _run(tmp_path / "kernels")
    assert cold["import"] == 0 and cold["overloads"] == 0  # import compiles nothing
    for key in ("exact/float32", "cg/float64"):
        c = cold[key]
        # the first model compiled exactly its lists (cold cache: every signature is a compile;
        # linalg's float32 list was done by the first model, so the second compiles less)
        assert 0 < c["first"] <= c["declared"], (key, c)
        assert c["stream"] == 0, (key, c)
        # the choice kernels were not compiled with the model: the first choice compiles them
        # (at most its declared lists: callees shared with the pair path are already done)
        assert 0 < c["choice"] <= c["choice_declared"], (key, c)
        assert c["choice_again"] == 0, (key, c)
    assert cold["exact/float32"]["first"] == cold["exact/float32"]["declared"]
    warm = _run(tmp_path / "kernels")
    for key in ("exact/float32", "cg/float64"):
        w = warm[key]
        assert w["first"] == 0 and w["stream"] == 0 and w["choice"] == 0, (key, w)


def test_every_solver_and_dtype_runs_within_its_lists():
    """In this process (shared cache): after a stream of every verb on every solver and dtype,
    each kernel holds only declared signatures (an undeclared one could not even be called:
    compiles are disabled outside ensure_compiled, so it would raise TypeError)."""
    for solver in solvers.SOLVERS:
        for dtype in solvers.DTYPES:
            m = RewardModel(7, **solvers.options(solver, 7, rank=2, dtype=dtype),
                            radius=0.5, forget=0.99 if solvers.supports_forget(solver) else 1.0)
            for kind, args, w in mixed_stream(7, 60, seed=0):
                feed(m, kind, args, w)
            ro = np.ones(7) / 7
            ro.setflags(write=False)
            m.width(np.eye(7), ref=ro)
            m.fantasize(ro)
    for k in KERNELS:
        declared = {tuple(s.args) for s in k.declared()}
        assert set(k.dispatcher.overloads) <= declared, k.name
        assert not k.dispatcher._can_compile, k.name
