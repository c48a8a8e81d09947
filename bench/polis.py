"""Real users: does a new user's model predict their later votes? Polis conversations (issue 19).

    python -m edge_omd_bench.polis                      # both splits, seeds 0,1,2, every conversation
    python -m edge_omd_bench.polis --quick              # seed 0, 20 new users a conversation, 200 resamples
    python -m edge_omd_bench.polis --split statements --seeds 0 --json out.json
    python -m edge_omd_bench.polis --contenders sdk_cold,population,my_module:pack

Data (../shared/data/polis, README there; `--data` or $EDGE_OMD_POLIS_DIR; read where it lies):
each conversation's votes.csv, comments.csv and summary.csv. Per (participant, statement) the
LATEST vote is kept (by timestamp, a tie by file order); then pass votes (0) are dropped, so a
participant who changed a vote to pass has no vote there. Every statement with a kept vote
counts, moderated or not (its votes were cast). A participant's kept votes in time order are
thumbs on statements: prompt = the conversation's topic (summary.csv), response = the
statement, up = agree; the features phi(topic, statement) are embedded once per statement.

Protocol, per conversation and seed of the split:
  a participant's held-out window is the last ceil(30 %) of their votes in time order, the
  stream the votes before it. Evaluated votes: the window's votes (split "users"), or its votes
  on held-out statements (split "statements"). A participant can be a new user when they have
  >= MIN_VOTES (10) votes and their evaluated votes hold both classes; a seeded permutation
  puts half of those (NEW_SHARE, rounded) among the new users and the rest in the population,
  with every participant who cannot be a new user.
  split "users": the population's votes are the fit data; population and new users vote on the
    same statements (a model can memorise a statement).
  split "statements": a seeded permutation holds out half of the statements (STATEMENT_HOLDOUT);
    the fit data are the population's votes on the other half only, and a new user is scored
    only on held-out statements, so no evaluated statement was seen in any fit. A new user's
    stream keeps its votes on any statement (it is what the user did; a statement in their
    stream is never one of their evaluated votes: one vote per statement). The agree rate is
    undefined there (no population vote on a scored statement) and left out.
  Each contender (bench/population.py) is fitted once on the population; per new user a fresh
  learner is fed the stream's votes in order; after k of them (k = 0, 5, 10, 20, 30, 40, for the
  users whose stream holds at least k votes, and "all" = the whole stream) it scores the
  evaluated statements: AUC of those scores against the user's votes (agree = positive; a tie
  counts 1/2).

Statistics: a mean over evaluations (a participant who is a new user under several seeds counts
once per seed) with a 95 % percentile interval of a bootstrap that resamples participants (all
their evaluations together) within each conversation; pooled over the conversations (user-
weighted) and per conversation. Differences to the population model use the same resamples
(paired). `--json` writes every per-user AUC.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import sys
import time
import zlib
from dataclasses import asdict, dataclass, replace
from typing import Callable, Optional, Sequence

import numpy as np

from edge_omd_bench import population as popm

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE_DIR = os.path.join(HERE, "cache")
DEFAULT_DIR = os.environ.get(
    "EDGE_OMD_POLIS_DIR", os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "polis")))
MIN_VOTES = 10           # a new user's votes (after the pass drop)
HOLDOUT = 0.3            # the last ceil(30 %) of a new user's votes are held out
NEW_SHARE = 0.5          # share of the participants who can be new users that are
STATEMENT_HOLDOUT = 0.5  # share of statements held out in split "statements"
CHECKPOINTS = (0, 5, 10, 20, 30, 40)
ALL = "all"              # the checkpoint after the whole stream
SPLITS = ("users", "statements")
#: the issue's rule (docs/BENCHMARKS.md): against the population model, pooled over the
#: conversations, at every k of CHECKPOINTS, on both splits
RULE_MARGIN = 0.005

FeatureFn = Callable[[Sequence[tuple[str, str]]], np.ndarray]


# ================================================================ data =======================
@dataclass
class Conversation:
    """One conversation's kept votes, sorted by (participant, time, row of votes.csv)."""
    name: str
    topic: str
    texts: list              # statement texts, by statement index (statements with a kept vote)
    voter: np.ndarray        # (n,) participant index of each vote
    item: np.ndarray         # (n,) statement index
    up: np.ndarray           # (n,) bool: agree
    voter_ids: np.ndarray    # (P,) the participant's voter-id in votes.csv
    comment_ids: np.ndarray  # (S,) the statement's comment-id
    passes: int = 0          # kept votes that were passes (dropped)
    superseded: int = 0      # votes replaced by a later vote of the same participant

    @property
    def n_participants(self) -> int:
        return len(self.voter_ids)

    def streams(self) -> list[np.ndarray]:
        """Per participant, the indices of their votes in time order."""
        starts = np.searchsorted(self.voter, np.arange(self.n_participants + 1))
        return [np.arange(starts[p], starts[p + 1]) for p in range(self.n_participants)]


def _table(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_topic(folder: str) -> str:
    with open(os.path.join(folder, "summary.csv"), newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if len(row) >= 2 and row[0] == "topic":
                return row[1]
    raise ValueError(f"{folder}/summary.csv has no 'topic' row")


def load_conversation(folder: str) -> Conversation:
    """A conversation folder (votes.csv, comments.csv, summary.csv) -> its kept votes."""
    texts = {int(r["comment-id"]): r["comment-body"] for r in _table(os.path.join(folder, "comments.csv"))}
    rows = _table(os.path.join(folder, "votes.csv"))
    if not rows:
        raise ValueError(f"{folder}/votes.csv holds no votes")
    v = np.array([[int(r["timestamp"]), int(r["voter-id"]), int(r["comment-id"]), int(r["vote"])]
                  for r in rows], np.int64)
    if not np.isin(v[:, 3], (-1, 0, 1)).all():
        raise ValueError(f"{folder}/votes.csv: a vote is not -1, 0 or 1")
    row = np.arange(len(v))
    # the latest vote per (voter, comment): sort by voter, comment, time, file row; keep the last
    order = np.lexsort((row, v[:, 0], v[:, 2], v[:, 1]))
    v, row = v[order], row[order]
    last = np.r_[(v[1:, 1] != v[:-1, 1]) | (v[1:, 2] != v[:-1, 2]), True]
    superseded = int((~last).sum())
    v, row = v[last], row[last]
    passes = int((v[:, 3] == 0).sum())
    keep = v[:, 3] != 0
    v, row = v[keep], row[keep]
    missing = sorted(set(v[:, 2].tolist()) - set(texts))
    if missing:
        raise ValueError(f"{folder}: votes on comment-ids {missing[:5]} that comments.csv lacks")
    voter_ids, voter = np.unique(v[:, 1], return_inverse=True)
    comment_ids, item = np.unique(v[:, 2], return_inverse=True)
    order = np.lexsort((row, v[:, 0], voter))
    return Conversation(os.path.basename(os.path.normpath(folder)), read_topic(folder),
                        [texts[int(c)] for c in comment_ids], voter[order].astype(np.int64),
                        item[order].astype(np.int64), v[order, 3] > 0, voter_ids, comment_ids,
                        passes, superseded)


def conversation_dirs(root: str) -> list[str]:
    if not os.path.isdir(root):
        return []
    return sorted(os.path.join(root, d) for d in os.listdir(root)
                  if os.path.isfile(os.path.join(root, d, "votes.csv")))


# ================================================================ features ===================
#: `--head`: the MiniLM embedding alone (the benchmark's head since issue 19, d = 384) or the
#: demo's head since issue 20 (the embedding and its views, `ensure_demo_head()`)
HEADS = {"minilm": "none", "views": "default"}


def minilm_features(head: str = "minilm") -> FeatureFn:
    """The all-MiniLM-L6-v2 head of `HEADS` (bench/peruser.py's `minilm`)."""
    from edge_omd_bench.peruser import minilm
    if head not in HEADS:
        raise SystemExit(f"--head must be one of {', '.join(HEADS)}, got {head!r}")
    if HEADS[head] == "none":
        return minilm("prompt_response")
    from edge_omd.apps.demo import ensure_demo_head
    return minilm("prompt_response", ensure_demo_head(views=HEADS[head],
                                                      log=lambda m: print(m, file=sys.stderr)))


class _Statements:
    """A conversation's (topic, statement) pairs as bench/peruser.py's `embed` caches them."""

    def __init__(self, conv: Conversation):
        self.pairs = [(conv.topic, t) for t in conv.texts]

    def key(self) -> str:
        text = "\0".join(p + "\1" + r for p, r in self.pairs)
        return "polis-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def embed(conv: Conversation, fn: FeatureFn, cache_dir: Optional[str] = CACHE_DIR, log=print) -> np.ndarray:
    """phi(topic, statement) per statement, (S, d) float32; cached in cache_dir when fn has a
    cache_key() (bench/peruser.py's `embed`)."""
    from edge_omd_bench.peruser import embed as cached
    X = np.ascontiguousarray(cached(_Statements(conv), fn, cache_dir=cache_dir, log=log), np.float32)
    if X.shape[0] != len(conv.texts):
        raise ValueError(f"features: {X.shape[0]} rows for {len(conv.texts)} statements")
    return X


# ================================================================ the protocol ===============
def auc(scores, positive) -> float:
    """P(score of a random positive > that of a random negative), a tie counting 1/2
    (Mann-Whitney with mid-ranks). Needs both classes."""
    s = np.asarray(scores, np.float64)
    pos = np.asarray(positive, bool)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("AUC needs both classes")
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    mid = np.cumsum(counts) - (counts - 1) / 2.0          # 1-based mid-rank of each value
    return float((mid[inv][pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def window(n: int) -> int:
    """Votes held out of a stream of n: ceil(HOLDOUT n)."""
    return int(math.ceil(HOLDOUT * n - 1e-9))


@dataclass
class Split:
    kind: str                 # "users" or "statements"
    seed: int
    held: np.ndarray          # (S,) bool: statements a new user is scored on
    new: np.ndarray           # participants evaluated (new users)
    population: np.ndarray    # participants the contenders are fitted on
    few_votes: int            # participants with < MIN_VOTES votes (all in the population)
    one_class: int            # ... with enough votes but one class among the evaluated ones


def user_votes(conv: Conversation, stream: np.ndarray, held: np.ndarray):
    """(stream, evaluated) vote indices of one participant's votes (in time order)."""
    h = window(len(stream))
    win = stream[len(stream) - h:]
    return stream[: len(stream) - h], win[held[conv.item[win]]]


def _rng(conv: Conversation, seed: int, what: int):
    return np.random.default_rng([seed, zlib.crc32(conv.name.encode()), what])


def make_split(conv: Conversation, kind: str, seed: int, streams=None) -> Split:
    """The seeded split of `kind` (module docstring)."""
    if kind not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {kind!r}")
    S = len(conv.texts)
    held = np.ones(S, bool)
    if kind == "statements":
        held[:] = False
        held[_rng(conv, seed, 1).permutation(S)[: int(round(STATEMENT_HOLDOUT * S))]] = True
    streams = conv.streams() if streams is None else streams
    can, few, one = [], 0, 0
    for p, st in enumerate(streams):
        if len(st) < MIN_VOTES:
            few += 1
            continue
        _, ev = user_votes(conv, st, held)
        y = conv.up[ev]
        if y.all() or not y.any():
            one += 1
            continue
        can.append(p)
    perm = _rng(conv, seed, 2).permutation(np.array(can, np.int64))
    n_new = int(round(NEW_SHARE * len(perm)))
    new = np.sort(perm[:n_new])
    population = np.setdiff1d(np.arange(conv.n_participants), new)
    return Split(kind, seed, held, new, population, few, one)


def population_feedback(conv: Conversation, Phi: np.ndarray, split: Split) -> popm.Feedback:
    """The fit data: the population's votes (split "statements": on the other statements only)."""
    keep = np.isin(conv.voter, split.population)
    if split.kind == "statements":
        keep &= ~split.held[conv.item]
    return popm.Feedback.thumbs(Phi, conv.voter[keep], conv.item[keep], conv.up[keep],
                                seed=zlib.crc32(f"{conv.name}/{split.kind}/{split.seed}".encode()),
                                new_items=split.kind == "statements")


def evaluate(conv: Conversation, Phi: np.ndarray, split: Split, contenders, cps=CHECKPOINTS,
             max_new: Optional[int] = None) -> dict:
    """Every contender on every new user of `split`: {"users": [...], "fit": {...}}."""
    streams = conv.streams()
    pop = population_feedback(conv, Phi, split)
    makers, fit = {}, {}
    for c in contenders:
        t = time.perf_counter()
        makers[c.id] = c.fit(pop)
        fit[c.id] = {"seconds": time.perf_counter() - t, **getattr(makers[c.id], "info", {})}
    users, spent = [], {c.id: 0.0 for c in contenders}
    for p in split.new[:max_new]:
        stream, ev = user_votes(conv, streams[p], split.held)
        J, y = conv.item[ev], conv.up[ev]
        marks = [(str(k), k) for k in cps if k <= len(stream)] + [(ALL, len(stream))]
        row = {"participant": int(p), "voter_id": int(conv.voter_ids[p]), "votes": len(streams[p]),
               "stream": len(stream), "evaluated": len(ev), "agree": int(y.sum()), "auc": {}}
        for cid, make in makers.items():
            t0 = time.perf_counter()
            L, t, out = make(), 0, {}
            for label, k in marks:
                while t < k:
                    L.thumb(int(conv.item[stream[t]]), bool(conv.up[stream[t]]))
                    t += 1
                out[label] = auc(L.scores(J), y)
            row["auc"][cid] = out
            spent[cid] += time.perf_counter() - t0
        users.append(row)
    for cid in spent:
        fit[cid]["eval_seconds"] = spent[cid]
    return {"users": users, "fit": fit, "population_votes": pop.n,
            "population": len(split.population), "new": len(split.new),
            "evaluated_users": len(users), "few_votes": split.few_votes,
            "one_class": split.one_class, "held_statements": int(split.held.sum())}


# ================================================================ the run ====================
@dataclass
class Config:
    splits: tuple = SPLITS
    seeds: tuple = (0, 1, 2)
    conversations: Optional[tuple] = None     # folder names (None: every one under data)
    contenders: tuple = popm.DEFAULT_LINEUP
    checkpoints: tuple = CHECKPOINTS
    boot: int = 2000
    max_new: Optional[int] = None             # new users evaluated per conversation and seed
    data: str = DEFAULT_DIR
    head: str = "minilm"                      # a key of HEADS

    @classmethod
    def quick(cls, **kw) -> "Config":
        return replace(cls(seeds=(0,), boot=200, max_new=20), **kw)


def load(cfg: Config, features: Optional[FeatureFn] = None, log=print):
    """[(Conversation, Phi)] of cfg's conversations."""
    dirs = conversation_dirs(cfg.data)
    if cfg.conversations:
        names = {os.path.basename(d): d for d in dirs}
        unknown = [c for c in cfg.conversations if c not in names]
        if unknown:
            raise SystemExit(f"no conversation {unknown} under {cfg.data}; there: {sorted(names)}")
        dirs = [names[c] for c in cfg.conversations]
    if not dirs:
        raise SystemExit(f"no Polis conversation under {cfg.data} (see ../shared/data/polis/README.md; "
                         "--data or EDGE_OMD_POLIS_DIR)")
    fn = features or minilm_features(cfg.head)
    out = []
    for d in dirs:
        conv = load_conversation(d)
        out.append((conv, embed(conv, fn, log=log)))
    return out


def run(cfg: Config, features: Optional[FeatureFn] = None, data=None, extra=(), log=print) -> dict:
    """The benchmark. `data`: [(Conversation, Phi)] (default: `load`); `extra`: Contender
    objects run next to cfg.contenders (the hook for a contender defined elsewhere)."""
    t0 = time.perf_counter()
    data = load(cfg, features, log) if data is None else data
    lineup = popm.resolve(cfg.contenders) + list(extra)
    res = {"config": asdict(cfg), "contenders": {c.id: c.label for c in lineup},
           "conversations": {}, "splits": {}}
    for conv, Phi in data:
        streams = conv.streams()
        res["conversations"][conv.name] = {
            "topic": conv.topic, "participants": conv.n_participants, "statements": len(conv.texts),
            "votes": int(len(conv.voter)), "agree": float(conv.up.mean()), "passes": conv.passes,
            "superseded": conv.superseded, "d": int(Phi.shape[1]),
            f"participants_with_{MIN_VOTES}_votes": int(sum(len(s) >= MIN_VOTES for s in streams))}
    for kind in cfg.splits:
        runs = []
        for conv, Phi in data:
            on = [c for c in lineup if popm.applies(c, item_votes=kind == "users", thumbs=True)]
            for seed in cfg.seeds:
                t = time.perf_counter()
                ev = evaluate(conv, Phi, make_split(conv, kind, seed), on, cfg.checkpoints, cfg.max_new)
                ev.update(conversation=conv.name, seed=seed, seconds=time.perf_counter() - t)
                runs.append(ev)
                log(f"  split {kind}, {conv.name}, seed {seed}: {ev['evaluated_users']} new users, "
                    f"population {ev['population']} ({ev['population_votes']} votes), "
                    f"{ev['seconds']:.1f} s")
        res["splits"][kind] = runs
    res["seconds"] = time.perf_counter() - t0
    return res


# ================================================================ statistics =================
def summarize(res: dict) -> dict:
    """{split: {"k": [...], "pooled": {k: {cid: Estimate, "minus": {cid: Estimate}}},
    "per_conversation": {conv: same}}} from run()'s results."""
    cfg = res["config"]
    ref = popm.REFERENCE
    labels = [str(k) for k in cfg["checkpoints"]] + [ALL]
    out = {}
    for si, (kind, runs) in enumerate(res["splits"].items()):
        cids = list(dict.fromkeys(c for r in runs for u in r["users"] for c in u["auc"]))
        convs = list(dict.fromkeys(r["conversation"] for r in runs))
        block = {"k": labels, "pooled": {}, "per_conversation": {c: {} for c in convs}}
        for li, label in enumerate(labels):
            key, S, N, strata = {}, [], [], []
            for r in runs:
                for u in r["users"]:
                    if label not in u["auc"][cids[0]]:
                        continue
                    c = (r["conversation"], u["participant"])
                    if c not in key:
                        key[c] = len(key)
                        S.append({cid: 0.0 for cid in cids})
                        N.append(0)
                        strata.append(convs.index(r["conversation"]))
                    j = key[c]
                    N[j] += 1
                    for cid in cids:
                        S[j][cid] += u["auc"][cid][label]
            if not key:
                continue
            N, strata = np.array(N, np.float64), np.array(strata)
            Sm = {cid: np.array([s[cid] for s in S]) for cid in cids}
            W = popm.cluster_weights(strata, cfg["boot"], [0xA0C, si, li])

            def figures(mask):
                f = {cid: popm.ratio_ci(Sm[cid][mask], N[mask], W[:, mask]) for cid in cids}
                if ref in Sm:
                    f["minus"] = {cid: popm.ratio_ci(Sm[cid][mask] - Sm[ref][mask], N[mask], W[:, mask])
                                  for cid in cids if cid != ref}
                return f
            block["pooled"][label] = figures(np.ones(len(N), bool))
            for ci_, conv in enumerate(convs):
                m = strata == ci_
                if m.any():
                    block["per_conversation"][conv][label] = figures(m)
        out[kind] = block
    return out


def rule_verdict(summary: dict, cid: str, cps=CHECKPOINTS) -> dict:
    """The issue's rule for contender `cid`: pooled over conversations, at every k of `cps`
    measured, on every split: mean paired AUC difference to the population model >= -RULE_MARGIN
    and the interval's upper end >= 0. {split: {k: bool}, "met": bool}."""
    out, met = {}, True
    for kind, block in summary.items():
        out[kind] = {}
        for k in map(str, cps):
            f = block["pooled"].get(k)
            if f is None or cid not in f.get("minus", {}):
                continue
            d = f["minus"][cid]
            out[kind][k] = bool(d.mean >= -RULE_MARGIN and d.hi >= 0)
            met &= out[kind][k]
        met &= bool(out[kind])            # a split where it was not measured fails the rule
    out["met"] = met and bool(summary)
    return out


# ================================================================ output =====================
def markdown(res: dict, summary: dict) -> str:
    L = []
    labels = res["contenders"]
    for kind, block in summary.items():
        ks = [k for k in block["k"] if k in block["pooled"]]
        L.append(f"### Split \"{kind}\", pooled over {len(block['per_conversation'])} conversations, "
                 f"seeds {','.join(map(str, res['config']['seeds']))}\n")
        L.append("AUC on each new user's held-out votes after k of their votes: mean [95 % CI]\n")
        L.append("| contender | " + " | ".join(f"k = {k}" for k in ks) + " |")
        L.append("|---|" + "---|" * len(ks))
        cids = [c for c in block["pooled"][ks[0]] if c != "minus"]
        L.append("| new users (evaluations) | " + " | ".join(
            f"{block['pooled'][k][cids[0]].users} ({block['pooled'][k][cids[0]].evals})"
            for k in ks) + " |")
        for cid in cids:
            L.append(f"| {labels[cid]} | " + " | ".join(block["pooled"][k][cid].fmt() for k in ks) + " |")
        if "minus" in block["pooled"][ks[0]]:
            L.append("\nPaired difference to the population model: mean [95 % CI]\n")
            L.append("| contender | " + " | ".join(f"k = {k}" for k in ks) + " |")
            L.append("|---|" + "---|" * len(ks))
            for cid in block["pooled"][ks[0]]["minus"]:
                L.append(f"| {labels[cid]} - population | "
                         + " | ".join(block["pooled"][k]["minus"][cid].fmt_diff() for k in ks) + " |")
        L.append("\nPer seed (pooled over the conversations; AUC mean over new users):\n")
        L.append("| contender | k | " + " | ".join(f"seed {s}" for s in res["config"]["seeds"]) + " |")
        L.append("|---|---|" + "---|" * len(res["config"]["seeds"]))
        for cid in cids:
            for k in ("0", "20"):
                L.append(f"| {labels[cid]} | {k} | " + " | ".join(
                    f"{seed_mean(res, kind, cid, k, s):.3f}" for s in res["config"]["seeds"]) + " |")
        L.append("\nPer conversation (AUC mean [95 % CI]; users per k):\n")
        L.append("| conversation | contender | " + " | ".join(f"k = {k}" for k in ks) + " |")
        L.append("|---|---|" + "---|" * len(ks))
        for conv, per in block["per_conversation"].items():
            kk = [k for k in ks if k in per]
            first = next(c for c in per[kk[0]] if c != "minus")
            L.append(f"| {conv} | users | " + " | ".join(
                str(per[k][first].users) if k in per else "-" for k in ks) + " |")
            for cid in cids:
                L.append(f"| | {labels[cid]} | " + " | ".join(
                    per[k][cid].fmt() if k in per else "-" for k in ks) + " |")
        L.append("")
    return "\n".join(L)


def seed_mean(res: dict, kind: str, cid: str, k: str, seed: int) -> float:
    """Mean AUC of contender cid at checkpoint k over the new users of one seed (every
    conversation); nan where none was measured."""
    a = [u["auc"][cid][k] for r in res["splits"][kind] if r["seed"] == seed
         for u in r["users"] if k in u["auc"].get(cid, {})]
    return float(np.mean(a)) if a else float("nan")


def run_info(res: dict) -> str:
    L = ["| conversation | participants | statements | kept votes | agree share | passes dropped | "
         f"superseded votes | participants with >= {MIN_VOTES} votes |", "|---|---|---|---|---|---|---|---|"]
    for name, c in res["conversations"].items():
        L.append(f"| {name} | {c['participants']} | {c['statements']} | {c['votes']} | "
                 f"{c['agree']:.3f} | {c['passes']} | {c['superseded']} | "
                 f"{c[f'participants_with_{MIN_VOTES}_votes']} |")
    L.append("")
    L.append("| split | conversation | seed | new users | population (votes fitted) | "
             "excluded: < 10 votes | excluded: one class held out | population model lam |")
    L.append("|---|---|---|---|---|---|---|---|")
    for kind, runs in res["splits"].items():
        for r in runs:
            lam = r["fit"].get("population", {}).get("lam")
            L.append(f"| {kind} | {r['conversation']} | {r['seed']} | {r['evaluated_users']} | "
                     f"{r['population']} ({r['population_votes']}) | {r['few_votes']} | "
                     f"{r['one_class']} | {'-' if lam is None else f'{lam:g}'} |")
    L.append("")
    tot: dict = {}
    for runs in res["splits"].values():
        for r in runs:
            for cid, f in r["fit"].items():
                t = tot.setdefault(cid, [0.0, 0.0])
                t[0] += f["seconds"]
                t[1] += f["eval_seconds"]
    L.append("Seconds, all splits, seeds and conversations: " + "; ".join(
        f"{cid} fit {a:.1f} + new users {b:.1f}" for cid, (a, b) in tot.items())
        + f"; total {res['seconds']:.0f} s.")
    return "\n".join(L)


def print_verdicts(res: dict, summary: dict, log=print) -> None:
    log(f"Rule (docs/BENCHMARKS.md): pooled, every k of {list(CHECKPOINTS)} measured, both splits: "
        f"mean paired AUC difference to the population model >= -{RULE_MARGIN} and CI upper end >= 0")
    for cid, label in res["contenders"].items():
        if cid == popm.REFERENCE:
            continue
        v = rule_verdict(summary, cid)
        detail = "; ".join(f"{kind}: " + " ".join(f"{k}{'+' if ok else '-'}" for k, ok in ks.items())
                           for kind, ks in v.items() if kind != "met")
        log(f"  {label}: {'MET' if v['met'] else 'not met'} ({detail})")


def _jsonable(summary: dict) -> dict:
    def conv(x):
        if isinstance(x, popm.Estimate):
            return asdict(x)
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        return x
    return conv(summary)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_omd_bench.polis", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="seed 0, 20 new users a conversation, 200 resamples")
    ap.add_argument("--split", choices=SPLITS + ("both",), default="both")
    ap.add_argument("--seeds", help="comma list (default 0,1,2; --quick: 0)")
    ap.add_argument("--conversations", help="comma list of folder names (default: all)")
    ap.add_argument("--contenders", help="comma list of names or module:function (default: "
                    + ",".join(popm.DEFAULT_LINEUP) + ")")
    ap.add_argument("--boot", type=int)
    ap.add_argument("--max-new", type=int, help="new users evaluated per conversation and seed")
    ap.add_argument("--data", default=DEFAULT_DIR)
    ap.add_argument("--head", choices=tuple(HEADS), default="minilm", help="the MiniLM "
                    "embedding alone (default, d = 384) or the demo's head with its views")
    ap.add_argument("--json", help="write results (every per-user AUC) and the summary here")
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)         # a shared machine; every fit here is small
    except ImportError:  # pragma: no cover
        pass
    kw = {"data": a.data, "head": a.head}
    if a.split != "both":
        kw["splits"] = (a.split,)
    if a.seeds:
        kw["seeds"] = tuple(int(s) for s in a.seeds.split(","))
    if a.conversations:
        kw["conversations"] = tuple(a.conversations.split(","))
    if a.contenders:
        kw["contenders"] = tuple(a.contenders.split(","))
    if a.boot:
        kw["boot"] = a.boot
    if a.max_new:
        kw["max_new"] = a.max_new
    cfg = Config.quick(**kw) if a.quick else Config(**kw)
    load0 = os.getloadavg()
    print(f"# Polis new users (bench/polis.py): python -m edge_omd_bench.polis {' '.join(argv or sys.argv[1:])}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load average at start "
          f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", flush=True)
    res = run(cfg)
    summary = summarize(res)
    print()
    print(run_info(res))
    print()
    print(markdown(res, summary))
    print_verdicts(res, summary)
    load1 = os.getloadavg()
    print(f"load average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": res, "summary": _jsonable(summary)}, f, default=float)
        print(f"written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
