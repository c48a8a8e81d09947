"""The population pack: where a new user starts, as one versioned, checksummed file.

A pack is a Gaussian prior on a user's theta, fitted from many users' feedback
(edge_omd/population/fit.py) and bound to the feature head the feedback was embedded by:

    theta ~ N(theta_pop, cal_H_0^{-1}),   cal_H_0 = (lam + c) I + sign V^T V,

    sign = -1 (a pack fitted by user): V (K, d) holds the K directions in which users deviate
        from the population, every eigenvalue s_k of V V^T at most c, so cal_H_0 is weak
        (precision lam + c - s_k >= lam) along them and firm (lam + c) everywhere else;
    sign = +1 (no user ids: today's population prior, edge_omd/prior.py, as a pack):
        cal_H_0 = lam I + strength (c_0 I + V_0^T V_0), K = the prior's rank (0 by default).

A new user (and `reset`) starts at theta = theta_pop, cal_H = cal_H_0 and learns with the SDK's
unchanged one-pass OMD: OMD has no pull towards 0, so the start is the whole offset, and the
kernels, the journal and the state format do not change. The model's lam is the pack's (a
model with another lam refuses it). `Solver.start(theta0, c, V, sign)` sets the state: exact and
cg hold cal_H_0 exactly, diagonal its diagonal, the sketch (alpha I + B B^T) cannot hold sign -1
and refuses it (docs/ALGORITHM.md, "Population pack").

    >>> import numpy as np
    >>> from edge_omd.population import Pack
    >>> q = np.array([[1.0, 0.0, 0.0]])
    >>> pack = Pack(np.array([0.5, 0.0, 0.0]), lam=0.1, c=9.9, V=np.sqrt(9.9) * q, sign=-1.0,
    ...             pack_id="doc")
    >>> np.round(np.diag(pack.precision()), 6).tolist()     # weak along q, firm elsewhere
    [0.1, 10.0, 10.0]
    >>> Pack.from_bytes(pack.to_bytes()) == pack, len(pack.digest)
    (True, 32)

File (docs/FORMATS.md, "Population pack"): envelope.pack_json(b"EOMDPOP1", JSON header,
theta_pop f64[d] | V f64[K d]), CRC-32. `load` also reads prior files (b"EOMDPRI1") as packs, so
old priors keep working. `digest` = SHA-256 of the pack's bytes: the store record keeps it, so a
user's record says which pack they learned against (edge_omd/head/registry.py migrates them).
Runtime code: numpy only.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from edge_omd import _checks, envelope
from edge_omd.config import MAX_DIM, MAX_LAM, MIN_LAM
from edge_omd.errors import ConfigError, StateFormatError

__all__ = ["Pack", "to_bytes", "from_bytes", "save", "load", "MAGIC", "VERSION", "MAX_K",
           "MAX_PACK_ID"]

MAGIC = b"EOMDPOP1"
VERSION = 1
#: the most directions a pack holds (a 4096-dim pack of this K is 32 MiB)
MAX_K = 1024
#: the longest pack id (set by whoever fits the pack, e.g. "acme-minilm-2026-12")
MAX_PACK_ID = 128
#: sign -1: the largest eigenvalue of V V^T may pass c by this relative rounding (the fit builds
#: V = sqrt(s) Q from an eigendecomposition, whose rows are orthonormal to ~1e-15)
_SIGN_TOL = 1e-9
_F8 = np.dtype("<f8")


def _array(x, name, shape, error=ConfigError) -> np.ndarray:
    """A read-only float64 copy of a real array of this shape, every entry finite."""
    try:
        a = np.array(x, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise error(f"pack {name} is not an array of real numbers: {exc}") from exc
    if a.shape != shape:
        raise error(f"pack {name} must have shape {shape}, got {a.shape}")
    if not np.isfinite(a).all():
        raise error(f"pack {name} contains NaN or inf")
    a.flags.writeable = False
    return a


def _json_value(x, where: str, depth: int = 0):
    """x if it is plain JSON (dict of str, list, str, bool, None, finite number), else
    ConfigError: the pack's `fit` record must survive the file unchanged."""
    if depth > 8:
        raise ConfigError(f"pack fit record: {where} is nested too deeply")
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        if not math.isfinite(float(x)):
            raise ConfigError(f"pack fit record: {where} is not finite")
        return float(x)
    if isinstance(x, (list, tuple)):
        return [_json_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(x)]
    if isinstance(x, dict):
        if not all(isinstance(k, str) for k in x):
            raise ConfigError(f"pack fit record: {where} has a key that is not a string")
        return {k: _json_value(v, f"{where}.{k}", depth + 1) for k, v in x.items()}
    raise ConfigError(f"pack fit record: {where} is a {type(x).__name__}, not JSON")


@dataclass(frozen=True, eq=False)
class Pack:
    """A population pack (module docstring): a new user's start theta = theta0, cal_H_0 =
    (lam + c) I + sign V^T V. Arrays are read-only float64 copies; every field is checked
    (ConfigError). `fit_population` makes one; `Pack.from_prior` turns a Prior into one."""
    theta0: np.ndarray                    # (d,) theta_pop: the population's reward
    lam: float                            # the users' models' lam (they must have it)
    c: float                              # >= 0: cal_H_0 = (lam + c) I + sign V^T V
    V: np.ndarray                         # (K, d), K <= min(d, MAX_K)
    sign: float = -1.0                    # -1 (deviation directions) or +1 (a prior's H_0)
    pack_id: str = ""                     # set by whoever fits it: name and version
    fingerprint: Optional[bytes] = None   # the head the features came from (32 bytes)
    fit: dict = field(default_factory=dict)   # how it was fitted (plain JSON; informative)

    def __post_init__(self):
        put = object.__setattr__
        try:
            theta0 = np.asarray(self.theta0)
        except Exception as exc:  # ragged lists and the like
            raise ConfigError(f"pack theta0 is not an array of real numbers: {exc}") from exc
        if theta0.ndim != 1 or not 1 <= theta0.shape[0] <= MAX_DIM:
            raise ConfigError(f"pack theta0 must be a vector of 1 to {MAX_DIM} entries, got "
                              f"shape {theta0.shape}")
        d = theta0.shape[0]
        put(self, "theta0", _array(theta0, "theta0", (d,)))
        try:
            V = np.asarray(self.V, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"pack V is not an array of real numbers: {exc}") from exc
        if V.ndim != 2 or V.shape[1] != d or V.shape[0] > min(d, MAX_K):
            raise ConfigError(f"pack V must have shape (K, {d}) with K <= {min(d, MAX_K)}, "
                              f"got {V.shape}")
        put(self, "V", _array(V, "V", V.shape))
        put(self, "lam", _checks.real_in("pack lam", self.lam, MIN_LAM, MAX_LAM, ConfigError))
        put(self, "c", _checks.at_least("pack c", self.c, 0.0, ConfigError))
        if isinstance(self.sign, bool) or self.sign not in (-1, 1):
            raise ConfigError(f"pack sign must be -1.0 or +1.0, got {self.sign!r}")
        put(self, "sign", float(self.sign))
        if self.sign < 0 and self.K:
            top = float(np.linalg.eigvalsh(self.V @ self.V.T)[-1])
            if not top <= self.c * (1.0 + _SIGN_TOL):
                raise ConfigError(
                    f"pack V has an eigenvalue {top:.6g} of V V^T above c = {self.c:.6g}: "
                    "cal_H_0 = (lam + c) I - V^T V would be weaker than lam I (or not positive "
                    "definite); raise c or scale V down")
        if not isinstance(self.pack_id, str) or len(self.pack_id) > MAX_PACK_ID:
            raise ConfigError(f"pack_id must be a string of at most {MAX_PACK_ID} characters, "
                              f"got {self.pack_id!r:.60}")
        if self.fingerprint is not None:
            put(self, "fingerprint", _checks.fingerprint(self.fingerprint, ConfigError))
        if not isinstance(self.fit, dict):
            raise ConfigError(f"pack fit must be a dict, got {type(self.fit).__name__}")
        put(self, "fit", _json_value(self.fit, "fit"))
        put(self, "_digest", None)

    # ---------------------------------------------------------------- views
    @property
    def dim(self) -> int:
        return int(self.theta0.shape[0])

    @property
    def K(self) -> int:
        """The number of directions (rows of V)."""
        return int(self.V.shape[0])

    @property
    def digest(self) -> bytes:
        """SHA-256 of the pack's file (`to_bytes`; a pack read from bytes: of those bytes, as
        the Java reader computes it): what a store record keeps of it."""
        if self._digest is None:
            object.__setattr__(self, "_digest", hashlib.sha256(to_bytes(self)).digest())
        return self._digest

    def start(self):
        """(theta0, c, V, sign): `Solver.start`'s arguments (cal_H_0 = (lam + c) I + sign
        V^T V with the model's lam, which must equal self.lam)."""
        return self.theta0, self.c, self.V, self.sign

    def precision(self) -> np.ndarray:
        """cal_H_0, dense (d, d) float64 (tests, benches, migrations)."""
        H = self.sign * (self.V.T @ self.V)
        H.flat[:: self.dim + 1] += self.lam + self.c
        return H

    def precisions(self) -> np.ndarray:
        """The eigenvalues of cal_H_0 along V's directions (sign -1: lam + c - s_k), (K,)."""
        s = np.linalg.eigvalsh(self.V @ self.V.T)[::-1] if self.K else np.zeros(0)
        return self.lam + self.c + self.sign * s

    @classmethod
    def from_prior(cls, prior) -> "Pack":
        """A population prior (edge_omd.prior.Prior) as a pack: the same start theta0,
        cal_H_0 = lam I + strength (c_0 I + V_0^T V_0) (sign +1); pack_id "prior"."""
        from edge_omd.prior import Prior
        if not isinstance(prior, Prior):
            raise ConfigError(f"from_prior needs an edge_omd.prior.Prior, got "
                              f"{type(prior).__name__}")
        theta0, c, V = prior.start()
        return cls(theta0, prior.lam, c, V, 1.0, "prior", prior.fingerprint,
                   {"kind": "prior", "strength": prior.strength, "rank": prior.rank,
                    "n_pairs": prior.n_pairs})

    def __eq__(self, other):
        if not isinstance(other, Pack):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None

    def __repr__(self):
        fp = "None" if self.fingerprint is None else self.fingerprint.hex()[:16] + "..."
        return (f"Pack({self.pack_id!r}, dim={self.dim}, K={self.K}, lam={self.lam:.4g}, "
                f"c={self.c:.4g}, sign={self.sign:+g}, fingerprint={fp}, "
                f"digest={self.digest.hex()[:16]}...)")

    def to_bytes(self) -> bytes:
        return to_bytes(self)

    @classmethod
    def from_bytes(cls, buf) -> "Pack":
        return from_bytes(buf)

    def save(self, path) -> None:
        save(path, self)

    @classmethod
    def load(cls, path) -> "Pack":
        return load(path)


# -------------------------------------------------------------------- the file format
def to_bytes(pack: Pack) -> bytes:
    """magic b"EOMDPOP1" | u32 n | JSON header (n bytes) | theta0 f64[d] | V f64[K d] |
    u32 CRC-32 (docs/FORMATS.md). Deterministic: the same pack gives the same bytes."""
    if not isinstance(pack, Pack):
        raise ConfigError(f"to_bytes needs a Pack, got {type(pack).__name__}")
    header = {
        "format_version": VERSION, "pack_id": pack.pack_id, "dim": pack.dim, "k": pack.K,
        "lam": pack.lam, "c": pack.c, "sign": pack.sign,
        "head_fingerprint": None if pack.fingerprint is None else pack.fingerprint.hex(),
        "fit": pack.fit,
    }
    body = b"".join(np.ascontiguousarray(a, dtype=_F8).tobytes() for a in (pack.theta0, pack.V))
    return envelope.pack_json(MAGIC, header, body)


_FIX = "write it again with `edge-omd population fit` or Pack.save"


def from_bytes(buf) -> Pack:
    """The Pack of `to_bytes` output, or of a prior file (b"EOMDPRI1", as `Pack.from_prior`).
    Every refusal (bad magic, truncation, checksum, version, a field out of range, a body
    length other than the header implies, a non-finite value, sign -1 with V V^T above c) is a
    StateFormatError, raised before anything is built."""
    from edge_omd import prior as _prior
    view = envelope.as_bytes_view(buf, "the population pack")
    if bytes(view[:len(_prior.MAGIC)]) == _prior.MAGIC:
        return Pack.from_prior(_prior.from_bytes(view))
    what = "the population pack"
    _magic, h, body = envelope.unpack_json(view, (MAGIC,), what, _FIX)
    w = "the population pack's header"
    version = envelope.field_int(h, "format_version", 0, (1 << 31) - 1, w)
    if version != VERSION:
        raise StateFormatError(f"{w}: format_version {version} is not {VERSION}; upgrade "
                               f"edge-omd or {_FIX}")
    pack_id = envelope.field_str(h, "pack_id", w, MAX_PACK_ID)
    d = envelope.field_int(h, "dim", 1, MAX_DIM, w)
    k = envelope.field_int(h, "k", 0, min(d, MAX_K), w)
    lam = envelope.field_real(h, "lam", w)
    c = envelope.field_real(h, "c", w)
    sign = envelope.field_real(h, "sign", w)
    if not MIN_LAM <= lam <= MAX_LAM or c < 0 or sign not in (-1.0, 1.0):
        raise StateFormatError(f"{w}: lam must be in [{MIN_LAM:g}, {MAX_LAM:g}], c >= 0, sign "
                               f"-1 or 1, got {lam!r}, {c!r}, {sign!r}; {_FIX}")
    if "head_fingerprint" not in h:
        raise StateFormatError(f"{w}: field 'head_fingerprint' is missing; {_FIX}")
    fingerprint = envelope.field_hex(h, "head_fingerprint", 32, w, optional=True)
    fit = h.get("fit")
    if not isinstance(fit, dict):
        raise StateFormatError(f"{w}: field 'fit' must be an object, got {fit!r:.40}")
    if len(body) != 8 * d * (k + 1):
        raise StateFormatError(f"{what} is corrupt: its body is {len(body)} bytes, the header "
                               f"(d={d}, k={k}) says {8 * d * (k + 1)}; {_FIX}")
    flat = np.frombuffer(body, dtype=_F8).astype(np.float64)
    if not np.isfinite(flat).all():
        raise StateFormatError(f"{what} holds NaN or inf; {_FIX}")
    try:
        pack = Pack(flat[:d], lam, c, flat[d:].reshape(k, d), sign, pack_id, fingerprint, fit)
    except ConfigError as exc:
        raise StateFormatError(f"{what} is inconsistent: {exc}; {_FIX}") from exc
    # the digest names the file as shipped (a reader that re-encoded it, e.g. on the phone,
    # could not reproduce a header written by another version)
    object.__setattr__(pack, "_digest", hashlib.sha256(bytes(view)).digest())
    return pack


def save(path, pack: Pack) -> None:
    """Write `pack` to `path` atomically (envelope.write_atomic)."""
    data = to_bytes(pack)
    envelope.write_atomic(_checks.path("path", path), data)


def load(path) -> Pack:
    """Read a pack written by `save`, or a prior file of `edge-omd prior` (StateFormatError if
    it is neither; OSError for a missing file)."""
    limit = envelope.MAX_JSON_HEADER + 64 + 8 * MAX_DIM * (MAX_K + 2)
    return from_bytes(envelope.read_limited(_checks.path("path", path), limit, str(path)))
