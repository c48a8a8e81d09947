"""Seeded observation streams shared by the runtime tests."""
import numpy as np


def mixed_stream(d, T, seed, scale=1.0):
    """Yield ('one'|'pair'|'thumb', args, weight) covering every learning verb and soft labels."""
    rng = np.random.default_rng(seed)
    theta_star = rng.normal(size=d) * scale
    for t in range(T):
        kind = ("one", "pair", "thumb")[t % 3]
        w = 1.0 if t % 5 else float(rng.uniform(0.2, 3.0))
        if kind == "one":
            z = rng.normal(size=d) / np.sqrt(d)
            y = float(rng.uniform()) if t % 7 == 0 else float(rng.uniform() < 1 / (1 + np.exp(-theta_star @ z)))
            yield kind, (z, y), w
        elif kind == "pair":
            a, b = rng.normal(size=d) / np.sqrt(d), rng.normal(size=d) / np.sqrt(d)
            if theta_star @ (a - b) < 0:
                a, b = b, a
            yield kind, (a, b), w
        else:
            phi = rng.normal(size=d) / np.sqrt(d)
            yield kind, (phi, bool(theta_star @ phi > 0)), w


def feed(model, kind, args, w):
    if kind == "one":
        model.learn_one(*args, weight=w)
    elif kind == "pair":
        model.learn_pair(*args, weight=w)
    else:
        model.learn_thumb(*args, weight=w)


def feed_naive(naive, kind, args, w):
    if kind == "one":
        naive.learn_one(args[0], args[1], w)
    elif kind == "pair":
        naive.learn_pair(args[0], args[1], w)
    else:
        naive.learn_one(args[0], 1.0 if args[1] else 0.0, w)


def bt_pairs(d, T, norm, seed):
    """Synthetic Bradley-Terry pairs with known theta* (||theta*|| = norm), unit features."""
    rng = np.random.default_rng(seed)
    theta_star = rng.normal(size=d)
    theta_star *= norm / np.linalg.norm(theta_star)
    A = rng.normal(size=(T, d))
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    Bm = rng.normal(size=(T, d))
    Bm /= np.linalg.norm(Bm, axis=1, keepdims=True)
    p = 1 / (1 + np.exp(-(A - Bm) @ theta_star))
    first = rng.uniform(size=T) < p
    chosen = np.where(first[:, None], A, Bm)
    rejected = np.where(first[:, None], Bm, A)
    return theta_star, chosen, rejected


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
