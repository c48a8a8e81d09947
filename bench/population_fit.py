"""How fit_population scales (issue 19, item 5): users per second and peak memory.

    python -m edge_omd_bench.population_fit                    # Polis + 10^5 synthetic users
    python -m edge_omd_bench.population_fit --synthetic 20000 --d 384 --no-polis
    python -m edge_omd_bench.population_fit --workers 2        # the same fit in 2 processes

Two populations, each fitted with the default Settings (edge_omd/population/fit.py):
  Polis   every participant of each of the four conversations (../shared/data/polis, read by
          bench/polis.py), their votes as thumbs on the default MiniLM head's features (d = 384).
  synthetic  a stream of users regenerated from a seed, never held in memory: `SyntheticUsers`
          (a shard that pickles as its arguments) draws user u's taste as a shared theta plus a
          deviation in 4 directions and its n thumbs on items of a seeded catalogue (item =
          group), one user at a time, in every pass.
Figures: wall seconds (and those of the criterion passes, `TimedDriver`), passes over the
users, users per second (users / wall seconds: the whole fit, every pass), user-passes per
second, Python's peak traced allocation during the fit
(tracemalloc, numpy arrays included; only with --trace, in a second, untimed fit) and the peak
resident size of this process and of its worker processes (the high-water mark since start:
compare runs of different sizes in separate processes). The fit keeps one user at a time plus
O(d^2) per sum, so the peak should not grow with the number of users.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

from edge_omd.population.data import UserData
from edge_omd.population.fit import LocalDriver, Settings, fit_population


class SyntheticUsers:
    """Users [lo, hi) of a seeded population: theta_u = theta_pop + Q a_u (a_u ~ N(0, spread^2)
    in 4 directions), n thumbs each on items of a catalogue of `items` unit vectors (the item's
    index is its group), y ~ Bernoulli(sigmoid(theta_u . phi)). Regenerated at every iteration:
    nothing but the arguments is kept, so a shard pickles in a few bytes."""

    def __init__(self, lo: int, hi: int, d: int, seed: int = 0, n: int = 20, items: int = 2000,
                 spread: float = 1.5):
        self.lo, self.hi, self.d, self.seed, self.n = int(lo), int(hi), int(d), int(seed), int(n)
        self.items, self.spread = int(items), float(spread)

    def _world(self):
        """(theta_pop, Q, the item catalogue): the same for every shard (O(items d), made at
        each iteration, never per user)."""
        rng = np.random.default_rng([self.seed, 0])
        theta = rng.normal(size=self.d) * 8.0 / np.sqrt(self.d)
        Q = np.linalg.qr(rng.normal(size=(self.d, 4)))[0].T
        items = rng.normal(size=(self.items, self.d))
        return theta, Q, items / np.linalg.norm(items, axis=1, keepdims=True)

    def __iter__(self):
        theta, Q, catalogue = self._world()
        for u in range(self.lo, self.hi):
            rng = np.random.default_rng([self.seed, 2, u])
            th = theta + self.spread * rng.normal(size=4) @ Q
            idx = rng.integers(self.items, size=self.n)
            Z = catalogue[idx]
            y = (rng.random(self.n) < 1.0 / (1.0 + np.exp(-(Z @ th)))).astype(np.float64)
            yield UserData(f"u{u}", Z, np.arange(self.n + 1, dtype=np.int64), y,
                           np.ones(self.n), idx.astype(np.int64))

    def __len__(self):
        return self.hi - self.lo


def peak_rss_bytes() -> tuple[int, int]:
    """(this process's, its reaped children's) peak resident size so far, bytes (Linux)."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)


class TimedDriver(LocalDriver):
    """LocalDriver that adds up the seconds of each kind of pass (stats, newton, deviations,
    criterion): the criterion replays the held-out users (at most CHECK_MAX) once per candidate
    start, a cost that does not grow with the population beyond that."""

    def __init__(self, workers: int = 1):
        super().__init__(workers)
        self.seconds = {}

    def run(self, plan, shards):
        t = time.perf_counter()
        out = super().run(plan, shards)
        self.seconds[plan.kind] = self.seconds.get(plan.kind, 0.0) + time.perf_counter() - t
        return out


def measure(shards, d: int, users: int, workers: int = 1, trace: bool = False) -> dict:
    """Fit once; the figures of the module docstring. Python's traced peak only with `trace`
    (tracemalloc slows every allocation, so its run is not the one timed)."""
    driver = TimedDriver(workers)
    t0 = time.perf_counter()
    try:
        pack = fit_population(shards, d=d, settings=Settings(), driver=driver)
    finally:
        driver.close()
    wall = time.perf_counter() - t0
    rss, children = peak_rss_bytes()
    traced = None
    if trace:
        tracemalloc.start()
        fit_population(shards, d=d, settings=Settings(), workers=workers)
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    passes = int(pack.fit["passes"])
    return {"users": users, "d": d, "workers": workers, "seconds": wall, "passes": passes,
            "users_per_s": users / wall, "user_passes_per_s": users * passes / wall,
            "criterion_seconds": driver.seconds.get("criterion", 0.0),
            "peak_traced_bytes": traced, "peak_rss_bytes": rss, "children_rss_bytes": children,
            "chosen": {k: pack.fit[k] for k in ("lam_pop", "rho", "firm", "weakest", "K")}}


def polis_users(conv, Phi):
    """Every participant of a conversation (bench/polis.py) as UserData: votes in time order,
    thumbs z = phi(statement), y = agree, group = the statement."""
    out = []
    for p, idx in enumerate(conv.streams()):
        if len(idx) == 0:
            continue
        items = conv.item[idx]
        out.append(UserData(f"p{p}", Phi[items].astype(np.float64),
                            np.arange(len(idx) + 1, dtype=np.int64),
                            conv.up[idx].astype(np.float64), np.ones(len(idx)),
                            items.astype(np.int64)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_omd_bench.population_fit",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", type=int, default=100_000, help="synthetic users (0: none)")
    ap.add_argument("--d", type=int, default=64, help="synthetic feature dimension")
    ap.add_argument("--no-polis", action="store_true")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--trace", action="store_true", help="also Python's traced peak (a second fit)")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    print(f"# fit_population scale: {' '.join(sys.argv)}; load average at start "
          f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, {os.cpu_count()} CPUs")
    print("| population | users | d | workers | passes | seconds | of which criterion | users/s | "
          "user-passes/s | peak traced MiB | peak RSS MiB (workers) | chosen |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def row(name, r):
        traced = r["peak_traced_bytes"]
        traced = "-" if traced is None else f"{traced / 2**20:.1f}"
        print(f"| {name} | {r['users']} | {r['d']} | {r['workers']} | {r['passes']} | "
              f"{r['seconds']:.1f} | {r['criterion_seconds']:.1f} | {r['users_per_s']:.1f} | "
              f"{r['user_passes_per_s']:.0f} | "
              f"{traced} | {r['peak_rss_bytes'] / 2**20:.0f} "
              f"({r['children_rss_bytes'] / 2**20:.0f}) | {r['chosen']} |", flush=True)

    if not args.no_polis:
        from edge_omd_bench import polis
        from edge_omd.population.data import ArrayShard
        for folder in polis.conversation_dirs(polis.DEFAULT_DIR):
            conv = polis.load_conversation(folder)
            Phi = polis.embed(conv, polis.minilm_features(), log=lambda *a: None)
            users = polis_users(conv, Phi)
            n = max(1, args.workers)
            row(f"Polis {conv.name}", measure([ArrayShard(users[i::n]) for i in range(n)],
                                              Phi.shape[1], len(users), args.workers, args.trace))
    if args.synthetic:
        n = max(1, args.workers)
        cut = np.linspace(0, args.synthetic, n + 1).astype(int)
        shards = [SyntheticUsers(cut[i], cut[i + 1], args.d) for i in range(n)]
        row("synthetic stream", measure(shards, args.d, args.synthetic, args.workers, args.trace))
    load1 = os.getloadavg()
    print(f"# load average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
