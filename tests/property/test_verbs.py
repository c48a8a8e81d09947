"""Property tests (hypothesis) over every public verb of RewardModel and its loaders: arrays of
every dtype (all real numpy dtypes, bool, complex, object, strings, datetimes), shapes, memory
layouts (read-only, strided, Fortran, byte-swapped, frombuffer), NaN/inf, huge and tiny
magnitudes, and non-array arguments. Each call ends in a typed error (edge_omd.errors) or a
correct result; a refused call changes no byte of the state (to_bytes before and after).

"Correct" here: the result equals the one for the canonical form of the same arguments (a
native, C-contiguous copy; a float), the state stays finite and loadable, t moves as the verb
says. That the canonical computation is Algorithm 1 is the harness's business
(tests/runtime/check_solver.py, against the naive twin). The input rules are restated in
tests/property/oracle.py. Examples per property: tests/property/_hyp.py (quick / long mode).
"""
import os
import tempfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_omd import EdgeOMDError, HeadMismatchError, InvalidInputError, NumericalError, RewardModel
from edge_omd import StateFormatError
from tests import solvers
from tests.property import oracle
from tests.property._hyp import REAL_DTYPES, array_args, examples, layouts, real_values, scalars
from tests.runtime.streams import feed, mixed_stream

pytestmark = pytest.mark.kernels   # hostile inputs straight into the kernels: pass 2 too

D = 5
#: the models every property runs on: every solver x dtype, with and without step 3
CASES = [(s, dt, r) for s, dt in solvers.grid() for r in (None, 0.7)]
_BASE = {}


def _model(case):
    """A fresh copy of a model of this case that has learned a short stream."""
    if case not in _BASE:
        s, dt, r = case
        m = solvers.make(s, D, dtype=dt, radius=r)
        for kind, args, w in mixed_stream(D, 12, seed=1, scale=3.0):
            feed(m, kind, args, w)
        _BASE[case] = m.to_bytes()
    return RewardModel.from_bytes(_BASE[case])


VEC_SHAPES = [(D,)] * 5 + [(), (0,), (D - 1,), (D + 1,), (1, D), (D, 1)]
MAT_SHAPES = [(3, D), (1, D), (0, D), (D,)] * 2 + [(), (3, D + 1), (2, 2, D), (D, 1)]
weights = st.one_of(st.floats(0.05, 4.0), st.sampled_from([1e-300, 1e6, 1e6 + 1, 0.0, -1.0]),
                    scalars)
labels = st.one_of(st.floats(0.0, 1.0), st.booleans(), scalars)


def _call(fn):
    """fn() -> (result, None) or (None, the SDK error); anything else propagates (a failure)."""
    try:
        return fn(), None
    except EdgeOMDError as e:
        return None, e


def _assert_usable(m):
    """The state is finite and loadable, and its verbs give finite numbers."""
    assert np.isfinite(m.theta).all()
    probe = np.eye(D)
    assert np.isfinite(m.width(probe)).all() and np.isfinite(m.reward(probe)).all()
    assert RewardModel.from_bytes(m.to_bytes()) == m


@st.composite
def observation_args(draw, dtype):
    """_learn_observation's z: mostly the state's own dtype (every layout), else anything."""
    if draw(st.booleans()):
        return draw(array_args(VEC_SHAPES))
    a = draw(real_values((D,), dtype))
    return dict(layouts(a))[draw(st.sampled_from([n for n, _ in layouts(a)]))]


def _draw_learning_call(data, verb, m):
    """(call(model, canonical?) , canonical args or None if some argument must be refused)."""
    d = m.dim
    if verb == "learn_one":
        z, y, w = data.draw(array_args(VEC_SHAPES)), data.draw(labels), data.draw(weights)
        c = (oracle.vector(z, d), oracle.label(y), oracle.weight(w))
        return (lambda mm, a: mm.learn_one(*a[:2], weight=a[2])), (z, y, w), c
    if verb == "learn_pair":
        a, b, w = data.draw(array_args(VEC_SHAPES)), data.draw(array_args(VEC_SHAPES)), data.draw(weights)
        if data.draw(st.booleans()):   # the same array twice, or its own read-only twin
            b = a
        c = (oracle.vector(a, d), oracle.vector(b, d), oracle.weight(w))
        return (lambda mm, x: mm.learn_pair(*x[:2], weight=x[2])), (a, b, w), c
    if verb == "learn_thumb":
        phi, up, w = data.draw(array_args(VEC_SHAPES)), data.draw(st.one_of(st.booleans(), scalars)), \
            data.draw(weights)
        c = (oracle.vector(phi, d), oracle.flag(up), oracle.weight(w))
        return (lambda mm, x: mm.learn_thumb(*x[:2], weight=x[2])), (phi, up, w), c
    if verb == "fantasize":
        z, w = data.draw(array_args(VEC_SHAPES)), data.draw(weights)
        c = (oracle.vector(z, d), oracle.weight(w))
        return (lambda mm, x: mm.fantasize(x[0], weight=x[1])), (z, w), c
    if verb in ("learn_choice", "_learn_choice_observation"):
        Phi = data.draw(array_args(CHOICE_SHAPES)) if verb == "learn_choice" or data.draw(
            st.booleans()) else data.draw(choice_args(m.dtype))
        k = np.shape(Phi)[0] if np.ndim(Phi) == 2 else 0
        i, w = data.draw(st.one_of(st.integers(-1, 4), scalars)), data.draw(weights)
        canon_P = oracle.choice(Phi, d) if verb == "learn_choice" else \
            oracle.choice_observation(Phi, d, m.dtype)
        c = (canon_P, oracle.index(i, k), oracle.weight(w))
        return (lambda mm, x: getattr(mm, verb)(*x[:2], weight=x[2])), (Phi, i, w), c
    z, y, w = data.draw(observation_args(m.dtype)), data.draw(labels), data.draw(weights)
    c = (oracle.observation(z, d, m.dtype), oracle.label(y), oracle.weight(w))
    return (lambda mm, x: mm._learn_observation(*x[:2], weight=x[2])), (z, y, w), c


CHOICE_SHAPES = [(2, D), (3, D), (5, D)] * 3 + [(1, D), (17, D), (0, D), (D,), (2, D + 1), ()]


@st.composite
def choice_args(draw, dtype):
    """_learn_choice_observation's Phi in the state's own dtype (every layout)."""
    a = draw(real_values((draw(st.sampled_from([2, 3, 16, 17])), D), dtype))
    return dict(layouts(a))[draw(st.sampled_from([n for n, _ in layouts(a)]))]


LEARNING = ["learn_one", "learn_pair", "learn_thumb", "fantasize", "_learn_observation",
            "learn_choice", "_learn_choice_observation"]


@examples(400)
@given(case=st.sampled_from(CASES), verb=st.sampled_from(LEARNING), data=st.data())
def test_learning_verbs(case, verb, data):
    m = _model(case)
    before, t, theta = m.to_bytes(), m.t, m.theta.copy()
    call, args, canon = _draw_learning_call(data, verb, m)
    _, err = _call(lambda: call(m, args))
    if any(c is None for c in canon):
        assert isinstance(err, InvalidInputError), f"{verb} accepted {args!r:.300}"
        assert m.to_bytes() == before
        return
    twin = _model(case)
    _, twin_err = _call(lambda: call(twin, canon))
    assert not isinstance(err, InvalidInputError), f"{verb} refused valid {args!r:.300}: {err}"
    assert type(err) is type(twin_err), (err, twin_err)   # a layout never changes the outcome
    if err is not None:
        assert isinstance(err, NumericalError)
        assert m.to_bytes() == before
        return
    assert m.to_bytes() == twin.to_bytes(), f"{verb}: a layout/dtype changed what was learned"
    if verb == "fantasize":
        assert m.t == t and m.theta.tobytes() == theta.tobytes()
    else:
        assert m.t == t + 1
    _assert_usable(m)


@examples(200)
@given(case=st.sampled_from(CASES), data=st.data(), with_ref=st.booleans(),
       verb=st.sampled_from(["reward", "width"]))
def test_scoring_verbs(case, data, with_ref, verb):
    m = _model(case)
    before = m.to_bytes()
    X = data.draw(array_args(MAT_SHAPES))
    ref = data.draw(array_args(VEC_SHAPES)) if with_ref and verb == "width" else None
    canon_X = oracle.matrix(X, D)
    canon_ref = None if ref is None else oracle.vector(ref, D)
    out, err = _call(lambda: m.reward(X) if verb == "reward" else m.width(X, ref=ref))
    assert m.to_bytes() == before, f"{verb} changed the state"
    if canon_X is None or (ref is not None and canon_ref is None):
        assert isinstance(err, InvalidInputError), f"{verb} accepted {X!r:.200} ref={ref!r:.100}"
        return
    assert err is None, f"{verb} refused valid input: {err}"
    n = canon_X.shape[0]
    assert out.shape == (n,) and out.dtype == np.float64 and np.isfinite(out).all()
    if verb == "reward":
        np.testing.assert_allclose(out, canon_X.astype(np.float64) @ m.theta, rtol=1e-12,
                                   atol=1e-12 * (1 + np.abs(canon_X.astype(np.float64)).sum()))
    else:
        assert (out >= 0).all()
        np.testing.assert_array_equal(out, m.width(canon_X, ref=canon_ref))


@examples(80)
@given(case=st.sampled_from(CASES), data=st.data())
def test_choice_input(case, data):
    m = _model(case)
    before = m.to_bytes()
    Phi = data.draw(array_args(CHOICE_SHAPES))
    canon = oracle.choice(Phi, D)
    out, err = _call(lambda: m._choice_input(Phi))
    assert m.to_bytes() == before
    if canon is None:
        assert isinstance(err, InvalidInputError), f"_choice_input accepted {Phi!r:.200}"
        return
    assert err is None and out.flags.c_contiguous and out.dtype == np.dtype(m.dtype)
    assert not np.shares_memory(out, Phi)
    np.testing.assert_array_equal(out, m._choice_input(canon))


@examples(60)
@given(case=st.sampled_from(CASES), fp=st.one_of(
    st.binary(min_size=32, max_size=32), st.binary(max_size=40), st.none(), st.text(max_size=32),
    st.integers(), st.just(bytearray(32)), st.just(memoryview(bytes(32))), st.just(np.zeros(32, np.uint8))))
def test_bind_head(case, fp):
    m = _model(case)
    before = m.to_bytes()
    _, err = _call(lambda: m.bind_head(fp))
    ok = isinstance(fp, (bytes, bytearray)) and len(fp) == 32
    if not ok:
        assert isinstance(err, InvalidInputError) and m.to_bytes() == before
        return
    assert err is None and m.head_fingerprint == bytes(fp)
    m.bind_head(bytes(fp))                       # the same head again: fine
    other = bytes(32) if bytes(fp) != bytes(32) else b"\x01" * 32
    bound = m.to_bytes()
    with pytest.raises(HeadMismatchError):
        m.bind_head(other)
    assert m.to_bytes() == bound
    assert RewardModel.from_bytes(bound).head_fingerprint == bytes(fp)


# ------------------------------------------------------------------------------- loaders
@examples(120)
@given(case=st.sampled_from(CASES), data=st.data())
def test_from_bytes_takes_any_object(case, data):
    """from_bytes of any object: a model equal to the source or a typed error, never a raw one
    (the bytes fuzz itself is tests/runtime/test_loader_fuzz.py)."""
    b = _model(case).to_bytes()
    cut = data.draw(st.integers(0, len(b)))
    x = [b, bytearray(b), memoryview(b), b[:cut], b + b"\0", None, 0, "EDGEOMD", [1, 2],
         np.frombuffer(b, np.uint8), memoryview(b)[::2], memoryview(bytearray(b)),
         b.decode("latin-1")][data.draw(st.integers(0, 12))]
    out, err = _call(lambda: RewardModel.from_bytes(x))
    if isinstance(x, (bytes, bytearray)) or (isinstance(x, memoryview) and x.c_contiguous):
        if bytes(x) == b:
            assert err is None and out.to_bytes() == b
        else:
            assert isinstance(err, StateFormatError)
    else:
        assert isinstance(err, (InvalidInputError, StateFormatError)), err


@examples(40)
@given(case=st.sampled_from(CASES), path=st.one_of(
    st.none(), st.integers(-1, 3), st.just(["a"]), st.just("with\0nul"), st.just(b"bytes\0nul"),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"),
            min_size=1, max_size=20)))
def test_save_and_load_take_any_path(case, path):
    """A path that is not a str / bytes / PathLike, or holds NUL, is an InvalidInputError for
    save and load; any other name round-trips (in a fresh folder) or fails with an OSError
    from the file system (a name too long, say)."""
    m = _model(case)
    good = isinstance(path, (str, bytes, os.PathLike)) and "\0" not in (
        path.decode("latin-1") if isinstance(path, bytes) else str(path))
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            try:
                m.save(path)
                err = None
            except EdgeOMDError as e:
                err = e
            except OSError as e:
                assert good, f"save({path!r}) raised {e!r}"
                return
            if not good:
                assert isinstance(err, InvalidInputError), f"save({path!r}): {err!r}"
                with pytest.raises(InvalidInputError):
                    RewardModel.load(path)
                return
            assert err is None
            assert RewardModel.load(path) == m
        finally:
            os.chdir(cwd)


@examples(60)
@given(data=st.data())
def test_verbs_on_a_model_of_every_dtype_and_d(data):
    """Small and odd d, both dtypes, every solver: a learned model round-trips and scores."""
    s, dt = data.draw(st.sampled_from(solvers.grid()))
    d = data.draw(st.integers(1, 9))
    m = solvers.make(s, d, dtype=dt, radius=data.draw(st.sampled_from([None, 0.5, 3.0])))
    z = data.draw(real_values((d,), data.draw(st.sampled_from(REAL_DTYPES))))
    if oracle.vector(z, d) is None:
        with pytest.raises(InvalidInputError):
            m.learn_one(z, 1.0)
        return
    _, err = _call(lambda: m.learn_pair(z, -z.astype(np.float64)))
    assert err is None or isinstance(err, NumericalError)
    assert np.isfinite(m.theta).all()
    assert RewardModel.from_bytes(m.to_bytes()) == m
    assert m.width(np.eye(d)).shape == (d,)
