"""Issue 2's benchmark: per-update latency, state bytes, resident memory and accuracy of the
RewardModel solvers, next to a numpy twin and the paper's full-batch MLE refit.

    python -m edge_omd_bench.runtime            # everything (about 10 minutes on 2 cores)
    python -m edge_omd_bench.runtime --quick    # smaller sizes, for a smoke run

Latency is measured per update with perf_counter_ns after a warm-up (the first call compiles or
loads the Numba cache and is excluded); medians and p99 are over individual updates. It prints
figures; it asserts nothing (these machines are shared and noisy).
"""
import argparse
import os
import platform
import sys
import time

import numpy as np
from scipy.linalg import blas

from edge_omd import RewardModel
from edge_omd_bench.mle import MLERefit

MiB = 1 << 20


def _unit_rows(rng, n, d, dtype=np.float64):
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(dtype)


def _rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return -1


class NumpyExact:
    """The exact update in plain numpy/BLAS: the inverse P = cal_H^{-1} by Sherman-Morrison
    (sgemv + in-place sger; the strongest numpy formulation of the same math)."""

    def __init__(self, d, eta=1.0, lam=1.0, dtype=np.float32):
        self.theta = np.zeros(d, dtype)
        self.P = np.asfortranarray(np.eye(d, dtype=dtype) / lam)
        self.eta = eta
        self.ger = blas.sger if dtype == np.float32 else blas.dger

    def learn_one(self, z, y):
        m = float(self.theta @ z)
        u = self.P @ z                      # cal_H^{-1} z
        q = float(z @ u)
        s = 1 / (1 + np.exp(-m))
        a = self.eta * s * (1 - s)
        coef = self.eta * (s - y) / (1 + a * q)
        self.theta -= coef * u
        m_new = float(self.theta @ z)
        sn = 1 / (1 + np.exp(-m_new))
        c = sn * (1 - sn)
        self.ger(-c / (1 + c * q), u, u, a=self.P, overwrite_a=True)


def time_updates(learn, Z, warmup):
    for i in range(warmup):
        learn(Z[i % len(Z)])
    out = np.empty(len(Z))
    for i, z in enumerate(Z):
        t0 = time.perf_counter_ns()
        learn(z)
        out[i] = time.perf_counter_ns() - t0
    return out / 1e3  # microseconds


def bench_latency(dims, quick):
    print("\n## Per-update latency, float32 (microseconds; first calls excluded)")
    print(f"{'d':>5} {'solver':<16} {'state bytes':>12} {'median':>9} {'p99':>9} {'max':>9} {'n':>6}")
    rows = []
    rng = np.random.default_rng(0)
    for d in dims:
        n = 300 if d >= 2048 else 2000
        n = n // 4 if quick else n
        P = _unit_rows(rng, n, d, np.float32)
        Q = _unit_rows(rng, n, d, np.float32)
        Z = P - Q
        contenders = [
            ("exact", RewardModel(d, solver="exact")),
            ("cg (K=3)", RewardModel(d, solver="cg")),
            ("sketch @2MiB", RewardModel(d, solver="sketch", budget_bytes=2 * MiB)),
            ("diagonal", RewardModel(d, solver="diagonal")),
        ]
        for name, m in contenders:
            # warm-up: compile/load kernels and, for the sketch, one shrink (loads LAPACK)
            warm = 2 * m.sketch_rank + 2 if m.sketch_rank else 20
            lat = time_updates(lambda z, m=m: m.learn_one(z, 1.0), Z, warmup=warm)
            label = f"{name} (r={m.sketch_rank})" if m.sketch_rank else name
            rows.append((d, label, m.nbytes, np.median(lat), np.percentile(lat, 99), lat.max()))
            print(f"{d:>5} {label:<16} {m.nbytes:>12,} {np.median(lat):>9.1f} "
                  f"{np.percentile(lat, 99):>9.1f} {lat.max():>9.1f} {n:>6}", flush=True)
        npx = NumpyExact(d)
        lat = time_updates(lambda z: npx.learn_one(z, 1.0), Z, warmup=20)
        nb = npx.P.nbytes + npx.theta.nbytes
        rows.append((d, "numpy SM twin", nb, np.median(lat), np.percentile(lat, 99), lat.max()))
        print(f"{d:>5} {'numpy SM twin':<16} {nb:>12,} {np.median(lat):>9.1f} "
              f"{np.percentile(lat, 99):>9.1f} {lat.max():>9.1f} {n:>6}", flush=True)
    return rows


def bench_mle(dims, ts, quick):
    print("\n## Full-batch MLE refit (scipy L-BFGS-B, warm start): one refit after one new label")
    print(f"{'d':>5} {'t':>7} {'refit ms':>10} {'history bytes':>14}")
    rng = np.random.default_rng(1)
    for d in dims:
        theta_star = rng.normal(size=d)
        theta_star *= 3 / np.linalg.norm(theta_star)
        for t in ts:
            Z = _unit_rows(rng, t, d) - _unit_rows(rng, t, d)
            y = (rng.uniform(size=t) < 1 / (1 + np.exp(-Z @ theta_star))).astype(float)
            m = MLERefit(d, lam=1.0)
            m.extend(Z[:-1], y[:-1])
            m.refit()                       # the warm start: the fit before the new label
            m.extend(Z[-1:], y[-1:])
            times = []
            for _ in range(1 if quick else 3):
                warm = m.theta
                t0 = time.perf_counter()
                m.refit()
                times.append(time.perf_counter() - t0)
                m._theta = warm  # same warm start for each repeat
            print(f"{d:>5} {t:>7,} {1e3 * np.median(times):>10.1f} {m.nbytes:>14,}", flush=True)


def bench_rss(n_updates):
    print(f"\n## Resident memory over {n_updates:,} updates (VmRSS)")
    rng = np.random.default_rng(2)
    for d, kw in ((384, dict(solver="exact")), (4096, dict(budget_bytes=2 * MiB))):
        m = RewardModel(d, **kw)
        Z = (_unit_rows(rng, 512, d) - _unit_rows(rng, 512, d)).astype(np.float32)
        for i in range(600):  # warm up: compile, fill and shrink the sketch at least once
            m.learn_one(Z[i % 512], float(i % 2))
        r0, b0, t0 = _rss_bytes(), m.nbytes, time.perf_counter()
        for i in range(n_updates):
            m.learn_one(Z[i % 512], float(i % 2))
        r1, el = _rss_bytes(), time.perf_counter() - t0
        print(f"d={d:>4} {m.solver:<7} nbytes {b0:,} -> {m.nbytes:,}; RSS growth "
              f"{(r1 - r0) / MiB:+.3f} MiB; {1e6 * el / n_updates:.1f} us/update mean", flush=True)


def bench_float32_drift(n_updates, d=64):
    """Why the exact solver keeps a Cholesky factor: float32 against a float64 reference on a
    long stream concentrated in a few directions (the hard case for Sherman-Morrison downdates)."""
    print(f"\n## float32 drift after {n_updates:,} updates (d={d}, features in an 8-dim subspace)")
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.normal(size=(d, 8)))[0]
    theta_star = basis @ rng.normal(size=8) * 3
    ref = RewardModel(d, dtype="float64")
    chol = RewardModel(d, dtype="float32")
    sm = NumpyExact(d, dtype=np.float32)
    for i in range(n_updates):
        z = basis @ rng.normal(size=8)
        z /= np.linalg.norm(z)
        y = float(rng.uniform() < 1 / (1 + np.exp(-theta_star @ z)))
        ref.learn_one(z, y)
        chol.learn_one(z, y)
        sm.learn_one(z.astype(np.float32), y)
    t64 = ref.theta
    for name, th in (("exact (Cholesky), float32", chol.theta), ("numpy SM inverse, float32", sm.theta)):
        err = np.linalg.norm(th - t64) / np.linalg.norm(t64)
        print(f"{name:<28} relative theta error {err:.2e}")
    ev = np.linalg.eigvalsh(((sm.P + sm.P.T) / 2).astype(np.float64))
    print(f"SM inverse P: min eigenvalue {ev.min():.3e} (must stay > 0), "
          f"Cholesky factor: min diagonal {float(np.diag(chol._solver.state.U).min()):.3e}", flush=True)


def _accuracy(theta, Zt, truth):
    return float(((Zt @ theta > 0) == truth).mean())


def _features(rng, n, d, mix):
    """Unit-norm features; mix = None: isotropic; else (Q, scales): a fixed random rotation of a
    decaying spectrum, as real sentence embeddings have (the case where the local norm's shape,
    and so the sketch's quality, matters)."""
    X = rng.normal(size=(n, d))
    if mix is not None:
        Q, scales = mix
        X = (X * scales) @ Q
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def bench_accuracy(T, seeds, norms, d=64, anisotropic=False):
    kind = "anisotropic (spectrum 1 -> 0.01)" if anisotropic else "isotropic"
    print(f"\n## Accuracy vs the true preference, synthetic Bradley-Terry, d={d}, {kind} unit "
          f"features, {len(seeds)} seeds (mean +- std, %)")
    checkpoints = [c for c in (50, 100, 200, 500, 1000, 2000, 5000) if c <= T]
    exact_bytes = RewardModel.state_bytes(d, "exact")
    for norm in norms:
        acc = {}
        for seed in seeds:
            rng = np.random.default_rng(seed)
            mix = None
            if anisotropic:
                mix = (np.linalg.qr(rng.normal(size=(d, d)))[0], np.geomspace(1.0, 0.01, d))
            ts = rng.normal(size=d)
            ts *= norm / np.linalg.norm(ts)
            A, B = _features(rng, T, d, mix), _features(rng, T, d, mix)
            diff = A - B
            if anisotropic:  # rescale theta* so margins theta*.z spread as in the isotropic case
                ts *= norm * np.sqrt(2.0 / d) / np.std(diff @ ts)
            first = rng.uniform(size=T) < 1 / (1 + np.exp(-diff @ ts))
            Z = np.where(first[:, None], diff, -diff)
            Zt = _features(rng, 5000, d, mix) - _features(rng, 5000, d, mix)
            truth = Zt @ ts > 0
            models = {
                "exact": RewardModel(d),
                "cg (K=3)": RewardModel(d, solver="cg"),
                "1/8 budget": RewardModel(d, budget_bytes=exact_bytes // 8),
                "plain FD 1/8": RewardModel(d, budget_bytes=exact_bytes // 8),
                "diagonal": RewardModel(d, solver="diagonal"),
            }
            models["plain FD 1/8"]._solver.robust = False  # no-op unless a sketch fits
            mle = MLERefit(d, lam=1.0)
            for t, z in enumerate(Z, 1):
                for m in models.values():
                    m.learn_one(z, 1.0)
                if t in checkpoints:
                    mle.extend(Z[mle.t:t], np.ones(t - mle.t))
                    mle.refit()
                    for name, m in models.items():
                        acc.setdefault(name, {}).setdefault(t, []).append(_accuracy(m.theta, Zt, truth))
                    acc.setdefault("MLE refit", {}).setdefault(t, []).append(_accuracy(mle.theta, Zt, truth))
        sk = models["1/8 budget"]
        what = f"sketch rank {sk.sketch_rank}" if sk.sketch_rank else sk.solver
        print(f"\n||theta*|| = {norm:g}   (1/8 budget = {exact_bytes // 8:,} B of the exact "
              f"{exact_bytes:,} B holds: {what}, {sk.nbytes:,} B)")
        print(f"{'T':>6} " + " ".join(f"{n:>14}" for n in acc))
        for c in checkpoints:
            cells = [f"{100 * np.mean(acc[n][c]):6.1f} +-{100 * np.std(acc[n][c]):4.1f}" for n in acc]
            print(f"{c:>6} " + " ".join(f"{x:>14}" for x in cells))
        gaps = [100 * (np.mean(acc["MLE refit"][c]) - np.mean(acc["exact"][c])) for c in checkpoints]
        sgap = [100 * (np.mean(acc["exact"][c]) - np.mean(acc["1/8 budget"][c])) for c in checkpoints]
        print(f"max (MLE - exact) = {max(gaps):+.2f} points; max (exact - 1/8 budget) = "
              f"{max(sgap):+.2f} points", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["latency", "mle", "rss", "drift", "accuracy"], action="append")
    args = ap.parse_args(argv)
    only = set(args.only or ["latency", "mle", "rss", "drift", "accuracy"])
    import numba
    import scipy
    print(f"# edge-omd runtime benchmark\n{platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}, numba {numba.__version__}, NUMBA_NUM_THREADS="
          f"{numba.config.NUMBA_NUM_THREADS}")
    q = args.quick
    # One BLAS thread for everything numpy/scipy do here (the numpy twin, the MLE refit): the
    # runtime's kernels are single-threaded, and OpenBLAS's spinning pool on a 2-core machine
    # made sger 160x slower (8 ms instead of 50 us at d=896, measured).
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        return _run(only, q)


def _run(only, q):
    if "latency" in only:
        bench_latency((384, 896) if q else (384, 896, 2048, 4096), q)
    if "mle" in only:
        bench_mle((384,) if q else (384, 4096), (1000,) if q else (1000, 10000), q)
    if "rss" in only:
        bench_rss(10_000 if q else 100_000)
    if "drift" in only:
        bench_float32_drift(10_000 if q else 100_000)
    if "accuracy" in only:
        seeds = range(2) if q else range(5)
        bench_accuracy(1000 if q else 5000, seeds, (3.0, 8.0))
        bench_accuracy(1000 if q else 5000, seeds, (3.0, 8.0), d=384, anisotropic=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
