"""Text -> padded token arrays for a feature head: template, truncation, padding.

Contract (the exporter's parity check runs this exact code, so Python and the graph agree):

* text = template with `{prompt}` and `{response}` replaced (plain string splicing, not
  `str.format`, so braces in user text or in a chat template are left alone);
* ids = tokenizer.encode(text, add_special_tokens=manifest["add_special_tokens"]); identical to
  the Hugging Face tokenizer on the same text when no truncation is needed;
* truncation, when len(ids) > max_length, keeps the END of the response: tokens are split into
  head (leading special tokens and template text before the prompt), body (prompt .. response)
  and tail (template text after the response and trailing special tokens); head and tail are
  kept and the body loses tokens from its start, so the prompt is cut first and the response
  only when the prompt is gone. The last token (the decoder's feature) is always kept;
* the response span (heads with `pooling` "response_mean", see `edge_omd.head.manifest`): the
  tokens from the first token that ends inside the response (char offset > the response start)
  to the end of the row, i.e. the response tokens plus the template's tail and trailing special
  tokens (`[SEP]` for BERT, `<|im_end|>` etc. for chat templates), so an empty response still
  pools something. Truncation keeps the span right: the kept body is the END of the body, so
  the span start moves left by what was cut and is clipped at the head. When the span would be
  empty (no response tokens and no tail) it is the last token. The graph input `pool_mask` is 1
  on the span (a subset of the attention mask); attention still sees the whole row;
* padding to the batch's longest row (or to the static shape of a QDQ graph) on the manifest's
  side; attention_mask is 1 on real tokens. The graph gives the same features for either side;
* a lone surrogate (U+D800..U+DFFF alone: a str Python allows but UTF-8 cannot hold) in the
  prompt, the response or the template is tokenized as U+FFFD, the replacement character, one
  for one (offsets unchanged); the Java TextEncoder does the same. Text cut from a UI in the
  middle of a surrogate pair is then still learned from, as the same features on every side.

Long texts (`_Cut`): only what max_length can keep is tokenized. When the body is longer than a
window of characters, the middle of the body text[q1:q2] is left out, where q1 (at or after the
prompt start) and q2 are JUNCTIONS: an ASCII letter or digit followed by a space. For the
tokenizers `_Cut.safe` accepts (normalizers that act per character or only at the text's ends,
a first pre-tokenizer that always splits at such a junction, no added token that contains a
space or strips one), the tokens of text[:q1] + text[q2:] are the tokens of text[:q1] followed
by those of text[q2:], exactly as in the whole text, offsets shifted. Truncation keeps the head,
the tail and the LAST budget body tokens; so when more than budget body tokens lie after q1 in
the cut text (checked on its tokens, else the window doubles), every kept token, the span start
and the truncated flag equal the whole text's. Texts that fit are never cut: their tokens (and
so their features) are those of the whole text. Other tokenizers tokenize the whole text.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

from edge_omd.head.manifest import PROMPT_SLOT, RESPONSE_SLOT
from edge_omd.errors import HeadError, InvalidInputError

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def scalar_text(s: str) -> str:
    """`s` with each lone surrogate replaced by U+FFFD (module contract): text UTF-8 can hold."""
    return _LONE_SURROGATE.sub("\ufffd", s)


def _panic(e: BaseException) -> bool:
    """A Rust panic inside `tokenizers` (pyo3's PanicException derives from BaseException, so
    `except Exception` misses it; e.g. a split regex over its backtracking limit)."""
    return type(e).__name__ == "PanicException"


def load_tokenizer(path: str):
    """Load a `tokenizers.Tokenizer` from tokenizer.json with its own truncation/padding off."""
    try:
        from tokenizers import Tokenizer
    except ImportError as e:  # pragma: no cover - depends on the install
        raise HeadError("the feature head needs the `tokenizers` package: "
                        "pip install 'edge-omd[head]'") from e
    if not os.path.isfile(path):
        raise HeadError(f"tokenizer file {path} is missing; re-export the head")
    try:
        tok = Tokenizer.from_file(path)
    except BaseException as e:  # a bare Exception on bad JSON; PanicException (BaseException)
        if not (isinstance(e, Exception) or _panic(e)):
            raise
        raise HeadError(f"tokenizer file {path} is corrupt ({type(e).__name__}: "
                        f"{str(e)[:300]}); re-export the head") from None
    # We truncate and pad ourselves (response-end truncation, manifest padding side).
    tok.no_truncation()
    tok.no_padding()
    return tok


class TextEncoder:
    """Turns (prompt, response) pairs into `(input_ids, attention_mask)` int64 arrays."""

    def __init__(self, tokenizer, template: str, max_length: int, add_special_tokens: bool,
                 pad_token_id: int, padding_side: str = "right"):
        self.tokenizer = tokenizer
        self.template = template
        self._pre, rest = scalar_text(template).split(PROMPT_SLOT, 1)
        self._mid, self._post = rest.split(RESPONSE_SLOT, 1)
        self.max_length = int(max_length)
        self.add_special_tokens = bool(add_special_tokens)
        self.pad_token_id = int(pad_token_id)
        if padding_side not in ("left", "right"):
            raise InvalidInputError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.padding_side = padding_side
        self._cut = _Cut(tokenizer, self.max_length)

    def render(self, prompt: str, response: str) -> str:
        """The exact text that is tokenized for one pair (lone surrogates as U+FFFD)."""
        return self._pre + scalar_text(prompt) + self._mid + scalar_text(response) + self._post

    def encode_one(self, prompt: str, response: str, truncate: bool = True) -> tuple[list[int], bool]:
        """Token ids of one pair and whether they were truncated (see the module contract)."""
        ids, _, cut = self.encode_span(prompt, response, truncate)
        return ids, cut

    def encode_span(self, prompt: str, response: str,
                    truncate: bool = True) -> tuple[list[int], int, bool]:
        """(ids, span_start, truncated): the pooled response span is ids[span_start:]."""
        text = self.render(prompt, response)
        p0 = len(self._pre)                                   # prompt start (chars)
        r0 = len(self._pre) + len(prompt) + len(self._mid)    # response start
        r1 = r0 + len(response)                               # response end
        if r1 - p0 > self._cut.window:
            done = self._cut.encode(self, text, p0, r0, r1, truncate)
            if done is not None:
                return done
        return self._select(self._encode(text), p0, r0, r1, truncate)

    def _encode(self, text: str):
        try:
            return self.tokenizer.encode(text, add_special_tokens=self.add_special_tokens)
        except BaseException as e:
            if not (isinstance(e, Exception) or _panic(e)):
                raise
            raise HeadError(f"the head's tokenizer failed on a text of {len(text)} characters "
                            f"({type(e).__name__}: {str(e)[:300]}); the tokenizer.json is "
                            "unusable on such text (a split regex beyond its backtracking "
                            "limit?): re-export the head") from None

    def _select(self, enc, p0: int, r0: int, r1: int, truncate: bool,
                at_least: bool = False) -> tuple[list[int], int, bool]:
        """Head, body and tail of one encoding (prompt start p0, response r0..r1 in its text's
        characters) and the truncation of the module contract. at_least: the encoding is of a
        cut text, so the whole pair has at least as many tokens (said in a refusal)."""
        ids = list(enc.ids)
        if not ids:
            raise InvalidInputError("the prompt/response pair produced no tokens (empty text and a "
                                    "template without special tokens); pass non-empty text")
        offs, special = enc.offsets, enc.special_tokens_mask
        h, t, s = _parts(offs, special, p0, r0, r1)
        n = len(ids)
        if n <= self.max_length:
            return ids, min(s, n - 1), False
        if not truncate:
            raise InvalidInputError(f"the pair has {'at least ' if at_least else ''}{n} tokens, "
                                    f"over this head's max_length {self.max_length}; shorten it "
                                    "or pass truncate=True")
        budget = self.max_length - h - (n - t)
        if budget < 1:
            raise InvalidInputError(f"the template alone takes {h + n - t} tokens, leaving no room "
                                    f"for text within max_length {self.max_length}")
        kept = ids[:h] + ids[t - budget:t] + ids[t:]
        return kept, min(h + max(s - (t - budget), 0), len(kept) - 1), True

    def encode_batch(self, pairs: list[tuple[str, str]], truncate: bool = True,
                     pad_to: int | None = None, *, pool: bool = False):
        """Pad the pairs into `(ids, mask)` of shape (n, T); returns also how many were truncated.

        T is the longest row, or `pad_to` when given (static-shape graphs). With `pool=True`
        returns `(ids, mask, pool_mask, n_truncated)`, pool_mask marking the response span.
        """
        rows, starts, n_trunc = [], [], 0
        for prompt, response in pairs:
            ids, start, cut = self.encode_span(prompt, response, truncate)
            rows.append(ids)
            starts.append(start)
            n_trunc += cut
        longest = max(len(r) for r in rows)
        if pad_to is not None and pad_to < longest:
            raise HeadError(f"a row has {longest} tokens but the graph takes {pad_to} (static "
                            f"shape) while max_length is {self.max_length}; the head's manifest "
                            "is inconsistent: re-export the head")
        T = pad_to if pad_to is not None else longest
        ids = np.full((len(rows), T), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), T), dtype=np.int64)
        pmask = np.zeros((len(rows), T), dtype=np.int64)
        for i, r in enumerate(rows):
            off = 0 if self.padding_side == "right" else T - len(r)
            ids[i, off:off + len(r)] = r
            mask[i, off:off + len(r)] = 1
            pmask[i, off + starts[i]:off + len(r)] = 1
        if pool:
            return ids, mask, pmask, n_trunc
        return ids, mask, n_trunc


def _parts(offs, special, p0: int, r0: int, r1: int) -> tuple[int, int, int]:
    """(h, t, s): ids[:h] is the head (leading special tokens and template text before the
    prompt), ids[t:] the tail (template text after the response and trailing special tokens),
    s the first token that ends inside the response (module contract)."""
    n = len(offs)
    h = 0
    while h < n and ((special[h] and offs[h] == (0, 0)) or (offs[h][1] <= p0 and offs[h][1] > 0)):
        h += 1
    t = n
    while t > h and ((special[t - 1] and offs[t - 1] == (0, 0)) or offs[t - 1][0] >= r1):
        t -= 1
    s = h
    while s < t and offs[s][1] <= r0:
        s += 1
    return h, t, s


# ---------------------------------------------------------------- long texts
#: The split regexes of the Llama 3 and Qwen2 tokenizers (pre_tokenizer Split, then ByteLevel).
#: Under each, no match holds a letter or digit followed by a space (a space only starts a match
#: or is all of it with other whitespace) and none looks behind its start: a junction always
#: ends a match, and matching after it depends on nothing before it.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_SPLIT_PATTERNS = (LLAMA3_SPLIT, QWEN2_SPLIT)
#: Normalizers that map each character on its own (NFC/NFKC compose only onto a preceding
#: starter, and a space composes with nothing) or act only at the text's ends.
_LOCAL_NORMALIZERS = {"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD",
                      "StripAccents", "Strip", "Prepend"}
_POST_PROCESSORS = {"TemplateProcessing", "BertProcessing", "RobertaProcessing", "ByteLevel"}
_JUNCTION = re.compile("[A-Za-z0-9] ")


def _junction_char(normalizer) -> str | None:
    """What the junction's space is after the normalizer (its letter or digit stays one), or
    None when the normalizer is not known to act per character."""
    space = " "
    steps = [normalizer] if normalizer is not None else []
    while steps:
        n = steps.pop(0)
        kind = n.get("type")
        if kind == "Sequence":
            steps = list(n.get("normalizers", [])) + steps
        elif kind == "Replace":
            pattern, content = n.get("pattern", {}).get("String"), n.get("content")
            if not (isinstance(pattern, str) and len(pattern) == 1 and isinstance(content, str)
                    and len(content) == 1) or pattern.isalnum() or content.isalnum():
                return None
            if pattern == space:
                space = content
        elif kind not in _LOCAL_NORMALIZERS:
            return None
    return space


def _splits_junction(pre, space: str) -> bool:
    """Whether this pre-tokenizer always splits between an ASCII letter or digit and `space`
    (the junction's space after normalization), whatever the text around it."""
    kind = pre.get("type")
    if kind in ("BertPreTokenizer", "Whitespace", "WhitespaceSplit"):
        return space == " "
    if kind == "Metaspace":
        return pre.get("split", True) is True and space in (" ", pre.get("replacement"))
    if kind == "ByteLevel":   # its regex is GPT-2's: a space only starts a match or is all of it
        return pre.get("use_regex", True) is True and space == " "
    if kind == "Split":
        return (pre.get("pattern", {}).get("Regex") in _SPLIT_PATTERNS and space == " "
                and pre.get("behavior") in ("Isolated", "Removed") and not pre.get("invert"))
    return False


class _Cut:
    """Tokenize only what max_length can keep (module docstring, "Long texts")."""

    def __init__(self, tokenizer, max_length: int):
        self.window = 8 * max_length + 256   # characters of body kept at the first try
        self.safe = False
        try:   # each component's own JSON (the whole tokenizer's can be megabytes)
            normalizer, pre, post = (None if c is None else json.loads(c.__getstate__())
                                     for c in (tokenizer.normalizer, tokenizer.pre_tokenizer,
                                               tokenizer.post_processor))
            added = list(tokenizer.get_added_tokens_decoder().values())
            dropout = getattr(tokenizer.model, "dropout", None)
        except Exception:     # not a `tokenizers` Tokenizer: never cut
            return
        space = _junction_char(normalizer)
        pre = pre or {}
        first = pre.get("pretokenizers", [{}])[0] if pre.get("type") == "Sequence" else pre
        post = post or {"type": "TemplateProcessing"}
        posts = post.get("processors", []) if post.get("type") == "Sequence" else [post]
        self.safe = (space is not None and _splits_junction(first, space)
                     and all(p.get("type") in _POST_PROCESSORS for p in posts)
                     and not dropout
                     and not any(a.rstrip or a.lstrip
                                 or any(c.isspace() or c == space for c in a.content)
                                 for a in added))

    def encode(self, enc: TextEncoder, text: str, p0: int, r0: int, r1: int, truncate: bool):
        """enc._select of the whole text, computed from a cut text; None when no cut is proven
        to give it (then the caller tokenizes the whole text)."""
        if not self.safe:
            return None
        first = _JUNCTION.search(text, p0, r1)
        if first is None or first.end() - 1 > p0 + self.window:
            return None   # text[:q1] would be long and tokenized at every try: not worth it
        q1 = first.end() - 1          # > p0: a zero-width token at q1 cannot join the head
        window = self.window
        while window < r1 - p0:
            q2 = None
            for m in _JUNCTION.finditer(text, max(q1, r1 - 2 * window), r1 - window):
                q2 = m.end() - 1
            if q2 is not None and q2 > q1:
                got = self._try(enc, text, q1, q2, p0, r0, r1, truncate)
                if got is not None:
                    return got
            window *= 2
        return None

    @staticmethod
    def _try(enc: TextEncoder, text: str, q1: int, q2: int, p0: int, r0: int, r1: int,
             truncate: bool):
        """text[:q1] + text[q2:] tokenized, and its selection if it provably equals the whole
        text's: more than max_length tokens in all, and the budget of body tokens that
        truncation keeps lies after q1 (then also after q2 in the whole text)."""
        cut = q2 - q1
        r0c = r0 if r0 <= q1 else max(q1, r0 - cut)
        e = enc._encode(text[:q1] + text[q2:])
        n = len(e.ids)
        if n <= enc.max_length:
            return None
        offs = e.offsets
        h, t, _ = _parts(offs, e.special_tokens_mask, p0, r0c, r1 - cut)
        after = t
        while after > h and offs[after - 1][1] > q1:
            after -= 1
        if t - after <= enc.max_length - h - (n - t):
            return None
        return enc._select(e, p0, r0c, r1 - cut, truncate, at_least=True)
