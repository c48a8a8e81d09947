"""The checkpoint file of a FolderStore user (docs/FORMATS.md): `encode_checkpoint` writes
format 2, `decode_checkpoint` reads format 2 or 1 (whose epoch it derives), every check first.
"""
import hashlib

from edge_omd import envelope
from edge_omd.errors import StateFormatError
from edge_omd.store import journal as _journal
from edge_omd.store.base import _MAX_EPOCH, MAX_UPDATES, RECORD_FORMAT, StoreRecord

# Checkpoint file (docs/FORMATS.md): envelope.pack_json(b"EOMDREC2", header, state), i.e. magic,
# u32 header length, header JSON (utf-8), the RewardModel state, CRC-32 of every byte before.
# EOMDREC1 (RECORD_FORMAT 1): the header has no epoch; read as a checkpoint.
_MAGIC = b"EOMDREC2"
_MAGIC_V1 = b"EOMDREC1"
_CHECKPOINT_FIX = ("restore the file from a backup, or erase the user with store.delete() and "
                   "start again")


def encode_checkpoint(rec: StoreRecord) -> bytes:
    """The bytes of a FolderStore checkpoint file (format 2) holding `rec` (`pack_digest` only
    when there is one: a user without a pack is written as before packs existed)."""
    header = {
        "user_id": rec.user_id, "dim": rec.dim, "format_version": RECORD_FORMAT,
        "head_fingerprint": None if rec.head_fingerprint is None else rec.head_fingerprint.hex(),
        "updates": rec.updates, "epoch": rec.epoch, "created_at": rec.created_at,
        "updated_at": rec.updated_at,
    }
    if rec.pack_digest is not None:
        header["pack_digest"] = rec.pack_digest.hex()
    return envelope.pack_json(_MAGIC, header, rec.state)


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
    # absent in files written before packs existed: no pack
    pack = envelope.field_hex(h, "pack_digest", 32, w, optional=True) if "pack_digest" in h \
        else None
    return StoreRecord(uid, fp, dim, fmt, bytes(state), updates, created, updated, epoch, updates,
                       pack_digest=pack)


def _legacy_epoch(user_id: str, created_at: float) -> int:
    """A RECORD_FORMAT 1 file has no epoch: derive a stable one from what it holds."""
    h = hashlib.sha256(b"edge-omd legacy epoch\0" + user_id.encode() + b"\0"
                       + repr(float(created_at)).encode()).digest()
    return (int.from_bytes(h[:8], "little") >> 2) + 1
