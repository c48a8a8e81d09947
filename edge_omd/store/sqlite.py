"""SQLiteStore: one SQLite file (standard library) in WAL mode, the default store.

Tables: `users` (small row per user: epoch, counters, head fingerprint, dim), `checkpoints` (the
state blob, one row per user, written only at checkpoints) and `journal` (one row per record,
rowid = slot * 2^40 + seq, so a user's records are one contiguous range of one b-tree). Every
write is one `BEGIN IMMEDIATE ... COMMIT` transaction (the write lock is taken before anything
is read), so writers of one user serialise and none is lost.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from edge_omd import _checks, envelope
from edge_omd.errors import ConfigError, StateFormatError, StoreError
from edge_omd.store import journal as _journal
from edge_omd.store import locks
from edge_omd.store.base import (_MAX_EPOCH, _SEQ_BITS, _USER_ID, MAX_UPDATES, RECORD_FORMAT,
                                 Head, Store, StoreRecord, Sync, _check_new_state, _durability,
                                 _new_epoch, _nothing, _not_a_file, _pack_digest, _parse_tail,
                                 _refuse_newer, _state_meta, check_stored_head, open_regular,
                                 validate_user_id)
from edge_omd.store.fair_queue import FairQueue

_log = logging.getLogger(__name__)

# What the sqlite3 module raises on a damaged or tampered file besides its own errors: a schema
# or message that is not UTF-8 gives UnicodeDecodeError, an integer beyond 64 bits OverflowError.
_DB_ERRORS = (sqlite3.Error, UnicodeError, OverflowError)
_TAMPERED = ("the store was changed outside edge-omd: restore the file from a backup, or erase "
             "the user with store.delete() and start again")
_OPEN_FIX = ("if the file is damaged (not an SQLite database, or changed outside edge-omd), "
             "restore the file from a backup, or move it away and start a new store")
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


def _col_digest(v, where: str):
    """users.pack_digest: NULL or 32 bytes."""
    if v is None:
        return None
    if not isinstance(v, bytes) or len(v) != 32:
        raise StateFormatError(f"{where}: column users.pack_digest holds {v!r:.40}, not NULL or "
                               f"32 bytes; {_TAMPERED}")
    return v


def _text(b: bytes) -> str:
    """sqlite3 text_factory: text that is not UTF-8 (tampering) decodes with replacement
    characters, so it can never equal a valid user id instead of raising UnicodeDecodeError."""
    return b.decode("utf-8", "replace")


# 3: users.pack_digest (the population pack an incarnation started from); 2 is migrated by
# adding the column (NULL: no pack), 1 (one blob per user) as before.
_SCHEMA_VERSION = 3
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
    checkpointed_at    REAL NOT NULL,
    pack_digest        BLOB)""",
    "CREATE TABLE checkpoints (slot INTEGER PRIMARY KEY, state BLOB NOT NULL)",
    "CREATE TABLE journal (id INTEGER PRIMARY KEY, rec BLOB NOT NULL)",
]
_USER_COLS = ("user_id, slot, epoch, head_fingerprint, dim, format_version, checkpoint_updates, "
              "created_at, checkpointed_at, pack_digest")
_HEAD_SQL = ("SELECT epoch, checkpoint_updates, created_at, slot, pack_digest, (SELECT MAX(id) FROM journal "
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
            `<path>-omdq.<k>` beside the database) before SQLite's own lock; False: SQLite's
            busy handler alone (unfair under contention; bench `persistence --only contention`).

    `timeout_s` bounds the whole wait of a write (the queue, then SQLite's lock): then
    StoreError naming the process that holds the database's write lock and for how long (its
    holder record, `<path>-omdlk`; edge_omd/store/locks.py). One writer at a time per
    database: a frozen writer holds up every user's writes, for timeout_s each.

    A database this process cannot write (a read-only mount, no write permission) opens
    read-only: reads are served, every write raises StoreError saying "read-only" (`read_only`
    says why). Where SQLite cannot read its write-ahead log without writing (no `-shm` file
    beside it), the StoreError at open says so.

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
        self._queue = FairQueue(str(self.path) + "-omdq", timeout_s=self.timeout_s) \
            if fair else None
        self._holder = str(self.path) + "-omdlk"
        self._local = threading.local()
        parent = self.path.parent
        if not parent.is_dir():
            raise StoreError(f"cannot open the state store {self.path}: the folder {parent} does "
                             "not exist (create it first; the store does not create folders)")
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            mode = stat.S_IFREG
        except OSError as exc:
            raise StoreError(f"cannot open the state store {self.path}: {exc}") from exc
        if not stat.S_ISREG(mode):
            raise StoreError(_not_a_file(str(self.path), "not a file SQLite can open"))
        self._ident = os.path.realpath(self.path)
        #: why the database opened read-only (None: it is writable)
        self.read_only: Optional[str] = self._why_read_only()
        if self.read_only is not None and not self.path.exists():
            raise StoreError(f"cannot create the state store {self.path}: {self.read_only}")
        try:
            con = self._con()
            self._migrate(con)
        except _DB_ERRORS as exc:  # not a database, locked for too long, damaged...
            raise StoreError(f"cannot open the state store {self.path}: {exc}; "
                             f"{_OPEN_FIX}") from exc

    def _why_read_only(self) -> Optional[str]:
        """Why this process cannot write the database (None if it can)."""
        folder = self.path.parent
        try:
            if os.statvfs(folder).f_flag & os.ST_RDONLY:
                return f"{folder} is on a file system mounted read-only"
        except (OSError, AttributeError):
            pass
        if self.path.exists() and not os.access(self.path, os.W_OK):
            return f"this process may not write {self.path}"
        aside = [Path(f"{self.path}{x}") for x in ("-wal", "-shm")]
        if not os.access(folder, os.W_OK) and not all(
                p.exists() and os.access(p, os.W_OK) for p in aside):
            return f"this process may not create files in {folder} (SQLite's -wal and -shm)"
        return None

    def _refuse_if_read_only(self, what: str) -> None:
        if self.read_only is not None:
            raise StoreError(f"{what}: the store is read-only ({self.read_only}): reads are "
                             "served, writes are refused; nothing was changed (open it where it "
                             "can be written to write)")

    def _migrate(self, con) -> None:
        found = con.execute("PRAGMA user_version").fetchone()[0]
        if found == _SCHEMA_VERSION:
            self._check_schema(con)
            return
        if found not in (0, 1, 2):
            raise StateFormatError(
                f"{self.path}: store schema version {found}, this SDK reads {_SCHEMA_VERSION} "
                "(and migrates 1 and 2); upgrade edge-omd or open another file")
        self._refuse_if_read_only(f"{self.path} (schema {found}, to be migrated to "
                                  f"{_SCHEMA_VERSION})")
        with self._transaction(con):
            found = con.execute("PRAGMA user_version").fetchone()[0]   # under the lock
            if found == _SCHEMA_VERSION:
                return
            if found == 2:   # every user keeps its rows; no pack recorded (NULL)
                con.execute("ALTER TABLE users ADD COLUMN pack_digest BLOB")
                con.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                _log.info("%s: migrated store schema 2 to 3 (users.pack_digest)", self.path)
                return
            for sql in _SCHEMA:
                con.execute(sql)
            if found == 1:   # RECORD_FORMAT 1: one row per user with the whole state
                rows = con.execute("SELECT rowid, user_id, head_fingerprint, dim, updates, "
                                   "created_at, updated_at FROM user_state").fetchall()
                for slot, uid, fp, dim, updates, created, updated in rows:
                    con.execute(f"INSERT INTO users ({_USER_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                                (uid, slot, _new_epoch(), fp, dim, RECORD_FORMAT, updates,
                                 created, updated, None))
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
            con = self._connect_read_only() if self.read_only is not None else self._connect()
            con.text_factory = _text
            con.execute(f"PRAGMA synchronous={'FULL' if self.durable == 'full' else 'NORMAL'}")
            con.execute("PRAGMA secure_delete=FAST")    # ON while a user is deleted
            con.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            con.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
            loc.con, loc.pid, loc.holder_fd = con, os.getpid(), None
        return loc.con

    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(str(self.path), timeout=self.timeout_s,
                                  isolation_level=None, check_same_thread=True)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the state store {self.path}: {exc}") from exc
        try:
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except _DB_ERRORS as exc:
            con.close()
            raise StoreError(f"cannot open the state store {self.path}: {exc}; "
                             f"{_OPEN_FIX}") from exc
        if str(mode).lower() != "wal":
            con.close()
            raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r}); "
                             "put the store on a local file system")
        return con

    def _connect_read_only(self) -> sqlite3.Connection:
        """mode=ro needs the -shm file (SQLite's shared index of its log), which a read-only
        folder cannot get: without it, and with no log to read (no -wal, or an empty one:
        every commit is in the database file), the file opens as immutable."""
        uri = "file:" + urllib.parse.quote(str(self.path.absolute()))
        wal = Path(f"{self.path}-wal")
        try:
            con = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=self.timeout_s,
                                  isolation_level=None, check_same_thread=True)
            con.execute("PRAGMA schema_version").fetchone()
            return con
        except _DB_ERRORS as exc:
            if wal.exists() and wal.stat().st_size > 0:
                raise StoreError(
                    f"cannot open the state store {self.path} read-only ({self.read_only}): "
                    f"its write-ahead log {wal} holds commits SQLite reads only through a -shm "
                    f"file, which cannot be made here ({exc}); open it once where it can be "
                    "written (that folds the log in), or copy the database with its -wal file "
                    "to a writable folder") from exc
        try:
            con = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, isolation_level=None,
                                  check_same_thread=True)
            con.execute("PRAGMA schema_version").fetchone()
            return con
        except _DB_ERRORS as exc:
            raise StoreError(f"cannot open the state store {self.path} read-only "
                             f"({self.read_only}): {exc}; {_OPEN_FIX}") from exc

    def _check_schema(self, con) -> None:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = {"users", "checkpoints", "journal"} - tables
        if missing:
            raise StateFormatError(f"{self.path}: store schema {_SCHEMA_VERSION} without the table(s) "
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
        epoch, ck, created, slot, pack, top = row
        where = f"{self.path}: user {user_id!r}"
        epoch = _col_int(epoch, 1, _MAX_EPOCH, "users.epoch", where)
        ck = _col_int(ck, 0, MAX_UPDATES, "users.checkpoint_updates", where)
        created = _col_real(created, "users.created_at", where)
        slot = _col_int(slot, 1, _MAX_SLOT, "users.slot", where)
        pack = _col_digest(pack, where)
        n = ck if top is None else max(ck, int(top) - (slot << _SEQ_BITS))
        return Head(epoch, n, ck, created, (), pack), slot

    def _rows(self, con, slot, after, upto=None):
        lo = (slot << _SEQ_BITS) + after
        hi = ((slot + 1) << _SEQ_BITS) - 1 if upto is None else (slot << _SEQ_BITS) + upto
        rows = con.execute("SELECT rec FROM journal WHERE id > ? AND id <= ? ORDER BY id",
                           (lo, hi)).fetchall()
        # a row that is not a blob (tampering) becomes one byte the parser stops at
        return b"".join(r[0] if isinstance(r[0], bytes) else b"\0" for r in rows), len(rows)

    def _full(self, con, user_id) -> Sync:
        row = con.execute("SELECT u.user_id, u.slot, u.epoch, u.head_fingerprint, u.dim, "
                          "u.format_version, u.checkpoint_updates, u.created_at, "
                          "u.checkpointed_at, u.pack_digest, c.state FROM users u JOIN checkpoints c "
                          "ON c.slot = u.slot WHERE u.user_id = ?", (user_id,)).fetchone()
        if row is None:
            return Sync(None)
        uid, slot, epoch, fp, dim, fmt, ck, created, ckpt_at, pack, state = row
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
        pack = _col_digest(pack, where)
        buf, n = self._rows(con, slot, ck)
        parsed = _refuse_newer(_parse_tail(buf, state=state, epoch=epoch, after=ck,
                                           skip_older=False), uid, self.path)
        if parsed.stop is not None:
            _log.warning("%s: user %r: the journal stops at record %d of %d: %s", self.path,
                         uid, len(parsed.records) + 1, n, parsed.stop)
        rec = StoreRecord(uid, None if fp is None else bytes(fp), int(dim), int(fmt), state,
                          ck + len(parsed.records), float(created), float(ckpt_at), epoch, ck,
                          tuple(parsed.records), pack)
        meta = _state_meta(state) or (0, 0)
        return Sync(Head(epoch, rec.updates, ck, float(created), tuple(meta), pack), rec, ())

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
    def _write(self, con, what: str):
        """The database's write lock (the fair queue, then BEGIN IMMEDIATE), within timeout_s,
        never re-entered by the thread that holds it; the holder record written once held."""
        deadline = locks.Deadline.start(self.timeout_s, what)
        with locks.HELD(self._ident, what), \
                (self._queue(deadline) if self._queue is not None else _nothing()):
            left_ms = int(deadline.left() * 1000)
            short = left_ms < int(self.timeout_s * 1000) - 5   # the queue took some of it
            if short:
                con.execute(f"PRAGMA busy_timeout={left_ms}")
            held = False
            try:
                with self._transaction(con):
                    held = True
                    self._note_holder()
                    yield
            except sqlite3.OperationalError as exc:
                if not held and getattr(exc, "sqlite_errorcode", None) in (
                        sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise deadline.error(locks.describe(
                        locks.read(envelope.DEFAULT_IO, self._holder),
                        f"the write lock of {self.path}")) from exc
                raise
            finally:
                if short:
                    con.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")

    def _note_holder(self) -> None:
        loc, io = self._local, envelope.DEFAULT_IO
        if loc.holder_fd is None:
            try:
                loc.holder_fd = open_regular(io, self._holder, os.O_RDWR | os.O_CREAT, 0o600)
            except (OSError, StoreError):
                return     # information only: the write goes on without it
        locks.note(io, loc.holder_fd)

    def _write_failed(self, verb: str, what: str, exc) -> StoreError:
        why = self._why_read_only()
        if why is not None:
            self.read_only = why
            return StoreError(f"cannot {verb} {what}: the store became read-only ({why}); "
                              f"nothing was changed ({exc})")
        return StoreError(f"cannot {verb} {what} (nothing was changed): {exc}")

    @contextmanager
    def transaction(self, user_id, *, head_fingerprint, dim, checkpoint=False):
        """A write transaction (see Store). checkpoint=True: it may write a checkpoint, so with
        durable="normal" it is committed with synchronous=FULL all the same."""
        validate_user_id(user_id)
        what = f"user {user_id!r} in {self.path}"
        self._refuse_if_read_only(what)
        con = self._con()
        raised = checkpoint and self.durable != "full"
        try:
            if raised:
                con.execute("PRAGMA synchronous=FULL")
            tx = _SQLiteTx(self, con, user_id, head_fingerprint, int(dim))
            with self._write(con, what):
                yield tx
        except sqlite3.Error as exc:   # (the block's own errors pass through untouched)
            raise self._write_failed("write", what, exc) from exc
        finally:
            if raised:
                try:
                    con.execute("PRAGMA synchronous=NORMAL")
                except _DB_ERRORS:   # pragma: no cover - reopen resets it
                    self._local.con = None

    def delete(self, user_id):
        validate_user_id(user_id)
        what = f"user {user_id!r} in {self.path}"
        self._refuse_if_read_only(what)
        con = self._con()
        try:
            con.execute("PRAGMA secure_delete=ON")
            try:
                with self._write(con, what):
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
            raise self._write_failed("delete", what, exc) from exc
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
            if self._local.holder_fd is not None:
                os.close(self._local.holder_fd)
        self._local.con = self._local.holder_fd = None

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

    def create(self, state: bytes, *, updates: int = 0, pack_digest=None) -> Head:
        """A new checkpoint with a new epoch and an empty journal (new user, import, update);
        pack_digest: the population pack it starts from (None: none)."""
        self._need_sync()
        state = _check_new_state(state)
        pack = _pack_digest(pack_digest)
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
        con.execute(f"INSERT OR REPLACE INTO users ({_USER_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (self.user_id, self.slot, epoch, self.fingerprint, self.dim, RECORD_FORMAT,
                     updates, created, now, pack))
        con.execute("INSERT OR REPLACE INTO checkpoints (slot, state) VALUES (?, ?)",
                    (self.slot, state))
        self.head = Head(epoch, updates, updates, created, tuple(_state_meta(state) or (0, 0)),
                         pack)
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

