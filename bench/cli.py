"""`edge-omd bench [--quick] [--only W ...] [--out DIR]`: run the workloads, write REPORT.md + PNGs.

Results are also written as results.json next to the report, so the report can be re-rendered
(`--report-only`) without re-running anything. results.json keys every contender by its id
(contenders.py) and the verdicts on the targets are computed from it by the records of
targets.py; REPORT.md shows each contender's display label.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _logger(t0):
    def log(msg):
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)
    return log


def run(cfg, out_dir: str, log=print, featurizer=None, resume: bool = False) -> dict:
    """Run the configured workloads in order (later ones reuse earlier tuned settings) and
    write results.json + REPORT.md + PNGs into out_dir. Returns the results dict.
    resume: start from out_dir/results.json and replace only the workloads run now."""
    from edge_omd_bench import report
    from edge_omd_bench.workloads import WORKLOADS, Context, config_dict
    os.makedirs(out_dir, exist_ok=True)
    # Every contender runs single-threaded: on a small shared machine a multi-threaded BLAS
    # makes the MLE's matrix-vector products up to 100x slower and noisy (measured), and the
    # one-pass learners are single-threaded anyway. Forked workers inherit the limit.
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
        blas = "limited to 1 thread (threadpoolctl)"
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        blas = "not limited (threadpoolctl missing)"
    ctx = Context(cfg, log=log, featurizer=featurizer)
    results = {"results_format": report.RESULTS_FORMAT, "config": config_dict(cfg),
               "machine": {**report.machine_info(), "blas_threads": blas,
                           "loadavg_start": list(os.getloadavg())},
               "timings_s": {}}
    if resume:
        with open(os.path.join(out_dir, "results.json")) as f:
            old = json.load(f)
        try:
            report.check_format(old)
        except ValueError as exc:
            raise SystemExit(f"--resume: {exc}") from None
        if old.get("config", {}).get("preset") != cfg.preset:
            raise SystemExit(f"--resume: {out_dir}/results.json is a {old.get('config', {}).get('preset')!r} "
                             f"run, not {cfg.preset!r}")
        old["timings_s"] = {k: v for k, v in old.get("timings_s", {}).items() if k not in cfg.workloads}
        old.setdefault("resumed", []).append({"workloads": list(cfg.workloads), "machine": results["machine"]})
        results = old
    ctx.results = results
    for name in ("synthetic", "real", "personal", "active", "cost", "scale"):
        if name not in cfg.workloads:
            continue
        t0 = time.perf_counter()
        log(f"== workload: {name}")
        results[name] = WORKLOADS[name](ctx)
        results["timings_s"][name] = time.perf_counter() - t0
        if "skipped_all" in results[name]:
            log(f"   skipped: {results[name]['skipped_all']}")
        with open(os.path.join(out_dir, "results.json"), "w") as f:   # partial results survive
            json.dump(results, f, indent=1, default=float)
    results["machine"]["loadavg_end"] = list(os.getloadavg())
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=float)
    report.write_report(results, out_dir)
    log(f"report written to {os.path.join(out_dir, 'REPORT.md')}")
    return results


def main(argv: list[str] | None = None) -> int:
    from edge_omd_bench.workloads import WORKLOADS, Config
    p = argparse.ArgumentParser(prog="edge-omd bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small streams: a few minutes on 2 cores")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (what the tests run)")
    p.add_argument("--only", nargs="+", choices=sorted(WORKLOADS), help="run only these workloads")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="output folder (bench/results)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-only", action="store_true", help="re-render REPORT.md from results.json")
    p.add_argument("--resume", action="store_true",
                   help="keep the other workloads of OUT/results.json, re-run only --only's")
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.report_only:
        from edge_omd_bench import report
        with open(os.path.join(a.out, "results.json")) as f:
            res = json.load(f)
        try:
            report.write_report(res, a.out)
        except ValueError as exc:
            raise SystemExit(f"--report-only: {exc}") from None
        print(f"report written to {os.path.join(a.out, 'REPORT.md')}")
        return 0
    preset = "smoke" if a.smoke else "quick" if a.quick else "full"
    cfg = Config.preset_named(preset, seed=a.seed)
    if a.only:
        cfg.workloads = tuple(a.only)
    log = _logger(time.perf_counter())
    log(f"edge-omd bench, preset {preset}, seed {a.seed}, workloads {', '.join(cfg.workloads)}")
    run(cfg, a.out, log=log, resume=a.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
