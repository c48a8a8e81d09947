"""The versioned binary layout of one RewardModel state (format version 1).

Readable from any language (the Android reader uses java.nio + java.util.zip.CRC32): no pickle.
Everything little-endian: a fixed 136-byte header (`HEADER_FIELDS`, in order), the solver's
payload arrays in C order (their names, shapes and dtypes are the solver's spec,
edge_omd/solvers/base.py; the table in docs/STATE_FORMAT.md is generated from both), then the
CRC-32 of every byte before it (edge_omd/envelope.py).

The model's settings are written from and read into its ModelConfig (edge_omd/config.py,
`to_header` / `from_header`); t and the head fingerprint are the state's own fields.

A reader validates the header, computes the payload length the header implies, and refuses any
file whose length, payload_len or checksum disagree before allocating the state; then each
setting outside its range and any non-finite payload value. Every refusal is a StateFormatError.
"""
import os
import struct

import numpy as np

from edge_omd import _checks, envelope
from edge_omd.config import DTYPE_OF_ITEMSIZE, MAX_COUNT, MAX_DIM, ModelConfig
from edge_omd.errors import ConfigError, StateFormatError
from edge_omd.solvers import SOLVERS, by_code

MAGIC = b"EDGEOMD\x00"
VERSION = 1
MAX_T = MAX_COUNT  # the update counter saturates here (never reached: 10^18 updates)
DTYPES = {k: np.dtype(name).newbyteorder("<") for k, name in DTYPE_OF_ITEMSIZE.items()}
FLAG_RADIUS, FLAG_FINGERPRINT = 1, 2

#: (name, struct code, meaning), in file order: the one description of the header
HEADER_FIELDS = (
    ("magic", "8s", 'b"EDGEOMD\\0"'),
    ("version", "H", "u16 format version, 1"),
    ("solver", "B", "u8 solver code (table below)"),
    ("itemsize", "B", "u8 dtype: 4 float32, 8 float64 (itemsize F of the large arrays)"),
    ("dim", "I", "u32 d, in [1, 65536]"),
    ("rank", "I", "u32 sketch rank ell in [1, d] (0 for solvers without a rank)"),
    ("cg_steps", "I", "u32 K of the cg solver"),
    ("flags", "I", "u32 bit 0: radius set, bit 1: head fingerprint set"),
    ("reserved", "I", "u32 0 (ignored on read)"),
    ("t", "Q", "u64 updates absorbed, <= 2^62"),
    ("lam_warmup", "Q", "u64 T of lambda_t = lambda_0 min(1, t/T) (0: constant), <= 2^62"),
    ("budget", "Q", "u64 budget_bytes (0: unlimited), <= 2^62"),
    ("eta", "d", "f64 step size"),
    ("lam", "d", "f64 prior / damping"),
    ("radius", "d", "f64 radius (0 when unset)"),
    ("forget", "d", "f64 forgetting factor in (0, 1]"),
    ("cg_tol", "d", "f64 cg relative residual test in [0, 1)"),
    ("fingerprint", "32s", "the feature head's SHA-256 fingerprint (zeros when unset)"),
    ("payload_len", "Q", "u64 bytes that follow, up to the checksum"),
)
HEADER = struct.Struct("<" + "".join(code for _n, code, _m in HEADER_FIELDS))
_NAMES = tuple(n for n, _c, _m in HEADER_FIELDS)
CRC = envelope.CRC
assert HEADER.size == 136


def header_offsets():
    """[(offset, size, name, meaning)] of the header fields."""
    out, off = [], 0
    for name, code, meaning in HEADER_FIELDS:
        size = struct.calcsize("<" + code)
        out.append((off, size, name, meaning))
        off += size
    return out


def encode(config, t, fingerprint, arrays):
    """The bytes of a state: header from `config` (ModelConfig), the update counter `t`, the
    head `fingerprint` (32 bytes or None) and the solver's payload `arrays` (file order)."""
    payload = b"".join(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
                       for a in arrays)
    h = config.to_header()
    flags = (FLAG_RADIUS if h.pop("radius_set") else 0) | \
            (FLAG_FINGERPRINT if fingerprint is not None else 0)
    h.update(magic=MAGIC, version=VERSION, solver=SOLVERS[h["solver"]].spec.code, flags=flags,
             reserved=0, t=t, fingerprint=fingerprint or bytes(32), payload_len=len(payload))
    return envelope.seal(HEADER.pack(*(h[n] for n in _NAMES)) + payload)


def decode_header(head):
    """Validate the fixed header; return (fields, payload spec, expected total length).

    `fields` holds the header by name, with `solver` as the solver's name, `radius_set`, and
    `fingerprint` None when unset. Raises StateFormatError."""
    if len(head) < HEADER.size:
        raise StateFormatError(f"state is truncated: {len(head)} bytes, the header alone is {HEADER.size}")
    h = dict(zip(_NAMES, HEADER.unpack_from(head)))
    if h["magic"] != MAGIC:
        raise StateFormatError("not an edge-omd state (bad magic bytes)")
    if h["version"] != VERSION:
        raise StateFormatError(f"state format version {h['version']} is not supported (this SDK reads {VERSION})")
    cls = by_code(h["solver"])
    if cls is None:
        raise StateFormatError(f"unknown solver code {h['solver']}")
    if h["itemsize"] not in DTYPES:
        raise StateFormatError(f"unknown dtype code {h['itemsize']}")
    dim, rank, spec = h["dim"], h["rank"], cls.spec
    if not 1 <= dim <= MAX_DIM:
        raise StateFormatError(f"dim {dim} outside [1, {MAX_DIM}]")
    if spec.ranked and not 1 <= rank <= dim:
        raise StateFormatError(f"{spec.name} rank {rank} outside [1, dim={dim}]")
    if not spec.ranked and rank != 0:
        raise StateFormatError(f"rank {rank} given for solver {spec.name!r}")
    if h["t"] > MAX_T:
        raise StateFormatError(f"update counter t={h['t']} is beyond {MAX_T}")
    if h["flags"] & ~(FLAG_RADIUS | FLAG_FINGERPRINT):
        raise StateFormatError(f"unknown flags {h['flags']:#x}")
    payload = spec.payload(dim, rank, h["itemsize"])
    expect = spec.payload_bytes(dim, rank, h["itemsize"])
    if h["payload_len"] != expect:
        raise StateFormatError(f"payload length {h['payload_len']} does not match the header "
                               f"({expect} bytes for {spec.name}, d={dim})")
    h.update(solver=spec.name, radius_set=bool(h["flags"] & FLAG_RADIUS),
             fingerprint=h["fingerprint"] if h["flags"] & FLAG_FINGERPRINT else None)
    return h, payload, HEADER.size + h["payload_len"] + CRC.size


def decode(buf):
    """Validate everything (header, length, checksum, settings, finite payload); return
    (config, t, fingerprint, [arrays]) with the arrays as read-only views of `buf`."""
    if isinstance(buf, (bytes, bytearray, memoryview)):
        buf = envelope.as_bytes_view(buf, "state")
    else:
        raise StateFormatError(f"a state must be bytes, got {type(buf).__name__}")
    h, payload, total = decode_header(buf[: HEADER.size])
    if len(buf) != total:
        raise StateFormatError(f"state is {len(buf)} bytes, the header says {total}")
    if not envelope.crc_ok(buf):
        raise StateFormatError("checksum mismatch: the state is corrupt")
    arrays, off = [], HEADER.size
    for shape, dt in payload:
        n = int(np.prod(shape))
        a = np.frombuffer(buf, dtype=dt, count=n, offset=off).reshape(shape)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise StateFormatError("state holds non-finite values")
        arrays.append(a)
        off += n * dt.itemsize
    try:
        config = ModelConfig.from_header(h)
    except ConfigError as e:
        raise StateFormatError(f"state holds invalid settings: {e}") from e
    return config, h["t"], h["fingerprint"], arrays


def read_file(path, io=envelope.DEFAULT_IO):
    """Read a state file, checking its header and size before reading the payload (a corrupt
    or hostile header allocates nothing)."""
    return envelope.read_sized(_checks.path("path", path), HEADER.size,
                               lambda head: decode_header(head)[2], io)


def write_file(path, data):
    """Write `data` to `path` atomically (envelope.write_atomic: temp file beside it, fsync,
    rename, fsync of the folder). An interrupted save leaves the previous file intact."""
    envelope.write_atomic(_checks.path("path", path), data)


write_file_atomic = write_file  # the name of format version 1's first release


# ---------------------------------------------------------------- the generated docs tables
_DOC_BLOCK = "<!-- generated by edge_omd.state_format.render_doc_tables: {} -->"
_DOC_END = "<!-- end of generated block -->"


def render_doc_tables():
    """{block name: Markdown} of docs/STATE_FORMAT.md's generated tables: the header (from
    HEADER_FIELDS) and the payload of every solver (from the solvers' specs)."""
    from edge_omd.solvers.base import render_table
    rows = ["| offset | size | field | meaning |", "|-------:|-----:|-------|---------|"]
    for off, size, name, meaning in header_offsets():
        rows.append(f"| {off} | {size} | `{name}` | {meaning} |")
    end = HEADER.size
    rows += [f"| {end} | ... | payload | the solver's arrays (below), C order, little-endian |",
             f"| end-{CRC.size} | {CRC.size} | crc | u32 CRC-32 (zlib / java.util.zip) of every "
             "byte before it |"]
    return {"header": "\n".join(rows) + "\n", "payload": render_table()}


def update_doc(text):
    """`text` (docs/STATE_FORMAT.md) with every generated block replaced by its current
    rendering: `python -c "import edge_omd.state_format as s; s.write_doc()"` rewrites it."""
    for name, body in render_doc_tables().items():
        start = _DOC_BLOCK.format(name)
        i = text.index(start) + len(start)
        j = text.index(_DOC_END, i)
        text = text[:i] + "\n" + body + text[j:]
    return text


def write_doc(path=None):
    path = path or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "docs", "STATE_FORMAT.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(update_doc(text))
