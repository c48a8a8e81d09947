"""Argument checks of the SDK's fronts, written once (stumpy's checked front over its kernels).

Each check returns the value converted (a float, an int, a float64-or-state-dtype array, bytes)
or raises the error class its caller names, and changes nothing. Which class: `ConfigError` for
constructor and config arguments, `InvalidInputError` for the arguments of a call (a verb, a
strategy, a query); edge_omd/errors.py says what each class means.

    >>> real("weight", 2)
    2.0
    >>> real("weight", True)
    Traceback (most recent call last):
    ...
    edge_omd.errors.InvalidInputError: weight must be a real number, got bool

Standard library, numpy and errors.py only (below everything else in the import graph). The
per-update path passes its own allocation-free `top` (the linalg kernel) to `vector`.
"""
from __future__ import annotations

import math
import numbers
import os

import numpy as np

from edge_omd.errors import ConfigError, InvalidInputError

# Inputs beyond this magnitude are refused: the model expects L2-normalised features (|z_i| <= 2),
# and anything near float32's range would overflow the curvature terms.
MAX_ABS_INPUT = 1e6
MAX_WEIGHT = 1e6
FINGERPRINT_BYTES = 32


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


# ---------------------------------------------------------------- scalars
def real(name, x, error=InvalidInputError, *, allow_inf: bool = False) -> float:
    """`x` as a float: a real number (not a bool), finite unless allow_inf, never NaN."""
    if not _is_real(x):
        raise error(f"{name} must be a real number, got {type(x).__name__}")
    try:
        v = float(x)
    except (TypeError, ValueError, OverflowError) as exc:
        raise error(f"{name} must be a real number, got {x!r}") from exc
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise error(f"{name} must be {'a number' if allow_inf else 'finite'}, got {x!r}")
    return v


def real_in(name, x, lo, hi, error=InvalidInputError, *, open_lo: bool = False,
            open_hi: bool = False) -> float:
    """`real(x)` within [lo, hi]; `open_lo` / `open_hi` exclude an end."""
    v = real(name, x, error)
    if (v <= lo if open_lo else v < lo) or (v >= hi if open_hi else v > hi):
        raise error(f"{name} must be in {'(' if open_lo else '['}{lo:g}, {hi:g}"
                    f"{')' if open_hi else ']'}, got {v}")
    return v


def at_least(name, x, lo, error=InvalidInputError, *, allow_inf: bool = False) -> float:
    """`real(x)` >= lo (inf allowed when asked)."""
    v = real(name, x, error, allow_inf=allow_inf)
    if not v >= lo:
        raise error(f"{name} must be a {'' if allow_inf else 'finite '}number >= {lo:g}, "
                    f"got {x!r}")
    return v


def integer(name, x, error=InvalidInputError) -> int:
    """`x` as an int: an integral number (Python or numpy), not a bool, not a float."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Integral):
        raise error(f"{name} must be an integer, got {x!r}")
    return int(x)


def int_in(name, x, lo, hi, error=InvalidInputError) -> int:
    """`integer(x)` within [lo, hi]."""
    v = integer(name, x, error)
    if not lo <= v <= hi:
        raise error(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def flag(name, x, error=InvalidInputError) -> bool:
    """A bool (Python or numpy), nothing else."""
    if not isinstance(x, (bool, np.bool_)):
        raise error(f"{name} must be a bool, got {type(x).__name__}")
    return bool(x)


def label(y) -> float:
    """A label y in [0, 1] (a bool counts as 0 / 1; soft labels allowed)."""
    if isinstance(y, (bool, np.bool_)):
        return float(y)
    return real_in("y", y, 0.0, 1.0)


def weight(w) -> float:
    """An observation weight in (0, MAX_WEIGHT]."""
    return real_in("weight", w, 0.0, MAX_WEIGHT, open_lo=True)


def fingerprint(fp, error=InvalidInputError) -> bytes:
    """A feature head's fingerprint: 32 bytes (SHA-256 digest)."""
    if not isinstance(fp, (bytes, bytearray)) or len(fp) != FINGERPRINT_BYTES:
        raise error(f"a head fingerprint is {FINGERPRINT_BYTES} bytes (SHA-256 digest), "
                    f"got {type(fp).__name__}"
                    + (f" of length {len(fp)}" if isinstance(fp, (bytes, bytearray)) else ""))
    return bytes(fp)


# ---------------------------------------------------------------- arrays
def real_array(x, name) -> np.ndarray:
    """np.asarray(x) if it holds real numbers (float or integer dtype); read-only arrays and
    any memory layout are accepted as they are (nothing is copied here)."""
    try:
        a = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise InvalidInputError(f"{name} is not an array of numbers: {e}") from e
    if a.dtype.kind not in "fiu":
        raise InvalidInputError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return a


def max_abs_or_inf(a) -> float:
    """max |a_i|, or inf if any entry is NaN or inf (0 for an empty array)."""
    if not a.size:
        return 0.0
    return float(np.abs(a).max()) if np.isfinite(a).all() else math.inf


def finite_and_bounded(a, name, max_abs=MAX_ABS_INPUT, top=max_abs_or_inf) -> None:
    """Every entry finite and at most max_abs in magnitude (`top(a)`: max |a_i| or inf)."""
    top = top(a)
    if top == math.inf:
        raise InvalidInputError(f"{name} contains NaN or inf")
    if top > max_abs:
        raise InvalidInputError(f"{name} has entries above {max_abs:g} in magnitude; "
                                "features are expected L2-normalised")


def vector(x, name, d: int, top=max_abs_or_inf) -> np.ndarray:
    """A (d,) real vector, finite and bounded; integer input becomes float64 (a difference of
    unsigned or small ints would wrap around)."""
    a = real_array(x, name)
    if a.shape != (d,):
        raise InvalidInputError(f"{name} must have shape ({d},), got {a.shape}")
    if a.dtype.kind in "iu":
        a = a.astype(np.float64)
    finite_and_bounded(a, name, top=top)
    return a


def matrix(X, name, d: int) -> np.ndarray:
    """An (n, d) or (d,) real array as (n, d) float64, finite and bounded."""
    a = real_array(X, name)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != d:
        raise InvalidInputError(f"{name} must have shape (n, {d}) or ({d},), got {a.shape}")
    a = a.astype(np.float64, copy=False)  # before the bound: np.abs(int64 min) wraps negative
    finite_and_bounded(a, name)
    return a


def exact_array(x, name, shape: tuple, dtype) -> np.ndarray:
    """An array of exactly this shape and dtype (no conversion), finite and within what a live
    call can have produced (a pair's difference: 2 MAX_ABS_INPUT)."""
    try:
        a = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise InvalidInputError(f"{name} is not an array of numbers: {e}") from e
    if a.shape != shape or a.dtype != dtype:
        raise InvalidInputError(f"{name} must be {shape} {np.dtype(dtype).name}, "
                                f"got {a.shape} {a.dtype}")
    finite_and_bounded(a, name, max_abs=2 * MAX_ABS_INPUT)
    return a


def path(name, p):
    """A file name: str, bytes or os.PathLike, without NUL (what the OS can be asked about)."""
    try:
        s = os.fspath(p)
    except TypeError:
        raise InvalidInputError(f"{name} must be a str, bytes or os.PathLike, "
                                f"got {type(p).__name__}") from None
    if ("\0" if isinstance(s, str) else b"\0") in s:
        raise InvalidInputError(f"{name} contains a NUL character")
    return s


# ---------------------------------------------------------------- texts
# The text rule of the Personalizer's verbs, one rule for all of them: the prompt and every
# answer, whether learned from (thumb, prefer, pick, shown) or decided on (score, rank,
# pair_to_show, queries_to_ask), is a str holding at least one character that is not whitespace
# (str.isspace). An empty or blank text says nothing a user could prefer, and ranked it would
# be shown as a winner of nothing; refusing it everywhere keeps what rank offers and what
# feedback accepts the same. Lone surrogates are allowed: the head tokenizes each as U+FFFD
# (edge_omd/head/tokenize.py). A feature head itself (`string`) takes any str: phi is defined
# for the empty text too.
def string(name, s) -> str:
    """A str, any str (a feature head's texts)."""
    if not isinstance(s, str):
        raise InvalidInputError(f"{name} must be a str, got {type(s).__name__}")
    return s


def text(name, s) -> str:
    """A str with a character that is not whitespace (the verbs' text rule, above)."""
    string(name, s)
    if not s or s.isspace():
        raise InvalidInputError(f"{name} is {'empty' if not s else 'only whitespace'}: the "
                                "prompt and every answer must hold a visible character "
                                "(nothing was learned or stored)")
    return s


def responses(values, at_least: int = 1, check=text) -> list:
    """A list of at least `at_least` texts (each passing `check`: the verbs' `text` rule, or
    `string` for a feature head) from any sequence of str (not one str)."""
    if isinstance(values, str):
        raise InvalidInputError("responses must be a list of str, not one str; wrap it: "
                                "[response]")
    try:
        values = list(values)
    except TypeError:
        raise InvalidInputError(f"responses must be a list of str, got "
                                f"{type(values).__name__}") from None
    out = [check(f"responses[{i}]", r) for i, r in enumerate(values)]
    if not out:
        raise InvalidInputError("responses is empty; pass at least one response")
    if len(out) < at_least:
        raise InvalidInputError(f"need at least {at_least} responses, got {len(out)}")
    return out


__all__ = ["MAX_ABS_INPUT", "MAX_WEIGHT", "ConfigError", "InvalidInputError", "real", "real_in",
           "at_least", "integer", "int_in", "flag", "label", "weight", "fingerprint",
           "real_array", "max_abs_or_inf", "finite_and_bounded", "vector", "matrix",
           "exact_array", "path", "string", "text", "responses"]
