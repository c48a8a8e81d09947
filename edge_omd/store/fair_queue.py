"""A FIFO lock in front of a store's own write lock, so that writers enter in arrival order."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator, Optional

from edge_omd import envelope
from edge_omd.envelope import FileIO

_log = logging.getLogger(__name__)

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

