"""New users next to a population (issue 19): the contenders a new user is predicted with,
given the other users' feedback. Shared by bench/polis.py (real users, Polis) and
bench/population_users.py (a synthetic population).

A contender is ONE function, population feedback -> a factory of per-user learners, registered
by name (the hook the population pack plugs into):

    @contender("pack", "population pack (issue 19)")
    def pack(pop: Feedback) -> NewUser:
        ...                       # fit on pop (pop.Phi, pop.user, pop.first, pop.second, pop.up)
        return lambda: MyLearner(...)   # a fresh learner for each new user

A learner (`Learner`) sees one new user's feedback in time order, by item index into pop.Phi:
`thumb(i, up)` or `pair(win, lose)`, and is asked `scores(items)` (higher = liked more) at each
checkpoint; a fixed scorer ignores the feedback. The harness never shows a contender a new
user's held-out labels, and on a statement-held-out split `pop` holds no feedback on the scored
items. Both benchmarks take `--contenders a,b,module:function` (a registered name, or a
function / Contender elsewhere: the pack without editing this file).

The lineup (what main has today, plus references):
    sdk_cold    what a user of the SDK gets today: `RewardModel(d, budget_bytes=
                DEFAULT_BUDGET_BYTES)` (the Personalizer's new user: exact at d = 384, eta 1,
                lam 1, float32) learning thumbs z = phi (`learn_thumb`, what
                `Personalizer.thumb(prompt, response, up)` learns) and pairs (`learn_pair`)
    sdk_prior   the same started at `edge_omd.prior.fit_prior` of the population's feedback
                (default strength, rank and lam): a thumb up on phi is the pair (phi, 0), so
                z = +phi (up) or -phi (down); a pair z = phi_win - phi_lose
    population  one L2 logistic regression on all population feedback over the same features
                (thumbs with an unpenalised intercept), never updated by the user; its lam
                chosen on population users only (`POP_LAMS`, `choose_lam`)
    refit       per-user logistic regression refitted on the user's feedback so far (intercept
                unpenalised, lam `REFIT_LAM`); a constant before both thumb classes are seen
    agree_rate  the item's agree rate among the population's thumbs (a server-side signal, no
                text); needs population votes on the scored items (undefined when they are
                held out, e.g. Polis' statement split and the synthetic test prompts)
    pack        the Personalizer's new user with a population pack fitted on the population's
                feedback (edge_omd.population.fit_population, default settings)
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

# ================================================================ the data a contender sees ===


@dataclass(frozen=True)
class Feedback:
    """Many users' feedback on items with features: what a contender is fitted on."""
    Phi: np.ndarray      # (n_items, d) float32: every item's features (scored items too: their
                         # text is public, their labels are not in here)
    user: np.ndarray     # (n,) int64: who gave each record
    first: np.ndarray    # (n,) int64: the thumbed item, or a pair's preferred item
    second: np.ndarray   # (n,) int64: -1 for a thumb, a pair's other item
    up: np.ndarray       # (n,) bool: thumb up (True for a pair: `first` was preferred)
    seed: int = 0        # for contenders that draw (the population model's validation users)
    new_items: bool = False   # new users are scored on items with no feedback here (Polis'
                              # held-out statements, the synthetic test prompts)
    group: Optional[np.ndarray] = None  # (n_items,) int: the prompt an item answers (None:
                                        # every item its own); held out together

    @property
    def dim(self) -> int:
        return int(self.Phi.shape[1])

    @property
    def n(self) -> int:
        return int(len(self.user))

    def take(self, mask: np.ndarray) -> "Feedback":
        return replace(self, user=self.user[mask], first=self.first[mask],
                       second=self.second[mask], up=self.up[mask])

    def groups(self) -> np.ndarray:
        """(n_items,) the group of every item (`group`, or the item itself)."""
        return np.arange(len(self.Phi)) if self.group is None else np.asarray(self.group)

    @classmethod
    def thumbs(cls, Phi, user, item, up, **kw) -> "Feedback":
        item = np.asarray(item, np.int64)
        return cls(np.asarray(Phi, np.float32), np.asarray(user, np.int64), item,
                   np.full(len(item), -1, np.int64), np.asarray(up, bool), **kw)

    @classmethod
    def pairs(cls, Phi, user, win, lose, **kw) -> "Feedback":
        win = np.asarray(win, np.int64)
        return cls(np.asarray(Phi, np.float32), np.asarray(user, np.int64), win,
                   np.asarray(lose, np.int64), np.ones(len(win), bool), **kw)


class Learner:
    """One new user's learner: feedback in time order by item index, scores of items."""

    def thumb(self, i: int, up: bool) -> None:
        raise NotImplementedError

    def pair(self, win: int, lose: int) -> None:
        raise NotImplementedError

    def scores(self, items: np.ndarray) -> np.ndarray:
        raise NotImplementedError


NewUser = Callable[[], Learner]


@dataclass(frozen=True)
class Contender:
    id: str
    label: str
    fit: Callable[[Feedback], NewUser]
    item_votes: bool = False      # needs the population's votes on the scored items
    thumbs_only: bool = False     # defined on thumbs only


CONTENDERS: dict[str, Contender] = {}
#: the lineup every benchmark runs unless told otherwise (the pack joins it when it exists)
DEFAULT_LINEUP = ("sdk_cold", "sdk_prior", "population", "refit", "agree_rate", "pack")
#: the contender differences are reported against (the issue's rule compares to it)
REFERENCE = "population"


def contender(cid: str, label: str, *, item_votes: bool = False, thumbs_only: bool = False):
    """Register `fit(pop) -> NewUser` under `cid` (the decorator of the module docstring)."""
    def register(fit):
        CONTENDERS[cid] = Contender(cid, label, fit, item_votes, thumbs_only)
        return fit
    return register


def resolve(specs) -> list[Contender]:
    """Contenders from names of CONTENDERS or `module:attr` (a Contender, or a function
    fit(pop) -> NewUser registered under its own name)."""
    out = []
    for spec in specs:
        if ":" in spec:
            mod, _, attr = spec.partition(":")
            obj = getattr(importlib.import_module(mod), attr)
            if not isinstance(obj, Contender):
                if not callable(obj):
                    raise SystemExit(f"{spec} is neither a Contender nor a function")
                label = (obj.__doc__ or obj.__name__).strip().splitlines()[0]
                obj = CONTENDERS.get(obj.__name__) or Contender(obj.__name__, label, obj)
            out.append(obj)
        elif spec in CONTENDERS:
            out.append(CONTENDERS[spec])
        else:
            raise SystemExit(f"unknown contender {spec!r}; known: {', '.join(CONTENDERS)} "
                             "(or module:function)")
    return out


def applies(c: Contender, *, item_votes: bool, thumbs: bool) -> bool:
    """Whether contender c is defined on a benchmark whose population has votes on the scored
    items (`item_votes`) and whose feedback is thumbs (`thumbs`)."""
    return (item_votes or not c.item_votes) and (thumbs or not c.thumbs_only)


# ================================================================ logistic regression ========
def _sigmoid(m):
    return 0.5 * (1.0 + np.tanh(0.5 * m))


def fit_logistic(X, y, w, lam: float, *, intercept: bool, tol: float = 1e-18,
                 max_iter: int = 100) -> tuple[np.ndarray, float]:
    """(beta, b) = argmin sum_i w_i [log(1 + e^{m_i}) - y_i m_i] + lam/2 ||beta||^2,
    m_i = X_i beta + b (b = 0 unless `intercept`; b is not penalised), by Newton with
    backtracking, float64. With fewer rows than columns the problem is solved in the span of
    the rows (X^T = Q R: beta = Q v, the optimum lies there), so a per-user refit costs O(n^3)."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    w = np.asarray(w, np.float64)
    n, d = X.shape
    Q = None
    if n < d:
        Q, R = np.linalg.qr(X.T)          # (d, n), (n, n)
        X = R.T
    A = np.hstack([X, np.ones((len(X), 1))]) if intercept else X
    p = A.shape[1]
    pen = np.full(p, float(lam))
    if intercept:
        pen[-1] = 0.0
    theta = np.zeros(p)

    def loss(t):
        m = A @ t
        return float(w @ (np.logaddexp(0.0, m) - y * m)) + 0.5 * float(pen @ (t * t))

    f = loss(theta)
    for _ in range(max_iter):
        m = A @ theta
        s = _sigmoid(m)
        g = A.T @ (w * (s - y)) + pen * theta
        H = (A.T * (w * s * (1.0 - s))) @ A
        H.flat[:: p + 1] += pen + 1e-12
        step = np.linalg.solve(H, g)
        dec = float(g @ step)
        if not dec > tol * max(1.0, float(w.sum())):
            break
        t = 1.0
        while True:
            new = loss(theta - t * step)
            if new <= f - 0.25 * t * dec or t < 1e-10:
                break
            t *= 0.5
        theta, f = theta - t * step, new
    beta, b = (theta[:-1], float(theta[-1])) if intercept else (theta, 0.0)
    return (Q @ beta if Q is not None else beta), b


def design(pop: Feedback, mask: Optional[np.ndarray] = None):
    """Logistic rows of pop's feedback, identical records merged (weights = counts):
    (X (m, d) float64, y (m,), w (m,), has_thumbs). A thumb: x = phi_i, y = up (the model adds
    the intercept); a pair: x = phi_win - phi_lose, y = 1."""
    f = pop if mask is None else pop.take(mask)
    keys = np.stack([f.first, f.second, f.up.astype(np.int64)], axis=1)
    uniq, counts = np.unique(keys, axis=0, return_counts=True)
    Phi = pop.Phi.astype(np.float64)
    X = Phi[uniq[:, 0]].copy()
    is_pair = uniq[:, 1] >= 0
    X[is_pair] -= Phi[uniq[is_pair, 1]]
    return X, uniq[:, 2].astype(np.float64), counts.astype(np.float64), bool((~is_pair).any())


def signed_rows(pop: Feedback):
    """fit_prior's rows: a thumb up on phi is the pair (phi, 0), so z = +phi (up) or -phi
    (down); a pair z = phi_win - phi_lose. Identical rows merged: (Z, weights)."""
    X, y, w, _ = design(pop)
    return X * np.where(y > 0, 1.0, -1.0)[:, None], w


# ================================================================ the contenders =============
class SDKLearner(Learner):
    """The SDK's RewardModel: thumbs by learn_thumb (z = phi), pairs by learn_pair."""

    def __init__(self, Phi: np.ndarray, model):
        self.Phi, self.model = Phi, model

    def thumb(self, i, up):
        self.model.learn_thumb(self.Phi[i], bool(up))

    def pair(self, win, lose):
        self.model.learn_pair(self.Phi[win], self.Phi[lose])

    def scores(self, items):
        return np.asarray(self.model.reward(self.Phi[np.asarray(items)]), np.float64)


class FixedScorer(Learner):
    """A score per item, never updated by the user."""

    def __init__(self, s: np.ndarray):
        self.s = np.asarray(s, np.float64)

    def thumb(self, i, up):
        pass

    def pair(self, win, lose):
        pass

    def scores(self, items):
        return self.s[np.asarray(items)]


def _sdk_model(d: int, prior=None):
    from edge_omd.personalizer import DEFAULT_BUDGET_BYTES
    from edge_omd.reward_model import RewardModel
    return RewardModel(d, prior=prior, budget_bytes=DEFAULT_BUDGET_BYTES)


@contender("sdk_cold", "SDK, cold start (default)")
def sdk_cold(pop: Feedback) -> NewUser:
    return lambda: SDKLearner(pop.Phi, _sdk_model(pop.dim))


def fit_sdk_prior(pop: Feedback, **kw):
    """edge_omd.prior.fit_prior on the population's signed rows (`signed_rows`), the
    fit_prior defaults unless `kw` says otherwise."""
    from edge_omd.prior import fit_prior
    Z, w = signed_rows(pop)
    used = np.unique(np.concatenate([pop.first, pop.second[pop.second >= 0]]))
    return fit_prior(Z, weights=w, phi_mean=pop.Phi[used].astype(np.float64).mean(axis=0), **kw)


@contender("sdk_prior", "SDK + fit_prior on the population (default strength 1, rank 0)")
def sdk_prior(pop: Feedback) -> NewUser:
    prior = fit_sdk_prior(pop)
    return lambda: SDKLearner(pop.Phi, _sdk_model(pop.dim, prior))


#: the population model's lam grid (sum loss + lam/2 ||beta||^2), the share of population users
#: and (when new users are scored on new items) of item groups held out to choose it
POP_LAMS = tuple(10.0 ** e for e in range(-4, 6))    # 1e-4 ... 1e5
POP_VALIDATION_USERS = 0.2
POP_VALIDATION_GROUPS = 0.3
POP_VALIDATION_REPEATS = 5      # seeded validation splits whose losses are pooled


def validation_split(pop: Feedback, repeat: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fit, check) record masks of the population model's lam choice, population users only:
    a seeded POP_VALIDATION_USERS of the users are checked, the others fitted. When new users
    will be scored on new items (`pop.new_items`), a seeded POP_VALIDATION_GROUPS of the item
    groups with feedback are held out as well: no fitted record touches them, and only checked
    users' records on them are checked (the regime the model is evaluated in)."""
    rng = np.random.default_rng([pop.seed, 0x9071, repeat])
    users = np.unique(pop.user)
    val = rng.permutation(users)[: max(1, int(round(POP_VALIDATION_USERS * len(users))))]
    check = np.isin(pop.user, val)
    fit = ~check
    if pop.new_items:
        groups = pop.groups()
        is_pair = pop.second >= 0
        seen = np.unique(groups[np.concatenate([pop.first, pop.second[is_pair]])])
        out = rng.permutation(seen)[: max(1, int(round(POP_VALIDATION_GROUPS * len(seen))))]
        held = np.isin(groups, out)
        touches = held[pop.first] | (is_pair & held[np.where(is_pair, pop.second, 0)])
        inside = held[pop.first] & (~is_pair | held[np.where(is_pair, pop.second, 0)])
        fit &= ~touches
        check &= inside
    return fit, check


def choose_lam(pop: Feedback, lams=POP_LAMS, splits=None,
               intercept: Optional[bool] = None) -> tuple[float, list]:
    """The population model's lam: for each (fit, check) record split (default: the
    POP_VALIDATION_REPEATS `validation_split`s) and each lam, fitted on the split's fit records
    (with an intercept where there are thumbs, unless `intercept` says) and scored by the
    log-loss of its checked records; the smallest mean log-loss per checked record (pooled over
    the splits) wins (a tie: the larger lam). Returns (lam, losses per lam)."""
    if splits is None:
        splits = (validation_split(pop, r) for r in range(POP_VALIDATION_REPEATS))
    total, count = np.zeros(len(lams)), 0.0
    for fit, check in splits:
        if not fit.any() or not check.any():
            continue
        X, y, w, thumbs = design(pop, fit)
        Xv, yv, wv, _ = design(pop, check)
        for j, lam in enumerate(lams):
            beta, b = fit_logistic(X, y, w, lam, intercept=thumbs if intercept is None else intercept)
            m = Xv @ beta + b
            total[j] += float(wv @ (np.logaddexp(0.0, m) - yv * m))
        count += float(wv.sum())
    if count == 0:
        raise ValueError("the population is too small to choose lam (no validation split)")
    losses = list(total / count)
    best = min(range(len(lams)), key=lambda j: (round(losses[j], 12), -lams[j]))
    return float(lams[best]), losses


def fit_population_model(pop: Feedback, lam: Optional[float] = None) -> tuple[np.ndarray, float, float]:
    """(beta, b, lam): the population model on all of pop (lam by `choose_lam` if None)."""
    if lam is None:
        lam, _ = choose_lam(pop)
    X, y, w, thumbs = design(pop)
    beta, b = fit_logistic(X, y, w, lam, intercept=thumbs)
    return beta, b, lam


@contender("population", "population model (one logistic regression; ignores the user)")
def population_model(pop: Feedback) -> NewUser:
    beta, b, lam = fit_population_model(pop)
    s = pop.Phi.astype(np.float64) @ beta + b

    def make():
        return FixedScorer(s)
    make.info = {"lam": lam}       # reported by the benchmarks
    return make


#: the per-user refit's lam (sum loss + lam/2 ||beta||^2): the SDK's default lam, 1
REFIT_LAM = 1.0


class RefitLearner(Learner):
    """Per-user L2 logistic regression refitted on all the user's feedback so far, at each
    `scores` call (thumbs with an unpenalised intercept; pairs without). Constant scores while
    it holds no pair and fewer than two thumb classes (the intercept-only MLE is a constant)."""

    def __init__(self, Phi: np.ndarray, lam: float = REFIT_LAM):
        self.Phi, self.lam = Phi.astype(np.float64), lam
        self.rows, self.ys, self.thumbs = [], [], 0

    def thumb(self, i, up):
        self.rows.append(self.Phi[i])
        self.ys.append(1.0 if up else 0.0)
        self.thumbs += 1

    def pair(self, win, lose):
        self.rows.append(self.Phi[win] - self.Phi[lose])
        self.ys.append(1.0)

    def scores(self, items):
        items = np.asarray(items)
        pairs = len(self.rows) - self.thumbs
        if pairs == 0 and len(set(self.ys)) < 2:
            return np.zeros(len(items))
        X, y = np.array(self.rows), np.array(self.ys)
        beta, _ = fit_logistic(X, y, np.ones(len(y)), self.lam, intercept=self.thumbs > 0)
        return self.Phi[items] @ beta


@contender("refit", "per-user logistic refit (intercept, lam 1)")
def per_user_refit(pop: Feedback) -> NewUser:
    return lambda: RefitLearner(pop.Phi)


def agree_rates(pop: Feedback) -> np.ndarray:
    """(a_i + 1) / (a_i + d_i + 2) per item: a_i agrees (thumbs up), d_i disagrees among the
    population's thumbs on item i (an item nobody voted on: 1/2)."""
    n = len(pop.Phi)
    t = pop.second < 0
    a = np.bincount(pop.first[t & pop.up], minlength=n)
    d = np.bincount(pop.first[t & ~pop.up], minlength=n)
    return (a + 1.0) / (a + d + 2.0)


@contender("agree_rate", "the statement's agree rate among the population (no text)",
           item_votes=True, thumbs_only=True)
def agree_rate(pop: Feedback) -> NewUser:
    s = agree_rates(pop)
    return lambda: FixedScorer(s)


def pack_users(pop: Feedback):
    """pop's records as the fit reads them (edge_omd.population.data.UserData), one user each,
    in record order: a thumb (phi_i, up; a bare thumb), a pair (phi_win - phi_lose, 1): what the
    SDK learns; an observation's item group is its item's `pop.groups()` (a pair's: the
    preferred one's)."""
    from edge_omd.population.data import make_user
    Phi = pop.Phi.astype(np.float64)
    groups = pop.groups()
    out = []
    for u in np.unique(pop.user):
        idx = np.flatnonzero(pop.user == u)
        obs = [(Phi[pop.first[i]] - Phi[pop.second[i]], 1.0) if pop.second[i] >= 0
               else (Phi[pop.first[i]], float(pop.up[i])) for i in idx]
        out.append(make_user(f"user-{int(u)}", obs, groups[pop.first[idx]],
                             [bool(pop.second[i] < 0) for i in idx]))
    return out


def fit_pack(pop: Feedback, fingerprint=None, **settings):
    """edge_omd.population.fit_population on pop (default settings unless given), its scales
    chosen in the regime the new users are served in, as the population model's lam: items
    held out (ITEM_SHARE) when they will be scored on items the population never judged
    (`pop.new_items`), none when they share the population's items (`edge-omd population fit
    --items seen`); bound to `fingerprint` (a head's) when given."""
    from edge_omd.population.data import ArrayShard
    from edge_omd.population.fit import ITEM_SHARE, Settings, fit_population
    settings.setdefault("item_share", ITEM_SHARE if pop.new_items else 0.0)
    st = Settings(seed=int(pop.seed) & 0x7FFFFFFF, **settings)
    return fit_population([ArrayShard(pack_users(pop))], d=pop.dim, settings=st,
                          fingerprint=fingerprint)


def lookup_head(Phi: np.ndarray):
    """A head (edge_omd.head.protocol.ArrayHead) whose features of the response `item_text(i)`
    are Phi[i] as given (float32, not renormalised), whatever the prompt: the benchmark's
    features behind the SDK's public front."""
    from edge_omd.head.protocol import ArrayHead
    Phi = np.asarray(Phi, np.float32)
    return ArrayHead(Phi.shape[1], f"bench lookup of {len(Phi)} items",
                     lambda prompt, rs: Phi[[int(r.rpartition(" ")[2]) for r in rs]],
                     normalize=False)


def item_text(i: int) -> str:
    return f"item {int(i)}"


class PersonalizerLearner(Learner):
    """A new user of the SDK through its public front: `Personalizer(head, store, user,
    population=pack)` with default options, a thumb by `feedback(prompt, item, up)`, a pair by
    `prefer(prompt, win, lose)`, scores by `score(prompt, items)`, every update committed to
    the store. The prompt is the item's group (`pop.group`; one prompt for all when None: a
    Polis conversation's topic)."""

    def __init__(self, personalizer, groups: Optional[np.ndarray]):
        self.p, self.groups = personalizer, groups

    def _prompt(self, i) -> str:
        return "topic" if self.groups is None else f"prompt {int(self.groups[i])}"

    def thumb(self, i, up):
        self.p.thumb(self._prompt(i), item_text(i), bool(up))

    def pair(self, win, lose):
        self.p.prefer(self._prompt(win), item_text(win), item_text(lose))

    def scores(self, items):
        items = np.asarray(items)
        out = np.empty(len(items))
        prompts = np.array([self._prompt(i) for i in items])
        for x in np.unique(prompts):
            idx = np.flatnonzero(prompts == x)
            out[idx] = self.p.score(x, [item_text(i) for i in items[idx]])
        return out


@contender("pack", "SDK + population pack (Personalizer(population=pack), default options)")
def population_pack(pop: Feedback) -> NewUser:
    """A new user of `Personalizer(head, store, user, population=pack)`, the pack fitted by
    fit_population on the population (`fit_pack`), the head a lookup of pop.Phi, the store a
    SQLiteStore in a temporary folder (durable="normal": what is measured does not depend on
    fsync); a test checks it scores what the RewardModel it drives scores."""
    import tempfile

    from edge_omd.personalizer import Personalizer
    from edge_omd.store import SQLiteStore
    head = lookup_head(pop.Phi)
    pk = fit_pack(pop, fingerprint=head.fingerprint)
    folder = tempfile.TemporaryDirectory(prefix="edge-omd-bench-")
    store = SQLiteStore(os.path.join(folder.name, "users.sqlite"), durable="normal")
    count = [0]

    def make():
        count[0] += 1
        return PersonalizerLearner(Personalizer(head, store, f"new-{count[0]}", population=pk),
                                   pop.group)
    make.folder = folder                # removed with the factory
    make.info = {k: pk.fit.get(k) for k in ("lam_pop", "rho", "firm", "weakest", "K",
                                            "intercept", "held_out_prequential",
                                            "held_out_population")}
    return make


# ================================================================ statistics =================
def cluster_weights(strata: np.ndarray, boot: int, seed) -> np.ndarray:
    """(boot, P) bootstrap counts of P clusters (users), resampled with replacement within each
    stratum (a conversation; one stratum: plain resampling). The same counts serve every
    contender, so differences are paired."""
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    W = np.zeros((boot, len(strata)))
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        W[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=boot)
    return W


@dataclass
class Estimate:
    """A mean over evaluations and its 95% percentile interval over cluster resamples."""
    mean: float
    lo: float
    hi: float
    users: int = 0          # clusters (distinct users)
    evals: int = 0          # evaluations (a user evaluated under several seeds counts each time)
    extra: dict = field(default_factory=dict)

    def fmt(self, nd: int = 3) -> str:
        return f"{self.mean:.{nd}f} [{self.lo:.{nd}f}, {self.hi:.{nd}f}]"

    def fmt_diff(self, nd: int = 3) -> str:
        return f"{self.mean:+.{nd}f} [{self.lo:+.{nd}f}, {self.hi:+.{nd}f}]"


def ratio_ci(S: np.ndarray, N: np.ndarray, W: np.ndarray) -> Estimate:
    """sum S / sum N (S: per-cluster sums of a per-evaluation figure, N: evaluations per
    cluster) and its interval over the resample counts W (boot, P)."""
    S, N = np.asarray(S, np.float64), np.asarray(N, np.float64)
    den = W @ N
    ok = den > 0
    res = (W[ok] @ S) / den[ok]
    lo, hi = np.quantile(res, [0.025, 0.975])
    return Estimate(float(S.sum() / N.sum()), float(lo), float(hi), int((N > 0).sum()), int(N.sum()))
