"""Bad input to any verb: a typed error from the SDK's base class, and not one byte changes."""
import numpy as np
import pytest

from edge_omd import EdgeOMDError, InvalidInputError, RewardModel
from tests import solvers
from tests.runtime.streams import feed, mixed_stream

D = 6
good = np.ones(D) / np.sqrt(D)
BAD_VECTORS = [np.ones(D + 1), np.ones((D, 1)), np.array([np.nan] * D), np.array([np.inf] + [0] * (D - 1)),
               np.array(["a"] * D), np.ones(D, complex), [1, 2], None, "abc", np.full(D, 1e9),
               np.array([[1, 2], [3]], dtype=object)]


@pytest.fixture(params=solvers.SOLVERS)
def model(request):
    m = RewardModel(D, **solvers.options(request.param, D, rank=2), radius=5.0)
    for kind, args, w in mixed_stream(D, 20, seed=0):
        feed(m, kind, args, w)
    return m


def _calls(bad):
    yield lambda m: m.learn_one(bad, 1.0)
    yield lambda m: m.learn_pair(bad, good)
    yield lambda m: m.learn_pair(good, bad)
    yield lambda m: m.learn_thumb(bad, True)
    yield lambda m: m.fantasize(bad)


def test_bad_vectors(model):
    before = model.to_bytes()
    for bad in BAD_VECTORS:
        for call in _calls(bad):
            with pytest.raises(InvalidInputError):
                call(model)
            assert model.to_bytes() == before


@pytest.mark.parametrize("call", [
    lambda m: m.learn_one(good, 1.5), lambda m: m.learn_one(good, -0.1), lambda m: m.learn_one(good, float("nan")),
    lambda m: m.learn_one(good, "1"), lambda m: m.learn_one(good, None),
    lambda m: m.learn_pair(good, good * 0, weight=0), lambda m: m.learn_pair(good, good * 0, weight=-1),
    lambda m: m.learn_pair(good, good * 0, weight=float("inf")), lambda m: m.learn_thumb(good, 1),
    lambda m: m.learn_thumb(good, "yes"), lambda m: m.reward(np.ones((3, D + 1))),
    lambda m: m.width(np.ones((3, D)), ref=np.ones(D + 2)), lambda m: m.width(np.full((2, D), np.nan)),
    lambda m: m.bind_head(b"short"),
])
def test_bad_scalars_and_queries(model, call):
    before = model.to_bytes()
    with pytest.raises(EdgeOMDError):
        call(model)
    assert model.to_bytes() == before


def test_inputs_are_not_mutated():
    m = RewardModel(D)
    a, b = good.copy(), np.zeros(D)
    m.learn_pair(a, b)
    np.testing.assert_array_equal(a, good)
    np.testing.assert_array_equal(b, 0)


def test_scoring_shapes_and_dtypes():
    m = RewardModel(D)
    m.learn_pair(good, -good)
    assert m.reward(good).shape == (1,)
    assert m.reward(np.ones((4, D), np.float32)).dtype == np.float64
    assert m.width(np.ones((4, D), int), ref=good).shape == (4,)
    theta = m.theta
    with pytest.raises(ValueError):
        theta[0] = 1.0  # read-only


@pytest.mark.parametrize("dt", [np.uint8, np.int8, np.int64])
def test_integer_features_are_not_wrapped(dt):
    """uint8/int8 differences must be taken in float, not wrap around."""
    a = np.array([0, 100, 0, 0, 0, 0], dt)
    b = np.array([100, 0, 0, 0, 0, 0], dt) if dt == np.uint8 else np.array([-100, 0, 0, 0, 0, 0], dt)
    m_int, m_f = RewardModel(D, dtype="float64"), RewardModel(D, dtype="float64")
    m_int.learn_pair(a, b)
    m_f.learn_pair(a.astype(float), b.astype(float))
    np.testing.assert_allclose(m_int.theta, m_f.theta)


# diagonal shares sketch's omd_move
@pytest.mark.parametrize("solver", [s for s in solvers.SOLVERS if s != "diagonal"])
def test_float32_overflow_is_refused_not_stored(solver, monkeypatch):
    """A step finite in float64 but not in float32 raises NumericalError and changes nothing."""
    from edge_omd import config
    monkeypatch.setattr(config, "MAX_ETA", 1e30)
    monkeypatch.setattr(config, "MIN_LAM", 1e-30)
    m = RewardModel(D, **solvers.options(solver, D, rank=2), eta=1e20, lam=1e-10,
                    dtype="float64").astype("float32")  # (new float32 models refuse it)
    _refused_and_unchanged(m)


def test_exact_refuses_curvature_beyond_float32_precision():
    """Within the allowed ranges, one update can add curvature 1e18 times the prior: the float32
    factor cannot hold that; the update is refused instead of silently corrupting theta."""
    m = RewardModel(D, solver="exact", eta=1e6, lam=1e-9, dtype="float64").astype("float32")
    _refused_and_unchanged(m)


def _refused_and_unchanged(m):
    from edge_omd import NumericalError
    z = np.ones(D) / np.sqrt(D) * 1e6
    with pytest.raises(NumericalError):
        for _ in range(5):
            before = m.to_bytes()
            m.learn_one(z, 0.0, weight=1e6)
    assert m.to_bytes() == before
    assert np.isfinite(m.theta).all()
    RewardModel.from_bytes(m.to_bytes())  # its own state still loads


@pytest.mark.parametrize("solver,dtype", solvers.grid())
def test_read_only_inputs_are_accepted_and_learned_like_writable_ones(solver, dtype):
    """np.frombuffer, setflags(write=False) and m.theta itself: read-only arrays of either float
    dtype go through every verb and give the same bytes as writable copies of them."""
    kw = solvers.options(solver, D, rank=2, dtype=dtype)
    a, b = RewardModel(D, **kw), RewardModel(D, **kw)
    rng = np.random.default_rng(1)
    for _ in range(5):
        x, y = rng.normal(size=D) / 3, rng.normal(size=D).astype(np.float32) / 3
        ro_x = x.copy()
        ro_x.setflags(write=False)
        ro_y = np.frombuffer(y.tobytes(), np.float32)
        assert not ro_x.flags.writeable and not ro_y.flags.writeable
        a.learn_pair(ro_x, ro_y)
        b.learn_pair(x.copy(), y.copy())
        a.learn_thumb(a.theta, True)           # theta itself is a read-only float64 copy
        b.learn_thumb(b.theta.copy(), True)
        a.learn_one(ro_y, 0.3)
        b.learn_one(y.copy(), 0.3)
    assert a.to_bytes() == b.to_bytes()
    ro = np.eye(D)
    ro.setflags(write=False)
    np.testing.assert_array_equal(a.reward(ro), b.reward(np.eye(D)))
    np.testing.assert_array_equal(a.width(ro), b.width(np.eye(D)))
    np.testing.assert_array_equal(a.width(ro, ref=a.theta), b.width(np.eye(D), ref=b.theta.copy()))


LAYOUTS = ("c", "strided", "fortran", "ro_c", "ro_strided", "ro_fortran", "ro_buffer")
IN_DTYPES = (np.float16, np.float32, np.float64, np.longdouble, np.int8, np.uint8, np.int64)


def _laid_out(x, layout):
    """x (1-D or 2-D) in a layout: C, strided (every other element of a 2x wider array),
    Fortran order, each writable or read-only, or a read-only np.frombuffer."""
    if "strided" in layout:
        x = np.repeat(x, 2, axis=-1)[..., ::2]
    if layout.endswith("fortran"):
        x = np.asfortranarray(x)
    if layout == "ro_buffer":
        x = np.frombuffer(np.ascontiguousarray(x).tobytes(), x.dtype).reshape(x.shape)
    if layout.startswith("ro"):
        x.setflags(write=False)
    return x


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", ["exact", "cg", "sketch", "diagonal"])
def test_every_input_dtype_and_layout_reaches_every_verb(solver, dtype):
    """Issue 12: read-only arrays raised a raw Numba TypeError (256 of 3,424 calls). Every verb
    takes every real dtype in every layout, writable or not, and gives exactly what a plain
    writable C-contiguous copy of the same dtype gives."""
    kw = dict(**solvers.options(solver, D, rank=2), dtype=dtype, radius=2.0)
    a, b = RewardModel(D, **kw), RewardModel(D, **kw)
    rng = np.random.default_rng(2)
    for in_dt in IN_DTYPES:
        scale = 1.0 if np.dtype(in_dt).kind == "f" else 20.0
        for layout in LAYOUTS:
            x = (rng.normal(size=D) * scale).astype(in_dt)
            X = (rng.normal(size=(3, D)) * scale).astype(in_dt)
            xl, Xl = _laid_out(x, layout), _laid_out(X, layout)
            x64, X64 = np.array(x), np.array(X)  # writable C-contiguous copies, same dtype
            a.learn_one(xl, 0.7)
            b.learn_one(x64, 0.7)
            a.learn_pair(xl, xl[::-1])
            b.learn_pair(x64, np.array(x64[::-1]))
            a.learn_thumb(xl, True)
            b.learn_thumb(x64, True)
            a.fantasize(xl)
            b.fantasize(x64)
            assert a.to_bytes() == b.to_bytes(), (in_dt, layout)
            # scores: float64 products whose BLAS path depends on the layout (last bit)
            np.testing.assert_allclose(a.reward(Xl), b.reward(X64), rtol=1e-12, atol=1e-300)
            np.testing.assert_allclose(a.width(Xl), b.width(X64), rtol=1e-12)
            np.testing.assert_allclose(a.width(Xl, ref=xl), b.width(X64, ref=x64), rtol=1e-12)


def test_file_system_failures_of_save_and_load_are_oserrors_and_keep_the_old_file(tmp_path):
    """save/load fail like `open` on a missing folder or file (documented); a failed save
    leaves the previous file as it was, and a directory is never taken for a state."""
    m = RewardModel(5)
    m.learn_one(np.ones(5) / 5, 1.0)
    with pytest.raises(FileNotFoundError):
        RewardModel.load(tmp_path / "absent.omd")
    with pytest.raises(FileNotFoundError):
        m.save(tmp_path / "no" / "such" / "folder" / "user.omd")
    path = tmp_path / "user.omd"
    m.save(path)
    before = path.read_bytes()
    with pytest.raises(OSError):
        m.save(tmp_path)  # a folder: cannot be replaced by a file
    assert path.read_bytes() == before
    assert RewardModel.load(path) == m
    with pytest.raises(OSError):
        RewardModel.load(tmp_path)
