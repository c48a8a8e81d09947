"""Cold and warm start, measured as a user feels it: fresh processes, wall time, median of N.

    python -m edge_omd_bench.startup [--runs 5] [--dim 384] [--baseline DIR] [--source-only]

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
Peak RSS of each child (ru_maxrss) and its CPU time (user + system; on a machine shared by
other jobs the wall time mostly measures waiting for a core, the CPU time much less so) are
printed too; the targets are on wall time.

Bytecode: the children read edge_omd's compiled bytecode from a folder of the run
(PYTHONPYCACHEPREFIX, filled by an untimed first import), as an installed package has it;
numpy and numba have theirs from their install. With PYTHONDONTWRITEBYTECODE set and an
editable install, every process would compile edge_omd's sources again (about 0.1 s CPU on
this machine), a cost no installed app pays; `--source-only` measures that way anyway.
`--baseline DIR` measures the cold and warm rows a second time, interleaved in the same run,
with DIR (a folder holding another revision's `edge_omd` package, e.g. a git worktree) first
on PYTHONPATH: a before/after comparison under the same load.
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


def _child(argv, cache, env):
    """Wall seconds, peak RSS (MiB) and CPU seconds (user + system) of one fresh process."""
    env = dict(env, NUMBA_CACHE_DIR=cache)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"child {argv} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def _summary(samples):
    """(median wall, max peak RSS, min wall, max wall, median CPU) of one row's processes."""
    walls = [s[0] for s in samples]
    return (statistics.median(walls), max(s[1] for s in samples), min(walls), max(walls),
            statistics.median(s[2] for s in samples))


def _line(name, row, floor=None):
    """A printed row: wall, its difference to the floor's, [min, max], CPU, its difference to
    the floor's, peak RSS (no differences on the floor's own row)."""
    wall, rss, lo, hi, cpu = row
    dw, dc = (f"{'':>8}",) * 2 if floor is None else (f"{wall - floor[0]:+8.3f}",
                                                      f"{cpu - floor[4]:+8.3f}")
    return f"{name:<38} {wall:7.3f} {dw} {lo:7.3f} {hi:7.3f} {cpu:7.3f} {dc} {rss:8.0f}"


def _env(root, tag, source_only, path=None):
    env = dict(os.environ)
    if source_only:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(root, f"pyc-{tag}")
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([path] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per figure (median)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter to measure (e.g. a venv with only the runtime installed: "
                         "numba initialises its numpy support on the first kernel load, which "
                         "imports scipy.linalg when scipy is installed)")
    ap.add_argument("--baseline", metavar="DIR",
                    help="a folder holding another revision's edge_omd package: its cold and "
                         "warm rows are measured too, interleaved (module docstring)")
    ap.add_argument("--source-only", action="store_true",
                    help="no cached bytecode for edge_omd: every process compiles its sources")
    args = ap.parse_args(argv)
    py = args.python
    cli = os.path.join(os.path.dirname(py), "edge-omd")
    cli_argv = [cli, "--help"] if os.path.exists(cli) else [py, "-m", "edge_omd.apps.cli", "--help"]
    first = FIRST_UPDATE.format(d=args.dim)
    root = tempfile.mkdtemp(prefix="edge_omd_startup.")
    floor_py = os.path.join(root, "floor_kernel.py")   # a file: Numba caches no -c code
    with open(floor_py, "w") as f:
        f.write(FLOOR_KERNEL)
    revs = {"": _env(root, "this", args.source_only)}
    if args.baseline:
        revs["baseline "] = _env(root, "base", args.source_only, os.path.abspath(args.baseline))
    env = revs[""]
    rows = {"floor": [], "bare": []}
    for rev in revs:
        rows.update({rev + k: [] for k in ("cold import", "cold first update",
                                           "warm first update", "cold --help")})
    try:
        for rev, e in revs.items():  # bytecode for every module the rows import (not timed)
            _child([py, "-c", "import edge_omd, edge_omd.apps.cli"], os.path.join(root, "pre"), e)
        for r in range(args.runs):
            # interleaved, so load on the shared machine hits every figure alike
            floor_cache = os.path.join(root, f"f{r}")
            _child([py, floor_py], floor_cache, env)             # fills its cache (not timed)
            rows["floor"].append(_child([py, floor_py], floor_cache, env))
            rows["bare"].append(_child([py, "-c", BARE], os.path.join(root, f"b{r}"), env))
            for i, (rev, e) in enumerate(revs.items()):
                tag = f"{r}-{i}"
                rows[rev + "cold import"].append(
                    _child([py, "-c", IMPORT], os.path.join(root, f"i{tag}"), e))
                rows[rev + "cold --help"].append(_child(cli_argv, os.path.join(root, f"h{tag}"), e))
                warm_cache = os.path.join(root, f"u{tag}")
                rows[rev + "cold first update"].append(_child([py, "-c", first], warm_cache, e))
                rows[rev + "warm first update"].append(_child([py, "-c", first], warm_cache, e))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    fl = _summary(rows["floor"])
    floor = fl[0]
    targets = {"cold import": ("floor + 0.6 s", floor + 0.6),
               "cold first update": ("8 s", 8.0),
               "warm first update": ("floor + 0.2 s", floor + 0.2),
               "cold --help": ("floor + 0.6 s", floor + 0.6)}
    print(f"edge-omd start-up, {args.runs} fresh processes each (median wall [min, max], max "
          f"peak RSS), d={args.dim}, {py}, "
          f"{'sources compiled each time' if args.source_only else 'bytecode cached'}"
          + (f", baseline {args.baseline}" if args.baseline else "")
          + f"; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'what':<38} {'wall s':>7} {'- floor':>8} {'min':>7} {'max':>7} {'cpu s':>7} "
          f"{'- floor':>8} {'RSS MiB':>8}  target (wall)")
    print(_line("floor: " + FLOOR, fl))
    print(_line(BARE, _summary(rows["bare"]), fl) + "  (reference)")
    ok = True
    for rev in revs:
        for name, (label, limit) in targets.items():
            row = _summary(rows[rev + name])
            met = row[0] <= limit
            ok &= met or bool(rev)
            print(_line(rev + name, row, fl) + f"  <= {label} ({limit:.2f} s): "
                  f"{'met' if met else 'MISSED'}")
    if args.baseline:  # paired within a round: the load of that round hits both alike
        for name in ("warm first update", "cold first update"):
            for k, what in ((0, "wall"), (2, "cpu")):
                d = sorted(a[k] - b[k] for a, b in zip(rows[name], rows["baseline " + name]))
                print(f"this - baseline, {name}, {what}: median {statistics.median(d):+.3f} s "
                      f"(rounds {d[0]:+.3f} .. {d[-1]:+.3f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
