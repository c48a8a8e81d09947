"""Per-user personalization benchmark (issue 11, items 0 and 7): does the learner find what ONE
user likes, on prompts it was never asked about?

    python -m edge_omd_bench.peruser                 # full: both populations, every strategy
    python -m edge_omd_bench.peruser --quick         # seconds
    python -m edge_omd_bench.peruser --features minilm,minilm_response,minilm+style,minilm_response+style
    python -m edge_omd_bench.peruser --json out.json
    python -m edge_omd_bench.peruser --features 'minilm+style*0.25' --assume-beta 0   # candidate defaults
    python -m edge_omd_bench.peruser --properties hedging,polite,examples,refusal,tech,health,safety,money \
        --p-length 0 --compare-features minilm,minilm+style      # users with content-only tastes
    python -m edge_omd_bench.peruser --group wording          # one user group (peruser_world.GROUPS)
    python -m edge_omd_bench.peruser --report-only out.json  # tables + targets of a saved run

World (bench/peruser_world.py): prompts from the demo corpus and HH-RLHF with 6 candidate
answers each (written, human-rated, and form variants), split into train prompts (feedback is
given on these) and test prompts (never asked about). Users have hidden tastes over text
properties no feature computes (lexicons, list/code/header presence, a length taste that may
peak at a target), answer by Bradley-Terry with a temperature, and come in two populations:
"design" (seed 0, the one the benchmark was built with) and "second" (another seed). Groups
of users (`--group`, peruser_world.GROUPS) weigh a subset of the properties: form, content, or
wording (issue 20: how an answer is worded, with lexicons disjoint from what the world's form
variants insert; peruser_world's docstring says why).

Protocol, per user and strategy: the deployed learner (edge-omd with the Personalizer's defaults
for a new user: `RewardModel(d, budget_bytes=DEFAULT_BUDGET_BYTES)`, i.e. exact at d=384, eta=1,
lam=1, float32) picks what to ask on a random train prompt:
  - a pair strategy of edge_omd.strategies (random, ucb, best_quantile, best_second,
    best_worst; ucb with the default beta), the user picks one -> `learn_pair`;
  - "thumbs": the top answer of rank() gets a thumb up/down -> `learn_thumb`.
Every contender learns from that same stream (paired comparison of learners): edge-omd with its
defaults, edge-omd with lam tuned, the MLE refit (bench/mle.py), and the first-order peers
(River SGD/Adam, scikit-learn SGD, Vowpal Wabbit; bench/peers.py). Pairs reach the peers as
(z, 1) or (-z, 0) by a seeded coin. Tuned contenders pick their grid point (contenders.py grids)
on a separate tuning population (random strategy, mean top-1 over checkpoints >= 10).
After k = 0, 5, 10, 25, 50, 75, 100 feedbacks, every test prompt is ranked:
  - top-1: the ranked first answer is the user's favourite (max hidden utility);
  - regret: utility of the favourite minus that of the ranked first answer.
edge-omd ranks like `Personalizer.rank`: r_a - beta ||phi_a - mean phi||_{cal_H^-1}, ties to the
lower index; the beta curve reports that for several beta (stream unchanged); the others rank
by reward (they have no width).

Statistics: means over users with 95% paired bootstrap intervals over users (the same user
resamples for every contender and setting; `--boot` resamples).

Features are pluggable: a function [(prompt, response)] -> Phi (n, d); the built-in ones
(`--features`: minilm, minilm_response, X+style, oracle) and their cache are in
bench/peruser_features.py. This module runs the protocol, prints the report and is the command.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Optional, Sequence

import numpy as np

from edge_omd_bench import peruser_world as pw
from edge_omd_bench.peruser_features import (CACHE_DIR, FeatureFn, embed,  # noqa: F401
                                             feature_matrix, minilm, open_head, oracle_features)

CHECKPOINTS = (0, 5, 10, 25, 50, 75, 100)
REPORT_CPS = (0, 10, 25, 50, 100)
BETAS = (0.0, 0.25, 0.5, 1.0, 2.0)
PAIR_STRATEGIES = ("random", "ucb", "best_quantile", "best_second", "best_worst")
STRATEGIES = PAIR_STRATEGIES + ("thumbs",)
POPULATIONS = (("design", 0), ("second", 1))

# contender ids
OMD_DEFAULT, OMD_TUNED, MLE_ID = "omd_default", "omd_tuned", "mle"
RIVER_SGD, RIVER_ADAM, SKLEARN_SGD, VW_ID = "river_sgd", "river_adam", "sklearn_sgd", "vw"
LABELS = {OMD_DEFAULT: "edge-omd defaults", OMD_TUNED: "edge-omd lam tuned", MLE_ID: "MLE refit",
          RIVER_SGD: "River SGD", RIVER_ADAM: "River Adam", SKLEARN_SGD: "sklearn SGD",
          VW_ID: "VW adaptive"}


def _defaults():
    """Main's defaults, read from the runtime (not copied): rank's beta, the pair strategy of
    Personalizer.pair_to_show, a new user's budget."""
    import inspect
    from edge_omd import strategies
    from edge_omd.personalizer import DEFAULT_BUDGET_BYTES, Personalizer
    strat = inspect.signature(Personalizer.pair_to_show).parameters["strategy"].default
    return {"beta": float(strategies.DEFAULT_BETA), "strategy": strat, "budget_bytes": DEFAULT_BUDGET_BYTES}


# ================================================================ configuration ==============
@dataclass
class Config:
    preset: str = "full"
    n_hh: int = 150
    n_demo: Optional[int] = None
    n_cands: int = 6
    users: int = 40
    tune_users: int = 12
    strategies: tuple = STRATEGIES
    contenders: tuple = (OMD_DEFAULT, OMD_TUNED, MLE_ID, RIVER_SGD, RIVER_ADAM, SKLEARN_SGD, VW_ID)
    checkpoints: tuple = CHECKPOINTS
    betas: tuple = BETAS
    populations: tuple = POPULATIONS
    population: pw.PopulationConfig = field(default_factory=pw.PopulationConfig)
    features: str = "minilm"
    style_weight: float = 1.0
    driver_beta: Optional[float] = None   # beta of the stream's ucb / thumbs pick (None: default)
    assume: dict = field(default_factory=dict)   # defaults to assume instead of the runtime's
                                                 # ("beta": rank's and the stream's, "strategy")
    ceiling: bool = True           # also fit every noiseless train pair offline (what Phi allows)
    boot: int = 2000
    seed: int = 0
    workers: int = 0               # 0: os.cpu_count()

    @classmethod
    def preset_named(cls, name: str, **kw) -> "Config":
        if name == "quick":
            base = cls(preset="quick", n_hh=24, n_demo=24, users=6, tune_users=0,
                       strategies=("random", "ucb", "thumbs"), contenders=(OMD_DEFAULT, MLE_ID),
                       checkpoints=(0, 5, 10, 25), boot=300, workers=1)
        else:
            base = cls()
        return replace(base, **kw)


# ================================================================ learners ===================
class Learner:
    """What the protocol needs of a contender: learn a pair or a thumb, rewards of rows."""
    has_width = False

    def pair(self, phi_c, phi_r, coin: bool) -> None:
        raise NotImplementedError

    def thumb(self, phi, up: bool) -> None:
        raise NotImplementedError

    def rewards(self, Phi) -> np.ndarray:
        raise NotImplementedError


class OMD(Learner):
    has_width = True

    def __init__(self, d: int, **kw):
        from edge_omd.reward_model import RewardModel
        self.model = RewardModel(d, **kw)

    def pair(self, phi_c, phi_r, coin):
        self.model.learn_pair(phi_c, phi_r)

    def thumb(self, phi, up):
        self.model.learn_thumb(phi, bool(up))

    def rewards(self, Phi):
        return self.model.reward(Phi)


class Wrapped(Learner):
    """A bench Contender (contenders.MLE, peers.*) fed (z, y) with the seeded coin."""

    def __init__(self, c):
        self.c = c

    def pair(self, phi_c, phi_r, coin):
        z = phi_c.astype(np.float64) - phi_r.astype(np.float64)
        self.c.learn_one(z if coin else -z, 1 if coin else 0)

    def thumb(self, phi, up):
        self.c.learn_one(phi.astype(np.float64), 1 if up else 0)

    def rewards(self, Phi):
        return self.c.margins(Phi)


def grids() -> dict:
    """Grid of each contender: the bench's grids (contenders.py), edge-omd defaults untuned."""
    from edge_omd_bench.contenders import MLE_GRID, OMD_GRID
    return {OMD_DEFAULT: [{}], OMD_TUNED: OMD_GRID, MLE_ID: MLE_GRID,
            RIVER_SGD: [dict(lr=lr) for lr in (0.003, 0.02, 0.1, 0.6)],
            RIVER_ADAM: [dict(lr=lr) for lr in (0.0002, 0.001, 0.005, 0.025)],
            SKLEARN_SGD: [dict(alpha=a) for a in (1e-3, 1e-2, 1e-1, 1.0)],
            VW_ID: [dict(learning_rate=lr) for lr in (0.01, 0.05, 0.2, 1.0)]}


def make_learner(cid: str, d: int, params: dict, seed: int) -> Learner:
    if cid == OMD_DEFAULT:
        return OMD(d, budget_bytes=_defaults()["budget_bytes"])
    if cid == OMD_TUNED:
        return OMD(d, solver="exact", dtype="float32", **params)
    if cid == MLE_ID:
        from edge_omd_bench.contenders import MLE
        return Wrapped(MLE(d, seed=seed, **params))
    from edge_omd_bench import peers
    if cid in (RIVER_SGD, RIVER_ADAM):
        return Wrapped(peers.RiverLR(d, optimizer="sgd" if cid == RIVER_SGD else "adam", seed=seed, **params))
    if cid == SKLEARN_SGD:
        return Wrapped(peers.SklearnSGD(d, seed=seed, **params))
    if cid == VW_ID:
        return Wrapped(peers.VW(d, seed=seed, **params))
    raise SystemExit(f"unknown contender {cid!r}")


def available(cids) -> tuple[list, dict]:
    from edge_omd_bench.peers import peer_missing
    need = {RIVER_SGD: "river", RIVER_ADAM: "river", SKLEARN_SGD: "sklearn", VW_ID: "vowpalwabbit"}
    keep, skipped = [], {}
    for c in cids:
        why = peer_missing(need[c]) if c in need else None
        (skipped.__setitem__(c, why) if why else keep.append(c))
    return keep, skipped


# ================================================================ protocol ===================
def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-500.0, min(500.0, x))))


def score_test(scores: np.ndarray, U: np.ndarray) -> tuple[float, float]:
    """(top-1, regret) of rankings `scores` (n_items, n_cands) against utilities U: the ranked
    first is the lowest index among the maximal scores (Personalizer.rank's tie rule)."""
    first = np.argmax(scores, axis=1)
    u_first = U[np.arange(len(U)), first]
    best = U.max(axis=1)
    return float(np.mean(u_first >= best - 1e-12)), float(np.mean(best - u_first))


def rank_widths(model, Phi_items: np.ndarray) -> np.ndarray:
    """||phi_a - mean_b phi_b||_{cal_H^-1} per answer, as Personalizer.rank computes it."""
    n, c, d = Phi_items.shape
    ref = Phi_items.astype(np.float64).mean(axis=1).astype(Phi_items.dtype)
    V = (Phi_items - ref[:, None, :]).reshape(n * c, d)
    return model.width(V).reshape(n, c)


@dataclass
class Task:
    population: str
    user: int
    strategy: str


_G: dict = {}      # the world, features, users and lineup of a run (inherited by forked workers)


def run_task(task: Task) -> dict:
    """One user, one strategy: the stream, every contender, every checkpoint."""
    g = _G
    world, Phi, cfg = g["world"], g["Phi"], g["cfg"]
    user = g["users"][task.population][task.user]
    d = Phi.shape[1]
    nc = world.n_cands
    s_idx = STRATEGIES.index(task.strategy)
    pop_seed = dict(cfg.populations)[task.population] if task.population in dict(cfg.populations) else 99
    seed = [cfg.seed, pop_seed, task.user, s_idx]
    rng_items = np.random.default_rng(seed + [1])
    rng_user = np.random.default_rng(seed + [2])
    rng_coin = np.random.default_rng(seed + [3])
    rng_pair = np.random.default_rng(seed + [4])
    beta = g["defaults"]["beta"] if cfg.driver_beta is None else float(cfg.driver_beta)
    learners = {cid: make_learner(cid, d, params, seed=task.user) for cid, params in g["lineup"]}
    driver = learners[OMD_DEFAULT]
    test_rows = np.concatenate([world.rows(i) for i in world.test])
    Phi_test = Phi[test_rows]
    Phi_test_items = Phi_test.reshape(len(world.test), nc, d)
    U_test = user.u[test_rows].reshape(len(world.test), nc)
    out = {cid: {"top1": [], "regret": []} for cid in learners}
    out["beta"] = {str(b): {"top1": [], "regret": []} for b in cfg.betas}
    t = 0
    for cp in cfg.checkpoints:
        while t < cp:
            i = int(world.train[rng_items.integers(len(world.train))])
            rows = world.rows(i)
            P, u = Phi[rows], user.u[rows]
            if task.strategy == "thumbs":
                r = driver.model.reward(P)
                ref = P.astype(np.float64).mean(axis=0).astype(P.dtype)
                w = driver.model.width(P, ref)
                s = r - beta * w
                a = int(np.lexsort((np.arange(nc), -s))[0])
                up = rng_user.random() < _sigmoid((u[a] - user.thumb_threshold) / user.temperature)
                for L in learners.values():
                    L.thumb(P[a], up)
            else:
                from edge_omd.strategies import choose_pair
                m = driver.model
                a, b = choose_pair(m.reward(P), lambda k: m.width(P, P[k]), strategy=task.strategy,
                                   beta=beta, rng=rng_pair)
                if not rng_user.random() < _sigmoid((u[a] - u[b]) / user.temperature):
                    a, b = b, a
                coin = bool(rng_coin.random() < 0.5)
                for L in learners.values():
                    L.pair(P[a], P[b], coin)
            t += 1
        for cid, L in learners.items():
            r = np.asarray(L.rewards(Phi_test), np.float64).reshape(len(world.test), nc)
            t1, rg = score_test(r, U_test)
            out[cid]["top1"].append(t1)
            out[cid]["regret"].append(rg)
            if cid == OMD_DEFAULT:
                # widths only where a beta needs them (the costliest step at large d)
                W = rank_widths(L.model, Phi_test_items) if any(cfg.betas) else 0.0
                for b in cfg.betas:
                    t1, rg = score_test(r - b * W, U_test)
                    out["beta"][str(b)]["top1"].append(t1)
                    out["beta"][str(b)]["regret"].append(rg)
    return out


def _run_tasks(tasks: list, workers: int, log=None) -> list:
    if workers <= 1 or len(tasks) < 4:
        it = map(run_task, tasks)
        pool = None
    else:
        import multiprocessing as mp
        pool = mp.get_context("fork").Pool(workers)
        it = pool.imap(run_task, tasks, chunksize=1)
    out, t0, step = [], time.perf_counter(), max(1, len(tasks) // 10)
    try:
        for r in it:
            out.append(r)
            if log is not None and len(out) % step == 0 and len(out) < len(tasks):
                log(f"  {len(out)}/{len(tasks)} runs, {time.perf_counter() - t0:.0f} s")
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return out


# ================================================================ statistics =================
def boot_indices(n_users: int, B: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 4404]).integers(0, n_users, size=(B, n_users))


def ci(x: np.ndarray, idx: np.ndarray) -> tuple[float, float, float]:
    """(mean, lo, hi): mean over users of x (n_users,) and its 95% bootstrap interval (resamples
    idx, shared by every quantity of a population so differences are paired)."""
    x = np.asarray(x, np.float64)
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(x.mean()), float(lo), float(hi)


# ================================================================ the run ====================
def tune(cfg: Config, world, Phi, cids: list, log) -> dict:
    """Grid point of each contender: best mean top-1 over checkpoints >= 10 on the tuning
    population (strategy random, drawn with its own seed; never a reported user)."""
    G = grids()
    chosen = {c: G[c][0] for c in cids}
    todo = [c for c in cids if len(G[c]) > 1]
    if not todo or cfg.tune_users <= 0:
        return chosen
    _G["users"]["tune"] = pw.draw_users(world, 9090 + cfg.seed, cfg.tune_users, cfg.population)
    for c in todo:
        scores = []
        for params in G[c]:
            _G["lineup"] = [(OMD_DEFAULT, {}), (c, params)]
            res = _run_tasks([Task("tune", u, "random") for u in range(cfg.tune_users)], _workers(cfg))
            j0 = [k for k, cp in enumerate(cfg.checkpoints) if cp >= 10]
            scores.append(float(np.mean([np.mean(np.asarray(r[c]["top1"])[j0]) for r in res])))
        chosen[c] = G[c][int(np.argmax(scores))]
        log(f"  tuned {LABELS[c]}: {chosen[c]} (tuning top-1 per grid point "
            + ", ".join(f"{s:.3f}" for s in scores) + ")")
    return chosen


def _workers(cfg) -> int:
    return cfg.workers or (os.cpu_count() or 1)


def run(cfg: Config, *, Phi: Optional[np.ndarray] = None, world: Optional[pw.World] = None,
        feature_specs: Sequence[str] = (), log=print) -> dict:
    """The benchmark; returns the results dict (per-user figures + summaries)."""
    t0 = time.perf_counter()
    defaults = {**_defaults(), **cfg.assume}
    if defaults["beta"] not in cfg.betas:      # the default's curve is always measured
        cfg = replace(cfg, betas=tuple(sorted(set(cfg.betas) | {defaults["beta"]})))
    if world is None:
        world = pw.build_world(n_hh=cfg.n_hh, n_demo=cfg.n_demo, n_cands=cfg.n_cands, seed=cfg.seed)
    log(f"world: {len(world.items)} prompts x {world.n_cands} answers ({len(world.train)} train, "
        f"{len(world.test)} test; demo {sum(it.source == 'demo' for it in world.items)}, "
        f"HH-RLHF {sum(it.source == 'hh' for it in world.items)})")
    if Phi is None:
        Phi = feature_matrix(world, cfg.features, style_weight=cfg.style_weight, log=log)
    cids, skipped = available(list(cfg.contenders))
    if OMD_DEFAULT not in cids:
        cids.insert(0, OMD_DEFAULT)
    users = {name: pw.draw_users(world, seed + 1000 * cfg.seed, cfg.users, cfg.population)
             for name, seed in cfg.populations}
    _G.update(world=world, Phi=Phi, cfg=cfg, users=users, defaults=defaults)
    params = tune(cfg, world, Phi, cids, log)
    lineup = [(c, params[c]) for c in cids]
    _G["lineup"] = lineup
    tasks = [Task(p, u, s) for p, _ in cfg.populations for s in cfg.strategies for u in range(cfg.users)]
    log(f"{len(tasks)} runs ({len(cfg.populations)} populations x {len(cfg.strategies)} strategies x "
        f"{cfg.users} users), {len(cids)} contenders, d={Phi.shape[1]}, features {cfg.features}")
    raw = _run_tasks(tasks, _workers(cfg), log)
    ceil = ceilings(cfg) if cfg.ceiling else {}
    res = {"config": _config_dict(cfg), "defaults": {k: v for k, v in defaults.items()},
           "world": {"prompts": len(world.items), "train": len(world.train), "test": len(world.test),
                     "n_cands": world.n_cands, "key": world.key(), "d": int(Phi.shape[1])},
           "contenders": {c: {"label": LABELS[c], "params": params[c]} for c in cids},
           "skipped": skipped, "populations": {}}
    for name, _ in cfg.populations:
        pop = {"strategies": {}, "chance": _chance(world, users[name])}
        if ceil:
            pop["ceiling"] = ceil[name]
        for s in cfg.strategies:
            rs = [r for tk, r in zip(tasks, raw) if tk.population == name and tk.strategy == s]
            blk = {"contenders": {c: {m: [r[c][m] for r in rs] for m in ("top1", "regret")} for c in cids},
                   "beta": {b: {m: [r["beta"][b][m] for r in rs] for m in ("top1", "regret")}
                            for b in rs[0]["beta"]}}
            pop["strategies"][s] = blk
        res["populations"][name] = pop
    if feature_specs:
        res["features"] = compare_features(cfg, world, feature_specs, users, log)
    res["seconds"] = time.perf_counter() - t0
    return res


def compare_features(cfg: Config, world, specs: Sequence[str], users: dict, log) -> dict:
    """Each feature spec with edge-omd defaults and the MLE, strategies random and the default
    one, the same users and streams seeds (paired across specs)."""
    out = {}
    strategies = tuple(dict.fromkeys(("random", _G["defaults"]["strategy"])))
    for spec in specs:
        Phi = feature_matrix(world, spec, style_weight=cfg.style_weight, log=log)
        _G.update(Phi=Phi, lineup=[(OMD_DEFAULT, {}), (MLE_ID, grids()[MLE_ID][1])])
        tasks = [Task(p, u, s) for p, _ in cfg.populations for s in strategies for u in range(cfg.users)]
        t0 = time.perf_counter()
        raw = _run_tasks(tasks, _workers(cfg))
        log(f"  features {spec}: d={Phi.shape[1]}, {len(tasks)} runs in {time.perf_counter() - t0:.0f} s")
        blk = {}
        for name, _ in cfg.populations:
            blk[name] = {}
            for s in strategies:
                rs = [r for tk, r in zip(tasks, raw) if tk.population == name and tk.strategy == s]
                blk[name][s] = {"beta": {b: {m: [r["beta"][b][m] for r in rs] for m in ("top1", "regret")}
                                         for b in rs[0]["beta"]},
                                MLE_ID: {m: [r[MLE_ID][m] for r in rs] for m in ("top1", "regret")}}
        out[spec] = {"d": int(Phi.shape[1]), "populations": blk,
                     "ceiling": ceilings(cfg) if cfg.ceiling else {}}
    return out


def ceiling_task(args) -> tuple[float, float]:
    """What the features allow at best for one user: the MLE (lam=1) on EVERY pair of every
    train prompt, labelled by the noiseless preference (ties left out); (top-1, regret) on test."""
    from edge_omd_bench.mle import MLERefit
    pop, k = args
    world, Phi = _G["world"], _G["Phi"]
    user = _G["users"][pop][k]
    Z, y = [], []
    for i in world.train:
        rows = world.rows(i)
        for a in range(len(rows)):
            for b in range(a + 1, len(rows)):
                du = user.u[rows[a]] - user.u[rows[b]]
                if abs(du) > 1e-12:
                    Z.append(Phi[rows[a]].astype(np.float64) - Phi[rows[b]])
                    y.append(1.0 if du > 0 else 0.0)
    m = MLERefit(Phi.shape[1], lam=1.0, maxiter=500)
    m.extend(np.asarray(Z), np.asarray(y))
    m.refit()
    test_rows = np.concatenate([world.rows(i) for i in world.test])
    r = m.reward(Phi[test_rows]).reshape(len(world.test), world.n_cands)
    return score_test(r, user.u[test_rows].reshape(len(world.test), world.n_cands))


def ceilings(cfg: Config) -> dict:
    out = {}
    for name, _ in cfg.populations:
        args = [(name, k) for k in range(cfg.users)]
        if _workers(cfg) > 1 and len(args) >= 4:
            import multiprocessing as mp
            with mp.get_context("fork").Pool(_workers(cfg)) as pool:
                r = pool.map(ceiling_task, args)
        else:
            r = [ceiling_task(a) for a in args]
        out[name] = {"top1": [x[0] for x in r], "regret": [x[1] for x in r]}
    return out


def _chance(world, users) -> float:
    rows = [world.rows(i) for i in world.test]
    return float(np.mean([np.mean([np.mean(u.u[r] >= u.u[r].max() - 1e-12) for r in rows]) for u in users]))


def _config_dict(cfg: Config) -> dict:
    d = asdict(cfg)
    d["population"] = asdict(cfg.population)
    return d


# ================================================================ report =====================
def _fmt(m, lo, hi, pct=True) -> str:
    return f"{m:.3f} [{lo:.3f},{hi:.3f}]"


def summarize(res: dict, log=print) -> dict:
    """Print the tables; returns the summary figures (means and intervals) it printed."""
    cfg = res["config"]
    cps = cfg["checkpoints"]
    show = [j for j, c in enumerate(cps) if c in REPORT_CPS] or list(range(len(cps)))
    k50 = cps.index(50) if 50 in cps else len(cps) - 1
    dft = res["defaults"]
    beta_d = str(float(dft["beta"]))
    summary: dict = {"populations": {}}
    for name, pop in res["populations"].items():
        n_users = len(next(iter(pop["strategies"].values()))["contenders"][OMD_DEFAULT]["top1"])
        idx = boot_indices(n_users, cfg["boot"], cfg["seed"])
        S = summary["populations"][name] = {}
        log(f"\n=== population {name!r}: {n_users} users, chance top-1 {pop['chance']:.3f} ===")
        if "ceiling" in pop:
            log("feature ceiling (MLE on every noiseless pair of every train prompt): top-1 "
                f"{_fmt(*ci(pop['ceiling']['top1'], idx))}, regret {_fmt(*ci(pop['ceiling']['regret'], idx))}")
        log("top-1 on unseen prompts (mean over users [95% bootstrap CI]); edge-omd rows rank with rank()'s "
            f"beta ({beta_d} = the default{', assumed' if cfg.get('assume') else ''}) and with beta 0")
        head = "k = " + " | ".join(f"{cps[j]:>3}" for j in show)
        for metric in ("top1", "regret"):
            log(f"--- {metric} --- {head}")
            for s, blk in pop["strategies"].items():
                rows = [("edge-omd defaults, rank beta=" + beta_d, blk["beta"][beta_d][metric]),
                        ("edge-omd defaults, beta=0", blk["beta"]["0.0"][metric])]
                rows += [(LABELS[c], blk["contenders"][c][metric]) for c in blk["contenders"] if c != OMD_DEFAULT]
                for label, M in rows:
                    M = np.asarray(M)
                    cells = [_fmt(*ci(M[:, j], idx)) for j in show]
                    log(f"  {s:<13} {label:<32} " + " | ".join(cells))
                    S.setdefault(s, {}).setdefault(label, {})[metric] = {
                        str(cps[j]): ci(M[:, j], idx) for j in show}
        # paired differences at k=50
        log(f"--- paired differences at k={cps[k50]} (top-1, [95% CI]) ---")
        for s, blk in pop["strategies"].items():
            base = np.asarray(blk["beta"][beta_d]["top1"])[:, k50]
            b0 = np.asarray(blk["beta"]["0.0"]["top1"])[:, k50]
            parts = [f"beta0-beta{beta_d}: {_fmt(*ci(b0 - base, idx))}"]
            for c, v in blk["contenders"].items():
                if c == OMD_DEFAULT:
                    continue
                parts.append(f"{LABELS[c]}-omd(beta0): {_fmt(*ci(np.asarray(v['top1'])[:, k50] - b0, idx))}")
            log(f"  {s:<13} " + "; ".join(parts))
        strat = pop["strategies"]
        if "random" in strat:
            log(f"--- strategies vs random, edge-omd defaults, top-1 at k={cps[k50]} (rank beta={beta_d} | beta=0) ---")
            for s, blk in strat.items():
                if s == "random":
                    continue
                parts = []
                for b in (beta_d, "0.0"):
                    x = np.asarray(blk["beta"][b]["top1"])[:, k50] - np.asarray(strat["random"]["beta"][b]["top1"])[:, k50]
                    parts.append(_fmt(*ci(x, idx)))
                log(f"  {s:<13} - random: " + " | ".join(parts))
        log("--- rank() beta curve (edge-omd defaults; stream of each strategy unchanged): top-1 per k, "
            "and mean over k ---")
        for s, blk in strat.items():
            curves = {b: np.asarray(blk["beta"][b]["top1"]) for b in blk["beta"]}
            for b, M in curves.items():
                cells = " ".join(f"{M[:, j].mean():.3f}" for j in range(len(cps)))
                area = ci(M.mean(axis=1), idx)
                gap = ci(M.mean(axis=1) - curves[beta_d].mean(axis=1), idx)
                log(f"  {s:<13} beta={b:<5} {cells} | mean {_fmt(*area)} | - beta{beta_d}: {_fmt(*gap)}")
                S.setdefault("beta_curve", {}).setdefault(s, {})[b] = {"curve": [float(M[:, j].mean()) for j in range(len(cps))],
                                                                      "mean": area, "minus_default": gap}
    if "features" in res:
        summarize_features(res, log)
    return summary


def summarize_features(res: dict, log=print) -> None:
    cfg = res["config"]
    cps = cfg["checkpoints"]
    feats = res["features"]
    base = next(iter(feats))
    log(f"\n=== features (edge-omd defaults; paired differences vs {base!r}, same users and seeds) ===")
    for name in res["populations"]:
        for s in feats[base]["populations"][name]:
            n_users = len(feats[base]["populations"][name][s]["beta"]["0.0"]["top1"])
            idx = boot_indices(n_users, cfg["boot"], cfg["seed"])
            if s == next(iter(feats[base]["populations"][name])):
                for spec, f in feats.items():
                    if f.get("ceiling"):
                        cref = np.asarray(feats[base]["ceiling"][name]["top1"])
                        cx = np.asarray(f["ceiling"][name]["top1"])
                        log(f"  {name:<7} {spec:<24} feature ceiling (MLE on every noiseless train pair) top-1 "
                            f"{_fmt(*ci(cx, idx))} | - {base}: {_fmt(*ci(cx - cref, idx))}")
            for b in dict.fromkeys(("0.0", str(float(res["defaults"]["beta"])))):
                ref = np.asarray(feats[base]["populations"][name][s]["beta"][b]["top1"])
                log(f"  {name:<7} {s:<7} rank beta={b}: top-1 at k=" + "/".join(str(c) for c in cps))
                for spec, f in feats.items():
                    M = np.asarray(f["populations"][name][s]["beta"][b]["top1"])
                    j = cps.index(50) if 50 in cps else -1
                    log(f"    {spec:<24} d={f['d']:<4} " + " ".join(f"{M[:, k].mean():.3f}" for k in range(len(cps)))
                        + f" | k={cps[j]} {_fmt(*ci(M[:, j], idx))} | - {base}: {_fmt(*ci(M[:, j] - ref[:, j], idx))}"
                        + f" | mean over k - {base}: {_fmt(*ci(M.mean(1) - ref.mean(1), idx))}")


def _print_targets(res: dict) -> None:
    try:
        from edge_omd_bench.targets import PERUSER_TARGETS, evaluate
    except ImportError as exc:
        print(f"targets not evaluated: {exc}")
        return
    print("\n=== targets (issue 11, bench/targets.py PERUSER_TARGETS) ===")
    for v in evaluate(res, PERUSER_TARGETS):
        print(f"  [{'MET' if v.met else 'n/a' if v.met is None else 'MISSED'}] {v.label}: {v.text}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_omd_bench.peruser", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny world and few users (seconds)")
    ap.add_argument("--users", type=int, help="users per population")
    ap.add_argument("--strategies", help="comma list of " + ",".join(STRATEGIES))
    ap.add_argument("--contenders", help="comma list of " + ",".join(LABELS))
    ap.add_argument("--features", default="minilm", help="feature spec of the main run (see the docstring)")
    ap.add_argument("--compare-features", help="comma list of feature specs to compare (first = reference)")
    ap.add_argument("--style-weight", type=float, default=1.0)
    ap.add_argument("--properties", help="comma list of peruser_world.PROPERTIES the users may weigh "
                    "(default: all), e.g. only the content ones")
    ap.add_argument("--group", choices=tuple(pw.GROUPS), help="draw the users of this group "
                    "(peruser_world.GROUPS: all, form, content, wording); --properties / --p-length "
                    "then override its settings")
    ap.add_argument("--p-length", type=float, help="share of users with a length taste (default 0.8)")
    ap.add_argument("--assume-beta", type=float, help="evaluate as if the runtime's default beta (rank and "
                    "the stream's ucb / thumbs pick) were this (a candidate default)")
    ap.add_argument("--assume-strategy", choices=STRATEGIES, help="... and the default pair strategy this")
    ap.add_argument("--driver-beta", type=float, help="beta of the stream's ucb / thumbs pick (default: "
                    "the runtime's DEFAULT_BETA); rank()'s beta is swept anyway")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results (per-user figures) here")
    ap.add_argument("--report-only", metavar="JSON", help="print the tables of a saved --json run")
    a = ap.parse_args(argv)
    if a.report_only:
        with open(a.report_only) as f:
            res = json.load(f)
        summarize(res, log=print)
        _print_targets(res)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass
    kw = dict(features=a.features, style_weight=a.style_weight, seed=a.seed, driver_beta=a.driver_beta)
    if a.workers:
        kw["workers"] = a.workers
    assume = {}
    if a.assume_beta is not None:
        assume["beta"] = float(a.assume_beta)
    if a.assume_strategy:
        assume["strategy"] = a.assume_strategy
    kw["assume"] = assume
    popkw = {}
    if a.properties:
        popkw["properties"] = tuple(a.properties.split(","))
        unknown = set(popkw["properties"]) - set(pw.PROPERTIES + pw.WORDING)
        if unknown:
            raise SystemExit(f"unknown properties {sorted(unknown)}; choose from "
                             f"{', '.join(pw.PROPERTIES + pw.WORDING)}")
    if a.p_length is not None:
        popkw["p_length"] = a.p_length
    if a.group or popkw:
        kw["population"] = replace(pw.GROUPS[a.group or "all"], **popkw)
    if a.users:
        kw["users"] = a.users
    if a.strategies:
        kw["strategies"] = tuple(a.strategies.split(","))
    if a.contenders:
        kw["contenders"] = tuple(a.contenders.split(","))
    cfg = Config.preset_named("quick" if a.quick else "full", **kw)
    t0 = time.perf_counter()

    def log(m):
        print(f"[{time.perf_counter() - t0:6.1f}s] {m}" if not m.startswith(("\n", " ", "-", "=")) else m, flush=True)
    specs = tuple(a.compare_features.split(",")) if a.compare_features else ()
    res = run(cfg, feature_specs=specs, log=log)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, default=float)
        print(f"results written to {a.json}")
    summarize(res, log=print)
    _print_targets(res)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
