"""Issue 18, items 2 and 5: what the machine-independent kernels cost, before/after in ONE run.

    python -m edge_omd_bench.kernels                       # before = REV_BEFORE, after = this tree
    python -m edge_omd_bench.kernels --before REV --rounds 7
    python -m edge_omd_bench.kernels --after REV            # after = that revision, not the checkout
    python -m edge_omd_bench.kernels --worker              # one measurement of this tree (JSON)

Each round runs one fresh worker process per tree, back to back, in alternating order (before
first in even rounds): the "before" tree is `git archive REV edge_omd` unpacked into a temporary
folder and put first on PYTHONPATH, the "after" tree is this checkout. A worker runs each case's
block twice, on two fresh models, and times the second: the first compiles (or loads) the kernels
and runs every path of the block once (the sketch's shrink, the probes), so one-time costs of the
process (OpenBLAS/LAPACK's first call in the old tree) are not timed. (The first decision run
warmed up with 8 updates only, and timed the old tree's first LAPACK call inside the sketch and cg
blocks: fixed, and the decision run again; both are reported in docs/ALGORITHM.md.) Printed per round: the machine's load (/proc/loadavg); per case: both means, and over the
rounds the median after/before ratio with a 95% confidence interval (bootstrap over rounds, paired
by round: 10^4 resamples of the mean log-ratio, seed 0).

DECISION RULE (item 2), written down before the deciding measurement:

  Candidates. (a) the machine-independent kernels of this branch: no fastmath, sums in a fixed
  order (fixed-lane partial sums combined in a fixed order where speed needs them), no FMA,
  fdlibm's exp, no BLAS/LAPACK in any state byte or update decision; their goldens are compared
  bit for bit on every CPU. (b) per-CPU fast kernels (main's fastmath kernels and BLAS/LAPACK
  shrink) for the kernels that miss, their goldens compared across CPUs to a stated tolerance and
  bit for bit on one machine.

  Before: main where this branch started (REV_BEFORE). After: this branch's (a) kernels.

  Statistic: float32 (the default dtype), unit features, pair updates with alternating labels;
  per case the mean wall time per update over one block of N consecutive updates (amortised
  shrinks and precision probes included), of the solver's kernels as RewardModel.learn_pair runs
  them (solver.step + solver.absorb, the update counter advanced, no Python front). Cases:
  exact d = 384 (N = 400: one precision probe) and d = 4096 (N = 24), cg d = 384 (N = 400: one
  PSD probe), sketch d = 384 rank 64 (N = 256: 4 shrinks), diagonal d = 384 (N = 400). A full
  click: Personalizer.prefer with the demo's MiniLM head (ONNX, CPU) on two answers it has not
  embedded yet, SQLite store, mean over 20 clicks. Also printed, not part of the rule: the same
  updates through the public learn_pair, and a choice among 4 (learn_choice, exact d = 384).

  Rule: a solver keeps (a) if the upper end of its ratio's 95% CI is <= 1.10 (exact, at both d;
  diagonal) or <= 1.30 (cg, sketch), and the full click's CI reaches down to 1.0 or below (no
  slower beyond noise); a solver that misses gets (b) for its kernels. 7 rounds.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REV_BEFORE = "bd756e4"
#: (case, solver, d, rank, N) of the rule (module docstring)
CASES = [("exact d=384", "exact", 384, None, 400), ("exact d=4096", "exact", 4096, None, 24),
         ("cg d=384", "cg", 384, None, 400), ("sketch d=384 r64", "sketch", 384, 64, 256),
         ("diagonal d=384", "diagonal", 384, None, 400)]
#: the rule's thresholds on the upper end of the ratio's CI, by solver
LIMIT = {"exact": 1.10, "diagonal": 1.10, "cg": 1.30, "sketch": 1.30}
CLICKS, WARM = 20, 3


# ------------------------------------------------------------------ one worker (one tree)
def _pairs(d, n, seed):
    """n unit float32 differences z = a - b (a, b unit), labels alternating."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    B = rng.standard_normal((n, d))
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    B /= np.linalg.norm(B, axis=1, keepdims=True)
    return A.astype(np.float32), B.astype(np.float32), (A - B).astype(np.float32)


def _twice(block, *args):
    """block(*args) run twice in this process; the second run's result (module docstring)."""
    block(*args)
    return block(*args)


def _kernel_block(solver, d, rank, n):
    """Mean seconds per update of solver.step + solver.absorb over n consecutive updates."""
    from edge_omd import RewardModel
    m = RewardModel(d, solver=solver, dtype="float32",
                    **({"sketch_rank": rank} if rank else {}))
    _a, _b, Z = _pairs(d, n + 8, seed=d)
    s = m._solver
    for t in range(8):  # warm-up: kernels compiled or loaded
        s.step(Z[t], float(t % 2), 1.0)
        s.absorb(Z[t], 1.0)
        s.counter[0] += 1
    t0 = time.perf_counter()
    for t in range(8, n + 8):
        s.step(Z[t], float(t % 2), 1.0)
        s.absorb(Z[t], 1.0)
        s.counter[0] += 1
    return (time.perf_counter() - t0) / n


def _verb_block(solver, d, rank, n):
    """Mean seconds per RewardModel.learn_pair over n consecutive updates."""
    from edge_omd import RewardModel
    m = RewardModel(d, solver=solver, dtype="float32",
                    **({"sketch_rank": rank} if rank else {}))
    A, B, _z = _pairs(d, n + 8, seed=d + 1)
    for t in range(8):
        m.learn_pair(A[t], B[t])
    t0 = time.perf_counter()
    for t in range(8, n + 8):
        m.learn_pair(A[t], B[t]) if t % 2 else m.learn_pair(B[t], A[t])
    return (time.perf_counter() - t0) / n


def _choice_block(d, n, k=4):
    from edge_omd import RewardModel
    m = RewardModel(d, solver="exact", dtype="float32")
    rng = np.random.default_rng(5)
    P = rng.standard_normal((n + 4, k, d)).astype(np.float32)
    P /= np.linalg.norm(P, axis=2, keepdims=True)
    for t in range(4):
        m.learn_choice(P[t], t % k)
    t0 = time.perf_counter()
    for t in range(4, n + 4):
        m.learn_choice(P[t], t % k)
    return (time.perf_counter() - t0) / n


def _click_block(n):
    """Mean seconds per Personalizer.prefer (MiniLM forward on 2 new answers, learn, commit)."""
    from edge_omd.apps.demo import ensure_demo_head, load_corpus
    from edge_omd.personalizer import Personalizer
    from edge_omd.store import SQLiteStore
    head = ensure_demo_head(log=lambda *a, **k: None)
    items = load_corpus().items
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(os.path.join(tmp, "s.sqlite"))
        p = Personalizer(head, store, "u")
        times = []
        for i in range(n + WARM):
            item = items[i % len(items)]
            a, b = item.responses[0] + f" ({i})", item.responses[1] + f" ({i})"
            t0 = time.perf_counter()
            p.prefer(item.prompt, a, b)
            if i >= WARM:
                times.append(time.perf_counter() - t0)
        store.close()
    return float(np.mean(times))


def worker():
    out = {}
    for name, solver, d, rank, n in CASES:
        out[name] = {"kernel": _twice(_kernel_block, solver, d, rank, n),
                     "verb": _twice(_verb_block, solver, d, rank, n)}
    out["choice exact d=384 k=4"] = {"verb": _twice(_choice_block, 384, 100)}
    out["click"] = {"click": _click_block(CLICKS)}
    return out


# ------------------------------------------------------------------ the interleaved run
def _tree(rev, tmp):
    """A folder holding `edge_omd` as of git revision `rev` (None: this checkout)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if rev is None:
        return root
    dest = os.path.join(tmp, rev)
    os.makedirs(dest)
    arch = subprocess.run(["git", "-C", root, "archive", rev, "edge_omd"], check=True,
                          capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=arch, check=True)
    return dest


def _run_worker(tree):
    # one BLAS thread for both trees (the old one calls BLAS in probes and shrinks: OpenBLAS's
    # idle threads spin on the other core); the kernel cache is the user's, warm after round 1
    env = dict(os.environ, PYTHONPATH=tree + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = ("import edge_omd, json, sys; assert edge_omd.__file__.startswith(sys.argv[1]), "
            "edge_omd.__file__; from edge_omd_bench.kernels import worker; "
            "print(json.dumps(worker()))")
    r = subprocess.run([sys.executable, "-c", code, tree], env=env, capture_output=True,
                       text=True, timeout=1800, cwd=tempfile.gettempdir())  # not the checkout
    if r.returncode != 0:
        raise SystemExit(f"worker for {tree} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _ci(ratios, n_boot=10_000, seed=0):
    """(geometric mean, lo, hi): 95% bootstrap CI over rounds of the mean log-ratio."""
    logs = np.log(np.asarray(ratios))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(logs), size=(n_boot, len(logs)))
    boot = logs[idx].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return math.exp(logs.mean()), math.exp(lo), math.exp(hi)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=REV_BEFORE)
    ap.add_argument("--after", default=None, help="a revision instead of this checkout")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--worker", action="store_true", help="measure this tree once, print JSON")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker()))
        return 0
    tmp = tempfile.mkdtemp(prefix="eomd-kernels-")
    try:
        trees = {"before": _tree(args.before, tmp), "after": _tree(args.after, tmp)}
        runs = {"before": [], "after": []}
        for r in range(args.rounds):
            with open("/proc/loadavg") as f:
                load = f.read().split()[:3]
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for which in order:
                runs[which].append(_run_worker(trees[which]))
            print(f"round {r + 1}/{args.rounds}: load {' '.join(load)} (1, 5, 15 min), "
                  f"order {order[0]} first", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open("/proc/loadavg") as f:
        print(f"load at the end: {' '.join(f.read().split()[:3])}; 2 cores shared")
    print(f"\nbefore = {args.before}, after = {args.after or 'this tree'}; means over the block, medians over "
          f"{args.rounds} rounds; ratio = after / before, geometric mean and 95% CI over rounds")
    print(f"{'case':24s} {'what':7s} {'before':>10s} {'after':>10s} {'ratio':>6s} "
          f"{'95% CI':>15s}  rule")
    verdicts = {}
    for case in runs["after"][0]:
        for what in runs["after"][0][case]:
            b = [x[case][what] for x in runs["before"]]
            a = [x[case][what] for x in runs["after"]]
            g, lo, hi = _ci([ai / bi for ai, bi in zip(a, b)])
            solver = case.split()[0]
            rule = ""
            if what == "kernel" and solver in LIMIT:
                ok = hi <= LIMIT[solver]
                verdicts[solver] = verdicts.get(solver, True) and ok
                rule = f"(a) if hi <= {LIMIT[solver]:.2f}: {'PASS' if ok else 'MISS'}"
            elif what == "click":
                ok = lo <= 1.0
                verdicts["click"] = ok
                rule = f"no slower beyond noise (lo <= 1): {'PASS' if ok else 'MISS'}"
            unit = 1e3 if what == "click" else 1e6
            u = "ms" if what == "click" else "us"
            print(f"{case:24s} {what:7s} {np.median(b) * unit:8.1f}{u} {np.median(a) * unit:8.1f}{u} "
                  f"{g:6.3f} [{lo:6.3f}, {hi:6.3f}]  {rule}")
    print("\nverdict: " + ", ".join(f"{k}: {'(a)' if v else '(b)'}" if k != "click" else
                                    f"click: {'ok' if v else 'slower'}" for k, v in verdicts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
