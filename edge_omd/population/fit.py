"""Fitting a population pack from many users' feedback: map over users, merge exactly.

The pack (edge_omd/population/pack.py) is theta ~ N(theta_pop, cal_H_0^{-1}) with cal_H_0 =
(lam + c) I - V^T V. `fit_population` finds it in passes over the users (docs/ALGORITHM.md,
"Population pack"):

1. Roles. A user's role depends only on a hash of its id and the seed (`data.user_hash`), so
   every shard agrees: CHECK_SHARE of the users (at most CHECK_MAX) are held out to choose the
   scales; SAMPLE_MAX users (all of them in small populations) give the second-order statistics.
   Items too: ITEM_SHARE of the item groups (an observation's prompt or answer, `UserData.g`,
   `data.held_groups`) are held out, because a new user is served answers nobody in the
   population judged. While choosing (steps 2-4) the fitted users' feedback on them is left
   out and the held-out users are scored on them only (they still learn from everything, in
   order); a population with too few groups to hold some out is scored on every item.
2. theta_pop = argmin sum_obs w loss(theta) + lam_pop/2 ||theta||^2 (Bradley-Terry for a row,
   multinomial logit for a choice) by Newton: each pass sums the gradient over every user and
   the Hessian over the sample (scaled to the whole weight: with the sample = everyone it is
   Newton's method, else a sub-sampled Newton step, converging to the same minimiser). lam_pop
   is chosen from LAMS by the log-loss of the held-out users' observations under theta_pop.
   Bare thumbs (`UserData.bare`: z = phi against reward 0) are fitted with an unpenalised
   intercept b, as the population model is: without it their share of ups (0.57-0.72 agree
   on Polis) must be explained by the penalised theta, along the features' common mean, and
   theta_pop ranks unseen items worse (docs/POPULATION.md, "What it buys"). The user's model
   has no intercept, so the pack starts it at theta_pop alone (b goes to the fit record);
   everything from step 3 on sees the model the user has.
3. The directions: each sampled user's deviation delta_u = argmin L_u(theta_pop + delta) +
   rho/2 ||delta||^2, solved in the user's n_u-dimensional row space (delta = Z_u^T a, Newton on
   a: O(n_u^2 d) a user), summed as S = sum_u delta_u delta_u^T; Q = S's top K eigenvectors,
   v_k = their eigenvalues / the first.
4. The scales: a candidate start is theta_pop with precision p0 (firm) away from Q and
   1 / (1/p0 + (1/p_w - 1/p0) v_k) along q_k (p_w along q_1, the weakest). rho, p0, p_w and K
   are chosen on the held-out users by the PREQUENTIAL log-loss of the SDK's own learner
   (RewardModel, the Personalizer's default solver and dtype): each held-out user's model
   starts at the candidate and predicts each observation before learning it, what a new user
   feels. The smallest mean loss wins; K = 0 (no direction: theta_pop with precision p0
   everywhere) and p0 = FIRM[-1] (the population model, nearly untouched by the user) are in
   the grid, so the data can say that users do not deviate in any learnable way.
5. The pack: theta_pop, the directions and the scales refitted on every user with the chosen
   settings; lam = p_w (the weakest precision), c = p0 - p_w, V = sqrt(p0 - p_k) q_k.

Exact merge: every per-user statistic is rounded once to fixed point (edge_omd/population/
sums.py) before it is summed, so a fit over shards in any number of processes, in any order,
gives the same pack bytes as one process. Memory: one user at a time plus O(d^2) per sum.

Drivers: `fit_population(shards, workers=1)` maps in this process or a multiprocessing pool;
edge_omd/population/dask.py runs the same map on a Dask cluster (`driver=`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from edge_omd.config import MAX_LAM, MIN_LAM
from edge_omd.errors import ConfigError, InvalidInputError
from edge_omd.population.data import (UserData, held_groups, margin_hessian, terms,
                                      user_hash)
from edge_omd.population.pack import MAX_K, Pack
from edge_omd.population.sums import ExactScalar, FixedSum, scale_for

__all__ = ["fit_population", "Settings", "map_shard", "LocalDriver", "LAMS", "RHOS", "FIRM",
           "WEAK", "KS", "CHECK_SHARE", "CHECK_MAX", "SAMPLE_MAX"]

#: theta_pop's regulariser grid (sum loss + lam/2 ||theta||^2)
LAMS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: the deviations' regulariser grid (step 3)
RHOS = (1.0, 10.0)
#: the firm precision p0 grid; its last value is "the population model, barely moved"
FIRM = (1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)
#: p0 / p_w: how much weaker the first direction is than the firm part
WEAK = (10.0, 100.0)
#: the numbers of directions tried (each <= the fit's K)
KS = (0, 4, 16)
#: share of users held out to choose lam_pop and the scales, and at most this many
CHECK_SHARE, CHECK_MAX = 0.2, 2000
#: share of item groups held out with them: a new user meets answers nobody in the population
#: judged, so the scales are chosen on such items (fitted users' feedback on them is left out,
#: held-out users are scored on them only)
ITEM_SHARE = 0.3
#: users whose Hessians and deviations are computed (all of them below this many)
SAMPLE_MAX = 5000
#: Newton stops when the Newton decrement^2 is below NEWTON_TOL times the total weight
NEWTON_TOL, NEWTON_MAX_PASSES = 1e-12, 40


@dataclass(frozen=True)
class Settings:
    """What a fit may choose from (module docstring); defaults are the module constants."""
    K: int = 16
    lams: tuple = LAMS
    rhos: tuple = RHOS
    firm: tuple = FIRM
    weak: tuple = WEAK
    ks: tuple = KS
    check_share: float = CHECK_SHARE
    check_max: int = CHECK_MAX
    item_share: float = ITEM_SHARE
    sample_max: int = SAMPLE_MAX
    seed: int = 0
    solver: str = "exact"          # the learner the held-out users are replayed with
    dtype: str = "float32"


# ================================================================ the map: one shard, one plan
@dataclass
class Roles:
    check: float = 0.0          # h < check: held out
    sample: float = 1.0         # h < sample: in the second-order sample
    seed: int = 0
    items: float = 0.0          # share of item groups held out (`data.held_groups`)

    def of(self, key: str) -> tuple[bool, bool]:
        h = user_hash(key, self.seed)
        return h < self.check, h < self.sample

    def held(self, u: UserData) -> np.ndarray:
        """(n,) bool: the user's observations on held-out item groups."""
        return held_groups(u.g, self.seed, self.items)

    def fitted(self, u: UserData, check: bool, include_check: bool):
        """What a pass learns from user u: everything in a final pass (include_check), nothing
        of a held-out user, else the observations on item groups that are not held out (None
        when nothing is left)."""
        if include_check:
            return u
        if check:
            return None
        held = self.held(u)
        if not held.any():
            return u
        return u.take(~held) if not held.all() else None


@dataclass
class Plan:
    """One pass: what every user contributes (kind: stats, newton, deviations, criterion)."""
    kind: str
    roles: Roles
    d: int
    theta: Optional[np.ndarray] = None
    include_check: bool = False        # newton / deviations: held-out users count too
    intercept: bool = False            # newton: theta has one more entry, the intercept of
                                       # bare thumbs (`UserData.with_intercept`), unpenalised
    rhos: tuple = ()
    E: dict = field(default_factory=dict)     # FixedSum scales by name
    candidates: tuple = ()             # criterion: (Pack, ...)
    model: dict = field(default_factory=dict)  # criterion: RewardModel settings


def _stats(shard, plan):
    out = {"users": 0, "obs": 0, "W": ExactScalar(), "w_user": 0.0, "zmax": 0.0, "check": 0,
           "sample": 0, "check_held_obs": 0, "held_obs": 0, "bare": 0, "bare_up": 0}
    for u in shard:
        if u.bare is not None:
            out["bare"] += int(u.bare.sum())
            out["bare_up"] += int((u.y[u.bare] > 0).sum())
        check, sample = plan.roles.of(u.key)
        held = int(plan.roles.held(u).sum())
        out["check_held_obs"] += held if check else 0
        out["held_obs"] += held
        out["users"] += 1
        out["obs"] += u.n
        wu = float(np.sum(u.w))
        out["W"].add(wu)
        out["w_user"] = max(out["w_user"], wu)
        out["zmax"] = max(out["zmax"], float(np.sqrt((u.Z * u.Z).sum(axis=1)).max()))
        out["check"] += int(check)
        out["sample"] += int(sample and not check)
    return out


def _newton(shard, plan):
    d = plan.d + plan.intercept
    out = {"loss": ExactScalar(), "W": ExactScalar(), "g": FixedSum((d,), plan.E["g"]),
           "H": FixedSum((d, d), plan.E["H"]), "Wh": ExactScalar(),
           "check_loss": ExactScalar(), "check_W": ExactScalar()}
    for u in shard:
        check, sample = plan.roles.of(u.key)
        if check and not plan.include_check:
            if plan.roles.items > 0.0:              # scored on held-out items only
                u = u.take(plan.roles.held(u))
                if not u.n:
                    continue
            u = u.with_intercept() if plan.intercept else u
            out["check_loss"].add(terms(u, plan.theta)[0])
            out["check_W"].add(float(np.sum(u.w)))
            continue
        u = plan.roles.fitted(u, check, plan.include_check)
        if u is None:
            continue
        u = u.with_intercept() if plan.intercept else u
        loss, gm, diag, blocks = terms(u, plan.theta)
        out["loss"].add(loss)
        out["W"].add(float(np.sum(u.w)))
        out["g"].add(u.Z.T @ gm)
        if sample:
            Dm = margin_hessian(diag, blocks, len(gm)) if blocks else None
            H = (u.Z.T @ Dm @ u.Z) if Dm is not None else (u.Z.T * diag) @ u.Z
            out["H"].add(H)
            out["Wh"].add(float(np.sum(u.w)))
    return out


def deviation(u: UserData, theta: np.ndarray, rho: float, iters: int = 50) -> np.ndarray:
    """argmin_delta L_u(theta + delta) + rho/2 ||delta||^2, in the user's row space: delta =
    Z^T a, Newton on a with G = Z Z^T: (D G + rho I) step = dL/dm + rho a (D the margin-space
    Hessian), O(m^2 d + m^3) per step."""
    G = u.Z @ u.Z.T
    a = np.zeros(len(G))
    eye = np.eye(len(G))
    for _ in range(iters):
        _loss, gm, diag, blocks = terms(u, theta + u.Z.T @ a)
        D = margin_hessian(diag, blocks, len(gm))
        step = np.linalg.solve(D @ G + rho * eye, gm + rho * a)
        a -= step
        if not np.abs(step).max() > 1e-12 * max(1.0, float(np.abs(a).max())):
            break
    return u.Z.T @ a


def _deviations(shard, plan):
    d = plan.d
    out = {"S": [FixedSum((d, d), plan.E[f"S{i}"]) for i in range(len(plan.rhos))],
           "users": 0}
    for u in shard:
        check, sample = plan.roles.of(u.key)
        u = plan.roles.fitted(u, check, plan.include_check) if sample else None
        if u is None:
            continue
        out["users"] += 1
        for i, rho in enumerate(plan.rhos):
            delta = deviation(u, plan.theta, rho)
            out["S"][i].add(np.outer(delta, delta))
    return out


def _criterion(shard, plan):
    from edge_omd.reward_model import RewardModel
    starts = [RewardModel(plan.d, population=p, lam=p.lam, **plan.model) for p in plan.candidates]
    out = {"loss": [ExactScalar() for _ in starts], "W": ExactScalar(), "users": 0}
    for u in shard:
        check, _sample = plan.roles.of(u.key)
        if not check:
            continue
        scored = plan.roles.held(u) if plan.roles.items > 0.0 else np.ones(u.n, bool)
        if not scored.any():
            continue
        out["users"] += 1
        out["W"].add(float(np.sum(u.w[scored])))
        for i, model in enumerate(starts):
            model.reset()               # back at the candidate's start (its exact bytes)
            out["loss"][i].add(prequential(model, u, scored))
    return out


def prequential(model, u: UserData, scored=None) -> float:
    """sum_j w_j (-log P(y_j)) over the user's observations j with scored[j] (all if None),
    each predicted by `model` before it learns it; every observation is learned (in place), in
    order: the log-loss a new user feels on what is scored."""
    total = 0.0
    for j in range(u.n):
        Z = u.Z[u.obs[j]:u.obs[j + 1]]
        w = float(u.w[j])
        count = scored is None or scored[j]
        if len(Z) == 1:
            if count:
                m = float(model.reward(Z)[0])
                total += w * float(np.logaddexp(0.0, m) - u.y[j] * m)
            model.learn_one(Z[0], float(u.y[j]), weight=w)
        else:
            c = int(u.y[j])
            if count:
                m = np.asarray(model.reward(Z), np.float64)
                total += w * float(np.logaddexp.reduce(m) - m[c])
            model.learn_choice(Z, c, weight=w)
    return total


_MAPS = {"stats": _stats, "newton": _newton, "deviations": _deviations, "criterion": _criterion}


def map_shard(shard, plan: Plan) -> dict:
    """One pass of `plan` over one shard's users: the partial sums (merged by `merge`). On one
    BLAS thread: a user's products are small (n_u x d), where threads only wait on each other
    (8x slower on a busy 2-core machine); the parallelism is the shards'."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        return _MAPS[plan.kind](shard, plan)


def merge(a: dict, b: dict) -> dict:
    """Merge two partial results of one plan (exact: order and grouping do not matter)."""
    out = {}
    for k, v in a.items():
        w = b[k]
        if isinstance(v, (FixedSum, ExactScalar)):
            out[k] = _copy(v).merge(w)
        elif isinstance(v, list):
            out[k] = [_copy(x).merge(y) for x, y in zip(v, w)]
        elif k in ("w_user", "zmax"):
            out[k] = max(v, w)
        else:
            out[k] = v + w
    return out


def _copy(x):
    y = type(x).__new__(type(x))
    s = x.__getstate__()
    y.__setstate__(tuple(a.copy() if isinstance(a, np.ndarray) else a for a in s)
                   if isinstance(s, tuple) else s)
    return y


def _reduce(parts: Sequence[dict]) -> dict:
    out = parts[0]
    for p in parts[1:]:
        out = merge(out, p)
    return out


class LocalDriver:
    """Runs a plan over the shards in this process (workers=1) or a process pool."""

    def __init__(self, workers: int = 1):
        self.workers = int(workers)
        self._pool = None

    def run(self, plan: Plan, shards) -> dict:
        if self.workers <= 1 or len(shards) <= 1:
            return _reduce([map_shard(s, plan) for s in shards])
        if self._pool is None:
            import multiprocessing as mp
            self._pool = mp.get_context("spawn").Pool(self.workers)
        return _reduce(self._pool.starmap(map_shard, [(s, plan) for s in shards]))

    def close(self):
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None


# ================================================================ the driver's side
def _newton_fit(run, plan: Plan, lam: float, theta: np.ndarray, log) -> tuple:
    """(theta, check loss per weight, passes): Newton on sum loss + lam/2 ||theta[:d]||^2 from
    `theta` (with plan.intercept, theta[d] is the intercept, not penalised); each pass one map
    (gradient over everyone, Hessian over the sample, scaled)."""
    d = plan.d + plan.intercept
    pen = np.full(d, float(lam))
    pen[plan.d:] = 0.0
    prev = None
    for p in range(1, NEWTON_MAX_PASSES + 1):
        plan.theta = theta
        r = run(plan)
        W, Wh = r["W"].value(), r["Wh"].value()
        f = r["loss"].value() + 0.5 * float(pen @ (theta * theta))
        if prev is not None and f > prev[0] + 1e-12 * max(1.0, abs(prev[0])):
            # the step overshot (far from the optimum): halve it and measure again
            theta = prev[1] - 0.5 * prev[2]
            prev = (prev[0], prev[1], 0.5 * prev[2])
            continue
        g = r["g"].value() + pen * theta
        H = r["H"].value() * (W / Wh if Wh > 0 else 1.0)
        H.flat[:: d + 1] += pen
        step = np.linalg.solve(H, g)
        dec = float(g @ step)
        check = r["check_loss"].value() / max(r["check_W"].value(), 1e-300)
        if not dec > NEWTON_TOL * max(W, 1.0):
            return theta, check, p
        prev = (f, theta, step)
        theta = theta - step
    log(f"[population] Newton stopped after {NEWTON_MAX_PASSES} passes (lam {lam:g})")
    return theta, check, NEWTON_MAX_PASSES


def _directions(S: np.ndarray, K: int):
    """(Q (K', d), v (K',)) the top eigenvectors of S and their eigenvalues / the first; K'
    <= K drops zero eigenvalues."""
    e, U = np.linalg.eigh(S)
    e, U = e[::-1][:K], U[:, ::-1][:, :K].T
    keep = e > e[0] * 1e-12 if len(e) and e[0] > 0 else np.zeros(len(e), bool)
    return U[keep], e[keep] / e[0] if keep.any() else np.zeros(0)


def make_pack(theta, Q, v, p0: float, pw: float, k: int, **kw) -> Pack:
    """The pack of theta_pop, directions Q with relative variances v, firm precision p0 and
    weakest precision pw along q_1, k directions: lam = pw, c = p0 - pw, V = sqrt(p0 - p_k) q_k
    with p_k = 1 / (1/p0 + (1/pw - 1/p0) v_k)."""
    k = min(k, len(Q))
    if k == 0:
        return Pack(theta, p0, 0.0, np.zeros((0, len(theta))), -1.0, **kw)
    pk = 1.0 / (1.0 / p0 + (1.0 / pw - 1.0 / p0) * v[:k])
    # s_k <= c with room for the rounding of Q's orthonormality (the solvers check V V^T <= c):
    # the weakest precision is pw (1 + 1e-12), not pw
    s = np.minimum(p0 - pk, p0 - pw) * (1.0 - 1e-12)
    return Pack(theta, pw, p0 - pw, np.sqrt(s)[:, None] * Q[:k], -1.0, **kw)


def fit_population(shards, *, d: int, settings: Settings = Settings(), fingerprint=None,
                   pack_id: str = "", driver=None, workers: int = 1, log: Callable = None) -> Pack:
    """Fit a population pack on the users of `shards` (module docstring).

    shards: a list of shards (edge_omd/population/data.py: iterables of UserData that can be
    iterated again and pickled); d: the feature dimension; settings: the grids and shares;
    fingerprint: the head the features came from (32 bytes), which binds the pack; pack_id:
    its name and version; driver: an object with run(plan, shards) -> merged partial (default
    LocalDriver(workers)). The pack's `fit` record says what was chosen and measured.
    Bad arguments or data: ConfigError / InvalidInputError."""
    log = log or (lambda s: None)
    if not isinstance(settings, Settings):
        raise ConfigError(f"settings must be a Settings, got {type(settings).__name__}")
    if not 0 <= settings.K <= MAX_K:
        raise ConfigError(f"K must be in [0, {MAX_K}], got {settings.K}")
    for name in ("lams", "rhos", "firm", "weak"):
        vals = getattr(settings, name)
        if not vals or not all(MIN_LAM <= float(x) <= MAX_LAM for x in vals):
            raise ConfigError(f"settings.{name} must be a non-empty list of numbers in "
                              f"[{MIN_LAM:g}, {MAX_LAM:g}]")
    shards = list(shards)
    if not shards:
        raise InvalidInputError("no shard: nothing to fit")
    own = driver is None
    driver = driver or LocalDriver(workers)
    t0 = time.perf_counter()
    try:
        return _fit(shards, d, settings, fingerprint, pack_id, driver, log, t0)
    finally:
        if own:
            driver.close()


def _fit(shards, d, st, fingerprint, pack_id, driver, log, t0):
    passes = [0]

    def run(plan):
        passes[0] += 1
        return driver.run(plan, shards)

    stats = run(Plan("stats", Roles(seed=st.seed), d))
    U = stats["users"]
    if U < 2:
        raise InvalidInputError(f"a population needs at least 2 users, got {U}")
    check = min(st.check_share, st.check_max / U)
    roles = Roles(check, max(check, min(1.0, (st.sample_max + st.check_max) / U)), st.seed,
                  st.item_share)
    stats = run(Plan("stats", roles, d))
    if stats["check"] == 0 or stats["check"] == U:
        raise InvalidInputError(f"{U} users leave no held-out user to choose the scales; "
                                "fit on more users")
    if roles.items > 0.0 and (stats["check_held_obs"] == 0 or stats["held_obs"] == stats["obs"]):
        log("[population] too few item groups to hold some out: the scales are chosen on the "
            "held-out users' feedback on every item")
        roles.items = 0.0
    W, wu, zmax = stats["W"].value(), stats["w_user"], stats["zmax"]
    # bare thumbs of both kinds: theta_pop is fitted with their intercept (module docstring)
    icpt = 0 < stats["bare_up"] < stats["bare"]
    za = float(np.hypot(zmax, 1.0)) if icpt else zmax
    E = {"g": scale_for(2 * wu * za), "H": scale_for(2 * wu * za * za)}
    log(f"[population] {U} users ({stats['check']} held out, {stats['sample']} sampled), "
        f"{stats['obs']} observations, d = {d}")

    # step 2: theta_pop on the fitted users, lam_pop by the held-out log-loss
    newton = Plan("newton", roles, d, E=E, intercept=icpt)
    theta, found = np.zeros(d + icpt), []
    for lam in sorted(st.lams, reverse=True):
        theta, loss, p = _newton_fit(run, newton, lam, theta, log)
        found.append((loss, -lam, theta))
        log(f"[population] lam_pop {lam:g}: held-out log-loss {loss:.5f} ({p} passes)")
    loss_pop, neg_lam, theta_b = min(found, key=lambda x: (x[0], x[1]))
    lam_pop = -neg_lam
    theta_fit = theta_b[:d]          # the user's model has no intercept: it starts here

    # steps 3-4: directions around theta_fit, scales on the held-out users
    K = min(st.K, d)
    Es = {f"S{i}": scale_for((2 * wu * zmax / rho) ** 2) for i, rho in enumerate(st.rhos)}
    dev = run(Plan("deviations", roles, d, theta=theta_fit, rhos=tuple(st.rhos), E=Es))
    cands, keys = [], []
    ks = sorted({k for k in st.ks if k <= K})
    for i, rho in enumerate(st.rhos):
        Q, v = _directions(dev["S"][i].value(), K)
        for p0 in st.firm:
            for ratio in st.weak:
                for k in ks:
                    if k == 0 and (i > 0 or ratio != st.weak[0]):
                        continue              # K = 0 does not depend on rho or p_w
                    if k > len(Q):
                        continue
                    cands.append(make_pack(theta_fit, Q, v, p0, p0 / ratio, k))
                    keys.append((rho, p0, p0 / ratio, k))
    model = {"solver": st.solver, "dtype": st.dtype}
    crit = run(Plan("criterion", roles, d, candidates=tuple(cands), model=model))
    Wc = crit["W"].value()
    scores = [x.value() / Wc for x in crit["loss"]]
    best = min(range(len(keys)), key=lambda j: (round(scores[j], 12), -keys[j][1], keys[j][3]))
    rho, p0, pw, k = keys[best]
    log(f"[population] held-out prequential log-loss {scores[best]:.5f} at rho {rho:g}, "
        f"p0 {p0:g}, p_w {pw:g}, K {k} (the population alone: {loss_pop:.5f}); "
        f"{len(keys)} candidates")

    # step 5: everything again on every user with the chosen settings
    allp = Plan("newton", roles, d, E=E, include_check=True, intercept=icpt)
    theta_b, _, _ = _newton_fit(run, allp, lam_pop, theta_b, log)
    theta_all = theta_b[:d]
    Q, v = np.zeros((0, d)), np.zeros(0)
    if k:
        dev = run(Plan("deviations", roles, d, theta=theta_all, rhos=(rho,),
                       E={"S0": Es[f"S{st.rhos.index(rho)}"]}, include_check=True))
        Q, v = _directions(dev["S"][0].value(), k)
    fit = {"kind": "population", "users": U, "observations": stats["obs"], "weight": W,
           "held_out_users": stats["check"], "sampled_users": stats["sample"],
           "lam_pop": lam_pop, "rho": rho, "firm": p0, "weakest": pw, "K": int(min(k, len(Q))),
           "held_out_prequential": scores[best], "held_out_population": loss_pop,
           "candidates": len(keys), "passes": passes[0], "seed": st.seed,
           "candidate_losses": [[*key, score] for key, score in zip(keys, scores)],
           "item_share": roles.items, "held_out_item_observations": stats["check_held_obs"],
           "solver": st.solver, "dtype": st.dtype}
    if icpt:              # (absent otherwise: a fit without bare thumbs keeps its bytes)
        fit["intercept"] = float(theta_b[d])
    pack = make_pack(theta_all, Q, v, p0, pw, k, pack_id=pack_id, fingerprint=fingerprint,
                     fit=fit)
    log(f"[population] fitted in {time.perf_counter() - t0:.1f} s, {passes[0]} passes")
    return pack

