"""FolderStore's file names: the folder key (`.omdkey`) and the keyed name it gives each user's
files (`name_of`, `paths`), the names of older versions, and `recover_key`, which renames every
user's files after the key that is there (a key lost or replaced).

`FolderNames` is a part of FolderStore (its base class), kept apart so the one place that maps a
user id to its files reads on its own. It uses FolderStore's `folder`, `io`, `timeout_s`,
`_names` (a cache) and `_hkey` (the key), `_setup` and `_peek_user_id`.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from contextlib import contextmanager
from typing import NamedTuple, Optional

from edge_omd import envelope
from edge_omd.envelope import FileIO
from edge_omd.errors import StateFormatError, StoreError
from edge_omd.store import locks
from edge_omd.store.base import open_regular, validate_user_id
from edge_omd.store.checkpoint_file import decode_checkpoint

_log = logging.getLogger("edge_omd.store.folder")   # the store's logger: one name for a FolderStore

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


def _tmp_of(path: str) -> str:
    """The fixed temporary file of `path` (written only under a lock that covers `path`)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{envelope.TMP_SUFFIX}")


def _exists(io: FileIO, path: str) -> bool:
    try:
        io.stat(path)
        return True
    except FileNotFoundError:
        return False


class KeyRecovery(NamedTuple):
    """What `FolderStore.recover_key` did."""
    renamed: list      # user ids whose files now carry the key's names
    conflicts: list    # (user id, file): the key's name for that user is taken; left as is
    unreadable: list   # checkpoint files whose user id cannot be read; left as is


class UserPaths(NamedTuple):
    checkpoint: str
    journal: str
    lock: str


class FolderNames:
    """The folder key and the names of a user's files (module docstring)."""

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
