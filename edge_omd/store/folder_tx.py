"""FolderStore's write transaction: what it reads under the user's lock, and the order of its
writes at commit (a new checkpoint, the journal append, a checkpoint, then the journal's cut),
each step durable before the one that depends on it (edge_omd/store/folder.py)."""
from __future__ import annotations

import logging
import os
import time
from typing import Optional

from edge_omd.errors import StoreError
from edge_omd.store.base import (MAX_UPDATES, RECORD_FORMAT, Head, StoreRecord,
                                 _check_new_state, _new_epoch, _pack_digest, _state_meta,
                                 open_regular)

_log = logging.getLogger(__name__)


def _file_id(st) -> tuple:
    """What tells one version of a file from another: device, inode, size, mtime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _FolderTx:
    """One write transaction of FolderStore: reads under the lock, writes at commit."""

    def __init__(self, store, user_id, fingerprint, dim):   # store: the FolderStore
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

    def create(self, state, *, updates=0, pack_digest=None):
        self._need_sync()
        state = _check_new_state(state)
        if not 0 <= updates <= MAX_UPDATES:
            raise StoreError(f"counter {updates} beyond {MAX_UPDATES}")
        now = time.time()
        created = now if self.head is None else self.head.created_at
        epoch = _new_epoch()
        pack = _pack_digest(pack_digest)
        self._create = StoreRecord(self.user_id, self.fingerprint, self.dim, RECORD_FORMAT, state,
                                   updates, created, now, epoch, updates, pack_digest=pack)
        self._records, self._ckpt = [], None
        meta = _state_meta(state) or (0, 0)
        self.head = Head(epoch, updates, updates, created, (None, None, 0) + tuple(meta) + (b"",),
                         pack)
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
                jfd = open_regular(io, jpath, os.O_RDWR)
            except FileNotFoundError:
                # a new journal file: its folder entry must be durable before any record in
                # it is acknowledged
                jfd = open_regular(io, jpath, os.O_RDWR | os.O_CREAT, 0o600)
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
                        updates, pack_digest=self.head.pack_digest))
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
