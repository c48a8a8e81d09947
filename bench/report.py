"""Render results.json (cli.py) into bench/results/REPORT.md with tables and matplotlib PNGs.

Pure function of the results dict: `write_report(results, out_dir)`. Contenders are keyed by
their id (contenders.py) and shown by their "label"; the verdicts on the issue's targets come
from the target records of targets.py, evaluated on the same numbers the tables show.
"""
from __future__ import annotations

import datetime
import math
import os
import platform
import subprocess

import numpy as np

from edge_omd_bench.base import FIRST_ORDER
from edge_omd_bench.contenders import EXACT, MLE_EVERY_ROUND


# ------------------------------------------------------------------ machine ---------------
def machine_info() -> dict:
    info = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count()}
    try:
        info["cores_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
        with open("/proc/meminfo") as f:
            info["mem_total_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        info["cpu_model"] = platform.processor() or "?"
    vers = {}
    for mod in ("edge_omd", "numpy", "scipy", "numba", "sklearn", "river", "vowpalwabbit",
                "onnxruntime", "tokenizers", "matplotlib"):
        try:
            m = __import__(mod)
            vers[mod] = getattr(m, "__version__", "?")
        except Exception:
            vers[mod] = "not installed"
    info["versions"] = vers
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                                            capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:
        pass
    try:   # which RewardModel was measured: the shared tree moves, so hash the runtime's sources
        import hashlib
        import edge_omd
        root = os.path.dirname(edge_omd.__file__)
        h = hashlib.sha256()
        for dp, _, fs in sorted(os.walk(root)):
            for fn in sorted(fs):
                if fn.endswith(".py"):
                    with open(os.path.join(dp, fn), "rb") as f:
                        h.update(fn.encode() + f.read())
        info["edge_omd_source_sha256"] = h.hexdigest()[:16]
    except Exception:
        pass
    info["env"] = {k: os.environ.get(k, "") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                      "NUMBA_NUM_THREADS") if os.environ.get(k)}
    return info


# ------------------------------------------------------------------ helpers ---------------
def _m(curves) -> np.ndarray:
    return np.mean(np.asarray(curves, dtype=np.float64), axis=0)


def _s(curves) -> np.ndarray:
    a = np.asarray(curves, dtype=np.float64)
    return np.std(a, axis=0) if len(a) > 1 else np.zeros(a.shape[1])


def _pct(v, sd=None) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{100 * v:.2f}" + (f" ± {100 * sd:.2f}" if sd is not None and sd > 0 else "")


def _us(v) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _bytes(b) -> str:
    b = float(b)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(b) < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _pick_cps(cps: list[int], want=(100, 1000)) -> list[int]:
    sel = [c for c in want if c in cps and c != cps[-1]]
    return sel + [cps[-1]]


STYLE = {"edge-omd": "-", "mle": "--", FIRST_ORDER: ":", "second-order sketch": "-.", "reference": "-"}


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


COLORS: dict = {}      # one colour per contender name across every figure of a report


def _color(name: str):
    if name not in COLORS:
        COLORS[name] = _plt().get_cmap("tab20")(len(COLORS) % 20)
    return COLORS[name]


def _curve_plot(ax, cps, contenders: dict, key: str, title: str, ylabel: str, logy=False):
    for cid, r in contenders.items():
        if key not in r:
            continue
        m = _m(r[key])
        x = np.asarray(cps)
        k = r.get("fixed", {}).get("refit_every", 1) if r["family"] == "mle" else 1
        if k > 1:                                  # before its first refit it holds theta = 0
            keep = x > k
            x, m = x[keep], m[keep]
        name = r["label"]
        ax.plot(x, 100 * m if key == "acc" else m, STYLE.get(r["family"], "-"), color=_color(name),
                label=name, lw=2.2 if cid in (EXACT, MLE_EVERY_ROUND) else 1.2)
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("T (labels)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _legend_right(fig, ax):
    """One legend for the whole figure, outside the axes on the right (never over a curve)."""
    fig.tight_layout()
    seen: dict = {}
    for a in [ax] + [a for a in fig.axes if a is not ax]:    # every curve of every panel, once
        for h, lab in zip(*a.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen), loc="upper left", bbox_to_anchor=(1.0, 0.97),
               fontsize=7, frameon=False)


def _save(fig, out_dir, name) -> str:
    if not fig.legends:
        fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return name


# ------------------------------------------------------------------ targets ---------------
def targets(res: dict) -> list[dict]:
    """The verdicts on the issue's targets (records and evaluation: targets.py), as table rows."""
    from edge_omd_bench.targets import evaluate
    return [{"id": v.target.id, "target": v.label, "criterion": "; ".join(c.describe() for c in v.target.criteria),
             "result": v.text, "met": v.met} for v in evaluate(res)]


def _target_records():
    from edge_omd_bench.targets import TARGETS       # targets.py imports this module's formatters
    return TARGETS


# ------------------------------------------------------------------ report ----------------
#: results.json layout: 2 = contenders keyed by id with a "label" (1, unmarked: keyed by label)
RESULTS_FORMAT = 2


def check_format(res: dict) -> None:
    """Refuse a results dict this renderer cannot read (a results.json written before contender
    ids), with a clear message instead of a KeyError halfway through the report."""
    if res.get("results_format") != RESULTS_FORMAT:
        raise ValueError(f"results.json has format {res.get('results_format', 1)}, this bench reads format "
                         f"{RESULTS_FORMAT} (contenders keyed by id); re-run `edge-omd bench` to rewrite it")


def write_report(res: dict, out_dir: str) -> str:
    check_format(res)
    plt = _plt()
    os.makedirs(out_dir, exist_ok=True)
    COLORS.clear()
    for w in ("synthetic", "real"):
        for blk in (res.get(w) or {}).get("configs", []) + (res.get(w) or {}).get("datasets", []):
            for r in blk["contenders"].values():
                _color(r["label"])
    cfg, mi = res.get("config", {}), res.get("machine", {})
    L = [f"# edge-omd benchmark ({cfg.get('preset', '?')} run)", ""]
    L.append(f"Run {mi.get('date_utc', '?')}, seed {cfg.get('seed')}, commit {mi.get('git_commit', '?')} "
             f"(working tree; edge_omd sources sha256 {mi.get('edge_omd_source_sha256', '?')}), total {sum(res.get('timings_s', {}).values()) / 60:.1f} min "
             f"({', '.join(f'{k} {v:.0f}s' for k, v in res.get('timings_s', {}).items())}).")
    for rr in res.get("resumed", []):
        L.append(f"Re-run on {rr['machine'].get('date_utc', '?')} (`--resume`, same code path and seeds; edge_omd "
                 f"sources sha256 {rr['machine'].get('edge_omd_source_sha256', '?')}): "
                 f"{', '.join(rr['workloads'])}; the other workloads are from the run above.")
    if cfg.get("preset") != "full":
        L.append(f"\n**This is a `{cfg.get('preset')}` run: shorter streams and fewer repeats than the full "
                 "benchmark (`edge-omd bench`); read it as indicative.**")
    L += ["", "## Machine", "",
          f"- CPU: {mi.get('cpu_model', '?')}; {mi.get('cores_usable', mi.get('cpu_count'))} usable cores "
          f"(os.cpu_count {mi.get('cpu_count')}); memory {mi.get('mem_total_gib', '?')} GiB; shared with other jobs",
          f"- {mi.get('platform', '')}, Python {mi.get('python', '')}",
          "- " + ", ".join(f"{k} {v}" for k, v in mi.get("versions", {}).items()),
          f"- BLAS threads: {mi.get('blas_threads', '?')}; every contender runs single-threaded"]
    if mi.get("loadavg_start"):
        L.append(f"- load average (1/5/15 min) at start {' / '.join(f'{x:.1f}' for x in mi['loadavg_start'])}"
                 + (f", at end {' / '.join(f'{x:.1f}' for x in mi['loadavg_end'])}" if mi.get("loadavg_end") else "")
                 + f" on {mi.get('cores_usable', mi.get('cpu_count'))} cores: above the core count, timings "
                 "include waiting for a core and are pessimistic for everyone")

    # targets
    L += ["", "## Targets of the issue", ""]
    tg = targets(res)
    L.append(_table(["id", "target", "measured", "verdict"],
                    [[t["id"], t["target"], t["result"], {True: "**met**", False: "**MISSED**", None: "n/a"}[t["met"]]]
                     for t in tg]))
    L += ["", "How each verdict is computed (bench/targets.py; contenders by id, worst point over the scope): "
          + "; ".join(f"{t.id}: " + " and ".join(c.describe() for c in t.criteria) for t in _target_records())
          + ". A tie at the threshold counts for the comparison as written."]

    # contenders
    L += ["", "## Contenders and tuning", "",
          "Every contender gets the same tuning budget: 4 settings (its grid below), each run once on a "
          "validation stream (synthetic: a separate seed; real text: a validation part of the train split) "
          "and scored by mean validation accuracy over the checkpoints; the best setting is then run on the "
          "test streams. The test pairs are never used for tuning. Classifier peers learn from the same "
          "stream as edge-omd: each comparison is shown as (z = φ_c − φ_r, y = 1) or (−z, y = 0) by a "
          "seeded coin; all linear models run without an intercept; accuracy is the fraction of held-out "
          "pairs ordered correctly (θᵀz > 0). Conversion to a library's native input (River dicts, VW text "
          "lines) happens outside the timed region.", ""]
    lineup = {}
    ranks: dict = {}          # the sketch's rank (a number in results.json) at each d
    for blk in (res.get("synthetic") or {}).get("configs", []) + (res.get("real") or {}).get("datasets", []):
        for cid, r in blk["contenders"].items():
            lineup.setdefault(cid, r)
            if r.get("rank") is not None:
                ranks.setdefault(cid, {})[blk["d"]] = r["rank"]
    for cid, by_d in ranks.items():
        lineup[cid] = {**lineup[cid], "note": lineup[cid]["note"] + ", rank " +
                       ", ".join(f"{k} at d={d}" for d, k in sorted(by_d.items()))}
    if lineup:
        rows = [[r["label"], r["family"], r.get("note", ""),
                 " / ".join(", ".join(f"{k}={v:g}" for k, v in t["params"].items()) for t in r["trials"])]
                for r in lineup.values()]
        L.append(_table(["contender", "family", "what", "tuning grid (4 settings)"], rows))
    sk = {}
    for w in ("synthetic", "real", "personal", "cost", "scale"):
        sk.update(res.get(w, {}).get("skipped", {}) or {})
    if sk:
        L += ["", "Not run: " + "; ".join(f"{v['label']} ({v['reason']})" for v in sk.values())]

    # 1 synthetic
    syn = res.get("synthetic")
    if syn and syn.get("configs"):
        L += ["", "## 1. Synthetic Bradley-Terry with known θ*", "",
              "φ ~ N(0, Σ), Σ with a 1/i spectrum (trace 1) in a random rotation; θ* along the high-variance "
              "directions, ‖θ*‖ = B; z = φ_a − φ_b, y ~ Bernoulli(σ(θ*ᵀz)). Accuracy = agreement with the "
              "true preference sign(θ*ᵀz) on 'held-out pairs; mean over "
              f"{cfg.get('synth_repeats')} test stream(s). Tuned on a separate validation stream "
              f"of T={cfg.get('synth_tune_T')}.", ""]
        L[-2] = L[-2].replace("'held-out", "held-out")
        cfgs = syn["configs"]
        ncol = len(cfgs) // max(1, len(set(c["d"] for c in cfgs)))
        nrow = max(1, len(set(c["d"] for c in cfgs)))
        for key, fname, ylab in (("acc", "synthetic_accuracy.png", "accuracy vs truth (%)"),
                                 ("dist", "synthetic_distance.png", "‖θ − θ*‖")):
            fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 3.6 * nrow), squeeze=False)
            for i, c in enumerate(cfgs):
                _curve_plot(axes[i // ncol][i % ncol], c["checkpoints"], c["contenders"], key,
                            f"d={c['d']}, ‖θ*‖={c['B']:g} (labels agree with truth {100 * c['stats']['bayes_acc']:.1f}%)",
                            ylab, logy=(key == "dist"))
            _legend_right(fig, axes[0][0])
            L.append(f"![{key}]({_save(fig, out_dir, fname)})")
        for c in cfgs:
            cps = c["checkpoints"]
            sel = _pick_cps(cps)
            st = c["stats"]
            L += ["", f"### d = {c['d']}, ‖θ*‖ = {c['B']:g}", "",
                  f"Test pairs: std of θ*ᵀz {st['margin_std']:.2f}, mean σ'(θ*ᵀz) {st['mean_dsigma']:.3f}, "
                  f"90th percentile of 1/σ' {st['kappa_p90']:.3g}; a label agrees with the truth with "
                  f"probability {100 * st['bayes_acc']:.1f} %.", ""]
            rows = []
            for r in c["contenders"].values():
                m, s = _m(r["acc"]), _s(r["acc"])
                rows.append([r["label"]] + [_pct(m[cps.index(t)], s[cps.index(t)]) for t in sel] +
                            [f"{_m(r['dist'])[-1]:.3f}", ", ".join(f"{k}={v:g}" for k, v in r["params"].items())])
            L.append(_table(["contender"] + [f"acc % T={t:,}" for t in sel] + [f"‖θ−θ*‖ T={cps[-1]:,}", "tuned"],
                            rows))

    # 2 real
    real = res.get("real")
    L += ["", "## 2. Real text: HH-RLHF, all-MiniLM-L6-v2 features through FeatureHead", ""]
    if not real or "skipped_all" in real:
        L.append(f"Skipped: {real.get('skipped_all') if real else 'not run'}.")
    else:
        L.append("Each test split is partitioned once (seeded): 70 % train stream, 30 % held-out test; "
                 "tuning uses a 80/20 split of the train part only. Curves: held-out pairwise accuracy vs "
                 f"T, mean ± std over {cfg.get('hh_orders')} random orders of the train stream.")
        ds = real["datasets"]
        fig, axes = plt.subplots(1, len(ds), figsize=(6.5 * len(ds), 4), squeeze=False)
        for i, b in enumerate(ds):
            _curve_plot(axes[0][i], b["checkpoints"], b["contenders"], "acc",
                        f"HH-RLHF {b['name']} (n_train={b['n_train']}, n_test={b['n_test']})", "held-out accuracy (%)")
        _legend_right(fig, axes[0][0])
        L += ["", f"![real]({_save(fig, out_dir, 'real_accuracy.png')})"]
        for b in ds:
            cps = b["checkpoints"]
            sel = _pick_cps(cps)
            rows = []
            for r in b["contenders"].values():
                m, s = _m(r["acc"]), _s(r["acc"])
                rows.append([r["label"]] + [_pct(m[cps.index(t)], s[cps.index(t)]) for t in sel] +
                            [", ".join(f"{k}={v:g}" for k, v in r["params"].items())])
            L += ["", f"### {b['name']} ({b['n']} pairs, d={b['d']})", "",
                  _table(["contender"] + [f"acc % T={t:,}" for t in sel] + ["tuned"], rows)]

    # 3 personal
    per = res.get("personal")
    L += ["", "## 3. Personal taste on real text", ""]
    if not per or "skipped_all" in per:
        L.append(f"Skipped: {per.get('skipped_all') if per else 'not run'}.")
    else:
        cps = per["checkpoints"]
        users = per["users"]
        L.append(f"{len(users)} simulated users. θ_u = s · unit(a·u_pop + (1−a)·u_short), s set so that the "
                 f"margins θ_uᵀz of the train pairs have standard deviation {cfg.get('personal_margin_std')} "
                 f"(‖θ_u‖ = {', '.join(format(u.get('norm', float('nan')), '.0f') for u in users)}); "
                 "u_pop = the regularised MLE on all human labels of the train parts (both splits), u_short = "
                 "minus the ridge direction that predicts log response length from φ (train texts); "
                 f"cos(u_pop, u_short) = {per['cos_pop_short']:.2f}; a per user = "
                 f"{', '.join(format(u['a'], '.2f') for u in users)}. Each user labels pairs of the train part "
                 "(labels drawn from Bradley-Terry with θ_u). "
                 + (f"u_pop orders {100 * per['pop_human_acc']:.1f} % of the held-out human-labelled pairs "
                    "(both splits) correctly" + (": harmless and helpful pull in different directions, so the "
                                                 "population signal is weak. " if per["pop_human_acc"] < 0.55 else ". ")
                    if per.get("pop_human_acc") is not None else "")
                 + f"Accuracy = agreement with the user's true preference on the {per['n_eval']} held-out test pairs "
                 "(label-noise ceiling "
                 f"{', '.join(format(100 * u['bayes_acc'], '.1f') for u in users)} %). Tuned on a separate "
                 "validation user.")
        fig, ax = plt.subplots(figsize=(7, 4.2))
        _curve_plot(ax, cps, per["contenders"], "acc", "per-user adaptation", "accuracy vs the user's preference (%)")
        _legend_right(fig, ax)
        L += ["", f"![personal]({_save(fig, out_dir, 'personal.png')})", ""]
        sel = _pick_cps(cps, (10, 50, 100))
        L.append(_table(["contender"] + [f"acc % T={t}" for t in sel],
                        [[r["label"]] + [_pct(_m(r["acc"])[cps.index(t)], _s(r["acc"])[cps.index(t)]) for t in sel]
                         for r in per["contenders"].values()]))

    # 4 active
    act = res.get("active")
    L += ["", "## 4. Active setting: which pairs to label", ""]
    if not act or "skipped_all" in act:
        L.append(f"Skipped: {act.get('skipped_all') if act else 'not run'}.")
    else:
        L.append("A pool of unlabeled comparisons; each round edge-omd exact picks a batch of "
                 f"{cfg.get('active_batch')} pairs greedily by largest width ‖z‖_(cal_H⁻¹) (the paper's active "
                 "criterion), `fantasize`-ing each pick on a copy so the batch is not redundant, or the same "
                 "number at random; then learns their labels. Hyperparameters = those "
                 "tuned (on validation) for edge-omd exact in workloads 1 / 2. Held-out accuracy vs labels, "
                 f"mean of {cfg.get('active_repeats')} repeats.")
        if act.get("skipped_real"):
            L.append(f"Real-text active setting skipped: {act['skipped_real']}.")
        sts = act["settings"]
        fig, axes = plt.subplots(1, len(sts), figsize=(6 * len(sts), 4), squeeze=False)
        rows = []
        for s in sts:
            s["name"] = s["name"].replace("|theta*|", "‖θ*‖")   # no table-breaking pipes
        for i, s in enumerate(sts):
            ax = axes[0][i]
            for mode, st in (("active", "-"), ("random", "--")):
                ax.plot(s["checkpoints"], 100 * _m(s["curves"][mode]), st, label=mode)
            ax.axhline(100 * s["random_final"], color="gray", lw=0.7)
            ax.set_xscale("log"); ax.set_xlabel("labels"); ax.set_ylabel("held-out accuracy (%)")
            ax.set_title(s["name"], fontsize=9); ax.legend(); ax.grid(alpha=0.3)
            cps = s["checkpoints"]
            for t in _pick_cps(cps, (50, 100, 200, 500)):
                j = cps.index(t)
                rows.append([s["name"], f"{t:,}", _pct(_m(s["curves"]["active"])[j], _s(s["curves"]["active"])[j]),
                             _pct(_m(s["curves"]["random"])[j], _s(s["curves"]["random"])[j])])
        L += ["", f"![active]({_save(fig, out_dir, 'active.png')})", "",
              _table(["setting", "labels", "active acc %", "random acc %"], rows), ""]
        for s in sts:
            rnd = _m(s["curves"]["random"])
            L.append(f"- {s['name']}: random selection goes from {_pct(rnd[0])} % ({s['checkpoints'][0]} labels) to "
                     f"{_pct(s['random_final'])} % with {s['labels']:,} labels; active selection reaches that with " +
                     (f"{s['active_labels_to_reach']:,} labels: **ratio {s['ratio']:.2f}**."
                      if s["ratio"] else f"no fewer than {s['labels']:,} labels (not reached)."))

    # 5 cost
    cst = res.get("cost")
    L += ["", "## 5. Cost vs t", ""]
    if cst:
        L.append(f"d = {cst['d']}, one stream of {cst['T']:,} synthetic labels per one-pass contender, each in "
                 f"its own (forked) process. Time per update = median (and p99) of the {cst['window']} updates "
                 "ending at t, timing only the library's learn call. State bytes: edge-omd's `nbytes`; River: "
                 "8 B per stored weight (×3 for Adam), dict overhead not counted; sklearn: coef_; VW: 2^b weight "
                 "slots × stride × 4 B (+ OjaNewton's m×m side matrices). RSS growth = growth of the process's resident "
                 "memory from the first checkpoint to the last (the harness's per-chunk buffers exist by then).")
        cc = cst["contenders"]
        mle = cst.get("mle")
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
        for r in cc.values():
            n = r["label"]
            ts = [x["t"] for x in r["rows"]]
            a1.plot(ts, [x["median_us"] for x in r["rows"]], STYLE.get(r["family"], "-"), color=_color(n),
                    marker=".", label=n)
            a2.plot(ts, [x["state_bytes"] for x in r["rows"]], STYLE.get(r["family"], "-"), color=_color(n),
                    marker=".", label=n)
        if mle:
            ts = [x["t"] for x in mle["rows"]]
            for key, lab, col in (("every_round_us", "MLE refit (every round)", "black"),
                                  ("every_k_us", f"MLE refit every {mle['k']} (amortised)",
                                   _color(f"MLE refit every {mle['k']}"))):
                a1.plot(ts, [x[key] for x in mle["rows"]], "o-", color=col, label=lab + " (measured)")
                f = mle["fits"][key]
                if f["extrapolated"]:
                    xx = np.array([ts[-1], f["at"]], float)
                    a1.plot(xx, math.exp(f["a"]) * xx ** f["b"], ":", color=col, label=lab + " (extrapolated)")
            a2.plot(ts, [x["state_bytes"] for x in mle["rows"]], "o-", color="black", label="MLE (history)")
        for ax, yl in ((a1, "µs per update"), (a2, "state bytes")):
            ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("t"); ax.set_ylabel(yl); ax.grid(alpha=0.3)
        _legend_right(fig, a1); a1.set_title(f"time per update vs t (d={cst['d']})", fontsize=9)
        a2.set_title("state bytes vs t", fontsize=9)
        L += ["", f"![cost]({_save(fig, out_dir, 'cost_vs_t.png')})", ""]
        tsel = sorted({x["t"] for r in cc.values() for x in r["rows"]})
        tsel = [t for t in tsel if t in (tsel[0], 1000, 10000, tsel[-1])]
        rows = []
        for r in cc.values():
            by = {x["t"]: x for x in r["rows"]}
            last = r["rows"][-1]
            rows.append([r["label"]] + [_us(by[t]["median_us"]) if t in by else "" for t in tsel] +
                        [_us(last["p99_us"]), _bytes(last["state_bytes"]), _bytes(last["rss_delta_bytes"]),
                         f"{r['total_s']:.1f}"])
        L.append(_table(["contender"] + [f"µs/update t={t:,}" for t in tsel] +
                        [f"p99 µs t={tsel[-1]:,}", "state", "RSS growth", f"total s ({cst['T']:,} updates)"], rows))
        if mle:
            L += ["", f"MLE baseline (λ = {mle['lam']:g}), sampled: after a history of t labels is solved, one "
                  "more label + warm-started L-BFGS refit (median of 3 rounds); 'every k' = k more labels + one "
                  "refit, divided by k.", ""]
            L.append(_table(["t", "every round µs/update", f"every {mle['k']} µs/update (amortised)",
                             "L-BFGS iterations / refit", "history bytes", "RSS growth"],
                            [[f"{x['t']:,}", _us(x["every_round_us"]), _us(x["every_k_us"]), f"{x['lbfgs_iters']:.0f}",
                              _bytes(x["state_bytes"]), _bytes(x["rss_delta_bytes"])] for x in mle["rows"]]))
            fr, fk = mle["fits"]["every_round_us"], mle["fits"]["every_k_us"]
            if fr["extrapolated"]:
                at = (f"At t = {fr['at']:,}: {_us(fr['us_at'])} µs per round (**extrapolated** beyond the largest "
                      "measured t)")
            else:
                at = (f"At t = {fr['at']:,}: {_us(mle['rows'][-1]['every_round_us'])} µs per round measured "
                      f"(the fit gives {_us(fr['us_at'])})")
            L += ["", f"Power-law fit of the measured points: every round ≈ t^{fr['b']:.2f}, every {mle['k']} ≈ "
                  f"t^{fk['b']:.2f}. {at}; a whole stream of {fr['at']:,} labels would take ≈ "
                  f"{fr['stream_s']:,.0f} s refitting every round and ≈ {fk['stream_s']:,.0f} s refitting every "
                  f"{mle['k']} (**estimated**: the integral of the fit, not run), against the totals of the "
                  "one-pass contenders in the table above. The MLE's RSS growth also holds the benchmark's own "
                  "copy of the generated stream (as large as the history) and the slack of the history buffer's "
                  "amortised doubling; 'history bytes' is the data it must keep."]

    # 6 scale
    scl = res.get("scale")
    L += ["", "## 6. Scale in d", ""]
    if scl:
        L.append("Median time per update (after 10 warm-up updates) vs d; edge-omd with η = λ = 1, the peers with "
                 "the second setting of their grid (the time per update hardly depends on it). "
                 "Sketch 1/8 = rank from a budget of 1/8 of exact's bytes at that d.")
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for r in scl["contenders"].values():
            ax.plot([x["d"] for x in r["rows"]], [x["median_us"] for x in r["rows"]],
                    STYLE.get(r["family"], "-"), marker="o", color=_color(r["label"]), label=r["label"])
        ax.set_xscale("log", base=2); ax.set_yscale("log"); ax.set_xlabel("d"); ax.set_ylabel("µs per update")
        ax.grid(alpha=0.3)
        _legend_right(fig, ax)
        L += ["", f"![scale]({_save(fig, out_dir, 'scale_d.png')})", ""]
        dims = scl["dims"]
        rows = []
        for r in scl["contenders"].values():
            by = {x["d"]: x for x in r["rows"]}
            rows.append([r["label"]] + [_us(by[d]["median_us"]) if d in by else "" for d in dims] +
                        [_bytes(r["rows"][-1]["state_bytes"])])
        L.append(_table(["contender"] + [f"d={d}" for d in dims] + [f"state at d={dims[-1]}"], rows))
    L += ["", "## Notes and caveats", "",
          "- MLE (every round) in workloads 1-3 is evaluated by solving the regularised MLE on the first T labels "
          "at each checkpoint: the objective is strictly convex, so this is exactly the model a learner that "
          "refits every round holds at T (up to the solver's tolerance); what refitting every round costs is "
          "measured in workload 5. 'MLE refit every k' is shown as the model it serves when the T-th label "
          "arrives: its last refit, on the first k·⌊(T−1)/k⌋ labels (up to k−1 labels stale; θ = 0 before "
          "its first refit, which the tables show as 50 %).",
          "- Vowpal Wabbit is driven through its Python bindings, which take text lines: its timings include "
          "VW's own parsing of a 384-feature line (the line is built outside the timed region). "
          "scikit-learn's `partial_fit` on one example is dominated by its per-call input validation; that "
          "is what a user streaming single examples pays. River works on dicts.",
          "- VW OjaNewton's output changes little with its sketch size on these streams (differences in the "
          "third or fourth digit), so its rows at different m often coincide.",
          "- Accuracy ties between contenders at strong regularisation (λ = 300) are real: they converge to the "
          "same direction.",
          "- The synthetic features have a 1/i spectrum, so ‖θ*‖ = 8 gives margins θ*ᵀz with a standard "
          "deviation of a few units (see each configuration's line): κ is large in the tails (90th percentile "
          "of 1/σ' shown), not for every pair.",
          "- Hyperparameters: 4 settings per contender, chosen on validation data only; where the chosen "
          "setting sits at the edge of its grid, a wider grid might help that contender (the tables list the "
          "chosen setting)."]
    L += ["", "---", "Generated by `edge-omd bench` (bench/cli.py); raw numbers in results.json next to this file.", ""]
    path = os.path.join(out_dir, "REPORT.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(L))
    return path
