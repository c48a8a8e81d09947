"""The journal record: one committed observation, as the model learned it (format version 1).

A user's persisted state is a CHECKPOINT (the RewardModel's bytes, docs/STATE_FORMAT.md) plus a
JOURNAL of the observations committed since: recovery = load the checkpoint, then learn every
journal record in order (`RewardModel._learn_observation`), which gives the live model's bytes
exactly (same kernels, same inputs, same order). Both stores (edge_omd/store/) keep the same
records: SQLite as one row each, the folder store as an append-only file of them back to back.
Layout (docs/JOURNAL_FORMAT.md), little-endian:

    offset size  field
    0      4     magic        b"EOJR"
    4      4     u32 length   bytes of the whole record, magic to CRC included
    8      2     u16 version  1
    10     1     u8  kind     1: GLM observation (k = 1, label y in [0, 1]);
                              2: choice among k vectors (2 <= k <= 16, label = chosen index)
    11     1     u8  itemsize 4 (float32) or 8 (float64): the state's dtype
    12     4     u32 dim      d
    16     4     u32 k        number of d-vectors that follow
    20     4     u32 flags    0
    24     8     u64 epoch    the user's incarnation: equals the checkpoint's epoch
    32     8     u64 seq      the observation counter after this record (checkpoint's + 1, + 2, ...)
    40     8     f64 label    y (kind 1) or the chosen index (kind 2)
    48     8     f64 weight   in (0, 1e6]
    56     8     f64 time     unix seconds of the commit (informative)
    64     k*d*itemsize       the vectors, row after row: kind 1: z exactly as the model used it
                              (a pair is z = phi_chosen - phi_rejected, converted once); kind 2:
                              the k candidates as the model used them (RewardModel._choice_input)
    end-4  4     u32 CRC-32 (zlib / java.util.zip polynomial) of every byte before it

Framing, checksum and refusal rules come from edge_omd/envelope.py (the one envelope of every
binary format, docs/FORMATS.md): `seal` writes the CRC, `crc_ok` checks it.

A reader stops at the first record that fails any check (`parse` says why): a torn record (a
crash in the middle of an append) fails its length or its checksum, and since every update
depends on the ones before it nothing after a bad record is ever applied.

Forward compatibility: every record version keeps its first 10 bytes (magic, u32 length, u16
version) and ends with the CRC-32 of the bytes before it. A record that is complete (its length
fits the data) and intact (CRC ok) but of a newer version, or of version 1 with a kind or flags
this SDK does not know, was written by a NEWER edge-omd: it is not damage. `check_one` reports
it with a `Newer` reason and `parse` sets `Parsed.newer`; the stores then refuse the user
(StoreError: upgrade) and never cut it, so a downgrade loses no acknowledged feedback.
"""
from __future__ import annotations

import math
import struct
import time
from typing import NamedTuple, Optional

import numpy as np

from edge_omd import envelope
from edge_omd.errors import StateFormatError
from edge_omd.solvers.mnl import MAX_K as CHOICE_MAX_K  # candidates of one choice

MAGIC = b"EOJR"
FRAME = struct.Struct("<4sIH")     # magic, length, version: the same in every record version
VERSION = 1
KIND_GLM, KIND_CHOICE = 1, 2
HEADER = struct.Struct("<4sIHBBIIIQQddd")
CRC = envelope.CRC
MAX_K = 1024
MAX_DIM = 1 << 16
MAX_WEIGHT = 1e6
MAX_SEQ = (1 << 62)
assert HEADER.size == 64
_DTYPES = {4: np.dtype("<f4"), 8: np.dtype("<f8")}


class Record(NamedTuple):
    """One decoded journal record."""
    kind: int
    epoch: int
    seq: int
    label: float
    weight: float
    time: float
    vectors: np.ndarray   # (k, d) in the state's dtype (read-only view of the record's bytes)

    @property
    def z(self) -> np.ndarray:
        """The observation vector of a kind-1 record."""
        return self.vectors[0]


def record_size(dim: int, itemsize: int, k: int = 1) -> int:
    """Bytes of one record with k d-vectors."""
    return HEADER.size + k * dim * itemsize + CRC.size


def encode(epoch: int, seq: int, vectors, label: float, weight: float, *,
           kind: int = KIND_GLM, when: Optional[float] = None) -> bytes:
    """One record. `vectors`: (d,) or (k, d) array of float32/float64, stored as given."""
    v = np.asarray(vectors)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.dtype.itemsize not in _DTYPES or v.dtype.kind != "f":
        raise StateFormatError(f"journal vectors must be (k, d) float32/float64, got {v.dtype} "
                               f"{v.shape}")
    k, d = v.shape
    if kind == KIND_GLM and k != 1:
        raise StateFormatError("a kind-1 (GLM) record holds exactly one vector")
    if kind == KIND_CHOICE and not (2 <= k <= CHOICE_MAX_K and float(label).is_integer()
                                    and 0 <= label < k):
        raise StateFormatError(f"a kind-2 (choice) record holds 2 to {CHOICE_MAX_K} vectors and "
                               f"the chosen index, got k={k}, label={label!r}")
    item = v.dtype.itemsize
    body = v.astype(_DTYPES[item], copy=False).tobytes()
    n = HEADER.size + len(body) + CRC.size
    head = HEADER.pack(MAGIC, n, VERSION, kind, item, d, k, 0, epoch, seq, float(label),
                       float(weight), time.time() if when is None else float(when))
    return envelope.seal(head + body)


class Newer(str):
    """The stop reason of a complete, checksummed record this SDK cannot read: a newer record
    version, or version 1 with a kind or flags it does not know. Written by a newer edge-omd,
    not damage: a reader refuses the user (upgrade) and never cuts it.

    version, kind: as stored (kind None when the version is not 1: its header is unknown);
    epoch, seq: the version-1 header's (None when the version is not 1)."""
    version: int
    kind: Optional[int]
    epoch: Optional[int]
    seq: Optional[int]

    def __new__(cls, text: str, version: int, kind=None, epoch=None, seq=None):
        out = super().__new__(cls, text)
        out.version, out.kind, out.epoch, out.seq = version, kind, epoch, seq
        return out


class Parsed(NamedTuple):
    records: list          # [Record] accepted, in order
    ends: list             # byte offset (relative to the buffer) just after each accepted record
    skipped_end: int       # offset after the records skipped as older than the checkpoint
    stop: Optional[str]    # why parsing stopped before the end of the buffer (None: clean end)
    stop_at: int           # offset where parsing stopped (== len(buf) when clean)
    newer: Optional[str] = None   # stop is a Newer record (written by a newer SDK): never cut


def _newer(buf, off: int, left: int) -> Optional[Newer]:
    """A Newer reason if the record at `off` is complete and intact but of a version, kind or
    flags this SDK does not know; None otherwise (the ordinary checks then say what it is).
    The header fields are looked at first: a record of a known kind costs no second CRC."""
    if left < FRAME.size:
        return None
    magic, n, version = FRAME.unpack_from(buf, off)
    if magic != MAGIC or not FRAME.size + CRC.size <= n <= left:
        return None
    if version == VERSION:
        if n < HEADER.size + CRC.size:
            return None
        (_m, _n, _v, kind, _item, _d, _k, flags, epoch, seq, _label, _weight,
         _when) = HEADER.unpack_from(buf, off)
        if kind in (KIND_GLM, KIND_CHOICE) and flags == 0:
            return None
        why = Newer(f"record {seq} of kind {kind} with flags {flags:#x}, which this SDK does not "
                    f"know (it reads kinds {KIND_GLM} and {KIND_CHOICE}, flags 0): written by a "
                    f"newer edge-omd", version, kind, epoch, seq)
    elif version > VERSION:
        why = Newer(f"record version {version} (this SDK reads {VERSION}): written by a newer "
                    f"edge-omd", version)
    else:
        return None
    return why if envelope.crc_ok(buf, off, off + n) else None


def check_one(buf, off: int, *, dim: int, itemsize: int):
    """(record, next offset) of the record at `off`, or (None, reason) if it is not a valid one.

    Checks, in this order: the magic, the length against what is left and against the size
    that (dim, itemsize, k) imply, the checksum, the version, kind, flags, label, weight and
    the vector's finiteness. A complete, checksummed record of a newer version or an unknown
    kind / flags gives a `Newer` reason (not damage: see the module docstring)."""
    left = len(buf) - off
    if left < HEADER.size + CRC.size:
        return None, _newer(buf, off, left) or f"torn record: {left} bytes at the end"
    (magic, n, version, kind, item, d, k, flags, epoch, seq, label, weight,
     when) = HEADER.unpack_from(buf, off)
    if magic != MAGIC:
        return None, "bad magic (not the start of a record)"
    if version != VERSION or flags != 0 or kind not in (KIND_GLM, KIND_CHOICE):
        newer = _newer(buf, off, left)   # (a known version, kind and flags: never Newer)
        if newer is not None:
            return None, newer
    if not 0 < k <= MAX_K or n != record_size(d, item if item in _DTYPES else 0, k) \
            or item not in _DTYPES:
        return None, f"inconsistent record length {n} (k={k}, d={d}, itemsize={item})"
    if n > left:
        return None, f"torn record: {left} of {n} bytes"
    if not envelope.crc_ok(buf, off, off + n):
        return None, "checksum mismatch"
    if version != VERSION:
        return None, f"record version {version} (this SDK reads {VERSION})"
    if d != dim or item != itemsize:
        return None, f"record for d={d}/itemsize {item}, the state has d={dim}/itemsize {itemsize}"
    if not (kind == KIND_GLM and k == 1 or kind == KIND_CHOICE and 2 <= k <= CHOICE_MAX_K) \
            or flags != 0:
        return None, f"record kind {kind} with k={k}, flags {flags:#x} is not supported"
    if kind == KIND_GLM and not (math.isfinite(label) and 0.0 <= label <= 1.0):
        return None, f"label {label!r} outside [0, 1]"
    if kind == KIND_CHOICE and not (math.isfinite(label) and label.is_integer()
                                    and 0 <= label < k):
        return None, f"chosen index {label!r} is not one of the record's {k} vectors"
    if not (math.isfinite(weight) and 0.0 < weight <= MAX_WEIGHT):
        return None, f"weight {weight!r} outside (0, {MAX_WEIGHT:g}]"
    if seq > MAX_SEQ:
        return None, f"seq {seq} beyond {MAX_SEQ}"
    vec = np.frombuffer(buf, dtype=_DTYPES[item], count=k * d,
                        offset=off + HEADER.size).reshape(k, d)
    if not np.isfinite(vec).all():  # docs/JOURNAL_FORMAT.md check 5, as the Java reader does
        return None, "the record's vector is not finite"
    return Record(kind, epoch, seq, label, weight, when, vec), off + n


def parse(buf, *, epoch: int, after: int, dim: int, itemsize: int, start: int = 0,
          skip_older: bool = True) -> Parsed:
    """The valid records of `buf[start:]` that continue a state at counter `after`.

    Records with seq <= after are skipped first when `skip_older` (what a crash between a
    checkpoint and the journal's truncation leaves behind); then every record must have the
    checkpoint's epoch and seq = after + 1, after + 2, ...; parsing stops at the first that
    does not (or is torn / corrupt) and says why.

    A Newer record (written by a newer SDK) stops parsing with `newer` set, except a version-1
    one that the sequence rules above would skip (older than the checkpoint: it is in the
    state) or stop at as damage (another incarnation, a gap), exactly as a known kind."""
    records, ends = [], []
    off = start
    skipped_end = start
    expect = after + 1
    while off < len(buf):
        rec, nxt = check_one(buf, off, dim=dim, itemsize=itemsize)
        if rec is None and isinstance(nxt, Newer):
            if nxt.seq is None:
                return Parsed(records, ends, skipped_end, nxt, off, nxt)
            n = FRAME.unpack_from(buf, off)[1]
            if skip_older and not records and nxt.seq <= after:
                off = skipped_end = off + n
                continue
            if nxt.epoch != epoch:
                return Parsed(records, ends, skipped_end,
                              f"record of another incarnation (epoch {nxt.epoch}, expected "
                              f"{epoch})", off)
            if nxt.seq != expect:
                return Parsed(records, ends, skipped_end,
                              f"record seq {nxt.seq}, expected {expect}", off)
            return Parsed(records, ends, skipped_end, nxt, off, nxt)
        if rec is None:
            return Parsed(records, ends, skipped_end, nxt, off)
        if skip_older and not records and rec.seq <= after:
            off = skipped_end = nxt
            continue
        if rec.epoch != epoch:
            return Parsed(records, ends, skipped_end,
                          f"record of another incarnation (epoch {rec.epoch}, expected {epoch})",
                          off)
        if rec.seq != expect:
            return Parsed(records, ends, skipped_end,
                          f"record seq {rec.seq}, expected {expect}", off)
        records.append(rec)
        off = nxt
        ends.append(off)
        expect += 1
    return Parsed(records, ends, skipped_end, None, off)


def apply(model, rec: Record) -> None:
    """Learn one record on `model` exactly as the live model learned it."""
    learn(model, rec.vectors if rec.kind == KIND_CHOICE else rec.z, rec.label, rec.weight)


def kind_of(vectors) -> int:
    """The record kind of an observation as `learn` takes it: (d,) z: 1; (k, d) candidates: 2."""
    return KIND_CHOICE if np.ndim(vectors) == 2 else KIND_GLM


def learn(model, vectors, label: float, weight: float) -> None:
    """Learn one observation exactly as given: a (d,) z with its label y
    (RewardModel._learn_observation) or the (k, d) candidates of a choice with the picked index
    (RewardModel._learn_choice_observation)."""
    if kind_of(vectors) == KIND_CHOICE:
        model._learn_choice_observation(vectors, int(label), weight)
    else:
        model._learn_observation(vectors, label, weight)
