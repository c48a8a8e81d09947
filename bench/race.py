"""Run contenders on streams, evaluate at checkpoints, and tune them fairly.

Tuning (the same budget for everyone): each contender is run once per point of its grid
(`N_TRIALS` points) on a *validation* stream/split that shares nothing with the test stream, and
scored by its mean validation accuracy over the checkpoints (the area under the learning curve,
so a setting that is only good at the end does not win). The best point is then run on the test
streams. Test data are never looked at before that.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from edge_omd_bench.base import Contender
from edge_omd_bench.contenders import ContenderSpec

CHUNK = 512        # examples converted to native format at a time (outside the timed region)


def checkpoints(T: int, start: int = 10) -> list[int]:
    """1-2-5 log-spaced checkpoints from `start` up to T, T included."""
    out, base = [], 1
    while base <= T:
        for m in (1, 2, 5):
            v = m * base
            if start <= v < T:
                out.append(v)
        base *= 10
    out.append(T)
    return sorted(set(out))


def pair_accuracy(margins: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of pairs ordered like `truth` (1 / 0 labels or signs); a zero margin counts 1/2."""
    pos = truth > 0
    s = np.where(pos, margins, -margins)
    return float(np.mean((s > 0) + 0.5 * (s == 0)))


def run_stream(c: Contender, Z: np.ndarray, y: np.ndarray, cps: list[int],
               evaluate: Callable[[Contender], dict]) -> dict:
    """Feed (Z[t], y[t]) in order; at each checkpoint t call evaluate(c). Returns
    {metric: [value per checkpoint], "learn_s": seconds spent inside learn calls}."""
    out: dict[str, list] = {}
    learn_ns, t = 0, 0
    for cp in cps:
        while t < cp:
            hi = min(cp, t + CHUNK)
            items = [c.prepare(Z[i], int(y[i])) for i in range(t, hi)]
            t0 = time.perf_counter_ns()
            for it in items:
                c.learn_prepared(it)
            learn_ns += time.perf_counter_ns() - t0
            t = hi
        for k, v in evaluate(c).items():
            out.setdefault(k, []).append(v)
    out["learn_s"] = learn_ns / 1e9
    return out


def race(specs: list[ContenderSpec], dim: int, *, tune_runs: Callable[[Contender], dict],
         test_runs: list[Callable[[Contender], dict]], seed: int, log=print,
         label: str = "", metric: str = "acc") -> dict:
    """Tune every spec on `tune_runs` (one call = one trial, returns run_stream's dict), then
    run the best setting once per element of `test_runs`. Returns {contender id: result}, each
    result with the display "label", the family, the chosen params, every trial, the spec's
    note, fixed arguments and facts (e.g. the sketch's "rank", a number), and one curve per
    metric and test run."""
    res = {}
    for s in specs:
        t0 = time.perf_counter()
        trials = []
        for params in s.grid:
            try:
                r = tune_runs(s.make(dim, params, seed=seed + 1000))
                score = float(np.mean(r[metric]))
            except Exception as exc:  # a setting that blows up scores -inf and is reported
                log(f"  {s.name} {params}: failed in tuning ({type(exc).__name__}: {exc})")
                score = float("-inf")
            trials.append({"params": params, "val_score": score})
        best = max(trials, key=lambda tr: tr["val_score"])["params"]
        runs = [fn(s.make(dim, best, seed=seed + i)) for i, fn in enumerate(test_runs)]
        curves = {k: [r[k] for r in runs] for k in runs[0] if k != "learn_s"}
        entry = {"label": s.name, "family": s.family, "params": best, "trials": trials, "note": s.note,
                 "fixed": dict(s.fixed), "learn_s": float(np.mean([r["learn_s"] for r in runs]))}
        assert not (set(s.facts) | set(curves)) & set(entry), s.id
        res[s.id] = {**entry, **s.facts, **curves}
        final = np.mean([v[-1] for v in curves[metric]])
        log(f"  {label}{s.name:28s} best {best}  final {metric} {final:.4f}  "
            f"({time.perf_counter() - t0:.1f}s)")
    return res
