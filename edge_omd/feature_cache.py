"""The Personalizer's memory of features it embedded: phi(prompt, response) of the answers
embedded last, so `prefer` / `thumb` on answers that `rank` / `pair_to_show` / `score` just
embedded cost no second forward pass, and the candidates offered last per prompt (the reference
of a thumb given without `shown`).

Bounded by `max_bytes` (default 4 MiB, least recently used out first); keyed by the head's
fingerprint, the prompt and the response (16-byte BLAKE2b digests: the texts are not kept).
In memory only: nothing here is persisted.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable, Optional

import numpy as np

__all__ = ["FeatureCache", "DEFAULT_FEATURE_CACHE_BYTES"]

#: Default bound of the feature cache (features + 128 bytes per entry): 2,700 answers at
#: d=384 float32, 250 at d=4096.
DEFAULT_FEATURE_CACHE_BYTES = 4 << 20
#: Prompts whose offered candidates (rank / score / pair_to_show) thumb() remembers
_MAX_OFFERED = 32
_ENTRY_OVERHEAD = 128


class FeatureCache:
    """Features of recently embedded (prompt, response) pairs, least recently used out first.

    Keys are 16-byte BLAKE2b digests of (head fingerprint, prompt, response), so the texts are
    not kept; each entry costs its features + _ENTRY_OVERHEAD bytes against `max_bytes`."""

    def __init__(self, fingerprint: bytes, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._fp = bytes(fingerprint)[:64]
        self._d: OrderedDict = OrderedDict()
        self.nbytes = 0
        self.hits = self.misses = 0
        # prompt digest -> (response keys, float64 sum of their features) of the candidates
        # offered last for that prompt (`offer`); at most _MAX_OFFERED prompts, kept even when
        # the feature cache is disabled (d float64 + 16 bytes a response each)
        self._offered: OrderedDict = OrderedDict()

    def _prompt_hash(self, prompt: str):
        h = hashlib.blake2b(digest_size=16, key=self._fp)
        pb = prompt.encode("utf-8", "surrogatepass")
        h.update(len(pb).to_bytes(8, "little") + pb)
        return h

    def offer(self, prompt: str, keys: list[bytes], phi: np.ndarray) -> None:
        """Remember the candidates `keys` (features `phi`, (n, d)) the assistant had for
        `prompt` (rank / score: all of them; pair_to_show: the two shown). Replaces the
        prompt's previous list."""
        k = self._prompt_hash(prompt).digest()
        self._offered.pop(k, None)
        if len(keys) >= 2:
            self._offered[k] = (tuple(keys), phi.astype(np.float64).sum(axis=0))
            while len(self._offered) > _MAX_OFFERED:
                self._offered.popitem(last=False)

    def others_mean(self, prompt: str, key: bytes, phi: np.ndarray) -> Optional[np.ndarray]:
        """Mean feature (float64) of the candidates offered last for `prompt` other than the
        response `key` (features `phi`, (d,)), or None when that list does not hold it or
        holds nothing else."""
        entry = self._offered.get(self._prompt_hash(prompt).digest())
        if entry is None or key not in entry[0]:
            return None
        keys, total = entry
        same = keys.count(key)
        if same == len(keys):
            return None
        return (total - same * phi.astype(np.float64)) / (len(keys) - same)

    def keys(self, prompt: str, responses: list[str]) -> list[bytes]:
        h = self._prompt_hash(prompt)
        out = []
        for r in responses:
            g = h.copy()
            g.update(r.encode("utf-8", "surrogatepass"))
            out.append(g.digest())
        return out

    def get(self, key):
        row = self._d.get(key)
        if row is not None:
            self._d.move_to_end(key)
        return row

    def put(self, key, row: np.ndarray) -> None:
        if self.max_bytes <= 0:
            return
        cost = row.nbytes + _ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return
        old = self._d.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes + _ENTRY_OVERHEAD
        row = np.array(row, copy=True)
        row.flags.writeable = False
        self._d[key] = row
        self.nbytes += cost
        while self.nbytes > self.max_bytes:
            _k, v = self._d.popitem(last=False)
            self.nbytes -= v.nbytes + _ENTRY_OVERHEAD

    def clear(self):
        self._d.clear()
        self._offered.clear()
        self.nbytes = 0

    def features(self, prompt: str, responses: list[str],
                 embed: Callable[[str, list[str]], np.ndarray], dim: int) -> np.ndarray:
        """phi(prompt, a) for each response, (n, d): from the cache where it has them, one
        `embed(prompt, missing)` call for the rest."""
        if self.max_bytes <= 0:
            return embed(prompt, responses)
        keys = self.keys(prompt, responses)
        rows = [self.get(k) for k in keys]
        missing = [i for i, r in enumerate(rows) if r is None]
        if missing:
            self.misses += len(missing)
            new = embed(prompt, [responses[i] for i in missing])
            for j, i in enumerate(missing):
                rows[i] = new[j]
                self.put(keys[i], new[j])
        self.hits += len(responses) - len(missing)
        out = np.empty((len(responses), dim), dtype=np.result_type(*[r.dtype for r in rows]))
        for i, r in enumerate(rows):
            out[i] = r
        return out
