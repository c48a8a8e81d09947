"""Issue 21, items 1, 5 and 6 (numerics): nothing an update leaves is refused by the loader, a
loaded state can always learn, and every refusal names a way out that exists for its solver.

1. cg float32: one thumb toggled on the same answer piled rounding into S until the loader
   refused the state ("not positive semi-definite"), which checkpoint() had already written.
6. cg states with huge curvature entries (1e30 float32, 1e300 float64, CRC valid) loaded, then
   every update was refused and width() was NaN.
"""
import numpy as np
import pytest

from edge_omd import BudgetError, ConfigError, NumericalError, RewardModel, StateFormatError
from edge_omd._numba import JIT_DISABLED
from edge_omd import state_format

TOGGLES = 300 if JIT_DISABLED else 7_700


def _toggle_stream(d, scale, seed=0):
    rng = np.random.default_rng(seed)
    phi = rng.standard_normal(d)
    return (phi * (scale / np.linalg.norm(phi))).astype(np.float32)


def test_cg_float32_every_state_of_7700_toggles_loads():
    """d = 16, ||phi|| = 5: the old code's first state the loader refused came after toggle
    2,154 (the probe, every 64 updates, refused only past the loader's own floor). Every state
    after every toggle must load, and no toggle is refused (the probe repairs the rounding)."""
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
        replay._learn_observation(live._observation, 1.0 if i % 2 == 0 else 0.0)
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


# ---- item 5: every refusal has a way out that keeps what was learned, named in its message
def _until_refused(m, z, limit):
    for n in range(limit):
        try:
            m.learn_one(z, float(n % 2))
        except NumericalError as e:
            return n, str(e)
    return None, ""


@pytest.mark.jit
def test_exact_float32_refusal_names_a_way_out_that_keeps_learning():
    """Alternating labels on one ||z|| = 4 observation (the default exact model refused for good
    after 33,536 at ||z|| = 1, suggesting `forget`, which exact does not take). The message
    names astype('float64'); the converted model keeps theta and the local norm, takes the
    refused update and goes on; the float32 model is unchanged."""
    z = _toggle_stream(8, 4.0).astype(np.float64)
    m = RewardModel(8, solver="exact")
    n, msg = _until_refused(m, z, 10_000)
    assert n is not None
    assert "astype('float64')" in msg and "forget" not in msg
    before = m.to_bytes()
    m64 = m.astype("float64")
    assert m.to_bytes() == before
    assert m64.dtype == "float64" and m64.t == m.t
    np.testing.assert_allclose(m64.theta, m.theta, rtol=0, atol=1e-9)
    np.testing.assert_allclose(m64.width(np.eye(8)), m.width(np.eye(8)), rtol=1e-4)
    for k in range(200):
        m64.learn_one(z, float((n + k) % 2))
    assert m64.t == m.t + 200
    RewardModel.from_bytes(m64.to_bytes())


@pytest.mark.parametrize("solver", ["exact", "cg", "sketch", "diagonal"])
def test_astype_round_trip_keeps_the_state(solver):
    """float32 -> float64 -> float32 gives the same bytes (float32 values are exact in float64;
    exact's theta is re-derived from phi in each dtype); a budget the float64 state does not
    fit is refused with the fix named, nothing changed."""
    rng = np.random.default_rng(2)
    kw = dict(sketch_rank=3) if solver == "sketch" else {}
    m = RewardModel(8, solver=solver, **kw)
    for k in range(40):
        m.learn_one(rng.standard_normal(8) / 3, float(k % 2))
    assert m.astype("float64").astype("float32") == m
    with pytest.raises(BudgetError, match="budget_bytes"):
        m.astype("float64", budget_bytes=m.nbytes)
    with pytest.raises(ConfigError):
        m.astype("float16")


@pytest.mark.parametrize("solver, ok", [("exact", 1e-6), ("cg", 1e-4), ("sketch", 1e-4),
                                        ("diagonal", 1e-9)])
def test_float32_lam_too_small_refused_at_construction(solver, ok):
    """lam in [1e-9, 1e-6] was accepted for float32 and the first update refused without naming
    lam. Below the solver's MIN_LAM_FLOAT32 construction now refuses, naming lam and float64;
    at it a unit-norm stream is learned; float64 and loading are unaffected."""
    kw = dict(sketch_rank=4) if solver == "sketch" else {}
    if solver != "diagonal":
        with pytest.raises(ConfigError, match=r"lam=.*lam >= .*float64"):
            RewardModel(16, solver=solver, lam=ok / 10, **kw)
        low = RewardModel(16, solver=solver, lam=ok / 10, dtype="float64", **kw)
        RewardModel.from_bytes(low.to_bytes())
    m = RewardModel(16, solver=solver, lam=ok, **kw)
    rng = np.random.default_rng(0)
    for k in range(3):
        z = rng.standard_normal(16)
        m.learn_one(z / np.linalg.norm(z), float(k % 2))


def test_personalizer_to_float64_keeps_the_stored_user(tmp_path):
    """The stored-user path: Personalizer.to_float64 rewrites the checkpoint as float64 in one
    transaction, updates and theta kept; a second call writes nothing."""
    from edge_omd.personalizer import Personalizer
    from edge_omd.store import FolderStore
    from tests.sdk.fakes import FakeHead
    head = FakeHead(dim=16)
    p = Personalizer(head, FolderStore(tmp_path), "alice", model_options={"solver": "exact"})
    for k in range(5):
        p.thumb("q", f"answer {k}", k % 2 == 0)
    theta = p.model.theta
    assert p.to_float64()
    q = Personalizer(head, FolderStore(tmp_path), "alice")
    assert q.model.dtype == "float64" and q.updates == 5
    np.testing.assert_allclose(q.model.theta, theta, rtol=0, atol=1e-6)
    q.thumb("q", "answer 9", True)
    assert not q.to_float64()
