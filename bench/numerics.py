"""Issue 12 item 4: float32 against float64 on adversarial streams, every representation.

    python -m edge_omd_bench.numerics                 # d = 8, 10^5 updates per stream
    python -m edge_omd_bench.numerics --d 32 --n 200000
    python -m edge_omd_bench.numerics --calibrate --d 8 --n 1000000   # the exact guard's limit
    python -m edge_omd_bench.numerics --calibrate --sketch --d 8 --n 100000  # the sketch's
    python -m edge_omd_bench.numerics --calibrate --cg --d 8 --n 100000      # cg's drift guard
    python -m edge_omd_bench.numerics --cost          # per-update cost of the precision probes

For each representation and stream, a float32 and a float64 model learn the same observations
(z rounded to float32 first) in lockstep until float32 refuses an update (NumericalError: the
representation cannot hold the state to its dtype's precision; nothing moved). Printed: where it
refused, ||theta_32 - theta_64|| / max(||theta_64||, 1) at that point, and the smallest
eigenvalue of each local norm over its floor (lam; lam_t for cg). It prints figures; it asserts
nothing (tests/runtime/test_numerics.py asserts).

Streams (d-dimensional, seeded):
  repeat:    one unit z, labels 1, 0, 1, ... (curvature piles up along z)
  scales:    unit directions times ||z|| log-uniform in [1e-6, 1e4], labels from a fixed theta*
             (chaotic in float64 itself: a 1e-7 input perturbation moves theta by 8-120%)
  big:       ||z|| = 1e4, labels alternating (2.5e7 of curvature per update)
  collinear: z = u + 1e-4 noise around one unit u, labels from a fixed theta*
"""
import argparse
import math
import os

import numpy as np

from edge_omd import NumericalError, RewardModel


def adversarial_stream(name, d, T, seed=0, dtype=np.float32):
    """(Z, y) of an adversarial stream for the numerics tests (issue 12, item 4), rows of Z
    already rounded to `dtype` so a float32 and a float64 model see the same observations:

    repeat:    one unit z, labels alternating 1, 0, 1, ... (theta stays ~0, curvature piles up
               along z: the worst case for rounding in the curvature sum)
    scales:    unit directions times ||z|| log-uniform in [1e-6, 1e4], labels from a fixed theta*
    big:       ||z|| = 1e4 (curvature ~1e7 per update, beyond float32's 1 / eps), labels alternating
    collinear: z = u + 1e-4 noise around one unit u, labels from a fixed theta*
    """
    rng = np.random.default_rng(seed)
    unit = rng.normal(size=d)
    unit /= np.linalg.norm(unit)
    theta_star = rng.normal(size=d)
    alt = (np.arange(T) % 2).astype(np.float64)
    if name == "repeat":
        Z, y = np.tile(unit, (T, 1)), 1.0 - alt
    elif name in ("scales", "big"):
        Z = rng.normal(size=(T, d))
        Z /= np.linalg.norm(Z, axis=1, keepdims=True)
        if name == "scales":
            Z *= 10.0 ** rng.uniform(-6, 4, size=(T, 1))
            y = (rng.uniform(size=T) < 1 / (1 + np.exp(-np.clip(Z @ theta_star, -50, 50)))) * 1.0
        else:
            Z *= 1e4
            y = alt
    elif name == "collinear":
        Z = unit + 1e-4 * rng.normal(size=(T, d))
        y = (rng.uniform(size=T) < 1 / (1 + np.exp(-(Z @ theta_star)))) * 1.0
    else:
        raise ValueError(name)
    return Z.astype(dtype).astype(np.float64), y


STREAMS = ("repeat", "scales", "big", "collinear")


def stream(name, d, n, seed=3):
    """(Z, y) of `adversarial_stream` rounded to float32 (the same observations for both dtypes)."""
    return adversarial_stream(name, d, n, seed=seed, dtype=np.float32)


def smallest_eigenvalue(m):
    d = m.dim
    H = np.stack([m._solver.matvec(np.eye(d)[i]) for i in range(d)])
    return float(np.linalg.eigvalsh(0.5 * (H + H.T))[0])


# ------------------------------------------------------------ calibration of the exact guard
def ordinary_streams(d, n, seed=0, log=print):
    """{name: (kind, Z, y)} of ordinary users at dimension d, n updates each (kind "pair":
    learn_pair(Z[t], 0) with y = 1 (chosen first), "one": learn_one(Z[t], y[t])):
      synth-B1 / synth-B8: bench/streams.SynthProblem Bradley-Terry pairs (power-law spectrum,
                 ||theta*|| = 1 and 8), every pair fresh;
      hh-pairs:  HH-RLHF helpful-base test pairs embedded by all-MiniLM-L6-v2 (bench/streams,
                 cached), z = phi_chosen - phi_rejected, a seeded random orthonormal projection
                 to d (scaled by sqrt(384 / d) to keep ||z||), cycled in shuffled order;
      hh-thumbs: the same embeddings uncentered (thumbs without `shown`: chosen y = 1, rejected
                 y = 0), whose mean direction dominates cal_H (the worst conditioning of these);
      peruser:   the per-user benchmark's world (bench/peruser_world, default size; its MiniLM
                 answer features, projected the same way) and its first simulated user of
                 population seed 0: two answers of a random train prompt, the winner drawn
                 Bradley-Terry from the user's hidden utility at its temperature.
    The HH and per-user streams are left out (logged) when the MiniLM package is not installed."""
    from edge_omd_bench import streams as bs
    rng = np.random.default_rng([seed, d])
    out = {}
    for B in (1.0, 8.0):
        prob = bs.SynthProblem.make(d, B, seed)
        Z, y = prob.stream(seed, n)
        out[f"synth-B{B:g}"] = ("one", Z, y.astype(np.float64))
    ok, why = bs.Featurizer.available()
    path = os.path.join(bs.DEFAULT_HH_DIR, "helpful-base-test.jsonl.gz")
    if not ok or not os.path.exists(path):
        log(f"HH streams left out: {why or path + ' missing'}")
        return out
    data = bs.embed_split(path, "helpful-base", bs.Featurizer(), log=log)
    D = data.phi_c.shape[1]
    Q, _ = np.linalg.qr(rng.standard_normal((D, d)))
    Q *= np.sqrt(D / d)
    pc, pr = data.phi_c.astype(np.float64) @ Q, data.phi_r.astype(np.float64) @ Q
    idx = np.concatenate([rng.permutation(len(pc)) for _ in range(n // len(pc) + 1)])[:n]
    out["hh-pairs"] = ("pair", pc[idx] - pr[idx], np.ones(n))
    both = np.concatenate([pc, pr])
    lab = np.concatenate([np.ones(len(pc)), np.zeros(len(pr))])
    idx = np.concatenate([rng.permutation(len(both)) for _ in range(n // len(both) + 1)])[:n]
    out["hh-thumbs"] = ("one", both[idx], lab[idx])
    from edge_omd_bench import peruser, peruser_world as pw
    world = pw.build_world()
    Phi = peruser.feature_matrix(world, "minilm", log=log).astype(np.float64)
    Phi = Phi @ Q
    user = pw.draw_users(world, 0, 1)[0]
    items = rng.choice(world.train, size=n)
    a, b = rng.integers(0, world.n_cands, size=n), rng.integers(0, world.n_cands - 1, size=n)
    b = b + (b >= a)  # two different answers
    ra, rb = items * world.n_cands + a, items * world.n_cands + b
    p_a = 1.0 / (1.0 + np.exp(-(user.u[ra] - user.u[rb]) / user.temperature))
    a_wins = rng.uniform(size=n) < p_a
    win, lose = np.where(a_wins, ra, rb), np.where(a_wins, rb, ra)
    out["peruser"] = ("pair", Phi[win] - Phi[lose], np.ones(n))
    return out


def calibrate(d, n, log=print):
    """The exact solver's precision guard (ExactSolver._precision_lost) against drift: float32
    and float64 exact models learn each stream in lockstep; at every probe point
    (linalg.probe_period(d)) the guard's statistic eps32 * lmax / lmin is read from the float64
    model (what a float32 model holding the same cal_H would see) next to ||theta32 - theta64||
    / max(||theta64||, 1). Printed per stream: the largest statistic, the rejected rule's
    eps32 * lmax / lam, where float32 refused, the drift there (or at the end)."""
    from edge_omd import linalg
    eps = float(np.finfo(np.float32).eps)
    per = linalg.probe_period(d)
    log(f"exact solver, d = {d}, {n} updates per stream; guard: refuse when eps * lmax / lmin > "
        f"{linalg.KAPPA_EPS_LIMIT:g} (probed every {per} updates)")
    log(f"{'stream':12s} {'max eps*k':>10s} {'max eps*lmax/lam':>17s} {'refused at':>10s} "
        f"{'rel drift':>10s} {'max rel':>9s} {'first rel>1e-2 at':>17s} {'eps*k there':>11s}")
    sets = dict(ordinary_streams(d, n, log=log))
    Zc, yc = stream("collinear", d, n)
    sets["collinear"] = ("one", Zc, yc)
    sets["collinear, no guard"] = ("one", Zc, yc)
    limit = linalg.KAPPA_EPS_LIMIT
    for name, (kind, Z, y) in sets.items():
        linalg.KAPPA_EPS_LIMIT = math.inf if name.endswith("no guard") else limit
        m32 = RewardModel(d, dtype="float32", solver="exact")
        m64 = RewardModel(d, dtype="float64", solver="exact")
        zero = np.zeros(d)
        top_k = top_l = top_rel = 0.0
        stop, cross, cross_k = "-", "-", "-"
        for t in range(n):
            if t and t % per == 0:
                lmax, lmin = m64._solver.extreme_eigenvalues()
                k = eps * lmax / lmin
                top_k, top_l = max(top_k, k), max(top_l, eps * lmax / m64._solver.lam)
                rel = np.linalg.norm(m32.theta - m64.theta) / max(np.linalg.norm(m64.theta), 1.0)
                top_rel = max(top_rel, rel)
                if rel > 1e-2 and cross == "-":
                    cross, cross_k = str(t), f"{k:.2e}"
            try:
                if kind == "pair":
                    m32.learn_pair(Z[t], zero)
                else:
                    m32.learn_one(Z[t], y[t])
            except NumericalError:
                stop = str(t)
                break
            if kind == "pair":
                m64.learn_pair(Z[t], zero)
            else:
                m64.learn_one(Z[t], y[t])
        rel = np.linalg.norm(m32.theta - m64.theta) / max(np.linalg.norm(m64.theta), 1.0)
        log(f"{name:12s} {top_k:10.2e} {top_l:17.2e} {stop:>10s} {rel:10.2e} {top_rel:9.2e} "
            f"{cross:>17s} {cross_k:>11s}", flush=True)
    linalg.KAPPA_EPS_LIMIT = limit


def _sketch_statistic(m, z, y):
    """The sketch drift guard's statistic (sketch._step_drift) of learn_one(z, y) on float32
    model m, computed as _step does before it moves anything (only work arrays are written)."""
    from edge_omd import linalg
    from edge_omd.solvers import sketch
    st, eta = m._solver.state, m._solver.config.eta
    zz = np.ascontiguousarray(z, dtype=st.theta.dtype)
    rows, alpha = int(st.rows[0]), float(st.alpha[0])
    q = sketch._solve(st.B, st.L, rows, alpha, zz, st.bz, st.c, st.v)
    s = linalg.sigmoid(linalg.dot(st.theta, zz))
    coef = eta * (s - y) / (1.0 + eta * s * (1.0 - s) * q)
    return sketch._step_drift(st.theta, st.L, rows, alpha, st.v, coef,
                              float(np.finfo(st.theta.dtype).eps))


def _cg_statistic(m, z, y):
    """The cg drift guard's statistic (linalg.move_drift in cg._step) of learn_one(z, y) on
    float32 model m, computed as _step does before it moves anything (work arrays only)."""
    from edge_omd import linalg
    from edge_omd.solvers import cg
    s_, cfg = m._solver, m._solver.config
    st = s_.state
    zz = np.ascontiguousarray(z, dtype=st.theta.dtype)
    lam_t = s_.lam_next()
    s = linalg.sigmoid(linalg.dot(st.theta, zz))
    a = cfg.eta * s * (1.0 - s)
    linalg.cg_solve(st.S, lam_t, zz, a, zz, st.x, st.r, st.p, st.Ap, cfg.cg_steps, cfg.cg_tol)
    kappa = 1.0 + (cg._trace(st.S) + a * linalg.dot(zz, zz)) / lam_t
    return linalg.move_drift(st.theta, st.x, cfg.eta * (s - y), kappa,
                             float(np.finfo(st.theta.dtype).eps))


def calibrate_drift(solver, d, n, ranks=(2, 4), log=print):
    """The drift guard of the sketch (sketch._step_drift) or cg (cg._step), a step refused when
    linalg.move_drift > linalg.DRIFT_LIMIT: float32 and float64 models learn each ordinary
    stream (`ordinary_streams`) and the review's scaled repeat stream (x 1500, every 7th row
    x 1e-2, lam = 0.1) in lockstep, the sketch at each rank. Printed per stream (and rank): the
    largest statistic over the updates, where float32 refused, the drift there (or at the end)
    and the largest drift seen."""
    from edge_omd import linalg
    statistic = _sketch_statistic if solver == "sketch" else _cg_statistic
    if solver != "sketch":
        ranks = (0,)
    log(f"{solver} solver, d = {d}, {n} updates per stream; guard: refuse a step when eps kappa "
        f"||coef v|| / max(||theta'||, 1) > {linalg.DRIFT_LIMIT:g}")
    log(f"{'stream':12s} {'rank':>4s} {'max stat':>10s} {'refused at':>10s} {'rel drift':>10s} "
        f"{'max rel':>9s}")
    sets = {k: v + (1.0,) for k, v in ordinary_streams(d, n, log=log).items()}
    Zr, yr = stream("repeat", d, min(n, 400))
    Zr = Zr * 1500.0
    Zr[::7] *= 1e-2
    sets["repeat x1500"] = ("one", Zr.astype(np.float32).astype(np.float64), yr, 0.1)
    for name, (kind, Z, y, lam) in sets.items():
        if kind == "pair":
            y = np.ones(len(Z))  # learn_pair(z, 0) is learn_one(z, 1)
        for rank in ranks:
            kw = dict(solver=solver, sketch_rank=rank or None, lam=lam)
            m32 = RewardModel(d, dtype="float32", **kw)
            m64 = RewardModel(d, dtype="float64", **kw)
            top = top_rel = 0.0
            stop = "-"
            for t in range(len(Z)):
                top = max(top, statistic(m32, Z[t], y[t]))
                try:
                    m32.learn_one(Z[t], y[t])
                except NumericalError:
                    stop = str(t)
                    break
                m64.learn_one(Z[t], y[t])
                if t % 1000 == 999 or len(Z) <= 1000:
                    top_rel = max(top_rel, np.linalg.norm(m32.theta - m64.theta)
                                  / max(np.linalg.norm(m64.theta), 1.0))
            rel = np.linalg.norm(m32.theta - m64.theta) / max(np.linalg.norm(m64.theta), 1.0)
            log(f"{name:12s} {rank:4d} {top:10.2e} {stop:>10s} {rel:10.2e} {top_rel:9.2e}",
                flush=True)


# ------------------------------------------------------------ cost of the precision probes
def probe_cost(dims=(384, 4096), updates=30, probes=5, log=print):
    """Per-update cost of the float32 precision probes next to the update's own cost: one probe
    (exact: flush + linalg.extreme_eigenvalues; cg: the PSD probe load_checks.indefinite_direction)
    timed `probes` times, divided by linalg.probe_period(d) (it runs once per period), and one
    learn_one timed over `updates` calls (unit features, random labels). Median times; wall
    clock, so a loaded machine inflates both alike."""
    import time
    from edge_omd import linalg
    from edge_omd.solvers import load_checks
    log(f"{'solver':7s} {'d':>5s} {'update':>10s} {'one probe':>10s} {'period':>6s} "
        f"{'probe/update':>12s} {'share':>6s}")
    for d in dims:
        rng = np.random.default_rng(d)
        Z = rng.normal(size=(updates + 1, d)).astype(np.float32)
        Z /= np.linalg.norm(Z, axis=1, keepdims=True)
        for solver in ("exact", "cg"):
            m = RewardModel(d, dtype="float32", solver=solver)
            m.learn_one(Z[0], 1.0)  # compiled and warm
            times = []
            for t in range(1, updates + 1):
                t0 = time.perf_counter()
                m.learn_one(Z[t], float(t % 2))
                times.append(time.perf_counter() - t0)
            s = m._solver
            lam_t = s.lam_next() if solver == "cg" else s.lam
            ptimes = []
            for _ in range(probes):
                t0 = time.perf_counter()
                if solver == "exact":
                    s.extreme_eigenvalues()
                else:
                    load_checks.indefinite_direction(s.state.S, s._psd_floor(s.state.S, lam_t))
                ptimes.append(time.perf_counter() - t0)
            up, pr, per = float(np.median(times)), float(np.median(ptimes)), linalg.probe_period(d)
            log(f"{solver:7s} {d:5d} {up * 1e3:8.3f}ms {pr * 1e3:8.2f}ms {per:6d} "
                f"{pr / per * 1e6:10.2f}us {pr / per / up:6.1%}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--calibrate", action="store_true",
                    help="the exact solver's precision guard against drift on ordinary and "
                         "collinear streams (use with --n 1000000)")
    ap.add_argument("--cost", action="store_true",
                    help="per-update cost of the float32 precision probes at d = 384 and 4096")
    ap.add_argument("--sketch", action="store_true",
                    help="with --calibrate: the sketch's drift guard instead of the exact one")
    ap.add_argument("--cg", action="store_true",
                    help="with --calibrate: cg's drift guard instead of the exact one")
    args = ap.parse_args(argv)
    if args.cost:
        probe_cost()
        return
    if args.calibrate:
        if args.sketch or args.cg:
            calibrate_drift("sketch" if args.sketch else "cg", args.d, args.n)
        else:
            calibrate(args.d, args.n)
        return
    print(f"d = {args.d}, up to {args.n} updates per stream; rel = ||theta32 - theta64|| / "
          "max(||theta64||, 1); eigenvalues over the floor")
    print(f"{'solver':9s} {'stream':10s} {'refused at':>10s} {'rel':>9s} {'min eig 32':>11s} "
          f"{'min eig 64':>11s}")
    for solver in ("exact", "cg", "sketch", "diagonal"):
        kw = dict(solver=solver, sketch_rank=3 if solver == "sketch" else None)
        for name in STREAMS:
            Z, y = stream(name, args.d, args.n)
            m32 = RewardModel(args.d, dtype="float32", **kw)
            m64 = RewardModel(args.d, dtype="float64", **kw)
            stop = "-"
            for t in range(args.n):
                try:
                    m32.learn_one(Z[t], y[t])
                except NumericalError:
                    stop = str(t)
                    break
                m64.learn_one(Z[t], y[t])
            rel = np.linalg.norm(m32.theta - m64.theta) / max(np.linalg.norm(m64.theta), 1.0)
            floor = [(m._solver.lam_next() if solver == "cg" else m._solver.lam) for m in (m32, m64)]
            print(f"{solver:9s} {name:10s} {stop:>10s} {rel:9.2e} "
                  f"{smallest_eigenvalue(m32) / floor[0]:11.4f} "
                  f"{smallest_eigenvalue(m64) / floor[1]:11.4f}", flush=True)


if __name__ == "__main__":
    main()
