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

import errno
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

from edge_omd import _checks, envelope
from edge_omd.envelope import FileIO
from edge_omd.errors import ConfigError, StateFormatError, StoreError
from edge_omd.store import journal as _journal
from edge_omd.store import locks
from edge_omd.store.base import (_MAX_EPOCH, _USER_ID, MAX_UPDATES, RECORD_FORMAT, Head, Store,
                                 StoreRecord, Sync, _durability, _nothing, _parse_tail,
                                 _refuse_newer, _state_meta, open_regular, validate_user_id)
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
# Present while FolderStore.recover_key renames users' files: the folder opens only after it.
_REKEY_FILE = ".omdrekey"
_KEY_MAGIC = b"EOMDKEY1"
_KEY_BYTES = 32
_NAME_HEX = 32     # 128 bits of HMAC-SHA256
_KEY_SAMPLE = 8    # keyed checkpoints looked at when a folder opens (the key must name one)
_KEY_SCAN = 512    # names looked at, at most, to find them
_KEYED_CK = re.compile(r"[0-9a-f]{32}\.omdck")
# Temporary files. A checkpoint (or a moved journal) of user h is written through the fixed
# `.<h>.omdck.tmp` (`.<h>.omdjr.tmp`) under the user's lock, so a killed writer's leftover is
# found without listing the folder. `.<target>.<pid>.<12 hex>.tmp` (envelope.temp_name: the key
# file of older versions, RewardModel.save) and `.<id>.<random>.tmp` (older versions, the Java
# core) are erased by `tidy()` and, the user's own, by `delete()`.
_TMP_FIXED = re.compile(r"\.([0-9a-f]{32})\.(omdck|omdjr)\.tmp")
_TMP_NEW = re.compile(r"\.(.+)\.(\d+)\.([0-9a-f]{12})\.tmp")
_TMP_LEGACY = re.compile(r"\.([A-Za-z0-9][A-Za-z0-9._@-]{0,127})\.([^.]+)\.tmp")


def _tmp_of(path: str) -> str:
    """The fixed temporary file of `path` (written only under a lock that covers `path`)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{envelope.TMP_SUFFIX}")


class KeyRecovery(NamedTuple):
    """What `FolderStore.recover_key` did."""
    renamed: list      # user ids whose files now carry the key's names
    conflicts: list    # (user id, file): the key's name for that user is taken; left as is
    unreadable: list   # checkpoint files whose user id cannot be read; left as is


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
        timeout_s: how long a write waits for the user's lock (queue and flock together); then
            StoreError naming the process that holds it and for how long (a frozen app).

    File names do not reveal user ids: user u's files are `<h>.omdck` (checkpoint), `<h>.omdjr`
    (journal), `<h>.omdlk` (lock) and `<h>.omdq` (+ `.<k>`: the fair queue), where h =
    `name_of(u)` = the first 32 hex digits of HMAC-SHA256(key, "edge-omd user id\\0" + u) and
    the key is 32 random bytes drawn when the folder is first opened, kept in `.omdkey`
    (docs/FORMATS.md). `users()` reads the ids from the checkpoints' headers. The folder does not
    open if its key names none of the users there (the key file lost or replaced): restore it,
    or rename the files with `FolderStore.recover_key(folder)`; a new key is never made over
    existing users. Folders written before (`<id>.omdstate`, `<id>.omdjournal`, `<id>.lock`)
    open as they are; a user's files are copied to the new names at its next write (journal,
    then checkpoint, each durable before the next step; the old files are erased last), so
    nothing is lost at any point.

    A write takes an exclusive `flock` on the user's lock file, reads what is new in the
    journal, cuts a torn tail (a crash in the middle of an append) and appends. A checkpoint is
    written by `envelope.write_atomic` (temporary file, fsync, rename, fsync of the folder), and
    only then is the journal truncated: a crash leaves either the old checkpoint with its
    journal or the new one (records it already holds are skipped by their counter). Readers
    take no lock: they check the checkpoint file did not change while they read the journal.
    A killed writer's temporary file is replaced by the user's next checkpoint and erased by its
    first write in a process and by its delete (its name is fixed: no checkpoint lists the
    folder); `tidy()` erases every stale one. Each
    checkpoint records its user id, checked on every read. Every file is opened without
    following links or blocking, and must be a regular file (StoreError otherwise).
    """

    def __init__(self, folder, *, durable="full", io: Optional[FileIO] = None, fair: bool = True,
                 timeout_s: float = 30.0):
        self._setup(folder, durable, io, fair, timeout_s)
        if _exists(self.io, str(self.folder / _REKEY_FILE)):
            raise StoreError(f"{self.folder}: a key recovery was interrupted (the file "
                             f"{_REKEY_FILE} is there): run FolderStore.recover_key("
                             f"{str(self.folder)!r}) again to finish it (nothing was changed)")
        try:
            self._hkey = self._load_or_make_key()
            self._check_names()
        except OSError as exc:
            raise StoreError(f"cannot open the store folder {self.folder}: {exc}") from exc

    def _setup(self, folder, durable, io, fair, timeout_s) -> None:
        try:
            import fcntl  # noqa: F401  (POSIX only)
        except ImportError as exc:  # pragma: no cover - Windows
            raise StoreError("FolderStore needs POSIX file locks (fcntl); use SQLiteStore "
                             "on this platform") from exc
        self.folder = Path(folder)
        self.durable = _durability(durable)
        self.io = io if io is not None else FileIO()
        self.fair = bool(fair)
        self.timeout_s = _checks.at_least("timeout_s", timeout_s, 0.0, ConfigError)
        try:
            self.folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {self.folder} (its parent must "
                             f"exist): {exc}") from exc
        if not self.folder.is_dir():
            raise StoreError(f"{self.folder} is not a folder")
        self._ident = os.path.realpath(self.folder)   # the same folder, whatever the path
        self._locks = threading.local()
        self._names: dict = {}
        self._migrated: set = set()

    # -- names: the one place that maps a user id to its files
    @contextmanager
    def _folder_locked(self):
        """The folder's flock (making the key, recovering names), within timeout_s."""
        io = self.io
        fd = io.open(str(self.folder), os.O_RDONLY)
        try:
            locks.acquire(io, fd, locks.Deadline.start(self.timeout_s, f"{self.folder}"),
                          lambda: f"the lock of the folder {self.folder} is held by another "
                                  "process (making the key or recovering names)")
            yield
        finally:
            io.close(fd)

    def _load_or_make_key(self) -> bytes:
        path = str(self.folder / KEY_FILE)
        key = self._read_key(path)
        if key is not None:
            return key
        with self._folder_locked():   # one key per folder
            key = self._read_key(path)
            if key is None:
                named = [n for n in self.io.listdir(str(self.folder)) if _KEYED_CK.fullmatch(n)]
                if named:   # never a new key over users named by the lost one
                    raise StoreError(
                        f"{self.folder}: the key file {KEY_FILE} is missing, but {len(named)} "
                        f"user checkpoint(s) named with it are there (e.g. {named[0]}): a new "
                        "key would hide them. Restore .omdkey from a backup of this folder, or "
                        f"run FolderStore.recover_key({str(self.folder)!r}) to rename every "
                        "user's files from the user id in its checkpoint (nothing was changed)")
                key = self._make_key(path)
        return key

    def _make_key(self, path: str) -> bytes:
        key = secrets.token_bytes(_KEY_BYTES)
        envelope.write_atomic(path, envelope.seal(_KEY_MAGIC + key), io=self.io,
                              tmp=_tmp_of(path))
        self.io.fsync_dir(str(self.folder))     # durable before any file named with it
        return key

    def _read_key(self, path: str) -> Optional[bytes]:
        try:
            fd = open_regular(self.io, path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            size = self.io.fstat(fd).st_size
            blob = self.io.pread(fd, size, 0) if size <= 4096 else b""
        finally:
            self.io.close(fd)
        n = len(_KEY_MAGIC) + _KEY_BYTES
        if len(blob) != n + envelope.CRC.size or blob[:len(_KEY_MAGIC)] != _KEY_MAGIC \
                or not envelope.crc_ok(blob):
            raise StateFormatError(
                f"{path} is corrupt: it holds the key that names this folder's user files; "
                "restore it from a backup, or run FolderStore.recover_key("
                f"{str(self.folder)!r}) to name every user's files anew from the user id in "
                "its checkpoint (after moving the corrupt file away)")
        return bytes(blob[len(_KEY_MAGIC):n])

    def _check_names(self) -> None:
        """The key must name the users in the folder: of the first keyed checkpoints met (at
        most _KEY_SAMPLE among the first _KEY_SCAN names: a few system calls whatever the
        folder's size), one at least must be named by it. A key replaced by another folder's
        names none of them."""
        names = self.io.iterdir(str(self.folder))
        seen = []
        try:
            for i, name in enumerate(names):
                if i >= _KEY_SCAN:
                    break
                if not _KEYED_CK.fullmatch(name):
                    continue
                uid = self._peek_user_id(str(self.folder / name))
                if uid is None:
                    continue
                if self.name_of(uid) == name[:-len(_CK)]:
                    return
                seen.append(name)
                if len(seen) >= _KEY_SAMPLE:
                    break
        finally:
            names.close()
        if seen:
            raise StoreError(
                f"{self.folder}: the key file {KEY_FILE} does not name the users in this folder "
                f"(none of {seen[:3]}... carries the name it gives to the user id inside): it was "
                "replaced, e.g. by another folder's key. Restore this folder's .omdkey from a "
                f"backup, or run FolderStore.recover_key({str(self.folder)!r}) to rename every "
                "user's files after the key that is there now (nothing was changed)")

    @classmethod
    def recover_key(cls, folder, *, io: Optional[FileIO] = None,
                    timeout_s: float = 30.0) -> KeyRecovery:
        """Give every user's files the names the folder's key gives them (a key made first if
        there is none), reading each user id from its checkpoint (checked whole, CRC and all).
        For a folder whose `.omdkey` was lost or replaced and cannot be restored from a backup.
        Run it while no process uses the folder.

        Per user: the journal is renamed, then the checkpoint; the old lock and queue files are
        erased. A marker file (`.omdrekey`) is made durable first and erased last, and the
        folder does not open while it is there: a crash midway leaves a folder that this call,
        run again, finishes. A user whose new name is taken (a checkpoint is there already)
        is left as it is, listed in `conflicts`; unreadable checkpoints in `unreadable`."""
        self = cls.__new__(cls)
        self._setup(folder, "full", io, False, timeout_s)
        io, marker = self.io, str(self.folder / _REKEY_FILE)
        out = KeyRecovery([], [], [])
        try:
            with self._folder_locked():
                io.close(open_regular(io, marker, os.O_WRONLY | os.O_CREAT, 0o600))
                io.fsync_dir(str(self.folder))
                path = str(self.folder / KEY_FILE)
                self._hkey = self._read_key(path) or self._make_key(path)
                for name in sorted(io.listdir(str(self.folder))):
                    if _KEYED_CK.fullmatch(name):
                        self._rename_user(name[:-len(_CK)], out)
                io.fsync_dir(str(self.folder))
                io.unlink(marker)
                io.fsync_dir(str(self.folder))
        except OSError as exc:
            raise StoreError(f"cannot recover the names in {self.folder} ({exc}); run "
                             "FolderStore.recover_key again (nothing was lost)") from exc
        for what, items in (("renamed", out.renamed), ("conflicts", out.conflicts),
                            ("unreadable", out.unreadable)):
            if items:
                _log.warning("%s: key recovery: %s %s", self.folder, what, items)
        return out

    def _rename_user(self, stem: str, out: KeyRecovery) -> None:
        io, old = self.io, str(self.folder / stem)
        try:
            fd = open_regular(io, old + _CK, os.O_RDONLY)
            try:
                rec = decode_checkpoint(io.pread(fd, io.fstat(fd).st_size, 0), old + _CK)
            finally:
                io.close(fd)
            validate_user_id(rec.user_id)
        except (StateFormatError, StoreError):
            out.unreadable.append(stem + _CK)
            return
        target = self.name_of(rec.user_id)
        if target == stem:
            return
        new = str(self.folder / target)
        if _exists(io, new + _CK):
            out.conflicts.append((rec.user_id, stem + _CK))
            return
        if _exists(io, old + _JR):   # first: a checkpoint never comes before its journal
            io.replace(old + _JR, new + _JR)
        io.replace(old + _CK, new + _CK)
        for leftover in (old + _LK, old + _Q):
            try:
                io.unlink(leftover)
            except OSError:
                pass
        out.renamed.append(rec.user_id)

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
    def tidy(self) -> int:
        """Erase every temporary file of an interrupted write in the folder: the fixed ones of
        users whose lock is free (no write of theirs runs), those whose writer process is gone,
        and those of older versions (`.<id>.<random>.tmp`: an older SDK or the Java core
        writing this folder at the same time is not supported). Lists the folder: a maintenance
        call (the store itself never needs it). Returns how many files were erased."""
        import fcntl
        io, k = self.io, 0
        for name in io.listdir(str(self.folder)):
            if not (name.startswith(".") and name.endswith(envelope.TMP_SUFFIX)):
                continue
            path = str(self.folder / name)
            fixed = _TMP_FIXED.fullmatch(name)
            if fixed is not None:
                try:
                    fd = open_regular(io, str(self.folder / fixed.group(1)) + _LK, os.O_RDWR)
                except FileNotFoundError:
                    fd = None
                except (OSError, StoreError):
                    continue
                try:
                    if fd is not None:
                        io.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # no writer of the user
                    io.unlink(path)
                    k += 1
                except OSError:
                    pass
                finally:
                    if fd is not None:
                        io.close(fd)
                continue
            m = _TMP_NEW.fullmatch(name)
            if m is not None and envelope._pid_alive(int(m.group(2))):
                continue   # being written right now
            if m is not None or _TMP_LEGACY.fullmatch(name) is not None:
                try:
                    io.unlink(path)
                    k += 1
                except OSError:
                    pass
        return k

    def _user_tmp_files(self, user_id: str) -> list[str]:
        """Every temporary file of the user, whoever wrote it (call under its lock: none is
        being written). Lists the folder: for `delete` only (forget me)."""
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
            return open_regular(self.io, path, flags)
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
                fd = cache[lock_path] = open_regular(self.io, lock_path,
                                                     os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise StoreError(f"cannot write to {self.folder}: the store is read-only "
                                     f"for this process ({exc.strerror}): reads are served, "
                                     "writes are refused; nothing was changed") from exc
                raise StoreError(f"cannot open the lock file {lock_path} (nothing was changed): "
                                 f"{exc}") from exc
        return fd

    @contextmanager
    def _locked(self, user_id: str) -> Iterator[None]:
        """The user's write lock: its place in the fair queue, then its flock; both within
        timeout_s (edge_omd/store/locks.py), never re-entered by the thread that holds it."""
        import fcntl
        name = self.name_of(user_id)
        what = f"user {user_id!r} in {self.folder}"
        lock = self._paths(user_id).lock
        deadline = locks.Deadline.start(self.timeout_s, what)
        with locks.HELD((self._ident, name), what):
            fd = self._lock_fd(lock)   # first: a read-only folder refuses before the queue
            fair = FairQueue(str(self.folder / name) + _Q, self.io) if self.fair else None
            with (fair(deadline) if fair is not None else _nothing()):
                try:
                    locks.acquire(self.io, fd, deadline, lambda: locks.describe(
                        locks.read(self.io, lock), f"the write lock of user {user_id!r}"))
                except OSError as exc:
                    raise StoreError(f"cannot lock {lock} (nothing was changed): "
                                     f"{exc}") from exc
                locks.note(self.io, fd)
                try:
                    yield
                finally:
                    self.io.flock(fd, fcntl.LOCK_UN)

    def _migrate(self, user_id: str) -> None:
        """Under the user's lock, once per user and process: erase the fixed temporary files a
        killed writer left, and move files under the old names (the id in clear) to the keyed
        names. Journal first, then checkpoint, each written atomically and durably; the old
        files are erased only once the new checkpoint is durable (readers prefer it), so a
        crash at any point leaves one complete copy that every reader finds."""
        if user_id in self._migrated:
            return
        io, new, old = self.io, self._paths(user_id), self._legacy_paths(user_id)
        try:
            for tmp in (_tmp_of(new.checkpoint), _tmp_of(new.journal)):
                try:
                    io.unlink(tmp)
                except FileNotFoundError:
                    pass
            present = [p for p in old if _exists(io, p)]
            if present:
                if old.checkpoint in present and not _exists(io, new.checkpoint):
                    jbytes = _read_all(io, old.journal) if old.journal in present else b""
                    envelope.write_atomic(new.journal, jbytes, io=io, tmp=_tmp_of(new.journal))
                    envelope.write_atomic(new.checkpoint, _read_all(io, old.checkpoint), io=io,
                                          tmp=_tmp_of(new.checkpoint))
                    io.fsync_dir(str(self.folder))
                    _log.info("%s: user %r moved to keyed file names", self.folder, user_id)
                for p in [old.journal, old.checkpoint, old.lock]:
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
        """Atomically replace the checkpoint file (temp, fsync, rename, fsync folder). Under
        the user's lock: its fixed temporary file is free (a killed writer's is replaced)."""
        io = self.io
        cpath = self._paths(user_id).checkpoint
        try:
            envelope.write_atomic(cpath, encode_checkpoint(rec), io=io, tmp=_tmp_of(cpath))
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
            # of the user is a leftover of a crash: erase it too (forget me; this lists the
            # folder, to find those of older versions too).
            found = False
            for path in [new.checkpoint, old.checkpoint, new.journal, old.journal, old.lock] \
                    + self._user_tmp_files(user_id):
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
            fd = open_regular(io, path, os.O_RDONLY)
        except (OSError, StoreError):
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
    fd = open_regular(io, path, os.O_RDONLY)
    try:
        return io.pread(fd, io.fstat(fd).st_size, 0)
    finally:
        io.close(fd)
