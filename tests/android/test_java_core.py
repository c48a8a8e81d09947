"""The Java core (android_demo/core) against the Python SDK, compiled with javac alone.

Python writes golden vectors (android_demo/golden/make_golden.py) into a temp folder: seeded
streams (pairs, thumbs, soft labels, fantasizes, choices among 2 to 16) and the state after every
update for every solver and both dtypes, rewards, widths, deterministic pair_to_show picks,
refused/accepted mutated files, journals (intact and damaged, kinds 1 and 2) with Python's parse
verdicts and replays, a FolderStore with one user per solver x dtype whose journal holds choices
(Java opens, replays, continues and hands it back), and token ids/offsets/masks of
1,000+ texts from the MiniLM tokenizer and two tiny byte-level BPE tokenizers. The Java runner
checks all of it (1e-5 relative in float32, 1e-12 in float64) and writes its own states, which
Python then loads here. Run alone with: pytest -m java tests/android
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from edge_omd import RewardModel
from tests import solvers
from tests.android import JAVA

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORE = os.path.join(ROOT, "android_demo", "core", "src")
GOLDEN = os.path.join(ROOT, "android_demo", "golden", "make_golden.py")
MIN_CHECKS = 135  # 25 model cases x 4 + refusals + units + journals + 10 store users + tokenizers

pytestmark = JAVA


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("java_core")
    golden, classes, out = base / "golden", base / "classes", base / "out"
    subprocess.run([sys.executable, GOLDEN, str(golden), "--texts", "1100"], check=True,
                   capture_output=True, timeout=300, cwd=ROOT)
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(CORE) for f in fs if f.endswith(".java")]
    subprocess.run(["javac", "-encoding", "UTF-8", "-d", str(classes), *files], check=True,
                   capture_output=True, timeout=300)
    r = subprocess.run(["java", "-Xmx768m", "-cp", str(classes), "dev.edgeomd.CoreTests",
                        str(golden), str(out)], capture_output=True, text=True, timeout=300)
    return dict(golden=golden, out=out, stdout=r.stdout + r.stderr, rc=r.returncode)


def test_java_runner_passes_everything(run):
    m = re.search(r"(\d+) passed, (\d+) failed", run["stdout"])
    assert m, run["stdout"][-3000:]
    passed, failed = int(m.group(1)), int(m.group(2))
    assert failed == 0 and run["rc"] == 0, run["stdout"][-6000:]
    assert passed >= MIN_CHECKS, run["stdout"][-3000:]
    print(run["stdout"].strip().splitlines()[-1])


def test_core_compiles_against_the_java8_api(tmp_path):
    """The library (not its tests) keeps to the Java 8 API + java.nio.file: Android API 26."""
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(CORE, "main")) for f in fs
             if f.endswith(".java")]
    r = subprocess.run(["javac", "--release", "8", "-encoding", "UTF-8", "-d", str(tmp_path), *files],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def test_goldens_cover_what_the_issue_asks(run):
    names = json.loads((run["golden"] / "model" / "index.json").read_text())
    covered = {(n.split("_")[0], n.rsplit("_", 1)[1]) for n in names}
    for s in solvers.SOLVERS:
        for dt in solvers.DTYPES:
            assert (s, dt) in covered
    ks = set()  # every model stream learns choices, with and without a radius
    for n in names:
        steps = json.loads((run["golden"] / "model" / n / "case.json").read_text())["steps"]
        ks |= {len(s["P"]) for s in steps if s["kind"] == "choice"}
        assert sum(s["kind"] == "choice" for s in steps) >= 4, n
    assert {2, 16} <= ks
    users = json.loads((run["golden"] / "journal" / "users.json").read_text())
    assert {(u["config"]["solver"], u["config"]["dtype"]) for u in users} == \
        {(s, dt) for s in solvers.SOLVERS for dt in solvers.DTYPES}
    for head in ("minilm", "bpe_llama3", "bpe_qwen2"):
        cases = json.loads((run["golden"] / "tok" / head / "cases.json").read_text())
        assert len({c["text"] for c in cases["texts"]}) >= 1000
        assert sum(b.get("n_trunc", 0) for b in cases["batches"]) > 20  # truncation exercised


def test_python_loads_what_java_wrote(run):
    """Java's final state of every golden stream loads in Python, equals Python's own final state
    to the dtype's tolerance, and Python writes it back byte for byte."""
    java_dir = run["out"] / "java_states"
    names = json.loads((run["golden"] / "model" / "index.json").read_text())
    assert sorted(p.stem for p in java_dir.glob("*.eomd")) == sorted(names)
    for name in names:
        data = (java_dir / f"{name}.eomd").read_bytes()
        j = RewardModel.from_bytes(data)
        assert j.to_bytes() == data, name
        case = json.loads((run["golden"] / "model" / name / "case.json").read_text())
        k = len(case["steps"])
        p = RewardModel.from_bytes((run["golden"] / "model" / name / f"s{k}.eomd").read_bytes())
        assert (j.solver, j.dim, j.sketch_rank, j.t, j.dtype) == \
            (p.solver, p.dim, p.sketch_rank, p.t, p.dtype)
        # float64 with a radius: Python's projection stops at a 1e-8 relative residual
        tol = 1e-5 if p.dtype == "float32" else 1e-12 if case["config"].get("radius") is None else 1e-7
        scale = np.abs(p.theta).max()
        assert np.abs(j.theta - p.theta).max() <= tol * scale, name
        probes = np.array(case["probes"])
        assert np.abs(j.width(probes) - p.width(probes)).max() <= tol * p.width(probes).max(), name


def test_python_folder_store_opens_what_java_continued(run):
    """The FolderStore users written by Python (journals with pairs, thumbs and choices), opened
    and continued on the JVM by UserStore (8 more observations each, choices journaled as kind-2
    records by Java), open in Python's FolderStore: checkpoint + journal replay give Java's live
    model and Python's own continued model (1e-5 relative in float32, 1e-12 in float64, 1e-7 with
    a radius), and the replayed journal holds Java's choice records."""
    from edge_omd.store import journal
    from edge_omd.store import FolderStore
    users = json.loads((run["golden"] / "journal" / "users.json").read_text())
    store = FolderStore(run["out"] / "folder_store")
    for u in users:
        rec = store.sync(u["user"]).record
        n = u["updates"] + len(u["next"])
        assert rec is not None and rec.updates == n, u["user"]
        m = RewardModel.from_bytes(rec.state)
        for r in rec.journal:
            journal.apply(m, r)
        kinds = [r.kind for r in rec.journal[-len(u["next"]):]]
        assert kinds == [journal.KIND_CHOICE if s["kind"] == "choice" else journal.KIND_GLM
                         for s in u["next"]], u["user"]
        j = RewardModel.from_bytes((run["out"] / "folder_java_live" / f"{u['user']}.eomd").read_bytes())
        p = RewardModel.from_bytes((run["golden"] / "journal" / "folder_next" /
                                    f"{u['user']}.{len(u['next'])}.eomd").read_bytes())
        tol = 1e-5 if m.dtype == "float32" else 1e-12 if "radius" not in u["config"] else 1e-7
        assert m.t == j.t == p.t == n and m.head_fingerprint == j.head_fingerprint == bytes(range(32))
        for other in (j, p):
            assert np.abs(m.theta - other.theta).max() <= tol * np.abs(other.theta).max(), u["user"]


def test_python_reads_the_pack_digest_java_kept(run):
    """A user UserStore started at a population pack (and whose checkpoint it rewrote, once
    opened without the pack) opens in Python's FolderStore with the pack's digest in its record,
    and a user without a pack has none."""
    from edge_omd.store import FolderStore
    info = json.loads((run["golden"] / "model" / "pack_store" / "pack.json").read_text())
    store = FolderStore(run["out"] / "pack_store_java")
    assert store.get("ann").pack_digest.hex() == info["digest"]
    assert store.get("cy").pack_digest is None
