"""A tiny deterministic stand-in for FeatureHead: hashed bag of words, L2-normalised.

phi(x, a) = normalise( sum_{w in a} s(w) e_{h(w)} + 0.25 sum_{w in x} s(w) e_{h(w)} ), with h, s
from BLAKE2b of the word, so responses sharing words have correlated features. No torch, no onnx.
"""
import hashlib
import re

import numpy as np

from edge_omd.errors import InvalidInputError
from edge_omd.head.binding import bind

_WORD = re.compile(r"[a-z0-9]+")


class FakeHead:
    def __init__(self, dim=64, salt=b"fake-head-v1"):
        self.dim = int(dim)
        self.fingerprint = hashlib.sha256(salt + self.dim.to_bytes(4, "little")).digest()
        self.provider = "fake"
        self.manifest = {"d": self.dim, "architecture": "fake-hashed-bow"}
        self.calls = 0

    def _add(self, v, text, scale):
        for w in _WORD.findall(text.lower()):
            h = hashlib.blake2b(w.encode(), digest_size=8).digest()
            v[int.from_bytes(h[:4], "little") % self.dim] += scale * (1.0 if h[4] & 1 else -1.0)

    def _phi(self, prompt, response):
        v = np.zeros(self.dim)
        self._add(v, response, 1.0)
        self._add(v, prompt, 0.25)
        n = np.linalg.norm(v)
        if n == 0:
            v[0], n = 1.0, 1.0
        return (v / n).astype(np.float32)

    def features(self, prompt, responses):
        if not isinstance(prompt, str) or isinstance(responses, str) or not list(responses):
            raise InvalidInputError("features(prompt: str, responses: list[str])")
        return self.features_batch([(prompt, r) for r in responses])

    def features_batch(self, items):
        self.calls += 1
        return np.stack([self._phi(p, r) for p, r in items])

    def check(self, model):
        bind(model, self.fingerprint, self.dim)     # the SDK's one binding check, not a copy
