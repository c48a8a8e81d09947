"""Issue 20's three-users example: a new developer's first test of the SDK, as a benchmark.

    python -m edge_omd_bench.three_users [--seeds 20] [--combos today,e+style*0.25,...,demo]

Three users of one SQLiteStore: one likes short answers, one answers with code, one bullet
lists. bench/data/three_users.json (written for this benchmark): 16 prompts x 4 answers (short,
with code, bullet list, prose). 8 prompts are held out (a seeded choice); on the other 8 each
user gives 30 feedbacks through the Personalizer, alternating 15 `prefer` after `choose_pair`
(the user prefers the answer of their kind when it is one of the two, otherwise either by a
seeded coin) and 15 thumbs after `rank` (`feedback` on the top answer: up if it is of their
kind; the Personalizer remembers the ranked candidates, so the thumb is relative to them),
each on a seeded random train prompt. Then top-1 on the held-out prompts: is `rank`'s first
answer of the user's kind (chance 0.25). Also after 60 feedbacks.

Heads: today's default head (the demo's MiniLM head) and, for each combination of views
(bench/views.py `Combo` ids: e+style*F+wDnNT*S), the same head with the views appended by an
`ArrayHead` wrapper (the style block standardised on the demo corpus' responses, as the
exporter does by default; the wording view of edge_omd/head/wording.py); "demo": the demo's
head as exported (`ensure_demo_head`: MiniLM with the default views). Seeds shuffle each
prompt's answer order, the held-out prompts, the prompts asked and the coin; the mean over
seeds with a 95% bootstrap interval over seeds, and seed 0 alone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Sequence

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "three_users.json")
USERS = ("short", "code", "bullets")
N_FEEDBACK = 30
CHECKS = (30, 60)


def load() -> tuple[list[str], list[dict]]:
    with open(DATA, encoding="utf-8") as f:
        d = json.load(f)
    return d["kinds"], d["prompts"]


def views_head(base, combo):
    """`base` with the views of `combo` appended (an ArrayHead computing edge_omd/head/views.py's
    HeadViews, the style block standardised on the demo corpus' responses as the exporter does
    by default; today's head unchanged)."""
    if not (combo.f or combo.D):
        return base
    from edge_omd.head.protocol import ArrayHead
    from edge_omd.head.views import HeadViews
    views = HeadViews.from_options(
        style=True if combo.f else None, style_weight=combo.f or None,
        wording=None if not combo.D else {"bits": int(combo.D).bit_length() - 1, "ngrams": combo.n,
                                          "transform": combo.t, "scale": combo.s})

    def fn(prompt, responses):
        return views.append(base.features(prompt, responses), list(responses))
    return ArrayHead(int(base.dim) + views.dim, f"{bytes(base.fingerprint).hex()}/views:{combo.id}",
                     fn, normalize=False)


def run_seed(head, kinds: Sequence[str], prompts: list, seed: int, folder: str) -> dict:
    """{user: [top-1 after each of CHECKS feedbacks]} for one seed."""
    from edge_omd import Personalizer
    from edge_omd.store import SQLiteStore
    rng = np.random.default_rng([seed, 2020])
    items = []
    for p in prompts:
        order = rng.permutation(len(kinds))
        items.append((p["prompt"], [p["answers"][j] for j in order], [kinds[j] for j in order]))
    perm = rng.permutation(len(items))
    test, train = perm[:8], perm[8:]
    store = SQLiteStore(os.path.join(folder, f"users-{seed}.sqlite"))
    out = {}
    for ui, liked in enumerate(USERS):
        p = Personalizer(head, store, f"user-{liked}", seed=seed)
        urng = np.random.default_rng([seed, 2021, ui])
        scores, t = [], 0
        for target in CHECKS:
            while t < target:
                prompt, answers, ks = items[int(train[urng.integers(len(train))])]
                if t % 2 == 0:
                    a, b = p.pair_to_show(prompt, answers)
                    if ks[b] == liked or (ks[a] != liked and urng.random() < 0.5):
                        a, b = b, a
                    p.prefer(prompt, answers[a], answers[b])
                else:
                    top = p.rank(prompt, answers)[0]
                    p.thumb(prompt, top.response, ks[top.index] == liked)
                t += 1
            hits = [items[i][2][p.rank(items[i][0], items[i][1])[0].index] == liked for i in test]
            scores.append(float(np.mean(hits)))
        out[liked] = scores
        p.close()
    store.close()
    return out


def main(argv=None) -> int:
    from edge_omd_bench.views import Combo, _load
    from edge_omd_bench import peruser as P
    ap = argparse.ArgumentParser(prog="python -m edge_omd_bench.three_users", description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--combos", help="comma list of bench/views.py combination ids or 'demo' (the "
                    "demo's exported head; default: today, the style block at 0.25, the decision of "
                    "bench/results/views-grid.json, demo)")
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    kinds, prompts = load()
    if a.combos:
        ids = a.combos.split(",")
    else:
        from edge_omd_bench.views import RESULTS
        dec = (_load(os.path.join(RESULTS, "views-grid.json")).get("decision") or {}).get("chosen")
        ids = list(dict.fromkeys(["today", "e+style*0.25"] + ([dec] if dec else []) + ["demo"]))
    base = P.open_head()
    print(f"{len(prompts)} prompts x {len(kinds)} answers ({', '.join(kinds)}); users like "
          f"{', '.join(USERS)}; {N_FEEDBACK} feedbacks (15 prefer after choose_pair, 15 thumbs after "
          f"rank), 8 prompts held out; {a.seeds} seeds; chance 0.25")
    idx = np.random.default_rng(7).integers(0, a.seeds, (2000, a.seeds))
    for cid in ids:
        if cid == "demo":
            from edge_omd.apps.demo import ensure_demo_head
            head = ensure_demo_head(log=lambda m: print(m, file=sys.stderr))
        else:
            head = views_head(base, Combo.parse(cid))
        t0 = time.perf_counter()
        res = {u: [] for u in USERS}
        with tempfile.TemporaryDirectory() as tmp:
            for s in range(a.seeds):
                for u, v in run_seed(head, kinds, prompts, s, tmp).items():
                    res[u].append(v)
        print(f"\n{cid} (d={head.dim}; {time.perf_counter() - t0:.0f} s)")
        for u in USERS:
            M = np.asarray(res[u])
            cells = []
            for j, k in enumerate(CHECKS):
                means = M[idx, j].mean(axis=1)
                cells.append(f"after {k}: {M[:, j].mean():.2f} [{np.quantile(means, 0.025):.2f}, "
                             f"{np.quantile(means, 0.975):.2f}] (seed 0: {M[0, j]:.2f})")
            print(f"  likes {u:<8} " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
