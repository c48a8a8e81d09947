"""One user's model as one Personalizer keeps it in a store: what the verbs learn is committed
here, and what other processes committed is brought in here (docs/JOURNAL_FORMAT.md).

The session holds the live model (`model`: the committed state, plus the pending observations
inside a batch) and where its committed part stands in the user's journal (`cursor`, a
store.Head). `refresh()` brings the model up to date by replaying the records committed since
the cursor (or by loading the last checkpoint and replaying its journal, when the cursor cannot
be continued), never by reloading when nothing changed. `observe(learn)` commits one
observation before it returns: inside one store transaction the model is brought up to date,
`learn(model)` runs on it, and one journal record per observation is appended (the first
commit of a user writes its first checkpoint, the replay base). Inside `batch()` observations
are learned at once and kept pending until `flush()`, which commits them together, learned
again after what others committed meanwhile. A checkpoint (the full state) is written every
`checkpoint_every` records and at `checkpoint()`; the user export (`export_state` /
`import_state`, docs/FORMATS.md) is a checkpoint that travels.

Any failure inside a transaction drops the cached model (it may have learned what was not
committed); the next call reloads it from the store.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Callable, Optional

from edge_omd import envelope as _envelope
from edge_omd.errors import InvalidInputError, NumericalError, StateFormatError
from edge_omd.reward_model import RewardModel
from edge_omd.store import journal as _journal
from edge_omd.store.base import (MAX_UPDATES, RECORD_FORMAT, Head, Store, StoreRecord, Sync,
                                 check_stored_head)

__all__ = ["Session", "default_checkpoint_every"]

_log = logging.getLogger(__name__)

_EXPORT_MAGIC = b"EOMDUSR1"
# The counter an import may start from: half the store's range, so that an imported user has
# 2^39 updates to go (an export's count above it cannot come from a store: refused at import).
MAX_IMPORT_UPDATES = (MAX_UPDATES + 1) // 2

# Default checkpoint interval N: recovery = load the checkpoint + replay N records must stay
# <= 1 s. Measured with bench/persistence.py on the 2-core reference machine (d = 384 ... 4096,
# exact and sketch; the table is in docs/JOURNAL_FORMAT.md), idle and under a load average of 8:
# loading a checkpoint costs up to ~5 ns per state byte (64 MiB at d=4096 exact: 0.15-0.35 s),
# replaying one record ~0.15 ms of fixed overhead plus up to ~2 ns per unit of the update's work
# (d^2 for exact / cg, 2 ell d + 4 ell^2 for the sketch, d for the diagonal; d=4096 exact:
# 10-44 ms a record, memory-bound). N is sized for 0.45 s of such an estimate, which kept every
# recovery measured on the loaded machine under about 0.75 s.
_RECOVERY_BUDGET_S = 0.45
_LOAD_PER_BYTE_S = 5e-9
_REPLAY_FIXED_S, _REPLAY_PER_WORK_S = 1.5e-4, 2e-9
_MIN_EVERY, _MAX_EVERY = 8, 4096


def _update_work(dim: int, solver: str, rank: Optional[int]) -> int:
    d, r = int(dim), int(rank or 1)
    if solver in ("exact", "cg"):
        return d * d
    if solver == "sketch":
        return 2 * r * d + 4 * r * r
    return d


def default_checkpoint_every(dim: int, solver: str, rank: Optional[int] = None,
                             dtype: str = "float32") -> int:
    """Journal records between checkpoints for a model of this shape (recovery <= 1 s)."""
    state = RewardModel.state_bytes(dim, solver, dtype, rank)
    per = _REPLAY_FIXED_S + _REPLAY_PER_WORK_S * _update_work(dim, solver, rank)
    left = _RECOVERY_BUDGET_S - _LOAD_PER_BYTE_S * state
    return int(min(_MAX_EVERY, max(_MIN_EVERY, left // per)))


class Session:
    """One user's committed state in `store`, cached as a live model (see the module docstring).

    Args:
        store: the Store.
        user_id: a validated user id.
        head: the FeatureHead (`.dim`, `.fingerprint`, `.check(model)`) the state is bound to.
        new_model: makes the model of a user with no record (theta = 0, or the pack's start).
        checkpoint_every: journal records between two checkpoints (None: the default for the
            model's shape, `default_checkpoint_every`).
        pack_digest: the digest of the population pack new_model starts from (recorded when
            the user's record is created), or None.
    """

    def __init__(self, store: Store, user_id: str, head, new_model: Callable[[], RewardModel],
                 checkpoint_every: Optional[int] = None, pack_digest: Optional[bytes] = None):
        self.store, self.user_id, self.head = store, user_id, head
        self.pack_digest = pack_digest
        self._new_model = new_model
        self._every_option = None if checkpoint_every is None else int(checkpoint_every)
        self._every_default = (None, 0)   # (model shape, its default interval), see below
        self.model: Optional[RewardModel] = None   # committed state (+ pending in batch mode)
        self.cursor: Optional[Head] = None         # where model's committed part stands
        self._pending: list[tuple] = []            # (z, y, w) learned but not committed
        self._batch_depth = 0
        #: the counter of the last observation this session committed (its position in the
        #: user's commit order; other processes' commits are numbered in between), or None
        self.last_commit: Optional[int] = None

    # ------------------------------------------------------------------ reading
    def _load(self, rec: StoreRecord) -> RewardModel:
        rec.check_head(self.head.fingerprint, int(self.head.dim))
        return self._decode(rec.user_id, rec.state)

    def _decode(self, user_id: str, state: bytes) -> RewardModel:
        try:
            model = RewardModel.from_bytes(state)
        except StateFormatError as exc:
            raise StateFormatError(
                f"user {user_id!r}: the stored state cannot be read ({exc}); restore it with "
                f"an edge-omd version that wrote it, or erase it with store.delete("
                f"{user_id!r}) and start again") from exc
        self.head.check(model)   # HeadMismatchError if the blob's own dim/fingerprint differ
        return model

    def _replay(self, model: RewardModel, records) -> None:
        for r in records:
            try:
                _journal.apply(model, r)
            except (InvalidInputError, NumericalError) as exc:
                raise StateFormatError(
                    f"user {self.user_id!r}: journal record {r.seq} cannot be replayed ({exc}); "
                    f"erase the user with store.delete({self.user_id!r}) and start again") from exc

    def _apply_sync(self, s: Sync) -> None:
        """Make model the committed state `s` describes (from the cursor)."""
        if s.head is None:
            self.model, self.cursor = self._new_model(), None
            return
        if s.record is not None:
            model = self._load(s.record)
            self.model = None
            self._replay(model, s.record.journal)
            self.model, self.cursor = model, s.head
            return
        if s.tail:
            model, self.model = self.model, None   # unusable if a replay fails half-way
            self._replay(model, s.tail)
            self.model = model
        self.cursor = s.head

    def refresh(self) -> None:
        """Bring `model` up to date with what is committed (and keep the pending ones)."""
        if not self._pending:
            self._apply_sync(self.store.sync(self.user_id,
                                             self.cursor if self.model is not None else None))
            return
        # batch mode: the model holds uncommitted observations on top of the committed state
        s = self.store.sync(self.user_id, self.cursor if self.model is not None else None)
        if self.model is not None and not self._moved(s):
            self.cursor = s.head
            return
        self._rebuild(self.store.sync(self.user_id, None) if s.record is None and
                      s.head is not None else s)

    def current(self) -> RewardModel:
        """The live model, brought up to date (not a copy: the verbs only read it)."""
        self.refresh()
        return self.model

    def _moved(self, s: Sync) -> bool:
        if s.head is None:
            return self.cursor is not None
        return s.record is not None or bool(s.tail) or self.cursor is None

    def _rebuild(self, full: Sync) -> None:
        """model = the committed state of `full` (checkpoint + journal) + the pending ones."""
        self._apply_sync(full)
        model, self.model = self.model, None
        for z, y, w in self._pending:
            _journal.learn(model, z, y, w)
        self.model = model

    @property
    def updates(self) -> int:
        """Committed observations of the user."""
        self.refresh()
        return 0 if self.cursor is None else self.cursor.updates

    @property
    def pending(self) -> int:
        """Observations applied in memory but not yet committed (non-zero only inside batch())."""
        return len(self._pending)

    # ------------------------------------------------------------------ writing
    @property
    def checkpoint_every(self) -> int:
        """Journal records between two checkpoints."""
        if self._every_option is not None:
            return self._every_option
        m = self.model if self.model is not None else self._new_model()
        shape = (m.dim, m.solver, m.sketch_rank, m.dtype)
        if shape != self._every_default[0]:   # once per shape, not at every commit
            self._every_default = (shape, default_checkpoint_every(*shape))
        return self._every_default[1]

    def _transaction(self, checkpoint: bool):
        return self.store.transaction(self.user_id, head_fingerprint=self.head.fingerprint,
                                      dim=int(self.head.dim), checkpoint=checkpoint)

    def _commit(self, learn) -> None:
        """Learn (in place, inside the store's transaction) and append the journal records.

        learn(model) -> [(z, y, w)] the observations as the model learned them."""
        created = self.cursor is None
        try:
            with self._transaction(checkpoint=created) as tx:
                s = tx.sync(self.cursor if self.model is not None else None)
                if self._pending:
                    if self.model is None or self._moved(s):
                        self._rebuild(tx.sync(None) if s.record is None and s.head is not None
                                      else s)
                    else:
                        self.cursor = s.head
                else:
                    self._apply_sync(s)
                if tx.head is None:   # a new user: its first checkpoint is the replay base
                    base = self._new_model().to_bytes() if self._pending else \
                        self.model.to_bytes()
                    tx.create(base, updates=0, pack_digest=self.pack_digest)
                obs = list(self._pending) + learn(self.model)
                epoch, n = tx.head.epoch, tx.head.updates
                tx.append([_journal.encode(epoch, n + 1 + i, z, y, w, kind=_journal.kind_of(z))
                           for i, (z, y, w) in enumerate(obs)])
        except BaseException:
            # the model may have learned what was not committed: reload it next time
            self.model, self.cursor = None, None
            raise
        self.cursor = tx.head
        self._pending = []
        self.last_commit = self.cursor.updates
        if self.cursor.updates - self.cursor.checkpoint_updates >= self.checkpoint_every:
            self._checkpoint(auto=True)

    def _checkpoint(self, auto: bool) -> bool:
        try:
            with self._transaction(checkpoint=True) as tx:
                self._apply_sync(tx.sync(self.cursor if self.model is not None else None))
                h = tx.head
                if h is None or h.updates == h.checkpoint_updates or (
                        auto and h.updates - h.checkpoint_updates < self.checkpoint_every):
                    return False
                tx.checkpoint(self.model.to_bytes(), updates=h.updates)
        except Exception as exc:
            self.model, self.cursor = None, None
            if not auto:
                raise
            # the feedback is committed; the checkpoint is tried again at the next commit
            _log.warning("user %r: checkpoint failed (the journal is kept): %s", self.user_id, exc)
            return False
        self.cursor = tx.head
        return True

    def observe(self, learn) -> None:
        """Commit `learn(model)`'s observations now, or keep them pending inside a batch."""
        if self._batch_depth == 0:
            self._commit(learn)
            return
        # Batch mode: learn in memory now (the RewardModel leaves itself unchanged on bad
        # input), commit at flush.
        self.refresh()
        self._pending.extend(learn(self.model))

    def flush(self) -> int:
        """Commit the pending observations in one transaction; returns how many."""
        n = len(self._pending)
        if n:
            self._commit(lambda model: [])
        return n

    def checkpoint(self) -> bool:
        """Commit pending observations, then write the full state if the journal is not empty.
        Returns whether a checkpoint was written."""
        self.flush()
        return self._checkpoint(auto=False)

    @contextmanager
    def batch(self):
        """Observations inside the block are committed together when it exits."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self.flush()

    def delete(self) -> None:
        """Erase the user's record; pending observations and the cached model are dropped."""
        self._pending = []
        self.store.delete(self.user_id)
        self.model, self.cursor = None, None

    # ------------------------------------------------------------------ moving a user
    def replace(self, fn) -> bool:
        """Replace the committed state in ONE transaction: fn(model, pack_digest) -> None (keep
        it) or (new model, new pack digest), given the user's whole committed model (checkpoint
        + journal) and the record's pack digest; the result becomes a new checkpoint (new
        epoch, the update count kept), so no commit of another process falls in between.
        Pending observations are committed first. Returns whether the state was replaced
        (False: no record, or fn kept it)."""
        self.flush()
        try:
            with self._transaction(checkpoint=True) as tx:
                s = tx.sync(None)
                if s.head is None:
                    return False
                self._apply_sync(s)
                out = fn(self.model.copy(), s.head.pack_digest)
                if out is None:
                    return False
                model, pack = out
                self.head.check(model)
                tx.create(model.to_bytes(), updates=s.head.updates, pack_digest=pack)
        except BaseException:
            self.model, self.cursor = None, None
            raise
        self.model, self.cursor = model, tx.head
        return True

    def export_state(self) -> bytes:
        """The committed state as an EOMDUSR1 blob (pending observations committed first)."""
        self.flush()
        self.refresh()
        header = {
            "record_format": RECORD_FORMAT, "dim": int(self.head.dim),
            "head_fingerprint": bytes(self.head.fingerprint).hex(),
            "updates": 0 if self.cursor is None else self.cursor.updates,
            "exported_at": time.time(),
        }
        if self.cursor is not None and self.cursor.pack_digest is not None:
            # only when a pack is recorded, so an export without one keeps its old bytes
            header["pack_digest"] = self.cursor.pack_digest.hex()
        return _envelope.pack_json(_EXPORT_MAGIC, header, self.model.to_bytes())

    def import_state(self, blob) -> None:
        """Replace the user's state by an EOMDUSR1 blob: every check first, then one new
        checkpoint (new epoch); pending observations are committed before it."""
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise InvalidInputError(f"blob must be bytes, got {type(blob).__name__}")
        _magic, h, state = _envelope.unpack_json(
            blob, (_EXPORT_MAGIC,), "the user export",
            "pass the bytes export_state() returned (export again if they were damaged)")
        w = "the user export's header"
        fingerprint = _envelope.field_hex(h, "head_fingerprint", 32, w)
        dim = _envelope.field_int(h, "dim", 1, 1 << 16, w)
        record_format = _envelope.field_int(h, "record_format", 0, (1 << 31) - 1, w)
        exported = _envelope.field_int(h, "updates", 0, (1 << 63) - 1, w) if "updates" in h \
            else 0
        pack = _envelope.field_hex(h, "pack_digest", 32, w, optional=True) \
            if "pack_digest" in h else None
        if exported > MAX_IMPORT_UPDATES:   # the user could never learn again: refused here
            raise StateFormatError(
                f"{w}: field 'updates' is {exported}; a store counts at most {MAX_UPDATES} "
                f"committed updates per user and an import may start at most at "
                f"{MAX_IMPORT_UPDATES} (2^39), so that the user can go on learning. No user "
                "reaches such a count (5.5 x 10^11 feedbacks): the header was changed after "
                "export (its CRC is a checksum, not a seal); export the user again from where "
                "it lives (nothing was changed)")
        # all checks before anything is written
        check_stored_head(self.user_id, record_format, fingerprint, dim,
                          self.head.fingerprint, int(self.head.dim))
        model = self._decode(self.user_id, bytes(state))
        self.flush()
        state = model.to_bytes()
        try:
            with self._transaction(checkpoint=True) as tx:
                s = tx.sync(None)
                now = 0 if s.head is None else s.head.updates
                # a new checkpoint (new epoch: every cached copy reloads); the counter never
                # goes backwards, whatever the export's own count
                tx.create(state, updates=min(max(now, exported), MAX_UPDATES), pack_digest=pack)
        except BaseException:
            self.model, self.cursor = None, None
            raise
        self.model, self.cursor = model, tx.head
