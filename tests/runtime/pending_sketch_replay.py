"""PENDING (not collected: no test_ prefix): the sketch with step 3 in float64 does not always
continue bit for bit after a round trip, nor replay bit for bit from its journal.

Found by the check harness (tests/runtime/check_solver.py) on 2026-11-29:
test_check[round_trip-sketch-float64-radius] failed on HEAD 99dfb15 + the working tree's
edge_omd/linalg.py, test_check[round_trip-sketch-float64-tuned] and
test_check[replay_is_bit_exact-sketch-float64-tuned] ("replay differs after 22 updates") on the
working tree of 19:50 UTC. What is known:
- compiled kernels only (passes with NUMBA_DISABLE_JIT=1, and with NUMBA_BOUNDSCHECK=1);
- it depends on the process's allocation history, not on the model's own arrays: the same
  check passes or fails depending on which models were built (and freed) before the loaded
  one (`test_depends_on_what_ran_before` below: three from_bytes calls flip it), while copying
  the model's state and workspace arrays to every 8-byte alignment changes nothing;
- the divergence starts at the first update after loading whose projection is active: the
  workspace (Q, T, h, work) differs from step 0 (the live model's holds its last projection),
  theta one step later. So step 3 of the sketch (edge_omd/solvers/sketch.py project /
  _woodbury64 / _inv_apply, edge_omd/projection.py) reads something that is neither the state
  nor the current call's input: workspace left by an earlier call, or uninitialised memory.
A journal replay (Personalizer recovery) is then not the live model's bytes.

Run: python -m pytest tests/runtime/pending_sketch_replay.py; when it passes, rename it to
test_*.py and delete PENDING in tests/runtime/test_solver_checks.py.
"""
import pytest

from edge_omd import RewardModel
from tests.runtime import check_solver
from tests.runtime.streams import feed
from tests.runtime.test_solver_checks import PENDING, _factory


@pytest.mark.parametrize("check,setting", sorted({(c, st) for c, _s, _d, st in PENDING}))
def test_pending(check, setting):
    getattr(check_solver, f"check_{check}")(_factory("sketch", "float64", setting))


@pytest.mark.parametrize("setting", ["radius", "tuned"])
def test_depends_on_what_ran_before(setting):
    factory = _factory("sketch", "float64", setting)
    stream = check_solver._stream(7, 2 * check_solver.T, seed=1)
    outcomes = []
    for build_others in (False, True):
        m = factory()
        for kind, args, w in stream[:check_solver.T]:
            feed(m, kind, args, w)
        b = m.to_bytes()
        if build_others:
            for data in (b, bytearray(b), memoryview(b)):
                RewardModel.from_bytes(data).to_bytes()
        loaded = RewardModel.from_bytes(b)
        for kind, args, w in stream[check_solver.T:]:
            feed(m, kind, args, w)
            feed(loaded, kind, args, w)
        outcomes.append(loaded.to_bytes() == m.to_bytes())
    assert outcomes == [True, True]
