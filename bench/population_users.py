"""Synthetic population: users who share a taste and deviate from it (issue 19, item 0).

    python -m edge_omd_bench.population_users            # design + second population, 200 + 200 users
    python -m edge_omd_bench.population_users --quick    # tiny world, 30 new users (seconds)
    python -m edge_omd_bench.population_users --json out.json --contenders sdk_cold,population,m:pack

World: bench/peruser_world.py's (prompts with 6 candidate answers from the demo corpus and
HH-RLHF, split into train prompts, where feedback is given, and test prompts, never asked
about; hidden text properties; the demo's MiniLM features, bench/peruser.py `feature_matrix`).

Users (`draw_population`): one SHARED taste per population seed, drawn as one peruser user
(`peruser_world.draw_users` with `Taste.shared`: 2-4 weighted properties and, for 80 % of the
seeds, a monotone length taste), written as a vector v over the K properties plus one length
direction (shorter answers; a "long" taste is a negative weight). Each user:
    v_u = v_shared with the sign of OPPOSE_DIRECTIONS (1 or 2) of its non-zero directions
          flipped (an OPPOSING user, a share `oppose` = 25 % of users) or not (aligned, 75 %),
          + a deviation g * deviation * ||v_shared|| / sqrt(K + 1), g ~ N(0, I): its norm is
          about `deviation` (0.5) times the shared taste's;
    u(a) = v_u . (s(a), short(a)) + idiosyncratic (0.2) * N(0, 1) per answer, temperature
          T ~ U(0.2, 0.6) (peruser_world's defaults);
so the population knows most of a user's taste, and a user differs from it along a few
directions (opposing) and a little along all of them (deviation).

Protocol, per population seed (the design seed 0 and a second seed 1, reported separately):
`--population` users (200) each give a stream of `--stream` (50) random pairs: a random train
prompt, two distinct random answers, the user prefers a with P = sigma((u(a) - u(b)) / T). That
is the population's feedback (bench/population.py `Feedback.pairs`); every contender is fitted on
it once. `--users` (200) new users of the same population give the same kind of stream; their
learners see it in order, and after k = 0, 10, 25, 50 pairs every test prompt is ranked: top-1 =
the ranked first answer is the user's favourite (max u). The agree rate is undefined here (test
prompts have no population feedback). Statistics: mean over new users, 95 % paired bootstrap over
users (the same resamples for every contender).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

import numpy as np

from edge_omd_bench import peruser as pu
from edge_omd_bench import peruser_world as pw
from edge_omd_bench import population as popm

CHECKPOINTS = (0, 10, 25, 50)
RULE_CPS = (10, 50)
#: the rule (docs/BENCHMARKS.md): above the population alone AND the per-user learner alone
RULE_AGAINST = ("population", "sdk_cold")
RULE_MARGIN = 0.005
POPULATIONS = (("design", 0), ("second", 1))


@dataclass(frozen=True)
class Taste:
    """How a population's users are drawn (module docstring)."""
    deviation: float = 0.5          # a user's deviation norm / the shared taste's norm (about)
    oppose: float = 0.25            # share of users opposing the population
    oppose_directions: tuple = (1, 2)   # how many of the shared directions they flip
    shared: pw.PopulationConfig = field(default_factory=lambda: pw.PopulationConfig(p_target=0.0))


def length_direction(world: pw.World) -> np.ndarray:
    """The length direction, standardised: positive for shorter answers."""
    x = -world.log_words
    return (x - x.mean()) / max(x.std(), 1e-12)


def shared_taste(world: pw.World, seed: int, taste: Taste) -> np.ndarray:
    """v_shared (K + 1,): one peruser user's weights on the K hidden properties (its wording
    weights are zero: `taste.shared` draws from PROPERTIES) and length taste, drawn from `seed`."""
    u = pw.draw_users(world, 50_000 + seed, 1, taste.shared)[0]
    sign = {"none": 0.0, "short": 1.0, "long": -1.0}[u.len_kind]
    return np.r_[u.w[:world.S.shape[1]], sign * u.w_len]


def draw_population(world: pw.World, seed: int, n: int, taste: Taste, *, first_id: int = 0
                    ) -> tuple[list, np.ndarray]:
    """(users, opposing flags): n users of population `seed` (ids first_id...), as
    peruser_world.User (w = v_u[:K], length kind "short" with weight v_u[K])."""
    v_shared = shared_taste(world, seed, taste)
    X = np.column_stack([world.S, length_direction(world)])
    nz = np.flatnonzero(v_shared)
    scale = taste.deviation * np.linalg.norm(v_shared) / math.sqrt(len(v_shared))
    train_rows = np.concatenate([world.rows(i) for i in world.train])
    users, opposing = [], np.zeros(n, bool)
    for j in range(n):
        uid = first_id + j
        rng = np.random.default_rng([seed, 0x50F, uid])
        v = v_shared.copy()
        if rng.random() < taste.oppose:
            opposing[j] = True
            m = min(int(rng.choice(taste.oppose_directions)), len(nz))
            v[rng.choice(nz, size=m, replace=False)] *= -1.0
        v = v + scale * rng.standard_normal(len(v))
        T = float(rng.uniform(*taste.shared.temperature))
        u = X @ v + taste.shared.idiosyncratic * rng.standard_normal(len(X))
        users.append(pw.User(uid, v[:-1], float(v[-1]), "short", 0.0, T, u,
                             float(np.median(u[train_rows]))))
    return users, opposing


def pair_stream(world: pw.World, user, n: int, seed: int) -> list[tuple[int, int]]:
    """n (preferred, other) row pairs: a random train prompt, two distinct random answers, the
    user's Bradley-Terry choice at temperature T."""
    rng = np.random.default_rng([seed, 0x51F, user.id])
    out = []
    for _ in range(n):
        rows = world.rows(int(world.train[rng.integers(len(world.train))]))
        a, b = rng.choice(rows, size=2, replace=False)
        if not rng.random() < 1.0 / (1.0 + math.exp(-(user.u[a] - user.u[b]) / user.temperature)):
            a, b = b, a
        out.append((int(a), int(b)))
    return out


@dataclass
class Config:
    population: int = 200          # users whose feedback the contenders are fitted on
    users: int = 200               # new users evaluated
    stream: int = 50               # pairs per user (population and new)
    checkpoints: tuple = CHECKPOINTS
    populations: tuple = POPULATIONS
    taste: Taste = field(default_factory=Taste)
    contenders: tuple = popm.DEFAULT_LINEUP
    n_hh: int = 150
    n_demo: Optional[int] = None
    features: str = "minilm"
    boot: int = 2000
    world_seed: int = 0

    @classmethod
    def quick(cls, **kw) -> "Config":
        return replace(cls(population=60, users=30, n_hh=24, n_demo=24, boot=300), **kw)


def run(cfg: Config, *, world: Optional[pw.World] = None, Phi: Optional[np.ndarray] = None,
        extra=(), log=print) -> dict:
    """The benchmark; `extra`: Contender objects run next to cfg.contenders (the hook)."""
    t0 = time.perf_counter()
    if world is None:
        world = pw.build_world(n_hh=cfg.n_hh, n_demo=cfg.n_demo, seed=cfg.world_seed)
    if Phi is None:
        Phi = pu.feature_matrix(world, cfg.features, log=log)
    lineup = [c for c in popm.resolve(cfg.contenders) + list(extra)
              if popm.applies(c, item_votes=False, thumbs=False)]
    test_rows = np.concatenate([world.rows(i) for i in world.test])
    nt, nc = len(world.test), world.n_cands
    res = {"config": asdict(cfg), "contenders": {c.id: c.label for c in lineup},
           "world": {"prompts": len(world.items), "train": len(world.train), "test": nt,
                     "n_cands": nc, "d": int(Phi.shape[1]), "key": world.key()},
           "populations": {}}
    for name, seed in cfg.populations:
        pop_users, _ = draw_population(world, seed, cfg.population, cfg.taste)
        recs = [(u.id, a, b) for u in pop_users for a, b in pair_stream(world, u, cfg.stream, seed)]
        r = np.array(recs, np.int64)
        fb = popm.Feedback.pairs(Phi, r[:, 0], r[:, 1], r[:, 2], seed=seed, new_items=True,
                                 group=np.arange(len(Phi)) // nc)
        new, opposing = draw_population(world, seed, cfg.users, cfg.taste, first_id=cfg.population)
        out = {"opposing": opposing.tolist(), "top1": {}, "fit": {}, "chance": float(np.mean(
            [np.mean([np.mean(u.u[world.rows(i)] >= u.u[world.rows(i)].max() - 1e-12)
                      for i in world.test]) for u in new]))}
        for c in lineup:
            t = time.perf_counter()
            make = c.fit(fb)
            fit_s = time.perf_counter() - t
            M = np.zeros((cfg.users, len(cfg.checkpoints)))
            for j, u in enumerate(new):
                stream = pair_stream(world, u, cfg.stream, seed)
                L, k = make(), 0
                U = u.u[test_rows].reshape(nt, nc)
                for ci, cp in enumerate(cfg.checkpoints):
                    while k < cp:
                        L.pair(*stream[k])
                        k += 1
                    M[j, ci] = pu.score_test(L.scores(test_rows).reshape(nt, nc), U)[0]
            out["top1"][c.id] = M.tolist()
            out["fit"][c.id] = {"seconds": fit_s, "eval_seconds": time.perf_counter() - t - fit_s,
                                **getattr(make, "info", {})}
        res["populations"][name] = out
        log(f"  population {name!r} (seed {seed}): {cfg.population} users fitted, {cfg.users} new "
            f"users ({int(opposing.sum())} opposing), {time.perf_counter() - t0:.0f} s")
    res["seconds"] = time.perf_counter() - t0
    return res


def summarize(res: dict) -> dict:
    """{population: {"n": users, k: {cid: Estimate, "minus": {against: {cid: Estimate}}}}}."""
    cfg = res["config"]
    out = {}
    for pi, (name, pop) in enumerate(res["populations"].items()):
        T = {cid: np.asarray(v) for cid, v in pop["top1"].items()}
        n = len(next(iter(T.values())))
        W = popm.cluster_weights(np.zeros(n), cfg["boot"], [0x5E, pi])
        ones = np.ones(n)
        blk = {"n": n, "opposing": int(np.sum(pop["opposing"]))}
        for ci, cp in enumerate(cfg["checkpoints"]):
            f = {cid: popm.ratio_ci(M[:, ci], ones, W) for cid, M in T.items()}
            f["minus"] = {ref: {cid: popm.ratio_ci(M[:, ci] - T[ref][:, ci], ones, W)
                                for cid, M in T.items() if cid != ref}
                          for ref in RULE_AGAINST if ref in T}
            blk[str(cp)] = f
        out[name] = blk
    return out


def rule_verdict(summary: dict, cid: str) -> dict:
    """Contender `cid` against each of RULE_AGAINST at every k of RULE_CPS, every population:
    mean paired top-1 difference > 0 and its interval's lower end >= -RULE_MARGIN."""
    out, met = {}, bool(summary)
    for name, blk in summary.items():
        for k in map(str, RULE_CPS):
            for ref in RULE_AGAINST:
                d = blk.get(k, {}).get("minus", {}).get(ref, {}).get(cid)
                ok = d is not None and d.mean > 0 and d.lo >= -RULE_MARGIN
                out[f"{name} k={k} vs {ref}"] = ok
                met &= ok
    out["met"] = met
    return out


def markdown(res: dict, summary: dict) -> str:
    labels = res["contenders"]
    cps = [str(k) for k in res["config"]["checkpoints"]]
    L = []
    for name, blk in summary.items():
        L.append(f"### Population \"{name}\": {blk['n']} new users ({blk['opposing']} opposing), "
                 f"chance top-1 {res['populations'][name]['chance']:.3f}\n")
        L.append("Top-1 on unseen prompts after k pairs: mean [95 % CI]\n")
        L.append("| contender | " + " | ".join(f"k = {k}" for k in cps) + " |")
        L.append("|---|" + "---|" * len(cps))
        for cid in labels:
            L.append(f"| {labels[cid]} | " + " | ".join(blk[k][cid].fmt() for k in cps) + " |")
        for ref, diffs in blk[cps[0]]["minus"].items():
            L.append(f"\nPaired difference to {labels[ref]}:\n")
            L.append("| contender | " + " | ".join(f"k = {k}" for k in cps) + " |")
            L.append("|---|" + "---|" * len(cps))
            for cid in diffs:
                L.append(f"| {labels[cid]} | " + " | ".join(
                    blk[k]["minus"][ref][cid].fmt_diff() for k in cps) + " |")
        lams = res["populations"][name]["fit"].get("population", {}).get("lam")
        if lams is not None:
            L.append(f"\nPopulation model lam (chosen on population users): {lams:g}")
        L.append("")
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_omd_bench.population_users",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny world, 60 + 30 users, 300 resamples")
    ap.add_argument("--population", type=int, help="users fitted on (default 200)")
    ap.add_argument("--users", type=int, help="new users evaluated (default 200)")
    ap.add_argument("--stream", type=int, help="pairs per user (default 50)")
    ap.add_argument("--seeds", help="comma list of population seeds (default 0,1: design, second)")
    ap.add_argument("--deviation", type=float, help="a user's deviation / the shared taste (0.5)")
    ap.add_argument("--oppose", type=float, help="share of opposing users (0.25)")
    ap.add_argument("--contenders", help="comma list of names or module:function")
    ap.add_argument("--features", help="peruser feature spec (default minilm)")
    ap.add_argument("--boot", type=int)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass
    kw = {k: getattr(a, k) for k in ("population", "users", "stream", "features", "boot")
          if getattr(a, k) is not None}
    if a.seeds:
        seeds = [int(s) for s in a.seeds.split(",")]
        kw["populations"] = tuple(({0: "design", 1: "second"}.get(s, f"seed {s}"), s) for s in seeds)
    tk = {k: getattr(a, k) for k in ("deviation", "oppose") if getattr(a, k) is not None}
    if tk:
        kw["taste"] = Taste(**tk)
    if a.contenders:
        kw["contenders"] = tuple(a.contenders.split(","))
    cfg = Config.quick(**kw) if a.quick else Config(**kw)
    load0 = os.getloadavg()
    print(f"# synthetic population (bench/population_users.py): python -m "
          f"edge_omd_bench.population_users {' '.join(argv or sys.argv[1:])}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load average at start "
          f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", flush=True)
    res = run(cfg)
    summary = summarize(res)
    w = res["world"]
    print(f"\nworld: {w['prompts']} prompts x {w['n_cands']} answers ({w['train']} train, {w['test']} "
          f"test), d = {w['d']}; taste: {cfg.taste}")
    print(markdown(res, summary))
    print(f"Rule (docs/BENCHMARKS.md): at k = {', '.join(map(str, RULE_CPS))}, every population, "
          f"against {' and '.join(RULE_AGAINST)}: mean paired top-1 difference > 0 and CI lower end "
          f">= -{RULE_MARGIN}")
    for cid, label in res["contenders"].items():
        if cid in RULE_AGAINST:
            continue
        v = rule_verdict(summary, cid)
        print(f"  {label}: {'MET' if v['met'] else 'not met'} ("
              + "; ".join(f"{k} {'+' if ok else '-'}" for k, ok in v.items() if k != "met") + ")")
    print(f"total {res['seconds']:.0f} s; load average at end "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, default=float)
        print(f"written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
