"""Kernels load lazily, each declared signature once, and only from their declared lists
(Optax's 'second update does not recompile' check, made able to fail): a fresh process with an
empty kernel cache counts Numba's own compile events. Importing and building a model compile
and load nothing; a model's first pair loads (compiles, on an empty cache) only the signatures
that its calls run and their callees, far fewer than its solver's declared lists; a whole
stream of every verb (read-only inputs included) compiles each (kernel, signature) at most
once; choices load their kernels at the first choice and the next choices nothing; a second
process on the same cache compiles nothing at all (every kernel loads from the cache). Two
threads calling a kernel that is not loaded yet both get its result, and it compiles once."""
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
        d = ev.data["dispatcher"]
        if d.py_func.__module__.startswith("edge_omd"):
            compiles.append(f"{d.py_func.__module__}.{d.py_func.__name__}{ev.data['args']}")
    def on_end(self, ev):
        pass

event.register("numba:compile", Count())
import edge_omd
from edge_omd import _numba

def loaded():
    return sum(len(k.dispatcher.overloads) for k in _numba.KERNELS)

out = {"import": len(compiles), "overloads": loaded()}
sys.path.insert(0, sys.argv[1])
from tests.runtime.streams import feed, mixed_stream
for solver, dtype in (("exact", "float32"), ("cg", "float64")):
    before, held = len(compiles), loaded()
    m = edge_omd.RewardModel(7, solver=solver, dtype=dtype, radius=0.5)
    built = len(compiles) - before, loaded() - held
    m.learn_pair(np.eye(7)[0], np.eye(7)[1])
    first, first_loaded = len(compiles) - before, loaded() - held
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
    out[f"{solver}/{dtype}"] = {"built": built, "first": first, "first_loaded": first_loaded,
                                "declared": declared, "stream": stream, "choice": choice,
                                "choice_declared": choice_declared,
                                "choice_again": len(compiles) - mark}
out["twice"] = sorted({c for c in compiles if compiles.count(c) > 1})
print("RESULT", json.dumps(out))
"""

#: Two threads call kernels nobody has called yet, at the same moment (a barrier), each with
#: both dtypes; _fantasy_curvature calls linalg.dsigmoid, so on an empty cache its compile
#: loads a callee while the other thread waits.
THREADS = r"""
import json, threading
import numpy as np
from numba.core import event

compiles = []

class Count(event.Listener):
    def on_start(self, ev):
        d = ev.data["dispatcher"]
        if d.py_func.__module__.startswith("edge_omd"):
            compiles.append(f"{d.py_func.__name__}{ev.data['args']}")
    def on_end(self, ev):
        pass

event.register("numba:compile", Count())
from edge_omd import _numba, linalg
from edge_omd.solvers import exact

rng = np.random.default_rng(0)
cases = []
for dt in (np.float32, np.float64):
    z, u = rng.normal(size=37).astype(dt), rng.normal(size=37).astype(dt)
    cases.append((exact._fantasy_curvature, (rng.normal(size=37), z, u, 0.5)))
    cases.append((linalg.max_abs_or_inf, (z,)))
barrier = threading.Barrier(2)
results, errors = [[], []], []

def run(i):
    try:
        barrier.wait(timeout=60)
        for fn, args in cases:
            results[i].append(float(fn(*args)))
    except Exception as e:  # reported, not raised in the thread
        errors.append(repr(e))

threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=600)
expected = [float(fn(*args)) for fn, args in cases]  # after the threads, on one thread
maxabs = [float(np.abs(args[0]).max()) for fn, args in cases if fn is linalg.max_abs_or_inf]
print("RESULT", json.dumps({
    "errors": errors, "alive": sum(t.is_alive() for t in threads), "results": results,
    "expected": expected, "maxabs": maxabs, "compiles": compiles,
    "can_compile": [k.name for k in _numba.KERNELS if k.dispatcher._can_compile]}))
"""


def _run(cache, code=CODE):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-c", code, repo], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_lazy_load_once_from_the_declared_lists(tmp_path):
    cold = _run(tmp_path / "kernels")
    assert cold["import"] == 0 and cold["overloads"] == 0  # import compiles nothing
    assert cold["twice"] == []  # no (kernel, signature) compiled twice in the process
    for key in ("exact/float32", "cg/float64"):
        c = cold[key]
        assert c["built"] == [0, 0], (key, c)  # a model alone loads nothing
        # the first pair compiled (empty cache) only what it runs: far from the solver's lists
        assert 0 < c["first"] <= c["first_loaded"] < c["declared"] / 2, (key, c)
        # the other verbs load theirs as they first run (each signature once: "twice" above)
        assert c["first"] + c["stream"] <= c["declared"], (key, c)
        # the first choice compiles the choice kernels it runs, the next choices nothing
        assert 0 < c["choice"] <= c["choice_declared"], (key, c)
        assert c["choice_again"] == 0, (key, c)
    warm = _run(tmp_path / "kernels")
    for key in ("exact/float32", "cg/float64"):
        w = warm[key]
        assert w["first"] == 0 and w["stream"] == 0 and w["choice"] == 0, (key, w)
        # from the cache a kernel loads without its callees (their code is linked into it)
        assert 0 < w["first_loaded"] < cold[key]["first_loaded"], (key, w, cold[key])


def test_two_threads_first_call_of_a_kernel(tmp_path):
    for run in ("cold", "warm"):  # an empty cache (compiles), then the same cache (loads)
        r = _run(tmp_path / "kernels", THREADS)
        assert r["errors"] == [] and r["alive"] == 0, (run, r)
        assert r["results"][0] == r["results"][1] == r["expected"], (run, r)
        assert r["expected"][1::2] == r["maxabs"], (run, r)
        assert len(r["compiles"]) == len(set(r["compiles"])), (run, r["compiles"])
        assert (r["compiles"] != []) == (run == "cold"), (run, r["compiles"])
        assert r["can_compile"] == [], (run, r)


def test_every_solver_and_dtype_runs_within_its_lists():
    """In this process (shared cache): after a stream of every verb on every solver and dtype,
    each kernel holds only declared signatures (an undeclared one could not even be called:
    compiles are disabled outside Kernel._load, so it would raise TypeError)."""
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


def test_a_call_outside_the_lists_raises_and_loads_nothing():
    """A kernel called with types none of its declared signatures takes raises TypeError,
    whether or not it has loaded anything yet, and compiles nothing."""
    from edge_omd import linalg
    from edge_omd.solvers import exact
    bad = [(linalg.max_abs_or_inf, (np.ones(3, np.int64),)),
           (exact._absorb, (np.zeros(8), *[np.zeros(8, np.float16)] * 3, np.zeros(8), 1.0))]
    for fn, args in bad:
        held = set(fn.overloads)
        with pytest.raises(TypeError, match="No matching definition"):
            fn(*args)
        assert set(fn.overloads) == held and not fn._can_compile, fn
