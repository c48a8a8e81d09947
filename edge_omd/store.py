"""Where users' reward models live between sessions: a checkpoint plus a journal per user;
crash-safe, multi-process safe, O(d) bytes written per feedback.

Every committed observation is ONE journal record (edge_omd/journal.py, docs/JOURNAL_FORMAT.md):
the z the model learned (one d-vector in the state's dtype), its label, weight, counter and a
CRC-32. The full state (RewardModel bytes) is written only at a CHECKPOINT: when a user is
created (so a replay base always exists), every N records, when the app calls
`Personalizer.checkpoint()` / `close()`, and on `import_state`. Recovery = the last checkpoint
plus the journal records after it, replayed in order, which gives the live model bit for bit.
The journal is cleared at each checkpoint, so the footprint stays bounded: about 2x the state
while a checkpoint is written, N records, and (SQLite) the write-ahead log's high-water mark.

Two stores, one design (the `Store` contract below):

- `SQLiteStore(path)` (the default): one SQLite file (standard library) in WAL mode. Tables:
  `users` (small row per user: epoch, counters, head fingerprint, dim), `checkpoints` (the state
  blob, one row per user, written only at checkpoints) and `journal` (one row per record, rowid
  = slot * 2^40 + seq, so a user's records are one contiguous range of one b-tree). Every write
  is one `BEGIN IMMEDIATE ... COMMIT` transaction (the write lock is taken before anything is
  read), so writers of one user serialise and none is lost.
- `FolderStore(folder)`: per user `<h>.omdck` (the checkpoint, replaced atomically:
  temporary file, fsync, rename, fsync of the folder), `<h>.omdjr` (append-only; truncated
  after a checkpoint is durable) and `<h>.omdlk` (an `flock` around every write), where h is a
  keyed hash of the user id (file names do not reveal ids). Every file operation goes through
  one small `FileIO` object (open, write, fsync, rename, truncate, unlink, ...), so a test can
  record or fault every operation (tests/sdk/crash_explorer.py explores power cuts with it).

Both put writers in a `FairQueue` (arrival order) before their own lock, read every row / file
with the checks of docs/FORMATS.md (tampering and damage raise StateFormatError / StoreError),
and frame their bytes through edge_omd/envelope.py.

Durability, the same switch for both: `durable="full"` (default): every commit is fsync'ed
before it returns, so a committed feedback survives a power cut. `durable="normal"`: commits
are not fsync'ed (SQLite: synchronous=NORMAL; folder: no fsync per append), checkpoints still
are; a process crash (kill, OOM) still loses nothing committed, but a power cut or OS crash
may lose the feedbacks committed since the last checkpoint (fewer than N), never more, and
never corrupts: what survives is always a prefix of the committed sequence.

The counter `updates` counts committed observations (a batch of 10 adds 10); the staleness
token is the pair (epoch, updates), where the epoch is a random id drawn when a user's record
is created or replaced (import_state), so a cached model never mistakes another incarnation
for its own. Records carry the epoch too: a leftover record of another incarnation is never
replayed.

Format history: RECORD_FORMAT 1 kept one blob per user rewritten at every update (SQLite
schema 1, folder files with magic EOMDREC1). Such stores still open: SQLite is migrated in one
transaction when opened (schema 2), a folder's EOMDREC1 file is read as a checkpoint and
rewritten as one (EOMDREC2) at the next write of that user. Nothing is lost either way.
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
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Optional

from edge_omd import _checks, envelope
from edge_omd import journal as _journal
from edge_omd.envelope import FileIO
from edge_omd.errors import ConfigError, StateFormatError, StoreError, UserIdError
from edge_omd.head.binding import check_binding

_log = logging.getLogger(__name__)

__all__ = ["StoreRecord", "Head", "Sync", "Store", "SQLiteStore", "FolderStore", "UserIdError",
           "FileIO", "RECORD_FORMAT", "validate_user_id"]

# Version of the envelope a store keeps around the RewardModel's bytes (the blob itself carries
# the RewardModel's own format version). 2: checkpoint + journal. 1: one blob per user (read,
# migrated).
RECORD_FORMAT = 2
READABLE_FORMATS = (1, 2)
# seq lives in the low 40 bits of a journal rowid (SQLite): 10^12 observations per incarnation.
_SEQ_BITS = 40
MAX_UPDATES = (1 << _SEQ_BITS) - 1

# Letters, digits, '.', '_', '-', '@'; starts with a letter or digit (so never '.' or '..'),
# at most 128 characters. Safe as a file name on every platform we ship to.
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


def validate_user_id(user_id) -> str:
    """Return `user_id` if it is a valid id, else raise `UserIdError` (nothing is touched)."""
    if not isinstance(user_id, str) or _USER_ID.fullmatch(user_id) is None:
        raise UserIdError(
            f"invalid user id {user_id!r}: use 1-128 characters from letters, digits and '._@-', "
            "starting with a letter or digit (hash other identifiers, e.g. an e-mail, first)")
    return user_id


def _durability(durable) -> str:
    if durable is True or durable == "full":
        return "full"
    if durable is False or durable == "normal":
        return "normal"
    raise ConfigError(f"durable must be 'full' or 'normal' (or True / False), got {durable!r}")


_MAX_EPOCH = 1 << 62   # epochs are drawn in [1, 2^62] (Python and Java alike)


def _new_epoch() -> int:
    return secrets.randbits(62) + 1


@dataclass(frozen=True)
class StoreRecord:
    """One user's committed state: the last checkpoint and the journal records after it."""
    user_id: str
    head_fingerprint: Optional[bytes]  # the FeatureHead the state was learned on (None: unbound)
    dim: int                           # feature dimension d of the state
    format_version: int                # RECORD_FORMAT of the envelope the checkpoint was read from
    state: bytes                       # RewardModel.to_bytes() at the checkpoint
    updates: int                       # committed observations (checkpoint's + journal records)
    created_at: float                  # unix seconds
    updated_at: float                  # unix seconds of the checkpoint
    epoch: int = 0                     # incarnation id (records carry it too)
    checkpoint_updates: int = 0        # the counter at the checkpoint
    journal: tuple = field(default=(), compare=False, repr=False)  # journal.Record after it

    def check_head(self, fingerprint: Optional[bytes], dim: int) -> None:
        """Raise HeadMismatchError / StateFormatError unless this state can be used with the head."""
        check_stored_head(self.user_id, self.format_version, self.head_fingerprint, self.dim,
                          fingerprint, dim)


def check_stored_head(user_id: str, format_version: int, stored_fingerprint: Optional[bytes],
                      stored_dim: int, fingerprint: Optional[bytes], dim: int) -> None:
    """Raise StateFormatError unless this SDK reads the record format, HeadMismatchError unless
    the stored state (fingerprint, dim) can be used with the head (edge_omd/head/binding.py)."""
    if format_version not in READABLE_FORMATS:
        raise StateFormatError(
            f"user {user_id!r}: stored record format {format_version}, this SDK reads "
            f"formats {READABLE_FORMATS}; upgrade edge-omd or reset the user")
    check_binding(stored_fingerprint, stored_dim, fingerprint, dim,
                  what=f"user {user_id!r}: the stored state")


class Head(NamedTuple):
    """Where a user's committed sequence stands; also a reader's cursor into it."""
    epoch: int
    updates: int              # counter of the last committed record
    checkpoint_updates: int   # counter at the checkpoint
    created_at: float
    pos: tuple = ()           # store-private position (folder: checkpoint file id, journal offset)

    @property
    def token(self) -> tuple:
        return (self.epoch, self.updates)


class Sync(NamedTuple):
    """What a reader at `cursor` must do to reach the committed state.

    head None: the user has no record. record set: load its checkpoint and replay its journal
    (the cursor could not be continued). Otherwise replay `tail` (possibly empty) on the cached
    model."""
    head: Optional[Head]
    record: Optional[StoreRecord] = None
    tail: tuple = ()


UpdateFn = Callable[[Optional[StoreRecord]], bytes]


class Store:
    """The contract of a state store (see the module docstring).

    Readers: `sync(user_id, cursor)` (what to replay), `get`, `version`, `users`. Writers:
    `with store.transaction(user_id, head_fingerprint=..., dim=...) as tx:` then `tx.sync`,
    `tx.create`, `tx.append`, `tx.checkpoint`; committed when the block exits normally,
    nothing written if it raises.
    """

    durable: str = "full"

    def sync(self, user_id: str, cursor: Optional[Head] = None) -> Sync:
        raise NotImplementedError

    def transaction(self, user_id: str, *, head_fingerprint: Optional[bytes], dim: int,
                    checkpoint: bool = False):
        """Context manager of one write transaction; checkpoint=True announces that it may write
        a checkpoint (committed durably whatever `durable` says)."""
        raise NotImplementedError

    def get(self, user_id: str) -> Optional[StoreRecord]:
        """The user's last checkpoint with the journal records after it, or None."""
        return self.sync(validate_user_id(user_id), None).record

    def version(self, user_id: str) -> Optional[tuple]:
        """`(epoch, updates)` of the user's committed sequence, None if absent: a cheap
        staleness token (the counter alone is not one: a re-created or imported user may have
        the same count)."""
        s = self.sync(validate_user_id(user_id), None)
        return None if s.head is None else s.head.token

    def update(self, user_id: str, fn: UpdateFn, *, head_fingerprint: Optional[bytes],
               dim: int) -> StoreRecord:
        """Replace the user's whole state by `fn(latest_record_or_None)` (a new checkpoint,
        journal cleared, new epoch; the counter grows by one). The low-level primitive kept
        from RECORD_FORMAT 1; the Personalizer journals instead."""
        with self.transaction(user_id, head_fingerprint=head_fingerprint, dim=dim,
                              checkpoint=True) as tx:
            s = tx.sync(None)
            new = _check_new_state(fn(s.record))
            n = 1 if s.head is None else s.head.updates + 1
            tx.create(new, updates=n)
        return self.get(user_id)

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


@contextmanager
def _nothing():
    yield


def _check_new_state(new_state) -> bytes:
    if not isinstance(new_state, (bytes, bytearray, memoryview)):
        raise StoreError(f"the update function returned {type(new_state).__name__}, not bytes; "
                         "nothing was written")
    return bytes(new_state)


def _state_meta(state: bytes):
    """(dim, itemsize) of a RewardModel state (from its fixed header), for checking records."""
    from edge_omd import state_format
    try:
        meta, _spec, _total = state_format.decode_header(bytes(state[:state_format.HEADER.size]))
    except StateFormatError:
        return None
    return meta["dim"], meta["itemsize"]


def _refuse_newer(parsed: _journal.Parsed, user_id: str, where) -> _journal.Parsed:
    """`parsed`, unless it stopped at a record written by a newer edge-omd (journal.Newer): then
    StoreError, before anything is applied, cut or rewritten (a downgrade must not lose it)."""
    if parsed.newer is not None:
        raise StoreError(f"user {user_id!r} in {where}: the journal stops at a {parsed.newer} "
                         f"(after {len(parsed.records)} records this SDK reads); upgrade edge-omd "
                         f"to open this user (nothing was changed: every record is kept)")
    return parsed


def _parse_tail(buf, *, state: bytes, epoch: int, after: int, start: int = 0,
                skip_older: bool = True) -> _journal.Parsed:
    meta = _state_meta(state)
    if meta is None:   # an unreadable checkpoint: the loader says why; nothing to replay on it
        return _journal.Parsed([], [], start, "the checkpoint is unreadable", start)
    return _journal.parse(buf, epoch=epoch, after=after, dim=meta[0], itemsize=meta[1],
                          start=start, skip_older=skip_older)


# --------------------------------------------------------------------------------------- fair queue

_Q_MOD = 1 << 32


class FairQueue:
    """A FIFO lock in front of a store's own write lock (CLH queue over files + flock).

    SQLite's busy handler and a contended `flock` are not fair: a process that has just released
    the lock often takes it again before the waiters wake (measured: 4 writers x 50 feedbacks,
    one writer done in 0.5 s, another in 2.3 s). Here each writer draws a ticket n (a counter
    in `<base>`, read and bumped under a short flock), holds an flock on its own entry file
    `<base>.<n>` while it waits and works, and waits for the entry of ticket n - 1 to be
    released: writers enter in ticket order. A writer that dies releases its flock (the kernel
    does it), so its successor goes on; nothing here needs recovery after a crash or power cut.

    Only fairness depends on it: the store's own lock (BEGIN IMMEDIATE, the user's flock) is
    still taken inside, so a queue that fails in any way (a file it cannot create, a counter
    someone rewrote) degrades to the unfair lock, never to two writers at once."""

    def __init__(self, base: str, io: Optional[FileIO] = None):
        self.base = base
        self.io = io if io is not None else envelope.DEFAULT_IO

    @contextmanager
    def __call__(self) -> Iterator[None]:
        import fcntl
        io, mine, efd = self.io, None, None
        try:
            tfd = io.open(self.base, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                io.flock(tfd, fcntl.LOCK_EX)
                raw = io.pread(tfd, 8, 0)
                n = int.from_bytes(raw, "little") % _Q_MOD if len(raw) == 8 else 0
                mine = f"{self.base}.{n}"
                efd = io.open(mine, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    io.flock(efd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:   # held by a writer of another numbering: no queue this time
                    io.close(efd)
                    efd, mine = None, None
                else:
                    io.pwrite(tfd, ((n + 1) % _Q_MOD).to_bytes(8, "little"), 0)
            finally:
                io.close(tfd)   # releases the ticket lock
        except OSError as exc:
            _log.debug("fair queue %s unavailable (%s): the store's own lock only", self.base, exc)
            if efd is not None:
                io.close(efd)
            efd, mine = None, None
        try:
            if efd is not None:
                self._wait_for(f"{self.base}.{(n - 1) % _Q_MOD}")
            yield
        finally:
            if efd is not None:
                try:
                    io.unlink(mine)   # first: a successor that opens it now gets ENOENT: go
                except OSError:
                    pass
                io.close(efd)         # wakes a successor blocked on it

    def _wait_for(self, pred: str) -> None:
        import fcntl
        io = self.io
        try:
            pfd = io.open(pred, os.O_RDWR)
        except OSError:
            return                    # released (unlinked) already, or never there
        try:
            io.flock(pfd, fcntl.LOCK_EX)   # until its writer is done (or dead)
            try:
                io.unlink(pred)       # a dead writer's entry; a done one unlinked it already
            except OSError:
                pass
        except OSError:
            pass
        finally:
            io.close(pfd)


# --------------------------------------------------------------------------------------- SQLite

# What the sqlite3 module raises on a damaged or tampered file besides its own errors: a schema
# or message that is not UTF-8 gives UnicodeDecodeError, an integer beyond 64 bits OverflowError.
_DB_ERRORS = (sqlite3.Error, UnicodeError, OverflowError)
_TAMPERED = ("the store was changed outside edge-omd: restore the file from a backup, or erase "
             "the user with store.delete() and start again")
_MAX_SLOT = (1 << (63 - 40)) - 2   # slot * 2^40 + seq stays a signed 64-bit rowid


def _col_int(v, lo: int, hi: int, name: str, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise StateFormatError(f"{where}: column {name} holds {v!r:.40}, not an integer in "
                               f"[{lo}, {hi}]; {_TAMPERED}")
    return v


def _col_real(v, name: str, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (
            float("inf"), float("-inf")):
        raise StateFormatError(f"{where}: column {name} holds {v!r:.40}, not a finite number; "
                               f"{_TAMPERED}")
    return float(v)


def _col_blob(v, name: str, where: str, optional: bool = False):
    if v is None and optional:
        return None
    if not isinstance(v, bytes):
        raise StateFormatError(f"{where}: column {name} holds a {type(v).__name__}, not a "
                               f"blob; {_TAMPERED}")
    return v


def _text(b: bytes) -> str:
    """sqlite3 text_factory: text that is not UTF-8 (tampering) decodes with replacement
    characters, so it can never equal a valid user id instead of raising UnicodeDecodeError."""
    return b.decode("utf-8", "replace")


_SCHEMA_VERSION = 2
_SCHEMA = [
    """CREATE TABLE users (
    user_id            TEXT PRIMARY KEY,
    slot               INTEGER NOT NULL UNIQUE,
    epoch              INTEGER NOT NULL,
    head_fingerprint   BLOB,
    dim                INTEGER NOT NULL,
    format_version     INTEGER NOT NULL,
    checkpoint_updates INTEGER NOT NULL,
    created_at         REAL NOT NULL,
    checkpointed_at    REAL NOT NULL)""",
    "CREATE TABLE checkpoints (slot INTEGER PRIMARY KEY, state BLOB NOT NULL)",
    "CREATE TABLE journal (id INTEGER PRIMARY KEY, rec BLOB NOT NULL)",
]
_USER_COLS = ("user_id, slot, epoch, head_fingerprint, dim, format_version, checkpoint_updates, "
              "created_at, checkpointed_at")
_HEAD_SQL = ("SELECT epoch, checkpoint_updates, created_at, slot, (SELECT MAX(id) FROM journal "
             "WHERE id > slot * 1099511627776 AND id < (slot + 1) * 1099511627776) "
             "FROM users WHERE user_id = ?")
assert 1 << _SEQ_BITS == 1099511627776
# A WAL grown by a large checkpoint is cut back to this size once it has been folded back.
_WAL_LIMIT = 4 << 20


class SQLiteStore(Store):
    """SQLite in WAL mode: the embedded, crash-safe, multi-process default.

    Args:
        path: the database file; its folder must exist (StoreError otherwise, nothing created).
        timeout_s: how long a writer waits for another process's transaction (busy timeout).
        durable: "full" (default; True also means it): `synchronous=FULL`, the WAL is fsync'ed
            at every commit, so a committed feedback survives a power cut. "normal" (or False):
            `synchronous=NORMAL` for the journal appends (a power cut, not an app crash, may
            roll back the commits since the last checkpoint), while checkpoint commits still run
            with FULL; never corrupt.

        fair: writers queue in arrival order (`FairQueue`, files `<path>-omdq` and
            `<path>-omdq.<n>` beside the database) before SQLite's own lock; False: SQLite's
            busy handler alone (unfair under contention; bench `persistence --only contention`).

    One connection per process and thread (re-opened after a fork), autocommit mode, explicit
    `BEGIN IMMEDIATE ... COMMIT`; `secure_delete` while a user is deleted and a WAL checkpoint
    after it, so a forgotten user's bytes do not linger in free pages or the log. Rows are
    checked when read (types and ranges): a tampered or damaged file raises StateFormatError or
    StoreError, never a raw sqlite3 / unicode / overflow error.
    """

    def __init__(self, path, *, timeout_s: float = 30.0, durable="full", fair: bool = True):
        self.path = Path(path)
        self.timeout_s = _checks.at_least("timeout_s", timeout_s, 0.0, ConfigError)
        self.durable = _durability(durable)
        self._queue = FairQueue(str(self.path) + "-omdq") if fair else None
        self._local = threading.local()
        parent = self.path.parent
        if not parent.is_dir():
            raise StoreError(f"cannot open the state store {self.path}: the folder {parent} does "
                             "not exist (create it first; the store does not create folders)")
        try:
            con = self._con()
            self._migrate(con)
        except _DB_ERRORS as exc:  # not a database, locked for too long, read-only, damaged...
            raise StoreError(f"cannot open the state store {self.path}: {exc}; if the file is "
                             f"damaged, {_TAMPERED}") from exc

    def _migrate(self, con) -> None:
        found = con.execute("PRAGMA user_version").fetchone()[0]
        if found == _SCHEMA_VERSION:
            self._check_schema(con)
            return
        if found not in (0, 1):
            raise StateFormatError(
                f"{self.path}: store schema version {found}, this SDK reads {_SCHEMA_VERSION} "
                "(and migrates 1); upgrade edge-omd or open another file")
        with self._transaction(con):
            found = con.execute("PRAGMA user_version").fetchone()[0]   # under the lock
            if found == _SCHEMA_VERSION:
                return
            for sql in _SCHEMA:
                con.execute(sql)
            if found == 1:   # RECORD_FORMAT 1: one row per user with the whole state
                rows = con.execute("SELECT rowid, user_id, head_fingerprint, dim, updates, "
                                   "created_at, updated_at FROM user_state").fetchall()
                for slot, uid, fp, dim, updates, created, updated in rows:
                    con.execute(f"INSERT INTO users ({_USER_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
                                (uid, slot, _new_epoch(), fp, dim, RECORD_FORMAT, updates,
                                 created, updated))
                    con.execute("INSERT INTO checkpoints (slot, state) SELECT rowid, state FROM "
                                "user_state WHERE rowid = ?", (slot,))
                con.execute("DROP TABLE user_state")
                _log.info("%s: migrated %d users from store schema 1 (one blob per user) to 2 "
                          "(checkpoint + journal)", self.path, len(rows))
            con.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _con(self) -> sqlite3.Connection:
        # sqlite3 connections must not cross a fork or (by default) a thread.
        loc = self._local
        if getattr(loc, "pid", None) != os.getpid() or getattr(loc, "con", None) is None:
            try:
                con = sqlite3.connect(str(self.path), timeout=self.timeout_s,
                                      isolation_level=None, check_same_thread=True)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the state store {self.path}: {exc}") from exc
            con.text_factory = _text
            try:
                mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except _DB_ERRORS as exc:
                con.close()
                raise StoreError(f"cannot open the state store {self.path}: {exc}; if the file "
                                 f"is damaged, {_TAMPERED}") from exc
            if str(mode).lower() != "wal":
                con.close()
                raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r}); "
                                 "put the store on a local file system")
            con.execute(f"PRAGMA synchronous={'FULL' if self.durable == 'full' else 'NORMAL'}")
            con.execute("PRAGMA secure_delete=FAST")    # ON while a user is deleted
            con.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            con.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
            loc.con, loc.pid = con, os.getpid()
        return loc.con

    def _check_schema(self, con) -> None:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = {"users", "checkpoints", "journal"} - tables
        if missing:
            raise StateFormatError(f"{self.path}: store schema 2 without the table(s) "
                                   f"{sorted(missing)}; {_TAMPERED}")

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

    # -- reading
    def _head_row(self, con, user_id):
        row = con.execute(_HEAD_SQL, (user_id,)).fetchone()
        if row is None:
            return None, None
        epoch, ck, created, slot, top = row
        where = f"{self.path}: user {user_id!r}"
        epoch = _col_int(epoch, 1, _MAX_EPOCH, "users.epoch", where)
        ck = _col_int(ck, 0, MAX_UPDATES, "users.checkpoint_updates", where)
        created = _col_real(created, "users.created_at", where)
        slot = _col_int(slot, 1, _MAX_SLOT, "users.slot", where)
        n = ck if top is None else max(ck, int(top) - (slot << _SEQ_BITS))
        return Head(epoch, n, ck, created), slot

    def _rows(self, con, slot, after, upto=None):
        lo = (slot << _SEQ_BITS) + after
        hi = ((slot + 1) << _SEQ_BITS) - 1 if upto is None else (slot << _SEQ_BITS) + upto
        rows = con.execute("SELECT rec FROM journal WHERE id > ? AND id <= ? ORDER BY id",
                           (lo, hi)).fetchall()
        # a row that is not a blob (tampering) becomes one byte the parser stops at
        return b"".join(r[0] if isinstance(r[0], bytes) else b"\0" for r in rows), len(rows)

    def _full(self, con, user_id) -> Sync:
        row = con.execute(f"SELECT u.user_id, u.slot, u.epoch, u.head_fingerprint, u.dim, "
                          "u.format_version, u.checkpoint_updates, u.created_at, "
                          "u.checkpointed_at, c.state FROM users u JOIN checkpoints c "
                          "ON c.slot = u.slot WHERE u.user_id = ?", (user_id,)).fetchone()
        if row is None:
            return Sync(None)
        uid, slot, epoch, fp, dim, fmt, ck, created, ckpt_at, state = row
        where = f"{self.path}: user {user_id!r}"
        slot = _col_int(slot, 1, _MAX_SLOT, "users.slot", where)
        epoch = _col_int(epoch, 1, _MAX_EPOCH, "users.epoch", where)
        fp = _col_blob(fp, "users.head_fingerprint", where, optional=True)
        dim = _col_int(dim, 1, _journal.MAX_DIM, "users.dim", where)
        fmt = _col_int(fmt, 0, (1 << 31) - 1, "users.format_version", where)
        ck = _col_int(ck, 0, MAX_UPDATES, "users.checkpoint_updates", where)
        created = _col_real(created, "users.created_at", where)
        ckpt_at = _col_real(ckpt_at, "users.checkpointed_at", where)
        state = _col_blob(state, "checkpoints.state", where)
        buf, n = self._rows(con, slot, ck)
        parsed = _refuse_newer(_parse_tail(buf, state=state, epoch=epoch, after=ck,
                                           skip_older=False), uid, self.path)
        if parsed.stop is not None:
            _log.warning("%s: user %r: the journal stops at record %d of %d: %s", self.path,
                         uid, len(parsed.records) + 1, n, parsed.stop)
        rec = StoreRecord(uid, None if fp is None else bytes(fp), int(dim), int(fmt), state,
                          ck + len(parsed.records), float(created), float(ckpt_at), epoch, ck,
                          tuple(parsed.records))
        meta = _state_meta(state) or (0, 0)
        return Sync(Head(epoch, rec.updates, ck, float(created), tuple(meta)), rec, ())

    def _sync(self, con, user_id, cursor, head=None, slot=None) -> Sync:
        if head is None:
            head, slot = self._head_row(con, user_id)
        if head is None:
            return Sync(None)
        if cursor is None or not cursor.pos or cursor.epoch != head.epoch \
                or cursor.updates < head.checkpoint_updates or cursor.updates > head.updates:
            return self._full(con, user_id)
        if cursor.updates == head.updates:
            return Sync(cursor._replace(checkpoint_updates=head.checkpoint_updates), None, ())
        buf, _n = self._rows(con, slot, cursor.updates, head.updates)
        parsed = _journal.parse(buf, epoch=head.epoch, after=cursor.updates, dim=cursor.pos[0],
                                itemsize=cursor.pos[1], skip_older=False)
        if parsed.stop is not None:   # a corrupt row: the full path logs it and stops there
            return self._full(con, user_id)
        return Sync(head._replace(pos=cursor.pos), None, tuple(parsed.records))

    def sync(self, user_id, cursor=None):
        validate_user_id(user_id)
        con = self._con()
        try:
            head, slot = self._head_row(con, user_id)   # the common case: one statement
            if head is None:
                return Sync(None)
            if cursor is not None and cursor.pos and cursor.token == head.token:
                return Sync(cursor._replace(checkpoint_updates=head.checkpoint_updates), None, ())
            con.execute("BEGIN")          # one consistent snapshot for the reads that follow
            try:
                return self._sync(con, user_id, cursor)
            finally:
                con.execute("COMMIT")
        except _DB_ERRORS as exc:
            raise StoreError(f"cannot read user {user_id!r} from {self.path}: {exc}") from exc

    def version(self, user_id):
        validate_user_id(user_id)
        try:
            head, _slot = self._head_row(self._con(), user_id)
        except _DB_ERRORS as exc:
            raise StoreError(f"cannot read user {user_id!r} from {self.path}: {exc}") from exc
        return None if head is None else head.token

    # -- writing
    @contextmanager
    def transaction(self, user_id, *, head_fingerprint, dim, checkpoint=False):
        """A write transaction (see Store). checkpoint=True: it may write a checkpoint, so with
        durable="normal" it is committed with synchronous=FULL all the same."""
        validate_user_id(user_id)
        con = self._con()
        raised = checkpoint and self.durable != "full"
        try:
            if raised:
                con.execute("PRAGMA synchronous=FULL")
            tx = _SQLiteTx(self, con, user_id, head_fingerprint, int(dim))
            with self._fair(), self._transaction(con):
                yield tx
        except sqlite3.Error as exc:   # (the block's own errors pass through untouched)
            raise StoreError(f"cannot write user {user_id!r} to {self.path} (nothing was "
                             f"changed): {exc}") from exc
        finally:
            if raised:
                try:
                    con.execute("PRAGMA synchronous=NORMAL")
                except _DB_ERRORS:   # pragma: no cover - reopen resets it
                    self._local.con = None

    def _fair(self):
        return self._queue() if self._queue is not None else _nothing()

    def delete(self, user_id):
        validate_user_id(user_id)
        con = self._con()
        try:
            con.execute("PRAGMA secure_delete=ON")
            try:
                with self._fair(), self._transaction(con):
                    row = con.execute("SELECT slot FROM users WHERE user_id = ?",
                                      (user_id,)).fetchone()
                    if row is not None:
                        slot = _col_int(row[0], 1, _MAX_SLOT, "users.slot",
                                        f"{self.path}: user {user_id!r}")
                        con.execute("DELETE FROM journal WHERE id > ? AND id < ?",
                                    (slot << _SEQ_BITS, (slot + 1) << _SEQ_BITS))
                        con.execute("DELETE FROM checkpoints WHERE slot = ?", (slot,))
                        con.execute("DELETE FROM users WHERE slot = ?", (slot,))
            finally:
                con.execute("PRAGMA secure_delete=FAST")
        except _DB_ERRORS as exc:
            raise StoreError(f"cannot delete user {user_id!r} from {self.path}: {exc}") from exc
        # The rows are gone (committed): from here on nothing may report the delete as failed.
        # Old pages of the rows may still sit in the write-ahead log: fold it back now; if that
        # fails, the next checkpoint (or the next delete) folds them.
        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except _DB_ERRORS as exc:
            _log.warning("user %r was deleted from %s, but the WAL checkpoint that erases its "
                         "old pages from the log failed: %s", user_id, self.path, exc)
        return row is not None

    def users(self):
        try:
            rows = self._con().execute("SELECT user_id FROM users ORDER BY user_id").fetchall()
        except _DB_ERRORS as exc:
            raise StoreError(f"cannot list users of {self.path}: {exc}") from exc
        out = []
        for (uid,) in rows:
            if not isinstance(uid, str) or _USER_ID.fullmatch(uid) is None:
                raise StateFormatError(f"{self.path}: users.user_id holds {uid!r:.60}, not a "
                                       f"valid user id; {_TAMPERED}")
            out.append(uid)
        return out

    def check_head(self, fingerprint, dim):
        # Only the small columns: no state blob is read.
        try:
            rows = self._con().execute(
                "SELECT user_id, head_fingerprint, dim, format_version FROM users").fetchall()
        except _DB_ERRORS as exc:
            raise StoreError(f"cannot read the users of {self.path}: {exc}") from exc
        for uid, fp, d, fmt in rows:
            where = f"{self.path}: user {uid!r:.60}"
            fp = _col_blob(fp, "users.head_fingerprint", where, optional=True)
            d = _col_int(d, 1, _journal.MAX_DIM, "users.dim", where)
            fmt = _col_int(fmt, 0, (1 << 31) - 1, "users.format_version", where)
            check_stored_head(uid, fmt, fp, d, fingerprint, dim)

    def close(self):
        con = getattr(self._local, "con", None)
        if con is not None and getattr(self._local, "pid", None) == os.getpid():
            con.close()
        self._local.con = None

    def __repr__(self):
        return f"SQLiteStore({str(self.path)!r}, durable={self.durable!r})"


class _SQLiteTx:
    """One write transaction of SQLiteStore (see Store.transaction)."""

    def __init__(self, store, con, user_id, fingerprint, dim):
        self.store, self.con, self.user_id = store, con, user_id
        self.fingerprint = None if fingerprint is None else bytes(fingerprint)
        self.dim = dim
        self.head: Optional[Head] = None
        self.slot: Optional[int] = None
        self._synced = False

    def sync(self, cursor: Optional[Head]) -> Sync:
        head, self.slot = self.store._head_row(self.con, self.user_id)
        s = self.store._sync(self.con, self.user_id, cursor, head, self.slot)
        self.head, self._synced = s.head, True
        if s.record is not None and s.record.updates < head.updates:
            # a corrupt record (tampering, bit rot): the valid prefix is the user's sequence
            # from now on; the rows after it go, so that appends continue the prefix
            k = self.con.execute("DELETE FROM journal WHERE id > ? AND id < ?",
                                 ((self.slot << _SEQ_BITS) + s.record.updates,
                                  (self.slot + 1) << _SEQ_BITS)).rowcount
            _log.warning("%s: user %r: %d journal records from the first bad one on were "
                         "dropped", self.store.path, self.user_id, k)
        return s

    def _need_sync(self):
        if not self._synced:
            self.sync(None)

    def create(self, state: bytes, *, updates: int = 0) -> Head:
        """A new checkpoint with a new epoch and an empty journal (new user, import, update)."""
        self._need_sync()
        state = _check_new_state(state)
        if not 0 <= updates <= MAX_UPDATES:
            raise StoreError(f"counter {updates} beyond {MAX_UPDATES}")
        now, epoch, con = time.time(), _new_epoch(), self.con
        if self.slot is None:
            top = con.execute("SELECT MAX(slot) FROM users").fetchone()[0]
            if top is not None:
                top = _col_int(top, 1, _MAX_SLOT, "users.slot", str(self.store.path))
                if top >= _MAX_SLOT:
                    raise StoreError(f"{self.store.path}: no user slot left; {_TAMPERED}")
            self.slot = 1 if top is None else top + 1
            created = now
        else:
            con.execute("DELETE FROM journal WHERE id > ? AND id < ?",
                        (self.slot << _SEQ_BITS, (self.slot + 1) << _SEQ_BITS))
            created = self.head.created_at
        con.execute(f"INSERT OR REPLACE INTO users ({_USER_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
                    (self.user_id, self.slot, epoch, self.fingerprint, self.dim, RECORD_FORMAT,
                     updates, created, now))
        con.execute("INSERT OR REPLACE INTO checkpoints (slot, state) VALUES (?, ?)",
                    (self.slot, state))
        self.head = Head(epoch, updates, updates, created, tuple(_state_meta(state) or (0, 0)))
        return self.head

    def append(self, records) -> Head:
        """Append encoded journal records (their seq must continue the head's)."""
        self._need_sync()
        if self.head is None:
            raise StoreError("append before the user's first checkpoint (create it first)")
        base = self.slot << _SEQ_BITS
        n = self.head.updates
        if n + len(records) > MAX_UPDATES:
            raise StoreError(f"user {self.user_id!r}: counter beyond {MAX_UPDATES}")
        if len(records) == 1:
            self.con.execute("INSERT INTO journal (id, rec) VALUES (?, ?)", (base + n + 1,
                                                                            records[0]))
        else:
            self.con.executemany("INSERT INTO journal (id, rec) VALUES (?, ?)",
                                 [(base + n + 1 + i, r) for i, r in enumerate(records)])
        self.head = self.head._replace(updates=n + len(records))
        return self.head

    def checkpoint(self, state: bytes, *, updates: int) -> Head:
        """The full state after `updates` observations; clears the journal up to it."""
        self._need_sync()
        if self.head is None or updates != self.head.updates:
            raise StoreError("a checkpoint must be of the state at the head of the journal")
        con, slot = self.con, self.slot
        con.execute("UPDATE users SET checkpoint_updates = ?, checkpointed_at = ?, "
                    "format_version = ? WHERE slot = ?",
                    (updates, time.time(), RECORD_FORMAT, slot))
        con.execute("UPDATE checkpoints SET state = ? WHERE slot = ?",
                    (_check_new_state(state), slot))
        con.execute("DELETE FROM journal WHERE id > ? AND id <= ?",
                    (slot << _SEQ_BITS, (slot << _SEQ_BITS) + updates))
        self.head = self.head._replace(checkpoint_updates=updates)
        return self.head


# --------------------------------------------------------------------------------------- folder

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
    """The bytes of a FolderStore checkpoint file (format 2) holding `rec`."""
    return envelope.pack_json(_MAGIC, {
        "user_id": rec.user_id, "dim": rec.dim, "format_version": RECORD_FORMAT,
        "head_fingerprint": None if rec.head_fingerprint is None else rec.head_fingerprint.hex(),
        "updates": rec.updates, "epoch": rec.epoch, "created_at": rec.created_at,
        "updated_at": rec.updated_at,
    }, rec.state)


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
    return StoreRecord(uid, fp, dim, fmt, bytes(state), updates, created, updated, epoch, updates)


def _legacy_epoch(user_id: str, created_at: float) -> int:
    """A RECORD_FORMAT 1 file has no epoch: derive a stable one from what it holds."""
    h = hashlib.sha256(b"edge-omd legacy epoch\0" + user_id.encode() + b"\0"
                       + repr(float(created_at)).encode()).digest()
    return (int.from_bytes(h[:8], "little") >> 2) + 1


def _file_id(st) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


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
                           rec.updated_at, rec.epoch, rec.updates, tuple(parsed.records))
        head = Head(rec.epoch, full.updates, rec.updates, rec.created_at,
                    (cid, jid, end, meta[0], meta[1], bytes(buf[end - 4:end]) if end else b""))
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


class _FolderTx:
    """One write transaction of FolderStore: reads under the lock, writes at commit."""

    def __init__(self, store: FolderStore, user_id, fingerprint, dim):
        self.store, self.user_id = store, user_id
        self.fingerprint = None if fingerprint is None else bytes(fingerprint)
        self.dim = dim
        self.head: Optional[Head] = None
        self._rec: Optional[StoreRecord] = None   # the checkpoint as read (legacy: to migrate)
        self._info = None                          # (journal id, valid end, size, stop reason)
        self._synced = False
        self._create = None       # StoreRecord of a new checkpoint (new epoch)
        self._records: list = []
        self._end_after_append = -1
        self._ckpt = None         # (state, updates)

    def sync(self, cursor):
        s, info = self.store._sync(self.user_id, cursor, locked=True)
        self.head, self._info, self._synced = s.head, info, True
        self._rec = s.record
        if info is not None and info[3] is not None and info[1] < info[2]:
            _log.warning("%s: user %r: the journal stops at byte %d of %d (%s); the rest is cut "
                         "before the next append", self.store.folder, self.user_id, info[1],
                         info[2], info[3])
        return s

    def _need_sync(self):
        if not self._synced:
            self.sync(None)

    def create(self, state, *, updates=0):
        self._need_sync()
        state = _check_new_state(state)
        if not 0 <= updates <= MAX_UPDATES:
            raise StoreError(f"counter {updates} beyond {MAX_UPDATES}")
        now = time.time()
        created = now if self.head is None else self.head.created_at
        epoch = _new_epoch()
        self._create = StoreRecord(self.user_id, self.fingerprint, self.dim, RECORD_FORMAT, state,
                                   updates, created, now, epoch, updates)
        self._records, self._ckpt = [], None
        meta = _state_meta(state) or (0, 0)
        self.head = Head(epoch, updates, updates, created, (None, None, 0) + tuple(meta) + (b"",))
        return self.head

    def append(self, records):
        self._need_sync()
        if self.head is None:
            raise StoreError("append before the user's first checkpoint (create it first)")
        if self.head.updates + len(records) > MAX_UPDATES:
            raise StoreError(f"user {self.user_id!r}: counter beyond {MAX_UPDATES}")
        self._records.extend(bytes(r) for r in records)
        self.head = self.head._replace(updates=self.head.updates + len(records))
        return self.head

    def checkpoint(self, state, *, updates):
        self._need_sync()
        if self.head is None or updates != self.head.updates:
            raise StoreError("a checkpoint must be of the state at the head of the journal")
        self._ckpt = (_check_new_state(state), updates)
        self._ck_before = self.head.checkpoint_updates
        self.head = self.head._replace(checkpoint_updates=updates)
        return self.head

    def _commit(self):
        store, io = self.store, self.store.io
        cpath, jpath, _ = store._paths(self.user_id)
        if self._create is None and not self._records and self._ckpt is None:
            return
        full = store.durable == "full"
        if self._create is not None:
            # the new checkpoint (new epoch) first: a crash after it leaves records of the old
            # epoch in the journal, which are never replayed on it
            store._write_checkpoint(self.user_id, self._create)
            end = 0
        else:
            end = 0 if self._info is None else self._info[1]
        try:
            try:
                jfd = io.open(jpath, os.O_RDWR, 0o600)
            except FileNotFoundError:
                # a new journal file: its folder entry must be durable before any record in
                # it is acknowledged
                jfd = io.open(jpath, os.O_RDWR | os.O_CREAT, 0o600)
                io.fsync_dir(str(store.folder))
        except OSError as exc:
            if self._create is not None and not self._records:
                return self._done(None, 0)   # committed: the checkpoint holds everything
            raise StoreError(f"cannot open {jpath} (nothing was committed): {exc}") from exc
        try:
            try:
                if io.fstat(jfd).st_size != end:
                    io.ftruncate(jfd, end)      # a torn tail, or an old incarnation's journal
                if self._records:
                    data = b"".join(self._records)
                    io.pwrite(jfd, data, end)
                    if full:
                        io.fdatasync(jfd)   # the commit point of "full"
                    end += len(data)
                    self._end_after_append = end
            except OSError as exc:
                try:   # cut the append back: not committed, so no reader may apply it
                    io.ftruncate(jfd, end)
                except OSError:
                    pass
                if self._create is not None and not self._records:
                    return self._done(jfd, 0)
                raise StoreError(f"cannot append to {jpath} (nothing was committed): "
                                 f"{exc}") from exc
            if self._ckpt is not None:
                state, updates = self._ckpt
                try:
                    if not full:   # "normal": the records become durable with the checkpoint
                        io.fdatasync(jfd)
                    now = time.time()
                    store._write_checkpoint(self.user_id, StoreRecord(
                        self.user_id, self.fingerprint, self.dim, RECORD_FORMAT, state, updates,
                        self.head.created_at, now, self.head.epoch,
                        updates))
                except (OSError, StoreError) as exc:
                    if not self._records and self._create is None:
                        raise   # nothing else in this transaction: the caller hears of it
                    # the records are committed; the checkpoint is retried at the next one
                    _log.warning("user %r: the checkpoint %s could not be written (%s); the "
                                 "journal is kept", self.user_id, cpath, exc)
                    self.head = self.head._replace(checkpoint_updates=self._ck_before)
                    return self._done(jfd, end)
                try:
                    io.ftruncate(jfd, 0)
                    end = 0
                except OSError as exc:   # its records are skipped by their counter
                    _log.warning("user %r: %s could not be truncated after a checkpoint: %s",
                                 self.user_id, jpath, exc)
            return self._done(jfd, end)
        finally:
            try:
                io.close(jfd)
            except OSError:
                pass

    def _done(self, jfd, end):
        """Point the head's cursor at the files as they are now (no re-read next time)."""
        io = self.store.io
        cpath = self.store._paths(self.user_id)[0]
        pos = ()
        if jfd is not None and len(self.head.pos) == 6:
            if end == 0:
                tail = b""
            elif self._records and end == self._end_after_append:
                tail = self._records[-1][-4:]
            else:
                tail = self.head.pos[5]
            try:
                jst = io.fstat(jfd)
                pos = (_file_id(io.stat(cpath)), (jst.st_dev, jst.st_ino), end) + \
                    tuple(self.head.pos[3:5]) + (tail,)
            except OSError:
                pos = ()
        self.head = self.head._replace(pos=pos)
