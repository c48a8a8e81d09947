"""The wording view: a fixed-size hashed lexical view of the RESPONSE (Vowpal Wabbit's hashing
trick), appended to a head's embedding so the learner can see how an answer is worded.

A mean-pooled sentence embedding is trained to map paraphrases together, so it barely sees the
words that separate two answers to the same prompt ("perhaps" vs "definitely", "sorry", a
first person). This view counts them, in D = 2^bits buckets whatever the vocabulary; nothing
grows with the text or the language. Computed identically, bit for bit, by Python and by Java
(android_demo/core WordingView.java), so every step below is pinned:

1. Code points. The response as Unicode code points, as Java's `String.codePoints()` sees
   them: a high surrogate followed by a low surrogate is one code point, any other surrogate
   stays a code point of its own (lone surrogates are valid input; nothing is UTF-8 encoded).
2. Tokens, left to right, with ASCII classes only (Python's `lower()`/`isalpha()`/`\\w`,
   Java 17's and Android ICU's disagree outside ASCII):
   - a maximal run of ASCII letters A-Z a-z is one token, A-Z folded to a-z (nothing else);
   - a maximal run of ASCII digits 0-9 is the token "0" (one class for every number);
   - tab, line tabulation, form feed, carriage return and space separate tokens;
   - every other code point is a token of its own: "\\n", each ASCII punctuation or control
     character, each non-ASCII code point (accented letters, CJK, emoji, lone surrogates).
3. n-grams: every token (unigram); with ngrams = 2 also every pair of consecutive tokens.
4. Hash: MurmurHash3_x86_32 (Austin Appleby, public domain) over a sequence of 32-bit words,
   each word one 4-byte block (= the hash of the sequence's little-endian bytes):
   unigram h1(t) = murmur3(code points of t, seed 1); bigram h2(a, b) = murmur3([h1(a), h1(b)],
   seed 2). Bucket j = h mod D (the low `bits` bits), sign = -1 if bit 31 of h is set, else +1.
5. Counts: c_j = the sum of the signs of the n-grams in bucket j (an integer).
6. Transform, float64: "log1p": sign(c) * log1p(|c|), log1p being fdlibm's (Java's
   `StrictMath.log1p`, ported below, so no platform libm is involved); "binary": sign(c);
   "raw": c.
7. L2 normalisation: v_j / ||v|| * scale, ||v|| = sqrt of the sum of v_j^2 accumulated in
   float64 over j ascending; the all-zero vector (no token) stays zero.

A head appends the view as float32 (the head's dtype). Everything a head records in its
manifest (`to_manifest`): version, hash, bits, ngrams, transform, scale (a decimal string, so
the fingerprint's canonical JSON holds no floats). Standard library + numpy only.

    >>> view = WordingView(bits=9, ngrams=2, transform="log1p", scale=0.5)
    >>> view(["Perhaps. I'm sorry!", ""]).shape
    (2, 512)
"""
from __future__ import annotations

import math
import re
import struct
from functools import lru_cache
from typing import Sequence

import numpy as np

from edge_omd.errors import HeadError

WORDING_VERSION = 1
HASH = "murmur3_x86_32"
TRANSFORMS = ("log1p", "binary", "raw")
MAX_BITS = 24            # the sign is bit 31: bucket and sign bits never overlap

# one token: a run of ASCII letters, a run of ASCII digits, or any single code point that is
# not a separator (tab, line tabulation, form feed, carriage return, space)
_TOKEN = re.compile("[A-Za-z]+|[0-9]+|[^\t\x0b\x0c\r A-Za-z0-9]")
_ASCII_FOLD = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?")     # repr() of a positive float
_M32 = 0xFFFFFFFF


# ================================================================ MurmurHash3_x86_32 =========
def murmur3_words(words: Sequence[int], seed: int) -> int:
    """MurmurHash3_x86_32 of a sequence of 32-bit words (each one block), as an unsigned int."""
    h = seed & _M32
    for k in words:
        k = (k * 0xCC9E2D51) & _M32
        k = ((k << 15) | (k >> 17)) & _M32
        k = (k * 0x1B873593) & _M32
        h ^= k
        h = ((h << 13) | (h >> 19)) & _M32
        h = (h * 5 + 0xE6546B64) & _M32
    h ^= (4 * len(words)) & _M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


@lru_cache(maxsize=1 << 16)
def _h1(token: str) -> int:
    return murmur3_words([ord(c) for c in token], 1)


@lru_cache(maxsize=1 << 16)
def _h2(a: int, b: int) -> int:
    return murmur3_words((a, b), 2)


# ================================================================ fdlibm log1p ===============
_LN2_HI = 6.93147180369123816490e-01     # 3fe62e42 fee00000
_LN2_LO = 1.90821492927058770002e-10     # 3dea39ef 35793c76
_LP = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
       2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
       1.479819860511658591e-01)


def _hi(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0] >> 32 & _M32


def _with_hi(x: float, hi: int) -> float:
    lo = struct.unpack("<q", struct.pack("<d", x))[0] & _M32
    return struct.unpack("<d", struct.pack("<Q", (hi << 32) | lo))[0]


@lru_cache(maxsize=1 << 12)
def log1p_fdlibm(x: float) -> float:
    """fdlibm 5.3 s_log1p.c (Java's StrictMath.log1p) for 1 <= x < 2^53, the counts this view
    takes: the branch of the C code for x >= 0.41422 with 1 + x exact."""
    if not 1.0 <= x < 9007199254740992.0:
        raise ValueError(f"log1p_fdlibm is ported for 1 <= x < 2^53, got {x!r}")
    u = 1.0 + x
    hu = _hi(u)
    k = (hu >> 20) - 1023
    c = (1.0 - (u - x)) / u          # k > 0 here: the correction term of 1 + x
    hu &= 0x000FFFFF
    if hu < 0x6A09E:
        u = _with_hi(u, hu | 0x3FF00000)         # normalise u
    else:
        k += 1
        u = _with_hi(u, hu | 0x3FE00000)         # normalise u / 2
        hu = (0x00100000 - hu) >> 2
    f = u - 1.0
    hfsq = 0.5 * f * f
    if hu == 0:                                  # |f| < 2^-20
        if f == 0.0:
            c += k * _LN2_LO
            return k * _LN2_HI + c
        R = hfsq * (1.0 - 0.66666666666666666 * f)
        return k * _LN2_HI - ((R - (k * _LN2_LO + c)) - f)
    s = f / (2.0 + f)
    z = s * s
    L1, L2, L3, L4, L5, L6, L7 = _LP
    R = z * (L1 + z * (L2 + z * (L3 + z * (L4 + z * (L5 + z * (L6 + z * L7))))))
    return k * _LN2_HI - ((hfsq - (s * (hfsq + R) + (k * _LN2_LO + c))) - f)


# ================================================================ the view ===================
def code_points(text: str) -> str:
    """`text` with every high + low surrogate pair joined into one code point (step 1)."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return text


def tokens(text: str) -> list[str]:
    """The tokens of step 2 (letter runs folded, digit runs as "0")."""
    out = []
    for t in _TOKEN.findall(code_points(text)):
        c = t[0]
        if "0" <= c <= "9":
            out.append("0")
        elif ("a" <= c <= "z") or ("A" <= c <= "Z"):
            out.append(t.translate(_ASCII_FOLD))
        else:
            out.append(t)
    return out


class WordingView:
    """The hashed wording view: `view(responses) -> (n, 2^bits)` float64 (module docstring).

    Args:
        bits: D = 2^bits buckets, 1 <= bits <= 24.
        ngrams: 1 (unigrams) or 2 (unigrams and bigrams).
        transform: "log1p", "binary" or "raw" (step 6).
        scale: the norm of a non-empty row (> 0, finite).
    Raises HeadError for bad parameters (a head's manifest holds them).
    """

    def __init__(self, bits: int = 9, ngrams: int = 2, transform: str = "log1p", scale: float = 1.0):
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_BITS:
            raise HeadError(f"wording view: bits must be an int in [1, {MAX_BITS}], got {bits!r}")
        if isinstance(ngrams, bool) or not isinstance(ngrams, (int, np.integer)) or ngrams not in (1, 2):
            raise HeadError(f"wording view: ngrams must be 1 or 2, got {ngrams!r}")
        if transform not in TRANSFORMS:
            raise HeadError(f"wording view: transform must be one of {', '.join(TRANSFORMS)}, "
                            f"got {transform!r}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating)) \
                or not math.isfinite(scale) or scale <= 0:
            raise HeadError(f"wording view: scale must be a positive finite number, got {scale!r}")
        self.bits, self.ngrams, self.transform, self.scale = int(bits), int(ngrams), transform, float(scale)

    @property
    def dim(self) -> int:
        return 1 << self.bits

    def __repr__(self) -> str:
        return (f"WordingView(bits={self.bits}, ngrams={self.ngrams}, "
                f"transform={self.transform!r}, scale={self.scale!r})")

    def hashes(self, text: str) -> list[int]:
        """The 32-bit hash of every n-gram of `text` (steps 1-4), unigrams then bigrams."""
        h = [_h1(t) for t in tokens(text)]
        if self.ngrams == 2:
            h += [_h2(a, b) for a, b in zip(h, h[1:])]
        return h

    def counts(self, text: str) -> np.ndarray:
        """The signed integer count of every bucket (step 5), int64 (D,)."""
        h = np.array(self.hashes(text), np.uint32)
        sign = np.where(h >> 31, -1, 1).astype(np.int64)
        return np.bincount((h & (self.dim - 1)).astype(np.intp), weights=sign,
                           minlength=self.dim).astype(np.int64)

    def row(self, text: str) -> np.ndarray:
        """The view of one response (steps 1-7), float64 (D,)."""
        c = self.counts(text)
        nz = np.flatnonzero(c)
        v = np.zeros(self.dim, np.float64)
        if nz.size == 0:
            return v
        cn = c[nz]
        if self.transform == "raw":
            vals = cn.astype(np.float64)
        elif self.transform == "binary":
            vals = np.sign(cn).astype(np.float64)
        else:
            vals = np.array([math.copysign(log1p_fdlibm(float(abs(x))), x) for x in cn.tolist()])
        ss = 0.0
        for x in vals.tolist():          # float64, j ascending: Java sums in the same order
            ss += x * x
        v[nz] = vals / math.sqrt(ss) * self.scale
        return v

    def __call__(self, responses: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(responses), self.dim), np.float64)
        for i, r in enumerate(responses):
            out[i] = self.row(r)
        return out

    def to_manifest(self) -> dict:
        return {"version": WORDING_VERSION, "hash": HASH, "bits": self.bits, "ngrams": self.ngrams,
                "transform": self.transform, "scale": repr(self.scale)}

    @classmethod
    def from_manifest(cls, m: object, where: str = "manifest") -> "WordingView":
        """Parse and check a manifest's "wording" entry; HeadError says what is wrong."""
        keys = {"version", "hash", "bits", "ngrams", "transform", "scale"}
        if not isinstance(m, dict) or set(m) != keys or type(m["version"]) is not int \
                or m["version"] != WORDING_VERSION or m["hash"] != HASH:
            raise HeadError(f"{where}: wording must be {{version: {WORDING_VERSION}, hash: {HASH!r}, "
                            "bits, ngrams, transform, scale}} (a head from another edge-omd "
                            "version? re-export it)")
        if not isinstance(m["scale"], str) or not _DECIMAL.fullmatch(m["scale"]):
            raise HeadError(f"{where}: wording scale must be a decimal string like '0.5', got "
                            f"{m['scale']!r}")
        if type(m["bits"]) is not int or type(m["ngrams"]) is not int or not isinstance(m["transform"], str):
            raise HeadError(f"{where}: wording bits and ngrams must be integers and transform a string")
        try:
            return cls(m["bits"], m["ngrams"], m["transform"], float(m["scale"]))
        except HeadError as e:
            raise HeadError(f"{where}: {e}") from None
