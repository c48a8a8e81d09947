"""Shared hypothesis settings and strategies of the property tests.

Quick mode (the test command): a fixed, modest number of examples per property, derandomized
(the same examples every run, so a CI failure reproduces), no example database written. Long
mode (`EDGE_OMD_LONG=1 python -m pytest tests/property`): LONG_FACTOR times as many examples,
drawn at random on every run. Never a deadline: machines are noisy, nothing is timed.
"""
import os

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

LONG = os.environ.get("EDGE_OMD_LONG") == "1"
LONG_FACTOR = 50


def examples(n):
    """hypothesis settings for a property that tries n examples in quick mode."""
    return settings(max_examples=n * LONG_FACTOR if LONG else n, deadline=None, database=None,
                    derandomize=not LONG, suppress_health_check=list(HealthCheck))


#: every numeric numpy dtype the verbs take (real: float and integer kinds)
REAL_DTYPES = [np.float16, np.float32, np.float64, np.longdouble, np.int8, np.int16, np.int32,
               np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
#: dtypes the verbs must refuse
OTHER_DTYPES = [np.bool_, np.complex64, np.complex128, np.object_, np.dtype("U4"), np.dtype("S4"),
                np.dtype("M8[s]"), np.dtype("m8[s]")]

#: magnitudes around every threshold: zero, subnormals, float32's range, MAX_ABS_INPUT = 1e6
SPECIAL = [0.0, -0.0, 5e-324, 1e-310, 1e-45, 1e-38, 1e-6, 0.3, -0.7, 1.0, 2.0, 999_999.0, 1e6,
           -1e6, 1_000_000.5, 1e7, 3.4e38, 1e39, 1e300, float("nan"), float("inf"), float("-inf")]

floats_any = st.one_of(st.sampled_from(SPECIAL), st.floats(-3.0, 3.0),
                       st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def real_values(draw, shape, dtype):
    """An array of `shape` and real `dtype`, values mostly small, some at the thresholds."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape)) if shape else 1
    if dt.kind in "iu":
        info = np.iinfo(dt)
        ints = st.one_of(st.integers(-3, 3).filter(lambda v: v >= info.min),
                         st.sampled_from([int(info.min), int(info.max), 0, 1]),
                         st.integers(int(info.min), int(info.max)))
        vals = draw(st.lists(ints, min_size=n, max_size=n))
        return np.array(vals, dtype=dt).reshape(shape)
    small = draw(st.booleans())
    elem = st.floats(-1.0, 1.0) if small else floats_any
    vals = draw(st.lists(elem, min_size=n, max_size=n))
    with np.errstate(over="ignore", invalid="ignore"):
        return np.array(vals, dtype=np.float64).astype(dt).reshape(shape)


def layouts(a):
    """(name, array) of the same values as `a` in other memory layouts."""
    out = [("C", a)]
    ro = a.copy()
    ro.setflags(write=False)
    out.append(("read-only", ro))
    if a.ndim >= 1 and a.size:
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        out.append(("strided", wide[..., ::2]))
        rw = wide.copy()
        rw.setflags(write=False)
        out.append(("read-only strided", rw[..., ::2]))
    if a.ndim == 2:
        out.append(("F", np.asfortranarray(a)))
    if a.dtype.itemsize > 1 and a.dtype.kind in "fiuc":
        out.append(("byte-swapped", a.astype(a.dtype.newbyteorder("S"))))
    if a.dtype.kind in "fiub" and a.size:
        out.append(("frombuffer", np.frombuffer(a.tobytes(), a.dtype).reshape(a.shape)))
    return out


@st.composite
def array_args(draw, shapes):
    """An argument for an array parameter: an array of any dtype, one of `shapes` or a wrong
    one, in any layout; now and then a list, a scalar, a string or None."""
    kind = draw(st.sampled_from(["real"] * 6 + ["other-dtype", "python"]))
    shape = draw(st.sampled_from(shapes))
    if kind == "python":
        return draw(st.one_of(st.none(), st.text(max_size=3), floats_any,
                              st.lists(floats_any, min_size=len(shape) and shape[-1],
                                       max_size=len(shape) and shape[-1]),
                              st.just([[1.0, 2.0], [3.0]]), st.just({"a": 1})))
    if kind == "other-dtype":
        dt = np.dtype(draw(st.sampled_from(OTHER_DTYPES)))
        return np.zeros(shape, dt)
    dt = draw(st.sampled_from(REAL_DTYPES))
    a = draw(real_values(shape, dt))
    return dict(layouts(a))[draw(st.sampled_from([n for n, _ in layouts(a)]))]


#: scalars for y / weight / pessimism / q and the like
scalars = st.one_of(floats_any, st.integers(-2, 3), st.booleans(), st.sampled_from(
    [np.float32(0.5), np.float16(1.0), np.int64(1), np.bool_(True), np.longdouble(0.25),
     np.float64("nan"), 10 ** 400, None, "1", b"1", 1 + 0j, [1.0]]))
