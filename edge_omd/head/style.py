"""The optional style block: cheap, deterministic answer-form features of the RESPONSE.

Much of what separates two chat answers for a person is form: length, structure, code,
markdown, emphasis (Chatbot Arena's style control models length and markdown counts beside
the answer's quality). A mean-pooled sentence embedding barely encodes it, so a head can append
these k = len(STYLE_FEATURES) features to its embedding (manifest key "style"; the head's dim
becomes d + k). Definitions, over the response as a sequence of Unicode code points (Python
`str`, Java `String.codePoints()`; lengths are never UTF-16 units), with only ASCII classes
so Python and Java (android_demo/core StyleBlock.java) compute them identically:

    log_codepoints  log1p(number of code points)
    log_words       log1p(number of maximal runs of non-space code points); space = the code
                    points of `SPACE` (ASCII whitespace, NEL, NBSP, the Unicode spaces)
    log_lines       log1p(number of lines with a non-space code point); lines split at "\\n"
    list_items      log1p(lines whose first non-space code points are "- ", "* ", "+ ", or
                    ASCII digits then ". " or ") ")
    headers         log1p(lines whose first non-space code point is "#")
    code_blocks     log1p(occurrences of "```" // 2)
    questions       log1p(number of "?")
    exclamations    log1p(number of "!")
    bold            log1p(occurrences of "**" // 2)
    digit_ratio     ASCII digits / max(1, code points)
    upper_ratio     ASCII A-Z / max(1, ASCII letters)
    paragraphs      log1p(blocks of lines with a non-space code point, separated by lines
                    without one)

("occurrences" count non-overlapping matches from the left, like `str.count`.) Standardised
with the manifest's per-feature mean and sd (fitted at export on `style_texts`) and scaled by
weight / sqrt(k), so the whole block has about `weight` norm beside a unit-norm embedding:
style = (raw - mean) / sd * weight / sqrt(k). The numbers are stored as decimal strings
(`repr` of the float64; Java `Double.parseDouble` reads them exactly), so the fingerprint's
canonical JSON holds no floats. Standard library + numpy only.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from edge_omd.errors import HeadError

STYLE_FEATURES = ("log_codepoints", "log_words", "log_lines", "list_items", "headers",
                  "code_blocks", "questions", "exclamations", "bold", "digit_ratio",
                  "upper_ratio", "paragraphs")
STYLE_VERSION = 1
SPACE = frozenset([0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029,
                   0x202F, 0x205F, 0x3000] + list(range(0x2000, 0x200B)))


def _is_space(c: str) -> bool:
    return ord(c) in SPACE


def _list_item(line: str) -> bool:
    i = 0
    while i < len(line) and _is_space(line[i]):
        i += 1
    s = line[i:]
    if s[:2] in ("- ", "* ", "+ "):
        return True
    j = 0
    while j < len(s) and "0" <= s[j] <= "9":
        j += 1
    return j > 0 and s[j:j + 2] in (". ", ") ")


def _blank(line: str) -> bool:
    return all(_is_space(c) for c in line)


def style_raw(text: str) -> list[float]:
    """The k raw features of one response (module docstring), float64."""
    n = len(text)
    words, inword = 0, False
    digits = upper = letters = 0
    for c in text:
        sp = _is_space(c)
        if not sp and not inword:
            words += 1
        inword = not sp
        if "0" <= c <= "9":
            digits += 1
        elif "A" <= c <= "Z":
            upper += 1
            letters += 1
        elif "a" <= c <= "z":
            letters += 1
    lines = text.split("\n")
    full = [not _blank(ln) for ln in lines]
    paragraphs = sum(1 for i, f in enumerate(full) if f and (i == 0 or not full[i - 1]))
    headers = 0
    for ln in lines:
        s = ln.lstrip("".join(chr(c) for c in SPACE))
        headers += s.startswith("#")
    return [math.log1p(n), math.log1p(words), math.log1p(sum(full)),
            math.log1p(sum(1 for ln in lines if _list_item(ln))), math.log1p(headers),
            math.log1p(text.count("```") // 2), math.log1p(text.count("?")),
            math.log1p(text.count("!")), math.log1p(text.count("**") // 2),
            digits / max(1, n), upper / max(1, letters), math.log1p(paragraphs)]


class StyleBlock:
    """Standardised style features: `block(responses) -> (n, k)` float64 (module docstring)."""

    def __init__(self, mean: Sequence[float], sd: Sequence[float], weight: float):
        k = len(STYLE_FEATURES)
        self.mean = np.asarray(mean, np.float64)
        self.sd = np.asarray(sd, np.float64)
        self.weight = float(weight)
        if (self.mean.shape != (k,) or self.sd.shape != (k,) or not np.all(np.isfinite(self.mean))
                or not np.all(np.isfinite(self.sd)) or not np.all(self.sd > 0)
                or not math.isfinite(self.weight) or self.weight <= 0):
            raise HeadError(f"style block: mean and sd must be {k} finite numbers (sd > 0) and "
                            "weight a positive number; re-export the head")

    @property
    def k(self) -> int:
        return len(STYLE_FEATURES)

    @classmethod
    def fit(cls, texts: Sequence[str], weight: float = 1.0) -> "StyleBlock":
        """Mean and sd (population) of the raw features over `texts`; sd 0 -> 1."""
        X = np.array([style_raw(t) for t in texts], np.float64)
        if X.ndim != 2 or len(X) < 2:
            raise HeadError("the style block needs at least 2 texts to standardise on")
        sd = X.std(0)
        return cls(X.mean(0), np.where(sd > 0, sd, 1.0), weight)

    def __call__(self, responses: Sequence[str]) -> np.ndarray:
        X = np.array([style_raw(t) for t in responses], np.float64).reshape(len(responses), self.k)
        return (X - self.mean) / self.sd * (self.weight / math.sqrt(self.k))

    def to_manifest(self) -> dict:
        return {"version": STYLE_VERSION, "features": list(STYLE_FEATURES),
                "mean": [repr(float(v)) for v in self.mean],
                "sd": [repr(float(v)) for v in self.sd], "weight": repr(self.weight)}

    @classmethod
    def from_manifest(cls, m: object, where: str = "manifest") -> "StyleBlock":
        """Parse and check a manifest's "style" entry; HeadError says what is wrong."""
        if not isinstance(m, dict) or m.get("version") != STYLE_VERSION \
                or m.get("features") != list(STYLE_FEATURES):
            raise HeadError(f"{where}: style must be {{version: {STYLE_VERSION}, features: "
                            f"{list(STYLE_FEATURES)}, mean, sd, weight}} (a head from another "
                            "edge-omd version? re-export it)")
        try:
            vals = [[float(v) for v in m["mean"]], [float(v) for v in m["sd"]], float(m["weight"])]
            if not all(isinstance(v, str) for v in list(m["mean"]) + list(m["sd"]) + [m["weight"]]):
                raise TypeError
        except (KeyError, TypeError, ValueError):
            raise HeadError(f"{where}: style mean, sd and weight must be decimal strings") from None
        return cls(*vals)
