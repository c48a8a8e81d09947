"""The lineup: edge-omd's solvers and the MLE baseline behind the `Contender` interface
(base.py), the peers from peers.py, and `ContenderSpec` = id + display name + factory + grid.

Every contender has a stable `id` (the constants below): results.json is keyed by it and the
targets (targets.py) name contenders by it; `name` is only the label tables and plots show.
Every grid has exactly `N_TRIALS` points, so each contender gets the same tuning budget
(race.py); what is fixed and what is tuned is listed in the report.

edge_omd is not optional here: the benchmark measures it, so a runtime that does not import is
an error, never a skipped row. The peers are optional packages (the `bench` extra, all pinned in
requirements.lock): one that is not installed is reported as a "not installed" row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edge_omd_bench.base import FIRST_ORDER, Contender
from edge_omd_bench.mle import MLERefit
from edge_omd_bench.peers import VW, RiverLR, SklearnSGD, peer_missing

N_TRIALS = 4          # tuning budget: grid points per contender, the same for everyone

# ---------------------------------------------------------------- contender ids -----------
EXACT, CG, DIAGONAL = "omd_exact", "omd_cg", "omd_diagonal"
EXACT_PRIOR = "omd_exact_prior"            # workload 3: exact started from a population prior
MLE_EVERY_ROUND, MLE_EVERY_K = "mle_every_round", "mle_every_k"
RIVER_SGD, RIVER_ADAM, SKLEARN_SGD, VW_DEFAULT = "river_sgd", "river_adam", "sklearn_sgd", "vw"
POPULATION = "population"                  # workload 3: the population model, not learning


def _denominator(fraction: float) -> int:
    return round(1 / fraction)


def sketch_id(fraction: float) -> str:
    """edge-omd sketch with a byte budget of `fraction` of exact's: sketch_id(1/8) = 'omd_sketch_1_8'."""
    return f"omd_sketch_1_{_denominator(fraction)}"


def oja_id(fraction: float) -> str:
    """VW OjaNewton with the sketch size (rank) of edge-omd's sketch at `fraction`."""
    return f"vw_oja_1_{_denominator(fraction)}"


# ---------------------------------------------------------------- edge-omd ----------------
class EdgeOMD(Contender):
    family = "edge-omd"

    def __init__(self, dim: int, *, solver: str, eta: float, lam: float, lam_warmup: int = 0,
                 budget_fraction: float | None = None, name: str | None = None, seed: int = 0):
        from edge_omd.reward_model import RewardModel
        kw: dict = dict(eta=eta, lam=lam, solver=solver, dtype="float32")
        if solver == "cg":
            kw.update(cg_steps=3, lam_warmup=lam_warmup)
        if solver == "sketch":
            exact = RewardModel.state_bytes(dim, "exact", dtype="float32")
            kw["budget_bytes"] = int(exact * budget_fraction)
        self.model = RewardModel(dim, **kw)
        self.name = name or f"edge-omd {solver}"

    def learn_prepared(self, item) -> None:
        self.model.learn_one(item[0], float(item[1]))

    def theta_vector(self) -> np.ndarray:
        return np.asarray(self.model.theta, dtype=np.float64)

    def state_bytes(self) -> int:
        return int(self.model.nbytes)

    @property
    def rank(self):
        return self.model.sketch_rank


# ---------------------------------------------------------------- MLE baseline -------------
class MLE(Contender):
    """The paper's baseline. In the accuracy workloads it is *lazy*: it stores every label and
    solves at evaluation time (every round: on all t labels; every k: on the first
    k * floor((t - 1) / k), its last refit before the t-th label). The regularised objective is
    strictly convex, so that solution is exactly what a refitting learner holds (up to solver
    tolerance); its cost per round is measured separately (workload 5)."""

    family = "mle"

    def __init__(self, dim: int, *, lam: float, refit_every: int = 1, name: str | None = None,
                 seed: int = 0, lazy: bool = True):
        self.k = int(refit_every)
        self.lazy = lazy
        # lazy solves are few (one per checkpoint), so they are solved to convergence
        self.m = MLERefit(dim, lam=lam, refit_every=(1 << 62) if lazy else self.k,
                          maxiter=1000 if lazy else 200)
        self._synced_upto = 0
        self.name = name or ("MLE refit (every round)" if self.k == 1 else f"MLE refit every {self.k}")

    def learn_prepared(self, item) -> None:
        self.m.learn_one(item[0], float(item[1]))

    def sync(self) -> None:
        if not self.lazy:
            return
        t = self.m.t
        # every round: the solution on all t labels. Every k: the model it serves when the t-th
        # label arrives, i.e. its last refit strictly before t (up to k - 1 labels stale); at a
        # checkpoint t that is a multiple of k it would otherwise look exactly like every round.
        upto = t if self.k == 1 else self.k * ((t - 1) // self.k)
        if upto != self._synced_upto and upto > 0:
            self.m.refit(upto=upto)
            self._synced_upto = upto

    def theta_vector(self) -> np.ndarray:
        self.sync()
        return self.m.theta

    def state_bytes(self) -> int:
        return self.m.nbytes


# ---------------------------------------------------------------- specs and the lineup -----
@dataclass
class ContenderSpec:
    id: str                                    # stable key (results.json, targets.py)
    name: str                                  # display label (tables, plots)
    family: str
    factory: Callable[..., Contender]          # factory(dim, seed=..., **params)
    grid: list[dict]
    note: str = ""
    fixed: dict = field(default_factory=dict)  # constructor arguments that are not tuned
    facts: dict = field(default_factory=dict)  # numbers the report reads (sketch rank, ...)

    def make(self, dim: int, params: dict, seed: int = 0) -> Contender:
        return self.factory(dim, name=self.name, seed=seed, **self.fixed, **params)


# edge-omd: eta = 1 (the Newton-like step of Algorithm 1) and the same lam grid as the MLE, so
# "exact vs MLE" compares like with like; grids of the peers bracket their validation optimum.
OMD_GRID = [dict(eta=1.0, lam=lam) for lam in (0.3, 3.0, 30.0, 300.0)]
MLE_GRID = [dict(lam=lam) for lam in (0.3, 3.0, 30.0, 300.0)]


def lineup(dim: int, *, sketch_fractions=(1 / 4, 1 / 8, 1 / 16), mle_k: int = 100,
           include_mle: bool = True, include: Callable[[str], bool] | None = None,
           ) -> tuple[list[ContenderSpec], dict[str, dict]]:
    """The contenders of one run on features of dimension `dim`, and the ones not run:
    {id: {"label": display name, "reason": why}}. `include(id)` keeps a subset."""
    from edge_omd.reward_model import RewardModel     # a broken runtime raises here, never skips
    specs: list[ContenderSpec] = []
    skipped: dict[str, dict] = {}
    specs.append(ContenderSpec(EXACT, "edge-omd exact", "edge-omd", EdgeOMD, OMD_GRID,
                               "Algorithm 1, Sherman-Morrison / Cholesky, float32 state",
                               fixed=dict(solver="exact")))
    specs.append(ContenderSpec(CG, "edge-omd CG (K=3)", "edge-omd", EdgeOMD, OMD_GRID,
                               "paper's practical variant: 3 CG steps, lambda_t = lam min(1, t/100)",
                               fixed=dict(solver="cg", lam_warmup=100)))
    ranks: dict[float, int] = {}
    exact_b = RewardModel.state_bytes(dim, "exact", dtype="float32")
    for f in sketch_fractions:
        label = f"edge-omd sketch 1/{_denominator(f)}"
        try:
            probe = RewardModel(dim, solver="sketch", budget_bytes=int(exact_b * f))
        except Exception as exc:  # BudgetError: no rank-1 sketch fits at this (small) d
            skipped[sketch_id(f)] = {"label": label, "reason": f"d={dim}: {exc}"}
            continue
        ranks[f] = int(probe.sketch_rank or 0)
        specs.append(ContenderSpec(sketch_id(f), label, "edge-omd", EdgeOMD, OMD_GRID,
                                   f"robust Frequent Directions, budget = 1/{_denominator(f)} of exact bytes",
                                   fixed=dict(solver="sketch", budget_fraction=f),
                                   facts={"rank": ranks[f], "budget_fraction": f}))
    specs.append(ContenderSpec(DIAGONAL, "edge-omd diagonal", "edge-omd", EdgeOMD, OMD_GRID,
                               "diagonal local norm, O(d)", fixed=dict(solver="diagonal")))
    if include_mle:
        specs.append(ContenderSpec(MLE_EVERY_ROUND, "MLE refit (every round)", "mle", MLE, MLE_GRID,
                                   "scipy L-BFGS-B on the whole history, warm-started",
                                   fixed=dict(refit_every=1)))
        specs.append(ContenderSpec(MLE_EVERY_K, f"MLE refit every {mle_k}", "mle", MLE, MLE_GRID,
                                   f"same, refit only after every {mle_k}-th label",
                                   fixed=dict(refit_every=mle_k)))
    river_missing = peer_missing("river")
    for cid, label, opt, grid in ((RIVER_SGD, "River LogReg SGD", "sgd", (0.003, 0.02, 0.1, 0.6)),
                                  (RIVER_ADAM, "River LogReg Adam", "adam", (0.0002, 0.001, 0.005, 0.025))):
        if river_missing:
            skipped[cid] = {"label": label, "reason": river_missing}
            continue
        specs.append(ContenderSpec(cid, label, FIRST_ORDER, RiverLR, [dict(lr=lr) for lr in grid],
                                   f"river.linear_model.LogisticRegression(optim.{'SGD' if opt == 'sgd' else 'Adam'}"
                                   "(lr)), no intercept", fixed=dict(optimizer=opt)))
    sk_missing = peer_missing("sklearn")
    if sk_missing:
        skipped[SKLEARN_SGD] = {"label": "sklearn SGDClassifier", "reason": sk_missing}
    else:
        specs.append(ContenderSpec(SKLEARN_SGD, "sklearn SGDClassifier", FIRST_ORDER, SklearnSGD,
                                   [dict(alpha=a) for a in (1e-3, 1e-2, 1e-1, 1.0)],
                                   "SGDClassifier(loss='log_loss', learning_rate='optimal').partial_fit, "
                                   "no intercept"))
    vw_missing = peer_missing("vowpalwabbit")
    if vw_missing:
        skipped[VW_DEFAULT] = {"label": "VW (adaptive, normalized)", "reason": vw_missing}
        for f, m in ranks.items():
            skipped[oja_id(f)] = {"label": f"VW OjaNewton m={m}", "reason": vw_missing}
    else:
        specs.append(ContenderSpec(VW_DEFAULT, "VW (adaptive, normalized)", FIRST_ORDER, VW,
                                   [dict(learning_rate=lr) for lr in (0.01, 0.05, 0.2, 1.0)],
                                   "VW default update (adaptive, normalized, invariant), logistic"))
        for f, m in ranks.items():     # only where edge-omd has a sketch at this budget: its size
            specs.append(ContenderSpec(oja_id(f), f"VW OjaNewton m={m}", "second-order sketch", VW,
                                       [dict(alpha=a) for a in (3.0, 30.0, 300.0, 3000.0)],
                                       f"--OjaNewton --sketch_size {m} (the sketch size of edge-omd "
                                       f"sketch 1/{_denominator(f)})", fixed=dict(oja_sketch=m),
                                       facts={"sketch_size": m, "budget_fraction": f,
                                              "same_size_as": sketch_id(f)}))
    for s in specs:
        assert len(s.grid) == N_TRIALS, s.id
    if include is not None:
        specs = [s for s in specs if include(s.id)]
    return specs, skipped
