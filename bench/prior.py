"""Does a population prior help a new user? HH-RLHF with disjoint halves (issue 11 item 5).

    python -m edge_omd_bench.prior                    # 200 users, the three populations, the sweep
    python -m edge_omd_bench.prior --populations harmless-base
    python -m edge_omd_bench.prior --quick            # 40 users, a smaller sweep (a minute)
    python -m edge_omd_bench.prior --users 400 --strengths 1,10 --ranks 16 --seed 1

Data: a population = HH-RLHF test splits joined by '+' (by default three: harmless-base alone,
helpful-base alone, and the two pooled; `--populations` names others, each written as one
section), read from /work/shared/data/hh-rlhf
(never copied), embedded by the SDK's default head (all-MiniLM-L6-v2 fp32, pooling `mean`, the
features a user of the SDK gets; bench/streams.py's FeatureHead, cached in bench/cache/). The
pooled pairs are split once by a fixed seed into two disjoint halves:
  A  the population: `edge_omd.prior.fit_prior(phi_chosen - phi_rejected of A, strength=s,
     rank=r, phi_mean=..., fingerprint=the head's)` at the models' default lam: theta_0 =
     argmin s/n sum loss + lam/2 ||theta||^2, cal_H_0 = lam I + s H_0 (one fit per s and r);
  B  the users. A user is a random stream of `--stream` (50) pairs of B, fed in order to a new
     learner; the user's held-out pairs are all the other pairs of B.
Learner: the SDK's default `RewardModel(d)` (solver auto = exact at d = 384, eta 1, lam 1,
float32), cold (theta = 0, cal_H = lam I) or `RewardModel(d, prior=prior)` (theta = theta_0,
cal_H = lam I + s H_0). Both learn the same stream of each user (paired comparison).
Aligned users prefer what the population chose; opposing users prefer what it rejected (every
label of B flipped: stream and held-out pairs).

Metric: held-out pairwise accuracy (r(preferred) > r(other); a tie, e.g. theta = 0, counts 1/2)
after n feedbacks. Statistics: 95% percentile intervals of a two-way paired bootstrap that
resamples users AND held-out pairs of B (`--boot` resamples, fixed seed), so an interval also
covers which pairs happened to be held out (at n = 0 every user starts from the same theta_0,
and an interval over users alone would be 0 wide). Differences prior - cold use the same
resamples for both. Catch-up of opposing users: the first n of the grid 0..10, 15, 20, ..., 50
at which the prior's accuracy is >= the cold start's or the interval of the difference lies
above -1 point (CATCHUP_MARGIN: at most 1 point worse; target: <= 10); "exactly" (the interval
contains 0) is reported too.

Sweep: strength x rank. Choice of the default (strength s, rank r): among the settings that
help aligned users at 0, 5 and 10 feedbacks (difference interval above 0 at each) AND whose
opposing users are caught up to 1 point from some n <= 10 on (at every later n of the grid), the
one with the largest mean aligned gain over n = 0, 5, 10, 25, 50 (in tenths of a point; a tie goes
to the smaller rank). If none qualifies, the bench says so: a prior that never helps is not a
default.

Writes the tables to bench/results/prior.md (`--out`). Nothing is asserted here.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from edge_omd_bench import streams

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "prior.md")
REPORT_CPS = (0, 5, 10, 25, 50)
CATCHUP_CPS = tuple(range(11)) + (15, 20, 25, 30, 35, 40, 45, 50)
CATCHUP_TARGET = 10
#: accuracy points an opposing user may trail the cold start by and count as caught up (the
#: difference's interval above -CATCHUP_MARGIN). With 200 paired users x ~1100 held-out pairs
#: the interval of a 0.1-point lag excludes 0, so "not behind at all" is never met by a theta_0
#: != 0 however short; it is reported too, but the rule uses this margin.
CATCHUP_MARGIN = 1.0
ACC0_TARGET = 0.58      # issue 11: accuracy at 0 feedbacks with the prior on the held-out half
#: the default populations: each split alone (one population's taste), and the two pooled
POPULATIONS = tuple(streams.HH_SPLITS) + ("+".join(streams.HH_SPLITS),)


@dataclass
class Config:
    users: int = 200
    stream: int = 50                      # feedbacks per user
    # the grid: strengths x ranks, one fit_prior each
    strengths: tuple = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
    ranks: tuple = (0, 16, 64)
    boot: int = 1000
    seed: int = 0
    report_cps: tuple = REPORT_CPS
    catchup_cps: tuple = CATCHUP_CPS

    @classmethod
    def quick(cls, **kw) -> "Config":
        return replace(cls(users=40, strengths=(1.0, 10.0, 100.0), ranks=(0, 16), boot=400), **kw)

    def grid(self) -> list:
        """[(strength, rank)] in run order, each fitted once."""
        return [(float(s), int(r)) for r in dict.fromkeys(self.ranks)
                for s in sorted(set(self.strengths))]

    def __post_init__(self):
        if self.users < 2 or self.stream < 1 or self.boot < 10:
            raise ValueError("users >= 2, stream >= 1 and boot >= 10 are needed")
        if max(self.report_cps + self.catchup_cps) > self.stream or min(self.report_cps) < 0:
            raise ValueError(f"checkpoints must lie in 0..stream={self.stream}")


@dataclass
class Pairs:
    """Embedded comparisons: phi of the chosen and the rejected response of each pair."""
    name: str
    phi_c: np.ndarray                     # (n, d) float32
    phi_r: np.ndarray                     # (n, d) float32
    fingerprint: Optional[bytes] = None   # 32-byte fingerprint of the head the features came from
    group: Optional[np.ndarray] = None    # (n,) int: index into `groups` (the source split)
    groups: tuple = ()

    def take(self, name: str, idx: np.ndarray) -> "Pairs":
        return Pairs(name, self.phi_c[idx], self.phi_r[idx], self.fingerprint,
                     None if self.group is None else self.group[idx], self.groups)

    @property
    def n(self) -> int:
        return len(self.phi_c)

    @property
    def dim(self) -> int:
        return self.phi_c.shape[1]


# ================================================================ data =======================
def _cached_split(name: str, featurizer, cache_dir: str, log) -> streams.PairData:
    """One split's default-head features. bench/streams.py keys its cache by the file's size and
    mtime; when the data file was touched since (same bytes), an existing full-split cache file
    is reused once it is bound to this data and this head: its response lengths equal the
    file's for every pair, and the head re-embeds the first pairs to within 1e-4. Otherwise
    streams.embed_split embeds the split (and caches it)."""
    path = os.path.join(streams.DEFAULT_HH_DIR, f"{name}-test.jsonl.gz")
    rows = streams.load_hh(path)
    len_c = np.array([len(r[1]) for r in rows], np.float64)
    len_r = np.array([len(r[3]) for r in rows], np.float64)
    probe = rows[:4]
    for f in sorted(glob.glob(os.path.join(cache_dir, f"{name}-*.npz"))):
        a = np.load(f)
        if {"phi_c", "phi_r", "len_c", "len_r"} - set(a.files) or len(a["len_c"]) != len(rows):
            continue
        if not (np.array_equal(a["len_c"], len_c) and np.array_equal(a["len_r"], len_r)):
            continue
        with warnings.catch_warnings():       # long HH transcripts are truncated, as when cached
            warnings.simplefilter("ignore")
            got = featurizer([(pc, rc) for pc, rc, _, _ in probe]
                             + [(pr, rr) for _, _, pr, rr in probe])
        want = np.concatenate([a["phi_c"][:len(probe)], a["phi_r"][:len(probe)]])
        if got.shape == want.shape and float(np.abs(got - want).max()) < 1e-4:
            log(f"  {name}: {len(rows)} pairs from {os.path.relpath(f)} (checked against the head)")
            return streams.PairData(name, a["phi_c"], a["phi_r"], a["len_c"], a["len_r"])
    return streams.embed_split(path, name, featurizer, cache_dir=cache_dir, log=log)


def load_hh_pairs(splits=streams.HH_SPLITS, cache_dir: str = streams.CACHE_DIR, log=print) -> Pairs:
    """HH-RLHF test splits, pooled in this order, with the default head's features."""
    ok, why = streams.Featurizer.available()
    if not ok:
        raise SystemExit(f"cannot embed HH-RLHF: {why}")
    feat = streams.Featurizer(cache_dir)
    parts = [_cached_split(s, feat, cache_dir, log) for s in splits]
    fp = feat.head().fingerprint
    return Pairs("+".join(splits), np.concatenate([p.phi_c for p in parts]),
                 np.concatenate([p.phi_r for p in parts]), bytes(fp),
                 np.concatenate([np.full(len(p.phi_c), g) for g, p in enumerate(parts)]),
                 tuple(splits))


def halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed split of n pairs into A (the population the prior is fitted on) and B (the users)."""
    p = np.random.default_rng([seed, 0x5052]).permutation(n)
    return np.sort(p[: n // 2]), np.sort(p[n // 2:])


def draw_streams(n_b: int, users: int, stream: int, seed: int) -> np.ndarray:
    """(users, stream) indices into B: each user's feedback pairs, in order, without repeats."""
    if stream >= n_b:
        raise ValueError(f"a stream of {stream} pairs leaves no held-out pair in B ({n_b} pairs)")
    return np.stack([np.random.default_rng([seed, 0x55, u]).choice(n_b, stream, replace=False)
                     for u in range(users)])


# ================================================================ simulation =================
def simulate(B: Pairs, user_streams: np.ndarray, make_model: Callable, cps: tuple,
             opposing: bool) -> np.ndarray:
    """Held-out correctness (users, len(cps), n_B) float32 in {0, 1/2, 1} of a new learner per
    user (`make_model()`) fed that user's stream; entries of the user's own stream pairs are 0
    (they are masked out by `heldout_mask`). opposing: every label flipped."""
    z = B.phi_c.astype(np.float64) - B.phi_r.astype(np.float64)   # (n_B, d)
    if opposing:
        z = -z
    cps = tuple(sorted(cps))
    out = np.zeros((len(user_streams), len(cps), B.n), np.float32)
    for u, idx in enumerate(user_streams):
        m = make_model()
        k = 0
        for n in range(cps[-1] + 1):
            while k < len(cps) and cps[k] == n:
                margin = z @ np.asarray(m.theta, np.float64)
                out[u, k] = (margin > 0) + 0.5 * (margin == 0)
                k += 1
            if n < cps[-1]:
                i = idx[n]
                if opposing:
                    m.learn_pair(B.phi_r[i], B.phi_c[i])
                else:
                    m.learn_pair(B.phi_c[i], B.phi_r[i])
        out[u, :, idx] = 0.0
    return out


def heldout_mask(user_streams: np.ndarray, n_b: int) -> np.ndarray:
    """(users, n_B) float32: 1 on the pairs held out from each user (B minus its stream)."""
    M = np.ones((len(user_streams), n_b), np.float32)
    for u, idx in enumerate(user_streams):
        M[u, idx] = 0.0
    return M


class Bootstrap:
    """Two-way paired bootstrap over users (rows) and held-out pairs (columns): resample b has
    user counts W[b] and pair counts V[b]; its accuracy is sum_uj W_bu V_bj M_uj C_uj /
    sum_uj W_bu V_bj M_uj. Linear in C, so the resampled difference of two arms is the
    difference of their resampled accuracies (same W, V: paired)."""

    def __init__(self, mask: np.ndarray, boot: int, seed: int):
        users, pairs = mask.shape
        rng = np.random.default_rng([seed, 0xB007])
        self.W = rng.multinomial(users, np.full(users, 1.0 / users), boot).astype(np.float32)
        self.V = rng.multinomial(pairs, np.full(pairs, 1.0 / pairs), boot).astype(np.float32)
        self.mask = mask
        self.den = self._num(mask)

    def _num(self, X: np.ndarray) -> np.ndarray:
        return np.einsum("bj,bj->b", self.W @ X, self.V, dtype=np.float64)

    def point(self, C: np.ndarray) -> float:
        """The estimate: mean over users of each user's held-out accuracy (equal sizes)."""
        return float((self.mask * C).sum(dtype=np.float64) / self.mask.sum(dtype=np.float64))

    def resamples(self, C: np.ndarray) -> np.ndarray:
        return self._num(self.mask * C) / self.den


def ci(samples: np.ndarray) -> tuple[float, float]:
    return float(np.quantile(samples, 0.025)), float(np.quantile(samples, 0.975))


@dataclass
class Arm:
    """One learner on one user population: accuracy per checkpoint with its interval, and the
    bootstrap resamples (kept for paired differences)."""
    cps: tuple
    acc: dict = field(default_factory=dict)       # n -> point
    ci: dict = field(default_factory=dict)        # n -> (lo, hi)
    boot: dict = field(default_factory=dict)      # n -> resamples

    @classmethod
    def measure(cls, C: np.ndarray, cps: tuple, keep: tuple, bs: Bootstrap) -> "Arm":
        arm = cls(tuple(keep))
        for k, n in enumerate(sorted(cps)):
            if n in keep:
                arm.acc[n] = bs.point(C[:, k])
                arm.boot[n] = bs.resamples(C[:, k])
                arm.ci[n] = ci(arm.boot[n])
        return arm

    def minus(self, other: "Arm", n: int) -> tuple[float, float, float]:
        d = self.boot[n] - other.boot[n]
        lo, hi = ci(d)
        return self.acc[n] - other.acc[n], lo, hi


def _behind(prior: Arm, cold: Arm, n: int, margin: float = 0.0) -> bool:
    """margin 0: the prior is behind at n when its estimate is below the cold start's and the
    difference's interval lies below 0. margin > 0 (accuracy points): behind unless the
    interval's lower end is above -margin (non-inferiority: at most `margin` points worse, with
    95% confidence)."""
    d, lo, hi = prior.minus(cold, n)
    if margin > 0:
        return not (d >= 0 or lo > -margin / 100.0)
    return not (d >= 0 or lo <= 0 <= hi)


def catch_up(prior: Arm, cold: Arm, margin: float = 0.0) -> Optional[int]:
    """First n of the grid where the prior is not behind (`_behind`); None: behind at every n."""
    for n in sorted(prior.cps):
        if not _behind(prior, cold, n, margin):
            return n
    return None


def within(prior: Arm, cold: Arm, points: float) -> Optional[int]:
    """First n of the grid from which on the prior trails the cold start by less than `points`
    accuracy points (estimate), or None. Informative only."""
    last = None
    for n in sorted(prior.cps, reverse=True):
        if 100 * (prior.acc[n] - cold.acc[n]) <= -points:
            break
        last = n
    return last


def stays_caught_up(prior: Arm, cold: Arm, margin: float = 0.0) -> Optional[int]:
    """First n of the grid from which on the prior is never behind again (None: behind at the
    last n). A prior that catches up at n = 3 but is behind again at n = 10 has not caught up."""
    last = None
    for n in sorted(prior.cps, reverse=True):
        if _behind(prior, cold, n, margin):
            break
        last = n
    return last


# ================================================================ the benchmark ==============
def _prior_api():
    from edge_omd import prior as P
    return P


def run(cfg: Config, data: Pairs, log=print) -> dict:
    """The benchmark on `data`; returns every figure (see `render`)."""
    from edge_omd import RewardModel
    P = _prior_api()
    t0 = time.perf_counter()
    A_idx, B_idx = halves(data.n, cfg.seed)
    A, B = data.take("A", A_idx), data.take("B", B_idx)
    us = draw_streams(B.n, cfg.users, cfg.stream, cfg.seed)
    bs = Bootstrap(heldout_mask(us, B.n), cfg.boot, cfg.seed)
    cps = tuple(sorted(set(cfg.report_cps) | set(cfg.catchup_cps)))
    fp_kw = {} if data.fingerprint is None else {"head_fingerprint": data.fingerprint}
    d = data.dim

    def arms(make_model, label):
        t = time.perf_counter()
        al = Arm.measure(simulate(B, us, make_model, cps, False), cps, cfg.report_cps, bs)
        op = Arm.measure(simulate(B, us, make_model, cps, True), cps, cps, bs)
        log(f"  {label}: {time.perf_counter() - t:.1f} s")
        return al, op

    cold = arms(lambda: RewardModel(d, **fp_kw), "cold start")
    ZA = A.phi_c.astype(np.float64) - A.phi_r.astype(np.float64)
    phi_mean = np.concatenate([A.phi_c, A.phi_r]).astype(np.float64).mean(axis=0)
    settings = {}
    for s, r in cfg.grid():
        t = time.perf_counter()
        prior = P.fit_prior(ZA, strength=s, rank=r, phi_mean=phi_mean, fingerprint=data.fingerprint)
        ev = np.sort(np.einsum("ij,ij->i", prior.V, prior.V))[::-1] + prior.c
        log(f"  fit_prior strength {s:g}, rank {r} on {A.n} pairs: {time.perf_counter() - t:.1f} "
            f"s, {prior.nbytes} bytes, ||theta_0|| = {np.linalg.norm(prior.theta0):.3g}, c = "
            f"{prior.c:.3g}, top eigenvalue of H_0 {ev[0] if len(ev) else prior.c:.3g}")
        al, op = arms(lambda: RewardModel(d, prior=prior, **fp_kw), f"prior s={s:g} r={r}")
        settings[(s, r)] = {"aligned": al, "opposing": op, "nbytes": prior.nbytes,
                            "theta0_norm": float(np.linalg.norm(prior.theta0)),
                            "c": prior.c, "top_eig": float(ev[0]) if len(ev) else prior.c}
    cold_al, cold_op = cold
    summary = {}
    for key, st in settings.items():
        al, op = st["aligned"], st["opposing"]
        gains = {n: al.minus(cold_al, n) for n in cfg.report_cps}
        helps = all(gains[n][1] > 0 for n in cfg.report_cps if n <= CATCHUP_TARGET)
        cu, stay = catch_up(op, cold_op), stays_caught_up(op, cold_op)
        ni_cu = catch_up(op, cold_op, CATCHUP_MARGIN)
        ni_stay = stays_caught_up(op, cold_op, CATCHUP_MARGIN)
        summary[key] = {"gains": gains, "helps_early": helps, "catch_up": cu, "stays": stay,
                        "ni_catch_up": ni_cu, "ni_stays": ni_stay,
                        "within1": within(op, cold_op, 1.0),
                        "ok": helps and ni_stay is not None and ni_stay <= CATCHUP_TARGET,
                        "mean_gain": float(np.mean([gains[n][0] for n in cfg.report_cps])),
                        "opp": {n: op.minus(cold_op, n) for n in cfg.report_cps}}
    ok = [k for k in summary if summary[k]["ok"]]
    chosen = max(ok, key=lambda k: choice_key(summary, k)) if ok else None
    return {"cfg": cfg, "n": data.n, "nA": A.n, "nB": B.n, "d": d, "name": data.name,
            "cold": cold, "settings": settings, "summary": summary, "chosen": chosen,
            "cross": cross_groups(A, B, float(P.DEFAULT_STRENGTH), cfg),
            "seconds": time.perf_counter() - t0,
            "shipped": (float(P.DEFAULT_STRENGTH), int(P.DEFAULT_RANK))}


def choice_key(summary: dict, key: tuple) -> tuple:
    """The rule's order among qualifying settings: the largest mean aligned gain, counted in
    tenths of a point; a tie goes to the smaller rank (the smaller file)."""
    return round(1000 * summary[key]["mean_gain"]), -key[1]


def cross_groups(A: Pairs, B: Pairs, strength: float, cfg: Config) -> list:
    """With several source splits pooled: theta_0 fitted on A's pairs of one split (this
    strength, rank 0), its accuracy on B's pairs of each split (95% bootstrap over those
    pairs). Do the splits' users agree with each other's population?"""
    if A.group is None or len(A.groups) < 2:
        return []
    P = _prior_api()
    out = []
    for gf, fit_name in enumerate(A.groups):
        a = A.take(fit_name, np.flatnonzero(A.group == gf))
        th = P.fit_prior(a.phi_c.astype(np.float64) - a.phi_r, strength=strength, rank=0).theta0
        for ge, eval_name in enumerate(B.groups):
            b = B.take(eval_name, np.flatnonzero(B.group == ge))
            m = (b.phi_c.astype(np.float64) - b.phi_r) @ th
            c = (m > 0) + 0.5 * (m == 0)
            idx = np.random.default_rng([cfg.seed, 0xC0, gf, ge]).integers(0, b.n, (cfg.boot, b.n))
            out.append((fit_name, a.n, eval_name, b.n, float(c.mean()), ci(c[idx].mean(axis=1))))
    return out


# ================================================================ output =====================
def _pt(x: float) -> str:
    return f"{100 * x:+.1f}"


def _acc(arm: Arm, n: int) -> str:
    lo, hi = arm.ci[n]
    return f"{arm.acc[n]:.3f} [{lo:.3f}, {hi:.3f}]"


def _diff(t) -> str:
    return f"{_pt(t[0])} [{_pt(t[1])}, {_pt(t[2])}]"


def _n(x, cfg) -> str:
    return str(x) if x is not None else f"> {max(cfg.catchup_cps)}"


def shown_setting(res: dict) -> tuple:
    """The setting whose curves are shown: the chosen one, else fit_prior's shipped defaults
    when they were measured, else the largest mean aligned gain."""
    if res["chosen"] is not None:
        return res["chosen"]
    if res["shipped"] in res["settings"]:
        return res["shipped"]
    return max(res["summary"], key=lambda k: res["summary"][k]["mean_gain"])


def render_summary(results: list) -> str:
    """One line per population: the shown setting's figures."""
    L = ["## Summary\n",
         "| population | setting | accuracy at 0 with the prior | prior - cold: aligned 0 | "
         "aligned 5 | aligned 10 | aligned 50 | opposing 5 | opposing 10 | opposing 50 | "
         f"opposing caught up to {CATCHUP_MARGIN:g} pt: n (stays) | default found |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        key = shown_setting(res)
        st, sm = res["settings"][key], res["summary"][key]
        g, o = sm["gains"], sm["opp"]
        L.append(f"| {res['name']} | s {key[0]:g}, r {key[1]} | "
                 f"{_acc(st['aligned'], 0)} | {_diff(g[0])} | {_diff(g[5])} | {_diff(g[10])} | "
                 f"{_diff(g[50])} | {_diff(o[5])} | {_diff(o[10])} | {_diff(o[50])} | "
                 f"{_n(sm['ni_catch_up'], res['cfg'])} ({_n(sm['ni_stays'], res['cfg'])}) | "
                 f"{'yes' if res['chosen'] is not None else 'no'} |")
    return "\n".join(L) + "\n"


def render(res: dict) -> str:
    """Markdown: the chosen (or best) setting's curves, the sweep, the verdicts."""
    cfg = res["cfg"]
    cold_al, cold_op = res["cold"]
    L = [f"## Population: {res['name']}\n",
         f"{res['n']} pairs, d = {res['d']}; prior fitted on half A ({res['nA']} pairs), "
         f"{cfg.users} users on half B ({res['nB']} pairs): a stream of {cfg.stream} pairs each, "
         f"the other {res['nB'] - cfg.stream} pairs of B held out. Learner: RewardModel defaults. "
         f"95% two-way paired bootstrap over users and held-out pairs ({cfg.boot} resamples), "
         f"seed {cfg.seed}. Differences in accuracy points.\n"]
    if res["cross"]:
        L.append("theta_0 of one split's half A (rank 0, fit_prior's default strength) on each "
                 "split's half B "
                 "(95% bootstrap over the B pairs):\n")
        L.append("| prior fitted on | users from | accuracy at 0 feedbacks |")
        L.append("|---|---|---|")
        for fit, na, ev, nb, acc, (lo, hi) in res["cross"]:
            L.append(f"| {fit} ({na} pairs) | {ev} ({nb} pairs) | {acc:.3f} [{lo:.3f}, {hi:.3f}] |")
        L.append("")
    ch = res["chosen"]
    show = shown_setting(res)
    st = res["settings"][show]
    tag = (f"strength {show[0]:g}, rank {show[1]}" + (
        " (chosen)" if ch is not None else " (fit_prior's defaults; no setting meets the rule)"
        if show == res["shipped"] else " (largest mean aligned gain; does NOT meet the rule)"))
    for label, cold, arm in (("aligned users", cold_al, st["aligned"]),
                             ("opposing users (every label of B flipped)", cold_op, st["opposing"])):
        L.append(f"### {label}: prior {tag}\n")
        L.append("| feedbacks | cold start | with the prior | prior - cold (points) |")
        L.append("|---|---|---|---|")
        for n in cfg.report_cps:
            L.append(f"| {n} | {_acc(cold, n)} | {_acc(arm, n)} | {_diff(arm.minus(cold, n))} |")
        L.append("")
    L.append("### Sweep: prior - cold (points), aligned and opposing users\n")
    L.append("| strength | rank | \\|theta_0\\| | bytes | "
             + " | ".join(f"aligned {n}" for n in cfg.report_cps)
             + " | opposing 0 | opposing 10 | opposing 50 | caught up to 1 pt: n (stays) | "
             "caught up exactly: n (stays) | within 1 pt | rule |")
    L.append("|---|---|---|---|" + "---|" * (len(cfg.report_cps) + 7))
    for key in sorted(res["summary"], key=lambda k: (k[1], k[0])):
        sm = res["summary"][key]
        st_k = res["settings"][key]
        L.append(f"| {key[0]:g} | {key[1]} | {st_k['theta0_norm']:.3g} | {st_k['nbytes']} | "
                 + " | ".join(_diff(sm["gains"][n]) for n in cfg.report_cps)
                 + " | " + " | ".join(_diff(sm["opp"][n]) if n in sm["opp"] else "-"
                                      for n in (0, 10, max(cfg.report_cps)))
                 + f" | {_n(sm['ni_catch_up'], cfg)} ({_n(sm['ni_stays'], cfg)})"
                 + f" | {_n(sm['catch_up'], cfg)} ({_n(sm['stays'], cfg)})"
                 + f" | {_n(sm['within1'], cfg)}"
                 + f" | {'yes' if sm['ok'] else 'no'} |")
    L.append("")
    L.append(f"Caught up to {CATCHUP_MARGIN:g} pt: the first n of {list(cfg.catchup_cps)} where "
             f"opposing users' accuracy with the prior is >= the cold start's or the "
             f"difference's interval lies above -{CATCHUP_MARGIN:g} point (at most "
             f"{CATCHUP_MARGIN:g} point worse, 95%); (stays): the first n from which on that "
             f"holds at every later n (target <= {CATCHUP_TARGET}). Caught up exactly: the same "
             f"with the interval containing 0 (met by no theta_0 != 0: 200 paired users make a "
             f"0.1-point lag significant). Within 1 pt: the first n from which on the estimate "
             f"trails by less than 1 point (informative). Rule: the aligned gain's interval "
             f"above 0 at n = {', '.join(str(n) for n in cfg.report_cps if n <= CATCHUP_TARGET)}"
             f" AND caught up to {CATCHUP_MARGIN:g} pt (stays) <= {CATCHUP_TARGET}; among those, "
             f"the largest mean aligned gain over n = {', '.join(map(str, cfg.report_cps))} "
             f"(tenths of a point; a tie goes to the smaller rank).\n")
    L.append("### Verdict\n")
    a0 = st["aligned"]
    lo0 = a0.ci[0][0]
    L.append(f"- accuracy at 0 feedbacks with the prior: {_acc(a0, 0)} (target >= {ACC0_TARGET}: "
             + ("met" if lo0 >= ACC0_TARGET else "met by the estimate, not by its interval"
                if a0.acc[0] >= ACC0_TARGET else "missed") + ")")
    last = max(cfg.report_cps)
    dl = a0.minus(cold_al, last)
    L.append(f"- at {last} feedbacks, prior - cold {_diff(dl)} (target: not below the cold start "
             f"beyond the interval: {'met' if dl[2] >= 0 else 'missed'})")
    if ch is None:
        L.append("- NO setting meets the rule, so none is a default from this population.")
    else:
        L.append(f"- chosen: strength {ch[0]:g}, rank {ch[1]} (opposing users caught up to "
                 f"{CATCHUP_MARGIN:g} pt from n = {res['summary'][ch]['ni_stays']} on).")
    L.append(f"\nRun time {res['seconds']:.0f} s (shared machine, under load).\n")
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_omd_bench.prior",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="40 users, a smaller sweep")
    ap.add_argument("--populations", default=",".join(POPULATIONS),
                    help="comma-separated populations, each HH-RLHF splits joined by '+' "
                         "(default: %(default)s)")
    ap.add_argument("--users", type=int)
    ap.add_argument("--stream", type=int)
    ap.add_argument("--strengths", help="comma-separated, e.g. 0.3,1,3,10,30,100")
    ap.add_argument("--ranks", help="comma-separated, e.g. 0,16,64")
    ap.add_argument("--boot", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--cache", default=streams.CACHE_DIR)
    ap.add_argument("--out", default=RESULTS, help="markdown report (default bench/results/prior.md)")
    args = sys.argv[1:] if argv is None else list(argv)
    a = ap.parse_args(args)
    kw = {k: getattr(a, k) for k in ("users", "stream", "boot", "seed") if getattr(a, k) is not None}
    if a.strengths:
        kw["strengths"] = tuple(float(x) for x in a.strengths.split(","))
    if a.ranks:
        kw["ranks"] = tuple(int(x) for x in a.ranks.split(","))
    cfg = Config.quick(**kw) if a.quick else Config(**kw)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)          # a shared machine; the learners are single-threaded anyway
    except ImportError:  # pragma: no cover
        pass
    print(__doc__.splitlines()[0], flush=True)
    parts = ["# Population prior on HH-RLHF (bench/prior.py)\n",
             f"`python -m edge_omd_bench.prior {' '.join(args)}`\n"]
    results = []
    for pop in a.populations.split(","):
        data = load_hh_pairs(tuple(pop.split("+")), a.cache)
        results.append(run(cfg, data))
        text = render(results[-1])
        print(text, flush=True)
        parts.append(text)
    if set(REPORT_CPS) <= set(cfg.report_cps):
        text = render_summary(results)
        print(text)
        parts.insert(2, text)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(parts))
    print(f"written to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
