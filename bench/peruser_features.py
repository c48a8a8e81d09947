"""The features of the per-user benchmark (bench/peruser.py): a function [(prompt, response)]
-> Phi (n, d), chosen by a spec (`feature_matrix`):

  minilm           the demo's MiniLM head (prompt + response, mean-pooled), main's default
  minilm_response  the same head on the response alone (prompt left out)
  X+style          X with the style block (peruser_world.style_raw) standardised on the train
                   answers and concatenated (`style_weight`: the block's norm; X+style*W: W)
  oracle           the hidden properties themselves (tests only: the protocol can succeed)

Embeddings are cached in bench/cache/peruser-<features>-<key>.npy (`embed`).
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Callable, Optional, Sequence

import numpy as np

from edge_omd_bench import peruser_world as pw

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE_DIR = os.path.join(HERE, "cache")

FeatureFn = Callable[[Sequence[tuple[str, str]]], np.ndarray]

def open_head():
    """The MiniLM head without views (exported once into the cache if missing): the embedding
    the benchmarks measure and append views to (bench/views.py)."""
    from edge_omd.apps.demo import ensure_demo_head
    return ensure_demo_head(views="none", log=lambda m: print(m, file=sys.stderr))


def minilm(span: str = "prompt_response", head=None) -> FeatureFn:
    """MiniLM features of (prompt, response) pairs; span "response" leaves the prompt out."""
    state = {"head": head}

    def fn(pairs):
        if state["head"] is None:
            state["head"] = open_head()
        h = state["head"]
        items = [(p if span == "prompt_response" else "", r) for p, r in pairs]
        return np.concatenate([np.asarray(h.features_batch(items[i:i + 64]), np.float32)
                               for i in range(0, len(items), 64)])

    def key():
        if state["head"] is None:
            state["head"] = open_head()
        return f"minilm_{span}-{bytes(state['head'].fingerprint).hex()[:12]}"
    fn.cache_key = key
    return fn


def oracle_features(pairs) -> np.ndarray:
    """The hidden properties (and log word count) of the responses: what a perfect head would
    give for the users of `PopulationConfig(p_target=0, idiosyncratic=0)`, whose utility is
    linear in these."""
    S, lw = pw.hidden_properties([r for _, r in pairs])
    X = np.column_stack([S, (lw - lw.mean()) / max(lw.std(), 1e-12)])
    return X / math.sqrt(X.shape[1])


def embed(world: pw.World, fn: FeatureFn, *, cache_dir: Optional[str] = CACHE_DIR, log=print) -> np.ndarray:
    """fn(world.pairs), cached on disk when fn has a `cache_key()`."""
    key = getattr(fn, "cache_key", None)
    path = None
    if key is not None and cache_dir:
        path = os.path.join(cache_dir, f"peruser-{key()}-{world.key()}.npy")
        if os.path.exists(path):
            X = np.load(path)
            if X.shape[0] == len(world.pairs):
                return X
    t0 = time.perf_counter()
    X = np.asarray(fn(world.pairs), np.float32)
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            np.save(f, X)
        os.replace(tmp, path)
        log(f"  embedded {len(world.pairs)} texts with {key()} in {time.perf_counter() - t0:.1f} s -> {path}")
    return X


def feature_matrix(world: pw.World, spec: str, *, style_weight: float = 1.0, head=None,
                   cache_dir: Optional[str] = CACHE_DIR, log=print) -> np.ndarray:
    """Phi for every answer of the world from a spec "minilm", "minilm_response", "oracle",
    optionally "+style"."""
    base, _, extra = spec.partition("+")
    if base == "minilm":
        X = embed(world, minilm("prompt_response", head), cache_dir=cache_dir, log=log)
    elif base == "minilm_response":
        X = embed(world, minilm("response", head), cache_dir=cache_dir, log=log)
    elif base == "oracle":
        X = oracle_features(world.pairs).astype(np.float32)
    else:
        raise SystemExit(f"unknown features {spec!r}")
    if extra == "style" or extra.startswith("style*"):
        w = float(extra[6:]) if extra.startswith("style*") else style_weight
        train_texts = [world.texts[r] for i in world.train for r in world.rows(i)]
        X = np.hstack([X, pw.StyleScaler.fit(train_texts, w)(world.texts)]).astype(np.float32)
    elif extra:
        raise SystemExit(f"unknown feature block {extra!r}")
    return np.ascontiguousarray(X, np.float32)
