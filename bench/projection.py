"""Issue 10 item 6: the cost of step 3 (the projection onto ||theta|| <= radius) per update.

    python -m edge_omd_bench.projection            # d = 384 and 2048 (about 10 minutes, 2 cores)
    python -m edge_omd_bench.projection --quick    # d = 384 only, shorter streams

Three tables:
  1. latency: median / p99 update time with and without a radius, per solver, on a Bradley-Terry
     stream of unit features (||theta*|| = 3) with radius = 1 and radius = ||theta*||; the
     fraction of updates where the projection was active, the Lanczos (Newton for the diagonal)
     steps taken, and the ratio projected / unprojected median (targets: <= 3x cg, diagonal;
     <= 10x exact, sketch);
  2. allocation: numpy data allocations (tracemalloc's numpy domain) over a warm stream with
     the projection active;
  3. convergence: on updates sampled from the stream, the smallest number k of Lanczos steps
     whose theta_k agrees with the naive float64 projection (eigendecomposition + bisection,
     tests/naive.py's formula) to 1e-8 relative, for the Krylov space of tilde_H ("H mode") and
     of tilde_H^{-1} ("M mode"), both started at theta'; and the same for GLTR's start
     (the gradient tilde_H theta'), through the H-mode basis of tilde_H started at
     tilde_H theta' (computed densely).
It prints figures and asserts nothing (shared, noisy machines); the allocation check that can
fail is tests/runtime/test_projection.py.
"""
import argparse
import sys
import time
import tracemalloc

import numpy as np

from edge_omd import RewardModel, projection

MiB = 1 << 20
NUMPY_DOMAIN = np.lib.tracemalloc_domain


def _unit(rng, n, d):
    X = rng.normal(size=(n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _stream(d, n, seed, norm=3.0):
    """(Z, y): z = phi_a - phi_b of unit features, y ~ Bradley-Terry(theta*), ||theta*|| = norm."""
    rng = np.random.default_rng(seed)
    ts = rng.normal(size=d)
    ts *= norm / np.linalg.norm(ts)
    Z = _unit(rng, n, d) - _unit(rng, n, d)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-Z @ ts))).astype(np.float64)
    return Z.astype(np.float32), y, float(np.linalg.norm(ts))


def _models(d, radius):
    rank = RewardModel(d, solver="sketch", budget_bytes=2 * MiB).sketch_rank  # the rank 2 MiB holds
    return [
        ("exact", RewardModel(d, solver="exact", radius=radius)),
        ("cg (K=3)", RewardModel(d, solver="cg", radius=radius)),
        (f"sketch r={rank}", RewardModel(d, solver="sketch", sketch_rank=rank, radius=radius)),
        ("diagonal", RewardModel(d, solver="diagonal", radius=radius)),
    ]


class StepRecorder:
    """Wraps solver.project to record the steps each update took (0: inside the ball); the
    projection tests use it too."""

    def __init__(self, model):
        self.steps = []
        self._orig = model._solver.project
        model._solver.project = self

    def __call__(self, *a, **k):
        r = self._orig(*a, **k)
        self.steps.append(r)
        return r


def bench_latency(dims, quick):
    print("\n## 1. Per-update latency with the projection (float32, microseconds, one thread)")
    print("  the three models of a row group (no radius, radius 1, radius ||theta*||) learn the same "
          "stream, interleaved update by update, so machine load hits them alike")
    print(f"{'d':>5} {'solver':<18} {'radius':>7} {'active':>7} {'steps med/max':>14} "
          f"{'median':>9} {'p99':>9} {'x unproj':>9} {'nbytes':>12}")
    for d in dims:
        n = (300 if d >= 2048 else 1000) // (3 if quick else 1)
        Z, y, norm = _stream(d, n + 200, seed=d)
        radii = (None, 1.0, norm)
        groups = list(zip(*[_models(d, r) for r in radii]))
        for group in groups:
            name = group[0][0]
            models = [m for _, m in group]
            recs = [None] + [StepRecorder(m) for m in models[1:]]
            warm = 2 * models[0].sketch_rank + 2 if models[0].sketch_rank else 20
            for i in range(warm):
                for m in models:
                    m.learn_one(Z[i % len(Z)], y[i % len(Z)])
            lat = np.empty((len(models), n))
            for i in range(n):
                for j, m in enumerate(models):
                    t0 = time.perf_counter_ns()
                    m.learn_one(Z[i], y[i])
                    lat[j, i] = time.perf_counter_ns() - t0
            lat /= 1e3
            base = float(np.median(lat[0]))
            for j, (radius, m) in enumerate(zip(radii, models)):
                med = float(np.median(lat[j]))
                if radius is None:
                    print(f"{d:>5} {name:<18} {'-':>7} {'-':>7} {'-':>14} {med:>9.1f} "
                          f"{np.percentile(lat[j], 99):>9.1f} {'1.00':>9} {m.nbytes:>12,}")
                    continue
                s = np.array(recs[j].steps[warm:])
                act = s > 0
                st = f"{np.median(s[act]):.0f}/{s.max()}" if act.any() else "-"
                print(f"{d:>5} {name:<18} {radius:>7.2f} {act.mean():>7.1%} {st:>14} {med:>9.1f} "
                      f"{np.percentile(lat[j], 99):>9.1f} {med / base:>9.2f} {m.nbytes:>12,}",
                      flush=True)


def bench_alloc(d=384, n=300):
    print(f"\n## 2. numpy data allocations over {n} warm updates, radius 1 (d={d}, float32)")
    Z, y, _ = _stream(d, n + 50, seed=7)
    for name, m in _models(d, 1.0):
        if m.sketch_rank:  # no Frequent-Directions shrink (an O(ell^2) eigh) in the window
            m = RewardModel(d, solver="sketch", sketch_rank=n // 2 + 60, radius=1.0)
            name = f"sketch r={m.sketch_rank}"
        rec = StepRecorder(m)
        for i in range(50):
            m.learn_one(Z[i], y[i])
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for i in range(50, 50 + n):
            m.learn_one(Z[i], y[i])
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        flt = [tracemalloc.DomainFilter(True, NUMPY_DOMAIN)]
        diff = after.filter_traces(flt).compare_to(before.filter_traces(flt), "lineno")
        count = sum(max(s.count_diff, 0) for s in diff)
        active = float(np.mean(np.array(rec.steps[50:]) > 0))
        print(f"{name:<18} projection active on {active:.0%} of updates; numpy allocations "
              f"alive after the stream: {count}", flush=True)


def _reference(Ht, theta0, radius):
    lam, Q = np.linalg.eigh(Ht)
    c = Q.T @ theta0
    nrm = lambda mu: np.linalg.norm(lam * c / (lam + mu))  # noqa: E731
    lo, hi = 0.0, 1.0
    while nrm(hi) > radius:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if nrm(mid) > radius else (lo, mid)
    return Q @ (lam * c / (lam + hi)), hi, lam


def _dense_cal_H(m):
    s = m._solver
    st = s.state
    if s.name == "exact":
        U = st.U.astype(np.float64)
        return U.T @ U
    if s.name == "cg":
        return st.S.astype(np.float64) + s.lam_at(m.t + 1) * np.eye(m.dim)
    if s.name == "sketch":
        B = st.B[: int(st.rows[0])].astype(np.float64)
        return float(st.alpha[0]) * np.eye(m.dim) + B.T @ B
    return np.diag(st.h.astype(np.float64))


def _gltr_steps(Ht, theta0, radius, ref, kmax, target):
    """GLTR's start: Lanczos on tilde_H from g = tilde_H theta' (dense, float64, full reorth)."""
    d = Ht.shape[0]
    g = Ht @ theta0
    Q = np.zeros((kmax + 1, d))
    Q[0] = g / np.linalg.norm(g)
    a, b = [], []
    for k in range(1, kmax + 1):
        w = Ht @ Q[k - 1]
        a.append(Q[k - 1] @ w)
        w -= Q[:k].T @ (Q[:k] @ w)
        w -= Q[:k].T @ (Q[:k] @ w)
        b.append(np.linalg.norm(w))
        Q[k] = w / b[-1]
        T = np.diag(a) + np.diag(b[:-1], 1) + np.diag(b[:-1], -1)
        # TRS on T: min h^T T h / 2 - |g| e1.h  ~ (T + mu I) h = |g| e1, |h| = radius
        e1 = np.zeros(k)
        e1[0] = np.linalg.norm(g)
        ev, V = np.linalg.eigh(T)
        c = V.T @ e1
        nrm = lambda mu: np.linalg.norm(c / (ev + mu))  # noqa: E731
        if ev.min() > 0 and nrm(0.0) <= radius:
            h = V @ (c / ev)
        else:
            lo, hi = max(0.0, -ev.min()) + 1e-300, 1.0
            while nrm(hi) > radius:
                hi *= 2
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if nrm(mid) > radius else (lo, mid)
            h = V @ (c / (ev + hi))
        th = Q[:k].T @ h
        if np.linalg.norm(th - ref) <= target * np.linalg.norm(ref):
            return k
        if b[-1] == 0:
            break
    return None


def bench_convergence(dims, quick, target=1e-8):
    print(f"\n## 3. Lanczos steps k for theta_k to agree with the naive float64 projection to "
          f"{target:g} (float64 models, sampled updates with the projection active)")
    print("  M mode: Krylov space of tilde_H^{-1} from theta'; H mode: of tilde_H from theta'; "
          "GLTR: of tilde_H from tilde_H theta' (dense)")
    print(f"{'d':>5} {'solver':<12} {'radius':>7} {'samples':>7} {'mu/l_min med':>13} "
          f"{'M med/max':>10} {'H med/max':>10} {'GLTR med/max':>13} {'default (tol 1e-8)':>19}")
    kmax = 60
    for d in dims:
        n = 400 if d <= 384 else 200
        n = n // 2 if quick else n
        Z, y, norm = _stream(d, n, seed=d + 1)
        picks = set(np.linspace(n // 4, n - 1, 4 if quick or d > 384 else 8).astype(int))
        for radius in (1.0, norm):
            for solver in ("exact", "cg", "sketch", "diagonal"):
                kw = dict(sketch_rank=64) if solver == "sketch" else {}
                m = RewardModel(d, solver=solver, dtype="float64", radius=radius, **kw)
                res = {"M": [], "H": [], "GLTR": [], "def": [], "mu": []}
                for i in range(n):
                    if i in picks:
                        _probe(m, Z[i], y[i], radius, res, kmax, target)
                    m.learn_one(Z[i], y[i])

                def cell(v):
                    v = [x for x in v if x is not None]
                    if not v:
                        return "-"
                    return f"{np.median(v):.0f}/{max(v)}"
                mu = f"{np.median(res['mu']):.3g}" if res["mu"] else "-"
                print(f"{d:>5} {solver:<12} {radius:>7.2f} {len(res['def']):>7} {mu:>13} "
                      f"{cell(res['M']):>10} {cell(res['H']):>10} {cell(res['GLTR']):>13} "
                      f"{cell(res['def']):>19}", flush=True)


def _probe(m, z, y, radius, res, kmax, target):
    """One update on copies: steps 1-2, then step 3 truncated at k steps for k = 1, 2, ..."""
    def fresh():
        c = RewardModel.from_bytes(m.to_bytes())
        np.copyto(c._z, z)
        a = c._solver.step(c._z, y, 1.0)
        return c, a
    c, a = fresh()
    theta0 = c._solver.theta().astype(np.float64) if c.solver != "exact" else None
    if theta0 is None:
        from edge_omd.solvers.exact import _theta64
        theta0 = np.zeros(c.dim)
        _theta64(c._solver.state.U, c._solver.state.phi, theta0)
    if np.linalg.norm(theta0) <= radius:
        return
    z64 = z.astype(np.float64)
    Ht = _dense_cal_H(c) + a * np.outer(z64, z64)
    ref, mu, ev = _reference(Ht, theta0, radius)
    res["mu"].append(mu / ev.min())
    scale = np.linalg.norm(ref)
    # the default (tolerance projection.TOL for the dtype)
    c2, a2 = fresh()
    res["def"].append(c2._solver.project(c2._proj, c2._z, a2))
    if m.solver == "diagonal":
        return
    for mode, key in ((projection.MODE_M, "M"), (projection.MODE_H, "H")):
        if m.solver == "cg" and mode == projection.MODE_M:
            continue
        found = None
        for k in range(1, kmax + 1):
            c3, a3 = fresh()
            c3._solver.project(c3._proj, c3._z, a3, mode=mode, tol=0.0, max_steps=k)
            if np.linalg.norm(c3.theta - ref) <= target * scale:
                found = k
                break
        res[key].append(found)
    res["GLTR"].append(_gltr_steps(Ht, theta0, radius, ref, kmax, target))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["latency", "alloc", "convergence"], action="append")
    args = ap.parse_args(argv)
    only = set(args.only or ["latency", "alloc", "convergence"])
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        if "latency" in only:
            bench_latency((384,) if args.quick else (384, 2048), args.quick)
        if "alloc" in only:
            bench_alloc()
        if "convergence" in only:
            bench_convergence((384,) if args.quick else (384, 2048), args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
