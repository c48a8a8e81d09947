"""Sums that merge exactly: a fit over shards gives the same bits in any grouping.

Floating-point addition is not associative, so the statistics of a fit summed over users in
one process and in two shards merged afterwards would differ in their last bits, and so would
the pack. `FixedSum` rounds each user's contribution ONCE, to a multiple of 2^-E (E fixed for the
whole fit), and adds the integers: integer addition is associative and commutative, so any split
of the users into shards, in any order, gives the same integer, and the same float64 at the end.
Each addend must be below 2^62 2^-E in magnitude (checked: the fit picks E from a bound on a
user's contribution). The integer is held in two int64 limbs, hi 2^31 + lo with lo in [0, 2^31),
so no sum of fewer than 2^31 addends can overflow.

    >>> import numpy as np
    >>> a, b = FixedSum((2,), 40), FixedSum((2,), 40)
    >>> for x in (0.1, 0.2, 0.3):
    ...     a.add(np.array([x, -x]))
    >>> b.add(np.array([0.3, -0.3])); b.add(np.array([0.1, -0.1])); b.add(np.array([0.2, -0.2]))
    >>> a == b, bool(abs(a.value()[0] - 0.6) < 2.0 ** -38)    # each addend rounded to 2^-40
    (True, True)

`ExactScalar` is the same for single numbers without a scale: an exact rational sum of floats.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from edge_omd.errors import InvalidInputError

__all__ = ["FixedSum", "ExactScalar", "scale_for"]

_LIMB = 31
_ADDEND_BITS = 62


def scale_for(bound: float, bits: int = 60) -> int:
    """The exponent E for addends of magnitude at most `bound`: bound 2^E <= 2^bits (so an
    addend fits an int64 with room), as many fractional bits as that allows."""
    if not (bound > 0.0 and np.isfinite(bound)):
        bound = 1.0
    return int(bits - np.ceil(np.log2(bound)))


class FixedSum:
    """An exact sum of float64 arrays of one shape, each rounded to a multiple of 2^-E."""

    __slots__ = ("shape", "E", "hi", "lo")

    def __init__(self, shape, E: int):
        self.shape, self.E = tuple(shape), int(E)
        self.hi = np.zeros(self.shape, np.int64)
        self.lo = np.zeros(self.shape, np.int64)

    def _normalise(self) -> None:
        carry = self.lo >> _LIMB                 # floor division by 2^31 (negatives included)
        self.hi += carry
        self.lo -= carry << _LIMB

    def add(self, x) -> None:
        """Add x (an array of this shape), rounded to the nearest multiple of 2^-E (ties to
        even). InvalidInputError if an entry is not finite or too large for the scale."""
        q = np.ldexp(np.asarray(x, np.float64), self.E)       # exact: a power-of-two scaling
        if q.shape != self.shape:
            raise InvalidInputError(f"FixedSum of shape {self.shape} got an addend of shape "
                                    f"{q.shape}")
        top = float(np.abs(q).max()) if q.size else 0.0
        if not top < 2.0 ** _ADDEND_BITS:
            raise InvalidInputError(f"an addend of {top * 2.0 ** -self.E:.4g} is not finite or "
                                    f"beyond the sum's scale 2^{_ADDEND_BITS - self.E}")
        self.lo += np.rint(q).astype(np.int64)
        self._normalise()

    def merge(self, other: "FixedSum") -> "FixedSum":
        """Add another FixedSum of the same shape and scale (in place; returns self)."""
        if not isinstance(other, FixedSum) or other.shape != self.shape or other.E != self.E:
            raise InvalidInputError("only FixedSums of one shape and scale merge")
        self.hi += other.hi
        self.lo += other.lo
        self._normalise()
        return self

    def value(self) -> np.ndarray:
        """The sum as float64 (hi 2^(31 - E) + lo 2^-E: the same bits for the same integer)."""
        return np.ldexp(self.hi.astype(np.float64), _LIMB - self.E) + \
            np.ldexp(self.lo.astype(np.float64), -self.E)

    def __eq__(self, other):
        return (isinstance(other, FixedSum) and self.shape == other.shape and self.E == other.E
                and np.array_equal(self.hi, other.hi) and np.array_equal(self.lo, other.lo))

    __hash__ = None

    def __getstate__(self):
        return (self.shape, self.E, self.hi, self.lo)

    def __setstate__(self, s):
        self.shape, self.E, self.hi, self.lo = s


class ExactScalar:
    """An exact sum of finite floats (Fraction): merges in any order to the same value."""

    __slots__ = ("total",)

    def __init__(self, total=Fraction(0)):
        self.total = Fraction(total)

    def add(self, x: float) -> None:
        x = float(x)
        if not np.isfinite(x):
            raise InvalidInputError(f"an addend of {x!r} is not finite")
        self.total += Fraction(x)

    def merge(self, other: "ExactScalar") -> "ExactScalar":
        self.total += other.total
        return self

    def value(self) -> float:
        return float(self.total)

    def __eq__(self, other):
        return isinstance(other, ExactScalar) and self.total == other.total

    __hash__ = None

    def __getstate__(self):
        return self.total

    def __setstate__(self, s):
        self.total = s
