"""Wording-view goldens for the Java core (android_demo/core WordingView.java), written by the
Python view (edge_omd/head/wording.py).

    python android_demo/golden/make_golden_wording.py OUT_DIR [--texts N]

OUT_DIR/wording/cases.json: for several (bits, ngrams, transform, scale), the view of varied
texts (emoji, surrogate pairs, lone surrogates, CJK, digits, controls, empty, very long) as
sparse rows: bucket indices and the float64 bit patterns (hex) of the values, plus the unigram
hashes (for a readable first difference); the fdlibm log1p of integer counts; MurmurHash3 of
word sequences; manifests with Python's verdict. Java must agree bit for bit.

Nothing here is committed: tests/android/test_java_wording.py writes into a temp folder.
Everything is seeded, so two runs write the same files.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from make_golden_tok import PIECES  # noqa: E402  (the tokenizer goldens' unicode pieces)

from edge_omd.errors import HeadError  # noqa: E402
from edge_omd.head import wording as W  # noqa: E402

PARAMS = [(8, 1, "raw", 1.0), (9, 2, "log1p", 0.5), (10, 2, "binary", 0.25), (12, 1, "log1p", 1.0),
          (3, 2, "raw", 0.3), (10, 2, "log1p", 0.1 + 0.2)]
TRICKY = ["", " ", "\t\r\x0b\x0c ", "\n", "\n\n", "a", "A", "0", "Hello, WORLD!! hello world",
          "😀", "\ud83d\ude00", "\ud83d" + "\ude00", "\ud83d", "\ude00", "\ude00\ud83d", "x\ud800y\udfffz",
          "lone \udbff at the end \udbff", "中文和English混合，日本語のテキスト。한국어",
          "numbers 1234567890 3.14159 1e-5 0x1F 42 ٣٤٥ १२३", "naïve café ÉCOLE İstanbul K\u212a ß ﬁ",
          "- one\n- two\n\n1. first\n2. second\n\n## Header\n**bold**", "```python\nprint('x')\n```",
          "\x00\x01\x7f controls \x1b[0m", "tabs\tand\r\nwindows\r\nlines", "I'm sure. I'M SURE!",
          "a" * 20000, " ".join(["word"] * 4000) + " end", "😀" * 3000, "👨\u200d👩\u200d👧\u200d👦 🇫🇷 👍🏽"]


def texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abcXYZ0189 \n\t\r.,!?'-*#`\x00" + "éß中😀\u212a\u0130\u00a0\u3000" + "\ud800\udc00\udbff\udfff"
    out = TRICKY + list(PIECES)
    while len(out) < n:
        if rng.random() < 0.5:
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))))
        else:
            out.append(" ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6))))
    return out[:n]


def _hex(x: float) -> str:
    return struct.pack(">d", x).hex()


def manifests() -> dict:
    base = W.WordingView(9, 2, "log1p", 0.5).to_manifest()
    muts = {"ok": {}, "ok-bits-24": dict(bits=24), "ok-scale-exp": dict(scale="1e-05"),
            "version": dict(version=2), "version-bool": dict(version=True), "hash": dict(hash="fnv1a"),
            "bits-0": dict(bits=0), "bits-25": dict(bits=25), "bits-float": dict(bits=9.0),
            "bits-bool": dict(bits=True), "bits-huge": dict(bits=2 ** 40), "ngrams-3": dict(ngrams=3),
            "ngrams-float": dict(ngrams=1.0), "transform": dict(transform="sqrt"),
            "transform-list": dict(transform=["raw"]), "scale-float": dict(scale=0.5),
            "scale-neg": dict(scale="-0.5"), "scale-zero": dict(scale="0.0"), "scale-nan": dict(scale="nan"),
            "scale-inf": dict(scale="inf"), "scale-underscore": dict(scale="1_0"), "scale-hex": dict(scale="0x1p3"),
            "scale-suffix": dict(scale="1d"), "scale-space": dict(scale=" 0.5"), "extra-key": dict(extra=1)}
    out = {}
    for name, upd in muts.items():
        m = dict(base, **upd)
        try:
            W.WordingView.from_manifest(m)
            ok = True
        except HeadError:
            ok = False
        out[name] = {"manifest": m, "ok": ok}
    out["missing-bits"] = {"manifest": {k: v for k, v in base.items() if k != "bits"}, "ok": False}
    out["not-object"] = {"manifest": [1, 2], "ok": False}
    return out


def write(root: str, n_texts: int = 300) -> None:
    folder = os.path.join(root, "wording")
    os.makedirs(folder, exist_ok=True)
    ts = texts(n_texts)
    views = []
    for bits, ngrams, transform, scale in PARAMS:
        v = W.WordingView(bits, ngrams, transform, scale)
        rows = []
        for t in ts:
            r = v.row(t)
            nz = [int(j) for j in r.nonzero()[0]]
            rows.append({"h1": [W._h1(tok) for tok in W.tokens(t)], "idx": nz,
                         "val": [_hex(float(r[j])) for j in nz]})
        views.append({"manifest": v.to_manifest(), "rows": rows})
    rng = random.Random(5)
    ints = list(range(1, 70001)) + [2 ** k + j for k in range(17, 53) for j in (-1, 0, 1)]
    murmur = []
    for _ in range(200):
        words = [rng.getrandbits(32) for _ in range(rng.randint(0, 8))]
        seed = rng.getrandbits(32)
        murmur.append({"words": words, "seed": seed, "hash": W.murmur3_words(words, seed)})
    with open(os.path.join(folder, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"texts": ts, "views": views, "murmur": murmur, "manifests": manifests(),
                   "log1p": {"x": ints, "y": [_hex(W.log1p_fdlibm(float(x))) for x in ints]}},
                  f, ensure_ascii=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--texts", type=int, default=300)
    a = ap.parse_args()
    write(a.out, a.texts)
