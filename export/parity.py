"""Export-time parity: the exported head (run by the real runner) against PyTorch.

Reference: the Hugging Face base model in fp32, one text at a time (no padding, HF's own
positions and mask), pooled in torch (last token / mean over every token / mean over the
response span ids[start:], see edge_omd/head/tokenize.py), then L2 if normalize. Candidate:
`edge_omd.FeatureHead` on the exported folder, CPU provider, padded batches on the right AND on
the left. So the check covers tokenizer export, template splicing, padding, the in-graph mask
and pooling, and the conversion of the variant, not only the graph.

Reported (manifest "parity"): max_abs_err (max over texts/dims, both padding sides), cosine
(min and mean over texts of cos(ref, head)), reward ranking agreement (mean Spearman rho over
16 fixed random reward directions theta ~ N(0, I), ranking r_i = <theta, phi_i> over the
texts), and whether the HF tokenizer gave the same ids as the runner.

Bounds: fp32 needs max_abs_err <= 1e-4 * max(1, max|ref|); the reduced-precision variants need
min cosine >= MIN_COSINE[variant] (fp16 0.99, int8 0.95, qdq 0.90).
The int8 bound is a broken-conversion guard for ANY architecture, on 12 texts, not the
quality bar: measured min cosine 0.9898 (all-MiniLM-L6-v2) and 0.9965 (the tests' random
Qwen3), while the failures it must stop sit far below (0.4942: 8-bit weights saturating
onnxruntime's u8s8 kernel on an x86 CPU without VNNI; 0.889: per-tensor weights on MiniLM).
The quality bar for a real head (MiniLM on 1000 HH-RLHF texts: cosine mean >= 0.995, worst
>= 0.985) is measured and printed by `python -m edge_omd_bench.features --bar-only`.
"""
from __future__ import annotations

import numpy as np

from edge_omd.errors import ExportError

FP32_ATOL = 1e-4
MIN_COSINE = {"fp16": 0.99, "int8": 0.95, "qdq": 0.90}

PARITY_PAIRS = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("What is the capital of France?", "I think it is Lyon, but I am not sure at all."),
    ("How do I boil an egg?", "Put the egg in boiling water for about nine minutes, then cool it."),
    ("How do I boil an egg?", "No."),
    ("Tell me a joke about cats.", "Why did the cat sit on the computer? To keep an eye on the mouse."),
    ("Tell me a joke about cats.", "Cats are animals."),
    ("Summarise the plot of a story where a small robot learns to paint.",
     "A small robot in a quiet town finds a box of paints, copies the sunsets it sees every "
     "evening, fails many times, and at last paints a picture that makes its owner smile."),
    ("Summarise the plot of a story where a small robot learns to paint.", "A robot paints."),
    ("Is it safe to drink water from a river?", "Boil or filter it first; river water can carry germs."),
    ("Is it safe to drink water from a river?", "Yes, always, it is natural and clean."),
    ("Give me one word.", "Hello"),
    ("", "An answer to an empty prompt."),
]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr
    rho = spearmanr(a, b).statistic
    return float(rho) if np.isfinite(rho) else 1.0


def reference_features(model, spec, rows: list[list[int]], normalize: bool,
                       starts: list[int] | None = None) -> np.ndarray:
    """Per row: the model on `ids` alone, pooled per `spec.pooling`; `starts[i]` is where the
    response span of row i begins (needed for "response_mean")."""
    import torch
    out = []
    with torch.no_grad():
        for i, ids in enumerate(rows):
            h = model(input_ids=torch.tensor([ids], dtype=torch.long)).last_hidden_state[0]
            if spec.pooling == "last_token":
                f = h[-1]
            elif spec.pooling == "response_mean":
                f = h[starts[i]:].mean(dim=0)
            else:
                f = h.mean(dim=0)
            out.append(f.to(torch.float64).numpy())
    F = np.stack(out)
    if normalize:
        F = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
    return F


def agreement(ref: np.ndarray, got: np.ndarray, n_dirs: int = 16, seed: int = 0) -> dict:
    """Cosine per row and Spearman of reward rankings under random linear rewards."""
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    cos = (ref * got).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1), 1e-30)
    theta = np.random.default_rng(seed).standard_normal((ref.shape[1], n_dirs))
    rhos = [_spearman(ref @ theta[:, k], got @ theta[:, k]) for k in range(n_dirs)]
    return {"cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
            "ranking_spearman_mean": float(np.mean(rhos)), "ranking_spearman_min": float(np.min(rhos))}


def check(out_dir: str, model, spec, hf_tokenizer, variant: str, normalize: bool,
          pairs=PARITY_PAIRS, min_cosine: float | None = None) -> dict:
    """Run the parity check; return the report or raise ExportError when a bound fails."""
    import copy

    from edge_omd.head.tokenize import TextEncoder
    from edge_omd.head.runner import FeatureHead
    right = FeatureHead.open(out_dir, ["CPUExecutionProvider"], padding_side="right",
                             batch_size=len(pairs))
    # The left-padding twin shares the session: one copy of the weights in memory, not two.
    left = copy.copy(right)
    e = right._encoder
    left._encoder = TextEncoder(e.tokenizer, e.template, e.max_length, e.add_special_tokens,
                                e.pad_token_id, "left")
    heads = {"right": right, "left": left}
    enc = right._encoder
    rows, starts, ids_match = [], [], True
    for p, r in pairs:
        ids, start, cut = enc.encode_span(p, r)
        rows.append(ids)
        starts.append(start)
        if not cut:
            hf = hf_tokenizer(enc.render(p, r), add_special_tokens=enc.add_special_tokens)["input_ids"]
            ids_match &= list(hf) == ids
    ref = reference_features(model, spec, rows, normalize, starts)
    d = right._manifest["d"]   # the graph's columns (the head's views, if any, follow them)
    got = {side: h.features_batch(pairs)[:, :d] for side, h in heads.items()}
    err = max(float(np.abs(g - ref).max()) for g in got.values())
    side_gap = float(np.abs(got["right"] - got["left"]).max())
    report = {"variant": variant, "n_texts": len(pairs), "max_abs_err": err,
              "max_abs_ref": float(np.abs(ref).max()), "left_right_max_abs_diff": side_gap,
              "tokenizer_ids_match_hf": bool(ids_match), "provider": heads["right"].provider}
    report.update(agreement(ref, got["right"]))
    if not ids_match:
        raise ExportError("parity: the runner's tokenization differs from the Hugging Face "
                          "tokenizer on the parity texts; the tokenizer.json cannot be used as is")
    if variant == "fp32":
        bound = FP32_ATOL * max(1.0, report["max_abs_ref"])
        report["bound"] = bound
        if not err <= bound:
            raise ExportError(f"parity: fp32 max abs error {err:.3g} exceeds {bound:.3g}; the "
                              "traced graph does not reproduce PyTorch (report this model)")
    else:
        bound = MIN_COSINE[variant] if min_cosine is None else float(min_cosine)
        report["bound"] = bound
        if not report["cosine_min"] >= bound:
            raise ExportError(f"parity: {variant} min cosine {report['cosine_min']:.4f} is below "
                              f"{bound}; use fp32 or a different variant (or pass parity_min_cosine)")
    return report
