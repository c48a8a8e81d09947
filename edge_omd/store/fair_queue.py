"""A FIFO lock in front of a store's own write lock, so that writers enter in arrival order."""
from __future__ import annotations

import logging
import os
import struct
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from edge_omd import envelope
from edge_omd.envelope import FileIO
from edge_omd.errors import StoreError
from edge_omd.store import locks
from edge_omd.store.base import open_regular

_log = logging.getLogger(__name__)

_Q_MOD = 1 << 32
MAX_SLOTS = 64   # entry files of one queue, at most: writers queued at once with their order
# <base>: u64 next ticket, u64 slot of the last ticket + 1 (0: none), then the holder record
# (locks.RECORD) of the writer taking a ticket.
_TICKET = struct.Struct("<QQ")
# <base>.<slot>: the holder record (locks.RECORD), then u64 ticket, u64 slot of the ticket
# before it + 1 (0: none), u8 done.
_ENTRY = struct.Struct("<QdQQB")
_AT_TICKET, _AT_DONE = locks.RECORD.size, _ENTRY.size - 1


class FairQueue:
    """A FIFO lock in front of a store's own write lock (CLH queue over files + flock).

    SQLite's busy handler and a contended `flock` are not fair: a process that has just released
    the lock often takes it again before the waiters wake (measured: 4 writers x 50 feedbacks,
    one writer done in 0.5 s, another in 2.3 s). Here each writer draws a ticket n (a counter
    in `<base>`, read and bumped under a short flock), takes a free entry file `<base>.<k>`
    (k < MAX_SLOTS, the first one no writer holds, never its predecessor's), holds an flock on
    it while it waits and works, writes its ticket and its predecessor's slot into it, and
    waits for the entry of ticket n - 1 (its slot is recorded in `<base>`): writers enter in
    ticket order.

    The entry files are reused, never created or erased per write: a file created and unlinked
    at every write costs every later fsync of the file system its metadata (measured in
    `python -m edge_omd_bench.click`). A writer that is done marks its entry done, then
    releases it. A successor that gets the lock of an entry still holding ticket n - 1 but not
    marked done knows its writer died (the kernel released its flock) or gave up at its
    deadline, and waits for the one before it (its slot is in the entry), and so on. An entry
    that holds another ticket was released and taken again: the writer it was waited for is
    done. A waiter polls (locks.acquire's naps) and reads the ticket between tries, so it never
    waits on an entry a later writer has taken. Each entry holds its writer's holder record
    (edge_omd/store/locks.py): a writer whose deadline passes names the process at the head of
    the queue. Nothing here needs recovery after a crash or power cut.

    Only fairness depends on it: the store's own lock (BEGIN IMMEDIATE, the user's flock) is
    still taken inside, so a queue that fails in any way (a file it cannot create, a counter
    someone rewrote, a link or FIFO in place of a file, every slot held) degrades to the unfair
    lock, never to two writers at once. Only the deadline is never given up."""

    def __init__(self, base: str, io: Optional[FileIO] = None, timeout_s: float = 30.0):
        self.base = base
        self.io = io if io is not None else envelope.DEFAULT_IO
        self.timeout_s = float(timeout_s)

    def _entry(self, slot: int) -> str:
        return f"{self.base}.{slot}"

    @contextmanager
    def __call__(self, deadline: Optional[locks.Deadline] = None) -> Iterator[None]:
        io = self.io
        if deadline is None:
            deadline = locks.Deadline.start(self.timeout_s, f"the queue {self.base}")
        efd, n, pred = None, 0, None
        try:
            tfd = open_regular(io, self.base, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                locks.acquire(io, tfd, deadline, lambda: self._ticket_holder(tfd))
                locks.note(io, tfd, at=_TICKET.size)
                raw = io.pread(tfd, _TICKET.size, 0)
                n, last = _TICKET.unpack(raw) if len(raw) == _TICKET.size else (
                    int.from_bytes(raw[:8].ljust(8, b"\0"), "little"), 0)
                n %= _Q_MOD
                pred = last - 1 if 0 < last <= MAX_SLOTS else None
                efd, slot = self._take(n, pred)
                if efd is not None:
                    io.pwrite(tfd, _TICKET.pack((n + 1) % _Q_MOD, slot + 1), 0)
            finally:
                io.close(tfd)   # releases the ticket lock
        except (OSError, StoreError) as exc:
            if isinstance(exc, StoreError) and deadline.left() == 0.0:
                raise             # the deadline passed on the ticket lock
            _log.warning("fair queue %s unavailable (%s): the store's own lock only",
                         self.base, exc)
            if efd is not None:
                io.close(efd)
            efd = None
        done = False
        try:
            if efd is not None:
                if pred is not None:
                    self._wait((n - 1) % _Q_MOD, pred, deadline)
                locks.note(io, efd)   # the head of the queue since now
            yield
            done = True
        finally:
            if efd is not None:
                try:
                    if done or deadline.left() > 0.0:
                        io.pwrite(efd, b"\1", _AT_DONE)   # first: a successor sees it done
                    else:   # gave up waiting: not done, so a successor waits for the one before
                        locks.clear(io, efd)
                except OSError:
                    pass     # a successor takes it for a writer that gave up: still in order
                io.close(efd)         # wakes a successor polling it

    def _take(self, n: int, pred: Optional[int]):
        """(fd, slot) of a free entry file, flocked and holding ticket n; (None, None) if every
        slot is held (no queue this time). Called under the ticket lock."""
        import fcntl
        io = self.io
        for slot in range(MAX_SLOTS):
            if slot == pred:   # its writer may be gone, but the successor walks through it
                continue
            try:
                fd = open_regular(io, self._entry(slot), os.O_RDWR | os.O_CREAT, 0o600)
            except StoreError:   # a link, FIFO or folder there: passed by, never used
                continue
            try:
                io.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:   # held by a queued writer (or one of another numbering)
                io.close(fd)
                continue
            try:
                io.pwrite(fd, _ENTRY.pack(os.getpid(), time.time(), n,
                                          0 if pred is None else pred + 1, 0), 0)
            except BaseException:
                io.close(fd)
                raise
            return fd, slot
        _log.warning("fair queue %s: all %d entries are held: the store's own lock only",
                     self.base, MAX_SLOTS)
        return None, None

    def _read(self, fd: int):
        """(ticket, predecessor slot or None, done, raw bytes) of an entry; None if it holds
        no entry (a file of an older version)."""
        raw = self.io.pread(fd, _ENTRY.size, 0)
        if len(raw) != _ENTRY.size:
            return None
        _pid, _since, ticket, pred, done = _ENTRY.unpack(raw)
        return ticket, (pred - 1 if 0 < pred <= MAX_SLOTS else None), done == 1, raw

    def _wait(self, m: int, slot: int, deadline: locks.Deadline) -> None:
        """Until the writer of ticket m (in `slot`) and, if it died or gave up, the ones
        before it are done (or gone)."""
        io = self.io
        for _ in range(MAX_SLOTS):
            try:
                fd = open_regular(io, self._entry(slot), os.O_RDWR)
            except (OSError, StoreError):
                return            # never there, or not an entry we can use

            def taken_again(fd=fd, m=m):
                got = self._read(fd)
                return got is None or got[0] != m

            try:
                if not locks.acquire(io, fd, deadline, lambda: self._head(m, slot),
                                     give_up=taken_again):
                    return        # taken again after its writer released it: it is done
                got = self._read(fd)
                if got is None or got[0] != m or got[2]:
                    return        # done (or taken again before we looked)
                if got[1] is None:
                    return        # died or gave up with nobody before it
                m, slot = (m - 1) % _Q_MOD, got[1]   # died or gave up: wait for the one before
            finally:
                io.close(fd)

    def _ticket_holder(self, tfd: int) -> str:
        """Who holds the ticket lock (its holder record, frozen between two system calls)."""
        raw = self.io.pread(tfd, locks.RECORD.size, _TICKET.size)
        return locks.describe(locks.parse(raw), f"the ticket lock of {self.base}")

    def _head(self, m: int, slot: int) -> str:
        """Who holds the queue: the earliest writer still in it, from ticket m back."""
        head = None
        for _ in range(MAX_SLOTS):
            try:
                fd = open_regular(self.io, self._entry(slot), os.O_RDONLY)
            except (OSError, StoreError):
                break
            try:
                got = self._read(fd)
            finally:
                self.io.close(fd)
            if got is None or got[0] != m:
                break
            head = locks.parse(got[3]) or head
            if got[1] is None:
                break
            m, slot = (m - 1) % _Q_MOD, got[1]
        return locks.describe(head, f"the write queue {self.base}")
