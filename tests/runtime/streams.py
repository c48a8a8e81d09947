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


# The adversarial streams of the numerics tests are the bench's (one generator, two users).
from edge_omd_bench.numerics import STREAMS, adversarial_stream  # noqa: E402,F401
