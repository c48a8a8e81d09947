"""The demo's world: the style corpus, a simulated user with a hidden taste, a feature cache.

Shared by `edge-omd demo` (edge_omd/demo.py) and the deployment benchmark
(bench/deployment.py). No plotting, no terminal I/O here.

Simulated user: a hidden weight vector w over the corpus's interpretable style attributes
s(a) in {0,1}^4 (concise, casual, list, code); utility u(a) = w^T s(a). Shown two responses, the
user prefers a over a' with the Bradley-Terry probability sigma((u(a) - u(a')) / temperature)
(temperature 0: always the higher utility). "Matches the user's taste" means the top-ranked
response has the maximal hidden utility among the prompt's candidates.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from importlib import resources
from typing import Optional, Sequence

import numpy as np

from edge_omd.errors import ConfigError, InvalidInputError

__all__ = ["Corpus", "CorpusItem", "load_corpus", "SimulatedUser", "DEFAULT_TASTE", "parse_taste",
           "FeatureCache", "ProgressBar"]

# Prefers concise answers with code, indifferent to tone and lists. (Every attribute is only
# ~80-87% linearly decodable from a single MiniLM embedding, so a taste that also weighs tone
# and lists caps the top-1 match on unseen prompts near 0.5 even for an offline logistic fit on
# all pairs; with this one the offline ceiling is ~0.75 on unseen prompts and 1.0 on seen ones.)
DEFAULT_TASTE = {"concise": 1.0, "code": 1.0, "casual": 0.0, "list": 0.0}


@dataclass(frozen=True)
class CorpusItem:
    id: str
    prompt: str
    responses: tuple[str, ...]
    styles: np.ndarray            # (n, n_attributes) float64 in {0, 1}


@dataclass(frozen=True)
class Corpus:
    attributes: tuple[str, ...]
    items: tuple[CorpusItem, ...]

    def __len__(self):
        return len(self.items)


def load_corpus(path=None) -> Corpus:
    """The demo corpus shipped as package data (edge_omd/data/demo_corpus.json), or `path`."""
    if path is None:
        text = resources.files("edge_omd.data").joinpath("demo_corpus.json").read_text("utf-8")
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    raw = json.loads(text)
    attrs = tuple(raw["attributes"])
    items = []
    for p in raw["prompts"]:
        resp = tuple(r["text"] for r in p["responses"])
        styles = np.array([[float(r["style"][a]) for a in attrs] for r in p["responses"]])
        items.append(CorpusItem(p["id"], p["prompt"], resp, styles))
    return Corpus(attrs, tuple(items))


def parse_taste(spec: Optional[str], attributes: Sequence[str]) -> dict:
    """'concise=1,code=1,casual=-0.5' -> dict; None -> DEFAULT_TASTE. Unknown names refused."""
    if spec is None:
        return dict(DEFAULT_TASTE)
    taste = {a: 0.0 for a in attributes}
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in taste:
            raise ConfigError(f"bad taste {part!r}: write name=weight with name in "
                              f"{', '.join(attributes)}, e.g. concise=1,code=1,casual=-0.5")
        try:
            taste[name] = float(value)
        except ValueError:
            raise ConfigError(f"bad taste weight {value!r} for {name!r}") from None
    return taste


class SimulatedUser:
    """A user with a hidden linear taste over style attributes (see the module docstring)."""

    def __init__(self, taste: dict, attributes: Sequence[str], *, temperature: float = 0.25,
                 rng: Optional[np.random.Generator] = None):
        unknown = set(taste) - set(attributes)
        if unknown:
            raise ConfigError(f"taste names {sorted(unknown)} are not corpus attributes "
                              f"{list(attributes)}")
        if not temperature >= 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature!r}")
        self.w = np.array([float(taste.get(a, 0.0)) for a in attributes])
        self.temperature = float(temperature)
        self.rng = np.random.default_rng() if rng is None else rng

    def utility(self, styles: np.ndarray) -> np.ndarray:
        return np.asarray(styles, np.float64) @ self.w

    def prefers_first(self, u_a: float, u_b: float) -> bool:
        """Bradley-Terry answer to 'a or b?' (True: a)."""
        if self.temperature == 0.0:
            return bool(u_a > u_b or (u_a == u_b and self.rng.random() < 0.5))
        p = 1.0 / (1.0 + np.exp(-(u_a - u_b) / self.temperature))
        return bool(self.rng.random() < p)


class FeatureCache:
    """A FeatureHead wrapper that remembers phi(prompt, response): each text is embedded once.

    Same interface as the head (dim, fingerprint, features, features_batch, check), so a
    Personalizer can use it; the demo times updates apart from the embedding this way.
    """

    def __init__(self, head):
        self.head = head
        self._memo: dict[tuple[str, str], np.ndarray] = {}

    @property
    def dim(self):
        return self.head.dim

    @property
    def fingerprint(self):
        return self.head.fingerprint

    def check(self, model):
        return self.head.check(model)

    def warm(self, items: Sequence[tuple[str, str]], batch: int = 32,
             progress: Optional["ProgressBar"] = None) -> float:
        """Embed every new (prompt, response) pair; returns the seconds spent in the head."""
        todo = list(dict.fromkeys(it for it in items if it not in self._memo))
        spent = 0.0
        for s in range(0, len(todo), batch):
            chunk = todo[s:s + batch]
            t0 = time.perf_counter()
            phi = np.asarray(self.head.features_batch(chunk), np.float32)
            spent += time.perf_counter() - t0
            for it, v in zip(chunk, phi):
                self._memo[it] = v
            if progress is not None:
                progress.update(min(s + batch, len(todo)))
        return spent

    def features_batch(self, items):
        items = [tuple(it) for it in items]
        self.warm(items)
        return np.stack([self._memo[it] for it in items])

    def features(self, prompt, responses):
        if isinstance(responses, str) or not isinstance(prompt, str):
            raise InvalidInputError("features(prompt: str, responses: list[str])")
        responses = list(responses)
        if not responses:
            raise InvalidInputError("responses is empty")
        return self.features_batch([(prompt, r) for r in responses])


class ProgressBar:
    """A one-line progress bar on stderr (\\r-updated); silent when disabled."""

    def __init__(self, total: int, label: str = "", *, width: int = 28, enabled: bool = True,
                 stream=None):
        self.total, self.label, self.width = max(int(total), 1), label, width
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.suffix = ""

    def update(self, done: int, suffix: str = "") -> None:
        if not self.enabled:
            return
        self.suffix = suffix or self.suffix
        filled = int(self.width * min(done, self.total) / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} {self.suffix}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (len(self.label) + self.width + 60) + "\r")
            self.stream.flush()
