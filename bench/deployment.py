"""The paper's deployment setting, reproduced with simulated users over real text.

    python -m edge_omd_bench.deployment                 # all-MiniLM-L6-v2 features, 5 seeds
    python -m edge_omd_bench.deployment --rounds 100    # shorter

Each round a prompt arrives with n candidate responses; a strategy (edge_omd.strategies) picks
the two the user sees; the simulated user picks one by Bradley-Terry on its hidden utility; the
RewardModel (SDK defaults, exact local norm) learns the comparison (Algorithm 1). The paper's
claim (Sec. 6, deployment): best + one from the top 1/q ("best_quantile") and the UCB rule beat
"random", "best_second" and "best_worst" in cumulative reward.

Reward of a round = mean normalised utility of the two responses shown,
(u~(a) + u~(a')) / 2 with u~ = (u - min) / (max - min) over that prompt's candidates, so 1 per
round is the best possible and the cumulative reward over T rounds is at most T (this is the
paper's dueling regret, sum of 2 r* - r(a) - r(a'), turned into a reward). Also reported: the
cumulative normalised utility of the FIRST response shown (the model's pick), and the "final
policy": after the T rounds, the mean normalised utility of the reward model's argmax over
every prompt of the world (how good the model the strategy's data produced is).

Worlds (features phi(x, a) from the FeatureHead, computed once and cached under bench/cache/):
- demo corpus (edge_omd/data/demo_corpus.json): utility = w^T s(a) over the style attributes
  (concise, casual, list, code), w ~ N(0, I) drawn per seed: a hidden taste the linear reward
  can only approximate through the embedding;
- HH-RLHF (../shared/data/hh-rlhf, test splits, read in place): groups of one conversation's
  last human turn with n final assistant responses (its chosen, its rejected and n - 2 from
  other conversations); utility = theta*^T phi with theta* a random direction of the top-32
  principal subspace of the candidates' features, drawn per seed (the paper's realisable
  linear Bradley-Terry model), scaled to unit standard deviation within groups.
Common random numbers: for one seed, every strategy sees the same prompts and the same
uniform draws for the user's answers. Nothing is asserted; the table is printed and saved.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import time

import numpy as np

from edge_omd.reward_model import RewardModel
from edge_omd.strategies import DEFAULT_BETA, DEFAULT_Q, STRATEGIES, choose_pair

HERE = os.path.dirname(os.path.abspath(__file__))
HH_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "hh-rlhf"))
HH_FILES = ("helpful-base-test.jsonl.gz", "harmless-base-test.jsonl.gz")
ORDER = ("ucb", "best_quantile", "random", "best_second", "best_worst")
assert set(ORDER) == set(STRATEGIES)


# ----------------------------------------------------------------------------- worlds
def _last_turns(transcript: str):
    """(last human turn, final assistant response) of an HH-RLHF transcript, or None."""
    k = transcript.rfind("\n\nAssistant:")
    if k < 0:
        return None
    response = transcript[k + len("\n\nAssistant:"):].strip()
    h = transcript.rfind("\n\nHuman:", 0, k)
    prompt = transcript[h + len("\n\nHuman:"):k].strip() if h >= 0 else ""
    return (prompt, response) if prompt and response else None


def hh_groups(hh_dir: str, n_groups: int, n_cands: int, seed: int = 0):
    """[(prompt, [responses]) ...] from HH-RLHF test files; None if the data is absent."""
    paths = [os.path.join(hh_dir, f) for f in HH_FILES]
    if not all(os.path.isfile(p) for p in paths):
        return None
    convs = []
    for p in paths:
        with gzip.open(p, "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                c, r = _last_turns(row["chosen"]), _last_turns(row["rejected"])
                if c and r and c[1] != r[1] and len(c[1]) < 1200 and len(r[1]) < 1200:
                    convs.append((c[0], c[1], r[1]))
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(convs), size=min(n_groups, len(convs)), replace=False)
    pool = [x for c in convs for x in (c[1], c[2])]
    groups = []
    for g in pick:
        prompt, chosen, rejected = convs[g]
        others = set()
        while len(others) < n_cands - 2:
            cand = pool[int(rng.integers(len(pool)))]
            if cand not in (chosen, rejected):
                others.add(cand)
        groups.append((prompt, [chosen, rejected] + sorted(others)))
    return groups


def embed_groups(head, groups, cache_dir: str, tag: str, log=print):
    """Features of every (prompt, response) of every group, cached on disk by content hash."""
    items = [(p, r) for p, rs in groups for r in rs]
    h = hashlib.sha256(head.fingerprint)
    for p, r in items:
        h.update(p.encode() + b"\0" + r.encode() + b"\1")
    path = os.path.join(cache_dir, f"deployment_{tag}_{h.hexdigest()[:16]}.npy")
    if os.path.isfile(path):
        Phi = np.load(path)
    else:
        t0 = time.perf_counter()
        chunks = []
        for s in range(0, len(items), 64):
            chunks.append(np.asarray(head.features_batch(items[s:s + 64]), np.float32))
            done = min(s + 64, len(items))
            if done == len(items) or (s // 64) % 20 == 19:  # a line every 1,280 texts, no \r
                print(f"[deployment] embedding {tag}: {done}/{len(items)}", file=sys.stderr,
                      flush=True)
        Phi = np.concatenate(chunks)
        os.makedirs(cache_dir, exist_ok=True)
        np.save(path, Phi)
        log(f"[deployment] embedded {len(items)} texts ({tag}) in {time.perf_counter() - t0:.1f}s")
    out, k = [], 0
    for _, rs in groups:
        out.append(Phi[k:k + len(rs)])
        k += len(rs)
    return out


# ----------------------------------------------------------------------------- the loop
def run_world(phis, utility_for_seed, *, seeds, rounds, beta=DEFAULT_BETA, q=DEFAULT_Q,
              temperature=0.25, model_options=None, log=print, name=""):
    """{strategy: {"pair": [cum per seed], "first": [...]}} of one world."""
    res = {s: {"pair": [], "first": [], "final": []} for s in ORDER}
    for seed in range(seeds):
        utils = utility_for_seed(seed)            # list of (n,) utilities, one per group
        norm = [(u - u.min()) / max(u.max() - u.min(), 1e-12) for u in utils]
        rng = np.random.default_rng(10_000 + seed)
        prompts = rng.integers(len(phis), size=rounds)
        coins = rng.random(rounds)
        for strat in ORDER:
            model = RewardModel(phis[0].shape[1], **(model_options or {}))
            srng = np.random.default_rng(20_000 + seed)
            pair = first = 0.0
            for t in range(rounds):
                g = int(prompts[t])
                phi, u, un = phis[g], utils[g], norm[g]
                r = model.reward(phi)
                a, b = choose_pair(r, lambda i: model.width(phi, phi[i]), strategy=strat,
                                   beta=beta, q=q, rng=srng)
                pair += 0.5 * (un[a] + un[b])
                first += un[a]
                p_a = 1.0 / (1.0 + np.exp(-(u[a] - u[b]) / temperature))
                win, lose = (a, b) if coins[t] < p_a else (b, a)
                model.learn_pair(phi[win], phi[lose])
            res[strat]["pair"].append(pair)
            res[strat]["first"].append(first)
            # the learned reward model as a policy: normalised utility of its argmax, per prompt
            res[strat]["final"].append(float(np.mean(
                [un[int(np.argmax(model.reward(phi)))] for phi, un in zip(phis, norm)])))
        log(f"[deployment] {name}: seed {seed} done")
    return res


def table(res, rounds: int, title: str) -> str:
    lines = [f"### {title}", "",
             f"| strategy | cum. reward of the pair shown (max {rounds}) | cum. reward of the first "
             f"(model's pick) | final policy (max 1) | per seed (pair) |", "|---|---|---|---|---|"]
    for s in ORDER:
        p, f, z = (np.array(res[s][k]) for k in ("pair", "first", "final"))
        lines.append(f"| {s} | {p.mean():.1f} ± {p.std():.1f} | {f.mean():.1f} ± {f.std():.1f} | "
                     f"{z.mean():.3f} ± {z.std():.3f} | {', '.join(f'{x:.1f}' for x in p)} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def demo_world(head, cache_dir, log):
    from edge_omd.apps.demo_sim import load_corpus
    corpus = load_corpus()
    groups = [(it.prompt, list(it.responses)) for it in corpus.items]
    phis = embed_groups(head, groups, cache_dir, "demo_corpus", log)

    def utility_for_seed(seed):
        w = np.random.default_rng(seed).normal(size=len(corpus.attributes))
        return [it.styles @ w for it in corpus.items]
    return phis, utility_for_seed


def hh_world(head, cache_dir, log, n_groups, n_cands, hh_dir):
    groups = hh_groups(hh_dir, n_groups, n_cands)
    if groups is None:
        return None
    phis = embed_groups(head, groups, cache_dir, f"hh_{n_groups}x{n_cands}", log)
    X = np.concatenate([p - p.mean(0) for p in phis]).astype(np.float64)
    _, _, Vt = np.linalg.svd(X, full_matrices=False)
    basis = Vt[:32]

    def utility_for_seed(seed):
        theta = np.random.default_rng(seed).normal(size=basis.shape[0]) @ basis
        utils = [p.astype(np.float64) @ theta for p in phis]
        scale = np.sqrt(np.mean([np.var(u) for u in utils]))
        return [u / scale for u in utils]
    return phis, utility_for_seed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_omd_bench.deployment",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--hh-groups", type=int, default=100)
    ap.add_argument("--hh-candidates", type=int, default=12)
    ap.add_argument("--hh-dir", default=HH_DIR)
    ap.add_argument("--q", type=float, default=DEFAULT_Q,
                    help="best_quantile shows the ceil(n/q)-th best (the official code: 4th of 64)")
    ap.add_argument("--beta", type=float, default=DEFAULT_BETA, help="confidence radius of ucb")
    ap.add_argument("--head", default=None, help="feature-head folder (default: the demo's "
                    "cached all-MiniLM-L6-v2 export)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "deployment.md"))
    ap.add_argument("--cache", default=os.path.join(HERE, "cache"))
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from edge_omd.apps.demo import ensure_demo_head
    head = ensure_demo_head(args.head)
    log = print
    log(f"[deployment] features: {head!r}; {args.seeds} seeds x {args.rounds} rounds; "
        f"beta {args.beta:g}, q {args.q:g}, Bradley-Terry temperature 0.25")
    t0 = time.perf_counter()
    sections = [f"# Deployment setting: cumulative reward by strategy\n\nfeatures: "
                f"{head.manifest.get('architecture')} d={head.dim} "
                f"({head.fingerprint.hex()[:16]}...), {args.seeds} seeds, {args.rounds} rounds, "
                f"RewardModel defaults, beta {args.beta:g}, q {args.q:g}, user temperature 0.25\n"]
    phis, util = demo_world(head, args.cache, log)
    kw = dict(seeds=args.seeds, rounds=args.rounds, beta=args.beta, q=args.q, log=log)
    res = run_world(phis, util, name="demo corpus", **kw)
    sections.append(table(res, args.rounds, f"Demo corpus ({len(phis)} prompts, 8-12 candidates; "
                          "hidden style taste w ~ N(0, I) per seed)"))
    print("\n" + sections[-1] + "\n")
    world = hh_world(head, args.cache, log, args.hh_groups, args.hh_candidates, args.hh_dir)
    if world is None:
        msg = f"HH-RLHF skipped: {args.hh_dir} has no {' / '.join(HH_FILES)}"
        log(f"[deployment] {msg}")
        sections.append(f"### HH-RLHF\n\n{msg}")
    else:
        phis, util = world
        res = run_world(phis, util, name="HH-RLHF", **kw)
        sections.append(table(res, args.rounds, f"HH-RLHF ({len(phis)} prompts x "
                              f"{args.hh_candidates} responses; hidden linear taste in the "
                              "top-32 principal subspace per seed)"))
        print("\n" + sections[-1] + "\n")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n\n".join(sections) + "\n")
    log(f"[deployment] done in {time.perf_counter() - t0:.0f}s; table saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
