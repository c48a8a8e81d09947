"""Where users' reward-model states live between sessions: crash-safe, multi-process safe.

Two stores with one contract (`Store`):

- `SQLiteStore(path)` (the default): one SQLite file (standard library) in WAL mode, one row per
  user: user id, head fingerprint, dim, format version, the state blob in the RewardModel's own
  byte format, an update counter and timestamps. Every update is ONE transaction opened with
  `BEGIN IMMEDIATE` (the write lock is taken before the row is read), so a read-modify-write
  from several processes on the same user serialises and no update is lost; `synchronous=FULL`
  (the default, `durable=True`) makes a committed update survive a crash or power cut, and a
  crash before the commit leaves the previous committed state (the WAL's uncommitted frames
  are ignored on recovery).
- `FolderStore(folder)`: one file per user (`<user_id>.omdstate`), written to a temporary file,
  fsync'ed and renamed over the old one (`os.replace` is atomic), with a per-user `flock` around
  the read-modify-write. User ids are validated, so no id can name a path outside the folder.

The contract is a transactional update, not get-then-put:

    >>> store = SQLiteStore("states.sqlite")
    >>> rec = store.update("alice", lambda old: new_state_bytes(old),      # doctest: +SKIP
    ...                    head_fingerprint=fp, dim=384)

`fn(old_record_or_None) -> bytes` runs INSIDE the transaction with the latest committed record;
if it raises, nothing is written. The counter `updates` grows by one per committed update, so a
reader holding a cached state can tell cheaply (`version(user_id)`) that another process moved
on.
"""
from __future__ import annotations

import json
import logging
import math
import numbers
import os
import re
import sqlite3
import struct
import tempfile
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from edge_omd.errors import HeadMismatchError, StateFormatError, StoreError

_log = logging.getLogger(__name__)

__all__ = ["StoreRecord", "Store", "SQLiteStore", "FolderStore", "UserIdError",
           "RECORD_FORMAT", "validate_user_id"]

# Version of the envelope a store keeps around the RewardModel's bytes (the blob itself carries
# the RewardModel's own format version). Bumped only if the row/file layout changes.
RECORD_FORMAT = 1

# Letters, digits, '.', '_', '-', '@'; starts with a letter or digit (so never '.' or '..'),
# at most 128 characters. Safe as a file name on every platform we ship to.
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


class UserIdError(StoreError, ValueError):
    """A user id is not a string of 1-128 characters from [A-Za-z0-9._@-] starting alphanumeric."""


def validate_user_id(user_id) -> str:
    """Return `user_id` if it is a valid id, else raise `UserIdError` (nothing is touched)."""
    if not isinstance(user_id, str) or _USER_ID.fullmatch(user_id) is None:
        raise UserIdError(
            f"invalid user id {user_id!r}: use 1-128 characters from letters, digits and '._@-', "
            "starting with a letter or digit (hash other identifiers, e.g. an e-mail, first)")
    return user_id


@dataclass(frozen=True)
class StoreRecord:
    """One user's committed state."""
    user_id: str
    head_fingerprint: Optional[bytes]  # the FeatureHead the state was learned on (None: unbound)
    dim: int                           # feature dimension d of the state
    format_version: int                # RECORD_FORMAT of the envelope
    state: bytes                       # RewardModel.to_bytes()
    updates: int                       # committed updates since the row was created
    created_at: float                  # unix seconds
    updated_at: float                  # unix seconds

    def check_head(self, fingerprint: Optional[bytes], dim: int) -> None:
        """Raise HeadMismatchError / StateFormatError unless this state can be used with the head."""
        if self.format_version != RECORD_FORMAT:
            raise StateFormatError(
                f"user {self.user_id!r}: stored record format {self.format_version}, this SDK reads "
                f"format {RECORD_FORMAT}; upgrade edge-omd or reset the user")
        if self.dim != dim:
            raise HeadMismatchError(
                f"user {self.user_id!r}: the stored state has dim {self.dim}, the feature head "
                f"gives dim {dim}; open the head it was learned with, or reset the user")
        if (self.head_fingerprint is not None and fingerprint is not None
                and bytes(self.head_fingerprint) != bytes(fingerprint)):
            raise HeadMismatchError(
                f"user {self.user_id!r}: the stored state was learned on head "
                f"{bytes(self.head_fingerprint).hex()[:16]}..., not on this head "
                f"{bytes(fingerprint).hex()[:16]}...; open the matching head, or reset the user")


UpdateFn = Callable[[Optional[StoreRecord]], bytes]


class Store:
    """The contract of a state store (see the module docstring)."""

    def get(self, user_id: str) -> Optional[StoreRecord]:
        """The user's committed record, or None if the user has none."""
        raise NotImplementedError

    def version(self, user_id: str) -> Optional[tuple[int, float]]:
        """`(updates, created_at)` of the user's record, None if absent: a cheap staleness token.

        The creation time is part of the token so that a user deleted and re-created elsewhere
        (counter restarted) is never mistaken for the state a reader has cached.
        """
        rec = self.get(user_id)
        return None if rec is None else (rec.updates, rec.created_at)

    def update(self, user_id: str, fn: UpdateFn, *, head_fingerprint: Optional[bytes],
               dim: int) -> StoreRecord:
        """Atomically replace the user's state by `fn(latest_record_or_None)`; returns the new record."""
        raise NotImplementedError

    def delete(self, user_id: str) -> bool:
        """Erase the user's record (forget me). True if there was one."""
        raise NotImplementedError

    def users(self) -> list[str]:
        """All user ids with a record, sorted."""
        raise NotImplementedError

    def check_head(self, fingerprint: Optional[bytes], dim: int) -> None:
        """Raise HeadMismatchError if any stored user was learned on another head."""
        for uid in self.users():
            rec = self.get(uid)
            if rec is not None:
                rec.check_head(fingerprint, dim)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_new_state(new_state) -> bytes:
    if not isinstance(new_state, (bytes, bytearray, memoryview)):
        raise StoreError(f"the update function returned {type(new_state).__name__}, not bytes; "
                         "nothing was written")
    return bytes(new_state)


# --------------------------------------------------------------------------------------- SQLite

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS user_state (
    user_id          TEXT PRIMARY KEY,
    head_fingerprint BLOB,
    dim              INTEGER NOT NULL,
    format_version   INTEGER NOT NULL,
    state            BLOB NOT NULL,
    updates          INTEGER NOT NULL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
)"""
_COLUMNS = "user_id, head_fingerprint, dim, format_version, state, updates, created_at, updated_at"


class SQLiteStore(Store):
    """SQLite in WAL mode: the embedded, crash-safe, multi-process default.

    Args:
        path: the database file (created with its folder if missing).
        timeout_s: how long a writer waits for another process's transaction (busy timeout).
        durable: True (default): `synchronous=FULL`, the WAL is fsync'ed at every commit, so a
            committed update survives a power cut. False: `synchronous=NORMAL`, faster commits;
            still atomic and never corrupt, but a power cut (not an app crash) may roll back
            the last few commits.

    One connection per process and thread (re-opened after a fork), autocommit mode, explicit
    `BEGIN IMMEDIATE ... COMMIT` around every update; `secure_delete` and a WAL checkpoint after
    `delete` so a forgotten user's bytes do not linger in free pages or the log.
    """

    def __init__(self, path, *, timeout_s: float = 30.0, durable: bool = True):
        self.path = Path(path)
        self.timeout_s = float(timeout_s)
        self.durable = bool(durable)
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = self._con()
            found = con.execute("PRAGMA user_version").fetchone()[0]
            if found not in (0, _SCHEMA_VERSION):
                raise StateFormatError(
                    f"{self.path}: store schema version {found}, this SDK reads {_SCHEMA_VERSION}; "
                    "upgrade edge-omd or open another file")
            if found == 0:
                with self._transaction(con):
                    con.execute(_SCHEMA)
                    con.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:  # not a database, locked for too long, read-only...
            raise StoreError(f"cannot open the state store {self.path}: {exc}") from exc

    def _con(self) -> sqlite3.Connection:
        # sqlite3 connections must not cross a fork or (by default) a thread.
        loc = self._local
        if getattr(loc, "pid", None) != os.getpid() or getattr(loc, "con", None) is None:
            con = sqlite3.connect(str(self.path), timeout=self.timeout_s, isolation_level=None,
                                  check_same_thread=True)
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                con.close()
                raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r}); "
                                 "put the store on a local file system")
            # FULL: a committed update survives power loss (see `durable`).
            con.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            con.execute("PRAGMA secure_delete=ON")      # forgotten users are zeroed on disk
            con.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            loc.con, loc.pid = con, os.getpid()
        return loc.con

    @contextmanager
    def _transaction(self, con):
        con.execute("BEGIN IMMEDIATE")   # take the write lock now: read-modify-write serialises
        try:
            yield
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    @staticmethod
    def _record(row) -> StoreRecord:
        uid, fp, dim, fmt, state, updates, created, updated = row
        return StoreRecord(uid, None if fp is None else bytes(fp), int(dim), int(fmt),
                           bytes(state), int(updates), float(created), float(updated))

    def get(self, user_id):
        validate_user_id(user_id)
        try:
            row = self._con().execute(f"SELECT {_COLUMNS} FROM user_state WHERE user_id = ?",
                                      (user_id,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read user {user_id!r} from {self.path}: {exc}") from exc
        return None if row is None else self._record(row)

    def version(self, user_id):
        validate_user_id(user_id)
        try:
            row = self._con().execute("SELECT updates, created_at FROM user_state "
                                      "WHERE user_id = ?", (user_id,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read user {user_id!r} from {self.path}: {exc}") from exc
        return None if row is None else (int(row[0]), float(row[1]))

    def update(self, user_id, fn, *, head_fingerprint, dim):
        validate_user_id(user_id)
        con = self._con()
        try:
            with self._transaction(con):
                row = con.execute(f"SELECT {_COLUMNS} FROM user_state WHERE user_id = ?",
                                  (user_id,)).fetchone()
                old = None if row is None else self._record(row)
                new_state = _check_new_state(fn(old))
                now = time.time()
                fp = None if head_fingerprint is None else bytes(head_fingerprint)
                if old is None:
                    rec = StoreRecord(user_id, fp, int(dim), RECORD_FORMAT, new_state, 1, now, now)
                else:
                    rec = StoreRecord(user_id, fp, int(dim), RECORD_FORMAT, new_state,
                                      old.updates + 1, old.created_at, now)
                con.execute(f"INSERT OR REPLACE INTO user_state ({_COLUMNS}) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (rec.user_id, rec.head_fingerprint, rec.dim, rec.format_version,
                             rec.state, rec.updates, rec.created_at, rec.updated_at))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot write user {user_id!r} to {self.path} (nothing was "
                             f"changed): {exc}") from exc
        return rec

    def delete(self, user_id):
        validate_user_id(user_id)
        con = self._con()
        try:
            with self._transaction(con):
                n = con.execute("DELETE FROM user_state WHERE user_id = ?", (user_id,)).rowcount
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot delete user {user_id!r} from {self.path}: {exc}") from exc
        # The row is gone (committed): from here on nothing may report the delete as failed.
        # Old pages of the row may still sit in the write-ahead log: fold it back now; if that
        # fails, the next checkpoint (or the next delete) folds them.
        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.DatabaseError as exc:
            _log.warning("user %r was deleted from %s, but the WAL checkpoint that erases its "
                         "old pages from the log failed: %s", user_id, self.path, exc)
        return n > 0

    def users(self):
        try:
            rows = self._con().execute("SELECT user_id FROM user_state ORDER BY user_id").fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot list users of {self.path}: {exc}") from exc
        return [r[0] for r in rows]

    def check_head(self, fingerprint, dim):
        # Only the small columns: no state blob is read.
        try:
            rows = self._con().execute(
                "SELECT user_id, head_fingerprint, dim, format_version FROM user_state").fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read the users of {self.path}: {exc}") from exc
        for uid, fp, d, fmt in rows:
            StoreRecord(uid, None if fp is None else bytes(fp), int(d), int(fmt), b"", 0, 0.0,
                        0.0).check_head(fingerprint, dim)

    def close(self):
        con = getattr(self._local, "con", None)
        if con is not None and getattr(self._local, "pid", None) == os.getpid():
            con.close()
        self._local.con = None

    def __repr__(self):
        return f"SQLiteStore({str(self.path)!r})"


# --------------------------------------------------------------------------------------- folder

# File layout: MAGIC, u32 header length, header JSON (utf-8), state bytes, u32 crc32 of all before.
_MAGIC = b"EOMDREC1"
_SUFFIX = ".omdstate"
_TMP_SUFFIX = ".tmp"


def _header_int(h: dict, key: str) -> int:
    """`h[key]` if it is a JSON integer (not a float, not a bool), else TypeError/KeyError."""
    v = h[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{key} is not an integer: {v!r:.40}")
    return v


def _header_time(h: dict, key: str) -> float:
    v = h[key]
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise TypeError(f"{key} is not a finite number: {v!r:.40}")
    return float(v)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(str(folder), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FolderStore(Store):
    """One state file per user in a plain folder; atomic rename; POSIX file locks.

    Each update takes an exclusive `flock` on `<user_id>.lock`, re-reads the latest file, writes
    the new one to a temporary file in the same folder, fsyncs it, `os.replace`s it over the old
    one and fsyncs the folder: a crash leaves either the old or the new file, never a mix.
    Each file records its own user id, so two ids that collide on a case-insensitive file
    system are detected (StoreError) instead of overwriting each other.
    """

    def __init__(self, folder):
        try:
            import fcntl  # noqa: F401  (POSIX only)
        except ImportError as exc:  # pragma: no cover - Windows
            raise StoreError("FolderStore needs POSIX file locks (fcntl); use SQLiteStore "
                             "on this platform") from exc
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {self.folder}: {exc}") from exc

    def _path(self, user_id: str) -> Path:
        return self.folder / (validate_user_id(user_id) + _SUFFIX)

    @contextmanager
    def _locked(self, user_id: str) -> Iterator[None]:
        import fcntl
        lock = self.folder / (user_id + ".lock")
        try:
            fd = os.open(str(lock), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file {lock} (nothing was changed): "
                             f"{exc}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise StoreError(f"cannot lock {lock} (nothing was changed): {exc}") from exc
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self, user_id: str) -> Optional[StoreRecord]:
        path = self._path(user_id)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        bad = f"{path} is corrupt"
        if len(blob) < len(_MAGIC) + 8 or not blob.startswith(_MAGIC):
            raise StateFormatError(f"{bad} (not an edge-omd state file)")
        (crc,) = struct.unpack("<I", blob[-4:])
        if zlib.crc32(blob[:-4]) != crc:
            raise StateFormatError(f"{bad} (checksum mismatch)")
        (hlen,) = struct.unpack("<I", blob[len(_MAGIC):len(_MAGIC) + 4])
        start = len(_MAGIC) + 4
        try:
            h = json.loads(blob[start:start + hlen].decode("utf-8"))
            if not isinstance(h, dict):
                raise TypeError(f"a JSON object was expected, got {type(h).__name__}")
            fp = h["head_fingerprint"]
            if fp is not None and not isinstance(fp, str):
                raise TypeError("head_fingerprint is not a hex string")
            if not isinstance(h["user_id"], str):
                raise TypeError("user_id is not a string")
            rec = StoreRecord(h["user_id"], None if fp is None else bytes.fromhex(fp),
                              _header_int(h, "dim"), _header_int(h, "format_version"),
                              blob[start + hlen:-4], _header_int(h, "updates"),
                              _header_time(h, "created_at"), _header_time(h, "updated_at"))
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
            raise StateFormatError(f"{bad} (header: {str(exc)[:200]})") from exc
        if rec.user_id != user_id:
            raise StoreError(f"{path} holds user {rec.user_id!r}, not {user_id!r}: the two ids "
                             "collide on this (case-insensitive) file system; rename one")
        return rec

    def get(self, user_id):
        validate_user_id(user_id)
        return self._read(user_id)

    def update(self, user_id, fn, *, head_fingerprint, dim):
        path = self._path(user_id)
        with self._locked(user_id):
            old = self._read(user_id)
            new_state = _check_new_state(fn(old))
            now = time.time()
            rec = StoreRecord(user_id, None if head_fingerprint is None else bytes(head_fingerprint),
                              int(dim), RECORD_FORMAT, new_state,
                              1 if old is None else old.updates + 1,
                              now if old is None else old.created_at, now)
            header = json.dumps({
                "user_id": rec.user_id, "dim": rec.dim, "format_version": rec.format_version,
                "head_fingerprint": None if rec.head_fingerprint is None
                else rec.head_fingerprint.hex(),
                "updates": rec.updates, "created_at": rec.created_at, "updated_at": rec.updated_at,
            }).encode("utf-8")
            body = _MAGIC + struct.pack("<I", len(header)) + header + rec.state
            body += struct.pack("<I", zlib.crc32(body))
            tmp = None
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{user_id}.", suffix=_TMP_SUFFIX,
                                           dir=str(self.folder))
                with os.fdopen(fd, "wb") as f:
                    f.write(body)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException as exc:
                if tmp is not None:   # not renamed: the tmp file is ours alone, drop it
                    try:
                        os.unlink(tmp)
                    except OSError:
                        pass
                if isinstance(exc, OSError):
                    raise StoreError(f"cannot write {path} (the previous state is intact): "
                                     f"{exc}") from exc
                raise
            # The rename succeeded: the update is committed (every reader sees it), so from
            # here on nothing may report it as failed, or a retry would apply it twice.
            try:
                _fsync_dir(self.folder)
            except OSError as exc:
                _log.warning("user %r: the new state of %s is in place, but the folder could "
                             "not be fsync'ed, so the rename may not survive a power cut: %s",
                             user_id, path, exc)
        return rec

    def _stale_tmp_files(self, user_id: str) -> list[Path]:
        # Temporary files of an update interrupted by a crash (they hold a full state).
        # mkstemp names are ".<user_id>.<random>.tmp" with a random part that has no '.',
        # so the files of "alice.smith" are never taken for those of "alice".
        prefix = f".{user_id}."
        out = []
        try:
            names = os.listdir(self.folder)
        except OSError as exc:
            raise StoreError(f"cannot list {self.folder}: {exc}") from exc
        for name in names:
            if name.startswith(prefix) and name.endswith(_TMP_SUFFIX):
                middle = name[len(prefix):-len(_TMP_SUFFIX)]
                if middle and "." not in middle:
                    out.append(self.folder / name)
        return out

    def delete(self, user_id):
        path = self._path(user_id)
        with self._locked(user_id):
            # Under the user's lock no update of this user is writing, so every temporary file
            # of the user is a leftover of a crashed update: erase it too (forget me).
            for tmp in self._stale_tmp_files(user_id):
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise StoreError(f"cannot delete {tmp}: {exc}") from exc
            try:
                os.unlink(path)
                found = True
            except FileNotFoundError:
                found = False
            except OSError as exc:
                raise StoreError(f"cannot delete {path}: {exc}") from exc
            try:
                _fsync_dir(self.folder)
            except OSError as exc:   # the files are gone for every reader: do not report failure
                _log.warning("user %r was deleted from %s, but the folder could not be "
                             "fsync'ed: %s", user_id, self.folder, exc)
        return found

    def users(self):
        out = []
        for p in self.folder.glob("*" + _SUFFIX):
            uid = p.name[:-len(_SUFFIX)]
            if _USER_ID.fullmatch(uid):
                out.append(uid)
        return sorted(out)

    def __repr__(self):
        return f"FolderStore({str(self.folder)!r})"
