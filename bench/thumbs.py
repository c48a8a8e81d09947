"""What a thumb is read against (issue 11 item 4): `feedback(prompt, response, up)` with and
without `shown`, and the references a state could keep instead of reward 0.

    python -m edge_omd_bench.thumbs                       # demo corpus, every prompt a trial
    python -m edge_omd_bench.thumbs --trials 10           # fewer
    python -m edge_omd_bench.thumbs --peruser             # + the per-user benchmark's thumbs stream
    python -m edge_omd_bench.thumbs --peruser --users 10  # fewer users there
    python -m edge_omd_bench.thumbs --trials 1 --peruser --features 'minilm+style*0.25'

Part 1, demo corpus, real all-MiniLM-L6-v2 head, exact solver. Per trial (a fresh user each):
one corpus prompt, its long answer L (concise=0 and no other style) and its short answer S
(concise=1, no other style); 5 thumbs-up on L (or on S). Printed, over the OTHER prompts of the
corpus (held out), the fraction where r(L') > r(S') for their long / short pair, its mean margin
r(L') - r(S'), and on the trial's own prompt r(L), r(S). Rewards are 0 before any feedback.
Through the Personalizer (what the SDK does):
    plain    feedback(prompt, L, True), nothing offered before: z = phi(L), against reward 0
    ranked   rank(prompt, answers), then feedback(prompt, L, True) WITHOUT shown: the ranked
             candidates are the reference, z = phi(L) - mean phi(the other candidates)
    shown    feedback(prompt, L, True, shown=[the others])   the same, given explicitly
and, on a RewardModel directly, references a state could keep (tried, not shipped):
    running_mean  z = phi - m, m the running mean of the answers thumbed so far (z learned
             converted to the state's dtype; the first thumb z = phi)
    bias     a learned per-user bias: a (d + 1) model, z = (phi, 1) for a thumb, (phi_a - phi_b, 0)
             for a pair, rewards on (phi, 0)
    pop_mean z = phi - the mean feature of the other prompts' answers (what a population prior's
             mean response feature would give)

Part 2 (`--peruser`): bench/peruser.py's thumbs stream (the top answer of the learner's ranking on
a train prompt gets a thumb up / down from a simulated user; edge-omd's defaults; rank by reward),
with each reference as the learner's thumb (it also drives the stream): top-1 on unseen prompts
after k thumbs, both user populations, and the paired difference against plain (reward 0) with
its 95% bootstrap interval over users:
    plain, running_mean, ema (m += 0.1 (z - m) after the first), pop_mean (mean of every train
    answer), bias (as above), offered (the other candidates of the prompt the learner ranked:
    what feedback() without shown now does after rank()).
Nothing is asserted.
"""
import argparse
import tempfile
from dataclasses import replace

import numpy as np

from edge_omd.personalizer import Personalizer
from edge_omd.reward_model import RewardModel
from edge_omd.store import SQLiteStore

THUMBS_MODES = ("plain", "ranked", "shown")
STATE_REFERENCES = ("running_mean", "bias", "pop_mean")
PERUSER_REFERENCES = ("plain", "running_mean", "ema", "pop_mean", "bias", "offered")
EMA_RATE = 0.1


def _pair(item):
    """(index of the long plain answer, index of the short plain answer) of a corpus item."""
    st = item.styles  # columns: concise, casual, list, code
    rest = st[:, 1:].sum(axis=1) == 0
    long_ = [i for i in range(len(st)) if rest[i] and st[i, 0] == 0]
    short = [i for i in range(len(st)) if rest[i] and st[i, 0] == 1]
    return long_[0], short[0]


# ------------------------------------------------------------------ references kept in a state
class ThumbReference:
    """A thumb read against a reference kept next to the model: `z(phi)` is the observation
    (float64), `learned(z)` is told the z the model learned (in its dtype)."""

    def __init__(self, kind, d, pop_mean=None):
        if kind not in ("plain", "running_mean", "ema", "pop_mean"):
            raise ValueError(kind)
        self.kind, self.m, self.n = kind, np.zeros(d), 0
        self.pop_mean = None if pop_mean is None else np.asarray(pop_mean, np.float64)

    def z(self, phi):
        phi = np.asarray(phi, np.float64)
        if self.kind == "pop_mean":
            return phi - self.pop_mean
        return phi - self.m if self.kind in ("running_mean", "ema") else phi

    def learned(self, z):
        z = np.asarray(z, np.float64)
        if self.kind == "ema" and self.n > 0:
            self.m += EMA_RATE * z          # m += rate (phi - m)
        else:
            self.m += z / (self.n + 1)      # the running mean of phi (the first: m = phi)
        self.n += 1


class BiasModel:
    """edge-omd with a learned per-user bias that only thumbs see: a (d + 1) RewardModel whose
    last coordinate is 1 in a thumb, 0 in a pair and in every scored row."""

    def __init__(self, d, **kw):
        self.inner = RewardModel(d + 1, **kw)

    @staticmethod
    def pad(P, last=0.0):
        P = np.asarray(P, np.float64)
        return np.concatenate([P, np.full(P.shape[:-1] + (1,), last)], axis=-1)

    def learn_pair(self, a, b):
        self.inner.learn_pair(self.pad(a), self.pad(b))

    def learn_thumb(self, phi, up):
        self.inner.learn_one(self.pad(phi, 1.0), 1.0 if up else 0.0)

    def reward(self, P):
        return self.inner.reward(self.pad(P))

    def width(self, P, ref=None):
        return self.inner.width(self.pad(P), None if ref is None else self.pad(ref))

    @property
    def theta(self):
        return self.inner.theta[:-1]


# ------------------------------------------------------------------ part 1: the demo corpus
def _state_trial(mode, phi_ans, pop_mean, thumbs):
    """theta (d,) after `thumbs` thumbs-up on phi_ans with a reference kept next to the model."""
    d = phi_ans.shape[0]
    if mode == "bias":
        m = BiasModel(d, solver="exact")
        for _ in range(thumbs):
            m.learn_thumb(phi_ans, True)
        return m.theta
    model, ref = RewardModel(d, solver="exact"), ThumbReference(mode, d, pop_mean)
    for _ in range(thumbs):
        z = ref.z(phi_ans)
        model.learn_one(z, 1.0)
        ref.learned(np.asarray(z, model.dtype))   # z as the model used it
    return model.theta


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
            for mode in THUMBS_MODES + STATE_REFERENCES:
                above, margin, own = [], [], []
                for t in range(n):
                    it, (li, si) = items[t], pairs[t]
                    ans = li if target == "long" else si
                    if mode in STATE_REFERENCES:
                        pop = np.concatenate([phis[j] for j in range(len(items)) if j != t])
                        theta = _state_trial(mode, phis[t][ans], pop.mean(axis=0), thumbs)
                    else:
                        p = Personalizer(head, store, f"u-{target}-{mode}-{t}",
                                         model_options={"solver": "exact"})
                        others = [r for j, r in enumerate(it.responses) if j != ans]
                        if mode == "ranked":
                            p.rank(it.prompt, list(it.responses))
                        for _ in range(thumbs):
                            p.thumb(it.prompt, it.responses[ans], True,
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
                log(f"{thumbs} thumbs-up on the {target:5s} answer, {mode:12s}: held-out prompts "
                    f"with r(long) > r(short) {r['long_above']:.3f} +- {r['se']:.3f}, mean "
                    f"r(long) - r(short) {r['margin']:+.3f}; own prompt r(long) {r['r_long']:+.2f}"
                    f", r(short) {r['r_short']:+.2f}  ({n} trials)")
        store.close()
    return out


# ------------------------------------------------------------------ part 2: the per-user bench
def _thumb_learner(base, reference, pop_mean, offered):
    """A subclass of bench/peruser.py's OMD learner (`base`) whose thumb uses `reference`."""

    class Learner(base):
        def __init__(self, d, **kw):
            if reference == "bias":
                self.model = BiasModel(d, **kw)
            else:
                super().__init__(d, **kw)
                kind = "plain" if reference == "offered" else reference
                self.ref = ThumbReference(kind, d, pop_mean)

        def thumb(self, phi, up):
            if reference == "bias":
                self.model.learn_thumb(phi, up)
                return
            if reference == "offered":
                z = np.asarray(phi, np.float64) - offered[np.asarray(phi).tobytes()]
            else:
                z = self.ref.z(phi)
            self.model.learn_one(z, 1.0 if up else 0.0)
            self.ref.learned(np.asarray(z, self.model.dtype))   # z as the model used it

    return Learner


def offered_means(world, Phi):
    """{row bytes: mean feature of the other candidates of its prompt} over every answer."""
    out = {}
    for i in range(len(world.items)):
        rows = world.rows(i)
        X = Phi[rows].astype(np.float64)
        for j, r in enumerate(rows):
            out[Phi[r].tobytes()] = np.delete(X, j, axis=0).mean(axis=0)
    return out


def run_peruser(references=PERUSER_REFERENCES, *, cfg=None, world=None, Phi=None, log=print):
    """{reference: per-user benchmark results (bench/peruser.py `run`) of the thumbs stream}."""
    from edge_omd_bench import peruser as pu
    from edge_omd_bench import peruser_world as pw
    if cfg is None:
        cfg = pu.Config.preset_named("full")
    cfg = replace(cfg, strategies=("thumbs",), contenders=(pu.OMD_DEFAULT,), ceiling=False)
    if world is None:
        world = pw.build_world(n_hh=cfg.n_hh, n_demo=cfg.n_demo, n_cands=cfg.n_cands,
                               seed=cfg.seed)
    if Phi is None:
        Phi = pu.feature_matrix(world, cfg.features, style_weight=cfg.style_weight, log=log)
    train = np.concatenate([world.rows(i) for i in world.train])
    pop_mean = Phi[train].astype(np.float64).mean(axis=0)
    offered = offered_means(world, Phi)
    out, keep = {}, pu.OMD
    try:
        for ref in references:
            pu.OMD = _thumb_learner(keep, ref, pop_mean, offered)
            out[ref] = pu.run(cfg, Phi=Phi, world=world, log=lambda m: None)
    finally:
        pu.OMD = keep
    return out


def report_peruser(res, log=print):
    """Top-1 per k of each reference and its paired difference against plain; returns
    {population: {reference: {"top1": [per k], "minus_plain": {k: (mean, lo, hi)}}}}."""
    from edge_omd_bench.peruser import boot_indices, ci
    base = res["plain"]
    cps = base["config"]["checkpoints"]
    summary = {}
    for pop in base["populations"]:
        ref = np.asarray(base["populations"][pop]["strategies"]["thumbs"]["beta"]["0.0"]["top1"])
        idx = boot_indices(ref.shape[0], base["config"]["boot"], base["config"]["seed"])
        log(f"== population {pop!r}, {ref.shape[0]} users: top-1 on unseen prompts after k thumbs "
            f"(k = {', '.join(map(str, cps))}); paired difference - plain [95% CI]")
        summary[pop] = {}
        for name, r in res.items():
            M = np.asarray(r["populations"][pop]["strategies"]["thumbs"]["beta"]["0.0"]["top1"])
            diff = {str(k): ci(M[:, j] - ref[:, j], idx) for j, k in enumerate(cps) if k in (50, 100)}
            diff["mean"] = ci(M.mean(axis=1) - ref.mean(axis=1), idx)
            summary[pop][name] = {"top1": [float(x) for x in M.mean(axis=0)], "minus_plain": diff}
            cells = " ".join(f"{x:.3f}" for x in M.mean(axis=0))
            d = " | ".join(f"{k}: {m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for k, (m, lo, hi) in diff.items())
            log(f"  {name:<13} {cells} | {d}")
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--thumbs", type=int, default=5)
    ap.add_argument("--peruser", action="store_true", help="also the per-user benchmark's thumbs "
                    "stream with each reference")
    ap.add_argument("--users", type=int, default=None, help="users per population (--peruser)")
    ap.add_argument("--features", default="minilm", help="feature spec of the per-user run "
                    "(bench/peruser.py's --features)")
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args(argv)
    print("# what a thumb is read against: demo corpus, all-MiniLM-L6-v2, exact solver")
    run(args.trials, args.thumbs)
    if args.peruser:
        from edge_omd_bench import peruser as pu
        cfg = pu.Config.preset_named("full", workers=args.workers, features=args.features)
        if args.users:
            cfg = replace(cfg, users=args.users)
        print(f"\n# the per-user benchmark's thumbs stream (bench/peruser.py, features "
              f"{cfg.features}, {cfg.users} users a population), by reference")
        report_peruser(run_peruser(cfg=cfg))


if __name__ == "__main__":
    main()
