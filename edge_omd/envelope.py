"""The one envelope of every binary thing the SDK writes: magic, length, CRC-32, the refusal
rules a reader applies, and the crash-safe file write. docs/FORMATS.md lists the formats:

    format        magic        framing                                         module
    state         EDGEOMD\\0   u16 version, fixed header, u64 payload length   state_format.py
    journal rec.  EOJR         u32 length, fixed header, k d-vectors           journal.py
    store file    EOMDREC2     u32 header length, JSON header, state bytes     store/checkpoint_file.py
    user export   EOMDUSR1     u32 header length, JSON header, state bytes     store/session.py
    prior file    EOMDPRI1     u32 header length, JSON header, float64 arrays  prior.py
    folder key    EOMDKEY1     fixed 44 bytes: magic, the 32-byte key          store/folder_names.py

All little-endian; every one ends with the CRC-32 (zlib / java.util.zip polynomial) of every byte
before it. A reader refuses, before it allocates or interprets anything: a wrong magic, a length
that disagrees with the buffer or with what the header implies, a bad checksum, an unknown
version; then each field outside its documented range. Every refusal is a StateFormatError
naming `what` was read and how to fix it. The checks never raise anything else (struct, JSON and
UTF-8 errors included).

Files are written by `write_atomic`: a temporary file in the same folder, fsync, rename over the
target, fsync of the folder; the rename is the commit point, so a reader sees the old bytes or
the new ones, never a mix. They are read by `read_limited` (a bound on the size) or
`read_sized` (a fixed header that gives the exact size, checked before the rest is read). Every file operation goes through a `FileIO` (the default calls `os`);
tests subclass it to record, fault or drop operations (crash-state exploration).
"""
from __future__ import annotations

import json
import math
import os
import secrets
import struct
import zlib

from edge_omd.errors import StateFormatError

CRC = struct.Struct("<I")
U32 = struct.Struct("<I")
#: The JSON header of a store file or user export is small (ids, counters, a fingerprint).
MAX_JSON_HEADER = 1 << 16
TMP_SUFFIX = ".tmp"


# ---------------------------------------------------------------- checksums
def crc32(buf) -> int:
    return zlib.crc32(buf) & 0xFFFFFFFF


def seal(body: bytes) -> bytes:
    """`body` followed by its CRC-32."""
    return bytes(body) + CRC.pack(crc32(body))


def crc_ok(buf, start: int = 0, end: int | None = None) -> bool:
    """Does buf[start:end] end with the CRC-32 of the bytes before it?"""
    view = memoryview(buf)[start:end]
    if len(view) < CRC.size:
        return False
    (crc,) = CRC.unpack_from(view, len(view) - CRC.size)
    return crc32(view[: len(view) - CRC.size]) == crc


def unseal(buf, what: str) -> memoryview:
    """The body of a sealed buffer (without its CRC); StateFormatError if the CRC disagrees."""
    if not crc_ok(buf):
        raise StateFormatError(f"{what} is corrupt (checksum mismatch)")
    view = memoryview(buf)
    return view[: len(view) - CRC.size]


def as_bytes_view(buf, what: str) -> memoryview:
    """A flat, C-contiguous byte view of bytes / bytearray / memoryview; StateFormatError for
    anything else."""
    if isinstance(buf, memoryview):
        return buf.cast("B") if buf.c_contiguous else memoryview(buf.tobytes())
    if isinstance(buf, (bytes, bytearray)):
        return memoryview(buf)
    raise StateFormatError(f"{what} must be bytes, got {type(buf).__name__}")


# ---------------------------------------------------------------- magic + JSON header + body
def pack_json(magic: bytes, header: dict, body: bytes) -> bytes:
    """magic | u32 header length | header (UTF-8 JSON object) | body | CRC-32."""
    h = json.dumps(header, sort_keys=False, allow_nan=False).encode("utf-8")
    if len(h) > MAX_JSON_HEADER:
        raise StateFormatError(f"header of {len(h)} bytes is above {MAX_JSON_HEADER}")
    return seal(magic + U32.pack(len(h)) + h + bytes(body))


def unpack_json(buf, magics: tuple, what: str, fix: str = "") -> tuple:
    """(magic, header dict, body view) of a `pack_json` buffer; every check first.

    magics: the accepted magic values (all of one length). `fix` ends every error message."""
    view = as_bytes_view(buf, what)
    m = len(magics[0])
    tail = f"; {fix}" if fix else ""
    if len(view) < m + U32.size + CRC.size or bytes(view[:m]) not in magics:
        raise StateFormatError(f"{what} is not an edge-omd file of this kind (bad magic){tail}")
    magic = bytes(view[:m])
    body = unseal(view, what)
    (hlen,) = U32.unpack_from(body, m)
    start = m + U32.size
    if hlen > MAX_JSON_HEADER or start + hlen > len(body):
        raise StateFormatError(f"{what} is corrupt (header length {hlen}){tail}")
    try:
        header = json.loads(bytes(body[start:start + hlen]).decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise StateFormatError(f"{what} is corrupt (header: {str(exc)[:200]}){tail}") from exc
    if not isinstance(header, dict):
        raise StateFormatError(f"{what} is corrupt (header is a JSON {type(header).__name__}, "
                               f"not an object){tail}")
    return magic, header, body[start + hlen:]


# ---------------------------------------------------------------- typed header fields
def field_int(h: dict, key: str, lo: int, hi: int, what: str) -> int:
    """h[key] as an int in [lo, hi]; a JSON float, bool, string or missing key is refused."""
    v = h.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise StateFormatError(f"{what}: field {key!r} must be an integer in [{lo}, {hi}], "
                               f"got {v!r:.40}")
    return v


def field_real(h: dict, key: str, what: str) -> float:
    """h[key] as a finite float."""
    v = h.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise StateFormatError(f"{what}: field {key!r} must be a finite number, got {v!r:.40}")
    return float(v)


def field_str(h: dict, key: str, what: str, max_len: int = 1024) -> str:
    v = h.get(key)
    if not isinstance(v, str) or len(v) > max_len:
        raise StateFormatError(f"{what}: field {key!r} must be a string, got {v!r:.40}")
    return v


def field_hex(h: dict, key: str, nbytes: int, what: str, optional: bool = False):
    """h[key] as `nbytes` bytes written in hex (None allowed when `optional`)."""
    v = h.get(key)
    if v is None and optional and key in h:
        return None
    if not isinstance(v, str) or len(v) != 2 * nbytes:
        raise StateFormatError(f"{what}: field {key!r} must be {nbytes} bytes in hex, "
                               f"got {v!r:.40}")
    try:
        return bytes.fromhex(v)
    except ValueError as exc:
        raise StateFormatError(f"{what}: field {key!r} is not hex: {v!r:.40}") from exc


# ---------------------------------------------------------------- file operations
class FileIO:
    """Every file operation the SDK performs, in one place (a test or a crash-state explorer
    subclasses it to record or fault each one). Paths are str; fds are ints."""

    def open(self, path, flags, mode=0o600):
        return os.open(path, flags, mode)

    def close(self, fd):
        os.close(fd)

    def fstat(self, fd):
        return os.fstat(fd)

    def stat(self, path):
        return os.stat(path)

    def pread(self, fd, n, offset):
        out = []
        while n > 0:
            b = os.pread(fd, n, offset)
            if not b:
                break
            out.append(b)
            n -= len(b)
            offset += len(b)
        return b"".join(out)

    def pwrite(self, fd, data, offset):
        view = memoryview(data)
        while view:
            k = os.pwrite(fd, view, offset)
            view, offset = view[k:], offset + k

    def fsync(self, fd):
        os.fsync(fd)

    def fdatasync(self, fd):
        (getattr(os, "fdatasync", None) or os.fsync)(fd)

    def ftruncate(self, fd, size):
        os.ftruncate(fd, size)

    def replace(self, src, dst):
        os.replace(src, dst)

    def unlink(self, path):
        os.unlink(path)

    def listdir(self, path):
        return os.listdir(path)

    def iterdir(self, path):
        """The names in a folder one by one (a few system calls for the first ones, where
        `listdir` reads them all)."""
        with os.scandir(path) as it:
            for entry in it:
                yield entry.name

    def fsync_dir(self, path):
        if os.name != "posix":
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def flock(self, fd, op):
        import fcntl
        fcntl.flock(fd, op)


DEFAULT_IO = FileIO()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (another user's process) or we cannot tell: keep its file
    return True


def temp_name(path: str) -> str:
    """`.<name>.<pid>.<12 hex>.tmp` beside `path`: the writer's pid tells a stale file (its
    writer is gone) from one being written right now."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(6)}{TMP_SUFFIX}")


def stale_temp_files(path: str, io: FileIO = DEFAULT_IO) -> list:
    """Temporary files of interrupted writes of `path` whose writer process is gone."""
    folder, name = os.path.split(os.path.abspath(path))
    prefix = f".{name}."
    out = []
    try:
        names = io.listdir(folder)
    except OSError:
        return out
    for n in names:
        if not (n.startswith(prefix) and n.endswith(TMP_SUFFIX)):
            continue
        parts = n[len(prefix):-len(TMP_SUFFIX)].split(".")
        if len(parts) == 2 and parts[0].isdigit() and len(parts[1]) == 12 \
                and not _pid_alive(int(parts[0])):
            out.append(os.path.join(folder, n))
    return out


def remove_stale_temp_files(path: str, io: FileIO = DEFAULT_IO) -> int:
    """Erase what `stale_temp_files` finds; returns how many were removed."""
    k = 0
    for p in stale_temp_files(path, io):
        try:
            io.unlink(p)
            k += 1
        except OSError:
            pass
    return k


def write_atomic(path, data, *, io: FileIO = DEFAULT_IO, sync: bool = True,
                 tmp: str | None = None) -> None:
    """Replace `path` by `data`: temp file beside it, fsync, rename, fsync of the folder.

    An interrupted write leaves the previous file intact (the rename is the commit point); its
    temporary file is erased by the next write of the same path (`stale_temp_files`).
    `sync=False` skips both fsyncs (the rename stays atomic against a process crash, not a
    power cut). `tmp`: a fixed temporary path, for a caller that holds a lock no other writer
    of `path` can hold (a leftover there is replaced, no folder listing); without it, a
    `temp_name` and the stale temporary files of `path` are erased first (lists the folder).
    Raises OSError; the caller wraps it in its own error type."""
    path = os.fspath(path)
    if tmp is None:
        remove_stale_temp_files(path, io)
        tmp = temp_name(path)
    else:
        try:
            io.unlink(tmp)
        except FileNotFoundError:
            pass
    fd = io.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            io.pwrite(fd, data, 0)
            if sync:
                io.fsync(fd)
        finally:
            io.close(fd)
        io.replace(tmp, path)
    except BaseException:
        try:
            io.unlink(tmp)
        except OSError:
            pass
        raise
    if sync:
        try:
            io.fsync_dir(os.path.dirname(os.path.abspath(path)))
        except OSError:  # platforms without directory fds
            pass


def read_limited(path, max_bytes: int, what: str, io: FileIO = DEFAULT_IO) -> bytes:
    """The bytes of `path` if it is at most `max_bytes` long (StateFormatError otherwise);
    OSError (missing file, permissions) is left to the caller."""
    fd = io.open(os.fspath(path), os.O_RDONLY)
    try:
        size = io.fstat(fd).st_size
        if size > max_bytes:
            raise StateFormatError(f"{what}: file is {size} bytes, more than any valid one "
                                   f"({max_bytes})")
        return io.pread(fd, size, 0)
    finally:
        io.close(fd)


def read_sized(path, head_size: int, total_of, io: FileIO = DEFAULT_IO) -> bytes:
    """The bytes of a file whose fixed header says how long it is: read `head_size` bytes,
    `total_of(head)` validates them and returns the total length (raising StateFormatError on a
    bad header), the file's size must equal it, then the rest is read. Nothing is allocated from
    the header before it is validated and matches the file (the state format's reader).
    OSError is left to the caller."""
    fd = io.open(os.fspath(path), os.O_RDONLY)
    try:
        head = io.pread(fd, head_size, 0)
        total = total_of(head)
        size = io.fstat(fd).st_size
        if size != total:
            raise StateFormatError(f"{path}: file is {size} bytes, the header says {total}")
        return head + io.pread(fd, total - len(head), len(head))
    finally:
        io.close(fd)
