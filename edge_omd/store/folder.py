"""FolderStore: per user a checkpoint file, an append-only journal file and a lock file in a
plain folder, and the checkpoint file's format (`encode_checkpoint` / `decode_checkpoint`).

Per user `<h>.omdck` (the checkpoint, replaced atomically: temporary file, fsync, rename, fsync
of the folder), `<h>.omdjr` (append-only; truncated after a checkpoint is durable) and
`<h>.omdlk` (an `flock` around every write), where h is a keyed hash of the user id (file names
do not reveal ids). Every file operation goes through one small `FileIO` object (open, write,
fsync, rename, truncate, unlink, ...), so a test can record or fault every operation
(tests/sdk/crash_explorer.py explores power cuts with it).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

from edge_omd import envelope
from edge_omd.envelope import FileIO
from edge_omd.errors import StateFormatError, StoreError
from edge_omd.store import journal as _journal
from edge_omd.store.base import (_MAX_EPOCH, _USER_ID, MAX_UPDATES, RECORD_FORMAT, Head, Store,
                                 StoreRecord, Sync, _durability, _nothing, _parse_tail,
                                 _refuse_newer, _state_meta, validate_user_id)
from edge_omd.store.fair_queue import FairQueue
from edge_omd.store.folder_tx import _FolderTx, _file_id

_log = logging.getLogger(__name__)

# Checkpoint file (docs/FORMATS.md): envelope.pack_json(b"EOMDREC2", header, state), i.e. magic,
# u32 header length, header JSON (utf-8), the RewardModel state, CRC-32 of every byte before.
# EOMDREC1 (RECORD_FORMAT 1): the header has no epoch; read as a checkpoint.
_MAGIC = b"EOMDREC2"
_MAGIC_V1 = b"EOMDREC1"
_CHECKPOINT_FIX = ("restore the file from a backup, or erase the user with store.delete() and "
                   "start again")
# Per user, named by the keyed hash of the id (FolderStore.name_of): checkpoint, journal, lock,
# fair-queue ticket (+ ".<n>" entries).
_CK, _JR, _LK, _Q = ".omdck", ".omdjr", ".omdlk", ".omdq"
# Names before the keyed hash (the id in clear): still read; renamed at the user's next write.
_LEGACY_CK, _LEGACY_JR, _LEGACY_LK = ".omdstate", ".omdjournal", ".lock"
KEY_FILE = ".omdkey"
_KEY_MAGIC = b"EOMDKEY1"
_KEY_BYTES = 32
_NAME_HEX = 32     # 128 bits of HMAC-SHA256
_TMP_NEW = re.compile(r"\.(.+)\.(\d+)\.([0-9a-f]{12})\.tmp")
_TMP_LEGACY = re.compile(r"\.([A-Za-z0-9][A-Za-z0-9._@-]{0,127})\.([^.]+)\.tmp")


class UserPaths(NamedTuple):
    checkpoint: str
    journal: str
    lock: str


def encode_checkpoint(rec: StoreRecord) -> bytes:
    """The bytes of a FolderStore checkpoint file (format 2) holding `rec` (`pack_digest` only
    when there is one: a user without a pack is written as before packs existed)."""
    header = {
        "user_id": rec.user_id, "dim": rec.dim, "format_version": RECORD_FORMAT,
        "head_fingerprint": None if rec.head_fingerprint is None else rec.head_fingerprint.hex(),
        "updates": rec.updates, "epoch": rec.epoch, "created_at": rec.created_at,
        "updated_at": rec.updated_at,
    }
    if rec.pack_digest is not None:
        header["pack_digest"] = rec.pack_digest.hex()
    return envelope.pack_json(_MAGIC, header, rec.state)


def decode_checkpoint(blob, what: str) -> StoreRecord:
    """The StoreRecord of a checkpoint file (format 2, or 1 with a derived epoch); every check
    of docs/FORMATS.md first, StateFormatError naming `what` on any failure."""
    magic, h, state = envelope.unpack_json(blob, (_MAGIC, _MAGIC_V1), what, _CHECKPOINT_FIX)
    w = f"{what} (header)"
    uid = envelope.field_str(h, "user_id", w, 128)
    if "head_fingerprint" not in h:
        raise StateFormatError(f"{w}: field 'head_fingerprint' is missing; {_CHECKPOINT_FIX}")
    fp = envelope.field_hex(h, "head_fingerprint", 32, w, optional=True)
    created = envelope.field_real(h, "created_at", w)
    updated = envelope.field_real(h, "updated_at", w)
    updates = envelope.field_int(h, "updates", 0, MAX_UPDATES, w)
    dim = envelope.field_int(h, "dim", 1, _journal.MAX_DIM, w)
    fmt = envelope.field_int(h, "format_version", 0, (1 << 31) - 1, w)
    epoch = _legacy_epoch(uid, created) if magic == _MAGIC_V1 else \
        envelope.field_int(h, "epoch", 1, _MAX_EPOCH, w)
    # absent in files written before packs existed: no pack
    pack = envelope.field_hex(h, "pack_digest", 32, w, optional=True) if "pack_digest" in h \
        else None
    return StoreRecord(uid, fp, dim, fmt, bytes(state), updates, created, updated, epoch, updates,
                       pack_digest=pack)


def _legacy_epoch(user_id: str, created_at: float) -> int:
    """A RECORD_FORMAT 1 file has no epoch: derive a stable one from what it holds."""
    h = hashlib.sha256(b"edge-omd legacy epoch\0" + user_id.encode() + b"\0"
                       + repr(float(created_at)).encode()).digest()
    return (int.from_bytes(h[:8], "little") >> 2) + 1


class FolderStore(Store):
    """A checkpoint file and an append-only journal file per user in a plain folder.

    Args:
        folder: the store's folder; created if missing (the folder itself, not its parents:
            StoreError if the parent does not exist).
        durable: "full" (default) fsyncs every journal append before the commit returns;
            "normal" fsyncs only at checkpoints (see the module docstring for what a power cut
            may then lose).
        io: the FileIO every file operation goes through (tests record or fault it).
        fair: writers of one user queue in arrival order (`FairQueue`) before its flock.

    File names do not reveal user ids: user u's files are `<h>.omdck` (checkpoint), `<h>.omdjr`
    (journal), `<h>.omdlk` (lock) and `<h>.omdq` (+ `.<n>`: the fair queue), where h =
    `name_of(u)` = the first 32 hex digits of HMAC-SHA256(key, "edge-omd user id\\0" + u) and
    the key is 32 random bytes drawn when the folder is first opened, kept in `.omdkey`
    (docs/FORMATS.md). `users()` reads the ids from the checkpoints' headers. Folders written
    before (`<id>.omdstate`, `<id>.omdjournal`, `<id>.lock`) open as they are; a user's files
    are copied to the new names at its next write (journal, then checkpoint, each durable
    before the next step; the old files are erased last), so nothing is lost at any point.

    A write takes an exclusive `flock` on the user's lock file, reads what is new in the
    journal, cuts a torn tail (a crash in the middle of an append) and appends. A checkpoint is
    written by `envelope.write_atomic` (temporary file, fsync, rename, fsync of the folder), and
    only then is the journal truncated: a crash leaves either the old checkpoint with its
    journal or the new one (records it already holds are skipped by their counter). Readers
    take no lock: they check the checkpoint file did not change while they read the journal.
    Temporary files of interrupted writes are erased when the store is opened (those of dead
    processes) and when the user is next checkpointed or deleted. Each checkpoint records its
    user id, checked on every read.
    """

    def __init__(self, folder, *, durable="full", io: Optional[FileIO] = None, fair: bool = True):
        try:
            import fcntl  # noqa: F401  (POSIX only)
        except ImportError as exc:  # pragma: no cover - Windows
            raise StoreError("FolderStore needs POSIX file locks (fcntl); use SQLiteStore "
                             "on this platform") from exc
        self.folder = Path(folder)
        self.durable = _durability(durable)
        self.io = io if io is not None else FileIO()
        self.fair = bool(fair)
        try:
            self.folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {self.folder} (its parent must "
                             f"exist): {exc}") from exc
        if not self.folder.is_dir():
            raise StoreError(f"{self.folder} is not a folder")
        self._locks = threading.local()
        self._names: dict = {}
        self._migrated: set = set()
        try:
            self._hkey = self._load_or_make_key()
            self._remove_stale_temp_files()
        except OSError as exc:
            raise StoreError(f"cannot open the store folder {self.folder}: {exc}") from exc

    # -- names: the one place that maps a user id to its files
    def _load_or_make_key(self) -> bytes:
        import fcntl
        path = str(self.folder / KEY_FILE)
        key = self._read_key(path)
        if key is not None:
            return key
        io = self.io
        fd = io.open(str(self.folder), os.O_RDONLY)   # the folder's flock: one key per folder
        try:
            io.flock(fd, fcntl.LOCK_EX)
            key = self._read_key(path)
            if key is None:
                key = secrets.token_bytes(_KEY_BYTES)
                envelope.write_atomic(path, envelope.seal(_KEY_MAGIC + key), io=io)
                io.fsync_dir(str(self.folder))     # durable before any file named with it
        finally:
            io.close(fd)
        return key

    def _read_key(self, path: str) -> Optional[bytes]:
        try:
            blob = envelope.read_limited(path, 4096, path, self.io)
        except FileNotFoundError:
            return None
        except StateFormatError:
            blob = b""
        n = len(_KEY_MAGIC) + _KEY_BYTES
        if len(blob) != n + envelope.CRC.size or blob[:len(_KEY_MAGIC)] != _KEY_MAGIC \
                or not envelope.crc_ok(blob):
            raise StateFormatError(
                f"{path} is corrupt: it holds the key that names this folder's user files; "
                "restore it from a backup (the users' checkpoints still hold their ids: "
                "export them with another copy of the folder), or start a new folder")
        return bytes(blob[len(_KEY_MAGIC):n])

    def name_of(self, user_id: str) -> str:
        """The file name stem of `user_id` in this folder (keyed hash, see the class doc)."""
        name = self._names.get(user_id)
        if name is None:
            validate_user_id(user_id)
            name = hmac.new(self._hkey, b"edge-omd user id\0" + user_id.encode("utf-8"),
                            hashlib.sha256).hexdigest()[:_NAME_HEX]
            if len(self._names) < 4096:
                self._names[user_id] = name
        return name

    def paths(self, user_id: str) -> UserPaths:
        """The user's checkpoint, journal and lock file paths."""
        base = str(self.folder / self.name_of(user_id))
        return UserPaths(base + _CK, base + _JR, base + _LK)

    _paths = paths

    def _legacy_paths(self, user_id: str) -> UserPaths:
        base = str(self.folder / validate_user_id(user_id))
        return UserPaths(base + _LEGACY_CK, base + _LEGACY_JR, base + _LEGACY_LK)

    # -- temporary files
    def _remove_stale_temp_files(self) -> int:
        """At open: temporary files whose writer process is gone, and those of older versions
        (`.<id>.<random>.tmp`, no pid: an older SDK writing this folder at the same time is not
        supported). Returns how many were erased."""
        k = 0
        for name in self.io.listdir(str(self.folder)):
            if not (name.startswith(".") and name.endswith(envelope.TMP_SUFFIX)):
                continue
            m = _TMP_NEW.fullmatch(name)
            if m is not None:
                k += envelope.remove_stale_temp_files(str(self.folder / m.group(1)), self.io)
            elif _TMP_LEGACY.fullmatch(name) is not None:
                try:
                    self.io.unlink(str(self.folder / name))
                    k += 1
                except OSError:
                    pass
        return k

    def _stale_tmp_files(self, user_id: str) -> list[str]:
        """Every temporary file of the user (call under its lock: none is being written)."""
        name = self.name_of(user_id)
        ours = (f".{name}{_CK}.", f".{name}{_JR}.")
        legacy = f".{user_id}."
        out = []
        try:
            names = self.io.listdir(str(self.folder))
        except OSError as exc:
            raise StoreError(f"cannot list {self.folder}: {exc}") from exc
        for n in names:
            if not n.endswith(envelope.TMP_SUFFIX):
                continue
            if n.startswith(ours):
                out.append(str(self.folder / n))
            elif n.startswith(legacy) and _TMP_NEW.fullmatch(n) is None:
                middle = n[len(legacy):-len(envelope.TMP_SUFFIX)]
                if middle and "." not in middle:
                    out.append(str(self.folder / n))
        return out

    # -- reading
    def _read_checkpoint(self, user_id, fd, path):
        io = self.io
        size = io.fstat(fd).st_size
        rec = decode_checkpoint(io.pread(fd, size, 0), path)
        if rec.user_id != user_id:
            raise StoreError(f"{path} holds user {rec.user_id!r}, not {user_id!r}: the file was "
                             "renamed or copied from another user; restore it from a backup")
        return rec

    def _open_or_none(self, path, flags=os.O_RDONLY):
        try:
            return self.io.open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot open {path}: {exc}") from exc

    def _open_checkpoint(self, user_id):
        """(fd, UserPaths) of the user's checkpoint (new names first, then the old ones), or
        (None, None)."""
        for attempt in range(2):
            paths = self._paths(user_id)
            cfd = self._open_or_none(paths.checkpoint)
            if cfd is not None:
                return cfd, paths
            paths = self._legacy_paths(user_id)
            cfd = self._open_or_none(paths.checkpoint)
            if cfd is not None:
                return cfd, paths
            # a migration may have renamed the new file and erased the old between the two
            # opens: look once more
        return None, None

    def _sync_once(self, user_id, cursor, locked):
        """(Sync, journal info) from one pass; None if the checkpoint changed meanwhile.

        journal info = (journal file id, offset where the valid records end, file size, why
        parsing stopped or None)."""
        io = self.io
        cfd, paths = self._open_checkpoint(user_id)
        if cfd is None:
            return Sync(None), None
        cpath, jpath = paths.checkpoint, paths.journal
        try:
            cid = _file_id(io.fstat(cfd))
            cont = cursor is not None and len(cursor.pos) == 6 and cursor.pos[0] == cid
            rec = None if cont else self._read_checkpoint(user_id, cfd, cpath)
        finally:
            io.close(cfd)
        jfd = self._open_or_none(jpath)
        jid, size, start, buf = None, 0, 0, b""
        if jfd is not None:
            try:
                st = io.fstat(jfd)
                jid, size = (st.st_dev, st.st_ino), st.st_size
                if cont and (cursor.pos[1] != jid or cursor.pos[2] > size or (
                        cursor.pos[2] > 0 and io.pread(jfd, 4, cursor.pos[2] - 4) != cursor.pos[5])):
                    # the journal was replaced or cut (and maybe grown again: the CRC of the
                    # last record applied is not where it was): read it all again
                    cont = False
                start = cursor.pos[2] if cont else 0
                if size > start:
                    buf = io.pread(jfd, size - start, start)
            finally:
                io.close(jfd)
        elif cont and cursor.pos[2] > 0:
            cont = False
        if not cont and rec is None:
            cfd = self._open_or_none(cpath)
            if cfd is None:
                return None
            try:
                if _file_id(io.fstat(cfd)) != cid:
                    return None
                rec = self._read_checkpoint(user_id, cfd, cpath)
            finally:
                io.close(cfd)
        if not locked:   # a checkpoint between the reads: try again
            try:
                if _file_id(io.stat(cpath)) != cid:
                    return None
            except FileNotFoundError:
                return None
        if cont:
            parsed = _refuse_newer(_journal.parse(
                buf, epoch=cursor.epoch, after=cursor.updates, dim=cursor.pos[3],
                itemsize=cursor.pos[4], skip_older=False), user_id, self.folder)
            e = parsed.ends[-1] if parsed.ends else 0
            tail = buf[e - 4:e] if e else cursor.pos[5]
            head = cursor._replace(updates=cursor.updates + len(parsed.records),
                                   pos=(cid, jid, start + e) + cursor.pos[3:5] + (tail,))
            return (Sync(head, None, tuple(parsed.records)),
                    (jid, start + parsed.stop_at, size, parsed.stop))
        parsed = _refuse_newer(_parse_tail(buf, state=rec.state, epoch=rec.epoch,
                                           after=rec.updates), user_id, self.folder)
        meta = _state_meta(rec.state) or (0, 0)
        end = parsed.ends[-1] if parsed.ends else parsed.skipped_end
        full = StoreRecord(rec.user_id, rec.head_fingerprint, rec.dim, rec.format_version,
                           rec.state, rec.updates + len(parsed.records), rec.created_at,
                           rec.updated_at, rec.epoch, rec.updates, tuple(parsed.records),
                           rec.pack_digest)
        head = Head(rec.epoch, full.updates, rec.updates, rec.created_at,
                    (cid, jid, end, meta[0], meta[1], bytes(buf[end - 4:end]) if end else b""),
                    rec.pack_digest)
        return Sync(head, full, ()), (jid, parsed.stop_at, size, parsed.stop)

    def _sync(self, user_id, cursor, locked=False):
        for _ in range(100):
            out = self._sync_once(user_id, cursor, locked)
            if out is not None:
                return out
        raise StoreError(f"user {user_id!r}: the checkpoint kept changing while it was read")

    def sync(self, user_id, cursor=None):
        validate_user_id(user_id)
        try:
            return self._sync(user_id, cursor)[0]
        except OSError as exc:
            raise StoreError(f"cannot read user {user_id!r} from {self.folder}: {exc}") from exc

    # -- writing
    def _lock_fd(self, lock_path):
        cache = getattr(self._locks, "fds", None)
        if cache is None or getattr(self._locks, "pid", None) != os.getpid():
            cache = self._locks.fds = {}
            self._locks.pid = os.getpid()
        fd = cache.get(lock_path)
        if fd is None:
            try:
                fd = cache[lock_path] = self.io.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StoreError(f"cannot open the lock file {lock_path} (nothing was changed): "
                                 f"{exc}") from exc
        return fd

    @contextmanager
    def _locked(self, user_id: str) -> Iterator[None]:
        import fcntl
        lock = self._paths(user_id).lock
        fair = FairQueue(str(self.folder / self.name_of(user_id)) + _Q, self.io) \
            if self.fair else None
        with (fair() if fair is not None else _nothing()):
            fd = self._lock_fd(lock)
            try:
                self.io.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise StoreError(f"cannot lock {lock} (nothing was changed): {exc}") from exc
            try:
                yield
            finally:
                self.io.flock(fd, fcntl.LOCK_UN)

    def _migrate(self, user_id: str) -> None:
        """Under the user's lock: move files under the old names (the id in clear) to the
        keyed names. Journal first, then checkpoint, each written atomically and durably; the
        old files are erased only once the new checkpoint is durable (readers prefer it), so a
        crash at any point leaves one complete copy that every reader finds."""
        if user_id in self._migrated:
            return
        io, new, old = self.io, self._paths(user_id), self._legacy_paths(user_id)
        try:
            present = [p for p in old if _exists(io, p)]
            if present:
                if old.checkpoint in present and not _exists(io, new.checkpoint):
                    jbytes = _read_all(io, old.journal) if old.journal in present else b""
                    envelope.write_atomic(new.journal, jbytes, io=io)
                    envelope.write_atomic(new.checkpoint, _read_all(io, old.checkpoint), io=io)
                    io.fsync_dir(str(self.folder))
                    _log.info("%s: user %r moved to keyed file names", self.folder, user_id)
                for p in [old.journal, old.checkpoint, old.lock] + [
                        t for t in self._stale_tmp_files(user_id)
                        if os.path.basename(t).startswith(f".{user_id}.")]:
                    try:
                        io.unlink(p)
                    except FileNotFoundError:
                        pass
                io.fsync_dir(str(self.folder))
        except OSError as exc:
            raise StoreError(f"cannot move user {user_id!r} to keyed file names in "
                             f"{self.folder} (nothing was lost; the old files are read until "
                             f"it succeeds): {exc}") from exc
        if len(self._migrated) < 4096:
            self._migrated.add(user_id)

    @contextmanager
    def transaction(self, user_id, *, head_fingerprint, dim, checkpoint=False):
        """A write transaction (see Store): under the user's lock; written at the end."""
        validate_user_id(user_id)
        with self._locked(user_id):
            self._migrate(user_id)
            tx = _FolderTx(self, user_id, head_fingerprint, int(dim))
            yield tx
            try:
                tx._commit()
            except OSError as exc:
                raise StoreError(f"cannot write user {user_id!r} in {self.folder}: "
                                 f"{exc}") from exc

    def _write_checkpoint(self, user_id, rec: StoreRecord) -> None:
        """Atomically replace the checkpoint file (temp, fsync, rename, fsync folder)."""
        io = self.io
        cpath = self._paths(user_id).checkpoint
        # Under the user's lock no other checkpoint of the user is being written: temporary
        # files of the user are leftovers of a crash (each holds a full state). Erase them.
        for stale in self._stale_tmp_files(user_id):
            try:
                io.unlink(stale)
            except OSError:
                pass
        try:
            envelope.write_atomic(cpath, encode_checkpoint(rec), io=io)
        except OSError as exc:
            raise StoreError(f"cannot write {cpath} (the previous state is intact): "
                             f"{exc}") from exc
        # Renamed: every reader sees the new checkpoint. It must be durable before the journal
        # it replaces is cut; write_atomic does not report a failed folder fsync, so it is
        # repeated here: if it fails the journal is kept (its records are skipped by their
        # counter) and the cut waits for the next checkpoint.
        io.fsync_dir(str(self.folder))

    def delete(self, user_id):
        new, old = self._paths(user_id), self._legacy_paths(user_id)
        io = self.io
        with self._locked(user_id):
            # The checkpoints go first: that is the delete (a journal without its checkpoint
            # is never read, and a new incarnation cuts it). Journal first would let a crash in
            # between bring back the checkpoint alone, an OLDER state than the one
            # acknowledged (found by the crash-state explorer, tests/sdk/crash_explorer.py).
            # Under the user's lock no write of this user is running, so every temporary file
            # of the user is a leftover of a crash: erase it too (forget me).
            found = False
            for path in [new.checkpoint, old.checkpoint, new.journal, old.journal, old.lock] \
                    + self._stale_tmp_files(user_id):
                try:
                    io.unlink(path)
                    found = found or path in (new.checkpoint, old.checkpoint)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise StoreError(f"cannot delete {path}: {exc}") from exc
            try:
                io.fsync_dir(str(self.folder))
            except OSError as exc:   # the files are gone for every reader: do not report failure
                _log.warning("user %r was deleted from %s, but the folder could not be "
                             "fsync'ed: %s", user_id, self.folder, exc)
        return found

    def users(self):
        out = set()
        try:
            names = self.io.listdir(str(self.folder))
        except OSError as exc:
            raise StoreError(f"cannot list {self.folder}: {exc}") from exc
        for name in names:
            if name.endswith(_CK):
                uid = self._peek_user_id(str(self.folder / name))
                if uid is not None and self.name_of(uid) == name[:-len(_CK)]:
                    out.add(uid)
                else:
                    _log.warning("%s: %s does not name a user of this folder (unreadable "
                                 "header, or a file copied from another folder); skipped",
                                 self.folder, name)
            elif name.endswith(_LEGACY_CK):
                uid = name[:-len(_LEGACY_CK)]
                if _USER_ID.fullmatch(uid):
                    out.add(uid)
        return sorted(out)

    def _peek_user_id(self, path) -> Optional[str]:
        """The user id in a checkpoint's header (the header alone; the CRC is checked when the
        user is read); None if it cannot be read."""
        io = self.io
        try:
            fd = io.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            head = io.pread(fd, 12, 0)
            if len(head) < 12 or head[:8] not in (_MAGIC, _MAGIC_V1):
                return None
            hlen = int.from_bytes(head[8:12], "little")
            if hlen > envelope.MAX_JSON_HEADER:
                return None
            h = json.loads(io.pread(fd, hlen, 12).decode("utf-8"))
            uid = h.get("user_id") if isinstance(h, dict) else None
            return uid if isinstance(uid, str) and _USER_ID.fullmatch(uid) else None
        except (OSError, ValueError, RecursionError):
            return None
        finally:
            io.close(fd)

    def close(self):
        cache = getattr(self._locks, "fds", None)
        if cache and getattr(self._locks, "pid", None) == os.getpid():
            for fd in cache.values():
                try:
                    self.io.close(fd)
                except OSError:
                    pass
        self._locks.fds = {}

    def __repr__(self):
        return f"FolderStore({str(self.folder)!r}, durable={self.durable!r})"


def _exists(io: FileIO, path: str) -> bool:
    try:
        io.stat(path)
        return True
    except FileNotFoundError:
        return False


def _read_all(io: FileIO, path: str) -> bytes:
    fd = io.open(path, os.O_RDONLY)
    try:
        return io.pread(fd, io.fstat(fd).st_size, 0)
    finally:
        io.close(fd)
