"""The wording view (edge_omd/head/wording.py) against slow, obviously correct twins: the
reference MurmurHash3_x86_32 over bytes (published test vectors), a character-by-character
tokenizer, counts in a dict, math.log1p and numpy's norm. Java's twin is checked bit for bit
in tests/android/test_java_wording.py."""
import math
import random
import struct

import numpy as np
import pytest

from edge_omd.errors import HeadError
from edge_omd.head import wording as W
from edge_omd.head.wording import WordingView


def murmur3_bytes(data: bytes, seed: int) -> int:
    """MurmurHash3_x86_32 as Appleby wrote it (blocks, tail, finalisation)."""
    c1, c2, m = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    rotl = lambda x, r: ((x << r) | (x >> (32 - r))) & m   # noqa: E731
    h, n = seed & m, len(data)
    for i in range(0, n - n % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        h ^= rotl(k * c1 & m, 15) * c2 & m
        h = (rotl(h, 13) * 5 + 0xE6546B64) & m
    tail = data[n - n % 4:]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= rotl(k * c1 & m, 15) * c2 & m
    h ^= n
    h ^= h >> 16
    h = h * 0x85EBCA6B & m
    h ^= h >> 13
    h = h * 0xC2B2AE35 & m
    return h ^ (h >> 16)


def naive_tokens(text: str) -> list[str]:
    cps, i = [], 0
    while i < len(text):                        # UTF-16 view: join surrogate pairs
        c = ord(text[i])
        if 0xD800 <= c <= 0xDBFF and i + 1 < len(text) and 0xDC00 <= ord(text[i + 1]) <= 0xDFFF:
            cps.append(0x10000 + ((c - 0xD800) << 10) + (ord(text[i + 1]) - 0xDC00))
            i += 2
        else:
            cps.append(c)
            i += 1
    out, run, kind = [], [], None
    for c in cps + [0x20]:
        k = "L" if (65 <= c <= 90 or 97 <= c <= 122) else "D" if 48 <= c <= 57 else None
        if k != kind and run:
            out.append("0" if kind == "D" else "".join(chr(x + 32 if 65 <= x <= 90 else x) for x in run))
            run = []
        kind = k
        if k:
            run.append(c)
        elif c not in (0x09, 0x0B, 0x0C, 0x0D, 0x20):
            out.append(chr(c))
    return out


def naive_row(text, bits, ngrams, transform, scale):
    toks = naive_tokens(text)
    grams = [(murmur3_bytes(b"".join(struct.pack("<I", ord(c)) for c in t), 1)) for t in toks]
    h1 = list(grams)
    if ngrams == 2:
        grams += [murmur3_bytes(struct.pack("<II", a, b), 2) for a, b in zip(h1, h1[1:])]
    counts = {}
    for h in grams:
        j = h % (1 << bits)
        counts[j] = counts.get(j, 0) + (-1 if h >= 1 << 31 else 1)
    v = np.zeros(1 << bits)
    for j, c in counts.items():
        v[j] = {"raw": c, "binary": np.sign(c), "log1p": math.copysign(math.log1p(abs(c)), c)}[transform]
    n = np.linalg.norm(v)
    return v if n == 0 else v / n * scale


TRICKY = ["", " ", "\t\r\x0b\x0c ", "\n", "Hello, WORLD!! hello world", "I'm not sure... Perhaps?",
          "😀 emoji 👍🏽 family 👨\u200d👩\u200d👧 flag 🇫🇷", "\ud83d\ude00 as a pair", "lone \ud800 high",
          "lone \udfff low", "\udc00\ud800 reversed", "中文和English混合, 日本語のテキスト。",
          "numbers 1234567890 3.14159 1e-5 0x1F 42", "naïve café ÉCOLE İstanbul K\u212a ß",
          "- one\n- two\n\n1. first\n2. second", "```python\nprint('x')\n```", "a" * 5000,
          " ".join(["word"] * 3000), "\x00\x01\x7f controls", "tabs\tand\r\nwindows\r\nlines"]


def _texts(n=300, seed=0):
    rng = random.Random(seed)
    alphabet = ("abcXYZ09 \n\t.,!?'-*#`" + "éß中😀\u212a\u0130") + "\ud800\udc00\udbff\udfff"
    out = list(TRICKY)
    while len(out) < n:
        out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))))
    return out


@pytest.mark.parametrize("data,seed,want", [
    (b"", 0, 0), (b"", 1, 0x514E28B7), (b"", 0xFFFFFFFF, 0x81F16F39), (b"\0\0\0\0", 0, 0x2362F9DE),
    (b"aaaa", 0x9747B28C, 0x5A97808A), (b"aaa", 0x9747B28C, 0x283E0130), (b"a", 0x9747B28C, 0x7FA09EA6),
    (b"abcd", 0x9747B28C, 0xF0478627), (b"Hello, world!", 0x9747B28C, 0x24884CBA),
    (b"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD)])
def test_reference_murmur3_matches_published_vectors(data, seed, want):
    assert murmur3_bytes(data, seed) == want


def test_murmur3_words_is_murmur3_of_the_little_endian_words():
    rng = random.Random(1)
    for _ in range(300):
        words = [rng.getrandbits(32) for _ in range(rng.randint(0, 9))]
        seed = rng.getrandbits(32)
        assert W.murmur3_words(words, seed) == murmur3_bytes(struct.pack(f"<{len(words)}I", *words), seed)


def test_tokens_match_the_naive_tokenizer():
    for t in _texts():
        assert W.tokens(t) == naive_tokens(t), repr(t)
    assert W.tokens("Naïve CAFÉ 3.14 K\u212a\n") == ["na", "ï", "ve", "caf", "É", "0", ".", "0",
                                                    "k", "\u212a", "\n"]


def test_surrogates_are_code_points_as_java_sees_them():
    assert W.tokens("\ud83d" + "\ude00") == W.tokens("😀") == ["😀"]
    assert W.tokens("a\ud800b\udfff") == ["a", "\ud800", "b", "\udfff"]
    view = WordingView(bits=8)
    assert np.array_equal(view.row("x \ud83d\ude00"), view.row("x 😀"))


@pytest.mark.parametrize("transform", W.TRANSFORMS)
@pytest.mark.parametrize("bits,ngrams", [(4, 1), (9, 2), (10, 1)])
def test_rows_match_the_naive_twin(bits, ngrams, transform):
    view = WordingView(bits, ngrams, transform, 0.75)
    for t in _texts(120, seed=bits):
        got, want = view.row(t), naive_row(t, bits, ngrams, transform, 0.75)
        if transform == "log1p":          # math.log1p and numpy's norm may round differently
            assert np.allclose(got, want, rtol=1e-14, atol=1e-15), repr(t)
        else:                             # integer squares: the norm is exact in any order
            assert np.array_equal(got, want), repr(t)
        assert (np.linalg.norm(got) == 0) == (W.tokens(t) == [])


def test_rows_have_the_scale_as_norm_and_empty_texts_are_zero():
    view = WordingView(bits=6, ngrams=2, transform="raw", scale=0.5)
    X = view(["", " \t\r ", "a", "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 40])
    assert X.shape == (4, 64) and X.dtype == np.float64
    assert not X[:2].any() and np.allclose(np.linalg.norm(X[2:], axis=1), 0.5)
    assert view.counts("a").sum() in (1, -1) and np.abs(view.counts("a a a")).sum() == 3 + 2
    uni = WordingView(bits=6, ngrams=1)
    assert np.abs(uni.counts("a A a")).max() == 3 and np.abs(uni.counts("a, b")).sum() == 3


def test_log1p_is_fdlibms():
    for x in list(range(1, 3000)) + [2.0 ** 40 + 1, 2.0 ** 52, 123456789.0]:
        y, ref = W.log1p_fdlibm(float(x)), math.log1p(float(x))
        assert abs(y - ref) <= math.ulp(ref)
    assert W.log1p_fdlibm(1.0) == math.log(2.0)
    with pytest.raises(ValueError):
        W.log1p_fdlibm(0.5)


def test_manifest_round_trip_and_refusals():
    view = WordingView(10, 1, "binary", 0.3)
    m = view.to_manifest()
    assert m == {"version": 1, "hash": "murmur3_x86_32", "bits": 10, "ngrams": 1,
                 "transform": "binary", "scale": "0.3"}
    again = WordingView.from_manifest(m)
    assert repr(again) == repr(view) and np.array_equal(again.row("ab cd"), view.row("ab cd"))
    bad = [dict(m, version=2), dict(m, hash="fnv1a"), dict(m, scale=0.3), dict(m, scale="x"),
           dict(m, scale="-1"), dict(m, scale="nan"), dict(m, bits=25), dict(m, bits=9.0),
           dict(m, bits=True), dict(m, ngrams=3), dict(m, transform="sqrt"), dict(m, extra=1),
           dict(m, version=True), dict(m, ngrams=1.0), dict(m, scale="1_0"), dict(m, scale="0x1p3"),
           dict(m, scale="1d"), dict(m, scale=" 0.3"), dict(m, transform=["raw"]),
           {k: v for k, v in m.items() if k != "bits"}, [m], None]
    for b in bad:
        with pytest.raises(HeadError):
            WordingView.from_manifest(b)


@pytest.mark.parametrize("kw", [dict(bits=0), dict(bits=25), dict(bits="9"), dict(ngrams=0),
                                dict(transform="tfidf"), dict(scale=0), dict(scale=float("inf")),
                                dict(scale=True)])
def test_bad_parameters_are_refused(kw):
    with pytest.raises(HeadError):
        WordingView(**kw)
