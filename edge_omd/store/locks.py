"""How a store waits for a lock: never forever, never for itself.

Deadline. The waits of one write (its place in the fair queue, the user's flock, SQLite's write
lock) share one `Deadline`: the store's `timeout_s` from the moment the write starts. A lock
still taken then raises StoreError naming the process that holds it and for how long. A
blocking flock cannot be given up, and a process the OS froze (SIGSTOP, Android's freezer of
background apps) never releases it, so `acquire` polls flock(LOCK_NB), sleeping a tenth of the
time waited so far (0.1 ms to 2 ms): a wait costs at most about a tenth (and 2 ms) more than
the release, and a waiter polls often enough to find the gap a releasing writer leaves.

Holder record. Whoever holds a lock writes `RECORD` (u64 pid, f64 unix time since when it holds
it) at the start of the lock's file; a waiter that gives up reads it to name the holder. It is
information only (never trusted for exclusion): written without fsync, skipped if it cannot be.

Re-entrance. A write started inside another write of the same lock by the same thread waits for
itself (the queue, or a flock taken on another descriptor) or, on the same descriptor, takes
the lock "again" and releases the outer one with it. `Held` marks the locks this process holds
and by which thread; entering one again from that thread raises StoreError at once.
"""
from __future__ import annotations

import os
import struct
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple, Optional

from edge_omd.envelope import _pid_alive as _alive
from edge_omd.errors import StoreError
from edge_omd.store.base import open_regular

RECORD = struct.Struct("<Qd")      # pid, unix time since when the lock is held
_POLL_MIN_S, _POLL_MAX_S = 1e-4, 2e-3


class Deadline(NamedTuple):
    """When a write stops waiting (time.monotonic()), and what to say then."""
    at: float
    started: float
    timeout_s: float
    what: str          # e.g. "user 'alice' in /data/users"

    @classmethod
    def start(cls, timeout_s: float, what: str) -> "Deadline":
        now = time.monotonic()
        return cls(now + timeout_s, now, timeout_s, what)

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def error(self, holder: str) -> StoreError:
        waited = time.monotonic() - self.started
        return StoreError(f"{self.what}: no write after waiting {waited:.1f} s (timeout_s="
                          f"{self.timeout_s:g}): {holder}; nothing was changed: retry later "
                          "(the lock is free once that process goes on or ends), or raise "
                          "timeout_s")


def acquire(io, fd: int, deadline: Deadline, holder: Callable[[], str],
            give_up: Optional[Callable[[], bool]] = None) -> bool:
    """flock(fd, LOCK_EX) before `deadline` (True), else `deadline.error(holder())`; False, not
    locked, as soon as `give_up()` (asked before each try) says the lock is no longer needed."""
    import fcntl   # (POSIX; imported here so that the package imports everywhere)
    start = time.monotonic()
    while True:
        if give_up is not None and give_up():
            return False
        try:
            io.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        now = time.monotonic()
        if now >= deadline.at:
            raise deadline.error(holder())
        time.sleep(min(nap(now - start), deadline.at - now))


def nap(waited: float) -> float:
    """Seconds to sleep before the next try of a lock waited for `waited` seconds."""
    return min(_POLL_MAX_S, max(_POLL_MIN_S, waited / 10))


def note(io, fd: int, since: Optional[float] = None, at: int = 0) -> None:
    """Write this process's holder record into the lock's file at offset `at` (best effort)."""
    try:
        io.pwrite(fd, RECORD.pack(os.getpid(), time.time() if since is None else since), at)
    except OSError:
        pass


def clear(io, fd: int) -> None:
    """Erase the holder record (a lock given up, not held)."""
    try:
        io.pwrite(fd, bytes(RECORD.size), 0)
    except OSError:
        pass


def read(io, path: str) -> Optional[tuple]:
    """(pid, since) of the record in `path` if its process is alive, else None."""
    try:
        fd = open_regular(io, path, os.O_RDONLY)
    except (OSError, StoreError):
        return None
    try:
        raw = io.pread(fd, RECORD.size, 0)
    except OSError:
        return None
    finally:
        io.close(fd)
    return parse(raw)


def parse(raw: bytes) -> Optional[tuple]:
    """(pid, since) of a holder record read from a lock's file if its process is alive."""
    if len(raw) < RECORD.size:
        return None
    pid, since = RECORD.unpack_from(raw)
    return (pid, since) if 0 < pid < (1 << 31) and _alive(pid) else None


def describe(rec: Optional[tuple], lock: str) -> str:
    """"<lock> is held by process P for X s" from a record of `read` (None: unknown holder)."""
    if rec is None:
        return (f"{lock} is held by a process that left no record (another program, or a "
                "version of edge-omd before this one)")
    pid, since = rec
    who = f"this process ({pid}, another thread or store object)" if pid == os.getpid() \
        else f"process {pid}"
    return f"{lock} is held by {who} for {max(0.0, time.time() - since):.1f} s"


class Held:
    """The locks each thread of this process holds, to refuse re-entrance."""

    def __init__(self):
        self._mutex = threading.Lock()
        self._held: set = set()   # (key, pid, thread id)

    @contextmanager
    def __call__(self, key, what: str) -> Iterator[None]:
        mine = (key, os.getpid(), threading.get_ident())
        with self._mutex:
            if mine in self._held:
                raise StoreError(
                    f"{what}: a write started inside a write of the same lock in this thread "
                    "(e.g. from a Store.update function, or a callback that writes the store): "
                    "it would wait for itself or be overwritten; make the second write after "
                    "the first returns (nothing was changed)")
            self._held.add(mine)
        try:
            yield
        finally:
            with self._mutex:
                self._held.discard(mine)


#: Every lock of every store object of this process.
HELD = Held()
