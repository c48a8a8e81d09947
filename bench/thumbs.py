"""Thumbs relative to what was shown (issue 11 item 4), on the demo corpus with the real
all-MiniLM-L6-v2 head: does a thumbs-up on a long answer move long answers above short ones
(and a thumbs-up on a short answer the reverse), with `feedback(..., shown=...)` and without?

    python -m edge_omd_bench.thumbs              # every prompt of the corpus as a trial
    python -m edge_omd_bench.thumbs --trials 10  # fewer

Per trial (a fresh user each): one corpus prompt, its long answer L (concise=0 and no other
style) and its short answer S (concise=1, no other style); 5 thumbs-up on L (or on S). Printed,
over the OTHER prompts of the corpus (held out), the fraction where r(L') > r(S') for their
long / short pair, its mean margin r(L') - r(S'), and on the trial's own prompt r(L), r(S):
    plain   feedback(prompt, L, True)                       z = phi(L), against reward 0
    shown   feedback(prompt, L, True, shown=[the others])   z = phi(L) - mean phi(shown)
Rewards are 0 before any feedback (theta = 0). Nothing is asserted.
"""
import argparse
import tempfile

import numpy as np

from edge_omd.personalizer import Personalizer
from edge_omd.store import SQLiteStore


def _pair(item):
    """(index of the long plain answer, index of the short plain answer) of a corpus item."""
    st = item.styles  # columns: concise, casual, list, code
    rest = st[:, 1:].sum(axis=1) == 0
    long_ = [i for i in range(len(st)) if rest[i] and st[i, 0] == 0]
    short = [i for i in range(len(st)) if rest[i] and st[i, 0] == 1]
    return long_[0], short[0]


def run(trials=None, thumbs=5, log=print):
    from edge_omd.apps.demo import ensure_demo_head
    from edge_omd.apps.demo_sim import FeatureCache, load_corpus
    corpus = load_corpus()
    head = FeatureCache(ensure_demo_head(log=lambda *_: None))
    items = list(corpus.items)
    head.warm([(it.prompt, r) for it in items for r in it.responses])
    pairs = [_pair(it) for it in items]
    phis = [head.features(it.prompt, list(it.responses)).astype(np.float64) for it in items]
    n = len(items) if trials is None else min(trials, len(items))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(f"{tmp}/thumbs.sqlite")
        for target in ("long", "short"):
            for mode in ("plain", "shown"):
                above, margin, own = [], [], []
                for t in range(n):
                    it, (li, si) = items[t], pairs[t]
                    ans = li if target == "long" else si
                    p = Personalizer(head, store, f"u-{target}-{mode}-{t}",
                                     model_options={"solver": "exact"})
                    others = [r for j, r in enumerate(it.responses) if j != ans]
                    for _ in range(thumbs):
                        p.feedback(it.prompt, it.responses[ans], True,
                                   shown=others if mode == "shown" else None)
                    theta = p.model.theta
                    held = [j for j in range(len(items)) if j != t]
                    m = np.array([phis[j][pairs[j][0]] @ theta - phis[j][pairs[j][1]] @ theta
                                  for j in held])  # r(long) - r(short), held-out prompts
                    above.append(np.mean(m > 0))
                    margin.append(np.mean(m))
                    own.append((phis[t][li] @ theta, phis[t][si] @ theta))
                own = np.array(own)
                out[(target, mode)] = dict(long_above=float(np.mean(above)),
                                           se=float(np.std(above) / np.sqrt(n)),
                                           margin=float(np.mean(margin)),
                                           r_long=float(own[:, 0].mean()),
                                           r_short=float(own[:, 1].mean()))
                r = out[(target, mode)]
                log(f"{thumbs} thumbs-up on the {target:5s} answer, {mode:5s}: held-out prompts "
                    f"with r(long) > r(short) {r['long_above']:.3f} +- {r['se']:.3f}, mean "
                    f"r(long) - r(short) {r['margin']:+.3f}; own prompt r(long) {r['r_long']:+.2f}"
                    f", r(short) {r['r_short']:+.2f}  ({n} trials)")
        store.close()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--thumbs", type=int, default=5)
    args = ap.parse_args(argv)
    print("# thumbs relative to what was shown: demo corpus, all-MiniLM-L6-v2, exact solver")
    run(args.trials, args.thumbs)


if __name__ == "__main__":
    main()
