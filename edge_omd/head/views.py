"""The views a head appends to its graph's embedding e: phi = [e, style, wording].

- style: the answer-form block of the response (edge_omd/head/style.py), k = 12 features,
  block norm about `weight`;
- wording: the hashed lexical view of the response (edge_omd/head/wording.py), 2^bits
  buckets, row norm `scale`.

Each view is optional, recorded in the manifest under its key (`manifest.VIEW_KEYS`, in the
order appended) and enters the head fingerprint only when present, so a head without views
keeps the fingerprint it had before views existed, and a stored user bound to a head with
other views is refused (HeadMismatchError) instead of silently mixed. Each block is computed
in float64 and appended as float32 (the head's dtype), so the features equal bench/views.py's
`Blocks.phi` bit for bit for the same parameters.

`DEFAULT_STYLE_WEIGHT` and `DEFAULT_WORDING` are the combination the views rule chose
(docs/BENCHMARKS.md "Views (issue 20)"): `edge-omd export` (unless told otherwise, for a
normalised head) and the demo's head use it; a head without views appends nothing
(docs/VIEWS.md).

    >>> v = HeadViews.from_options(views="default", style_texts=["Short.", "- a\\n- b"])
    >>> v.dim, v.append(np.zeros((1, 3), np.float32), ["Yes."]).shape
    (268, (1, 271))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from edge_omd.errors import HeadError
from edge_omd.head.style import StyleBlock
from edge_omd.head.wording import WordingView

#: The rule's decision (docs/BENCHMARKS.md "Views (issue 20)"): style block at weight 0.5,
#: wording view with 256 buckets, unigrams and bigrams, log1p counts, row norm 0.5.
DEFAULT_STYLE_WEIGHT = 0.5
DEFAULT_WORDING = {"bits": 8, "ngrams": 2, "transform": "log1p", "scale": 0.5}
#: Named view sets an export can ask for.
PRESETS = ("none", "default")


@dataclass(frozen=True)
class HeadViews:
    """The views of one head (None: absent)."""
    style: Optional[StyleBlock] = None
    wording: Optional[WordingView] = None

    @property
    def dim(self) -> int:
        """Columns the views add to the graph's d."""
        return (0 if self.style is None else self.style.k) + (0 if self.wording is None else self.wording.dim)

    def __bool__(self) -> bool:
        return self.style is not None or self.wording is not None

    def append(self, e: np.ndarray, responses: Sequence[str]) -> np.ndarray:
        """[e, style(responses), wording(responses)] as float32 (n, d + self.dim)."""
        parts = [np.asarray(e, np.float32)]
        if self.style is not None:
            parts.append(self.style(responses).astype(np.float32))
        if self.wording is not None:
            parts.append(self.wording(responses).astype(np.float32))
        return parts[0] if len(parts) == 1 else np.hstack(parts)

    def to_manifest(self) -> dict:
        """The manifest entries of the views the head has ({} for none)."""
        out = {}
        if self.style is not None:
            out["style"] = self.style.to_manifest()
        if self.wording is not None:
            out["wording"] = self.wording.to_manifest()
        return out

    @classmethod
    def from_manifest(cls, m: dict, where: str = "manifest") -> "HeadViews":
        """The views a (validated) manifest records; HeadError says which entry is wrong."""
        return cls(None if m.get("style") is None else StyleBlock.from_manifest(m["style"], where),
                   None if m.get("wording") is None else WordingView.from_manifest(m["wording"], where))

    @classmethod
    def from_options(cls, *, views: Optional[str] = None, style: Optional[bool] = None,
                     style_weight: Optional[float] = None, style_texts=None,
                     wording=None) -> "HeadViews":
        """The views an export asks for (export_model's arguments; HeadError when wrong).

        views: None, "none" or "default" (the rule's choice: style at `DEFAULT_STYLE_WEIGHT`
            and `DEFAULT_WORDING`); a preset may not be combined with
            the arguments below (say either).
        style: append the style block, standardised on `style_texts` (>= 2 response texts),
            block norm `style_weight` (default 1.0).
        wording: None/False, True (`DEFAULT_WORDING`), or a dict of WordingView's arguments
            (bits, ngrams, transform, scale; missing ones from `DEFAULT_WORDING`).
        """
        if views is not None:
            if views not in PRESETS:
                raise HeadError(f"views must be one of {', '.join(PRESETS)}, got {views!r}")
            if style is not None or style_weight is not None or wording is not None:
                raise HeadError(f"views={views!r} is a preset: pass either it or style/"
                                "style_weight/wording, not both")
            if views == "none":
                return cls()
            style, style_weight, wording = True, DEFAULT_STYLE_WEIGHT, True
        if style is not None and not isinstance(style, bool):
            raise HeadError(f"style must be True or False, got {style!r}")
        block = None
        if style:
            weight = 1.0 if style_weight is None else style_weight
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise HeadError(f"style_weight must be a positive number, got {weight!r}")
            block = StyleBlock.fit(_texts(style_texts), float(weight))
        elif style_weight is not None:
            raise HeadError("style_weight needs style=True")
        return cls(block, _wording(wording))


def _texts(texts) -> list:
    if texts is None:   # the responses of the bundled demo corpus
        import json
        import os
        from edge_omd.data import __file__ as data_init
        with open(os.path.join(os.path.dirname(data_init), "demo_corpus.json"), encoding="utf-8") as f:
            return [r["text"] for p in json.load(f)["prompts"] for r in p["responses"]]
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise HeadError("style_texts must be a list of response texts (str)")
    return list(texts)


def _wording(w) -> Optional[WordingView]:
    if w is None or w is False:
        return None
    if w is True:
        return WordingView(**DEFAULT_WORDING)
    if isinstance(w, WordingView):
        return w
    if not isinstance(w, dict) or not set(w) <= set(DEFAULT_WORDING):
        raise HeadError(f"wording must be True, False, None or a dict with keys among "
                        f"{', '.join(DEFAULT_WORDING)}, got {w!r}")
    return WordingView(**(DEFAULT_WORDING | w))
