"""FolderStore: per user a checkpoint file, an append-only journal file and a lock file in a
plain folder. The checkpoint file's format is in checkpoint_file.py (`encode_checkpoint` /
`decode_checkpoint`), the folder key and the user files' names in folder_names.py.

Per user `<h>.omdck` (the checkpoint, replaced atomically: temporary file, fsync, rename, fsync
of the folder), `<h>.omdjr` (append-only; truncated after a checkpoint is durable) and
`<h>.omdlk` (an `flock` around every write), where h is a keyed hash of the user id (file names
do not reveal ids). Every file operation goes through one small `FileIO` object (open, write,
fsync, rename, truncate, unlink, ...), so a test can record or fault every operation
(tests/sdk/crash_explorer.py explores power cuts with it).
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from edge_omd import _checks, envelope
from edge_omd.envelope import FileIO
from edge_omd.errors import ConfigError, StoreError
from edge_omd.store import journal as _journal
from edge_omd.store import locks
from edge_omd.store.base import (_USER_ID, Head, Store, StoreRecord, Sync, _durability, _nothing,
                                 _parse_tail, _refuse_newer, _state_meta, open_regular,
                                 validate_user_id)
from edge_omd.store.checkpoint_file import (_MAGIC, _MAGIC_V1, decode_checkpoint,  # noqa: F401
                                            encode_checkpoint)
from edge_omd.store.fair_queue import FairQueue
from edge_omd.store.folder_names import (_CK, _JR, _LEGACY_CK, _LK, _Q, _REKEY_FILE,  # noqa: F401
                                         KEY_FILE, FolderNames, KeyRecovery, UserPaths, _exists,
                                         _tmp_of)
from edge_omd.store.folder_tx import _FolderTx, _file_id

_log = logging.getLogger(__name__)

# Temporary files. A checkpoint (or a moved journal) of user h is written through the fixed
# `.<h>.omdck.tmp` (`.<h>.omdjr.tmp`) under the user's lock, so a killed writer's leftover is
# found without listing the folder. `.<target>.<pid>.<12 hex>.tmp` (envelope.temp_name: the key
# file of older versions, RewardModel.save) and `.<id>.<random>.tmp` (older versions, the Java
# core) are erased by `tidy()` and, the user's own, by `delete()`.
_TMP_FIXED = re.compile(r"\.([0-9a-f]{32})\.(omdck|omdjr)\.tmp")
_TMP_NEW = re.compile(r"\.(.+)\.(\d+)\.([0-9a-f]{12})\.tmp")
_TMP_LEGACY = re.compile(r"\.([A-Za-z0-9][A-Za-z0-9._@-]{0,127})\.([^.]+)\.tmp")


class FolderStore(FolderNames, Store):
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



def _read_all(io: FileIO, path: str) -> bytes:
    fd = open_regular(io, path, os.O_RDONLY)
    try:
        return io.pread(fd, io.fstat(fd).st_size, 0)
    finally:
        io.close(fd)
