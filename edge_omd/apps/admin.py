"""The operator's commands: look after the users stored by an assistant built on edge-omd.

    edge-omd users STORE                              the user ids
    edge-omd show STORE USER                          solver, dtype, dim, bytes, updates, ...
    edge-omd check STORE [--head HEAD]                every user readable? exit status 1 if not
    edge-omd export-user STORE USER FILE              Personalizer.export_state to FILE
    edge-omd import-user STORE USER FILE [--replace]  Personalizer.import_state from FILE
    edge-omd delete STORE USER                        forget the user
    edge-omd rank STORE USER --head HEAD PROMPT ANSWER...

STORE is a path: an SQLite database file (SQLiteStore) or a FolderStore folder, told apart by
what is there (the SQLite file header; the folder's `.omdkey` or user files); anything else is
refused before it is opened, so a mistyped path is never turned into a new store. `--json`
prints one JSON document instead of text. Everything goes through the public API (Store,
Personalizer.export_state / import_state, RewardModel.from_bytes): the commands read and write
exactly what an app would.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os

from edge_omd.apps.cli import one_line, run
from edge_omd.errors import EdgeOMDError, HeadError, InvalidInputError, StoreError

SQLITE_MAGIC = b"SQLite format 3\x00"
#: a FolderStore folder holds its key file or user files (docs/FORMATS.md; older folders:
#: <id>.omdstate)
FOLDER_MARKS = (".omdkey",)
FOLDER_SUFFIXES = (".omdck", ".omdjr", ".omdstate", ".omdjournal")
#: the largest export file import-user reads (a d = 4096 exact float64 state is 128 MiB)
MAX_EXPORT_BYTES = 1 << 30
#: what `show` prints for the pack fingerprint until packs exist
NO_PACK = "none"


# ----------------------------------------------------------------------------- the store
def store_kind(path: str) -> str:
    """'sqlite' or 'folder' for what is at `path`; StoreError saying what to pass otherwise."""
    if not os.path.exists(path):
        raise StoreError(f"{path} does not exist: pass an SQLite database file or a FolderStore "
                         "folder of an app")
    if os.path.isdir(path):
        names = os.listdir(path)
        if any(n in FOLDER_MARKS or n.endswith(FOLDER_SUFFIXES) for n in names):
            return "folder"
        raise StoreError(f"{path} is a folder without an edge-omd key or user files: not a "
                         "FolderStore folder (nothing was created in it)")
    head = b""
    if os.path.isfile(path):      # not a FIFO or a device: reading those could block
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    if head == SQLITE_MAGIC:
        return "sqlite"
    raise StoreError(f"{path} is neither an SQLite database nor a FolderStore folder")


def open_store(path: str):
    from edge_omd.store import FolderStore, SQLiteStore
    return SQLiteStore(path) if store_kind(path) == "sqlite" else FolderStore(path)


class StoredHead:
    """Stands for the head a stored user is bound to (fingerprint, dim) where no head folder is
    given: a Personalizer opens, checks, replays, exports and imports the user with it; it
    computes no features."""

    def __init__(self, fingerprint, dim: int):
        self.fingerprint, self.dim = fingerprint, int(dim)

    def features(self, prompt, responses):
        raise HeadError("this command has no feature head: pass --head HEAD")

    def check(self, model) -> None:
        from edge_omd.head.binding import bind
        bind(model, self.fingerprint, self.dim)


def _record(store, user_id: str):
    rec = store.get(user_id)
    if rec is None:
        raise StoreError(f"no user {user_id!r} in {_where(store)} (edge-omd users STORE lists them)")
    return rec


def _where(store) -> str:
    return str(getattr(store, "path", None) or getattr(store, "folder", "the store"))


def _personalizer(store, user_id: str, head=None):
    from edge_omd.personalizer import Personalizer
    if head is None:
        rec = _record(store, user_id)
        head = StoredHead(rec.head_fingerprint, rec.dim)
    return Personalizer(head, store, user_id)


def _time(t: float) -> str:
    try:
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(
            timespec="seconds")
    except (OverflowError, ValueError, OSError):    # a time no clock shows: print it as it is
        return repr(t)


def _fp(fp) -> str:
    return "none" if fp is None else bytes(fp).hex()


# ----------------------------------------------------------------------------- commands
def _parser(cmd: str, doc: str, *, user=False) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"edge-omd {cmd}", description=doc)
    ap.add_argument("store", metavar="STORE", help="an SQLite database file or a FolderStore folder")
    if user:
        ap.add_argument("user", metavar="USER", help="the user id")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    return ap


def _emit(args, obj, text: str) -> None:
    print(json.dumps(obj, sort_keys=True) if args.json else text)


def users(argv=None) -> int:
    return run("users", lambda: _users(argv))


def _users(argv) -> int:
    args = _parser("users", "List the users of a state store.").parse_args(argv)
    with open_store(args.store) as store:
        ids = store.users()
    _emit(args, {"store": args.store, "kind": store_kind(args.store), "users": ids},
          "\n".join(ids) if ids else f"(no users in {args.store})")
    return 0


def describe(rec) -> dict:
    """What `show` prints of a StoreRecord: the state's header facts and the record's."""
    from edge_omd.reward_model import RewardModel
    model = RewardModel.from_bytes(rec.state)
    last = max([rec.updated_at] + [r.time for r in rec.journal])
    return {"user": rec.user_id, "solver": model.solver, "dtype": model.dtype, "dim": model.dim,
            "rank": model.sketch_rank, "state_bytes": len(rec.state),
            "journal_records": len(rec.journal),
            "updates": rec.updates, "head_fingerprint": _fp(rec.head_fingerprint),
            "pack_fingerprint": NO_PACK, "created": _time(rec.created_at),
            "last_commit": _time(last)}


def show(argv=None) -> int:
    return run("show", lambda: _show(argv))


def _show(argv) -> int:
    args = _parser("show", "One stored user's facts.", user=True).parse_args(argv)
    with open_store(args.store) as store:
        info = describe(_record(store, args.user))
    _emit(args, info, "\n".join(f"{k:<16} {'-' if v is None else v}" for k, v in info.items()))
    return 0


def check_user(store, user_id: str, head=None) -> dict:
    """{"user", "ok", "problem"}: the user's record read (envelope and CRCs), its state loaded
    (the loader's checks), its journal replayed by a Personalizer, its binding checked (against
    `head` when given: its fingerprint and dim)."""
    try:
        rec = _record(store, user_id)
        describe(rec)
        if head is not None:
            rec.check_head(head.fingerprint, int(head.dim))
        _personalizer(store, user_id, StoredHead(rec.head_fingerprint, rec.dim)).model
    except EdgeOMDError as e:
        return {"user": user_id, "ok": False, "problem": one_line(e)}
    return {"user": user_id, "ok": True, "problem": None, "updates": rec.updates}


class _Logged(logging.Handler):
    """Collects the store's warnings (a file it skipped, ...) while `check` lists the users."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def check(argv=None) -> int:
    return run("check", lambda: _check(argv))


def _check(argv) -> int:
    ap = _parser("check", "Read every user of a store as an app would; exit status 1 if any "
                          "user (or file of the store) is damaged.")
    ap.add_argument("--head", help="a feature-head folder every user must be bound to")
    args = ap.parse_args(argv)
    head = None
    if args.head:
        from edge_omd.head.runner import FeatureHead
        head = FeatureHead.open(args.head)
    logged = _Logged()
    log = logging.getLogger("edge_omd.store")
    log.addHandler(logged)
    try:
        with open_store(args.store) as store:
            ids = store.users()
            results = [check_user(store, u, head) for u in ids]
    finally:
        log.removeHandler(logged)
    bad = [r for r in results if not r["ok"]]
    damaged = bool(bad or logged.lines)
    summary = (f"{len(results)} users: {len(results) - len(bad)} ok, {len(bad)} damaged"
               + (f"; the store reported {len(logged.lines)} problem(s)" if logged.lines else ""))
    text = [f"{r['user']}: " + ("ok" if r["ok"] else r["problem"]) for r in results]
    text += [f"store: {line}" for line in logged.lines] + [summary]
    _emit(args, {"store": args.store, "users": results, "store_problems": logged.lines,
                 "ok": not damaged, "summary": summary}, "\n".join(text))
    return 1 if damaged else 0


def export_user(argv=None) -> int:
    return run("export-user", lambda: _export_user(argv))


def _export_user(argv) -> int:
    ap = _parser("export-user", "Write one user's state to FILE (Personalizer.export_state); "
                                "import it with edge-omd import-user.", user=True)
    ap.add_argument("file", metavar="FILE", help="the file to write (refused if it exists)")
    args = ap.parse_args(argv)
    if os.path.lexists(args.file):
        raise InvalidInputError(f"{args.file} exists: pass a new file name (nothing was written)")
    from edge_omd import envelope
    with open_store(args.store) as store:
        if _record(store, args.user).head_fingerprint is None:
            raise StoreError(f"user {args.user!r} is bound to no feature head: an export names "
                             "the head its state was learned on (nothing was written)")
        blob = _personalizer(store, args.user).export_state()
    envelope.write_atomic(args.file, blob)
    _emit(args, {"user": args.user, "file": args.file, "bytes": len(blob)},
          f"wrote {args.file} ({len(blob)} bytes): user {args.user!r}")
    return 0


def export_header(blob: bytes) -> dict:
    """The JSON header of an export_state blob (docs/FORMATS.md, "user export"), checked."""
    from edge_omd import envelope
    _magic, h, _state = envelope.unpack_json(blob, (b"EOMDUSR1",), "the user export",
                                             "pass a file edge-omd export-user wrote")
    w = "the user export's header"
    return {"head_fingerprint": envelope.field_hex(h, "head_fingerprint", 32, w),
            "dim": envelope.field_int(h, "dim", 1, 1 << 16, w)}


def import_user(argv=None) -> int:
    return run("import-user", lambda: _import_user(argv))


def _import_user(argv) -> int:
    ap = _parser("import-user", "Read a user's state from FILE (written by export-user) into "
                                "the store (Personalizer.import_state).", user=True)
    ap.add_argument("file", metavar="FILE")
    ap.add_argument("--replace", action="store_true",
                    help="replace the user's stored state if the user exists")
    args = ap.parse_args(argv)
    from edge_omd import envelope
    if os.path.exists(args.file) and not os.path.isfile(args.file):
        raise InvalidInputError(f"{args.file} is not a regular file: pass a file edge-omd "
                                "export-user wrote")
    blob = envelope.read_limited(args.file, MAX_EXPORT_BYTES, args.file)
    h = export_header(blob)
    with open_store(args.store) as store:
        old = store.get(args.user)
        if old is not None and not args.replace:
            raise StoreError(f"user {args.user!r} exists in {args.store} ({old.updates} updates): "
                             "pass --replace to replace it (nothing was changed)")
        p = _personalizer(store, args.user, StoredHead(h["head_fingerprint"], h["dim"]))
        p.import_state(blob)
        updates = p.updates
    _emit(args, {"user": args.user, "file": args.file, "updates": updates,
                 "replaced": old is not None},
          f"imported {args.file} as user {args.user!r} ({updates} updates"
          + (", replacing the stored state)" if old is not None else ")"))
    return 0


def delete(argv=None) -> int:
    return run("delete", lambda: _delete(argv))


def _delete(argv) -> int:
    args = _parser("delete", "Erase one user's stored state (forget me).",
                   user=True).parse_args(argv)
    with open_store(args.store) as store:
        if not store.delete(args.user):
            raise StoreError(f"no user {args.user!r} in {args.store}: nothing to delete")
    _emit(args, {"user": args.user, "deleted": True}, f"deleted user {args.user!r}")
    return 0


def rank(argv=None) -> int:
    return run("rank", lambda: _rank(argv))


def _rank(argv) -> int:
    from edge_omd.strategies import DEFAULT_PESSIMISM
    ap = _parser("rank", "Rank answers to a prompt for a stored user (Personalizer.rank).",
                 user=True)
    ap.add_argument("--head", required=True, help="the feature-head folder the user learned on")
    ap.add_argument("--pessimism", type=float, default=DEFAULT_PESSIMISM,
                    help="score = reward - pessimism x width (default: %(default)s)")
    ap.add_argument("prompt", metavar="PROMPT")
    ap.add_argument("answers", metavar="ANSWER", nargs="+")
    args = ap.parse_args(argv)
    from edge_omd.head.runner import FeatureHead
    head = FeatureHead.open(args.head)
    with open_store(args.store) as store:
        _record(store, args.user)     # a typo must not rank for a new, empty user
        ranked = _personalizer(store, args.user, head).rank(args.prompt, args.answers,
                                                            pessimism=args.pessimism)
    rows = [{"rank": k, "index": r.index, "answer": r.response, "score": r.score,
             "reward": r.reward, "width": r.width} for k, r in enumerate(ranked, 1)]
    _emit(args, {"user": args.user, "prompt": args.prompt, "pessimism": args.pessimism,
                 "ranking": rows},
          "\n".join(f"{r['rank']}. score {r['score']:+.4f} = reward {r['reward']:+.4f} - "
                    f"{args.pessimism:g} x width {r['width']:.4f}  {r['answer']}" for r in rows))
    return 0
