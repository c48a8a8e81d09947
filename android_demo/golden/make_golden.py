"""Golden vectors for the Java core (android_demo/core), written by the Python SDK.

    python android_demo/golden/make_golden.py OUT_DIR [--part model|tok|all] [--texts N]

OUT_DIR/model/<case>/: case.json (settings, the seeded stream, probes, and after every step the
Python rewards, widths and deterministic choose_pair picks) and s<k>.eomd (the state after k
updates, k = 0..K); OUT_DIR/model/refuse/: mutated states with a verdict from Python's loader
(accepted or the StateFormatError message), for Java to agree with.
Population packs (edge_omd/population/pack.py): a case whose case.json names "pack" starts at
that pack file (pack.eomdpop, beside it); OUT_DIR/model/pack_refuse/: mutated pack files with
Python's verdict; OUT_DIR/model/pack_store/: a pack bound to a head, for the UserStore checks.
OUT_DIR/journal/<case>/: a checkpoint after 4 updates, the journal of the rest (edge_omd/store/journal.py,
kind-1 and kind-2 records) and damaged variants, each with Python's parse verdict and the state its
replay gives. OUT_DIR/journal/folder_store/: a Python FolderStore holding one user per solver x
dtype (and two with a radius) whose journals hold pairs, thumbs and choices; users.json gives,
per user, the observations that follow and Python's state after each (folder_next/), for the Java
UserStore to replay the journal, continue, and hand back.
OUT_DIR/tok/<head>/: tokenizer.json, manifest.json (template, max_length, special tokens, pad id,
padding side) and cases.json (texts, ids of the raw tokenizer, and padded ids/masks of the
TextEncoder for batches of prompt/response pairs, both padding sides).

Nothing here is committed: the test (tests/android/test_java_core.py) writes into a temp folder.
Everything is seeded, so two runs write the same files.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import zlib

import numpy as np

from edge_omd import RewardModel
from edge_omd.population.pack import Pack
from edge_omd import strategies as st
from edge_omd.errors import StateFormatError
from edge_omd.solvers import SOLVERS
from edge_omd.solvers.mnl import MAX_K
from edge_omd.state_format import HEADER

H = HEADER.size  # the payload starts here (docs/STATE_FORMAT.md)


def _at(solver, array, d, itemsize, rank=0):
    """Byte offset of a payload array in a state file (from the solver's spec)."""
    return H + SOLVERS[solver].spec.payload_offsets(d, rank, itemsize)[array]

DETERMINISTIC = ("ucb", "best_quantile", "best_second", "best_worst")

# (name, dim, steps, RewardModel settings)
CASES = []
for _dt in ("float32", "float64"):
    CASES += [
        (f"exact_{_dt}", 12, 40, dict(solver="exact", dtype=_dt)),
        (f"cg_{_dt}", 12, 40, dict(solver="cg", dtype=_dt, cg_steps=3)),
        (f"sketch_{_dt}", 12, 45, dict(solver="sketch", dtype=_dt, sketch_rank=3)),
        (f"diagonal_{_dt}", 12, 40, dict(solver="diagonal", dtype=_dt)),
        (f"exact_radius_{_dt}", 10, 30, dict(solver="exact", dtype=_dt, radius=0.8, eta=2.0)),
        (f"cg_radius_{_dt}", 10, 30, dict(solver="cg", dtype=_dt, cg_steps=4, radius=0.8, eta=2.0)),
        (f"cg_warmup_forget_{_dt}", 10, 30, dict(solver="cg", dtype=_dt, cg_steps=4, lam_warmup=10,
                                                 forget=0.97, cg_tol=1e-8)),
        (f"sketch_forget_radius_{_dt}", 10, 35, dict(solver="sketch", dtype=_dt, sketch_rank=2,
                                                     forget=0.95, radius=1.0, eta=1.5)),
        (f"diagonal_forget_radius_{_dt}", 10, 30, dict(solver="diagonal", dtype=_dt, forget=0.9,
                                                       radius=0.7, lam=0.5)),
        (f"sketch_full_rank_{_dt}", 6, 25, dict(solver="sketch", dtype=_dt, sketch_rank=6)),
        (f"auto_budget_{_dt}", 40, 30, dict(solver="auto", dtype=_dt, budget_bytes=9000,
                                            head_fingerprint=bytes(range(32)))),
    ]
CASES += [
    ("exact_d64_float32", 64, 60, dict(solver="exact", dtype="float32", eta=1.5, lam=0.5)),
    ("sketch_d64_float32", 64, 80, dict(solver="sketch", dtype="float32", sketch_rank=8)),
    ("sketch_d64_float64", 64, 80, dict(solver="sketch", dtype="float64", sketch_rank=8)),
]

# (name, dim, steps, RewardModel settings, pack kind): "fitted" = sign -1 with K = 3 directions
# (fit_population's kind), "prior" = sign +1 with 2 rows (a Prior as a pack), "isotropic" = K = 0,
# sign +1 (the only start the sketch holds)
PACK_CASES = []
for _dt in ("float32", "float64"):
    PACK_CASES += [
        (f"pack_exact_{_dt}", 12, 40, dict(solver="exact", dtype=_dt, lam=0.3), "fitted"),
        (f"pack_cg_{_dt}", 12, 40, dict(solver="cg", dtype=_dt, lam=0.3, cg_steps=4), "fitted"),
        (f"pack_diagonal_{_dt}", 12, 40, dict(solver="diagonal", dtype=_dt, lam=0.3), "fitted"),
        (f"pack_sketch_{_dt}", 12, 45, dict(solver="sketch", dtype=_dt, sketch_rank=3, lam=0.3),
         "isotropic"),
        (f"pack_prior_exact_{_dt}", 12, 30, dict(solver="exact", dtype=_dt), "prior"),
    ]
PACK_CASES += [
    ("pack_bound_exact_d40_float32", 40, 30, dict(solver="exact", dtype="float32", lam=0.3,
                                                  head_fingerprint=bytes(range(32))), "fitted"),
]


def make_pack(d, kind, lam, seed, fingerprint=None):
    """A seeded pack of `kind` (PACK_CASES) for models with this lam."""
    rng = np.random.default_rng(seed)
    theta0 = rng.normal(size=d) * 0.7
    if kind == "isotropic":
        return Pack(theta0, lam, 2.5, np.zeros((0, d)), 1.0, "golden-iso", fingerprint)
    Q = np.linalg.qr(rng.normal(size=(d, 3)))[0].T
    if kind == "prior":
        return Pack(theta0, lam, 1.5, (rng.normal(size=(2, d)) * 0.8), 1.0, "golden-prior",
                    fingerprint)
    s = np.array([7.5, 4.0, 1.25])            # precisions lam + 8 - s_k: weak along Q's rows
    return Pack(theta0, lam, 8.0, np.sqrt(s)[:, None] * Q, -1.0, "golden-v1", fingerprint,
                {"kind": "golden"})


def _stream(d, T, seed):
    """Seeded mixed stream: one/pair/thumb/choice/fantasize, soft labels, weights, unit-ish
    features; choices among 2 to MAX_K candidates (some with a duplicate row), the pick drawn
    from the multinomial logit of a hidden theta."""
    rng = np.random.default_rng(seed)
    theta_star = rng.normal(size=d) * 2.0
    for t in range(T):
        kind = ("one", "pair", "thumb", "pair", "fantasize")[t % 5] if t % 11 != 10 else "pair"
        if t % 6 == 5:
            kind = "choice"
        w = 1.0 if t % 4 else float(rng.uniform(0.2, 3.0))
        if kind == "one":
            z = rng.normal(size=d) / math.sqrt(d)
            y = float(rng.uniform()) if t % 3 == 0 else float(rng.uniform() < 1 / (1 + math.exp(-theta_star @ z)))
            yield dict(kind=kind, z=z.tolist(), y=y, w=w)
        elif kind == "pair":
            a, b = rng.normal(size=d) / math.sqrt(d), rng.normal(size=d) / math.sqrt(d)
            if theta_star @ (a - b) < 0:
                a, b = b, a
            yield dict(kind=kind, a=a.tolist(), b=b.tolist(), w=w)
        elif kind == "thumb":
            phi = rng.normal(size=d) / math.sqrt(d)
            yield dict(kind=kind, phi=phi.tolist(), up=bool(theta_star @ phi > 0), w=w)
        elif kind == "choice":
            k = (3, 2, 5, MAX_K, 4)[(t // 6) % 5]
            P = rng.normal(size=(k, d)) / math.sqrt(d)
            if k > 2 and t % 4 == 1:
                P[-1] = P[0]  # duplicate candidates are allowed
            u = P @ theta_star
            p = np.exp(u - u.max())
            yield dict(kind=kind, P=P.tolist(), c=int(rng.choice(k, p=p / p.sum())), w=w)
        else:
            yield dict(kind=kind, z=(rng.normal(size=d) / math.sqrt(d)).tolist(), w=w)


def _apply(m, s):
    if s["kind"] == "one":
        m.learn_one(np.array(s["z"]), s["y"], weight=s["w"])
    elif s["kind"] == "pair":
        m.learn_pair(np.array(s["a"]), np.array(s["b"]), weight=s["w"])
    elif s["kind"] == "thumb":
        m.learn_thumb(np.array(s["phi"]), s["up"], weight=s["w"])
    elif s["kind"] == "choice":
        m.learn_choice(np.array(s["P"]), s["c"], weight=s["w"])
    else:
        m.fantasize(np.array(s["z"]), weight=s["w"])


def _record(m, s):
    """(vectors, label) of the journal record of step s, just learned by m (as the Personalizer
    journals it: a choice's candidates as the model used them, RewardModel._choice_input)."""
    if s["kind"] == "choice":
        return m._choice_input(np.array(s["P"])), s["c"]
    return np.array(m._observation), _label_of(s)


def _outputs(m, probes):
    r = m.reward(probes)
    w = m.width(probes)
    out = dict(rewards=r.tolist(), widths=w.tolist(),
               widths_ref=m.width(probes, ref=probes[0]).tolist(), choices={},
               pessimistic=st.pessimistic_scores(r, w, 0.5).tolist())
    for strat in DETERMINISTIC:
        out["choices"][strat] = list(st.choose_pair(r, lambda a: m.width(probes, probes[a]),
                                                    strategy=strat, beta=1.0, q=4.0))
    return out


def write_model_cases(root):
    os.makedirs(root, exist_ok=True)
    names = []
    for ci, (name, d, T, cfg, kind) in enumerate([c + (None,) for c in CASES] + PACK_CASES):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        pack = None
        if kind is not None:
            pack = make_pack(d, kind, cfg.get("lam", 1.0), 500 + ci, cfg.get("head_fingerprint"))
            pack.save(os.path.join(folder, "pack.eomdpop"))
        m = RewardModel(d, population=pack, **cfg)
        steps = list(_stream(d, T, seed=100 + ci))
        rng = np.random.default_rng(1000 + ci)
        probes = rng.normal(size=(7, d)) / math.sqrt(d)
        # (no exact ties: Python's BLAS product may round two identical rows differently)
        outs = []
        with open(os.path.join(folder, "s0.eomd"), "wb") as f:
            f.write(m.to_bytes())
        outs.append(_outputs(m, probes))
        for k, s in enumerate(steps, 1):
            _apply(m, s)
            with open(os.path.join(folder, f"s{k}.eomd"), "wb") as f:
                f.write(m.to_bytes())
            outs.append(_outputs(m, probes))
        Z = probes[1:] - probes[0]
        greedy = [[int(r), float(w)] for r, w in st.greedy_queries(m, Z, 4)]
        jcfg = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in cfg.items()}
        case = dict(name=name, dim=d, config=jcfg, solver=m.solver, rank=m.sketch_rank or 0,
                    steps=steps,
                    probes=probes.tolist(), outputs=outs, nbytes=m.nbytes, greedy=greedy)
        if pack is not None:
            m.reset()                          # back at the pack's start
            case.update(pack="pack.eomdpop", pack_digest=pack.digest.hex(),
                        reset_bytes_equal_s0=m.to_bytes() == open(os.path.join(folder, "s0.eomd"),
                                                                  "rb").read())
        with open(os.path.join(folder, "case.json"), "w") as f:
            json.dump(case, f)
        names.append(name)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(names, f)
    _write_refusals(os.path.join(root, "refuse"))
    _write_pack_refusals(os.path.join(root, "pack_refuse"))
    _write_pack_store(os.path.join(root, "pack_store"))


def _write_pack_refusals(folder):
    """Mutated pack files and Python's verdict (Pack.from_bytes): the Java reader must agree."""
    os.makedirs(folder, exist_ok=True)
    d = 6
    good = make_pack(d, "fitted", 0.3, 7, bytes(range(32)))
    base = good.to_bytes()
    hlen = struct.unpack_from("<I", base, 8)[0]
    header = json.loads(base[12:12 + hlen])
    body = base[12 + hlen:-4]

    def build(h, b):
        hb = json.dumps(h).encode()
        return _reseal(b"EOMDPOP1" + struct.pack("<I", len(hb)) + hb + b + b"\0\0\0\0")

    files = {"good": base, "good_no_fingerprint": make_pack(d, "fitted", 0.3, 7).to_bytes(),
             "good_prior": make_pack(d, "prior", 1.0, 8).to_bytes(),
             "flipped_body": base[:20] + bytes([base[20] ^ 1]) + base[21:],
             "truncated": base[:-9], "bad_magic": b"EOMDPOX1" + base[8:],
             "not_a_pack": RewardModel(d).to_bytes()}
    for key, val in [("format_version", 2), ("dim", d + 1), ("dim", 0), ("k", d + 1),
                     ("k", "3"), ("lam", 0.0), ("lam", True), ("c", -1.0), ("sign", 0.5),
                     ("sign", 2), ("head_fingerprint", "zz" * 32), ("head_fingerprint", "ab"),
                     ("fit", [1]), ("pack_id", "x" * 129), ("pack_id", 7), ("c", 1.0)]:
        h = dict(header)
        h[key] = val
        files[f"field_{key}_{json.dumps(val)[:12]}"] = build(h, body)
    h = dict(header)
    del h["head_fingerprint"]
    files["missing_fingerprint"] = build(h, body)
    files["short_body"] = build(header, body[:-8])
    nan = bytearray(body)
    nan[0:8] = struct.pack("<d", float("nan"))
    files["nan_body"] = build(header, bytes(nan))
    h = dict(header)
    h["fingerprint_null"] = None
    h["head_fingerprint"] = None
    files["null_fingerprint_ok"] = build(h, body)
    verdicts = {}
    for name, data in files.items():
        name = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name)
        with open(os.path.join(folder, name + ".bin"), "wb") as f:
            f.write(data)
        try:
            p = Pack.from_bytes(data)
            verdicts[name] = dict(ok=True, digest=p.digest.hex(), k=p.K, dim=p.dim)
        except StateFormatError as exc:
            verdicts[name] = dict(ok=False, error=str(exc)[:200])
    with open(os.path.join(folder, "verdicts.json"), "w") as f:
        json.dump(verdicts, f, indent=1)


def _write_pack_store(folder):
    """A pack bound to a head (fingerprint bytes(range(32)), d = 8) and another head's pack, and
    a Python FolderStore user started at the first, with a few observations, for UserStore."""
    os.makedirs(folder, exist_ok=True)
    fp = bytes(range(32))
    pack = make_pack(8, "fitted", 0.3, 11, fp)
    pack.save(os.path.join(folder, "pack.eomdpop"))
    make_pack(8, "fitted", 0.3, 12, bytes(32)).save(os.path.join(folder, "other_head.eomdpop"))
    m = RewardModel(8, population=pack, lam=0.3, solver="exact", dtype="float64",
                    head_fingerprint=fp)
    with open(os.path.join(folder, "start.eomd"), "wb") as f:
        f.write(m.to_bytes())
    json.dump(dict(digest=pack.digest.hex(), fingerprint=fp.hex()),
              open(os.path.join(folder, "pack.json"), "w"))

def _reseal(b):
    b = bytearray(b)
    b[-4:] = struct.pack("<I", zlib.crc32(bytes(b[:-4])) & 0xFFFFFFFF)
    return bytes(b)


def _write_refusals(folder):
    """Mutations of valid states; Python's verdict on each (accepted, or its error message)."""
    os.makedirs(folder, exist_ok=True)
    bases = {}
    for name, cfg in [("exact", dict(solver="exact")), ("cg", dict(solver="cg", dtype="float64")),
                      ("sketch", dict(solver="sketch", sketch_rank=2)), ("diagonal", dict(solver="diagonal")),
                      ("exact_radius", dict(solver="exact", radius=2.0, head_fingerprint=b"\x07" * 32))]:
        m = RewardModel(5, **cfg)
        for kind, s in zip(range(9), _stream(5, 9, seed=7)):
            _apply(m, s)
        bases[name] = m.to_bytes()
    muts = []

    def put(base, label, fn, seal=True):
        b = bytearray(bases[base])
        fn(b)
        data = _reseal(b) if seal else bytes(b)
        muts.append((f"{base}-{label}", data))

    def field(fmt, off, val):
        return lambda b: struct.pack_into(fmt, b, off, val)

    for base in bases:
        put(base, "ok", lambda b: None)
        put(base, "crc", lambda b: b.__setitem__(150, b[150] ^ 0x10), seal=False)
        put(base, "bitflip-last", lambda b: b.__setitem__(len(b) - 5, b[len(b) - 5] ^ 1), seal=False)
        put(base, "version2", field("<H", 8, 2))
        put(base, "solver0", field("<B", 10, 0))
        put(base, "solver9", field("<B", 10, 9))
        put(base, "dtype2", field("<B", 11, 2))
        put(base, "dim0", field("<I", 12, 0))
        put(base, "dim-big", field("<I", 12, 70000))
        put(base, "rank7", field("<I", 16, 7))
        put(base, "cgsteps0", field("<I", 20, 0))
        put(base, "cgsteps-big", field("<I", 20, 1 << 21))
        put(base, "flags4", field("<I", 24, 4))
        put(base, "reserved", field("<I", 28, 5))
        put(base, "t-huge", field("<Q", 32, (1 << 62) + 1))
        put(base, "t-top", field("<Q", 32, 1 << 62))
        put(base, "warmup-huge", field("<Q", 40, 1 << 63))
        put(base, "budget-tiny", field("<Q", 48, 10))
        put(base, "budget-huge", field("<Q", 48, (1 << 62) + 1))
        put(base, "eta0", field("<d", 56, 0.0))
        put(base, "eta-nan", field("<d", 56, float("nan")))
        put(base, "eta-big", field("<d", 56, 2e6))
        put(base, "lam-tiny", field("<d", 64, 1e-12))
        put(base, "lam-inf", field("<d", 64, float("inf")))
        put(base, "radius-neg", field("<d", 72, -1.0))
        put(base, "radius-with-flag", lambda b: (struct.pack_into("<I", b, 24, struct.unpack_from("<I", b, 24)[0] | 1),
                                                 struct.pack_into("<d", b, 72, 0.0)))
        put(base, "forget0", field("<d", 80, 0.0))
        put(base, "forget-half", field("<d", 80, 0.5))
        put(base, "cgtol1", field("<d", 88, 1.0))
        put(base, "cgtol-neg", field("<d", 88, -0.1))
        put(base, "paylen", field("<Q", 128, struct.unpack_from("<Q", bases[base], 128)[0] + 4))
        put(base, "paylen-huge", field("<Q", 128, 1 << 40))
        put(base, "theta-nan", field("<f" if base != "cg" else "<d", H, float("nan")))
        put(base, "theta-inf", field("<f" if base != "cg" else "<d", H, float("inf")))
        muts.append((f"{base}-truncated", bases[base][:-9]))
        muts.append((f"{base}-header-only", bases[base][:H]))
        muts.append((f"{base}-extra", _reseal(bases[base] + b"\0\0\0\0")))
        muts.append((f"{base}-short", bases[base][:50]))
    # structural problems under a valid CRC
    d = 5
    exact_u = _at("exact", "U", d, 4)

    def u_lower(b):
        struct.pack_into("<f", b, exact_u + 4 * (2 * d + 1), 0.5)

    def u_diag(b):
        struct.pack_into("<f", b, exact_u + 4 * (3 * d + 3), -1.0)

    put("exact", "U-lower", u_lower)
    put("exact", "U-diag-neg", u_diag)
    put("exact", "U-diag-zero", lambda b: struct.pack_into("<f", b, exact_u, 0.0))
    put("exact", "phi-nan", lambda b: struct.pack_into("<d", b, _at("exact", "phi", d, 4), float("nan")))
    cg_s = _at("cg", "S", d, 8)
    put("cg", "S-asym", lambda b: struct.pack_into("<d", b, cg_s + 8 * 1, 5.0))
    put("cg", "S-negdiag", lambda b: struct.pack_into("<d", b, cg_s, -1.0))
    ell = 2
    m_ = 2 * ell
    sk_b, sk_l = _at("sketch", "B", d, 4, ell), _at("sketch", "L", d, 4, ell)
    sk_alpha, sk_rows = _at("sketch", "alpha", d, 4, ell), _at("sketch", "rows", d, 4, ell)
    put("sketch", "alpha0", lambda b: struct.pack_into("<d", b, sk_alpha, 0.0))
    put("sketch", "alpha-neg", lambda b: struct.pack_into("<d", b, sk_alpha, -2.0))
    put("sketch", "rows-neg", lambda b: struct.pack_into("<q", b, sk_rows, -1))
    put("sketch", "rows-big", lambda b: struct.pack_into("<q", b, sk_rows, m_ + 1))
    put("sketch", "rows-full", lambda b: struct.pack_into("<q", b, sk_rows, m_))
    put("sketch", "rows-zero", lambda b: struct.pack_into("<q", b, sk_rows, 0))
    put("sketch", "B-beyond", lambda b: struct.pack_into("<f", b, sk_b + 4 * ((m_ - 1) * d), 1.0))
    put("sketch", "L-beyond", lambda b: struct.pack_into("<d", b, sk_l + 8 * (m_ * m_ - 1), 1.0))
    put("sketch", "L-diag-neg", lambda b: struct.pack_into("<d", b, sk_l, -1.0))
    diag_h = _at("diagonal", "h", d, 4)
    put("diagonal", "h-zero", lambda b: struct.pack_into("<f", b, diag_h + 8, 0.0))
    put("diagonal", "h-neg", lambda b: struct.pack_into("<f", b, diag_h, -3.0))
    # foreign files
    muts.append(("foreign-png", b"\x89PNG\r\n\x1a\n" + bytes(200)))
    muts.append(("foreign-json", b'{"theta": [1, 2, 3]}' + b" " * 150))
    muts.append(("foreign-empty", b""))
    muts.append(("foreign-zeros", bytes(300)))
    rng = np.random.default_rng(5)
    muts.append(("foreign-random", rng.integers(0, 256, 500, dtype=np.uint8).tobytes()))
    muts.append(("foreign-magic-random", b"EDGEOMD\0" + rng.integers(0, 256, 500, dtype=np.uint8).tobytes()))
    # oversized headers: a valid header claiming a huge payload, in a short file
    huge = bytearray(bases["exact"][:H])
    struct.pack_into("<I", huge, 12, 65536)
    struct.pack_into("<Q", huge, 128, SOLVERS["exact"].spec.payload_bytes(65536, 0, 4))
    muts.append(("oversized-exact-65536", bytes(huge) + bytes(64)))
    huge2 = bytearray(bases["sketch"][:H])
    struct.pack_into("<I", huge2, 12, 65536)
    struct.pack_into("<I", huge2, 16, 65536)
    struct.pack_into("<Q", huge2, 128, SOLVERS["sketch"].spec.payload_bytes(65536, 65536, 4))
    muts.append(("oversized-sketch-65536", bytes(huge2) + bytes(64)))

    verdicts = {}
    for label, data in muts:
        try:
            back = RewardModel.from_bytes(data)
            verdicts[label] = dict(ok=True, same=back.to_bytes() == data)
        except StateFormatError as e:
            verdicts[label] = dict(ok=False, error=str(e))
        with open(os.path.join(folder, label + ".bin"), "wb") as f:
            f.write(data)
    with open(os.path.join(folder, "verdicts.json"), "w") as f:
        json.dump(verdicts, f, indent=1, sort_keys=True)


JOURNAL_CASES = [("exact_float32", 12, dict(solver="exact", dtype="float32")),
                 ("sketch_float64", 12, dict(solver="sketch", dtype="float64", sketch_rank=3)),
                 ("cg_forget_float32", 10, dict(solver="cg", dtype="float32", forget=0.95)),
                 ("diagonal_float64", 10, dict(solver="diagonal", dtype="float64"))]


def _label_of(s):
    if s["kind"] == "one":
        return s["y"]
    if s["kind"] == "thumb":
        return 1.0 if s["up"] else 0.0
    if s["kind"] == "choice":
        return s["c"]
    return 1.0


def _encode(journal, epoch, seq, vectors, label, w, when):
    """One journal record as the Personalizer writes it (kind from the vectors' shape)."""
    return journal.encode(epoch, seq, vectors, label, w, kind=journal.kind_of(vectors), when=when)


def write_journal_cases(root):
    """Checkpoint after 4 updates + a journal of the rest (edge_omd/store/journal.py records, kinds 1
    and 2); damaged variants with Python's parse verdict and the state its replay gives."""
    from edge_omd.store import journal
    os.makedirs(root, exist_ok=True)
    names = []
    for ci, (name, d, cfg) in enumerate(JOURNAL_CASES):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        m = RewardModel(d, **cfg)
        steps = [s for s in _stream(d, 30, seed=300 + ci) if s["kind"] != "fantasize"]
        recs = []
        for k, s in enumerate(steps, 1):
            _apply(m, s)
            if k == 4:
                with open(os.path.join(folder, "checkpoint.eomd"), "wb") as f:
                    f.write(m.to_bytes())
            elif k > 4:
                vectors, label = _record(m, s)
                recs.append(dict(seq=m.t, z=vectors, label=label, w=s["w"]))
        with open(os.path.join(folder, "live.eomd"), "wb") as f:
            f.write(m.to_bytes())
        item = m._dtype.itemsize

        def enc(r, epoch=7, seq=None):
            return _encode(journal, epoch, r["seq"] if seq is None else seq, r["z"], r["label"], r["w"],
                           1234.5)

        blobs = [enc(r) for r in recs]
        glm = next(i for i in range(2, len(recs)) if recs[i]["z"].ndim == 1)   # a kind-1 record
        ch = next(i for i in range(2, len(recs)) if recs[i]["z"].ndim == 2)    # a kind-2 record
        assert any(r["z"].ndim == 2 and len(r["z"]) == MAX_K for r in recs)
        clean = b"".join(blobs)
        bad_crc = bytearray(clean)
        bad_crc[sum(map(len, blobs[:3])) + 70] ^= 4
        v2 = bytearray(blobs[2])
        struct.pack_into("<H", v2, 8, 2)
        v2 = _reseal(v2)
        k2 = bytearray(blobs[glm])
        struct.pack_into("<B", k2, 10, 2)  # a kind-2 header on one vector
        k2 = _reseal(k2)
        z, seq = recs[glm]["z"], recs[glm]["seq"]
        lab = journal.encode(7, seq, z, 1.5, 1.0, when=0.0)
        w0 = journal.encode(7, seq, z, 1.0, 0.0, when=0.0)
        other_d = journal.encode(7, seq, np.zeros(d + 1, z.dtype), 1.0, 1.0, when=0.0)

        def bad_choice(label):  # a choice record whose chosen index is not one of its rows
            b = bytearray(blobs[ch])
            struct.pack_into("<d", b, 40, label)
            return _reseal(b)
        k1 = bytearray(blobs[ch])
        struct.pack_into("<B", k1, 10, 1)  # a kind-1 header on k > 1 vectors
        k1 = _reseal(k1)
        before_glm, before_ch = b"".join(blobs[:glm]), b"".join(blobs[:ch])
        variants = {
            "clean": clean,
            "torn-tail": clean[:-10],
            "torn-header": clean + blobs[0][:30],
            "crc": bytes(bad_crc),
            "epoch": b"".join(blobs[:3]) + enc(recs[3], epoch=8) + b"".join(blobs[4:]),
            "seq-gap": b"".join(blobs[:3]) + b"".join(blobs[4:]),
            "older-first": enc(recs[0], seq=3) + enc(recs[0], seq=4) + clean,
            "version2": b"".join(blobs[:2]) + v2 + b"".join(blobs[3:]),
            "kind2": before_glm + k2,
            "label": before_glm + lab,
            "weight0": before_glm + w0,
            "other-dim": before_glm + other_d,
            "choice-index-k": before_ch + bad_choice(float(len(recs[ch]["z"]))),
            "choice-index-half": before_ch + bad_choice(0.5),
            "choice-index-neg": before_ch + bad_choice(-1.0),
            "choice-kind1": before_ch + k1,
            "choice-torn": before_ch + blobs[ch][:-7],
            "garbage": clean + b"\0" * 100,
            "empty": b"",
        }
        verdicts = {}
        for label, buf in variants.items():
            with open(os.path.join(folder, f"{label}.journal"), "wb") as f:
                f.write(buf)
            p = journal.parse(buf, epoch=7, after=4, dim=d, itemsize=item)
            rm = RewardModel.load(os.path.join(folder, "checkpoint.eomd"))
            for r in p.records:
                journal.apply(rm, r)
            with open(os.path.join(folder, f"{label}.replayed.eomd"), "wb") as f:
                f.write(rm.to_bytes())
            verdicts[label] = dict(n=len(p.records), ends=p.ends, skipped_end=p.skipped_end,
                                   stop=p.stop, stop_at=p.stop_at)
        assert verdicts["clean"]["n"] == len(recs)
        assert all(verdicts[v]["n"] == ch and verdicts[v]["stop"] for v in variants if v.startswith("choice-"))
        with open(os.path.join(folder, "case.json"), "w") as f:
            json.dump(dict(name=name, dim=d, itemsize=item, epoch=7, after=4, verdicts=verdicts), f, indent=1)
        names.append(name)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(names, f)
    write_folder_store(root)


#: The FolderStore users for the Java UserStore: every solver x dtype, and two with a radius
#: (step 3 of a choice on replay: M mode for the sketch, H mode for cg)
FOLDER_USERS = [(f"{s}_{dt}", dict(solver=s, dtype=dt, **extra))
                for s, extra in (("exact", {}), ("cg", dict(cg_steps=3)), ("sketch", dict(sketch_rank=3)),
                                 ("diagonal", {}))
                for dt in ("float32", "float64")]
FOLDER_USERS += [("sketch_radius_forget_float32", dict(solver="sketch", dtype="float32", sketch_rank=2,
                                                        radius=0.8, eta=2.0, forget=0.95)),
                 ("cg_radius_warmup_float64", dict(solver="cg", dtype="float64", cg_steps=4, lam_warmup=6,
                                                   radius=0.8, eta=2.0))]


def write_folder_store(root):
    """A Python FolderStore (root/folder_store) with the users of FOLDER_USERS, each: a checkpoint
    at 10 updates and a journal of the 17 that followed (pairs, thumbs, one-hot labels and
    choices among 2 to 16: kinds 1 and 2), Python's live model (folder_live/<user>.eomd), then 8
    more observations (users.json) and Python's state after each (folder_next/<user>.<k>.eomd):
    the Java UserStore opens each user (replaying the journal, choices included), must match the
    live model, continues with those observations, and hands the folder back (tests/android)."""
    from edge_omd.store import journal
    from edge_omd.store import FolderStore
    st = FolderStore(os.path.join(root, "folder_store"))
    for sub in ("folder_live", "folder_next"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    d, fp, users = 10, bytes(range(32)), []
    for ui, (user, cfg) in enumerate(FOLDER_USERS):
        m = RewardModel(d, head_fingerprint=fp, **cfg)
        with st.transaction(user, head_fingerprint=fp, dim=d) as tx:
            epoch = tx.create(m.to_bytes(), updates=0).epoch
        steps = [s for s in _stream(d, 60, seed=77 + ui) if s["kind"] != "fantasize"][:25]
        for k, s in enumerate(steps[:17], 1):
            _apply(m, s)
            vectors, label = _record(m, s)
            with st.transaction(user, head_fingerprint=fp, dim=d) as tx:
                tx.append([_encode(journal, epoch, m.t, vectors, label, s["w"], 1000.0 + k)])
                if k == 10:
                    tx.checkpoint(m.to_bytes(), updates=k)
        assert sum(s["kind"] == "choice" for s in steps[10:17]) >= 1, user
        with open(os.path.join(root, "folder_live", f"{user}.eomd"), "wb") as f:
            f.write(m.to_bytes())
        for k, s in enumerate(steps[17:], 1):
            _apply(m, s)
            with open(os.path.join(root, "folder_next", f"{user}.{k}.eomd"), "wb") as f:
                f.write(m.to_bytes())
        jcfg = {k: v for k, v in cfg.items()}
        users.append(dict(user=user, dim=d, config=jcfg, updates=17, next=steps[17:]))
    st.close() if hasattr(st, "close") else None
    with open(os.path.join(root, "users.json"), "w") as f:
        json.dump(users, f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--part", choices=("model", "tok", "all"), default="all")
    ap.add_argument("--texts", type=int, default=1200, help="texts per tokenizer head")
    args = ap.parse_args(argv)
    if args.part in ("model", "all"):
        write_model_cases(os.path.join(args.out, "model"))
        write_journal_cases(os.path.join(args.out, "journal"))
    if args.part in ("tok", "all"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import make_golden_tok
        make_golden_tok.write_tok_cases(os.path.join(args.out, "tok"), args.texts)


if __name__ == "__main__":
    main()
