"""Cold and warm start, measured as a user feels it: fresh processes, wall time, median of N.

    python -m edge_omd_bench.startup [--runs 5] [--dim 384]

Every figure is printed next to its floor, measured in the same run in fresh processes: `import
numpy, numba` and one trivial `njit(cache=True)` kernel loaded from a warm cache (what any
program that calls one cached Numba kernel pays; issue 23 item 6). `import numpy, numba` alone is
printed as a second reference. "cold" = an empty kernel cache (a fresh NUMBA_CACHE_DIR per
process); "warm" = the cache that the previous cold run filled. Targets (issues 8 and 23, this
2-core machine):
    cold `import edge_omd`                   <= floor + 0.6 s
    cold import + first exact float32 update <= 8 s (compiling: the floor is printed beside it)
    warm import + first update               <= floor + 0.2 s (issue 23 item 4)
    `edge-omd --help`, cold                  <= floor + 0.6 s
Peak RSS of each child (ru_maxrss) is printed too.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BARE = "import numpy, numba"
FLOOR = "numpy, numba + 1 cached kernel"
FLOOR_KERNEL = """
import numpy, numba

@numba.njit(cache=True)
def trivial(x):
    return x + 1

assert trivial(1) == 2
"""
IMPORT = "import edge_omd"
FIRST_UPDATE = """
import numpy as np
from edge_omd import RewardModel
m = RewardModel({d}, solver="exact", dtype="float32")
m.learn_pair(np.full({d}, 0.05, np.float32), np.zeros({d}, np.float32))
assert m.t == 1
"""


def _child(argv, cache):
    """Wall seconds and peak RSS (MiB) of one fresh process."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"child {argv} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def _median(samples):
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per figure (median)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter to measure (e.g. a venv with only the runtime installed: "
                         "numba initialises its numpy support on the first kernel load, which "
                         "imports scipy.linalg when scipy is installed)")
    args = ap.parse_args(argv)
    py = args.python
    cli = os.path.join(os.path.dirname(py), "edge-omd")
    cli_argv = [cli, "--help"] if os.path.exists(cli) else [py, "-m", "edge_omd.apps.cli", "--help"]
    first = FIRST_UPDATE.format(d=args.dim)
    root = tempfile.mkdtemp(prefix="edge_omd_startup.")
    floor_py = os.path.join(root, "floor_kernel.py")   # a file: Numba caches no -c code
    with open(floor_py, "w") as f:
        f.write(FLOOR_KERNEL)
    rows = {k: [] for k in ("floor", "bare", "cold import", "cold first update",
                            "warm first update", "cold --help")}
    try:
        for r in range(args.runs):
            # interleaved, so load on the shared machine hits every figure alike
            floor_cache = os.path.join(root, f"f{r}")
            _child([py, floor_py], floor_cache)             # fills its cache (not timed)
            rows["floor"].append(_child([py, floor_py], floor_cache))
            rows["bare"].append(_child([py, "-c", BARE], os.path.join(root, f"b{r}")))
            rows["cold import"].append(_child([py, "-c", IMPORT], os.path.join(root, f"i{r}")))
            rows["cold --help"].append(_child(cli_argv, os.path.join(root, f"h{r}")))
            warm_cache = os.path.join(root, f"u{r}")
            rows["cold first update"].append(_child([py, "-c", first], warm_cache))
            rows["warm first update"].append(_child([py, "-c", first], warm_cache))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    floor, floor_rss = _median(rows["floor"])
    targets = {"cold import": ("floor + 0.6 s", floor + 0.6),
               "cold first update": ("8 s", 8.0),
               "warm first update": ("floor + 0.2 s", floor + 0.2),
               "cold --help": ("floor + 0.6 s", floor + 0.6)}
    print(f"edge-omd start-up, {args.runs} fresh processes each (median wall, max peak RSS), "
          f"d={args.dim}, {py}; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'what':<38} {'wall s':>7} {'- floor':>8} {'RSS MiB':>8}  target")
    print(f"{'floor: ' + FLOOR:<38} {floor:7.3f} {'':>8} {floor_rss:8.0f}")
    bare, bare_rss = _median(rows["bare"])
    print(f"{BARE:<38} {bare:7.3f} {bare - floor:+8.3f} {bare_rss:8.0f}  (reference)")
    ok = True
    for name, (label, limit) in targets.items():
        wall, rss = _median(rows[name])
        met = wall <= limit
        ok &= met
        print(f"{name:<38} {wall:7.3f} {wall - floor:+8.3f} {rss:8.0f}  <= {label} "
              f"({limit:.2f} s): {'met' if met else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
