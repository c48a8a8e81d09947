"""The demo's world: the style corpus, a simulated user with a hidden taste, a feature cache.

Shared by `edge-omd demo` (edge_omd/apps/demo.py) and the deployment benchmark
(bench/deployment.py). No plotting, no terminal I/O here.

Simulated user: a hidden weight vector w over the corpus's interpretable style attributes
s(a) in {0,1}^4 (concise, casual, list, code); utility u(a) = w^T s(a). Shown two responses, the
user prefers a over a' with the Bradley-Terry probability sigma((u(a) - u(a')) / temperature)
(temperature 0: always the higher utility). "Matches the user's taste" means the top-ranked
response has the maximal hidden utility among the prompt's candidates; "chance" is what a
uniformly random top-1 scores: #maximisers / #candidates of a prompt, averaged over prompts.

Generalisation is measured on a fixed third of the prompts that the simulated user is never
asked about (`split_prompts`: fixed by prompt id, the same for every seed and taste).
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Optional, Sequence

import numpy as np

from edge_omd.errors import ConfigError, InvalidInputError
from edge_omd.head.binding import bind

__all__ = ["Corpus", "CorpusItem", "load_corpus", "SimulatedUser", "DEFAULT_TASTE", "parse_taste",
           "format_taste", "corpus_key", "split_prompts", "chance_top1", "FeatureCache",
           "progress_bar", "simulated_population", "POPULATION_SPREAD"]

# Prefers concise answers with code, indifferent to tone and lists. Each style attribute is only
# partly linearly decodable from a single MiniLM embedding, so even an offline logistic fit on
# every pair of the 49 asked prompts (scikit-learn, C=10, the demo's cached features) picks a best
# answer on 0.83 of the 24 held-out prompts for this taste (1.00 on the asked ones; chance 0.32),
# and on 0.62 for one that also weighs tone and lists, concise=1,code=1,casual=-0.5,list=-0.2
# (chance 0.10), which is why the default leaves tone and lists out.
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


def format_taste(taste: dict) -> str:
    """The `--taste` spelling of a taste: {'concise': 1.0, 'code': 1.0} -> 'concise=1,code=1'."""
    return ",".join(f"{k}={v:g}" for k, v in taste.items())


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


#: the demo population's users: taste = the shared taste + N(0, POPULATION_SPREAD^2) per attribute
POPULATION_SPREAD = 0.5


def simulated_population(cache, corpus: Corpus, prompts: Sequence[int], taste: dict, *,
                         users: int = 60, pairs: int = 20, seed: int = 0,
                         temperature: float = 0.25) -> list:
    """Other users of the app, as `fit_population` reads them (edge_omd/population/data.py):
    each has a taste scattered around `taste` (POPULATION_SPREAD per attribute) and preferred
    one of two random answers to `pairs` random prompts of `prompts`, each observation grouped
    by its prompt. Features come from `cache` (the corpus is embedded once)."""
    from edge_omd.population.data import make_user, text_group
    rng = np.random.default_rng([seed, 0x9090])
    out = []
    for u in range(users):
        w = {a: float(taste.get(a, 0.0)) + POPULATION_SPREAD * float(rng.normal())
             for a in corpus.attributes}
        sim = SimulatedUser(w, corpus.attributes, temperature=temperature, rng=rng)
        obs, groups = [], []
        for _ in range(pairs):
            item = corpus.items[int(prompts[rng.integers(len(prompts))])]
            a, b = rng.choice(len(item.responses), size=2, replace=False)
            utility = sim.utility(item.styles)
            win, lose = (a, b) if sim.prefers_first(utility[a], utility[b]) else (b, a)
            phi = np.asarray(cache.features(item.prompt, [item.responses[win],
                                                          item.responses[lose]]), np.float64)
            obs.append((phi[0] - phi[1], 1.0))
            groups.append(text_group(item.prompt))
        out.append(make_user(f"population-{u}", obs, groups))
    return out


def corpus_key(head, corpus: Corpus) -> str:
    """A name for the features of `corpus` under `head`: changes with any text or the head."""
    h = hashlib.sha256(bytes(head.fingerprint))
    for it in corpus.items:
        for r in it.responses:
            h.update(it.prompt.encode() + b"\0" + r.encode() + b"\1")
    return h.hexdigest()[:16]


def split_prompts(corpus: Corpus, unseen_fraction: float = 1 / 3) -> tuple[np.ndarray, np.ndarray]:
    """(asked, unseen) prompt indices: a fixed `unseen_fraction` of the prompts is held out.

    Fixed by prompt id (ordered by SHA-256 of the id), not by the run's seed, and stratified by
    the number of candidates (prompts with code variants have 12, the others 8), so the held-out
    set has the corpus's mix and adding prompts never reshuffles the existing ones much.
    """
    if not 0.0 < unseen_fraction < 1.0:
        raise ConfigError(f"unseen_fraction must be in (0, 1), got {unseen_fraction!r}")
    unseen = []
    for n in sorted({len(it.responses) for it in corpus.items}):
        group = [i for i, it in enumerate(corpus.items) if len(it.responses) == n]
        group.sort(key=lambda i: hashlib.sha256(corpus.items[i].id.encode()).digest())
        unseen += group[:int(round(unseen_fraction * len(group)))]
    unseen = np.array(sorted(unseen), dtype=np.int64)
    asked = np.setdiff1d(np.arange(len(corpus)), unseen)
    return asked, unseen


def chance_top1(user: "SimulatedUser", items: Sequence[CorpusItem]) -> float:
    """Top-1 match of a uniformly random ranking: mean over prompts of #best / #candidates."""
    rates = []
    for it in items:
        u = user.utility(it.styles)
        rates.append(np.mean(u >= u.max() - 1e-12))
    return float(np.mean(rates)) if rates else 0.0


def progress_bar(total: int, desc: str, *, enabled: bool = True, file=None):
    """A tqdm bar on stderr, drawn only when that stream is a terminal (tqdm's disable=None).

    Logs and pipes get no bar at all (no carriage returns); `enabled=False` silences it anywhere.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        if not enabled:
            return _NoBar()
        raise ConfigError("the demo's progress bar needs tqdm: pip install 'edge-omd[demo]' "
                          "(or pass --no-progress)") from None
    return tqdm(total=total, desc=desc, file=sys.stderr if file is None else file,
                disable=None if enabled else True, leave=False, dynamic_ncols=True)


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, s="", refresh=True):
        pass

    def clear(self):
        pass

    def refresh(self):
        pass

    def close(self):
        pass


class FeatureCache:
    """A FeatureHead wrapper that remembers phi(prompt, response): each text is embedded once.

    Same interface as the head (dim, fingerprint, features, features_batch, check), so a
    Personalizer can use it: the demo's ranking of every prompt stays cheap. Inside
    `with cache.uncached():` every call runs the real head again and the seconds spent in it
    are added to `head_s`: that is how the demo times what a real click costs.
    """

    def __init__(self, head):
        self.head = head
        self._memo: dict[tuple[str, str], np.ndarray] = {}
        self._live = False
        self.head_s = 0.0

    @contextmanager
    def uncached(self):
        """Within the block, features come from the head itself (timed into `head_s`)."""
        self._live = True
        try:
            yield self
        finally:
            self._live = False

    @property
    def dim(self):
        return self.head.dim

    @property
    def fingerprint(self):
        return self.head.fingerprint

    def check(self, model):
        bind(model, self.fingerprint, self.dim)

    def warm(self, items: Sequence[tuple[str, str]], batch: int = 128, progress=None) -> float:
        """Embed every new (prompt, response) pair; returns the seconds spent in the head.

        `progress`: a tqdm-like bar, advanced by the number of texts embedded.
        """
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
                progress.update(len(chunk))
        return spent

    def load(self, path, items: Sequence[tuple[str, str]]) -> bool:
        """Take the features of `items` from `path` (written by `save`); False if it is missing,
        unreadable or not of the right shape (nothing is taken then)."""
        try:
            phi = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return False
        items = list(dict.fromkeys(tuple(it) for it in items))
        if phi.dtype != np.float32 or phi.shape != (len(items), int(self.dim)) \
                or not np.all(np.isfinite(phi)):
            return False
        self._memo.update(zip(items, phi))
        return True

    def save(self, path, items: Sequence[tuple[str, str]]) -> None:
        """Write the features of `items` (all embedded already) to `path`, atomically."""
        import os
        from pathlib import Path

        items = list(dict.fromkeys(tuple(it) for it in items))
        phi = np.stack([self._memo[it] for it in items]).astype(np.float32)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, phi, allow_pickle=False)
        os.replace(tmp, path)

    def features_batch(self, items):
        items = [tuple(it) for it in items]
        if self._live:
            t0 = time.perf_counter()
            phi = np.asarray(self.head.features_batch(items), np.float32)
            self.head_s += time.perf_counter() - t0
            return phi
        self.warm(items)
        return np.stack([self._memo[it] for it in items])

    def features(self, prompt, responses):
        if isinstance(responses, str) or not isinstance(prompt, str):
            raise InvalidInputError("features(prompt: str, responses: list[str])")
        responses = list(responses)
        if not responses:
            raise InvalidInputError("responses is empty")
        return self.features_batch([(prompt, r) for r in responses])
