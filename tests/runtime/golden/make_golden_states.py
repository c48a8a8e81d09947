"""Golden state files: the bytes of every solver x dtype after a fixed stream, committed so that
a refactor of the state format, the solvers or the front is proven to leave them unchanged.

    python tests/runtime/golden/make_golden_states.py            # rewrite the committed files
    NUMBA_DISABLE_JIT=1 python tests/runtime/golden/make_golden_states.py
    python tests/runtime/golden/make_golden_states.py --layout   # rewrite state_layout.json

state_layout.json: the payload layout of every solver for a few sizes, from the solvers' specs
(edge_omd.solvers.base.layout_golden), which the Java reader's StateFormat.payloadSpec is
checked against (tests/android/test_java_reader.py; test_state_format checks the file is the
specs' current output).

Two sets, one per execution mode: `states/jit/` (compiled kernels) and `states/nojit/` (the same
kernels run as Python). The compiled bytes are the same on every x86-64 CPU (no fastmath, sums in a
fixed order, fdlibm's exp, no BLAS/LAPACK: edge_omd/_numba.py) except those of the solvers with
per-CPU kernels (exact, diagonal, the sketch's LAPACK shrink: `per_cpu`), which agree across CPUs
to TOLERANCE; the float64 files of the
two sets are identical but for those; the float32 ones differ, NumPy's float32 scalar arithmetic
rounding where the compiled code does not (tests/runtime/test_cross_target.py checks all of it).
Each holds
<solver>_<dtype>_<variant>.eomd for every solver, both dtypes and two variants:
    plain: the defaults (sketch rank 2);
    full:  every header field away from its default: radius (the projection runs), a head
           fingerprint, eta, lam, forget (not exact), cg steps / warm-up / tolerance, a budget.
d = 6, 25 updates of every verb (fantasize included, so exact ends with a pending update and
the sketch shrinks its 4-row buffer several times). Everything is seeded.

tests/runtime/test_golden_states.py regenerates each state and compares bytes, and loads each
committed file and writes it back byte for byte. Only rewrite the files when a change of the
bytes is intended (a new format version), and say so in the commit.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
D, T, RANK = 6, 25, 2
SOLVERS = ("exact", "cg", "sketch", "diagonal")
DTYPES = ("float32", "float64")
FINGERPRINT = bytes(range(32))


#: Relative tolerance (of the largest entry of theta, of cal_H) to which a per-CPU solver's
#: state agrees across CPUs and with the pure-Python path (the Java core's, tests/android)
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def per_cpu(name: str) -> bool:
    """Is the case's solver one whose state bytes depend on the CPU (per-CPU kernels or LAPACK:
    edge_omd/_numba.py, PER_CPU_MODULES)?"""
    from edge_omd import _numba
    from edge_omd.solvers import SOLVERS
    return SOLVERS[name.split("_")[0]].__module__ in _numba.PER_CPU_MODULES


def target() -> str:
    """The CPU target this process compiles for (Numba's CPU name and features)."""
    import llvmlite.binding as llvm
    import numba
    name = numba.config.CPU_NAME or llvm.get_host_cpu_name()
    feats = numba.config.CPU_FEATURES
    if feats is None:
        feats = llvm.get_host_cpu_features().flatten()
    return f"{name} {feats}"


def written_target() -> str:
    """The CPU target that wrote this mode's committed set (its TARGET file)."""
    with open(os.path.join(folder(), "TARGET"), encoding="utf-8") as f:
        return f.read().strip()


def within_tolerance(a: bytes, b: bytes):
    """None if states a and b have the same settings, counter and fingerprint, and theta and the
    local norm cal_H (as an operator: the sketch's rows are defined up to sign and rotation)
    within TOLERANCE of their scale; else what differs."""
    from edge_omd import RewardModel
    ma, mb = RewardModel.from_bytes(a), RewardModel.from_bytes(b)
    same = lambda m: (m.solver, m.dtype, m.dim, m.sketch_rank, m.t, m.head_fingerprint,  # noqa: E731
                      m.hyperparameters)
    if same(ma) != same(mb):
        return "the settings or the counter differ"
    eye = np.eye(ma.dim)
    for what, x, y in [("theta", ma.theta, mb.theta),
                       ("cal_H", np.stack([ma._solver.matvec(e.copy()) for e in eye]),
                        np.stack([mb._solver.matvec(e.copy()) for e in eye]))]:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        scale = max(float(np.abs(x).max(initial=0.0)), 1e-300)
        if not float(np.abs(x - y).max(initial=0.0)) <= TOLERANCE[ma.dtype] * scale:
            return f"{what} differs by {np.abs(x - y).max() / scale:.3g} of its scale"
    return None


def mode() -> str:
    """'nojit' under NUMBA_DISABLE_JIT=1, else 'jit' (the set this process reproduces)."""
    return "nojit" if bool(int(os.environ.get("NUMBA_DISABLE_JIT", "0") or "0")) else "jit"


def folder(which: str | None = None) -> str:
    return os.path.join(HERE, "states", which or mode())


def settings(solver: str, dtype: str, variant: str) -> dict:
    cfg = dict(solver=solver, dtype=dtype)
    if solver == "sketch":
        cfg["sketch_rank"] = RANK
    if variant == "full":
        cfg.update(radius=0.8, head_fingerprint=FINGERPRINT, eta=1.5, lam=0.7,
                   budget_bytes=1 << 20)
        if solver != "exact":
            cfg["forget"] = 0.95
        if solver == "cg":
            cfg.update(cg_steps=4, lam_warmup=5, cg_tol=1e-8)
    return cfg


def cases():
    """[(name, settings)] in a fixed order."""
    return [(f"{s}_{dt}_{v}", settings(s, dt, v))
            for s in SOLVERS for dt in DTYPES for v in ("plain", "full")]


def _stream(seed: int):
    """Seeded verbs: one / pair / thumb / fantasize, soft labels, weights, unit-ish features."""
    rng = np.random.default_rng(seed)
    theta_star = rng.normal(size=D) * 2.0
    for t in range(T):
        kind = ("one", "pair", "thumb", "fantasize", "pair")[t % 5]
        w = 1.0 if t % 4 else float(rng.uniform(0.2, 3.0))
        if kind == "one":
            z = rng.normal(size=D) / math.sqrt(D)
            y = float(rng.uniform()) if t % 3 == 0 else float(theta_star @ z > 0)
            yield kind, (z, y), w
        elif kind == "pair":
            a, b = rng.normal(size=D) / math.sqrt(D), rng.normal(size=D) / math.sqrt(D)
            yield kind, ((a, b) if theta_star @ (a - b) >= 0 else (b, a)), w
        elif kind == "thumb":
            phi = rng.normal(size=D) / math.sqrt(D)
            yield kind, (phi, bool(theta_star @ phi > 0)), w
        else:
            yield kind, (rng.normal(size=D) / math.sqrt(D),), w


def build(cfg: dict, seed: int = 11) -> bytes:
    """The state of a model with these settings after the fixed stream."""
    from edge_omd import RewardModel
    m = RewardModel(D, **cfg)
    for kind, args, w in _stream(seed):
        if kind == "one":
            m.learn_one(*args, weight=w)
        elif kind == "pair":
            m.learn_pair(*args, weight=w)
        elif kind == "thumb":
            m.learn_thumb(*args, weight=w)
        else:
            m.fantasize(*args, weight=w)
    return m.to_bytes()


def build_all() -> dict:
    return {name: build(cfg) for name, cfg in cases()}


def layout_text() -> str:
    """state_layout.json's text: one solver header and one case per line."""
    import json
    from edge_omd.solvers.base import layout_golden
    g = layout_golden()
    lines = ['{"solvers": [']
    for i, s in enumerate(g["solvers"]):
        head = {k: v for k, v in s.items() if k != "cases"}
        lines.append(" " + json.dumps(head)[:-1] + ', "cases": [')
        lines += ["  " + json.dumps(c) + ("," if j < len(s["cases"]) - 1 else "")
                  for j, c in enumerate(s["cases"])]
        lines.append(" ]}" + ("," if i < len(g["solvers"]) - 1 else ""))
    text = "\n".join(lines + ["]}"]) + "\n"
    assert json.loads(text) == g
    return text


def main(argv=None) -> int:
    if argv and "--layout" in argv:
        with open(os.path.join(HERE, "state_layout.json"), "w") as f:
            f.write(layout_text())
        print("wrote state_layout.json")
        return 0
    out = folder()
    os.makedirs(out, exist_ok=True)
    for name, data in build_all().items():
        with open(os.path.join(out, name + ".eomd"), "wb") as f:
            f.write(data)
    with open(os.path.join(out, "TARGET"), "w", encoding="utf-8") as f:
        f.write(target() + "\n")  # the per-CPU solvers' bytes are this machine's
    print(f"wrote {len(cases())} states to {os.path.relpath(out)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
    sys.exit(main(sys.argv[1:]))
