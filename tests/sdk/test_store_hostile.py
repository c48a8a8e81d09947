"""Issue 21, the store's rows: a folder and inputs someone else has been at. One regression
test each (every one fails on the code before the fix):

- item 2: `.omdkey` deleted, or replaced by another folder's key: the folder does not open
  (it minted a new key, users() was empty and alice reopened with 0 updates);
  `FolderStore.recover_key` names the files anew from their checkpoints, crash-safely.
- item 9: a symbolic link in place of a journal, lock or queue file is never followed (its
  target outside the folder was truncated); a FIFO in place of a checkpoint, journal, key or
  queue file never blocks (the open blocked forever); a checkpoint and an open of the folder
  list nothing (each checkpoint listed the whole folder twice, 21 ms -> 570 ms at 160k files:
  `python -m edge_omd_bench.persistence --only folder-scale` prints the figures).
- item 5 (the store's part): an import whose header says updates >= 2^39 is refused, naming
  the fix (every later feedback of the user failed once it said 2^40 - 1).
- item 10: an SQLite store on a read-only mount (or one this process may not write) serves
  reads and refuses writes saying "read-only", as the folder store does (it could not be
  opened at all, and the error suggested deleting the user).
"""
import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edge_omd import envelope
from edge_omd.errors import StateFormatError, StoreError
from edge_omd.personalizer import Personalizer
from edge_omd.store import FolderStore, SQLiteStore
from edge_omd.store.base import MAX_UPDATES
from tests.sdk import _workers
from tests.sdk.fakes import FakeHead

DIM = 16
OPTS = {"solver": "exact", "dtype": "float64"}


def _user(store, uid, n, every=100):
    p = Personalizer(FakeHead(dim=DIM), store, uid, checkpoint_every=every, model_options=OPTS)
    for k in range(1, n + 1):
        _workers.send(p, k)
    return p.model.to_bytes()


def _files(folder):
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder))
            if not n.endswith((".omdlk", ".omdq")) and ".omdq." not in n}


# ------------------------------------------------------------------ item 2: the key file

@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_lost_or_replaced_key_never_hides_users_and_recover_key_brings_them_back(tmp_path, how):
    folder = tmp_path / "f"
    store = FolderStore(folder)
    live = {"alice": _user(store, "alice", 5, every=3), "bob": _user(store, "bob", 2)}
    store.close()
    if how == "deleted":
        os.unlink(folder / ".omdkey")
    else:
        FolderStore(tmp_path / "other")
        shutil.copy(tmp_path / "other" / ".omdkey", folder / ".omdkey")
    before = _files(folder)
    with pytest.raises(StoreError, match="recover_key") as e:
        FolderStore(folder)
    assert ("missing" if how == "deleted" else "does not name") in str(e.value)
    assert _files(folder) == before                 # nothing changed, no key minted
    got = FolderStore.recover_key(folder)
    assert sorted(got.renamed) == ["alice", "bob"] and not got.conflicts and not got.unreadable
    s = FolderStore(folder)
    assert s.users() == ["alice", "bob"]
    for uid, state in live.items():
        p = Personalizer(FakeHead(dim=DIM), s, uid, model_options=OPTS)
        assert p.model.to_bytes() == state          # checkpoint and journal, byte for byte
    assert Personalizer(FakeHead(dim=DIM), s, "alice").updates == 5
    assert s.delete("alice") and s.users() == ["bob"]   # forget me finds the files again
    assert not [n for n in os.listdir(folder) if n.endswith((".omdck", ".omdjr"))
                and n.startswith(s.name_of("alice"))]


def test_an_interrupted_key_recovery_is_finished_by_running_it_again(tmp_path):
    folder = tmp_path / "f"
    store = FolderStore(folder)
    live = {u: _user(store, u, 3) for u in ("ann", "ben", "cy")}
    store.close()
    os.unlink(folder / ".omdkey")

    class Killed(envelope.FileIO):
        renames = 0

        def replace(self, src, dst):
            super().replace(src, dst)
            Killed.renames += 1
            if Killed.renames == 3:       # mid-way: a journal moved, its checkpoint not
                raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        FolderStore.recover_key(folder, io=Killed())
    with pytest.raises(StoreError, match="interrupted"):
        FolderStore(folder)
    FolderStore.recover_key(folder)
    s = FolderStore(folder)
    assert s.users() == ["ann", "ben", "cy"]
    for uid, state in live.items():
        assert Personalizer(FakeHead(dim=DIM), s, uid, model_options=OPTS).model.to_bytes() \
            == state


def test_a_new_folder_and_a_folder_of_the_old_layout_still_get_a_key(tmp_path):
    assert FolderStore(tmp_path / "new").users() == []
    old = tmp_path / "old"
    old.mkdir()
    (old / "x.omdjr").write_bytes(b"")            # not a keyed user file
    FolderStore(old)
    assert (old / ".omdkey").exists()


# ------------------------------------------------------------------ item 9: links, FIFOs

@pytest.mark.parametrize("which", ["journal", "lock", "checkpoint"])
def test_a_link_in_place_of_a_users_file_is_never_followed(tmp_path, which):
    folder = tmp_path / "f"
    store = FolderStore(folder)
    _user(store, "u", 2)
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"a file outside the store that must not change\n" * 50)
    path = Path(getattr(store.paths("u"), which))
    path.unlink(missing_ok=True)
    path.symlink_to(outside)
    s = FolderStore(folder)
    p_or_exc = _workers.within(30, lambda: Personalizer(FakeHead(dim=DIM), s, "u", model_options=OPTS)
                       .thumb("p", "an answer", up=True))
    assert p_or_exc[0] == "raised" and isinstance(p_or_exc[1], StoreError), p_or_exc
    assert "symbolic link" in str(p_or_exc[1])
    assert outside.read_bytes() == b"a file outside the store that must not change\n" * 50


@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_a_link_or_fifo_in_place_of_a_queue_file_is_passed_by(tmp_path, kind):
    """The queue only orders writers: a link or FIFO there is left alone (never followed,
    never waited on) and the write goes through the store's own lock."""
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"x" * 100)
    if kind == "sqlite":
        store, base = SQLiteStore(tmp_path / "s.sqlite"), str(tmp_path / "s.sqlite-omdq")
    else:
        store = FolderStore(tmp_path / "f")
        base = str(tmp_path / "f" / store.name_of("u")) + ".omdq"
    for bad, where in [(b, w) for b in ("link", "fifo") for w in (base, base + ".0")]:
        for target in (base, base + ".0", base + ".1"):
            Path(target).unlink(missing_ok=True)
        if bad == "link":
            os.symlink(outside, where)
        else:
            os.mkfifo(where)
        how, exc = _workers.within(30, lambda: store.update("u", lambda old: b"state",
                                                    head_fingerprint=None, dim=DIM))
        assert how == "ok", (bad, where, how, exc)
        assert outside.read_bytes() == b"x" * 100


@pytest.mark.parametrize("which", ["checkpoint", "journal", "key"])
def test_a_fifo_in_place_of_a_file_is_refused_without_blocking(tmp_path, which):
    folder = tmp_path / "f"
    store = FolderStore(folder)
    _user(store, "u", 2)
    path = folder / ".omdkey" if which == "key" else Path(getattr(store.paths("u"), which))
    path.unlink()
    os.mkfifo(path)

    def use():
        s = FolderStore(folder)
        s.users()
        return Personalizer(FakeHead(dim=DIM), s, "u", model_options=OPTS).updates
    how, exc = _workers.within(30, use)
    assert how == "raised" and isinstance(exc, StoreError) and "FIFO" in str(exc), (how, exc)


def test_users_and_open_pass_a_fifo_named_like_a_checkpoint(tmp_path):
    folder = tmp_path / "f"
    store = FolderStore(folder)
    _user(store, "u", 1)
    os.mkfifo(folder / ("0" * 32 + ".omdck"))
    how, got = _workers.within(30, lambda: FolderStore(folder).users())
    assert how == "ok" and got == ["u"], (how, got)


def test_an_sqlite_path_that_is_not_a_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "s.sqlite")
    how, exc = _workers.within(30, lambda: SQLiteStore(tmp_path / "s.sqlite"))
    assert how == "raised" and isinstance(exc, StoreError), (how, exc)


class CountingIO(envelope.FileIO):
    listings = 0

    def listdir(self, path):
        CountingIO.listings += 1
        return super().listdir(path)


def test_a_checkpoint_and_an_open_do_not_list_the_folder(tmp_path):
    """O(1) in the number of users: a checkpoint lists nothing (it listed the folder twice), an
    open looks at the first few names only (it listed them all)."""
    folder = tmp_path / "f"
    s = FolderStore(folder)
    for i in range(20):
        _user(s, f"user{i}", 1)
    io = CountingIO()
    CountingIO.listings = 0
    store = FolderStore(folder, io=io)
    p = Personalizer(FakeHead(dim=DIM), store, "user3", checkpoint_every=2, model_options=OPTS)
    for k in range(2, 8):
        _workers.send(p, k)                       # three checkpoints
    assert p.checkpoint() is True
    assert CountingIO.listings == 0
    assert store.delete("user4") is True          # forget me lists, to find every leftover
    assert CountingIO.listings == 1


# ------------------------------------------------------------------ item 5: import counters

@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_an_import_counter_the_store_cannot_go_on_from_is_refused(tmp_path, kind):
    store = SQLiteStore(tmp_path / "s.sqlite") if kind == "sqlite" else FolderStore(tmp_path)
    src = Personalizer(FakeHead(dim=DIM), store, "src", model_options=OPTS)
    _workers.send(src, 1)
    magic, h, body = envelope.unpack_json(src.export_state(), (b"EOMDUSR1",), "export")
    dst = Personalizer(FakeHead(dim=DIM), store, "dst", model_options=OPTS)
    _workers.send(dst, 2)
    before = dst.model.to_bytes()
    for n in (MAX_UPDATES, MAX_UPDATES // 2 + 2, (1 << 63) - 1):
        forged = envelope.pack_json(magic, dict(h, updates=n), bytes(body))   # CRC valid
        with pytest.raises(StateFormatError, match="export the user again"):
            dst.import_state(forged)
        assert dst.updates == 1 and dst.model.to_bytes() == before   # nothing changed
    # the largest accepted count leaves room to learn
    dst.import_state(envelope.pack_json(magic, dict(h, updates=(MAX_UPDATES + 1) // 2),
                                        bytes(body)))
    for k in range(3, 6):
        _workers.send(dst, k)
    assert dst.updates == (MAX_UPDATES + 1) // 2 + 3
    assert Personalizer(FakeHead(dim=DIM), store, "dst").updates == dst.updates


# ------------------------------------------------------------------ item 10: read-only

def _bind(src: Path, view: Path, read_only: bool = True) -> bool:
    """A bind mount of src at view, read-only unless asked (root only); False if it cannot be
    made."""
    if os.geteuid() != 0:
        return False
    view.mkdir()
    try:
        subprocess.run(["mount", "--bind", str(src), str(view)], check=True, timeout=30,
                       capture_output=True)
    except (OSError, subprocess.SubprocessError):
        return False
    if read_only and not _remount(view, "ro"):
        subprocess.run(["umount", str(view)], timeout=30)
        return False
    return True


def _remount(view: Path, mode: str) -> bool:
    return subprocess.run(["mount", "-o", f"remount,{mode},bind", str(view)], timeout=30,
                          capture_output=True).returncode == 0


def _check_read_only(path: str, kind: str, expect: dict) -> str:
    """Open the store read-only, check reads equal `expect` and writes are refused; returns
    "" or what went wrong."""
    head = FakeHead(dim=DIM)
    store = SQLiteStore(path) if kind == "sqlite" else FolderStore(path)
    if kind == "sqlite" and not store.read_only:
        return "not detected as read-only"
    for uid, (updates, state, ranked) in expect.items():
        p = Personalizer(head, store, uid, model_options=OPTS)
        if p.updates != updates or p.model.to_bytes() != state:
            return f"{uid}: read back {p.updates} updates / other bytes"
        if p.rank("a prompt", ["short code", "a long prose answer", "x"]) != ranked:
            return f"{uid}: another ranking"
        for write in (lambda: p.thumb("p", "an answer", up=True), p.reset,
                      lambda: p.import_state(p.export_state())):
            try:
                write()
                return f"{uid}: a write went through"
            except StoreError as exc:
                if "read-only" not in str(exc).lower():
                    return f"{uid}: the refusal does not say read-only: {exc}"
    return ""


@pytest.mark.parametrize("closed", [True, False])
@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_a_read_only_store_serves_reads_and_refuses_writes(tmp_path, kind, closed):
    """closed: the store was closed cleanly (no -wal/-shm left: SQLite needs to create its
    -shm to read); open: another process still had it open (both left beside it). On a
    read-only bind mount when this runs as root (the issue's case), else with the write
    permissions taken away (a child that is not root, or this process)."""
    src = tmp_path / "src"
    src.mkdir()
    path = src / ("s.sqlite" if kind == "sqlite" else "f")
    store = SQLiteStore(path) if kind == "sqlite" else FolderStore(path)
    expect = {}
    for uid, n in (("alice", 4), ("bob", 1)):
        p = Personalizer(FakeHead(dim=DIM), store, uid, checkpoint_every=3, model_options=OPTS)
        for k in range(1, n + 1):
            _workers.send(p, k)
        expect[uid] = (n, p.model.to_bytes(),
                       p.rank("a prompt", ["short code", "a long prose answer", "x"]))
    if closed:
        store.close()
    before = {n: (src / n).read_bytes() if (src / n).is_file() else None
              for n in os.listdir(src)}
    view = tmp_path / "view"
    if _bind(src, view):
        try:
            problem = _check_read_only(str(view / path.name), kind, expect)
        finally:
            subprocess.run(["umount", "-l", str(view)], timeout=30)
    else:
        problem = _as_unprivileged(lambda copy: _check_read_only(str(copy / path.name), kind,
                                                                 expect), src)
    assert problem == "", problem
    assert all(((src / n).read_bytes() if (src / n).is_file() else None) == b
               for n, b in before.items() if not n.endswith(("-shm", "-omdlk")))
    store.close()


def _as_unprivileged(fn, folder: Path) -> str:
    """fn(folder') with folder' a copy of `folder` whose files and folders are not writable: in
    this process if it is not root, else in a forked child that drops root (root writes
    anyway), on a copy in a fresh folder that child may enter."""
    import select
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="eomd-ro-"))
    try:
        os.chmod(base, 0o755)
        copy = base / folder.name
        shutil.copytree(folder, copy)
        for p in sorted(copy.rglob("*"), reverse=True) + [copy]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        if os.geteuid() != 0:
            return fn(copy)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:   # pragma: no cover - the child
            try:
                os.close(r)
                os.setgid(65534)
                os.setuid(65534)
                os.write(w, fn(copy).encode()[:4000])
            except BaseException as exc:   # noqa: BLE001 - reported to the parent
                os.write(w, f"child failed: {exc!r}".encode()[:4000])
            finally:
                os._exit(0)
        os.close(w)
        out = b""
        while select.select([r], [], [], 120)[0]:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            out += chunk
        os.close(r)
        os.waitpid(pid, 0)
        return out.decode()
    finally:
        for p in [base, *base.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(base)


class TurnsReadOnly(envelope.FileIO):
    """The errors a file system that was remounted read-only returns, from a switch on (a live
    remount is refused while files are open for writing: EBUSY)."""
    on = False

    def _refuse(self):
        if TurnsReadOnly.on:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def open(self, path, flags, mode=0o600):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            self._refuse()
        return super().open(path, flags, mode)

    def pwrite(self, fd, data, offset):
        self._refuse()
        return super().pwrite(fd, data, offset)

    def replace(self, src, dst):
        self._refuse()
        return super().replace(src, dst)

    def unlink(self, path):
        self._refuse()
        return super().unlink(path)


@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_a_store_that_turns_read_only_mid_run_says_so(tmp_path, kind):
    """A write that fails because the file system under the open store turned read-only says
    "read-only" and changes nothing; reads go on. SQLite: every write fails (query_only) and
    the mount's flags say read-only; folder: the file system's errors (EROFS)."""
    TurnsReadOnly.on = False
    if kind == "sqlite":
        store = SQLiteStore(tmp_path / "s.sqlite")
    else:
        store = FolderStore(tmp_path / "f", io=TurnsReadOnly())
    p = Personalizer(FakeHead(dim=DIM), store, "u", model_options=OPTS)
    _workers.send(p, 1)
    live = p.model.to_bytes()
    if kind == "sqlite":
        store._why_read_only = lambda: f"{tmp_path} is on a file system mounted read-only"
        store._con().execute("PRAGMA query_only=ON")
    else:
        TurnsReadOnly.on = True
    try:
        for write in (lambda: _workers.send(p, 2), p.reset):
            with pytest.raises(StoreError) as e:
                write()
            assert "read-only" in str(e.value).lower(), e.value
        q = Personalizer(FakeHead(dim=DIM), store, "u", model_options=OPTS)
        assert q.updates == 1 and q.model.to_bytes() == live     # reads still served
    finally:
        TurnsReadOnly.on = False
