"""`edge-omd prior PAIRS OUT --head HEAD`: fit a population prior on preference pairs.

Reads a population of preferences, embeds both answers of each with the feature head, fits
theta_0 and H_0 for a prior worth --strength average population pairs (edge_omd/prior.py,
`fit_prior`: theta_0 = argmin s/n sum_i loss_i + lam/2 ||theta||^2, cal_H_0 = lam I + s H_0) and
writes the prior file OUT, bound to the head's fingerprint (docs/FORMATS.md, "Population
prior"). An app then starts every new user there, with the models' lam the prior was fitted for
(--lam): `Personalizer(head, store, user, prior=Prior.load(OUT))`.

PAIRS: a .jsonl file (or .jsonl.gz), one JSON object a line, either
    {"prompt": ..., "chosen": ..., "rejected": ...}       (two answers to one prompt), or
    {"chosen": transcript, "rejected": transcript}         (HH-RLHF: each transcript is split at
                                                           its last "\\n\\nAssistant:" into prompt
                                                           and answer, `split_transcript`).
Pairs whose two answers are the same text are skipped (they carry no preference).

    edge-omd prior /work/shared/data/hh-rlhf/helpful-base-test.jsonl.gz hh.prior \\
        --head ~/.cache/edge_omd/heads/all-minilm-l6-v2-fp32 --strength 1
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
import warnings
import zlib

import numpy as np

from edge_omd.apps.cli import run
from edge_omd.errors import InvalidInputError, TruncationWarning
from edge_omd.prior import (DEFAULT_LAM, DEFAULT_RANK, DEFAULT_STRENGTH, fit_prior,
                             rank_for_budget, save)

#: where an HH-RLHF transcript's last answer starts (bench/streams.py imports this split)
ASSISTANT = "\n\nAssistant:"
#: (prompt, answer) pairs embedded per head call
BATCH = 64


def split_transcript(text: str) -> tuple[str, str]:
    """prompt = everything up to the last "\\n\\nAssistant:", answer = what follows it."""
    i = text.rfind(ASSISTANT)
    if i < 0:
        return "", text.strip()
    return text[:i], text[i + len(ASSISTANT):].strip()


#: the longest line of a PAIRS file (a pair of long transcripts is well under a megabyte)
MAX_LINE_BYTES = 16 << 20


def _lines(path):
    """(line number, text) of each line of a .jsonl or .jsonl.gz file; InvalidInputError
    naming the file and line for bytes that are not UTF-8, a line above MAX_LINE_BYTES, or a
    gzip stream that is corrupt or cut short."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        n = 0
        while True:
            n += 1
            try:
                raw = f.readline(MAX_LINE_BYTES + 1)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise InvalidInputError(f"{path}:{n}: the gzip stream is corrupt or cut short "
                                        f"({type(exc).__name__}: {exc})") from None
            if not raw:
                return
            if len(raw) > MAX_LINE_BYTES:
                raise InvalidInputError(f"{path}:{n}: line longer than {MAX_LINE_BYTES} bytes")
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(f"{path}:{n}: not UTF-8 (byte {raw[exc.start]:#04x} at "
                                        f"column {exc.start + 1})") from None


def read_pairs(path, limit=None):
    """[(prompt_chosen, chosen, prompt_rejected, rejected)] from a PAIRS file (module
    docstring); InvalidInputError naming the file and line for anything else. Pairs with two
    equal answers are dropped; returns (pairs, dropped)."""
    out, dropped = [], 0
    for n, line in _lines(path):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except (ValueError, RecursionError) as exc:   # RecursionError: nested thousands deep
            raise InvalidInputError(f"{path}:{n}: not JSON ({type(exc).__name__}: "
                                    f"{str(exc)[:200]})") from None
        if not (isinstance(r, dict) and isinstance(r.get("chosen"), str)
                and isinstance(r.get("rejected"), str)):
            raise InvalidInputError(f"{path}:{n}: needs string fields 'chosen' and "
                                    "'rejected' (and 'prompt', or HH-RLHF transcripts)")
        if "prompt" in r:
            if not isinstance(r["prompt"], str):
                raise InvalidInputError(f"{path}:{n}: 'prompt' must be a string")
            pc, c, pr, rj = r["prompt"], r["chosen"], r["prompt"], r["rejected"]
        else:
            pc, c = split_transcript(r["chosen"])
            pr, rj = split_transcript(r["rejected"])
        if (pc, c) == (pr, rj) or not c or not rj:
            dropped += 1
            continue
        out.append((pc, c, pr, rj))
        if limit and len(out) >= limit:
            break
    return out, dropped


def embed_pairs(head, pairs, log=None):
    """(phi_chosen, phi_rejected), each (n, d) float64, through head.features_batch in
    batches of BATCH pairs; returns them and the number of truncated texts."""
    n, d = len(pairs), int(head.dim)
    Pc, Pr = np.empty((n, d)), np.empty((n, d))
    truncated, t0 = 0, time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # counted instead, below
        for i in range(0, n, BATCH):
            chunk = pairs[i:i + BATCH]
            items = [(pc, c) for pc, c, _pr, _r in chunk] + [(pr, r) for _pc, _c, pr, r in chunk]
            phi = np.asarray(head.features_batch(items), dtype=np.float64)
            if phi.shape != (2 * len(chunk), d):
                raise InvalidInputError(f"the head returned features of shape {phi.shape}, "
                                        f"expected {(2 * len(chunk), d)}")
            Pc[i:i + len(chunk)], Pr[i:i + len(chunk)] = phi[:len(chunk)], phi[len(chunk):]
            truncated += int(getattr(head, "last_truncated", 0) or 0)
            if log and (i // BATCH) % 50 == 49:
                log(f"[prior] embedded {i + len(chunk)}/{n} pairs "
                    f"({time.perf_counter() - t0:.0f}s)")
    return Pc, Pr, truncated


def open_head(folder):
    """The FeatureHead of a head folder (a test replaces this with a fake head)."""
    from edge_omd.head.runner import FeatureHead
    return FeatureHead.open(folder)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="edge-omd prior",
        description="Fit a population prior (theta_0 and the curvature H_0, bound to the head's "
                    "fingerprint) on preference pairs: new users start there "
                    "(Personalizer(..., prior=Prior.load(OUT))).")
    ap.add_argument("pairs", metavar="PAIRS", help="a .jsonl or .jsonl.gz of {prompt, chosen, "
                    "rejected} objects, or HH-RLHF {chosen, rejected} transcripts")
    ap.add_argument("out", metavar="OUT", help="the prior file to write (atomically)")
    ap.add_argument("--head", required=True, help="the exported feature-head folder whose "
                    "features the users' models will see")
    ap.add_argument("--rank", type=int, default=None,
                    help=f"eigenpairs of H_0 kept (default {DEFAULT_RANK}, or what "
                         "--budget-bytes allows)")
    ap.add_argument("--budget-bytes", type=int, default=None,
                    help="largest prior file: the rank is the most that fits")
    ap.add_argument("--strength", type=float, default=DEFAULT_STRENGTH,
                    help="what the prior is worth, in average population pairs s: it sets both "
                         "theta_0 (argmin s/n sum loss + lam/2 ||theta||^2; small s shrinks it "
                         "towards 0) and cal_H_0 = lam I + s H_0 (default: %(default)s)")
    ap.add_argument("--lam", type=float, default=DEFAULT_LAM,
                    help="the lam of the users' models (RewardModel(lam=)); a model with "
                         "another lam refuses the prior (default: %(default)s, the models' "
                         "default)")
    ap.add_argument("--limit", type=int, default=None, help="use the first N pairs only")
    return ap


def main(argv=None) -> int:
    return run("prior", lambda: _main(argv))


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    head = open_head(args.head)
    rank = args.rank
    if args.budget_bytes is not None:
        fit = rank_for_budget(int(head.dim), args.budget_bytes)
        rank = fit if rank is None else min(rank, fit)
    rank = DEFAULT_RANK if rank is None else rank
    t0 = time.perf_counter()
    pairs, dropped = read_pairs(args.pairs, args.limit)
    if not pairs:
        raise InvalidInputError(f"{args.pairs}: no usable pair")
    log = (lambda s: print(s, file=sys.stderr))
    Pc, Pr, truncated = embed_pairs(head, pairs, log)
    t_embed = time.perf_counter() - t0
    phi_mean = 0.5 * (Pc.mean(axis=0) + Pr.mean(axis=0))
    Z = Pc - Pr
    fp = None if head.fingerprint is None else bytes(head.fingerprint)
    t1 = time.perf_counter()
    prior = fit_prior(Z, strength=args.strength, lam=args.lam, rank=rank,
                      phi_mean=phi_mean, fingerprint=fp)
    t_fit = time.perf_counter() - t1
    save(args.out, prior)
    agree = float(np.mean(Z @ prior.theta0 > 0))
    print(f"[prior] {len(pairs)} pairs from {args.pairs} ({dropped} skipped: the same answer "
          f"twice; {truncated} texts truncated by the head), embedded in {t_embed:.1f}s, "
          f"fitted in {t_fit:.2f}s")
    print(f"[prior] d={prior.dim}, rank {prior.rank}, c={prior.c:.4g}, strength "
          f"{prior.strength:g}, lam {prior.lam:g}, ||theta0||={np.linalg.norm(prior.theta0):.4g}; theta0 prefers "
          f"the chosen answer on {agree:.3f} of these (training) pairs")
    print(f"[prior] wrote {os.path.abspath(args.out)} ({os.path.getsize(args.out)} bytes), "
          f"bound to head {'(none)' if fp is None else fp.hex()[:16] + '...'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
