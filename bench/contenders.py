"""The lineup: edge-omd's solvers and the MLE baseline behind the `Contender` interface
(base.py), the peers from peers.py, and `ContenderSpec` = factory + tuning grid.

Every grid has exactly `N_TRIALS` points, so each contender gets the same tuning budget
(tuning.py); what is fixed and what is tuned is listed in the report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edge_omd_bench.base import Contender
from edge_omd_bench.mle import MLERefit
from edge_omd_bench.peers import VW, RiverLR, SklearnSGD, vw_available

N_TRIALS = 4          # tuning budget: grid points per contender, the same for everyone


# ---------------------------------------------------------------- edge-omd ----------------
def edge_omd_available() -> tuple[bool, str]:
    try:
        from edge_omd.reward_model import RewardModel  # noqa: F401
    except Exception as exc:  # ImportError, or a half-written module in the shared tree
        return False, f"edge_omd.reward_model not importable ({type(exc).__name__}: {exc})"
    return True, ""


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
        return getattr(self.model, "rank", None)


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
    name: str
    family: str
    factory: Callable[..., Contender]          # factory(dim, seed=..., **params)
    grid: list[dict]
    note: str = ""
    fixed: dict = field(default_factory=dict)  # constructor arguments that are not tuned

    def make(self, dim: int, params: dict, seed: int = 0) -> Contender:
        return self.factory(dim, name=self.name, seed=seed, **self.fixed, **params)


# edge-omd: eta = 1 (the Newton-like step of Algorithm 1) and the same lam grid as the MLE, so
# "exact vs MLE" compares like with like; grids of the peers bracket their validation optimum.
OMD_GRID = [dict(eta=1.0, lam=lam) for lam in (0.3, 3.0, 30.0, 300.0)]
MLE_GRID = [dict(lam=lam) for lam in (0.3, 3.0, 30.0, 300.0)]


def lineup(dim: int, *, sketch_fractions=(1 / 4, 1 / 8, 1 / 16), mle_k: int = 100,
           include_mle: bool = True, include: Callable[[str], bool] | None = None,
           ) -> tuple[list[ContenderSpec], dict[str, str]]:
    """The contenders of one run on features of dimension `dim`, and the skipped ones with why."""
    specs: list[ContenderSpec] = []
    skipped: dict[str, str] = {}
    ok, why = edge_omd_available()
    omd_names = ["edge-omd exact", "edge-omd CG (K=3)", "edge-omd diagonal"] + [
        f"edge-omd sketch 1/{round(1 / f)}" for f in sketch_fractions]
    ranks: dict[float, int] = {}
    if ok:
        from edge_omd.reward_model import RewardModel
        specs.append(ContenderSpec("edge-omd exact", "edge-omd", EdgeOMD, OMD_GRID,
                                   "Algorithm 1, Sherman-Morrison / Cholesky, float32 state",
                                   fixed=dict(solver="exact")))
        specs.append(ContenderSpec("edge-omd CG (K=3)", "edge-omd", EdgeOMD, OMD_GRID,
                                   "paper's practical variant: 3 CG steps, lambda_t = lam min(1, t/100)",
                                   fixed=dict(solver="cg", lam_warmup=100)))
        for f in sketch_fractions:
            exact_b = RewardModel.state_bytes(dim, "exact", dtype="float32")
            try:
                probe = RewardModel(dim, solver="sketch", budget_bytes=int(exact_b * f))
            except Exception as exc:  # BudgetError: no rank-1 sketch fits at this (small) d
                skipped[f"edge-omd sketch 1/{round(1 / f)}"] = f"d={dim}: {exc}"
                continue
            ranks[f] = int(probe.rank or 0)
            specs.append(ContenderSpec(f"edge-omd sketch 1/{round(1 / f)}", "edge-omd", EdgeOMD, OMD_GRID,
                                       f"robust Frequent Directions, budget = 1/{round(1 / f)} of exact "
                                       f"bytes, rank {ranks[f]}",
                                       fixed=dict(solver="sketch", budget_fraction=f)))
        specs.append(ContenderSpec("edge-omd diagonal", "edge-omd", EdgeOMD, OMD_GRID,
                                   "diagonal local norm, O(d)", fixed=dict(solver="diagonal")))
    else:
        for n in omd_names:
            skipped[n] = why
    if include_mle:
        specs.append(ContenderSpec("MLE refit (every round)", "mle", MLE, MLE_GRID,
                                   "scipy L-BFGS-B on the whole history, warm-started",
                                   fixed=dict(refit_every=1)))
        specs.append(ContenderSpec(f"MLE refit every {mle_k}", "mle", MLE, MLE_GRID,
                                   f"same, refit only after every {mle_k}-th label",
                                   fixed=dict(refit_every=mle_k)))
    specs.append(ContenderSpec("River LogReg SGD", "first-order", RiverLR,
                               [dict(lr=lr) for lr in (0.003, 0.02, 0.1, 0.6)],
                               "river.linear_model.LogisticRegression(optim.SGD(lr)), no intercept",
                               fixed=dict(optimizer="sgd")))
    specs.append(ContenderSpec("River LogReg Adam", "first-order", RiverLR,
                               [dict(lr=lr) for lr in (0.0002, 0.001, 0.005, 0.025)],
                               "river.linear_model.LogisticRegression(optim.Adam(lr)), no intercept",
                               fixed=dict(optimizer="adam")))
    specs.append(ContenderSpec("sklearn SGDClassifier", "first-order", SklearnSGD,
                               [dict(alpha=a) for a in (1e-3, 1e-2, 1e-1, 1.0)],
                               "SGDClassifier(loss='log_loss', learning_rate='optimal').partial_fit, "
                               "no intercept"))
    vok, vwhy = vw_available()
    vw_names = ["VW (adaptive, normalized)"] + [f"VW OjaNewton m={ranks[f]}" for f in ranks]
    if vok:
        specs.append(ContenderSpec("VW (adaptive, normalized)", "first-order", VW,
                                   [dict(learning_rate=lr) for lr in (0.01, 0.05, 0.2, 1.0)],
                                   "VW default update (adaptive, normalized, invariant), logistic"))
        for f in sketch_fractions:
            if f not in ranks:           # no edge-omd sketch at this budget: no size to match
                continue
            m = ranks[f]
            specs.append(ContenderSpec(f"VW OjaNewton m={m}", "second-order sketch", VW,
                                       [dict(alpha=a) for a in (3.0, 30.0, 300.0, 3000.0)],
                                       f"--OjaNewton --sketch_size {m} (the sketch size of edge-omd "
                                       f"sketch 1/{round(1 / f)})", fixed=dict(oja_sketch=m)))
    else:
        for n in vw_names:
            skipped[n] = vwhy
    for s in specs:
        assert len(s.grid) == N_TRIALS, s.name
    if include is not None:
        specs = [s for s in specs if include(s.name)]
    return specs, skipped
