"""The documented input rules of the verbs, restated independently of edge_omd/_checks.py:
what a call must accept (and then compute correctly) and what it must refuse with a typed
error. Each function returns the canonical value (a native C-contiguous array, a float) or
None for an argument the verb must refuse."""
import math
import numbers

import numpy as np

MAX_ABS_INPUT = 1e6   # features are L2-normalised; docs/ALGORITHM.md, RewardModel docstring
MAX_WEIGHT = 1e6


def _real_array(x):
    try:
        a = np.asarray(x)
    except Exception:
        return None
    return a if a.dtype.kind in "fiu" else None


def _bounded(a, limit=MAX_ABS_INPUT):
    a64 = a.astype(np.float64)
    return bool(np.isfinite(a64).all() and (a64.size == 0 or np.abs(a64).max() <= limit))


def native(a):
    """The same values, same dtype, native byte order, C-contiguous and writable."""
    return np.array(a, dtype=a.dtype.newbyteorder("="), order="C", copy=True)


def vector(x, d):
    a = _real_array(x)
    if a is None or a.shape != (d,) or not _bounded(a):
        return None
    return native(a)


def matrix(X, d):
    a = _real_array(X)
    if a is None:
        return None
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != d or not _bounded(a):
        return None
    return native(a)


def observation(z, d, dtype):
    """_learn_observation: exactly (d,) in the state's dtype; finite and within what a live call
    can have stored (a pair's difference: 2 MAX_ABS_INPUT)."""
    a = np.asarray(z) if isinstance(z, np.ndarray) else None
    if a is None or a.shape != (d,) or a.dtype != np.dtype(dtype) or not _bounded(a, 2 * MAX_ABS_INPUT):
        return None
    return native(a)


def real(x):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if math.isfinite(v) else None


def label(y):
    if isinstance(y, (bool, np.bool_)):
        return float(y)
    v = real(y)
    return v if v is not None and 0.0 <= v <= 1.0 else None


def weight(w):
    v = real(w)
    return v if v is not None and 0.0 < v <= MAX_WEIGHT else None


def flag(x):
    return bool(x) if isinstance(x, (bool, np.bool_)) else None


MAX_K = 16   # candidates of one choice (RewardModel.learn_choice)


def choice(Phi, d):
    """learn_choice / _choice_input: a real (k, d) array, 2 <= k <= MAX_K, bounded."""
    a = _real_array(Phi)
    if a is None or a.ndim != 2 or a.shape[1] != d or not 2 <= a.shape[0] <= MAX_K \
            or not _bounded(a):
        return None
    return native(a)


def choice_observation(Phi, d, dtype):
    """_learn_choice_observation: exactly (k, d) in the state's dtype, bounded like a live call."""
    a = np.asarray(Phi) if isinstance(Phi, np.ndarray) else None
    if a is None or a.ndim != 2 or a.shape[1] != d or not 2 <= a.shape[0] <= MAX_K \
            or a.dtype != np.dtype(dtype) or not _bounded(a, 2 * MAX_ABS_INPUT):
        return None
    return native(a)


def index(i, k):
    """An integer (Python or numpy, not a bool) in [0, k)."""
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, numbers.Integral):
        return None
    return int(i) if 0 <= int(i) < k else None
