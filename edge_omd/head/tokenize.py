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
  side; attention_mask is 1 on real tokens. The graph gives the same features for either side.
"""
from __future__ import annotations

import os

import numpy as np

from edge_omd.head.manifest import PROMPT_SLOT, RESPONSE_SLOT
from edge_omd.errors import HeadError, InvalidInputError


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
    except Exception as e:  # tokenizers raises a bare Exception on bad JSON
        raise HeadError(f"tokenizer file {path} is corrupt ({e}); re-export the head") from e
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
        self._pre, rest = template.split(PROMPT_SLOT, 1)
        self._mid, self._post = rest.split(RESPONSE_SLOT, 1)
        self.max_length = int(max_length)
        self.add_special_tokens = bool(add_special_tokens)
        self.pad_token_id = int(pad_token_id)
        if padding_side not in ("left", "right"):
            raise InvalidInputError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.padding_side = padding_side

    def render(self, prompt: str, response: str) -> str:
        """The exact text that is tokenized for one pair."""
        return self._pre + prompt + self._mid + response + self._post

    def encode_one(self, prompt: str, response: str, truncate: bool = True) -> tuple[list[int], bool]:
        """Token ids of one pair and whether they were truncated (see the module contract)."""
        ids, _, cut = self.encode_span(prompt, response, truncate)
        return ids, cut

    def encode_span(self, prompt: str, response: str,
                    truncate: bool = True) -> tuple[list[int], int, bool]:
        """(ids, span_start, truncated): the pooled response span is ids[span_start:]."""
        text = self.render(prompt, response)
        enc = self.tokenizer.encode(text, add_special_tokens=self.add_special_tokens)
        ids = list(enc.ids)
        if not ids:
            raise InvalidInputError("the prompt/response pair produced no tokens (empty text and a "
                                    "template without special tokens); pass non-empty text")
        p0 = len(self._pre)                                   # prompt start (chars)
        r0 = len(self._pre) + len(prompt) + len(self._mid)    # response start
        r1 = r0 + len(response)                               # response end
        offs, special = enc.offsets, enc.special_tokens_mask
        n = len(ids)
        h = 0
        while h < n and ((special[h] and offs[h] == (0, 0)) or (offs[h][1] <= p0 and offs[h][1] > 0)):
            h += 1
        t = n
        while t > h and ((special[t - 1] and offs[t - 1] == (0, 0)) or offs[t - 1][0] >= r1):
            t -= 1
        s = h
        while s < t and offs[s][1] <= r0:
            s += 1
        if n <= self.max_length:
            return ids, min(s, n - 1), False
        if not truncate:
            raise InvalidInputError(f"the pair has {len(ids)} tokens, over this head's max_length "
                                    f"{self.max_length}; shorten it or pass truncate=True")
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
