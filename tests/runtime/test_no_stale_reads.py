"""An update's result is a function of the state and the call's input only: not of the work
memory's contents, nor of WHERE the arrays lie in memory (what a journal replay, a save/load and
the golden states rely on: a loaded or replayed model has the live model's bytes).

Two ways a compiled kernel can break that, each tested over every solver x dtype x setting:

- read-before-write: a kernel reads a work array (solver work memory, the projection's workspace)
  that this call has not written. Caught by filling them with garbage before every update.
- address-dependent arithmetic: with fastmath `reassoc` LLVM vectorises a loop that both stores
  to an array and accumulates a float sum, behind a runtime alias check (`out - in < 128` bytes:
  the store may feed a later load). Arrays that lie within 128 bytes of each other take the
  scalar loop, others the vector loop, and the two sum in different orders (1 ulp apart). Small
  arrays of different models lie wherever malloc put them, so a loaded model or a replay twin
  diverged from the live model depending on what was allocated before (the sketch float64 with
  a radius: `projection.load` summing ||theta'||^2 while copying theta into the workspace).
  Caught by placing every array of the model (state, work, workspace, z, a choice's scratch) back
  to back in several orders against a spread-out layout.
"""
import numpy as np
import pytest

from edge_omd import RewardModel, projection
from edge_omd.solvers import mnl
from tests import solvers
from tests.runtime.test_choice import choice_stream

D = 7
SETTINGS = solvers.SETTINGS
T = 45
SPREAD = 4096  # bytes between arrays: every vectorised loop takes its vector path


def _factory(solver, dtype, setting, d):
    kw = solvers.options(solver, d, dtype=dtype, **SETTINGS[setting](solver))
    return lambda: RewardModel(d, **kw)


def _feed(m, item):
    kind, args, w = item
    if kind == "choice":
        m.learn_choice(args[0], args[1], weight=w)
    elif kind == "one":
        m.learn_one(*args, weight=w)
    elif kind == "pair":
        m.learn_pair(*args, weight=w)
    else:
        m.learn_thumb(*args, weight=w)


def _place(arrays, order, gap):
    """Copies of `arrays` as views of one buffer, in `order`, `gap` bytes apart (0: back to
    back, 16-byte aligned as malloc's)."""
    offs, off = {}, 0
    for i in order:
        offs[i] = off
        off += -(-arrays[i].nbytes // 16) * 16 + gap
    buf = np.zeros(off + 64, np.uint8)
    base = (-buf.ctypes.data) % 64
    out = list(arrays)
    for i in order:
        a = arrays[i]
        v = buf[base + offs[i]: base + offs[i] + a.nbytes].view(a.dtype).reshape(a.shape)
        v[...] = a
        out[i] = v
    return out


def _order(n, layout):
    if layout == "forward":
        return list(range(n))
    if layout == "reverse":
        return list(range(n))[::-1]
    return list(np.random.default_rng(layout).permutation(n))


def _relayout(m, layout, gap):
    """Move every array the model's kernels touch to the layout."""
    s = m._solver
    fields = [type(s.state), type(m._proj) if m._proj is not None else None]
    arrays = list(s.state) + (list(m._proj) if m._proj is not None else []) + [m._z]
    placed = _place(arrays, _order(len(arrays), layout), gap)
    n = len(s.state)
    s.state = fields[0](*placed[:n])
    if m._proj is not None:
        m._proj = fields[1](*placed[n:-1])
    m._z = placed[-1]
    return m


def _poison(m, value):
    """Fill the solver's work arrays (doc "work: ...") and the projection workspace."""
    s = m._solver
    for a in s.spec.arrays:
        if not a.saved and a.doc.startswith("work"):
            arr = getattr(s.state, a.name)
            if arr.dtype.kind == "f":
                arr.fill(value)
    if m._proj is not None:
        for arr in m._proj:
            arr.fill(value)


def _stream(d):
    return list(choice_stream(d, T, seed=5))


def _cases():
    return [pytest.param(solver, dtype, setting, id=f"{solver}-{dtype}-{setting}")
            for solver, dtype in solvers.grid() for setting in SETTINGS]


@pytest.mark.parametrize("solver,dtype,setting", _cases())
def test_garbage_in_work_memory_changes_nothing(solver, dtype, setting):
    factory = _factory(solver, dtype, setting, D)
    clean, dirty = factory(), factory()
    for i, item in enumerate(_stream(D)):
        _poison(clean, 0.0)
        _poison(dirty, [np.nan, 1e30, -3.25][i % 3])
        _feed(clean, item)
        _feed(dirty, item)
        assert dirty.to_bytes() == clean.to_bytes(), f"work memory was read after {i + 1} updates"


@pytest.fixture
def placed_scratch(monkeypatch):
    """Make a choice's per-call scratch (mnl.make_work) follow the current layout too."""
    current = {"layout": "forward", "gap": SPREAD}
    make = mnl.make_work

    def make_work(n, d, dtype):
        w = make(n, d, dtype)
        arrays = list(w)
        return type(w)(*_place(arrays, _order(len(arrays), current["layout"]), current["gap"]))
    monkeypatch.setattr(mnl, "make_work", make_work)
    return current


@pytest.mark.parametrize("d", [D, 19])
@pytest.mark.parametrize("solver,dtype,setting", _cases())
def test_result_does_not_depend_on_where_arrays_lie(solver, dtype, setting, d, placed_scratch):
    factory = _factory(solver, dtype, setting, d)
    layouts = [("forward", SPREAD), ("forward", 0), ("reverse", 0), (1, 0), (2, 0), (3, 0)]
    models = [_relayout(factory(), lay, gap) for lay, gap in layouts]
    for i, item in enumerate(_stream(d)):
        for m, (lay, gap) in zip(models, layouts):
            placed_scratch.update(layout=lay, gap=gap)
            _feed(m, item)
        ref = models[0].to_bytes()
        for m, lay in zip(models[1:], layouts[1:]):
            assert m.to_bytes() == ref, f"layout {lay} differs after {i + 1} updates"


def test_projection_load_is_address_independent():
    """The kernel the sketch's divergence came from, alone: theta' copied into a workspace
    vector 64 bytes after it (scalar loop) or far away (vector loop) has one norm."""
    from edge_omd._numba import ensure_compiled
    ensure_compiled("float64", "edge_omd.projection")
    rng = np.random.default_rng(0)
    for d in (7, 19, 40):
        buf = np.zeros(8 * d + 64)
        for _ in range(200):
            theta = buf[:d]
            theta[:] = rng.normal(size=d)
            near = projection.load(theta, buf[d + 1: 2 * d + 1])
            far = projection.load(theta, buf[6 * d: 7 * d])
            assert near == far and np.array_equal(buf[d + 1: 2 * d + 1], theta)
