"""Issue 12 item 4: float32 against float64 on adversarial streams, every representation.

    python -m edge_omd_bench.numerics                 # d = 8, 10^5 updates per stream
    python -m edge_omd_bench.numerics --d 32 --n 200000

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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args(argv)
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
