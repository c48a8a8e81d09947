"""The versioned binary layout of one RewardModel state (format version 1).

Readable from any language (the Android reader uses java.nio + java.util.zip.CRC32): no pickle.
Everything little-endian. Layout:

    offset size  field
    0      8     magic            b"EDGEOMD\\0"
    8      2     u16 version      1
    10     1     u8  solver       1 exact, 2 cg, 3 sketch, 4 diagonal
    11     1     u8  dtype        4 float32, 8 float64 (itemsize of the large arrays)
    12     4     u32 dim          d
    16     4     u32 rank         sketch rank ell (0 for the other solvers)
    20     4     u32 cg_steps     K of the cg solver
    24     4     u32 flags        bit 0: radius set, bit 1: head fingerprint set
    28     4     u32 reserved     0
    32     8     u64 t            updates absorbed
    40     8     u64 lam_warmup   T of lambda_t = lambda_0 min(1, t/T) (0: constant)
    48     8     u64 budget       budget_bytes (0: unlimited)
    56     8     f64 eta
    64     8     f64 lam
    72     8     f64 radius       (0 when unset)
    80     8     f64 forget
    88     8     f64 cg_tol
    96     32    fingerprint      the feature head's fingerprint (zeros when unset): SHA-256 over
                                    graph, tokenizer and feature settings (edge_omd/_head_manifest.py)
    128    8     u64 payload_len  bytes that follow, up to the checksum
    136    ...   payload          the solver's arrays, in this order, C order:
                   exact:    theta (d), U (d, d) upper Cholesky factor of cal_H, phi = U theta (d) f64
                   cg:       theta (d), S (d, d) curvature sum (cal_H = lambda_t I + S)
                   sketch:   theta (d), B (2 ell, d), L (2 ell, 2 ell) f64, alpha (1) f64, rows (1) i64
                   diagonal: theta (d), h (d)
    end-4  4     u32 CRC-32 (zlib / java.util.zip polynomial) of every byte before it

A reader validates the header, computes the payload length the header implies, and refuses any
file whose length, payload_len or checksum disagree before allocating the state.
"""
import os
import struct
import tempfile
import zlib

import numpy as np

from edge_omd.errors import StateFormatError

MAGIC = b"EDGEOMD\x00"
VERSION = 1
HEADER = struct.Struct("<8sHBBIIIIIQQQddddd32sQ")
CRC = struct.Struct("<I")
MAX_DIM = 1 << 16
MAX_T = 1 << 62  # the update counter saturates here (never reached: 10^18 updates)
SOLVER_CODES = {1: "exact", 2: "cg", 3: "sketch", 4: "diagonal"}
DTYPES = {4: np.dtype("<f4"), 8: np.dtype("<f8")}
FLAG_RADIUS, FLAG_FINGERPRINT = 1, 2
assert HEADER.size == 136


def payload_spec(solver, d, itemsize, rank):
    """[(shape, dtype)] of the payload arrays, in file order."""
    F, f8, i8 = DTYPES[itemsize], np.dtype("<f8"), np.dtype("<i8")
    if solver == "exact":
        return [((d,), F), ((d, d), F), ((d,), f8)]
    if solver == "cg":
        return [((d,), F), ((d, d), F)]
    if solver == "sketch":
        m = 2 * rank
        return [((d,), F), ((m, d), F), ((m, m), f8), ((1,), f8), ((1,), i8)]
    return [((d,), F), ((d,), F)]


def _spec_bytes(spec):
    return sum(int(np.prod(shape)) * dt.itemsize for shape, dt in spec)


def encode(meta, arrays):
    """meta: dict of header fields; arrays: the solver's payload arrays. Returns bytes."""
    payload = b"".join(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
                       for a in arrays)
    flags = (FLAG_RADIUS if meta["radius"] is not None else 0) | \
            (FLAG_FINGERPRINT if meta["fingerprint"] is not None else 0)
    head = HEADER.pack(MAGIC, VERSION, meta["solver_code"], meta["itemsize"], meta["dim"],
                       meta["rank"] or 0, meta["cg_steps"], flags, 0, meta["t"], meta["lam_warmup"],
                       meta["budget"] or 0, meta["eta"], meta["lam"], meta["radius"] or 0.0,
                       meta["forget"], meta["cg_tol"], meta["fingerprint"] or bytes(32), len(payload))
    body = head + payload
    return body + CRC.pack(zlib.crc32(body) & 0xFFFFFFFF)


def decode_header(head):
    """Validate the fixed header; return (meta, expected total length). Raises StateFormatError."""
    if len(head) < HEADER.size:
        raise StateFormatError(f"state is truncated: {len(head)} bytes, the header alone is {HEADER.size}")
    (magic, version, code, itemsize, dim, rank, cg_steps, flags, _res, t, lam_warmup, budget, eta,
     lam, radius, forget, cg_tol, fingerprint, payload_len) = HEADER.unpack_from(head)
    if magic != MAGIC:
        raise StateFormatError("not an edge-omd state (bad magic bytes)")
    if version != VERSION:
        raise StateFormatError(f"state format version {version} is not supported (this SDK reads {VERSION})")
    if code not in SOLVER_CODES:
        raise StateFormatError(f"unknown solver code {code}")
    if itemsize not in DTYPES:
        raise StateFormatError(f"unknown dtype code {itemsize}")
    if not 1 <= dim <= MAX_DIM:
        raise StateFormatError(f"dim {dim} outside [1, {MAX_DIM}]")
    solver = SOLVER_CODES[code]
    if solver == "sketch" and not 1 <= rank <= dim:
        raise StateFormatError(f"sketch rank {rank} outside [1, dim={dim}]")
    if solver != "sketch" and rank != 0:
        raise StateFormatError(f"rank {rank} given for solver {solver!r}")
    if t > MAX_T:
        raise StateFormatError(f"update counter t={t} is beyond {MAX_T}")
    if flags & ~(FLAG_RADIUS | FLAG_FINGERPRINT):
        raise StateFormatError(f"unknown flags {flags:#x}")
    spec = payload_spec(solver, dim, itemsize, rank)
    if payload_len != _spec_bytes(spec):
        raise StateFormatError(f"payload length {payload_len} does not match the header "
                               f"({_spec_bytes(spec)} bytes for {solver}, d={dim})")
    meta = dict(solver=solver, solver_code=code, itemsize=itemsize, dim=dim, rank=rank or None,
                cg_steps=cg_steps, t=t, lam_warmup=lam_warmup, budget=budget or None, eta=eta,
                lam=lam, radius=radius if flags & FLAG_RADIUS else None, forget=forget,
                cg_tol=cg_tol, fingerprint=fingerprint if flags & FLAG_FINGERPRINT else None)
    return meta, spec, HEADER.size + payload_len + CRC.size


def decode(buf):
    """Validate everything (header, length, checksum); return (meta, [arrays])."""
    if isinstance(buf, memoryview):
        buf = buf.cast("B") if buf.c_contiguous else memoryview(buf.tobytes())
    else:
        buf = memoryview(buf)
    meta, spec, total = decode_header(buf[: HEADER.size])
    if len(buf) != total:
        raise StateFormatError(f"state is {len(buf)} bytes, the header says {total}")
    (crc,) = CRC.unpack_from(buf, total - CRC.size)
    if zlib.crc32(buf[: total - CRC.size]) & 0xFFFFFFFF != crc:
        raise StateFormatError("checksum mismatch: the state is corrupt")
    arrays, off = [], HEADER.size
    for shape, dt in spec:
        n = int(np.prod(shape)) * dt.itemsize
        arrays.append(np.frombuffer(buf, dtype=dt, count=n // dt.itemsize, offset=off).reshape(shape))
        off += n
    return meta, arrays


def read_file(path):
    """Read a state file, checking its header and size before reading the payload."""
    with open(path, "rb") as f:
        head = f.read(HEADER.size)
        _meta, _spec, total = decode_header(head)
        size = os.fstat(f.fileno()).st_size
        if size != total:
            raise StateFormatError(f"{path}: file is {size} bytes, the header says {total}")
        return head + f.read()


def write_file_atomic(path, data):
    """Write `data` to `path` atomically: temp file in the same folder, fsync, rename, fsync dir.

    An interrupted save leaves the previous file intact (the rename is the commit point).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".eomd", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
