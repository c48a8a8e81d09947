"""`edge-omd population fit FEEDBACK OUT --head HEAD`: fit a population pack on many users'
feedback, embedded by the head, and write it (edge_omd/population/, docs/FORMATS.md).

FEEDBACK: a .jsonl (or .jsonl.gz) file, one JSON object a line, in time order, each with a
"user" id and one of
    {"prompt", "chosen", "rejected"}                 a pair: chosen preferred to rejected
    {"prompt", "response", "up"[, "shown"]}          a thumb (up: true/false), against the mean
                                                     of the other answers shown when given
    {"prompt", "responses", "chosen"}                a choice: responses[chosen] picked (2-16)
and an optional "weight" (> 0). This is what the SDK learns from the same feedback (z = phi
for a thumb without `shown`, phi - mean(shown) with it, phi_chosen - phi_rejected for a pair).
Without any "user" field (e.g. HH-RLHF pairs) the pack is today's prior (edge_omd/prior.py:
`fit_prior` with its default strength and rank, K = 0 directions of deviation).

The features of every record are held in memory (n rows of d float64); the fit itself keeps
one user at a time plus O(d^2) per sum, in --workers processes.

    edge-omd population fit feedback.jsonl acme.pack --head heads/minilm --pack-id acme-v1
    Personalizer(head, store, user, population=Pack.load("acme.pack"))
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
import warnings

import numpy as np

from edge_omd.errors import EdgeOMDError, InvalidInputError, TruncationWarning

#: (prompt, answer) pairs embedded per head call
BATCH = 64


def read_feedback(path):
    """[(user or None, kind, record dict)] in file order; InvalidInputError naming the line."""
    opener = gzip.open if str(path).endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError as exc:
                raise InvalidInputError(f"{path}:{n}: not JSON ({exc})") from None
            if not isinstance(r, dict) or not isinstance(r.get("prompt"), str):
                raise InvalidInputError(f"{path}:{n}: needs a string field 'prompt'")
            user = r.get("user")
            if user is not None and (not isinstance(user, str) or not user):
                raise InvalidInputError(f"{path}:{n}: 'user' must be a non-empty string")
            w = r.get("weight", 1.0)
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w < float("inf"):
                raise InvalidInputError(f"{path}:{n}: 'weight' must be a number > 0")
            if isinstance(r.get("chosen"), str) and isinstance(r.get("rejected"), str):
                kind = "pair"
                if r["chosen"] == r["rejected"]:
                    continue           # no preference
            elif isinstance(r.get("response"), str) and isinstance(r.get("up"), bool):
                kind = "thumb"
                shown = r.get("shown")
                if shown is not None and not (isinstance(shown, list) and shown and all(
                        isinstance(s, str) for s in shown)):
                    raise InvalidInputError(f"{path}:{n}: 'shown' must be a list of strings")
            elif isinstance(r.get("responses"), list) and isinstance(r.get("chosen"), int) \
                    and not isinstance(r.get("chosen"), bool):
                kind = "choice"
                rs = r["responses"]
                if not (2 <= len(rs) <= 16 and all(isinstance(s, str) for s in rs)
                        and 0 <= r["chosen"] < len(rs)):
                    raise InvalidInputError(f"{path}:{n}: a choice needs 2-16 string responses "
                                            "and 'chosen' an index into them")
            else:
                raise InvalidInputError(f"{path}:{n}: needs a pair (chosen, rejected), a thumb "
                                        "(response, up) or a choice (responses, chosen index)")
            out.append((user, kind, r))
    return out


def _texts(kind, r):
    if kind == "pair":
        return [r["chosen"], r["rejected"]]
    if kind == "thumb":
        return [r["response"]] + [s for s in (r.get("shown") or []) if s != r["response"]]
    return list(r["responses"])


def embed(head, records, log=None):
    """{(prompt, text): phi float64} for every text of `records`, BATCH pairs a head call;
    returns it and the number of truncated texts."""
    keys = list(dict.fromkeys((r["prompt"], t) for _u, k, r in records for t in _texts(k, r)))
    table, truncated, t0 = {}, 0, time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        for i in range(0, len(keys), BATCH):
            chunk = keys[i:i + BATCH]
            phi = np.asarray(head.features_batch(chunk), np.float64)
            if phi.shape != (len(chunk), int(head.dim)):
                raise InvalidInputError(f"the head returned features of shape {phi.shape}")
            table.update(zip(chunk, phi))
            truncated += int(getattr(head, "last_truncated", 0) or 0)
            if log and (i // BATCH) % 50 == 49:
                log(f"[population] embedded {i + len(chunk)}/{len(keys)} texts "
                    f"({time.perf_counter() - t0:.0f}s)")
    return table, truncated


def item_group(kind, r) -> int:
    """The item group the fit may hold out (edge_omd/population/fit.py): the prompt of a pair,
    a choice or a thumb among shown answers (every answer to it is new together); a bare thumb's
    answer itself (prompt and response: e.g. Polis statements under one topic)."""
    from edge_omd.population.data import text_group
    if kind == "thumb" and not r.get("shown"):
        return text_group(r["prompt"], r["response"])
    return text_group(r["prompt"])


def observations(records, table):
    """{user: [(rows, label, weight)]} in file order (what the SDK's model learns),
    {user: [item group]} (`item_group`) and {user: [bare thumb?]} (a thumb on one response
    with no `shown`: z = phi, against reward 0)."""
    users, groups, bare = {}, {}, {}
    for user, kind, r in records:
        groups.setdefault(user, []).append(item_group(kind, r))
        bare.setdefault(user, []).append(kind == "thumb" and not r.get("shown"))
        phi = np.stack([table[(r["prompt"], t)] for t in _texts(kind, r)])
        w = float(r.get("weight", 1.0))
        if kind == "pair":
            o = (phi[0] - phi[1], 1.0, w)
        elif kind == "thumb":
            z = phi[0] - phi[1:].mean(axis=0) if len(phi) > 1 else phi[0]
            o = (z, 1.0 if r["up"] else 0.0, w)
        else:
            o = (phi, float(r["chosen"]), w)
        users.setdefault(user, []).append(o)
    return users, groups, bare


def open_head(folder):
    """The FeatureHead of a head folder (a test replaces this with a fake head)."""
    from edge_omd.head.runner import FeatureHead
    return FeatureHead.open(folder)


def fit(args, log) -> object:
    from edge_omd.population.data import ArrayShard, make_user
    from edge_omd.population.fit import ITEM_SHARE, Settings, fit_population
    from edge_omd.population.pack import Pack
    from edge_omd.prior import fit_prior
    head = open_head(args.head)
    records = read_feedback(args.feedback)
    if not records:
        raise InvalidInputError(f"{args.feedback}: no usable record")
    with_user = sum(u is not None for u, _k, _r in records)
    if 0 < with_user < len(records):
        raise InvalidInputError(f"{args.feedback}: {len(records) - with_user} of {len(records)} "
                                "records have no 'user': give every record a user id, or none")
    table, truncated = embed(head, records, log)
    fp = None if head.fingerprint is None else bytes(head.fingerprint)
    users, groups, bare = observations(records, table)
    log(f"[population] {len(records)} records of {len(users)} users, {len(table)} texts "
        f"embedded ({truncated} truncated by the head)")
    if with_user == 0:       # no user ids: today's prior, as a pack (K = 0)
        if any(k != "pair" for _u, k, _r in records):
            raise InvalidInputError("without user ids only pairs can be fitted (today's prior)")
        rows = [o for o in users[None]]
        prior = fit_prior(np.stack([z for z, _y, _w in rows]),
                          weights=np.array([w for _z, _y, w in rows]), fingerprint=fp)
        pack = Pack.from_prior(prior)
        return Pack(pack.theta0, pack.lam, pack.c, pack.V, pack.sign, args.pack_id or "prior",
                    fp, pack.fit)
    data = [make_user(u, obs, groups[u], bare[u]) for u, obs in users.items()]
    n = max(1, int(args.workers))
    shards = [ArrayShard(data[i::n]) for i in range(n)]
    st = Settings(K=args.k, seed=args.seed, item_share=ITEM_SHARE if args.items == "new" else 0.0)
    return fit_population(shards, d=int(head.dim), settings=st, fingerprint=fp,
                          pack_id=args.pack_id, workers=n, log=log)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="edge-omd population",
        description="Population packs: where new users start (Personalizer(..., "
                    "population=Pack.load(OUT))).")
    sub = ap.add_subparsers(dest="verb", required=True, metavar="VERB")
    f = sub.add_parser("fit", help="fit a pack on users' feedback embedded by a head",
                       description=__doc__.split("\n\n")[1])
    f.add_argument("feedback", metavar="FEEDBACK", help="a .jsonl or .jsonl.gz of records with "
                   "a user id and a pair, a thumb or a choice")
    f.add_argument("out", metavar="OUT", help="the pack file to write (atomically)")
    f.add_argument("--head", required=True, help="the exported feature-head folder whose "
                   "features the users' models will see")
    f.add_argument("--pack-id", default="", help="the pack's name and version, e.g. acme-v1")
    f.add_argument("--k", type=int, default=16, help="the most directions of deviation "
                   "(default %(default)s; the held-out users choose how many are used)")
    f.add_argument("--workers", type=int, default=1, help="processes of the fit (the same "
                   "pack bytes for any number)")
    f.add_argument("--seed", type=int, default=0, help="which users are held out (by a hash)")
    f.add_argument("--items", choices=("new", "seen"), default="new", help="what new users will "
                   "be served: 'new' answers nobody in FEEDBACK judged (an assistant's generated "
                   "answers: the scales are chosen on held-out prompts; default), or 'seen' items "
                   "the population judged (a fixed catalogue, e.g. Polis statements)")
    s = sub.add_parser("show", help="print what a pack holds")
    s.add_argument("pack", metavar="PACK")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    log = (lambda s: print(s, file=sys.stderr))
    from edge_omd.population.pack import load, save
    try:
        if args.verb == "show":
            pack = load(args.pack)
        else:
            t0 = time.perf_counter()
            pack = fit(args, log)
            save(args.out, pack)
            log(f"[population] wrote {os.path.abspath(args.out)} "
                f"({os.path.getsize(args.out)} bytes) in {time.perf_counter() - t0:.1f}s")
    except (EdgeOMDError, OSError) as exc:
        print(f"edge-omd population: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"pack {pack.pack_id!r}: d={pack.dim}, K={pack.K}, lam={pack.lam:.6g}, "
          f"c={pack.c:.6g}, sign {pack.sign:+g}, head "
          f"{'(none)' if pack.fingerprint is None else pack.fingerprint.hex()[:16] + '...'}, "
          f"digest {pack.digest.hex()}")
    print("fit: " + json.dumps(pack.fit, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
