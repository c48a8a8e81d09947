"""Power cuts on a real file system (a long mode: EDGE_OMD_LONG=1, as root, with loop devices).

A writer process runs the operation stream of tests/sdk/_workers.py (feedbacks, imports,
deletes, checkpoints; durable="full") on an ext4 file system in a loop-mounted image, and
reports each acknowledged operation. Every few hundred milliseconds the image is copied as a
power cut leaves it: the file system that holds the image (an outer ext4, itself loop-mounted
from /dev/shm) is frozen (fsfreeze) so that no write reaches the image during the copy, the
image is copied, and the outer file system is thawed; the writer goes on. Each copy is mounted
(ext4 replays its journal, as after a power cut) and the store opened: it must hold every
operation acknowledged before the freeze, byte for byte, and at most the ones acknowledged
until the thaw plus one in flight.

What this model of a power cut is: every write the inner file system had completed (handed to
the loop device) is kept, in whatever order the kernel issued it; what is still in its page
cache (not fsync'ed) is lost. A disk that loses completed writes from its volatile cache is the
crash-state explorer's model (tests/sdk/crash_explorer.py: unsynced writes dropped, torn and
reordered), which runs everywhere; this one runs the real kernel and ext4 (jbd2 journal
replay) under both stores, SQLite included.

Needs root (mount, losetup through mount -o loop, fsfreeze) and free loop devices; the test
fails, naming what is missing, where they are not (it is only collected in long mode). The
emulation that needs neither is test_crash.py's crash-state explorer.
"""
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from edge_omd.personalizer import Personalizer
from tests.sdk import _workers
from tests.sdk.fakes import FakeHead
from tests.sdk.test_crash import _blob, _read_reports

LONG = os.environ.get("EDGE_OMD_LONG", "") not in ("", "0")
CUTS = 150
DIM, EVERY = 32, 4
OPTIONS = {"solver": "exact", "dtype": "float64"}


def _run(*cmd, timeout=60):
    subprocess.run(cmd, check=True, timeout=timeout, capture_output=True)


def _mkfs_mount(image: Path, size_mb: int, at: Path) -> None:
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    _run("mkfs.ext4", "-q", "-F", str(image))
    at.mkdir()
    _run("mount", "-o", "loop", str(image), str(at))


if LONG:
    @pytest.mark.parametrize("kind", ["sqlite", "folder"])
    def test_power_cuts_of_a_loop_mounted_ext4_keep_every_acknowledged_operation(kind):
        if os.geteuid() != 0 or not all(shutil.which(t) for t in ("mount", "mkfs.ext4",
                                                                     "fsfreeze")):
            pytest.fail("needs root, mount, mkfs.ext4 and fsfreeze (loop devices): the "
                        "crash-state explorer of test_crash.py is the emulation that does not")
        base = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None,
                                     prefix="eomd-loop-"))
        outer, inner, cut = base / "outer", base / "outer" / "mnt", base / "cut"
        head = FakeHead(dim=DIM)
        blob, blob_state = _blob(head)
        refs = _workers.reference_states(head, OPTIONS, blob_state, 64)
        rng = random.Random(f"loop-{kind}")
        pid, mounted, frozen = None, [], False
        checked, in_flight = 0, 0
        try:
            _mkfs_mount(base / "outer.img", 160, outer)
            mounted.append(outer)
            _mkfs_mount(outer / "inner.img", 64, inner)
            mounted.append(inner)
            path = str(inner / ("s.sqlite" if kind == "sqlite" else "users"))
            pid, r = _workers.fork_reporting(lambda w: _workers.op_child(
                kind, path, "full", w, EVERY, DIM, OPTIONS, blob, 1))
            acked, buf = [], b""
            for c in range(CUTS):
                time.sleep(rng.uniform(0.05, 0.4))
                more, buf = _read_reports(r, 10 ** 9, 0.0, buf=buf)
                acked += more
                before = acked[-1] if acked else 0
                _run("fsfreeze", "-f", str(outer))
                frozen = True
                try:
                    shutil.copyfile(outer / "inner.img", base / "cut.img")
                finally:
                    _run("fsfreeze", "-u", str(outer))
                    frozen = False
                more, buf = _read_reports(r, 10 ** 9, 0.0, buf=buf)
                acked += more
                after = acked[-1] if acked else 0
                while len(refs) <= after + 2:
                    refs = _workers.reference_states(head, OPTIONS, blob_state, 2 * len(refs))
                cut.mkdir()
                _run("mount", "-o", "loop", str(base / "cut.img"), str(cut))
                try:
                    store = _workers.open_store(kind, str(cut / Path(path).name))
                    got = Personalizer(FakeHead(dim=DIM), store, "victim",
                                       model_options=OPTIONS).model.to_bytes()
                    store.close()
                finally:
                    _run("umount", str(cut))
                    cut.rmdir()
                    os.unlink(base / "cut.img")
                ok = [k for k in range(before, after + 2) if refs[k] == got]
                assert ok, (c, before, after, "the cut holds no allowed state")
                in_flight += max(ok) > after
                checked += 1
            assert after > CUTS, "the writer hardly ran"
        finally:
            if frozen:
                subprocess.run(["fsfreeze", "-u", str(outer)], timeout=60)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            for m in reversed(mounted):
                subprocess.run(["umount", str(m)], timeout=120)
            shutil.rmtree(base, ignore_errors=True)
        print(f"\n[loop power cuts, {kind}] {checked} cuts of ext4 on a loop device, "
              f"{after} operations acknowledged (feedback, import, delete, checkpoint): every "
              f"cut held every operation acknowledged before it, byte for byte; "
              f"{in_flight} held the operation in flight too; lost 0, corrupt 0 (load "
              f"{os.getloadavg()[0]:.1f})")
