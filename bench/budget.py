"""Issue 10 item 5: accuracy vs state bytes at d = 4096, to choose the Personalizer's default budget.

    python -m edge_omd_bench.budget            # 3 seeds, T = 3000 (about 10 minutes on 2 cores)
    python -m edge_omd_bench.budget --quick    # 2 seeds, T = 1000

Synthetic Bradley-Terry pairs at the hidden size of Llama-3-8B (d = 4096), with features shaped
like LLM hidden states (the only real head here is the 384-d MiniLM):
  * anisotropic, power-law spectrum: covariance eigenvalues lambda_i ~ i^(-alpha), alpha = 1 by
    default. Hidden states of language models are strongly anisotropic (Ethayarajh 2019) and
    their covariance spectra decay roughly as a power law with alpha near 1 (Agrawal et al.
    2022, "alpha-ReQ"); alpha = 1 puts ~45% of the variance in the top 1% of directions at
    d = 4096 and leaves a long tail, which is exactly where a rank-ell sketch must choose.
  * a shared mean direction (the "common direction" of anisotropic embeddings) of the same norm
    as the fluctuations, which a pair difference cancels but the L2 normalisation does not;
  * a random rotation (so the eigenbasis is not the coordinate axes: a diagonal local norm gets
    no help from an axis-aligned spectrum), rows L2-normalised (cosine-style heads);
  * theta* isotropic in that space, scaled so that margins theta*.z have standard deviation 2.5
    (a clear but noisy preference: Bayes accuracy printed).
Models (float32, defaults eta = lam = 1): exact (the d x d Cholesky factor, 64 MiB), robust
Frequent-Directions sketches at the largest rank fitting 1, 2, 4, 8 and 16 MiB (RewardModel's
budget_bytes), and the diagonal. Accuracy = agreement with sign(theta*.z) on 4000 held-out
pairs, mean +- std over seeds, at checkpoints up to T. Also printed: state bytes and the median
update time. It prints figures; it asserts nothing.
"""
import argparse
import sys
import time

import numpy as np

from edge_omd import RewardModel

MiB = 1 << 20
D = 4096


def rotation(d, rng):
    """A random orthogonal matrix (QR of a Gaussian, signs fixed: Haar)."""
    G = rng.standard_normal((d, d), dtype=np.float32).astype(np.float64)
    Q, R = np.linalg.qr(G)
    return (Q * np.sign(np.diag(R))).astype(np.float32)


def features(rng, n, rot, alpha, mean):
    d = rot.shape[0]
    scales = (np.arange(1, d + 1, dtype=np.float64) ** (-alpha / 2)).astype(np.float32)
    scales /= np.sqrt(np.sum(scales.astype(np.float64) ** 2))  # fluctuation norm ~ 1
    X = rng.standard_normal((n, d), dtype=np.float32) * scales
    X = X @ rot + mean
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def problem(seed, T, n_test, rot, alpha, margin_std=2.5):
    rng = np.random.default_rng(seed)
    d = rot.shape[0]
    mean = rng.standard_normal(d).astype(np.float32)
    mean /= np.linalg.norm(mean)
    A, B = features(rng, T, rot, alpha, mean), features(rng, T, rot, alpha, mean)
    At, Bt = features(rng, n_test, rot, alpha, mean), features(rng, n_test, rot, alpha, mean)
    ts = rng.standard_normal(d)
    Z, Zt = (A - B).astype(np.float64), (At - Bt).astype(np.float64)
    ts *= margin_std / np.std(Zt @ ts)
    p = 1 / (1 + np.exp(-(Z @ ts)))
    first = rng.uniform(size=T) < p
    Zl = np.where(first[:, None], Z, -Z).astype(np.float32)  # the chosen minus the rejected
    truth = Zt @ ts > 0
    pt = 1 / (1 + np.exp(-np.abs(Zt @ ts)))
    return Zl, Zt, truth, float(pt.mean()), float(np.linalg.norm(ts))


def lineup(d):
    out = [("exact", RewardModel(d, solver="exact"))]
    for mib in (16, 8, 4, 2, 1):
        m = RewardModel(d, budget_bytes=mib * MiB)
        out.append((f"sketch @{mib} MiB", m))
    out.append(("diagonal", RewardModel(d, solver="diagonal")))
    return out


def run(seeds, T, alpha, n_test=4000):
    checkpoints = [c for c in (100, 250, 500, 1000, 2000, 3000, 5000) if c <= T]
    print(f"\n## d={D}, power-law spectrum alpha={alpha}, {len(seeds)} seeds, T={T} "
          f"(accuracy vs sign(theta*.z) on {n_test} held-out pairs, %, mean +- std)")
    t0 = time.perf_counter()
    rot = rotation(D, np.random.default_rng(12345))
    print(f"(random rotation: {time.perf_counter() - t0:.1f} s)", flush=True)
    acc, lat, sizes, bayes = {}, {}, {}, []
    for seed in seeds:
        Z, Zt, truth, b, _ = problem(seed, T, n_test, rot, alpha)
        bayes.append(b)
        for name, m in lineup(D):
            sizes[name] = (m.nbytes, m.solver, m.sketch_rank)
            times = []
            for t, z in enumerate(Z, 1):
                s = time.perf_counter_ns()
                m.learn_one(z, 1.0)
                times.append(time.perf_counter_ns() - s)
                if t in checkpoints:
                    a = float(((Zt @ m.theta > 0) == truth).mean())
                    acc.setdefault(name, {}).setdefault(t, []).append(a)
            lat.setdefault(name, []).append(float(np.median(times)) / 1e3)
            print(f"  seed {seed} {name:<16} final {100 * acc[name][checkpoints[-1]][-1]:.1f}% "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nBayes accuracy (expected agreement of a label with sign(theta*.z)): "
          f"{100 * np.mean(bayes):.1f}%")
    names = list(acc)
    print(f"\n{'model':<16} {'state':>12} {'rank':>5} {'median update':>14} " +
          " ".join(f"{'T=' + str(c):>13}" for c in checkpoints))
    for n in names:
        nb, _, rank = sizes[n]
        cells = [f"{100 * np.mean(acc[n][c]):5.1f} +-{100 * np.std(acc[n][c]):4.1f}" for c in checkpoints]
        print(f"{n:<16} {nb / MiB:>9.2f} MiB {rank or '-':>5} {np.median(lat[n]):>11.0f} us " +
              " ".join(f"{x:>13}" for x in cells))
    last = checkpoints[-1]
    ex = np.mean(acc["exact"][last])
    print(f"\ngap to exact at T={last} (points): " + ", ".join(
        f"{n}: {100 * (ex - np.mean(acc[n][last])):+.2f}" for n in names if n != "exact"))
    return acc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--alpha", type=float, action="append",
                    help="power-law exponent(s) of the feature spectrum (default 1.0)")
    ap.add_argument("--T", type=int)
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits
    seeds = range(2) if args.quick else range(3)
    T = args.T or (1000 if args.quick else 3000)
    with threadpool_limits(limits=1, user_api="blas"):
        for alpha in args.alpha or [1.0]:
            run(seeds, T, alpha)
    return 0


if __name__ == "__main__":
    sys.exit(main())
