"""Where users' reward models live between sessions: a checkpoint plus a journal per user;
crash-safe, multi-process safe, O(d) bytes written per feedback.

Every committed observation is ONE journal record (edge_omd/store/journal.py,
docs/JOURNAL_FORMAT.md): the z the model learned (one d-vector in the state's dtype), its label,
weight, counter and a CRC-32. The full state (RewardModel bytes) is written only at a
CHECKPOINT: when a user is created (so a replay base always exists), every N records, when the
app calls `Personalizer.checkpoint()` / `close()`, and on `import_state`. Recovery = the last
checkpoint plus the journal records after it, replayed in order, which gives the live model bit
for bit. The journal is cleared at each checkpoint, so the footprint stays bounded: about 2x the
state while a checkpoint is written, N records, and (SQLite) the write-ahead log's high-water
mark.

Two stores, one design (the `Store` contract, base.py):

- `SQLiteStore(path)` (the default, sqlite.py): one SQLite file (standard library) in WAL mode.
- `FolderStore(folder)` (folder.py): a checkpoint file, an append-only journal file and a lock
  file per user in a plain folder.

Both put writers in a `FairQueue` (fair_queue.py, arrival order) before their own lock, wait
for either at most `timeout_s` (then StoreError naming the process that holds it, e.g. an app
the OS froze), refuse a write started inside a write of the same lock in the same thread
(locks.py), read every row / file with the checks of docs/FORMATS.md (tampering and damage
raise StateFormatError / StoreError; a link or FIFO in place of a file is refused, never
followed or waited on), and frame their bytes through edge_omd/envelope.py.

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

Modules: base (the contract, StoreRecord, Head: the cursor, Sync), fair_queue, locks
(deadlines, holder records, re-entrance), sqlite, folder (+ folder_tx), journal (the record
codec) and session (what one Personalizer does with a store: sync, replay, commit, checkpoint,
export; imported by edge_omd.personalizer, not here).
"""
from edge_omd.envelope import FileIO
from edge_omd.errors import UserIdError
from edge_omd.store.base import (MAX_UPDATES, READABLE_FORMATS, RECORD_FORMAT, Head, Store,
                                 StoreRecord, Sync, UpdateFn, check_stored_head,
                                 validate_user_id)
from edge_omd.store.fair_queue import FairQueue
from edge_omd.store.folder import (KEY_FILE, FolderStore, KeyRecovery, UserPaths,
                                   decode_checkpoint, encode_checkpoint)
from edge_omd.store.sqlite import SQLiteStore

__all__ = ["StoreRecord", "Head", "Sync", "Store", "SQLiteStore", "FolderStore", "UserIdError",
           "FileIO", "RECORD_FORMAT", "validate_user_id"]
