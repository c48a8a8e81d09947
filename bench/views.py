"""Views of a feature head (issue 20): does appending answer form (the style block) and wording
(the hashed view, edge_omd/head/wording.py) to the embedding let the learner find what a user
likes, without costing users whose taste is content? The rule, the grid and the decision are
in docs/BENCHMARKS.md, "Views (issue 20)" (written before any view was measured); this module
measures and applies it.

    python -m edge_omd_bench.views grid       # the rule's 165 combinations -> bench/results/views-grid.json
    python -m edge_omd_bench.views decide     # G1 from the grid, G2 (HH-RLHF) in order of J: the default
    python -m edge_omd_bench.views confirm    # today vs the default on a third population, every group
    python -m edge_omd_bench.views layers     # (d) lower-layer pooling appended to the default
    python -m edge_omd_bench.views dims       # content users vs dimensions added (hashed or noise)
    python -m edge_omd_bench.views diagnose   # form / wording users: online vs the features' ceiling
    python -m edge_omd_bench.views cost       # feature time per answer, d, solver, update time
    python -m edge_omd_bench.views standins   # (A) the views beside other embeddings: export default?
    python -m edge_omd_bench.views defaults   # (B) rank pessimism, pair strategy, ucb beta on the views
    python -m edge_omd_bench.views fixednorm  # (C) the wording view with a fixed divisor, not the row norm
    python -m edge_omd_bench.views idf        # (C2) the wording view's buckets weighted by idf
    python -m edge_omd_bench.views grid --quick   # tiny world, few users (seconds; tests)

The users, their streams and the protocol are the per-user benchmark's (bench/peruser.py
`run_task`: the default learner, the default pair strategy and beta, rank with pessimism 0), on
its world (bench/peruser_world.py) and its user groups (`GROUPS`); paired bootstrap intervals
over users. Results are appended to a JSON file as they come, so a run can be resumed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np

from edge_omd_bench import peruser as P
from edge_omd_bench import peruser_world as pw

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
POPULATIONS = (("design", 0), ("second", 1))
THIRD = ("third", 2)
RULE_GROUPS = ("form", "wording", "content")
OBJECTIVE_GROUPS = ("form", "wording")
FORM_WEIGHTS = (0.0, 0.25, 0.5)
SIZES = (256, 512, 1024)
NGRAMS = (1, 2)
TRANSFORMS = ("log1p", "binary", "raw")
SCALES = (0.25, 0.5, 1.0)
K50 = 50
CHECKPOINTS = (0, 10, 25, 50)
G1_MIN_DIFF = -0.010
TIE_J = 0.0005


# ================================================================ combinations ===============
@dataclass(frozen=True)
class Combo:
    """phi = [e, f * style, s * wording(D, n, t), layer_scale * layer L]."""
    f: float = 0.0
    D: Optional[int] = None
    n: int = 1
    t: str = "log1p"
    s: float = 0.0
    layer: Optional[int] = None
    layer_scale: float = 0.0

    @property
    def id(self) -> str:
        out = "today" if not (self.f or self.D or self.layer) else "e"
        if self.f:
            out += f"+style*{self.f:g}"
        if self.D:
            out += f"+w{self.D}n{self.n}{self.t}*{self.s:g}"
        if self.layer:
            out += f"+L{self.layer}*{self.layer_scale:g}"
        return out

    def d(self, d_e: int = 384) -> int:
        return d_e + (len(_style_features()) if self.f else 0) + (self.D or 0) + (d_e if self.layer else 0)

    @classmethod
    def parse(cls, spec: str) -> "Combo":
        """The inverse of `id`."""
        kw: dict = {}
        for part in spec.split("+")[1:]:
            name, _, w = part.partition("*")
            if name == "style":
                kw["f"] = float(w)
            elif name.startswith("w"):
                D, rest = name[1:].split("n", 1)
                kw.update(D=int(D), n=int(rest[0]), t=rest[1:], s=float(w))
            elif name.startswith("L"):
                kw.update(layer=int(name[1:]), layer_scale=float(w))
            else:
                raise SystemExit(f"unknown view {part!r} in {spec!r}")
        return cls(**kw)


TODAY = Combo()


def _style_features():
    from edge_omd.head.style import STYLE_FEATURES
    return STYLE_FEATURES


def grid() -> list[Combo]:
    """The rule's candidates (docs/BENCHMARKS.md), today first."""
    out = []
    for f in FORM_WEIGHTS:
        out.append(Combo(f=f))
        for D in SIZES:
            for n in NGRAMS:
                for t in TRANSFORMS:
                    for s in SCALES:
                        out.append(Combo(f, D, n, t, s))
    return out


class Blocks:
    """The views of every answer of a world, computed once: e (the head's embedding), the style
    block (weight 1, fitted on the train answers) and the wording views (scale 1)."""

    def __init__(self, world: pw.World, e: np.ndarray, layers: Optional[dict] = None):
        from edge_omd.head.style import StyleBlock
        self.world, self.e = world, np.asarray(e, np.float32)
        train_texts = [world.texts[r] for i in world.train for r in world.rows(i)]
        self.style = StyleBlock.fit(train_texts, 1.0)(world.texts)
        self.layers = layers or {}
        self._wording: dict = {}

    def wording(self, D: int, n: int, t: str) -> np.ndarray:
        key = (D, n, t)
        if key not in self._wording:
            train = [self.world.texts[r] for i in self.world.train for r in self.world.rows(i)]
            self._wording[key] = wording_block(self.world.texts, D, n, t, train)
        return self._wording[key]

    def phi(self, c: Combo) -> np.ndarray:
        parts = [self.e.astype(np.float64)]
        if c.f:
            parts.append(c.f * self.style)
        if c.D:
            parts.append(c.s * self.wording(c.D, c.n, c.t))
        if c.layer:
            parts.append(c.layer_scale * self.layers[c.layer])
        return np.ascontiguousarray(np.hstack(parts), np.float32)


def wording_block(texts: Sequence[str], D: int, n: int, t: str, reference: Sequence[str]) -> np.ndarray:
    """The wording view of `texts` at scale 1. t = "<transform>": edge_omd/head/wording.py's rows
    (each divided by its own L2 norm); fitted on `reference` (nothing user-specific):
    - "<transform>fixed" (rule C): the same transformed counts divided by ONE number, their mean
      row norm over `reference`, so how many such words an answer has is kept;
    - "<transform>idf" (rule C2): the transformed counts times idf_j = ln((1 + N) / (1 + df_j))
      + 1 per bucket (df_j: reference answers whose bucket j is non-zero), then L2-normalised."""
    from edge_omd.head.wording import WordingView
    suffix = next((x for x in WORDING_SUFFIXES if t.endswith(x)), "")
    if not suffix:
        return WordingView(int(D).bit_length() - 1, n, t, 1.0)(texts)
    view = WordingView(int(D).bit_length() - 1, n, t[:-len(suffix)], 1.0)

    def counts(xs):
        return np.array([view.counts(x) for x in xs], np.float64).reshape(len(xs), view.dim)

    def transformed(C):
        if view.transform == "binary":
            return np.sign(C)
        return np.sign(C) * np.log1p(np.abs(C)) if view.transform == "log1p" else C
    R = counts(reference)
    if suffix == "fixed":
        return transformed(counts(texts)) / float(np.linalg.norm(transformed(R), axis=1).mean())
    idf = np.log((1.0 + len(R)) / (1.0 + (R != 0).sum(axis=0))) + 1.0
    V = transformed(counts(texts)) * idf
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    return V / np.where(norms > 0, norms, 1.0)


WORDING_SUFFIXES = ("fixed", "idf")


# ================================================================ runs =======================
@dataclass
class Setup:
    world: pw.World
    blocks: Blocks
    users: int = 40
    checkpoints: tuple = CHECKPOINTS
    workers: int = 0
    boot: int = 2000
    seed: int = 0


def _cells(groups: Sequence[str], pops: Sequence[tuple]) -> list[tuple[str, int]]:
    return [(f"{g}/{p}", seed) for g in groups for p, seed in pops]


def measure(setup: Setup, combo: Combo, groups: Sequence[str] = RULE_GROUPS,
            pops: Sequence[tuple] = POPULATIONS, extra: Sequence[tuple] = (), ceiling: bool = False,
            strategy: Optional[str] = None, driver_beta: Optional[float] = None,
            pessimisms: Sequence[float] = ()) -> dict:
    """{cell "group/population": top-1 per user per checkpoint} for one combination (the
    per-user bench's run_task: default learner, default strategy and beta, rank beta 0).
    `extra`: more contenders [(id, params)] learning from the same streams; `ceiling`: also
    "ceiling/<cell>", the per-user bench's feature ceiling (MLE on every noiseless train pair);
    `strategy` / `driver_beta`: another pair strategy / ucb beta drives the stream;
    `pessimisms`: also "<cell>@pess<b>", ranked with rank()'s pessimism b on the same stream."""
    world = setup.world
    cells = _cells(groups, pops)
    defaults = P._defaults()
    strategy = strategy or defaults["strategy"]
    cfg = replace(P.Config(), users=setup.users, strategies=(strategy,),
                  contenders=(P.OMD_DEFAULT,), checkpoints=tuple(setup.checkpoints),
                  betas=tuple(dict.fromkeys((0.0,) + tuple(pessimisms))), driver_beta=driver_beta,
                  populations=tuple(cells), ceiling=False, boot=setup.boot, seed=setup.seed,
                  workers=setup.workers)
    users = {cell: pw.draw_users(world, seed + 1000 * setup.seed, setup.users, pw.GROUPS[cell.split("/")[0]])
             for cell, seed in cells}
    P._G.update(world=world, Phi=setup.blocks.phi(combo), cfg=cfg, users=users, defaults=defaults,
                lineup=[(P.OMD_DEFAULT, {})] + list(extra))
    tasks = [P.Task(cell, u, strategy) for cell, _ in cells for u in range(setup.users)]
    raw = P._run_tasks(tasks, P._workers(cfg))
    out: dict = {}
    for tk, r in zip(tasks, raw):
        out.setdefault(tk.population, []).append(r["beta"]["0.0"]["top1"])
        for b in pessimisms:
            out.setdefault(f"{tk.population}@pess{b:g}", []).append(r["beta"][str(float(b))]["top1"])
        for cid, _ in extra:
            out.setdefault(f"{tk.population}@{cid}", []).append(r[cid]["top1"])
    if ceiling:
        for cell, c in P.ceilings(cfg).items():
            out[f"ceiling/{cell}"] = [[v] for v in c["top1"]]
    return out


def _load(path: str) -> dict:
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def _save(path: str, res: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f)
    os.replace(tmp, path)


def run_grid(setup: Setup, combos: Sequence[Combo], path: str, log=print, **kw) -> dict:
    """measure() every combination not yet in `path`'s results (resumable)."""
    res = _load(path)
    res.setdefault("meta", {"users": setup.users, "checkpoints": list(setup.checkpoints),
                            "world": setup.world.key(), "seed": setup.seed})
    if res["meta"]["world"] != setup.world.key() or res["meta"]["users"] != setup.users:
        raise SystemExit(f"{path} holds another world or user count; move it away")
    res.setdefault("combos", {})
    t0 = time.perf_counter()
    todo = [c for c in combos if c.id not in res["combos"]]
    for i, c in enumerate(todo):
        t = time.perf_counter()
        res["combos"][c.id] = {"d": c.d(setup.blocks.e.shape[1]), "top1": measure(setup, c, **kw)}
        _save(path, res)
        log(f"  [{i + 1}/{len(todo)}] {c.id}: d={c.d(setup.blocks.e.shape[1])}, "
            f"{time.perf_counter() - t:.0f} s (total {time.perf_counter() - t0:.0f} s)")
    return res


# ================================================================ statistics =================
def at(res_combo: dict, cell: str, k: int, cps: Sequence[int]) -> np.ndarray:
    return np.asarray(res_combo["top1"][cell], np.float64)[:, list(cps).index(k)]


def objective(res_combo: dict, cps, pops=POPULATIONS) -> float:
    """J: the mean of the mean top-1 at 50 over the cells {form, wording} x populations."""
    return float(np.mean([at(res_combo, f"{g}/{p}", K50, cps).mean()
                          for g in OBJECTIVE_GROUPS for p, _ in pops]))


def paired(res: dict, a: str, b: str, cell: str, k: int = K50) -> tuple[float, float, float]:
    """(mean, lo, hi) of top-1(a) - top-1(b) at k over the users of `cell`."""
    cps = res["meta"]["checkpoints"]
    x = at(res["combos"][a], cell, k, cps) - at(res["combos"][b], cell, k, cps)
    return P.ci(x, P.boot_indices(len(x), 2000, res["meta"]["seed"]))


def single(res: dict, a: str, cell: str, k: int = K50) -> tuple[float, float, float]:
    x = at(res["combos"][a], cell, k, res["meta"]["checkpoints"])
    return P.ci(x, P.boot_indices(len(x), 2000, res["meta"]["seed"]))


def g1(res: dict, cid: str, pops=POPULATIONS) -> tuple[bool, list]:
    """Content users: mean paired difference to today >= -0.010 and its CI's upper end >= 0,
    on every population."""
    out = [paired(res, cid, TODAY.id, f"content/{p}") for p, _ in pops]
    return all(m >= G1_MIN_DIFF and hi >= 0 for m, _, hi in out), out


# ================================================================ HH-RLHF (G2) ===============
class HH:
    """bench/pooling.py's protocol for one combination: accuracy per held-out pair (5 orders)."""

    def __init__(self, orders: int = 5, limit: Optional[int] = None, seed: int = 0, log=print):
        from edge_omd_bench import pooling, streams
        self.orders, self.seed, self.splits = orders, seed, {}
        for name in streams.HH_SPLITS:
            rows, arr = pooling.load_split(name, limit, streams.CACHE_DIR, log)
            train, test, _, _ = streams.split_indices(len(rows), seed)
            self.splits[name] = dict(rows=rows, e_c=arr["all_c"], e_r=arr["all_r"], train=train, test=test,
                                     idx=np.random.default_rng([seed, 5]).integers(0, len(test), (2000, len(test))))

    def _views(self, sp: dict, c: Combo, chosen: bool) -> np.ndarray:
        from edge_omd.head.style import StyleBlock
        texts = [r[1] if chosen else r[3] for r in sp["rows"]]
        parts = [sp["e_c" if chosen else "e_r"].astype(np.float64)]
        if c.f:
            if "style" not in sp:
                sp["style"] = StyleBlock.fit([sp["rows"][i][1] for i in sp["train"]]
                                             + [sp["rows"][i][3] for i in sp["train"]], 1.0)
            parts.append(c.f * sp["style"](texts))
        if c.D:
            key = ("w", c.D, c.n, c.t, chosen)
            if key not in sp:
                ref = [sp["rows"][i][k] for i in sp["train"] for k in (1, 3)]
                sp[key] = wording_block(texts, c.D, c.n, c.t, ref)
            parts.append(c.s * sp[key])
        if c.layer:
            raise SystemExit("lower layers are not embedded for HH-RLHF here")
        return np.ascontiguousarray(np.hstack(parts), np.float32)

    def correct(self, c: Combo) -> dict:
        from edge_omd_bench.pooling import correct_per_pair
        return {name: correct_per_pair(self._views(sp, c, True), self._views(sp, c, False), sp["train"],
                                       sp["test"], self.orders, self.seed)
                for name, sp in self.splits.items()}

    def ci(self, name: str, x: np.ndarray) -> tuple[float, float, float]:
        m = self.splits[name]["idx"]
        means = x[m].mean(axis=1)
        return float(x.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def decide(res: dict, hh: Optional[HH], log=print) -> dict:
    """The rule (docs/BENCHMARKS.md): the highest J passing G1 and G2; ties -> smaller d, f."""
    cps = res["meta"]["checkpoints"]
    combos = res["combos"]
    order = sorted(combos, key=lambda k: (-objective(combos[k], cps), combos[k]["d"], Combo.parse(k).f))
    best_j = {k: objective(combos[k], cps) for k in combos}
    passed_g1 = []
    for k in order:
        if g1(res, k)[0]:
            passed_g1.append(k)
    out = {"J": best_j, "g1": {k: g1(res, k)[1] for k in combos}, "hh": {}}
    hh_today = hh.correct(TODAY) if hh else None
    if hh:
        out["hh"][TODAY.id] = {n: hh.ci(n, x) for n, x in hh_today.items()}
    chosen = None
    pending = list(passed_g1)
    while pending:
        top = best_j[pending[0]]
        tied = [k for k in pending if best_j[k] >= top - TIE_J]
        tied.sort(key=lambda k: (combos[k]["d"], Combo.parse(k).f))
        k = tied[0]
        pending.remove(k)
        if hh is None or k == TODAY.id:
            chosen = k
            break
        acc = hh.correct(Combo.parse(k))
        rows = {}
        ok = True
        for name, x in acc.items():
            today_ci = hh.ci(name, hh_today[name])
            diff = hh.ci(name, x - hh_today[name])
            rows[name] = {"acc": hh.ci(name, x), "minus_today": diff}
            ok &= x.mean() >= today_ci[1]
        out["hh"][k] = rows
        log(f"  G2 {k}: J={best_j[k]:.4f} " + "; ".join(
            f"{n} {r['acc'][0]:.4f} (today's lower end {out['hh'][TODAY.id][n][1]:.4f})" for n, r in rows.items())
            + (" PASS" if ok else " FAIL"))
        if ok:
            chosen = k
            break
    out["chosen"] = chosen or TODAY.id
    out["passed_g1"] = passed_g1
    return out


# ================================================================ reports ====================
def _f(m, lo, hi, pts=False) -> str:
    s = 100.0 if pts else 1.0
    fmt = "{:+.1f}" if pts else "{:.3f}"
    return f"{fmt.format(m * s)} [{fmt.format(lo * s)}, {fmt.format(hi * s)}]"


def table(res: dict, ids: Sequence[str], groups=RULE_GROUPS, pops=POPULATIONS, log=print) -> None:
    """Top-1 at 50 per cell with CIs, the paired difference to today in points, and J."""
    cps = res["meta"]["checkpoints"]
    for cid in ids:
        c = res["combos"][cid]
        cells = []
        for g in groups:
            for p, _ in pops:
                cell = f"{g}/{p}"
                if cell not in c["top1"]:
                    continue
                m = single(res, cid, cell)
                txt = f"{cell} {_f(*m)}"
                if cid != TODAY.id and cell in res["combos"][TODAY.id]["top1"]:
                    txt += f" ({_f(*paired(res, cid, TODAY.id, cell), pts=True)} pts)"
                cells.append(txt)
        j = objective(c, cps, pops) if all(f"{g}/{p}" in c["top1"] for g in OBJECTIVE_GROUPS for p, _ in pops) else float("nan")
        log(f"{cid} (d={c['d']}, J={j:.4f}):\n    " + "\n    ".join(cells))


# ================================================================ worlds and features ========
def make_setup(quick: bool, users: Optional[int], workers: int, log=print, layers: Sequence[int] = ()) -> Setup:
    if quick:
        world = pw.build_world(n_hh=24, n_demo=24, n_cands=6, seed=0)
        e = P.feature_matrix(world, "oracle")
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        return Setup(world, Blocks(world, e), users=users or 4, workers=workers or 1, boot=200)
    world = pw.build_world()
    e = P.feature_matrix(world, "minilm", log=log)
    lay = embed_layers(world, layers, log) if layers else None
    return Setup(world, Blocks(world, e, lay), users=users or 40, workers=workers)


def embed_layers(world: pw.World, layers: Sequence, log=print) -> dict:
    """(d) MiniLM hidden states of `layers` mean-pooled over the head's tokens (its template
    "{prompt}\\n{response}", max_length 256, [CLS]/[SEP]), L2-normalised; cached. The layer
    "last": the last layer at the last real token ([SEP]; `last_token` pooling, rule A)."""
    import hashlib
    from edge_omd_bench import pooling
    key = hashlib.sha1(f"{world.key()}|{tuple(layers)}|{pooling.MAX_LENGTH}".encode()).hexdigest()[:16]
    path = os.path.join(P.CACHE_DIR, f"views-layers-{key}.npz")
    if os.path.exists(path):
        a = np.load(path)
        return {(k[1:] if k == "Llast" else int(k[1:])): a[k] for k in a.files}
    import torch
    from transformers import AutoModel
    src = pooling.minilm_dir()
    model = AutoModel.from_pretrained(src, local_files_only=True, attn_implementation="eager").eval()
    enc = pooling._encoder(src)
    seqs = [enc.encode_span(p, r)[0] for p, r in world.pairs]
    out = {L: np.zeros((len(seqs), 384), np.float32) for L in layers}
    order = np.argsort([len(s) for s in seqs], kind="stable")
    t0 = time.perf_counter()
    for b in range(0, len(order), 32):
        idx = order[b:b + 32]
        T = max(len(seqs[i]) for i in idx)
        ids = torch.zeros((len(idx), T), dtype=torch.long)
        mask = torch.zeros((len(idx), T), dtype=torch.long)
        for k, i in enumerate(idx):
            ids[k, :len(seqs[i])] = torch.tensor(seqs[i])
            mask[k, :len(seqs[i])] = 1
        with torch.inference_mode():
            hs = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids),
                       output_hidden_states=True).hidden_states
        w = mask.unsqueeze(-1).float()
        for L in layers:
            if L == "last":
                f = hs[-1][torch.arange(len(idx)), mask.sum(1) - 1]
            else:
                f = (hs[L] * w).sum(1) / w.sum(1).clamp(min=1.0)
            out[L][idx] = torch.nn.functional.normalize(f, dim=-1).numpy()
    log(f"  layers {tuple(layers)} of {len(seqs)} texts in {time.perf_counter() - t0:.0f} s")
    os.makedirs(P.CACHE_DIR, exist_ok=True)
    np.savez(path, **{f"L{L}": v for L, v in out.items()})
    return out


# ================================================================ commands ===================
def cmd_grid(a, log) -> int:
    setup = make_setup(a.quick, a.users, a.workers, log)
    combos = grid() if not a.combos else [Combo.parse(s) for s in a.combos.split(",")]
    if a.quick and not a.combos:
        combos = [TODAY, Combo(0.25), Combo(0.0, 256, 2, "log1p", 0.5), Combo(0.25, 256, 1, "binary", 1.0)]
    res = run_grid(setup, combos, a.out, log)
    cps = res["meta"]["checkpoints"]
    ranked = sorted(res["combos"], key=lambda k: -objective(res["combos"][k], cps))
    log("\n=== top 10 by J (and today) ===")
    table(res, list(dict.fromkeys([TODAY.id] + ranked[:10])), log=log)
    return 0


def cmd_decide(a, log) -> int:
    res = _load(a.out)
    if not res:
        raise SystemExit(f"no grid results in {a.out}: run `grid` first")
    hh = None if a.quick else HH(log=log)
    dec = decide(res, hh, log)
    res["decision"] = dec
    _save(a.out, res)
    cps = res["meta"]["checkpoints"]
    log(f"\n{len(dec['passed_g1'])} of {len(res['combos'])} combinations pass G1; chosen: {dec['chosen']}")
    ranked = sorted(res["combos"], key=lambda k: -objective(res["combos"][k], cps))
    table(res, list(dict.fromkeys([TODAY.id, dec["chosen"]] + ranked[:5])), log=log)
    for k, rows in dec["hh"].items():
        log(f"  HH-RLHF {k}: " + "; ".join(
            f"{n} {_f(*v)}" if k == TODAY.id else f"{n} {_f(*v['acc'])}, - today {_f(*v['minus_today'], pts=True)} pts"
            for n, v in rows.items()))
    return 0


def cmd_confirm(a, log) -> int:
    res = _load(a.out)
    chosen = a.combos or (res.get("decision") or {}).get("chosen")
    if not chosen:
        raise SystemExit("no decision yet: run `decide` (or pass --combos)")
    setup = make_setup(a.quick, a.users, a.workers, log)
    path = a.out.replace(".json", "-confirm.json")
    ids = [TODAY] + [Combo.parse(c) for c in chosen.split(",")]
    kw = dict(groups=("all",) + RULE_GROUPS, pops=POPULATIONS + (THIRD,))
    conf = run_grid(setup, ids, path, log, **kw)
    table(conf, [c.id for c in ids], groups=kw["groups"], pops=kw["pops"], log=log)
    targets(conf, [c.id for c in ids[1:]], kw["pops"], log)
    return 0


def targets(res: dict, ids: Sequence[str], pops, log=print) -> None:
    """The issue's targets: form >= 1.5x, wording >= 1.3x today, content >= today - 1 point."""
    for cid in ids:
        for p, _ in pops:
            parts = []
            for g, ratio in (("form", 1.5), ("wording", 1.3)):
                m, t = single(res, cid, f"{g}/{p}")[0], single(res, TODAY.id, f"{g}/{p}")[0]
                parts.append(f"{g} {m / t:.2f}x (>= {ratio}: {'MET' if m >= ratio * t else 'MISSED'})")
            d = paired(res, cid, TODAY.id, f"content/{p}")
            parts.append(f"content {_f(*d, pts=True)} pts (>= -1: {'MET' if d[0] >= -0.01 else 'MISSED'})")
            log(f"  targets {cid} {p}: " + "; ".join(parts))


def cmd_layers(a, log) -> int:
    res = _load(a.out)
    chosen = (res.get("decision") or {}).get("chosen") or TODAY.id
    base = Combo.parse(chosen)
    layers = (1, 2, 3)
    setup = make_setup(a.quick, a.users, a.workers, log, layers=() if a.quick else layers)
    if a.quick:
        setup.blocks.layers = {L: setup.blocks.e for L in layers}
    path = a.out.replace(".json", "-layers.json")
    combos = [TODAY, base] + [replace(base, layer=L, layer_scale=s) for L in layers for s in (0.5, 1.0)]
    lay = run_grid(setup, list(dict.fromkeys(combos)), path, log)
    cps = lay["meta"]["checkpoints"]
    table(lay, list(lay["combos"]), log=log)
    for c in combos[2:]:
        xs = [at(lay["combos"][c.id], f"{g}/{p}", K50, cps) - at(lay["combos"][base.id], f"{g}/{p}", K50, cps)
              for g in OBJECTIVE_GROUPS for p, _ in POPULATIONS]
        x = np.concatenate(xs)
        m, lo, hi = P.ci(x, P.boot_indices(len(x), 2000, 0))
        ok, _ = g1(lay, c.id)
        log(f"  {c.id} - {base.id}: J {_f(m, lo, hi, pts=True)} pts (pooled users); G1 {'pass' if ok else 'fail'}; "
            f"kept by the rule only if J >= +1.0 with lo > 0, G1 and G2: "
            f"{'candidate' if m >= 0.01 and lo > 0 and ok else 'dropped'}")
    return 0


def cmd_dims(a, log) -> int:
    """Content users (who need none of the views) vs dimensions appended: the wording view at
    the chosen scale and pure noise of the same norm, edge-omd's default (second-order) learner
    and a first-order one (scikit-learn SGD, its grid's middle point) on the same streams."""
    res = _load(a.out)
    base = Combo.parse((res.get("decision") or {}).get("chosen") or "e+w1024n2log1p*0.5")
    s = base.s or 0.5
    setup = make_setup(a.quick, a.users, a.workers, log)
    rng = np.random.default_rng(12)
    path = a.out.replace(".json", "-dims.json")
    combos = [TODAY]
    for D in SIZES:
        combos.append(Combo(0.0, D, base.n, base.t, s))
        noise = rng.standard_normal((len(setup.world.texts), D))
        setup.blocks._wording[(D, 0, "noise")] = noise / np.linalg.norm(noise, axis=1, keepdims=True)
        combos.append(Combo(0.0, D, 0, "noise", s))
    extra = [(P.SKLEARN_SGD, P.grids()[P.SKLEARN_SGD][1])]
    from edge_omd_bench.peers import peer_missing
    if peer_missing("sklearn"):
        extra = []
    dims = run_grid(setup, combos, path, log, groups=("content",), extra=extra)
    for c in combos:
        parts = []
        for p, _ in POPULATIONS:
            parts.append(f"{p} {_f(*single(dims, c.id, f'content/{p}'))}"
                         + ("" if c == TODAY else f" ({_f(*paired(dims, c.id, TODAY.id, f'content/{p}'), pts=True)} pts)"))
            if extra:
                cell = f"content/{p}@{extra[0][0]}"
                parts.append(f"sgd {_f(*single(dims, c.id, cell))}"
                             + ("" if c == TODAY else f" ({_f(*paired(dims, c.id, TODAY.id, cell), pts=True)} pts)"))
        log(f"  {c.id:<28} d={c.d():<5} " + "; ".join(parts))
    return 0


def cmd_diagnose(a, log) -> int:
    """Wording and form users: online top-1 and the feature ceiling for today, the chosen
    default (or --combos) and today + the wording users' own hidden properties (an oracle
    block, norm about 1: what a view that computed their tastes exactly would give)."""
    res = _load(a.out)
    ids = (a.combos or (res.get("decision") or {}).get("chosen") or "").split(",")
    setup = make_setup(a.quick, a.users, a.workers, log)
    Sw = setup.world.S_wording
    setup.blocks._wording[(len(pw.WORDING), 0, "oracle")] = Sw / math.sqrt(Sw.shape[1])
    oracle = Combo(0.0, len(pw.WORDING), 0, "oracle", 1.0)
    combos = [TODAY] + [Combo.parse(c) for c in ids if c and c != TODAY.id] + [oracle]
    path = a.out.replace(".json", "-diagnose.json")
    diag = run_grid(setup, combos, path, log, groups=OBJECTIVE_GROUPS, ceiling=True)
    for c in combos:
        parts = []
        for g in OBJECTIVE_GROUPS:
            for p, _ in POPULATIONS:
                cell = f"{g}/{p}"
                parts.append(f"{cell} online {_f(*single(diag, c.id, cell))}, ceiling "
                             f"{_f(*P.ci(np.asarray(diag['combos'][c.id]['top1']['ceiling/' + cell])[:, 0], P.boot_indices(setup.users, 2000, 0)))}")
        log(f"  {c.id} (d={diag['combos'][c.id]['d']}):\n    " + "\n    ".join(parts))
    return 0


def cmd_cost(a, log) -> int:
    """Feature time per answer (head, style block, wording view), d, the solver and state bytes
    the default budget picks, and the update time, today vs the chosen combination."""
    from edge_omd.head.style import StyleBlock
    from edge_omd.head import wording as Wm
    from edge_omd.personalizer import DEFAULT_BUDGET_BYTES
    from edge_omd.reward_model import RewardModel
    res = _load(a.out)
    chosen = Combo.parse((res.get("decision") or {}).get("chosen") or TODAY.id)
    world = pw.build_world(n_hh=150 if not a.quick else 0, n_demo=None if not a.quick else 12)
    texts, pairs = world.texts[:240], world.pairs[:240]
    log(f"load {open('/proc/loadavg').read().split()[:3]} (2 cores shared; figures are noisy)")
    rows = {}
    if not a.quick:
        head = P.open_head()
        head.features_batch(pairs[:8])
        t = time.perf_counter()
        for p, r in pairs:
            head.features(p, [r])
        rows["head (MiniLM fp32, onnxruntime), one answer per call"] = (time.perf_counter() - t) / len(pairs)
    block = StyleBlock.fit(texts, 1.0)
    t = time.perf_counter()
    block(texts)
    rows["style block"] = (time.perf_counter() - t) / len(texts)
    if chosen.D:
        v = Wm.WordingView(int(chosen.D).bit_length() - 1, chosen.n, chosen.t, chosen.s)
        for name, clear in (("wording view, cold caches", True), ("wording view, warm caches", False)):
            if clear:
                Wm._h1.cache_clear(), Wm._h2.cache_clear(), Wm.log1p_fdlibm.cache_clear()
            t = time.perf_counter()
            v(texts)
            rows[name] = (time.perf_counter() - t) / len(texts)
    for k, sec in rows.items():
        log(f"  {k:<55} {sec * 1e3:8.3f} ms per answer")
    for c in (TODAY, chosen):
        d = c.d()
        m = RewardModel(d, budget_bytes=DEFAULT_BUDGET_BYTES)
        rng = np.random.default_rng(0)
        Z = (rng.standard_normal((400, d)) / math.sqrt(d)).astype(np.float32)
        for i in range(20):
            m.learn_pair(Z[i], Z[i + 1])
        ts = []
        for i in range(20, 399):
            t = time.perf_counter()
            m.learn_pair(Z[i], Z[i + 1])
            ts.append(time.perf_counter() - t)
        ts = np.array(ts)
        log(f"  {c.id:<28} d={d:<5} solver {m.solver}, state {len(m.to_bytes()):,} bytes, learn_pair median "
            f"{np.median(ts) * 1e6:.0f} us (p99 {np.quantile(ts, 0.99) * 1e6:.0f})")
    return 0


# ================================================================ rules A, B, C (2026-12-08) =
def default_combo() -> Combo:
    """The runtime's default views (edge_omd/head/views.py) as a Combo."""
    from edge_omd.head.views import DEFAULT_STYLE_WEIGHT, DEFAULT_WORDING as W
    return Combo(DEFAULT_STYLE_WEIGHT, 1 << W["bits"], W["ngrams"], W["transform"], W["scale"])


def pooled_j_diff(res: dict, a: str, b: str, pops=POPULATIONS) -> tuple[float, float, float]:
    """J(a) - J(b) as a paired mean over the users of the cells {form, wording} x pops."""
    cps = res["meta"]["checkpoints"]
    x = np.concatenate([at(res["combos"][a], f"{g}/{p}", K50, cps) - at(res["combos"][b], f"{g}/{p}", K50, cps)
                        for g in OBJECTIVE_GROUPS for p, _ in pops])
    return P.ci(x, P.boot_indices(len(x), 2000, 0))


def cmd_standins(a, log) -> int:
    """Rule A: today vs the default views beside other unit-norm embeddings of the same answers
    (MiniLM layers 1-3 mean-pooled, the last layer at the last token)."""
    setup = make_setup(a.quick, a.users, a.workers, log)
    names = (1, 2, 3, "last")
    lay = ({L: setup.blocks.e for L in names} if a.quick
           else embed_layers(setup.world, (1, 2, 3), log) | embed_layers(setup.world, ("last",), log))
    chosen = default_combo()
    verdicts = {}
    for L in names:
        setup.blocks.e = np.asarray(lay[L], np.float32)
        res = run_grid(setup, [TODAY, chosen], a.out.replace(".json", f"-standin-L{L}.json"), log)
        table(res, [TODAY.id, chosen.id], log=lambda m, L=L: log(f"[L{L}] {m}" if not m.startswith(" ") else m))
        ok1, g1s = g1(res, chosen.id)
        dj = pooled_j_diff(res, chosen.id, TODAY.id)
        verdicts[L] = ok1 and dj[1] > 0
        log(f"  stand-in L{L}: J {objective(res['combos'][TODAY.id], res['meta']['checkpoints']):.4f} -> "
            f"{objective(res['combos'][chosen.id], res['meta']['checkpoints']):.4f}, paired {_f(*dj, pts=True)} pts; "
            f"G1 {'pass' if ok1 else 'FAIL'} (" + ", ".join(_f(*g, pts=True) for g in g1s) + f"): "
            f"{'PASS' if verdicts[L] else 'FAIL'}")
    mean_ok = all(verdicts[L] for L in (1, 2, 3))
    log("rule A: " + ("views by default for every normalised head" if mean_ok and verdicts["last"] else
                      "views by default for mean-pooled heads only" if mean_ok else "the default stays none"))
    return 0


DEFAULTS_CPS = (0, 10, 25, 50, 100)
PESSIMISMS = (0.25, 0.5, 1.0)
UCB_BETAS = (0.25, 0.5, 2.0)


def cmd_defaults(a, log) -> int:
    """Rule B: rank()'s pessimism, the pair strategy and ucb's beta on the default views' features,
    the per-user benchmark's populations (group "all")."""
    from edge_omd import strategies as S
    setup = make_setup(a.quick, a.users, a.workers, log)
    setup.checkpoints = DEFAULTS_CPS
    chosen = default_combo()
    path = a.out.replace(".json", "-defaults.json")
    res = _load(path)
    res.setdefault("meta", {"users": setup.users, "checkpoints": list(DEFAULTS_CPS),
                            "world": setup.world.key(), "combo": chosen.id})
    if res["meta"]["world"] != setup.world.key() or res["meta"]["users"] != setup.users:
        raise SystemExit(f"{path} holds another world or user count; move it away")
    runs = res.setdefault("runs", {})
    defaults = P._defaults()
    plan = {s: dict(strategy=s) for s in P.PAIR_STRATEGIES}
    plan[defaults["strategy"]] = dict(strategy=defaults["strategy"], pessimisms=PESSIMISMS)
    plan.update({f"ucb@beta{b:g}": dict(strategy="ucb", driver_beta=b) for b in UCB_BETAS})
    for name, kw in plan.items():
        if name not in runs:
            t = time.perf_counter()
            runs[name] = measure(setup, chosen, groups=("all",), **kw)
            _save(path, res)
            log(f"  {name}: {time.perf_counter() - t:.0f} s")
    cps = list(DEFAULTS_CPS)
    k50 = cps.index(K50)
    idx = P.boot_indices(setup.users, 2000, 0)
    base = defaults["strategy"]

    def arr(name, cell):
        return np.asarray(runs[name][cell], np.float64)
    for p, _ in POPULATIONS:
        cell = f"all/{p}"
        log(f"--- {cell} ({chosen.id}, {setup.users} users; paired 95% intervals in points) ---")
        ref = arr(base, cell).mean(axis=1)
        log(f"  rank pessimism {S.DEFAULT_PESSIMISM:g} (default): mean top-1 over k={cps} {_f(*P.ci(ref, idx))}")
        for b in PESSIMISMS:
            x = arr(base, f"{cell}@pess{b:g}").mean(axis=1)
            log(f"  rank pessimism {b:g}: {_f(*P.ci(x, idx))}, - default {_f(*P.ci(x - ref, idx), pts=True)}")
        ref = arr(base, cell)[:, k50]
        log(f"  pair strategy {base} (default), top-1 at 50: {_f(*P.ci(ref, idx))}")
        for s in P.PAIR_STRATEGIES:
            if s != base:
                x = arr(s, cell)[:, k50]
                log(f"  pair strategy {s}: {_f(*P.ci(x, idx))}, - {base} {_f(*P.ci(x - ref, idx), pts=True)}")
        log(f"  ucb beta {S.DEFAULT_BETA:g} (default), top-1 at 50: {_f(*P.ci(ref, idx))}")
        for b in UCB_BETAS:
            x = arr(f"ucb@beta{b:g}", cell)[:, k50]
            log(f"  ucb beta {b:g}: {_f(*P.ci(x, idx))}, - default {_f(*P.ci(x - ref, idx), pts=True)}")
    return 0


FIXED_SCALES = (0.25, 0.5, 1.0)


def cmd_wording_candidate(a, log, suffix: str) -> int:
    """Rules C ("fixed": the wording view divided by one fixed number, its mean row norm over the
    train answers, instead of each row's norm) and C2 ("idf": buckets weighted by their idf over
    the train answers), beside the style block, against the current default."""
    setup = make_setup(a.quick, a.users, a.workers, log)
    base = default_combo()
    cands = [replace(base, t=base.t + suffix, s=s) for s in FIXED_SCALES]
    path = a.out.replace(".json", f"-{'fixednorm' if suffix == 'fixed' else suffix}.json")
    res = run_grid(setup, [TODAY, base] + cands, path, log)
    table(res, [TODAY.id, base.id] + [c.id for c in cands], log=log)
    cps = res["meta"]["checkpoints"]
    passing = []
    for c in cands:
        dj = pooled_j_diff(res, c.id, base.id)
        ok1, g1s = g1(res, c.id)
        ok = dj[0] >= 0.010 and dj[1] > 0 and ok1
        log(f"  {c.id}: J {objective(res['combos'][c.id], cps):.4f}, - default {_f(*dj, pts=True)} pts; G1 "
            f"{'pass' if ok1 else 'FAIL'} (" + ", ".join(_f(*g, pts=True) for g in g1s) + f"): (i)+(ii) {'pass' if ok else 'FAIL'}")
        if ok:
            passing.append(c)
    if not passing:
        log(f"rule C ({suffix}): no candidate passes (i) and (ii); the wording view stays as it is")
        return 0
    third = run_grid(setup, [base] + passing, path.replace(".json", "-third.json"), log,
                     groups=RULE_GROUPS, pops=(THIRD,))
    hh = None if a.quick else HH(log=log)
    for c in sorted(passing, key=lambda c: -objective(res["combos"][c.id], cps)):
        d = {g: paired(third, c.id, base.id, f"{g}/third") for g in RULE_GROUPS}
        ok3 = d["wording"][1] > 0 and d["form"][0] > -0.01 and d["content"][0] > -0.01
        log(f"  {c.id} third population - default: " + "; ".join(f"{g} {_f(*v, pts=True)}" for g, v in d.items())
            + f": (iii) {'pass' if ok3 else 'FAIL'}")
        if not ok3:
            continue
        if hh is not None:
            t_acc, c_acc = hh.correct(TODAY), hh.correct(c)
            ok4 = all(c_acc[n].mean() >= hh.ci(n, t_acc[n])[1] for n in t_acc)
            log("  G2 " + "; ".join(f"{n} {_f(*hh.ci(n, c_acc[n]))} (today {_f(*hh.ci(n, t_acc[n]))})" for n in t_acc)
                + f": (iv) {'pass' if ok4 else 'FAIL'}")
            if not ok4:
                continue
        log(f"rule C ({suffix}): accepted {c.id}")
        return 0
    log(f"rule C ({suffix}): no candidate passes (iii) and (iv); the wording view stays as it is")
    return 0


COMMANDS = {"grid": cmd_grid, "decide": cmd_decide, "confirm": cmd_confirm, "layers": cmd_layers,
            "dims": cmd_dims, "diagnose": cmd_diagnose, "cost": cmd_cost, "standins": cmd_standins,
            "defaults": cmd_defaults,
            "fixednorm": lambda a, log: cmd_wording_candidate(a, log, "fixed"),
            "idf": lambda a, log: cmd_wording_candidate(a, log, "idf")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_omd_bench.views", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=tuple(COMMANDS))
    ap.add_argument("--quick", action="store_true", help="tiny world with oracle features (seconds)")
    ap.add_argument("--users", type=int, help="users per group and population (default 40)")
    ap.add_argument("--workers", type=int, default=0, help="processes (default: every core)")
    ap.add_argument("--combos", help="comma list of combination ids instead of the rule's grid")
    ap.add_argument("--out", default=os.path.join(RESULTS, "views-grid.json"))
    a = ap.parse_args(argv)
    if a.quick and a.out == os.path.join(RESULTS, "views-grid.json"):
        a.out = os.path.join(RESULTS, "views-grid-quick.json")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass
    t0 = time.perf_counter()

    def log(m):
        print(f"[{time.perf_counter() - t0:6.1f}s] {m}" if not m.startswith(("\n", " ")) else m, flush=True)
    return COMMANDS[a.command](a, log)


if __name__ == "__main__":
    sys.exit(main())
