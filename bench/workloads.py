"""The six workloads of the benchmark; each returns a JSON-able dict that report.py renders.

1 synthetic   Bradley-Terry with known theta*: agreement with the true preference and
              ||theta - theta*|| vs T, d in {64, 384}, ||theta*|| in {1, 3, 8}.
2 real        HH-RLHF harmless / helpful test splits embedded by all-MiniLM-L6-v2 through the
              project's FeatureHead: held-out pairwise accuracy vs T over random orders.
3 personal    simulated users on real text: theta_u mixes the population direction with a
              personal one (prefers shorter answers); adaptation from scratch and from a
              population prior, vs the population model alone.
4 active      label k of a pool by edge-omd's width (||z||_{cal_H^{-1}}) vs at random; the picks
              are made by the shipped selector, edge_omd.strategies.greedy_queries.
5 cost        time per update, resident memory and state bytes vs t (MLE sampled and extrapolated).
6 scale       time per update vs d.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from edge_omd_bench import streams
from edge_omd_bench.base import Contender
from edge_omd_bench.contenders import (CG, DIAGONAL, EXACT, EXACT_PRIOR, MLE_EVERY_ROUND, POPULATION,
                                       RIVER_SGD, SKLEARN_SGD, VW_DEFAULT, ContenderSpec, EdgeOMD,
                                       lineup, sketch_id)
from edge_omd_bench.mle import MLERefit
from edge_omd_bench.race import checkpoints, pair_accuracy, race, run_stream


@dataclass
class Config:
    preset: str = "full"
    seed: int = 0
    sketch_fractions: tuple = (1 / 4, 1 / 8, 1 / 16)
    mle_k: int = 100
    # 1 synthetic
    synth_dims: tuple = (64, 384)
    synth_norms: tuple = (1.0, 3.0, 8.0)
    synth_T: int = 20000
    synth_tune_T: int = 5000
    synth_repeats: int = 3
    synth_test: int = 2000
    # 2 real
    hh_dir: str = streams.DEFAULT_HH_DIR
    cache_dir: str = streams.CACHE_DIR      # embeddings cache (git-ignored)
    hh_limit: int | None = None
    hh_orders: int = 5
    # 3 personal
    personal_users: int = 5
    personal_T: int = 500
    personal_margin_std: float = 3.0      # std of theta_u^T z over the pairs: sets label noise
    # 4 active
    active_synth: tuple = (64, 8.0)         # (d, ||theta*||)
    active_pool: int = 5000
    active_labels: int = 1000
    active_batch: int = 10
    active_repeats: int = 5
    # 5 cost
    cost_dim: int = 384
    cost_T: int = 100000
    cost_window: int = 500
    cost_mle_ts: tuple = (100, 1000, 10000, 100000)
    cost_mle_extrapolate_to: int = 100000
    # 6 scale
    scale_dims: tuple = (64, 128, 256, 512, 1024, 2048, 4096)
    scale_updates: int = 200
    scale_max_s: float = 2.0                # time budget per (contender, d)
    workloads: tuple = ("synthetic", "real", "personal", "active", "cost", "scale")

    @classmethod
    def preset_named(cls, name: str, **kw) -> "Config":
        if name == "full":
            c = cls(preset="full")
        elif name == "quick":
            c = cls(preset="quick", synth_T=2000, synth_tune_T=1000, synth_repeats=1, synth_test=1000,
                    hh_orders=2, personal_users=2, personal_T=200, active_pool=1500, active_labels=300,
                    active_repeats=2, cost_T=10000, cost_mle_ts=(100, 1000, 3000, 10000),
                    scale_dims=(64, 128, 256, 512, 1024), scale_updates=100, scale_max_s=1.0)
        elif name == "smoke":
            c = cls(preset="smoke", synth_dims=(96,), synth_norms=(1.0, 8.0), synth_T=60, synth_tune_T=40,
                    synth_repeats=1, synth_test=100, hh_limit=40, hh_orders=1, personal_users=1,
                    personal_T=20, active_synth=(16, 3.0), active_pool=60, active_labels=20,
                    active_batch=5, active_repeats=1, cost_dim=96, cost_T=300, cost_window=50,
                    cost_mle_ts=(50, 100, 200), cost_mle_extrapolate_to=300, scale_dims=(16, 96),
                    scale_updates=10, scale_max_s=0.2)
        else:
            raise ValueError(f"unknown preset {name!r}")
        for k, v in kw.items():
            setattr(c, k, v)
        return c


@dataclass
class Context:
    config: Config
    log: callable = print
    featurizer: object = None          # callable items -> (n, d); None: the MiniLM FeatureHead
    results: dict = field(default_factory=dict)

    def specs(self, dim: int, **kw):
        return lineup(dim, sketch_fractions=self.config.sketch_fractions, mle_k=self.config.mle_k, **kw)


def _tuned(ctx: Context, workload: str, contender: str, default: dict, **where) -> dict:
    """The validation-tuned parameters of a contender (by id) in an earlier workload (or a
    default); `where` selects the block, e.g. d=64, B=8.0 or name="helpful-base"."""
    try:
        r = ctx.results[workload]
        for block in r.get("configs", []) + r.get("datasets", []):
            if any(block.get(k) != v for k, v in where.items()):
                continue
            if contender in block["contenders"]:
                return dict(block["contenders"][contender]["params"])
    except (KeyError, TypeError):
        pass
    return dict(default)


# ===================================================================== 1 synthetic ============
def synthetic(ctx: Context) -> dict:
    cfg = ctx.config
    out = {"configs": [], "skipped": {}}
    for d in cfg.synth_dims:
        specs, skipped = ctx.specs(d)
        out["skipped"].update(skipped)
        for B in cfg.synth_norms:
            prob = streams.SynthProblem.make(d, B, cfg.seed)
            Zte, _ = prob.stream(cfg.seed + 500, cfg.synth_test)
            Zva, _ = prob.stream(cfg.seed + 600, cfg.synth_test)
            truth_te, truth_va = Zte @ prob.theta_star, Zva @ prob.theta_star
            cps, cps_tune = checkpoints(cfg.synth_T), checkpoints(cfg.synth_tune_T)
            Ztu, ytu = prob.stream(cfg.seed + 100, cfg.synth_tune_T)           # validation stream
            tests = [prob.stream(cfg.seed + 200 + r, cfg.synth_T) for r in range(cfg.synth_repeats)]

            def ev(Zh, truth):
                def f(c: Contender):
                    th = (c.sync(), c.theta_vector())[1]
                    return {"acc": pair_accuracy(Zh @ th, truth),
                            "dist": float(np.linalg.norm(th - prob.theta_star))}
                return f
            ctx.log(f"[synthetic] d={d} |theta*|={B:g}: {len(specs)} contenders, tune T={cfg.synth_tune_T} "
                    f"x {len(specs[0].grid) if specs else 0} trials, test T={cfg.synth_T} x {cfg.synth_repeats}")
            res = race(specs, d, seed=cfg.seed, log=ctx.log, label=f"d={d} B={B:g} ",
                       tune_runs=lambda c: run_stream(c, Ztu, ytu, cps_tune, ev(Zva, truth_va)),
                       test_runs=[(lambda c, Z=Z, y=y: run_stream(c, Z, y, cps, ev(Zte, truth_te)))
                                  for Z, y in tests])
            out["configs"].append({"d": d, "B": B, "stats": prob.stats(Zte), "checkpoints": cps,
                                   "contenders": res})
    return out


# ===================================================================== 2 real text ============
def _hh(ctx: Context) -> tuple[dict, str]:
    """{split name: PairData} or ({}, reason)."""
    cfg = ctx.config
    if ctx.featurizer is None:
        ok, why = streams.Featurizer.available()
        if not ok:
            return {}, why
        ctx.featurizer = streams.Featurizer()
    data = {}
    for name in streams.HH_SPLITS:
        path = os.path.join(cfg.hh_dir, f"{name}-test.jsonl.gz")
        if not os.path.exists(path):
            return {}, f"HH-RLHF data not found at {path}"
        data[name] = streams.embed_split(path, name, ctx.featurizer, limit=cfg.hh_limit,
                                         cache_dir=cfg.cache_dir, log=ctx.log)
    return data, ""


def real(ctx: Context) -> dict:
    cfg = ctx.config
    data, why = _hh(ctx)
    if not data:
        return {"skipped_all": why}
    out = {"datasets": [], "skipped": {}}
    for name, pd in data.items():
        z = pd.z
        n, d = z.shape
        tr, te, ttr, tva = streams.split_indices(n, cfg.seed)
        specs, skipped = ctx.specs(d)
        out["skipped"].update(skipped)
        # test: every comparison is (phi_c - phi_r, chosen won); accuracy = margin > 0
        Zte, Zva = z[te], z[tva]
        Ztu, ytu = streams.flip(z[ttr], cfg.seed + 100)
        cps, cps_tune = checkpoints(len(tr)), checkpoints(len(ttr))
        orders = []
        for r in range(cfg.hh_orders):
            perm = np.random.default_rng([cfg.seed, 21, r]).permutation(tr)
            orders.append(streams.flip(z[perm], cfg.seed + 300 + r))
        ones_te, ones_va = np.ones(len(te)), np.ones(len(tva))

        def ev(Zh, ones):
            return lambda c: {"acc": pair_accuracy(c.margins(Zh), ones)}
        ctx.log(f"[real] {name}: {n} pairs, d={d}; train stream {len(tr)} (tuning: {len(ttr)} train / "
                f"{len(tva)} validation), test {len(te)}, {cfg.hh_orders} orders")
        res = race(specs, d, seed=cfg.seed, log=ctx.log, label=f"{name} ",
                   tune_runs=lambda c: run_stream(c, Ztu, ytu, cps_tune, ev(Zva, ones_va)),
                   test_runs=[(lambda c, Z=Z, y=y: run_stream(c, Z, y, cps, ev(Zte, ones_te)))
                              for Z, y in orders])
        out["datasets"].append({"name": name, "n": n, "d": d, "n_train": len(tr), "n_test": len(te),
                                "checkpoints": cps, "contenders": res})
    return out


# ===================================================================== 3 personal taste =======
class FixedTheta(Contender):
    """A model that does not learn: the population reward model shipped to every user."""
    family = "reference"

    def __init__(self, theta, name):
        self._theta, self.name = np.asarray(theta, np.float64), name

    def learn_prepared(self, item):
        pass

    def theta_vector(self):
        return self._theta

    def state_bytes(self):
        return 4 * len(self._theta)


def personal(ctx: Context) -> dict:
    cfg = ctx.config
    data, why = _hh(ctx)
    if not data:
        return {"skipped_all": why}
    # pool: all comparisons of both splits; same fixed partition as workload 2, per split
    Ztr, Zte, PHI, LEN = [], [], [], []
    for pd in data.values():
        tr, te, _, _ = streams.split_indices(len(pd.z), cfg.seed)
        Ztr.append(pd.z[tr]); Zte.append(pd.z[te])
        PHI += [pd.phi_c[tr], pd.phi_r[tr]]; LEN += [pd.len_c[tr], pd.len_r[tr]]
    Ztr, Zte = np.concatenate(Ztr), np.concatenate(Zte)
    PHI, LEN = np.concatenate(PHI).astype(np.float64), np.log1p(np.concatenate(LEN))
    d = Ztr.shape[1]
    # personal direction: ridge regression of log response length on phi (train texts only);
    # "prefers shorter answers" = minus that direction
    Pc = PHI - PHI.mean(0)
    w_len = np.linalg.solve(Pc.T @ Pc + 1.0 * np.eye(d), Pc.T @ (LEN - LEN.mean()))
    u_short = -w_len / np.linalg.norm(w_len)
    # population direction: the regularised MLE on every human label of the train part
    pop = MLERefit(d, lam=1.0, maxiter=1000)
    Zp, yp = streams.flip(Ztr, cfg.seed + 40)
    pop.extend(Zp, yp)
    pop.refit()
    theta_pop = pop.theta
    u_pop = theta_pop / np.linalg.norm(theta_pop)
    cps = checkpoints(cfg.personal_T)

    def make_user(k: int):
        rng = np.random.default_rng([cfg.seed, 50, k])
        a = rng.uniform(0.2, 0.6)              # weight of the population direction
        v = a * u_pop + (1 - a) * u_short
        v /= np.linalg.norm(v)
        # scale so the margins theta_u^T z have a fixed spread: users are consistent, not noise
        th_u = cfg.personal_margin_std / float(np.std(Ztr @ v)) * v
        idx = rng.choice(len(Ztr), size=cfg.personal_T, replace=len(Ztr) < cfg.personal_T)
        Z, _ = streams.flip(Ztr[idx], cfg.seed + 60 + k)
        y = (rng.random(len(Z)) < streams.sigmoid(Z @ th_u)).astype(np.int64)
        return th_u, Z, y, float(a)

    specs, skipped = ctx.specs(d)
    priors: dict = {}

    def prior_factory(dim, *, name, seed, eta, lam, prior_weight):
        key = (eta, lam, prior_weight)
        if key not in priors:   # population prior: exact, every human label at prior_weight
            base = EdgeOMD(dim, solver="exact", eta=eta, lam=lam)
            for z, y in zip(Zp, yp):
                base.model.learn_one(z, float(y), weight=prior_weight)
            priors[key] = base.model
        c = EdgeOMD.__new__(EdgeOMD)
        c.model, c.name = priors[key].copy(), name
        return c
    # its 4 settings: lam x the weight of the population labels (a prior learned from
    # thousands of labels at full weight is too confident to move with a few hundred)
    specs.append(ContenderSpec(EXACT_PRIOR, "edge-omd exact from population prior", "edge-omd", prior_factory,
                               [dict(eta=1.0, lam=lam, prior_weight=pw) for lam in (3.0, 30.0)
                                for pw in (0.1, 1.0)],
                               "exact, first trained on all human labels of the train part (each "
                               "at weight prior_weight), then .copy() per user and adapted"))
    val = make_user(1000)                  # the validation user: tuning only
    tests = [make_user(k) for k in range(cfg.personal_users)]
    Zev = Zte

    def ev(th_u):
        truth = Zev @ th_u
        return lambda c: {"acc": pair_accuracy(c.margins(Zev), truth)}
    ctx.log(f"[personal] {cfg.personal_users} users, T={cfg.personal_T} labels each, d={d}; "
            f"users' theta_u = s * unit(a u_pop + (1-a) u_short), a ~ U(0.2, 0.6), std(theta_u.z) = "
            f"{cfg.personal_margin_std:g}")
    res = race(specs, d, seed=cfg.seed, log=ctx.log, label="personal ",
               tune_runs=lambda c: run_stream(c, val[1], val[2], cps, ev(val[0])),
               test_runs=[(lambda c, u=u: run_stream(c, u[1], u[2], cps, ev(u[0]))) for u in tests])
    ref = [run_stream(FixedTheta(theta_pop, "population"), u[1], u[2], cps, ev(u[0]))["acc"] for u in tests]
    res[POPULATION] = {"label": "population model (no adaptation)", "family": "reference", "params": {},
                       "trials": [], "note": "regularised MLE on all train labels, fixed",
                       "fixed": {}, "learn_s": 0.0, "acc": ref}
    bayes = [float(np.mean(np.maximum(p, 1 - p))) for p in (streams.sigmoid(Zev @ u[0]) for u in tests)]
    cos = float(u_pop @ u_short)
    return {"checkpoints": cps, "contenders": res, "skipped": skipped, "d": d,
            "pop_human_acc": pair_accuracy(Zte @ theta_pop, np.ones(len(Zte))),
            "users": [{"a": u[3], "bayes_acc": b, "norm": float(np.linalg.norm(u[0]))}
                      for u, b in zip(tests, bayes)],
            "cos_pop_short": cos, "n_eval": len(Zev)}


# ===================================================================== 4 active ===============
def active_batch(model, Zpool: np.ndarray, left: np.ndarray, k: int) -> list[int]:
    """The next k pool rows to label, picked by the SHIPPED selector
    (edge_omd.strategies.greedy_queries: the widest row, fantasized on a copy so the next pick
    is not redundant with it), among the rows not labelled yet (`left`). Returns pool indices.

    greedy_queries never picks a row of zero width (z = 0: the two answers embed identically);
    if it returns fewer than k, the batch is completed with such rows in pool order, so the
    label count stays honest (labelling them teaches the model nothing)."""
    from edge_omd import strategies      # looked up at call time: the bench runs what ships
    idx = np.flatnonzero(left)
    pick = [int(idx[j]) for j, _ in strategies.greedy_queries(model, Zpool[idx], k)]
    if len(pick) < k:
        taken = set(pick)
        pick += [int(i) for i in idx if int(i) not in taken][:k - len(pick)]
    return pick


def _active_run(d, params, Zpool, ypool, Zte, truth, labels, batch, rng, mode, picks=None):
    """One learning curve of the active setting; `picks` (a list) receives every labelled pool
    row in order."""
    from edge_omd.reward_model import RewardModel
    m = RewardModel(d, solver="exact", eta=params["eta"], lam=params["lam"])
    left = np.ones(len(Zpool), bool)
    order = rng.permutation(len(Zpool))
    cps = checkpoints(labels, start=batch)
    accs, n, pos = [], 0, 0
    for cp in cps:
        while n < cp:
            k = min(batch, cp - n)
            if mode == "active":
                pick = active_batch(m, Zpool, left, k)
            else:
                pick = [int(i) for i in order[pos:pos + k]]
                pos += k
            for i in pick:
                m.learn_one(Zpool[i], float(ypool[i]))
            left[np.asarray(pick, dtype=np.int64)] = False
            if picks is not None:
                picks.extend(pick)
            n += k
        accs.append(pair_accuracy(Zte @ np.asarray(m.theta, np.float64), truth))
    return cps, accs


def active(ctx: Context) -> dict:
    cfg = ctx.config
    out = {"settings": []}
    d, B = cfg.active_synth
    prob = streams.SynthProblem.make(d, B, cfg.seed)
    pools = []
    params = _tuned(ctx, "synthetic", EXACT, {"eta": 1.0, "lam": 1.0}, d=d, B=float(B))
    for r in range(cfg.active_repeats):
        Zp, yp = prob.stream(cfg.seed + 700 + r, cfg.active_pool)
        pools.append((Zp, yp))
    Zte, _ = prob.stream(cfg.seed + 500, cfg.synth_test)
    settings = [(f"synthetic d={d} ‖θ*‖={B:g}", d, params, pools, Zte, Zte @ prob.theta_star,
                 min(cfg.active_labels, cfg.active_pool))]
    data, why_real = _hh(ctx)
    if data:
        pd = data["helpful-base"]
        tr, te, _, _ = streams.split_indices(len(pd.z), cfg.seed)
        p_real = _tuned(ctx, "real", EXACT, {"eta": 1.0, "lam": 1.0}, name="helpful-base")
        real_pools = []
        for r in range(cfg.active_repeats):     # each repeat: a random 80 % of the train part
            sub = np.random.default_rng([cfg.seed, 81, r]).permutation(tr)[:int(0.8 * len(tr))]
            real_pools.append(streams.flip(pd.z[sub], cfg.seed + 80 + r))
        settings.append(("HH-RLHF helpful-base", pd.z.shape[1], p_real, real_pools,
                         pd.z[te], np.ones(len(te)), min(cfg.active_labels, len(tr) // 2)))
    else:
        out["skipped_real"] = why_real
    for name, dd, prm, pls, Zt, truth, labels in settings:
        ctx.log(f"[active] {name}: pool {len(pls[0][0])}, up to {labels} labels, batch "
                f"{cfg.active_batch}, {cfg.active_repeats} repeats, edge-omd exact {prm}")
        curves = {"active": [], "random": []}
        for r, (Zp, yp) in enumerate(pls):
            for mode in curves:
                rng = np.random.default_rng([cfg.seed, 90, r])
                cps, acc = _active_run(dd, prm, Zp, yp, Zt, truth, labels, cfg.active_batch, rng, mode)
                curves[mode].append(acc)
        a, rnd = np.mean(curves["active"], 0), np.mean(curves["random"], 0)
        target = rnd[-1]
        reach = next((c for c, v in zip(cps, a) if v >= target), None)
        out["settings"].append({"name": name, "params": prm, "checkpoints": cps, "curves": curves,
                                "random_final": float(target), "labels": labels,
                                "active_labels_to_reach": reach,
                                "ratio": (reach / labels) if reach else None})
        ctx.log(f"  random reaches {target:.4f} with {labels} labels; active reaches it with "
                f"{reach if reach else 'more than ' + str(labels)}")
    return out


# ===================================================================== 5 cost vs t =============
def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _in_child(fn, *args):
    """Run fn(*args) in a forked child (so its resident memory is its own) and return its result."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    q = ctx.SimpleQueue()

    def target():
        try:
            q.put(("ok", fn(*args)))
        except BaseException as exc:  # report, never hang the parent
            q.put(("err", f"{type(exc).__name__}: {exc}"))
    p = ctx.Process(target=target)
    p.start()
    status, val = q.get()
    p.join()
    if status != "ok":
        raise RuntimeError(val)
    return val


def _cost_one_pass(spec: ContenderSpec, params: dict, d: int, T: int, window: int, seed: int):
    c = spec.make(d, params, seed=seed)
    rng = np.random.default_rng([seed, 33])
    th = rng.standard_normal(d)
    th *= 3.0 / np.linalg.norm(th)
    cps = [t for t in checkpoints(T, start=100) if t >= window] or [T]
    rss0 = None        # taken at the first checkpoint, once the harness's own buffers exist
    times = np.empty(T)
    t, rows = 0, []
    while t < T:
        n = min(1024, T - t)
        Z = rng.standard_normal((n, d)) / math.sqrt(d / 2.0)
        y = (rng.random(n) < streams.sigmoid(Z @ th)).astype(np.int64)
        items = [c.prepare(Z[i], int(y[i])) for i in range(n)]
        for i, it in enumerate(items):
            t0 = time.perf_counter_ns()
            c.learn_prepared(it)
            times[t + i] = time.perf_counter_ns() - t0
        del items
        t += n
        for cp in cps:
            if t - n < cp <= t:
                if rss0 is None:
                    rss0 = _rss_bytes()
                w = times[cp - window:cp]
                rows.append({"t": cp, "median_us": float(np.median(w)) / 1e3,
                             "p99_us": float(np.quantile(w, 0.99)) / 1e3,
                             "state_bytes": int(c.state_bytes()),
                             "rss_delta_bytes": int(_rss_bytes() - rss0)})
    return {"rows": rows, "total_s": float(times.sum() / 1e9)}


def _cost_mle(d: int, lam: float, k: int, ts: tuple, seed: int):
    """Sampled cost of the MLE baselines: history of t labels, solved (not timed); then
    every round: one more label + a warm refit (timed, median of 3); every k: k more labels
    + one warm refit, amortised over k."""
    rng = np.random.default_rng([seed, 34])
    th = rng.standard_normal(d)
    th *= 3.0 / np.linalg.norm(th)
    rows = []
    for t in ts:
        rss0 = _rss_bytes()
        m = MLERefit(d, lam=lam, refit_every=1)
        Z = rng.standard_normal((t + k + 3, d)) / math.sqrt(d / 2.0)
        y = (rng.random(len(Z)) < streams.sigmoid(Z @ th)).astype(np.float64)
        m.extend(Z[:t - 1], y[:t - 1])
        m.refit()
        per_round, its = [], []
        for i in range(3):
            it0 = m.n_iterations
            t0 = time.perf_counter_ns()
            m.learn_one(Z[t - 1 + i], y[t - 1 + i])
            per_round.append(time.perf_counter_ns() - t0)
            its.append(m.n_iterations - it0)
        m.extend(Z[t + 2:t + 2 + k], y[t + 2:t + 2 + k])
        t0 = time.perf_counter_ns()
        m.refit()
        every_k = (time.perf_counter_ns() - t0) / k
        rows.append({"t": t, "every_round_us": float(np.median(per_round)) / 1e3,
                     "every_k_us": float(every_k) / 1e3, "lbfgs_iters": float(np.median(its)),
                     "state_bytes": int(8 * (d + t * (d + 2))), "rss_delta_bytes": int(_rss_bytes() - rss0)})
        del m, Z
    return rows


def _fit_power(ts, us):
    """least squares log us = a + b log t; returns (a, b)."""
    b, a = np.polyfit(np.log(ts), np.log(us), 1)
    return float(a), float(b)


def cost(ctx: Context) -> dict:
    cfg = ctx.config
    d, T = cfg.cost_dim, cfg.cost_T
    specs, skipped = ctx.specs(d, include_mle=False)
    out = {"d": d, "T": T, "window": cfg.cost_window, "contenders": {}, "skipped": skipped}
    ctx.log(f"[cost] d={d}, T={T} updates per one-pass contender (each in its own process), "
            f"MLE sampled at t in {list(cfg.cost_mle_ts)}")
    for s in specs:
        # the setting tuned on real text (harmless-base), else on synthetic d = cost_dim, B = 3
        params = _tuned(ctx, "real", s.id, _tuned(ctx, "synthetic", s.id, s.grid[0], d=d, B=3.0),
                        name="harmless-base")
        t0 = time.perf_counter()
        r = _in_child(_cost_one_pass, s, params, d, T, cfg.cost_window, cfg.seed)
        out["contenders"][s.id] = {"label": s.name, "family": s.family, "params": params, **s.facts, **r}
        last = r["rows"][-1]
        ctx.log(f"  {s.name:28s} median {last['median_us']:.1f} us/update at t={last['t']}, "
                f"state {last['state_bytes']} B ({time.perf_counter() - t0:.1f}s)")
    lam = _tuned(ctx, "real", MLE_EVERY_ROUND, {"lam": 1.0}, name="harmless-base")["lam"]
    t0 = time.perf_counter()
    rows = _in_child(_cost_mle, d, lam, cfg.mle_k, tuple(cfg.cost_mle_ts), cfg.seed)
    ts = [r["t"] for r in rows]
    fits = {}
    for key in ("every_round_us", "every_k_us"):
        a, b = _fit_power(ts, [r[key] for r in rows])
        X = cfg.cost_mle_extrapolate_to
        fits[key] = {"a": a, "b": b, "at": X, "us_at": math.exp(a) * X ** b,
                     "extrapolated": X > max(ts),
                     # sum_{t<=X} e^a t^b ~ e^a X^(b+1) / (b+1): the whole stream of X rounds
                     "stream_s": math.exp(a) * X ** (b + 1) / (b + 1) / 1e6}
    out["mle"] = {"lam": lam, "k": cfg.mle_k, "rows": rows, "fits": fits}
    ctx.log(f"  MLE every round: {rows[-1]['every_round_us'] / 1e3:.1f} ms/update at t={ts[-1]} "
            f"(~t^{fits['every_round_us']['b']:.2f}) ({time.perf_counter() - t0:.1f}s)")
    return out


# ===================================================================== 6 scale in d ===========
def scale(ctx: Context) -> dict:
    cfg = ctx.config
    out = {"dims": list(cfg.scale_dims), "contenders": {}, "skipped": {}}
    ctx.log(f"[scale] time per update for d in {list(cfg.scale_dims)} "
            f"(up to {cfg.scale_updates} timed updates or {cfg.scale_max_s}s per point)")
    keep = (EXACT, CG, sketch_id(1 / 8), DIAGONAL, VW_DEFAULT, SKLEARN_SGD, RIVER_SGD)
    for d in cfg.scale_dims:
        specs, skipped = ctx.specs(d, include_mle=False, include=lambda n: n in keep)
        out["skipped"].update(skipped)
        rng = np.random.default_rng([cfg.seed, 35, d])
        Z = rng.standard_normal((cfg.scale_updates + 10, d)) / math.sqrt(d / 2.0)
        y = (rng.random(len(Z)) < 0.5).astype(np.int64)
        for s in specs:
            c = s.make(d, {"eta": 1.0, "lam": 1.0} if s.family == "edge-omd" else s.grid[1], seed=cfg.seed)
            items = [c.prepare(Z[i], int(y[i])) for i in range(len(Z))]
            for it in items[:10]:                      # warm-up (first calls compile)
                c.learn_prepared(it)
            ts, start = [], time.perf_counter()
            for it in items[10:]:
                t0 = time.perf_counter_ns()
                c.learn_prepared(it)
                ts.append(time.perf_counter_ns() - t0)
                if time.perf_counter() - start > cfg.scale_max_s and len(ts) >= 5:
                    break
            e = out["contenders"].setdefault(s.id, {"label": s.name, "family": s.family, "rows": []})
            e["rows"].append({"d": d, "median_us": float(np.median(ts)) / 1e3, "n": len(ts),
                              "state_bytes": int(c.state_bytes())})
        ctx.log(f"  d={d}: " + ", ".join(f"{v['label'].replace('edge-omd ', '')} {v['rows'][-1]['median_us']:.0f}us"
                                         for v in out["contenders"].values() if v["rows"][-1]["d"] == d))
    return out


WORKLOADS = {"synthetic": synthetic, "real": real, "personal": personal, "active": active,
             "cost": cost, "scale": scale}


def config_dict(cfg: Config) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}
