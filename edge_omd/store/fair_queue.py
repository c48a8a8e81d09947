"""A FIFO lock in front of a store's own write lock, so that writers enter in arrival order."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator, Optional

from edge_omd import envelope
from edge_omd.envelope import FileIO
from edge_omd.errors import StoreError
from edge_omd.store import locks
from edge_omd.store.base import open_regular

_log = logging.getLogger(__name__)

_Q_MOD = 1 << 32
_MAX_WALK = 1 << 16    # entries of dead or departed writers passed on one wait, at most


class FairQueue:
    """A FIFO lock in front of a store's own write lock (CLH queue over files + flock).

    SQLite's busy handler and a contended `flock` are not fair: a process that has just released
    the lock often takes it again before the waiters wake (measured: 4 writers x 50 feedbacks,
    one writer done in 0.5 s, another in 2.3 s). Here each writer draws a ticket n (a counter
    in `<base>`, read and bumped under a short flock), holds an flock on its own entry file
    `<base>.<n>` while it waits and works, and waits for the entry of ticket n - 1: writers
    enter in ticket order.

    A writer that is done unlinks its entry, then releases it. A successor that gets the lock of
    an entry still linked knows its writer died (the kernel released its flock) or gave up at
    its deadline: it unlinks that entry and waits for the one before it, and so on until an
    entry that is gone. So the entries of killed waiters are erased by the next writer, and a
    writer that gives up keeps its successors in order. Each entry holds its writer's holder
    record (edge_omd/store/locks.py): a writer whose deadline passes names the process at the
    head of the queue. Nothing here needs recovery after a crash or power cut.

    Only fairness depends on it: the store's own lock (BEGIN IMMEDIATE, the user's flock) is
    still taken inside, so a queue that fails in any way (a file it cannot create, a counter
    someone rewrote, a link or FIFO in place of a file) degrades to the unfair lock, never to
    two writers at once. Only the deadline is never given up."""

    def __init__(self, base: str, io: Optional[FileIO] = None, timeout_s: float = 30.0):
        self.base = base
        self.io = io if io is not None else envelope.DEFAULT_IO
        self.timeout_s = float(timeout_s)

    def _entry(self, n: int) -> str:
        return f"{self.base}.{n % _Q_MOD}"

    @contextmanager
    def __call__(self, deadline: Optional[locks.Deadline] = None) -> Iterator[None]:
        import fcntl
        io = self.io
        if deadline is None:
            deadline = locks.Deadline.start(self.timeout_s, f"the queue {self.base}")
        mine, efd, n = None, None, 0
        try:
            tfd = open_regular(io, self.base, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                locks.acquire(io, tfd, deadline, lambda: self._ticket_holder(tfd))
                raw = io.pread(tfd, 8, 0)
                n = int.from_bytes(raw, "little") % _Q_MOD if len(raw) == 8 else 0
                mine = self._entry(n)
                efd = open_regular(io, mine, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    io.flock(efd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:   # held by a writer of another numbering: no queue this time
                    io.close(efd)
                    efd, mine = None, None
                else:
                    locks.note(io, efd)
                    io.pwrite(tfd, ((n + 1) % _Q_MOD).to_bytes(8, "little"), 0)
            finally:
                io.close(tfd)   # releases the ticket lock
        except (OSError, StoreError) as exc:
            if isinstance(exc, StoreError) and deadline.left() == 0.0:
                raise             # the deadline passed on the ticket lock
            _log.warning("fair queue %s unavailable (%s): the store's own lock only",
                         self.base, exc)
            if efd is not None:
                io.close(efd)
            efd, mine = None, None
        done = False
        try:
            if efd is not None:
                self._wait(n, deadline)
                locks.note(io, efd)   # the head of the queue since now
            yield
            done = True
        finally:
            if efd is not None:
                if done or deadline.left() > 0.0:
                    try:
                        io.unlink(mine)   # first: a successor that gets the lock sees it gone
                    except OSError:
                        pass
                else:   # gave up waiting: left linked, so a successor waits for the one before
                    locks.clear(io, efd)
                io.close(efd)         # wakes a successor blocked on it

    def _wait(self, n: int, deadline: locks.Deadline) -> None:
        """Until every writer with an earlier ticket is done (or dead, or gone)."""
        io = self.io
        for back in range(1, _MAX_WALK):
            pred = self._entry(n - back)
            try:
                pfd = open_regular(io, pred, os.O_RDWR)
            except (OSError, StoreError):
                return            # done (unlinked), never there, or not an entry we can use
            try:
                locks.acquire(io, pfd, deadline, lambda: self._head(n - back))
                if io.fstat(pfd).st_nlink == 0:
                    return        # its writer is done: it unlinks before it releases
                try:              # its writer died or gave up: erase it, wait for the one before
                    io.unlink(pred)
                except OSError:
                    pass
            finally:
                io.close(pfd)

    def _ticket_holder(self, tfd: int) -> str:
        """Who holds the ticket lock: the writer taking ticket n has made entry n, if it got
        that far (frozen between two system calls)."""
        raw = self.io.pread(tfd, 8, 0)
        n = int.from_bytes(raw, "little") if len(raw) == 8 else 0
        return locks.describe(locks.read(self.io, self._entry(n)),
                              f"the ticket lock of {self.base}")

    def _head(self, k: int) -> str:
        """Who holds the queue: the earliest writer still in it, from ticket k back."""
        head = None
        for back in range(_MAX_WALK):
            path = self._entry(k - back)
            try:
                self.io.stat(path)
            except OSError:
                break
            rec = locks.read(self.io, path)
            head = rec if rec is not None else head
        return locks.describe(head, f"the write queue {self.base}")
