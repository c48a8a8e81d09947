"""Issue 21, items 1, 5 and 6 (numerics): nothing an update leaves is refused by the loader, a
loaded state can always learn, and every refusal names a way out that exists for its solver.

1. cg float32: one thumb toggled on the same answer piled rounding into S until the loader
   refused the state ("not positive semi-definite"), which checkpoint() had already written.
6. cg states with huge curvature entries (1e30 float32, 1e300 float64, CRC valid) loaded, then
   every update was refused and width() was NaN.
"""
import numpy as np
import pytest

from edge_omd import RewardModel, StateFormatError
from edge_omd._numba import JIT_DISABLED
from edge_omd import state_format

TOGGLES = 300 if JIT_DISABLED else 7_700


def _toggle_stream(d, scale, seed=0):
    rng = np.random.default_rng(seed)
    phi = rng.standard_normal(d)
    return (phi * (scale / np.linalg.norm(phi))).astype(np.float32)


def test_cg_float32_every_state_of_7700_toggles_loads():
    """d = 16, ||phi|| = 5: the old code's states failed the loader from toggle ~2,700 on (the
    probe, every 64 updates, refused only past the loader's own floor). Every state after every
    toggle must load, and no toggle is refused (the probe repairs the rounding instead)."""
    phi = _toggle_stream(16, 5.0)
    m = RewardModel(16, solver="cg", dtype="float32")
    for i in range(TOGGLES):
        m.learn_thumb(phi, i % 2 == 0)
        RewardModel.from_bytes(m.to_bytes())  # StateFormatError would fail the test here
    assert m.t == TOGGLES


@pytest.mark.jit
def test_cg_repair_is_replayed_bit_for_bit():
    """The repair is a function of the state and t: a model reloaded before the repairs and fed
    the same observations ends with the live model's bytes (a journal replay)."""
    phi = _toggle_stream(16, 5.0, seed=1)
    live = RewardModel(16, solver="cg", dtype="float32")
    for i in range(1_000):
        live.learn_thumb(phi, i % 2 == 0)
    replay = RewardModel.from_bytes(live.to_bytes())
    for i in range(1_000, 5_000):
        live.learn_thumb(phi, i % 2 == 0)
        replay.learn_observation(live.observation, 1.0 if i % 2 == 0 else 0.0)
    assert replay.to_bytes() == live.to_bytes()


def _with_S(model, fn):
    """model's bytes with fn applied to a writable copy of S, resealed (valid CRC)."""
    config, t, fp, arrays = state_format.decode(model.to_bytes())
    arrays = [np.array(a) for a in arrays]
    fn(arrays[1])
    return state_format.encode(config, t, fp, arrays)


@pytest.mark.parametrize("dtype, huge", [("float32", 1e30), ("float64", 1e300)])
def test_cg_huge_curvature_is_refused_by_the_loader(dtype, huge):
    """S symmetric PSD (one diagonal entry huge) within the headroom: loaded before, then every
    update refused and widths NaN. The loader now bounds trace S by the updates' own guard."""
    m = RewardModel(6, solver="cg", dtype=dtype)
    rng = np.random.default_rng(0)
    for _ in range(10):
        m.learn_one(rng.standard_normal(6), 1.0)

    def huge_entry(S):
        S[2, 2] = huge
    with pytest.raises(StateFormatError, match="trace"):
        RewardModel.from_bytes(_with_S(m, huge_entry))


def test_cg_largest_loadable_trace_still_learns():
    """The bound is the updates' own: a state whose trace is half of it loads and learns (along
    its heavy direction: elsewhere the drift guard refuses steps of this size, as it would
    have for the live model)."""
    m = RewardModel(4, solver="cg", dtype="float32", lam=1.0)
    limit = 0.1 / float(np.finfo(np.float32).eps)

    def near(S):
        S[0, 0] = 0.5 * limit
    loaded = RewardModel.from_bytes(_with_S(m, near))
    loaded.learn_one(np.array([1.0, 0.0, 0.0, 0.0]), 1.0)
    assert loaded.t == 1
    assert np.isfinite(loaded.width(np.eye(4))).all()

    def over(S):
        S[0, 0] = 1.01 * limit
    with pytest.raises(StateFormatError, match="trace"):
        RewardModel.from_bytes(_with_S(m, over))
