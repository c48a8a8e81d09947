"""Structure-aware fuzz of RewardModel.from_bytes (issue 12, item 3's loader part).

Every solver x dtype x variant is learned a little, saved, then mutated where the loader must
look: header fields (counters, hyperparameters, flags, codes) and payload values (NaN, inf,
huge, tiny, sign flips, one-ulp nudges, asymmetry, entries below a triangle, wrong row
counters ...). The CRC is recomputed so each mutation reaches the checks behind it.

Each case ends in StateFormatError or an accepted state; an accepted state is then USED
(learn_pair, learn_one, fantasize, reward, width, save/load round trip): every call returns
finite numbers and leaves a finite state that loads again, or raises NumericalError with the
state unchanged. Anything else (a raw exception, a non-finite number) is a failure. Time per case
is bounded by construction (cg steps and projection steps are capped in the kernels); no wall
time is asserted.

Quick: 2,000 cases (200 with NUMBA_DISABLE_JIT). Long: EDGE_OMD_LONG=1, 100,000 cases.
"""
import collections
import os
import struct
import zlib

import numpy as np
import pytest

from edge_omd import NumericalError, RewardModel, StateFormatError, state_format
from edge_omd._numba import JIT_DISABLED
from tests.runtime.streams import feed, mixed_stream

LONG = os.environ.get("EDGE_OMD_LONG", "") not in ("", "0")
CASES = 100_000 if LONG else (200 if JIT_DISABLED else 2_000)
D = 5
HEADER = struct.Struct("<8sHBBIIIIIQQQddddd32sQ")  # docs/STATE_FORMAT.md, 136 bytes
NAMES = ("magic", "version", "solver", "itemsize", "dim", "rank", "cg_steps", "flags", "reserved",
         "t", "lam_warmup", "budget", "eta", "lam", "radius", "forget", "cg_tol", "fingerprint",
         "payload_len")
assert HEADER.size == state_format.HEADER.size == 136


def _variants():
    out = []
    for solver in ("exact", "cg", "sketch", "diagonal"):
        for dtype in ("float32", "float64"):
            kw = dict(solver=solver, dtype=dtype, sketch_rank=2 if solver == "sketch" else None)
            out.append((dict(kw), 0))                       # fresh: theta = 0, cal_H = lam I
            out.append((dict(kw), 40))                      # learned
            full = dict(kw, radius=0.8, head_fingerprint=bytes(range(32)))
            if solver != "exact":
                full.update(forget=0.97)
            if solver == "cg":
                full.update(lam_warmup=7, cg_steps=4)
            out.append((full, 40))
    return out


def _base_states():
    states = []
    for cfg, n in _variants():
        m = RewardModel(D, **cfg)
        for kind, args, w in mixed_stream(D, n, seed=n + len(states)):
            feed(m, kind, args, w)
        states.append(m.to_bytes())
    return states


def _split(data):
    head = list(HEADER.unpack_from(data))
    _config, _t, _fp, arrays = state_format.decode(data)
    return head, [a.copy() for a in arrays]


def _join(head, arrays):
    payload = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
    body = HEADER.pack(*head) + payload
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def _value(rng, x, kind):
    """A replacement for the number x."""
    choices = [np.nan, np.inf, -np.inf, 0.0, -x, x * 1e30, x * 1e-30, 1e38, 3.4e38, 1e-45, 1e-300,
               1e300, np.nextafter(x, np.inf), np.nextafter(x, -np.inf), x * (1 + 1e-3),
               x * (1 - 1e-3), float(rng.normal()) * 10.0 ** rng.integers(-40, 40), -1e-7, 1e-7]
    if kind == "i":
        choices = [-1, 0, 1, 2, 3, 4, 5, 2 ** 62, -2 ** 63, int(x) + 1, int(x) - 1]
        return (choices[rng.integers(len(choices))] + 2 ** 63) % 2 ** 64 - 2 ** 63  # int64
    return choices[rng.integers(len(choices))]


def _mutate_header(rng, head):
    i = NAMES.index(rng.choice(["t", "lam_warmup", "budget", "eta", "lam", "radius", "forget",
                                "cg_tol", "cg_steps", "flags", "reserved", "version", "solver",
                                "itemsize", "dim", "rank"]))
    name = NAMES[i]
    if name in ("eta", "lam", "radius", "forget", "cg_tol"):
        head[i] = float(_value(rng, head[i] if head[i] else 1.0, "f"))
        if name == "radius" and rng.uniform() < 0.5:
            head[NAMES.index("flags")] |= 1
    else:
        bits = {"version": 16, "solver": 8, "itemsize": 8}.get(name, 64 if name in ("t", "lam_warmup", "budget") else 32)
        cand = [0, 1, 2, 3, 4, 8, head[i] + 1, max(head[i] - 1, 0), 2 ** 62, 2 ** 62 + 1,
                2 ** 20, 2 ** 20 + 1, 2 ** bits - 1, int(rng.integers(0, 2 ** min(bits, 62)))]
        head[i] = int(cand[rng.integers(len(cand))]) % (2 ** bits)
    return f"header.{name}"


@np.errstate(over="ignore")  # 1e300 into a float32 array is inf: refused as non-finite
def _mutate_payload(rng, solver, arrays):
    j = int(rng.integers(len(arrays)))
    a = arrays[j]
    flat = a.reshape(-1)
    if a.ndim == 2 and rng.uniform() < 0.6:
        n = a.shape[0]
        r, c = int(rng.integers(n)), int(rng.integers(a.shape[1]))
        where = rng.choice(["diag", "lower", "upper", "swap"])
        if where == "diag":
            c = min(r, a.shape[1] - 1)
            r = c
        elif where == "lower" and r > 0:
            c = int(rng.integers(min(r, a.shape[1])))
        elif where == "upper" and c < a.shape[1] - 1:
            r, c = min(r, c), max(r, c) + (1 if r == c else 0)
            c = min(c, a.shape[1] - 1)
        if where == "swap" and c < n and r < a.shape[1]:
            a[r, c], a[c, r] = a[c, r] * (1 + 1e-2) + 1e-3, a[r, c]
            return f"payload.{j}.asym"
        a[r, c] = _value(rng, float(a[r, c]), a.dtype.kind)
        return f"payload.{j}.{where}"
    k = int(rng.integers(flat.shape[0]))
    if rng.uniform() < 0.1:
        flat[:] = -flat if a.dtype.kind == "f" else flat
        return f"payload.{j}.negate"
    flat[k] = _value(rng, float(flat[k]), a.dtype.kind)
    return f"payload.{j}.value"


def _finite(x):
    return bool(np.all(np.isfinite(np.asarray(x, dtype=np.float64))))


def _use(model, rng):
    """Every verb on an accepted state: finite results, or NumericalError with the state kept."""
    d = model.dim
    for scale in (1.0, float(10.0 ** rng.integers(-6, 5))):
        a = rng.normal(size=d) / np.sqrt(d) * scale
        b = rng.normal(size=d) / np.sqrt(d) * scale
        for verb in (lambda: model.learn_pair(a, b), lambda: model.learn_one(a, float(rng.uniform())),
                     lambda: model.learn_thumb(b, bool(rng.integers(2))), lambda: model.fantasize(a)):
            before = model.to_bytes()
            try:
                verb()
            except NumericalError:
                assert model.to_bytes() == before, "a refused update changed the state"
            assert _finite(model.theta), "theta is not finite"
    Phi = rng.normal(size=(3, d))
    for out in (model.reward(Phi), model.width(Phi), model.width(Phi, ref=Phi[0])):
        assert out.shape == (3,) and _finite(out), f"non-finite output {out}"
    data = model.to_bytes()
    again = RewardModel.from_bytes(data)  # an accepted, used state loads again, byte for byte
    assert again.to_bytes() == data


def _fuzz(n_cases, seed):
    rng = np.random.default_rng(seed)
    bases = _base_states()
    counts = collections.Counter()
    for case in range(n_cases):
        base = bases[case % len(bases)]
        head, arrays = _split(base)
        solver = state_format.decode(base)[0].solver
        what = []
        for _ in range(int(rng.integers(1, 4))):
            if rng.uniform() < 0.3:
                what.append(_mutate_header(rng, head))
            else:
                what.append(_mutate_payload(rng, solver, arrays))
        try:
            data = _join(head, arrays)
        except struct.error:
            counts["unencodable"] += 1
            continue
        try:
            model = RewardModel.from_bytes(data)
        except StateFormatError as e:
            counts["refused: " + _reason(str(e))] += 1
            continue
        except Exception as e:  # noqa: BLE001  (the point: nothing else may escape)
            raise AssertionError(f"case {case} ({what}, {solver}): raw {type(e).__name__}: {e}") from e
        counts["accepted"] += 1
        try:
            _use(model, rng)
        except (AssertionError, Exception) as e:
            raise AssertionError(f"case {case} ({what}, {solver}) accepted, then "
                                 f"{type(e).__name__}: {e}") from e
    return counts


def _reason(msg):
    """A short class of a refusal message (its words up to the first number or colon)."""
    words = []
    for w in msg.replace(":", " :").split():
        if w == ":" or any(ch.isdigit() for ch in w) or len(words) == 6:
            break
        words.append(w)
    return " ".join(words)


def test_loader_fuzz_every_solver_and_dtype():
    counts = _fuzz(CASES, seed=12)
    total = sum(counts.values())
    print(f"\nloader fuzz: {total} cases, {counts['accepted']} accepted")
    for k, v in counts.most_common():
        print(f"  {v:7d}  {k}")
    assert total == CASES
    assert counts["accepted"] > 0.05 * CASES              # mutations that keep a usable state
    assert total - counts["accepted"] > 0.3 * CASES       # and many that reach the checks


@pytest.mark.parametrize("solver", ["exact", "cg", "sketch", "diagonal"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unmutated_states_load_and_use(solver, dtype):
    m = RewardModel(D, solver=solver, dtype=dtype, sketch_rank=2 if solver == "sketch" else None)
    for kind, args, w in mixed_stream(D, 30, seed=3):
        feed(m, kind, args, w)
    _use(RewardModel.from_bytes(m.to_bytes()), np.random.default_rng(0))
