"""The state bytes do not depend on the CPU (issue 18): the golden streams and a journal replay,
run in fresh processes compiled for lower x86-64 targets than this machine's, give exactly the
host-compiled bytes and the committed goldens, and the pure-Python path (NUMBA_DISABLE_JIT)
gives the compiled float64 bytes, for cg; the solvers whose bytes depend on the CPU by the
item-2 rule (exact, diagonal, the sketch: edge_omd/_numba.py) to the stated tolerance
(make_golden_states.TOLERANCE). One process per target
(tests/runtime/cross_target.py):

  sse2:   NUMBA_CPU_NAME=generic (x86-64 baseline: SSE2, no FMA), glibc told its CPU has no AVX2
          or FMA (GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA: its exp/log variants change) and
          OpenBLAS its oldest kernels (OPENBLAS_CORETYPE=Prescott);
  avx2:   haswell with its own features and no AVX-512 (NUMBA_CPU_FEATURES), as an AVX2 + FMA
          machine (e.g. the AMD EPYC that wrote other bytes before) compiles;
  python: NUMBA_DISABLE_JIT=1 under the same glibc/OpenBLAS settings (float64 states only: in
          float32 NumPy's scalar arithmetic rounds where the compiled code does not).

Each target compiles its own kernels once (Numba's cache keys them by CPU), ~30 s cold."""
import json
import os
import subprocess
import sys

import pytest

from tests.runtime import cross_target
from tests.runtime.golden import make_golden_states as golden

pytestmark = pytest.mark.jit

ROOT = cross_target.ROOT
LOWER_LIBS = {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA", "OPENBLAS_CORETYPE": "Prescott"}
HASWELL = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fsgsbase,+fxsr,+invpcid,"
           "+lzcnt,+mmx,+movbe,+pclmul,+popcnt,+rdrnd,+sahf,+sse,+sse2,+sse3,+sse4.1,+sse4.2,"
           "+ssse3,+xsave,+xsaveopt,-avx512f,-avx512bw,-avx512cd,-avx512dq,-avx512vl")
TARGETS = {
    "sse2": dict(NUMBA_CPU_NAME="generic", NUMBA_CPU_FEATURES="", **LOWER_LIBS),
    "avx2": dict(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=HASWELL),
    "python": dict(NUMBA_DISABLE_JIT="1", **LOWER_LIBS),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The users' store, written by this (host-compiled) process, and its replay here."""
    folder = str(tmp_path_factory.mktemp("cross") / "store")
    cross_target.make_store(folder)
    return folder, cross_target.replay(folder)


def _run(env_extra, folder):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_DISABLE_JIT")}
    env.update(env_extra, PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "tests.runtime.cross_target", folder], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("target", list(TARGETS))
def test_a_lower_target_gives_the_host_bytes(target, store):
    folder, host = store
    got = _run(TARGETS[target], folder)
    assert got["mode"] == ("nojit" if target == "python" else "jit")
    assert got["target"] == TARGETS[target].get("NUMBA_CPU_NAME", got["target"])
    pairs = [(f"golden {n}", n, bytes.fromhex(b), cross_target.expected(n, got["mode"]))
             for n, b in got["golden"].items()]
    pairs += [(f"user {u}", u.replace("-", "_"), bytes.fromhex(got["replay"][u]), host[u])
              for u in host if target != "python" or u.endswith("float64")]
    differ = []
    for what, name, mine, want in pairs:
        if mine == want:
            continue
        why = golden.within_tolerance(mine, want) if golden.per_cpu(name) else "bytes differ"
        if why:
            differ.append(f"{what}: {why}")
    assert differ == [], f"{target}: {differ}"


def test_committed_float64_goldens_are_the_same_compiled_and_in_python():
    """The pure-Python path computes the compiled float64 bytes, so the two committed sets hold
    the same float64 files (the set each mode checks is its own: test_golden_states); a solver
    with per-CPU kernels to the stated tolerance."""
    for name, _cfg in golden.cases():
        if "float64" in name:
            files = [open(os.path.join(golden.folder(w), name + ".eomd"), "rb").read()
                     for w in ("jit", "nojit")]
            if golden.per_cpu(name):
                assert golden.within_tolerance(files[0], files[1]) is None, name
            else:
                assert files[0] == files[1], name
