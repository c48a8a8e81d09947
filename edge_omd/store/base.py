"""The contract of a state store (`Store`), what it hands out (`StoreRecord`, `Head`: a reader's
cursor, `Sync`) and what both stores share: user-id validation, the head check, the epoch, and
the reading of a journal tail against its checkpoint (edge_omd/store/__init__.py tells the
design)."""
from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

from edge_omd.errors import ConfigError, StateFormatError, StoreError, UserIdError
from edge_omd.head.binding import check_binding
from edge_omd.store import journal as _journal

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
    pack_digest: Optional[bytes] = None  # SHA-256 of the population pack it started from (None: none)

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
    pack_digest: Optional[bytes] = None   # the population pack of this incarnation (`create`)

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
    """The contract of a state store (see edge_omd/store/__init__.py).

    Readers: `sync(user_id, cursor)` (what to replay), `get`, `version`, `users`. Writers:
    `with store.transaction(user_id, head_fingerprint=..., dim=...) as tx:` then `tx.sync`,
    `tx.create` (a new incarnation; `pack_digest=` records the population pack it starts
    from, kept by every later append and checkpoint), `tx.append`, `tx.checkpoint`; committed
    when the block exits normally, nothing written if it raises.
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


def _pack_digest(pack_digest) -> Optional[bytes]:
    """A population pack's digest for `create`: None or 32 bytes (StoreError otherwise)."""
    if pack_digest is None:
        return None
    if not isinstance(pack_digest, (bytes, bytearray)) or len(pack_digest) != 32:
        raise StoreError(f"a pack digest is 32 bytes (SHA-256), got {pack_digest!r:.40}; "
                         "nothing was written")
    return bytes(pack_digest)

# Every file of a store is opened without following a symbolic link (its target may be outside
# the folder: a journal's cut would truncate it) and without blocking (a FIFO or device in place
# of a file would block the open forever), then checked to be a regular file.
_SAFE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def open_regular(io, path: str, flags: int, mode: int = 0o600) -> int:
    """`io.open(path, flags)` of a regular file, never through a symbolic link and never
    blocking; StoreError naming what is there instead (nothing is read or written through it).
    OSError (a missing file included) is left to the caller."""
    try:
        fd = io.open(path, flags | _SAFE_FLAGS, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(_not_a_file(path, "a symbolic link")) from exc
        if exc.errno == errno.ENXIO:   # a FIFO without a reader (opened for writing)
            raise StoreError(_not_a_file(path, "a FIFO")) from exc
        raise
    try:
        mode_of = io.fstat(fd).st_mode
    except BaseException:
        io.close(fd)
        raise
    if not stat.S_ISREG(mode_of):
        io.close(fd)
        kind = ("a folder" if stat.S_ISDIR(mode_of) else "a FIFO" if stat.S_ISFIFO(mode_of)
                else "a socket" if stat.S_ISSOCK(mode_of) else "a device")
        raise StoreError(_not_a_file(path, kind))
    return fd


def _not_a_file(path: str, kind: str) -> str:
    return (f"{path} is {kind}, not a regular file: a store never follows links or opens "
            "anything but its own files; move it out of the way (put the file itself there, "
            "e.g. from a backup) and try again (nothing was changed)")


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

