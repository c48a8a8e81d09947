"""edge_omd_bench: the benchmark harness behind `edge-omd bench` (installed from the repo's bench/).

Modules, one concern each:
    base.py         the `Contender` interface (learn from (z, y), margins, state bytes)
    mle.py          `MLERefit`, the paper's baseline (regularised BT MLE refit, scipy L-BFGS-B)
    peers.py        River, scikit-learn and Vowpal Wabbit (incl. OjaNewton) behind `Contender`
    contenders.py   edge-omd's solvers + the MLE as contenders; the lineup and tuning grids
    streams.py      synthetic Bradley-Terry problems; HH-RLHF pairs embedded by the FeatureHead
    race.py         run streams, evaluate at checkpoints, tune with the same budget for all
    workloads.py    the six workloads and their presets (smoke / quick / full)
    targets.py      the targets as records (contender ids, metric, comparison, threshold) and their verdicts
    report.py       REPORT.md + PNGs from results.json, with the verdicts of targets.py
    cli.py          `edge-omd bench [--quick]`
(features.py, deployment.py and runtime.py belong to other benchmarks.)
"""
from edge_omd_bench.mle import MLERefit

__all__ = ["MLERefit"]
