"""Defects the property tests found, each pinned by a plain example (fixed in edge_omd/_checks.py
and edge_omd/state_format.py's path argument)."""
import numpy as np
import pytest

from edge_omd import InvalidInputError, NumericalError, RewardModel
from tests import solvers

pytestmark = pytest.mark.kernels   # hostile inputs straight into the kernels: pass 2 too


@pytest.mark.parametrize("solver,dtype", solvers.grid())
def test_int64_min_in_a_matrix_is_refused(solver, dtype):
    """np.abs(int64 min) wraps to a negative number: the bound of reward/width let -2^63 in
    (reward -1.8e18, width 9e18) instead of refusing it."""
    m = solvers.make(solver, 4, dtype=dtype)
    m.learn_pair(np.ones(4) / 2, np.zeros(4))
    before = m.to_bytes()
    X = np.array([[np.iinfo(np.int64).min, 0, 0, 0]], np.int64)
    for call in (lambda: m.reward(X), lambda: m.width(X), lambda: m.width(np.ones((1, 4)), ref=X[0])):
        with pytest.raises(InvalidInputError):
            call()
    assert m.to_bytes() == before


@pytest.mark.parametrize("solver,dtype", solvers.grid())
def test_learn_observation_is_bounded_like_a_live_call(solver, dtype):
    """_learn_observation (then public) took any finite z (1e300: NumericalError, or accepted by cg); it now
    refuses what no live call can have stored (a pair's difference is at most 2 MAX_ABS_INPUT)
    and still replays the largest live observation."""
    live, twin = solvers.make(solver, 3, dtype=dtype), solvers.make(solver, 3, dtype=dtype)
    try:
        live.learn_pair(np.full(3, 1e6), np.full(3, -1e6), weight=1e-6)
    except NumericalError:   # exact float32: curvature beyond its precision, refused as such
        pass
    else:
        assert np.abs(live._observation).max() == 2e6
        twin._learn_observation(live._observation, 1.0, weight=1e-6)
        assert twin.to_bytes() == live.to_bytes()
    before = twin.to_bytes()
    for v in (2.5e6, 1e300):   # (1e300 is inf in float32: refused as such)
        with np.errstate(over="ignore"):
            z = np.full(3, v).astype(dtype)
        with pytest.raises(InvalidInputError):
            twin._learn_observation(z, 1.0)
    assert twin.to_bytes() == before


@pytest.mark.parametrize("path", [None, 3, ["a"], "a\0b", b"a\0b"])
def test_save_and_load_refuse_a_path_that_is_not_one(path, tmp_path, monkeypatch):
    """save(None) raised a raw TypeError, save('a\\0b') a raw ValueError."""
    monkeypatch.chdir(tmp_path)
    m = RewardModel(3)
    with pytest.raises(InvalidInputError):
        m.save(path)
    with pytest.raises(InvalidInputError):
        RewardModel.load(path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("verb,label", [("_learn_observation", 1.0),
                                        ("_learn_choice_observation", 0)])
@pytest.mark.parametrize("solver,dtype", solvers.grid())
def test_replay_verbs_refuse_a_ragged_list(solver, dtype, verb, label):
    """np.asarray([[1, 2], [3]]) raised a raw ValueError inside _learn_observation and
    _learn_choice_observation (then public)."""
    m = solvers.make(solver, 2, dtype=dtype)
    before = m.to_bytes()
    with pytest.raises(InvalidInputError):
        getattr(m, verb)([[1.0, 2.0], [3.0]], label)
    assert m.to_bytes() == before


def test_a_cg_float32_state_written_by_learn_pair_loads_back():
    """Found by test_verbs_on_a_model_of_every_dtype_and_d: one valid learn_pair on a float32 cg
    model at d=2 wrote a state its own loader refused ("2 x 2 principal minor below zero"). The
    update must be refused (NumericalError, state unchanged) or leave a loadable state."""
    m = RewardModel(2, solver="cg", dtype="float32")
    before = m.to_bytes()
    z = np.array([-32768, 11730], dtype=np.int16)
    try:
        m.learn_pair(z, -z.astype(np.float64))   # |z| <= MAX_ABS_INPUT: a valid call
    except NumericalError:
        assert m.to_bytes() == before
    assert RewardModel.from_bytes(m.to_bytes()) == m
