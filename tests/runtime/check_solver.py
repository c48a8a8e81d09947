"""One check harness over every solver and dtype (River's utils/estimator_checks).

Each check takes a `factory`: a callable that returns a FRESH RewardModel, always with the same
settings (solver, dtype, d, hyperparameters), e.g. `lambda: make("cg", 7, dtype="float32")`. A
check feeds it streams (tests/runtime/streams.py), calls its verbs and asserts one property of
the contract every solver promises; it never looks at a solver's private arrays except to
count them. `CHECKS` lists them all; tests/runtime/test_solver_checks.py runs each over every
solver x dtype x setting of the registry (tests/solvers.py), and `check_matches_naive` at
several d against the naive float64 twin (tests/naive.py).

    >>> from tests.solvers import make
    >>> for check in CHECKS:
    ...     check(lambda: make("exact", 7))      # raises AssertionError on a broken contract
"""
import math
import os
import tempfile

import numpy as np

from edge_omd import InvalidInputError, RewardModel
from tests.naive import NaiveOMD
from tests.runtime.streams import feed, mixed_stream

T = 40  # stream length of the generic checks: long enough for the sketch to shrink (rank < d)


def _stream(d, T=T, seed=0, scale=3.0):
    return list(mixed_stream(d, T, seed=seed, scale=scale))


def _fed(factory, stream):
    m = factory()
    for kind, args, w in stream:
        feed(m, kind, args, w)
    return m


def _label(kind, args):
    """The label y the model learned for a stream item (pair: 1; thumb: up)."""
    if kind == "one":
        return float(args[1])
    return 1.0 if kind == "pair" or args[1] else 0.0


def _grid(d, n=5, seed=9):
    return np.random.default_rng(seed).normal(size=(n, d)) / np.sqrt(d)


# ---------------------------------------------------------------------------- persistence
def check_round_trip(factory):
    """to_bytes / from_bytes (bytes, bytearray, memoryview) / save / load / copy give the same
    bytes, and a loaded model goes on exactly as the original would have."""
    m = factory()
    stream = _stream(m.dim, 2 * T, seed=1)
    for kind, args, w in stream[:T]:
        feed(m, kind, args, w)
    b = m.to_bytes()
    assert m.to_bytes() == b, "to_bytes is not a function of the state"
    for data in (b, bytearray(b), memoryview(b)):
        assert RewardModel.from_bytes(data).to_bytes() == b
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.eomd")
        m.save(path)
        loaded = RewardModel.load(path)
    assert loaded.to_bytes() == b and loaded == m
    assert m.copy().to_bytes() == b
    assert (loaded.solver, loaded.dtype, loaded.dim, loaded.sketch_rank, loaded.t) == \
        (m.solver, m.dtype, m.dim, m.sketch_rank, m.t)
    assert loaded.hyperparameters == m.hyperparameters
    assert loaded.nbytes == m.nbytes
    for kind, args, w in stream[T:]:
        feed(m, kind, args, w)
        feed(loaded, kind, args, w)
    assert loaded.to_bytes() == m.to_bytes(), "a loaded model does not continue like the original"


def check_replay_is_bit_exact(factory):
    """_learn_observation(model._observation, y, w) of every live call rebuilds the live model
    bit for bit (what recovering a user from the journal relies on)."""
    live, twin = factory(), factory()
    for i, (kind, args, w) in enumerate(_stream(live.dim, seed=2)):
        feed(live, kind, args, w)
        z = live._observation
        assert not z.flags.writeable and z.dtype == np.dtype(live.dtype)
        twin._learn_observation(z, _label(kind, args), w)
        if i % 7 == 0:
            assert twin.to_bytes() == live.to_bytes(), f"replay differs after {i + 1} updates"
    assert twin.to_bytes() == live.to_bytes()


# ---------------------------------------------------------------------------- inputs
def _verbs(d, a, b, M):
    """(name, call) for every verb taking arrays: vectors a, b of shape (d,), matrix M (n, d)."""
    return [
        ("learn_one", lambda m: m.learn_one(a, 0.7)),
        ("learn_pair", lambda m: m.learn_pair(a, b, weight=1.5)),
        ("learn_thumb", lambda m: m.learn_thumb(a, False)),
        ("fantasize", lambda m: m.fantasize(b)),
        ("reward", lambda m: m.reward(M)),
        ("reward-1d", lambda m: m.reward(a)),
        ("width", lambda m: m.width(M)),
        ("width-ref", lambda m: m.width(M, ref=b)),
    ]


def check_inputs_not_mutated(factory):
    """No verb writes into the caller's arrays (nor into the read-only theta it hands out)."""
    m = _fed(factory, _stream(factory().dim, seed=3))
    d = m.dim
    rng = np.random.default_rng(3)
    for dt in (np.float32, np.float64):
        a, b = rng.normal(size=d).astype(dt) / 3, rng.normal(size=d).astype(dt) / 3
        M = rng.normal(size=(4, d)).astype(dt) / 3
        keep = [x.copy() for x in (a, b, M)]
        for name, call in _verbs(d, a, b, M):
            out = call(m)
            for x, k in zip((a, b, M), keep):
                assert x.tobytes() == k.tobytes(), f"{name} wrote into its input"
            if out is not None:   # a result is a new array, not a view of the input
                assert not np.shares_memory(out, M) and not np.shares_memory(out, a)
        z = m._observation.copy()
        m._learn_observation(z, 0.5)
        assert z.tobytes() == m._observation.tobytes()
        theta = m.theta
        assert not theta.flags.writeable
        m.learn_thumb(theta, True)
        m.width(theta[None, :], ref=theta)


def _vector_layouts(x):
    """x (native, C-contiguous) in other layouts holding the same values: (name, array)."""
    ro = x.copy()
    ro.setflags(write=False)
    wide = np.zeros(2 * x.size, x.dtype)
    wide[::2] = x
    ro_wide = wide.copy()
    ro_wide.setflags(write=False)
    swapped = x.astype(x.dtype.newbyteorder(">" if x.dtype.byteorder in "=<" else "<"))
    ro_swapped = swapped.copy()
    ro_swapped.setflags(write=False)
    yield "read-only", ro
    yield "frombuffer", np.frombuffer(x.tobytes(), x.dtype)
    yield "strided", wide[::2]
    yield "read-only strided", ro_wide[::2]
    if x.dtype.itemsize > 1:
        yield "byte-swapped", swapped
        yield "read-only byte-swapped", ro_swapped
    yield "column of a F matrix", np.asfortranarray(np.stack([x, x], axis=1))[:, 0]


def _matrix_layouts(M):
    ro = M.copy()
    ro.setflags(write=False)
    F = np.asfortranarray(M)
    roF = F.copy(order="F")
    roF.setflags(write=False)
    wide = np.zeros((M.shape[0], 2 * M.shape[1]), M.dtype)
    wide[:, ::2] = M
    tall = np.zeros((2 * M.shape[0], M.shape[1]), M.dtype)
    tall[::2] = M
    yield "read-only", ro
    yield "F", F
    yield "read-only F", roF
    yield "column-strided", wide[:, ::2]
    yield "row-strided", tall[::2]
    yield "transposed view", np.ascontiguousarray(M.T).T
    yield "frombuffer", np.frombuffer(M.tobytes(), M.dtype).reshape(M.shape)
    if M.dtype.itemsize > 1:
        yield "byte-swapped", M.astype(M.dtype.newbyteorder(">" if M.dtype.byteorder in "=<" else "<"))


INPUT_DTYPES = (np.float16, np.float32, np.float64, np.longdouble, np.int8, np.uint8, np.int32,
                np.int64, np.uint64)


def _values(rng, shape, dt):
    x = rng.normal(size=shape) / 3
    if np.dtype(dt).kind in "iu":
        x = np.abs(np.round(x * 4)) if np.dtype(dt).kind == "u" else np.round(x * 4)
    return x.astype(dt)


def check_read_only_inputs_and_layouts(factory):
    """Every verb accepts read-only, strided, Fortran, frombuffer and byte-swapped arrays of
    every real dtype, and learns / scores exactly as from a plain C-contiguous native copy."""
    base = _fed(factory, _stream(factory().dim, 12, seed=4))
    d = base.dim
    rng = np.random.default_rng(4)
    for dt in INPUT_DTYPES:
        a, b = _values(rng, d, dt), _values(rng, d, dt)
        M = _values(rng, (3, d), dt)
        ref = base.copy()
        want = {name: call(ref) for name, call in _verbs(d, a, b, M)}
        want_bytes = ref.to_bytes()
        for (la, a2), (_, b2), (lm, M2) in zip(_vector_layouts(a), _vector_layouts(b),
                                               _matrix_layouts(M)):
            m = base.copy()
            for name, call in _verbs(d, a2, b2, M2):
                got = call(m)
                if got is not None:   # (reward is a float64 matmul: BLAS rounds by layout)
                    np.testing.assert_allclose(got, want[name], rtol=1e-14, atol=1e-14,
                                               err_msg=f"{name} {np.dtype(dt)} {la}/{lm}")
            assert m.to_bytes() == want_bytes, f"{np.dtype(dt)} {la}/{lm}: learned differently"
    # _learn_observation takes the state's own dtype only, in any native layout
    m, twin = base.copy(), base.copy()
    z = _values(rng, d, np.dtype(m.dtype))
    for name, z2 in _vector_layouts(z):
        if z2.dtype.byteorder in "=|" or z2.dtype.isnative:
            m._learn_observation(z2, 0.25)
            twin._learn_observation(z.copy(), 0.25)
            assert m.to_bytes() == twin.to_bytes(), f"_learn_observation {name}"


# ---------------------------------------------------------------------------- refusals
def _non_finite_calls(d, good):
    nan, inf = np.full(d, np.nan), np.zeros(d)
    inf[d // 2] = np.inf
    huge = np.full(d, 1e300)
    for bad_name, bad in (("nan", nan), ("inf", inf), ("-inf", -inf), ("1e300", huge)):
        with np.errstate(over="ignore"):
            as32 = bad.astype(np.float32)
        for bad32 in (bad, as32):
            yield f"learn_one {bad_name}", lambda m, x=bad32: m.learn_one(x, 1.0)
            yield f"learn_pair chosen {bad_name}", lambda m, x=bad32: m.learn_pair(x, good)
            yield f"learn_pair rejected {bad_name}", lambda m, x=bad32: m.learn_pair(good, x)
            yield f"learn_thumb {bad_name}", lambda m, x=bad32: m.learn_thumb(x, True)
            yield f"fantasize {bad_name}", lambda m, x=bad32: m.fantasize(x)
            yield f"reward {bad_name}", lambda m, x=bad32: m.reward(np.stack([good, x]))
            yield f"width {bad_name}", lambda m, x=bad32: m.width(np.stack([good, x]))
            yield f"width ref {bad_name}", lambda m, x=bad32: m.width(good, ref=x)
        if bad_name != "1e300":  # replay takes z as stored: finiteness only (see below)
            yield f"learn_observation {bad_name}", lambda m, x=bad: m._learn_observation(
                x.astype(m.dtype), 1.0)
    for v in (np.nan, np.inf, -np.inf):
        yield f"learn_one y={v}", lambda m, v=v: m.learn_one(good, v)
        yield f"learn_observation y={v}", lambda m, v=v: m._learn_observation(
            good.astype(m.dtype), v)
        for verb in ("learn_one", "learn_pair", "learn_thumb", "fantasize", "_learn_observation"):
            def call(m, v=v, verb=verb):
                g = good.astype(m.dtype) if verb == "_learn_observation" else good
                args = {"learn_one": (g, 1.0), "learn_pair": (g, -g), "learn_thumb": (g, True),
                        "fantasize": (g,), "_learn_observation": (g, 1.0)}[verb]
                getattr(m, verb)(*args, weight=v)
            yield f"{verb} weight={v}", call


def check_non_finite_refused(factory):
    """NaN, inf and out-of-range magnitudes in any argument of any verb: InvalidInputError, and
    the state is byte-identical to before (t, theta, everything)."""
    m = _fed(factory, _stream(factory().dim, seed=5))
    d = m.dim
    good = np.ones(d) / np.sqrt(d)
    before, t, theta = m.to_bytes(), m.t, m.theta.copy()
    for name, call in _non_finite_calls(d, good):
        try:
            call(m)
        except InvalidInputError:
            pass
        else:
            raise AssertionError(f"{name} was accepted")
        assert m.to_bytes() == before, f"{name} changed the state"
    assert m.t == t and m.theta.tobytes() == theta.tobytes()
    m.learn_pair(good, -good)  # and the model still learns
    assert m.t == t + 1


# ---------------------------------------------------------------------------- size
def _arrays(obj, seen=None):
    """Every ndarray reachable from obj's attributes (named tuples and lists included)."""
    seen = {} if seen is None else seen
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, np.ndarray):
            if x.base is None or not isinstance(x.base, np.ndarray):
                seen[id(x)] = x
        elif isinstance(x, (tuple, list)):
            stack.extend(x)
        elif hasattr(x, "__dict__") and type(x).__module__.startswith("edge_omd"):
            stack.extend(vars(x).values())
    return seen


def check_nbytes_constant(factory):
    """nbytes is the true size of every array the model holds, equals state_bytes() for its
    settings before the first update, and neither it nor any array changes over a stream."""
    m = factory()
    h = m.hyperparameters
    n0 = m.nbytes
    assert n0 == RewardModel.state_bytes(m.dim, m.solver, m.dtype, sketch_rank=m.sketch_rank, radius=h["radius"])
    held = _arrays(m)
    assert sum(a.nbytes for a in held.values()) == n0, "nbytes does not count every array held"
    shapes = {k: (a.shape, a.dtype) for k, a in held.items()}
    for kind, args, w in _stream(m.dim, 3 * T, seed=6):
        feed(m, kind, args, w)
    m.fantasize(np.ones(m.dim) / m.dim)
    m.width(_grid(m.dim))
    m.to_bytes()
    assert m.nbytes == n0
    after = _arrays(m)
    assert after.keys() == held.keys(), "an array was replaced or added during the stream"
    assert {k: (a.shape, a.dtype) for k, a in after.items()} == shapes
    assert RewardModel.from_bytes(m.to_bytes()).nbytes == n0


# ---------------------------------------------------------------------------- scoring
def check_scores_shapes_and_finite(factory):
    """reward / width: (n,) float64 for (n, d), (d,) and (0, d) inputs, finite; reward is
    Phi theta; widths are >= 0, zero for the zero vector, and width(Phi, ref) = width(Phi - ref)."""
    m = _fed(factory, _stream(factory().dim, seed=7))
    d = m.dim
    V = _grid(d, 6)
    for X, n in ((V, 6), (V[0], 1), (np.empty((0, d)), 0), (V.astype(np.float32), 6)):
        for out in (m.reward(X), m.width(X)):
            assert out.shape == (n,) and out.dtype == np.float64
            assert np.isfinite(out).all()
    np.testing.assert_allclose(m.reward(V), V @ m.theta, rtol=1e-12, atol=1e-12)
    w = m.width(V)
    assert (w > 0).all()
    assert m.width(np.zeros(d))[0] == 0.0
    ref = V[1].astype(m.dtype)   # exact in the state's dtype, so the difference is the same
    np.testing.assert_allclose(m.width(V, ref=ref), m.width(V - ref), rtol=1e-5)
    np.testing.assert_allclose(m.width(2 * V), 2 * w, rtol=1e-5)  # a norm
    big = np.full((2, d), 1e6)
    assert np.isfinite(m.width(big)).all() and np.isfinite(m.reward(big)).all()


# ---------------------------------------------------------------------------- life cycle
def check_reset(factory):
    """reset() gives the bytes of a fresh model with the same settings (fingerprint kept)."""
    fresh = factory()
    m = _fed(factory, _stream(fresh.dim, seed=8))
    fp = bytes(range(32))
    m.bind_head(fp)
    m.reset()
    assert m.t == 0 and not m.theta.any()
    fresh.bind_head(fp)
    assert m.to_bytes() == fresh.to_bytes()
    for kind, args, w in _stream(fresh.dim, 10, seed=9):   # and it learns as a fresh one does
        feed(m, kind, args, w)
        feed(fresh, kind, args, w)
    assert m.to_bytes() == fresh.to_bytes()


def check_copy_independent(factory):
    """A copy equals the original and shares nothing with it: learning, fantasizing or
    resetting one leaves the other's bytes unchanged."""
    m = _fed(factory, _stream(factory().dim, seed=10))
    c = m.copy()
    assert c == m and c is not m
    before = m.to_bytes()
    z = np.ones(m.dim) / np.sqrt(m.dim)
    c.learn_pair(z, -z)
    c.fantasize(z)
    assert m.to_bytes() == before
    c2 = m.copy()
    m.learn_thumb(z, True)
    m.reset()
    assert c2.to_bytes() == before


def check_fantasize(factory):
    """fantasize adds curvature only: theta and t stay bit for bit, the width of z falls."""
    m = _fed(factory, _stream(factory().dim, seed=11))
    rng = np.random.default_rng(11)
    for _ in range(3):
        z = rng.normal(size=m.dim) / np.sqrt(m.dim)
        theta, t, width = m.theta.copy(), m.t, m.width(z)[0]
        m.fantasize(z)
        assert m.t == t
        assert m.theta.tobytes() == theta.tobytes(), "fantasize moved theta"
        assert m.width(z)[0] < width, "fantasize did not add curvature along z"


def check_choice(factory):
    """learn_choice among k candidates: t + 1, nbytes unchanged, replayed bit for bit by
    _learn_choice_observation(_choice_input(Phi)) (a journal record of kind 2), a NaN candidate
    refused with the state unchanged, and k = 2 close to learn_pair on the same two rows."""
    live, twin = _fed(factory, _stream(factory().dim, 12, seed=12)), None
    twin = live.copy()
    n0, rng = live.nbytes, np.random.default_rng(12)
    for k in (2, 3, 5):
        Phi = rng.normal(size=(k, live.dim)) / np.sqrt(live.dim)
        t = live.t
        live.learn_choice(Phi, k - 1, weight=1.5)
        assert live.t == t + 1 and live.nbytes == n0
        twin._learn_choice_observation(twin._choice_input(Phi), k - 1, weight=1.5)
        assert twin.to_bytes() == live.to_bytes(), f"choice replay differs (k={k})"
    before = live.to_bytes()
    bad = np.ones((3, live.dim))
    bad[1, 0] = np.nan
    try:
        live.learn_choice(bad, 0)
    except InvalidInputError:
        pass
    else:
        raise AssertionError("a NaN candidate was accepted")
    assert live.to_bytes() == before
    a, b = live.copy(), live.copy()
    Phi = rng.normal(size=(2, live.dim)) / np.sqrt(live.dim)
    a.learn_choice(Phi, 0)
    b.learn_pair(Phi[0], Phi[1])
    scale = max(1.0, float(np.linalg.norm(b.theta)))
    assert np.linalg.norm(a.theta - b.theta) <= NAIVE_RTOL[live.dtype] * scale


CHECKS = [check_round_trip, check_replay_is_bit_exact, check_inputs_not_mutated,
          check_read_only_inputs_and_layouts, check_non_finite_refused, check_nbytes_constant,
          check_scores_shapes_and_finite, check_reset, check_copy_independent, check_fantasize,
          check_choice]


# ---------------------------------------------------------------------------- the naive twin
#: relative tolerance on theta against the float64 twin, fed the model's own observations (so
#: float32 differs by its arithmetic only; measured at most 2.0e-6 over the streams of
#: test_solver_checks.test_matches_naive, 2026-11-29)
NAIVE_RTOL = {"float64": 1e-6, "float32": 1e-4}


def check_matches_naive(factory, T, seed=0):
    """Step by step, theta within NAIVE_RTOL of NaiveOMD (tests/naive.py) fed the same
    observations as the model used them, started where the model's prior starts it (if any);
    widths and rewards at the end too."""
    m = factory()
    h = m.hyperparameters
    naive = NaiveOMD(m.dim, solver=m.solver, rank=m.sketch_rank, eta=h["eta"], lam=h["lam"],
                     radius=h["radius"], forget=h["forget"], cg_steps=h["cg_steps"],
                     lam_warmup=h["lam_warmup"], cg_tol=h["cg_tol"],
                     start=None if m.prior is None else m.prior.start())
    rtol = NAIVE_RTOL[m.dtype]
    worst = 0.0
    for t, (kind, args, w) in enumerate(mixed_stream(m.dim, T, seed=seed, scale=3.0)):
        feed(m, kind, args, w)
        naive.learn_one(m._observation.astype(np.float64), _label(kind, args), w)
        err = np.linalg.norm(m.theta - naive.theta) / max(1.0, np.linalg.norm(naive.theta))
        worst = max(worst, err)
        assert err <= rtol, f"step {t}: relative theta error {err:.2e} > {rtol:g}"
    V = _grid(m.dim, 6, seed + 1)
    np.testing.assert_allclose(m.width(V), naive.width(V), rtol=10 * rtol)
    np.testing.assert_allclose(m.reward(V), V @ naive.theta, rtol=10 * rtol,
                               atol=rtol * max(1.0, np.linalg.norm(naive.theta)))
    if h["radius"] is not None:
        assert np.linalg.norm(m.theta) <= h["radius"] * (1 + 10 * rtol)
    assert math.isfinite(worst)
    return worst
