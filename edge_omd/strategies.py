"""Decision rules of the paper's three settings, on arrays (no text, no store).

Notation (docs/ALGORITHM.md): rewards r_a = theta^T phi(x, a); the width of a direction v is
||v||_{cal_H^{-1}} = sqrt(v^T cal_H^{-1} v); beta is the radius of the confidence set
||theta - theta_t||_{cal_H_t} <= beta.

- Passive: `pessimistic_scores` = r_a - beta * ||phi_a - ref||_{cal_H^{-1}} (lower confidence bound).
- Deployment: `choose_pair` picks the two responses shown side by side (STRATEGIES).
- Active: `greedy_queries` picks k pairs of maximal width, updating the local norm after each
  pick as if it had been labelled (`RewardModel.fantasize`), so the k are not redundant.

    >>> choose_pair(np.array([0.1, 0.9, 0.5]), None, strategy="best_worst")
    (1, 0)
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from edge_omd import _checks
from edge_omd.errors import InvalidInputError, NumericalError

__all__ = ["STRATEGIES", "DEFAULT_BETA", "DEFAULT_PESSIMISM", "DEFAULT_Q", "paper_beta", "pessimistic_scores",
           "choose_pair", "greedy_queries"]

STRATEGIES = ("ucb", "best_quantile", "best_second", "best_worst", "random")

# beta = 1: the confidence ellipsoid's radius in units of the local norm, i.e. a one-"sigma"
# bound on theta^T v for every direction v. The paper's beta_t (`paper_beta`) is valid for
# worst-case guarantees but, at d = 384, some hundred times larger: it explores for ever.
DEFAULT_BETA = 1.0
# rank()'s pessimism (the lower confidence bound r - pessimism * width) defaults to 0, plain
# reward: on the per-user benchmark (python -m edge_omd_bench.peruser, MiniLM, 40 users per
# population) mean top-1 over k = 0..100 feedbacks was 0.317 / 0.309 (design / second
# population) at 0 against 0.291, 0.273, 0.242, 0.205 at 0.25, 0.5, 1, 2; at k = 0 a
# pessimism of 1 picks the most "average" answer, below chance (0.125 vs 0.167). beta stays the
# exploration radius of choose_pair("ucb"). Pessimism, pair strategy and beta were checked again
# on the default views head's features: docs/BENCHMARKS.md "Views (issue 20)", rule B.
DEFAULT_PESSIMISM = 0.0
# best_quantile: the second response is the ceil(n/q)-th best (the official code shows the 4th
# best of 64 samples, q = 16). With the few candidates an assistant has (4-16), q = 4 keeps the
# second response out of the very top without reaching the bottom half.
DEFAULT_Q = 4


def paper_beta(dim: int, t: int, *, delta: float = 0.05) -> float:
    """The paper's confidence radius, beta_t = sqrt(d) * log((t + 1) / delta).

    The paper states beta_t = O(sqrt(d) log(t / delta)) for the OMD confidence set
    ||theta - theta_t||_{cal_H_t} <= beta_t with probability 1 - delta; the constant inside the
    O is taken as 1 and t as t + 1 so the radius is positive from the first round.
    """
    dim = _checks.int_in("dim", dim, 1, 1 << 62)
    t = _checks.integer("t", t)
    delta = _checks.real_in("delta", delta, 0.0, 1.0, open_lo=True, open_hi=True)
    return math.sqrt(dim) * math.log((max(int(t), 0) + 1) / delta)


def pessimistic_scores(rewards: np.ndarray, widths: np.ndarray, beta: float) -> np.ndarray:
    """Lower confidence bound r_a - beta * w_a (passive setting)."""
    return np.asarray(rewards, np.float64) - float(beta) * np.asarray(widths, np.float64)


def _order(rewards: np.ndarray) -> np.ndarray:
    # Best first; ties broken by index so the choice is deterministic.
    return np.lexsort((np.arange(rewards.size), -rewards))


def choose_pair(rewards: np.ndarray, width_from: Optional[Callable[[int], np.ndarray]], *,
                strategy: str = "ucb", beta: float = DEFAULT_BETA, q: float = DEFAULT_Q,
                rng: Optional[np.random.Generator] = None) -> tuple[int, int]:
    """Indices (first, second) of the two responses to show, first = argmax reward.

    - "ucb" (paper, Sec. deployment): a = argmax_a r_a;
      a' = argmax_{a' != a} r_{a'} + 2 beta ||phi_{a'} - phi_a||_{cal_H^{-1}}.
      `width_from(a)` must return the (n,) widths ||phi_b - phi_a||_{cal_H^{-1}}.
    - "best_quantile" (paper, practice): a = best, a' = the ceil(n/q)-th best (at least the 2nd).
    - "best_second": the two best.  "best_worst": the best and the worst.
    - "random": two distinct responses uniformly at random (first is NOT the best).
    """
    r = np.asarray(rewards, np.float64)
    n = r.size
    if r.ndim != 1 or n < 2:
        raise InvalidInputError(f"choose_pair needs at least 2 candidates, got {n}")
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise InvalidInputError(f"unknown strategy {strategy!r}; choose one of "
                                f"{', '.join(STRATEGIES)}")
    if strategy == "random":
        rng = np.random.default_rng() if rng is None else rng
        i, j = rng.choice(n, size=2, replace=False)
        return int(i), int(j)
    order = _order(r)
    best = int(order[0])
    if strategy == "best_second":
        return best, int(order[1])
    if strategy == "best_worst":
        return best, int(order[-1])
    if strategy == "best_quantile":
        q = _checks.at_least("q", q, 1.0, allow_inf=True)
        k = min(n, max(2, math.ceil(n / q)))
        return best, int(order[k - 1])
    # ucb
    if width_from is None:
        raise InvalidInputError("strategy 'ucb' needs the widths ||phi_b - phi_best||_{H^-1}")
    beta = _checks.at_least("beta", beta, 0.0)
    w = np.asarray(width_from(best), np.float64)
    ucb = r + 2.0 * float(beta) * w
    ucb[best] = -np.inf
    return best, int(_order(ucb)[0])


def greedy_queries(model, Z: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Greedy D-optimal-style selection of k rows of Z (candidate directions z = phi - phi').

    Round j picks z_j = argmax_z ||z||_{cal_H_j^{-1}} among the rows not yet picked, then sets
    cal_H_{j+1} = cal_H_j + sigma'(theta^T z_j) z_j z_j^T (`model.fantasize`, on a copy: theta and
    the caller's model do not move), so a direction already asked about loses its width and the
    k queries are not redundant. Rows of zero width (identical responses) are never picked.
    Returns [(row, width at the time it was picked)], in pick order (len <= k). A row whose
    fantasized curvature the state's dtype cannot hold (`fantasize` raises NumericalError, the
    copy unchanged; learning it would be refused too) is still picked; the next rounds then see
    the widths without it.
    """
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.shape[0] == 0:
        return []
    m = model.copy()
    taken = np.zeros(Z.shape[0], dtype=bool)
    out = []
    for _ in range(min(int(k), Z.shape[0])):
        w = np.asarray(m.width(Z), np.float64)
        w[taken] = -np.inf
        j = int(np.argmax(w))
        if not w[j] > 0.0:
            break
        out.append((j, float(w[j])))
        taken[j] = True
        try:
            m.fantasize(Z[j])
        except NumericalError:
            pass  # the copy is unchanged (the solver's guards): go on with its widths
    return out
