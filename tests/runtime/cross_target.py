"""One process of tests/runtime/test_cross_target.py: what this interpreter's kernels compute,
under whatever target its environment sets (NUMBA_CPU_NAME / NUMBA_CPU_FEATURES, GLIBC_TUNABLES,
OPENBLAS_CORETYPE, NUMBA_DISABLE_JIT), as one line of JSON on stdout:

    python -m tests.runtime.cross_target STORE_FOLDER

  golden:  the golden streams (tests/runtime/golden) this mode reproduces, compared with the
           committed files: compiled, all 16 against states/jit/; NUMBA_DISABLE_JIT, the float32
           ones against states/nojit/ and the float64 ones against states/jit/ (the pure-Python
           path gives the compiled float64 bytes); the names that differ;
  replay:  sha256 of every user of the FolderStore at STORE_FOLDER (`make_store`) as this
           process reopens it (its checkpoint, then its journal replayed), on a copy;
  target:  the Numba target this process compiled for (host, or NUMBA_CPU_NAME).
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
D, FEEDBACKS, CHECKPOINT_EVERY = 8, 30, 12
#: the replay's users: every solver and dtype, half with the projection (radius)
USERS = {f"{s}-{dt}": dict(solver=s, dtype=dt, **({"sketch_rank": 3} if s == "sketch" else {}),
                           **({"radius": 0.8} if (i + j) % 2 else {}))
         for i, s in enumerate(("exact", "cg", "sketch", "diagonal"))
         for j, dt in enumerate(("float32", "float64"))}


def _texts(i):
    return f"prompt {i % 5}", f"answer {i} alpha beta {i % 3}", f"reply {i} gamma {i % 4}"


def make_store(folder):
    """A FolderStore with one user per USERS entry: FEEDBACKS prefers each, a checkpoint every
    CHECKPOINT_EVERY, so each holds a checkpoint and a journal tail to replay."""
    from edge_omd import FolderStore, Personalizer
    from tests.sdk.fakes import FakeHead
    store = FolderStore(folder)
    for user, opts in USERS.items():
        p = Personalizer(FakeHead(dim=D), store, user, model_options=opts,
                         checkpoint_every=CHECKPOINT_EVERY)
        for i in range(FEEDBACKS):
            p.prefer(*_texts(i))
    return store


def replay(folder):
    """{user: sha256 of the reopened model's state bytes}, reopened from a copy of `folder`."""
    from edge_omd import FolderStore, Personalizer
    from tests.sdk.fakes import FakeHead
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "store")
        shutil.copytree(folder, copy)
        store = FolderStore(copy)
        for user in USERS:
            model = Personalizer(FakeHead(dim=D), store, user,
                                 checkpoint_every=10 ** 9).model
            out[user] = hashlib.sha256(model.to_bytes()).hexdigest()
    return out


def golden_differences():
    from tests.runtime.golden import make_golden_states as golden
    differ = []
    for name, cfg in golden.cases():
        which = "jit" if golden.mode() == "jit" or "float64" in name else "nojit"
        with open(os.path.join(golden.folder(which), name + ".eomd"), "rb") as f:
            if golden.build(cfg) != f.read():
                differ.append(name)
    return differ


def main(argv):
    sys.path.insert(0, ROOT)
    import numba
    from tests.runtime.golden import make_golden_states as golden
    out = {"mode": golden.mode(), "target": numba.config.CPU_NAME or "host",
           "golden": golden_differences(), "replay": replay(argv[0])}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
