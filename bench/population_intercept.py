"""Why a pack's start ranked unseen Polis statements worse than the population model (issue 19).

    python -m edge_omd_bench.population_intercept                  # split statements, seeds 0,1,2
    python -m edge_omd_bench.population_intercept --split users --seeds 0

At k = 0 a pack scores theta_pop^T phi, the population model beta^T phi + b; a user's AUC ignores
b, so the two differ only where their fits do: the intercept (the population model's,
unpenalised) and the rule that picks lam. This changes one at a time, on bench/polis.py's
protocol (its splits, new users and evaluated votes), and prints each variant's pooled AUC at
k = 0 and its paired difference to the population model (95 % interval: 2000 bootstrap
resamples of evaluations, stratified by conversation). The rules:
    five     the population model's (bench/population.py `choose_lam`: five validation splits,
             grid `POP_LAMS` or the fit's `LAMS`);
    one      the pack fit's (edge_omd/population/fit.py, step 2): its held-out users
             (`user_hash` < CHECK_SHARE) scored on its held-out items (`held_groups`,
             ITEM_SHARE, where new users meet new items), grid `LAMS`.
"fold" adds the intercept into theta along the population's mean feature mu (theta + b mu /
|mu|^2): the one way a model without an intercept could carry it.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from edge_omd_bench import polis
from edge_omd_bench import population as popm


def one_split(pop: popm.Feedback):
    """(fit, check) record masks of the pack fit's own held-out split (module docstring)."""
    from edge_omd.population.data import held_groups, user_hash
    from edge_omd.population.fit import CHECK_SHARE, ITEM_SHARE
    seed = int(pop.seed) & 0x7FFFFFFF
    h = np.array([user_hash(f"user-{int(u)}", seed) for u in pop.user])
    check = h < CHECK_SHARE
    if not pop.new_items:
        return ~check, check
    held = held_groups(pop.groups()[pop.first], seed, ITEM_SHARE)
    return ~check & ~held, check & held


def pick(pop, splits, lams, intercept: bool) -> float:
    """The lam of `lams` with the smallest held-out log-loss per record over `splits`."""
    return popm.choose_lam(pop, lams, splits, intercept)[0]


def variants(pop: popm.Feedback) -> dict:
    """{name: scores of every item}: the population model and the changed fits."""
    from edge_omd.population.fit import LAMS
    X, y, w, _ = popm.design(pop)
    Phi = pop.Phi.astype(np.float64)
    five = [popm.validation_split(pop, r) for r in range(popm.POP_VALIDATION_REPEATS)]
    lam = {"five": popm.choose_lam(pop)[0], "one": pick(pop, [one_split(pop)], LAMS, False),
           "one+intercept": pick(pop, [one_split(pop)], LAMS, True),
           "five, no intercept": pick(pop, five, popm.POP_LAMS, False),
           "five, grid LAMS": pick(pop, five, LAMS, True)}
    out = {}

    def fit(name, rule, intercept):
        beta, b = popm.fit_logistic(X, y, w, lam[rule], intercept=intercept)
        out[name] = Phi @ beta
        return beta, b
    beta, b = fit("population model (intercept, lam: five)", "five", True)
    mu = (X * w[:, None]).sum(axis=0) / w.sum()
    out["fold: population model + b mu/|mu|^2"] = Phi @ (beta + b * mu / (mu @ mu))
    fit("no intercept, lam: five", "five", False)
    fit("no intercept, lam: five (chosen without)", "five, no intercept", False)
    fit("no intercept, lam: one (the pack before)", "one", False)
    fit("intercept, lam: one (the pack after)", "one+intercept", True)
    fit("intercept, lam: five on LAMS", "five, grid LAMS", True)
    return out, lam


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_omd_bench.population_intercept",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=polis.SPLITS, default="statements")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data", default=polis.DEFAULT_DIR)
    a = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    data = polis.load(polis.Config(data=a.data), log=lambda *m: None)
    names, auc, strata = None, [], []
    for ci, (conv, Phi) in enumerate(data):
        streams = conv.streams()
        for seed in map(int, a.seeds.split(",")):
            split = polis.make_split(conv, a.split, seed)
            scores, lam = variants(polis.population_feedback(conv, Phi, split))
            names = list(scores)
            print(f"{conv.name} seed {seed}: lam " + ", ".join(f"{k} {v:g}" for k, v in lam.items()))
            for p in split.new:
                _, ev = polis.user_votes(conv, streams[p], split.held)
                J, up = conv.item[ev], conv.up[ev]
                auc.append([polis.auc(scores[n][J], up) for n in names])
                strata.append(ci)
    A = np.array(auc)
    W = popm.cluster_weights(np.array(strata), 2000, 7)
    ones = np.ones(len(A))
    print(f"\nsplit {a.split}, seeds {a.seeds}, {len(A)} evaluations, k = 0: AUC, - population model")
    for j, n in enumerate(names):
        d = popm.ratio_ci(A[:, j] - A[:, 0], ones, W)
        print(f"  {n:45s} {A[:, j].mean():.4f}  {d.fmt_diff()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
