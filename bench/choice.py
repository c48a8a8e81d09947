"""Choose-one-of-k (issue 11 item 3): the time of one `learn_choice` over k candidates against one
`learn_pair`, per solver, and what a choice buys over feeding the same choice as k - 1 pairs.

    python -m edge_omd_bench.choice            # d = 384, k = 2, 3, 4, 8, 16, every solver
    python -m edge_omd_bench.choice --quick    # fewer repetitions

Target (issue 11): learn_choice at k = 4, d = 384, exact, float32 <= 3x one learn_pair.
Latency is per call with perf_counter_ns after a warm-up (the first call compiles or loads the
Numba cache), on a model that keeps learning (steady state: a pair pays the rotation its
predecessor deferred, a choice applies its own). Medians and p90 over calls; nothing is asserted.

Accuracy: simulated users with a hidden theta* choose one of k unit candidates by the softmax
of theta*.phi; the same stream is fed either as learn_choice or as the k - 1 pairs (chosen,
other); printed: held-out top-1 agreement with theta*'s best of k after T choices.
"""
import argparse
import os
import platform
import time

import numpy as np

from edge_omd import RewardModel


def _unit_rows(rng, n, d):
    X = rng.normal(size=(n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _model(solver, d, dtype):
    kw = {"sketch_rank": 48} if solver == "sketch" else {}
    return RewardModel(d, solver=solver, dtype=dtype, **kw)


def time_calls(solver, d, k, dtype, n, seed=0):
    """(pair median, pair p90, choice median, choice p90) in microseconds."""
    rng = np.random.default_rng(seed)
    Phis = [_unit_rows(rng, k, d).astype(dtype) for _ in range(n + 20)]
    pairs = [_unit_rows(rng, 2, d).astype(dtype) for _ in range(n + 20)]
    mp, mc = _model(solver, d, dtype), _model(solver, d, dtype)
    tp, tc = [], []
    for i in range(n + 20):
        t0 = time.perf_counter_ns()
        mp.learn_pair(pairs[i][0], pairs[i][1])
        t1 = time.perf_counter_ns()
        mc.learn_choice(Phis[i], i % k)
        t2 = time.perf_counter_ns()
        if i >= 20:
            tp.append((t1 - t0) / 1e3)
            tc.append((t2 - t1) / 1e3)
    return (float(np.median(tp)), float(np.percentile(tp, 90)), float(np.median(tc)),
            float(np.percentile(tc, 90)))


def accuracy(k, d=32, T=60, users=20, test=300, seed=1):
    """Held-out top-1 agreement after T choices: learn_choice vs the same choices as k-1 pairs."""
    out = {"choice": [], "pairs": []}
    for u in range(users):
        rng = np.random.default_rng(seed + u)
        theta_star = rng.normal(size=d) * (4.0 / np.sqrt(d)) * np.sqrt(d) / 2
        stream = []
        for _ in range(T):
            Phi = _unit_rows(rng, k, d)
            s = Phi @ theta_star
            p = np.exp(s - s.max())
            stream.append((Phi, int(rng.choice(k, p=p / p.sum()))))
        tests = [_unit_rows(rng, k, d) for _ in range(test)]
        a, b = RewardModel(d, solver="exact"), RewardModel(d, solver="exact")
        for Phi, c in stream:
            a.learn_choice(Phi, c)
            for j in range(k):
                if j != c:
                    b.learn_pair(Phi[c], Phi[j])
        for name, m in (("choice", a), ("pairs", b)):
            hit = np.mean([np.argmax(m.reward(P)) == np.argmax(P @ theta_star) for P in tests])
            out[name].append(hit)
    return {n: (float(np.mean(v)), float(np.std(v) / np.sqrt(len(v)))) for n, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--d", type=int, default=384)
    args = ap.parse_args(argv)
    n = 100 if args.quick else 400
    print(f"# edge-omd choice bench  {platform.machine()}  {os.cpu_count()} cpus  "
          f"python {platform.python_version()}  d={args.d}  {n} calls each")
    print(f"{'solver':9s} {'dtype':8s} {'k':>3s} {'pair us':>9s} {'choice us':>10s} "
          f"{'ratio':>6s} {'pair p90':>9s} {'choice p90':>11s}")
    for solver in ("exact", "cg", "sketch", "diagonal"):
        for dtype in ("float32", "float64"):
            for k in ((2, 3, 4, 8, 16) if solver == "exact" and dtype == "float32" else (2, 4)):
                p50, p90, c50, c90 = time_calls(solver, args.d, k, dtype, n)
                flag = "  <- target <= 3x" if (solver, dtype, k) == ("exact", "float32", 4) else ""
                print(f"{solver:9s} {dtype:8s} {k:3d} {p50:9.1f} {c50:10.1f} {c50 / p50:6.2f} "
                      f"{p90:9.1f} {c90:11.1f}{flag}")
    print("\n# held-out top-1 vs theta*'s best of k (exact, d=32, 60 choices, 20 users, "
          "mean +- se)")
    for k in (3, 4, 8):
        acc = accuracy(k, users=8 if args.quick else 20)
        print(f"k={k}: learn_choice {acc['choice'][0]:.3f} +- {acc['choice'][1]:.3f}   "
              f"k-1 pairs {acc['pairs'][0]:.3f} +- {acc['pairs'][1]:.3f}")


if __name__ == "__main__":
    main()
