"""One process of tests/runtime/test_cross_target.py: what this interpreter's kernels compute,
under whatever target its environment sets (NUMBA_CPU_NAME / NUMBA_CPU_FEATURES, GLIBC_TUNABLES,
OPENBLAS_CORETYPE, NUMBA_DISABLE_JIT), as one line of JSON on stdout:

    python -m tests.runtime.cross_target STORE_FOLDER

  golden:  {case: state bytes (hex)} of the golden streams (tests/runtime/golden);
  replay:  {user: state bytes (hex)} of every user of the FolderStore at STORE_FOLDER
           (`make_store`) as this process reopens it (its checkpoint, then its journal
           replayed), on a copy;
  target:  the Numba target this process compiled for (host, or NUMBA_CPU_NAME).
The test compares them with the committed goldens and the host's bytes (`expected`).
"""
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
    """{user: the reopened model's state bytes}, reopened from a copy of `folder`."""
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
            out[user] = model.to_bytes()
    return out


def expected(name, mode):
    """The committed golden bytes a process in `mode` must reproduce for case `name`: its own
    set, but the compiled one for float64 in pure Python (the same operations, the same bits)."""
    from tests.runtime.golden import make_golden_states as golden
    which = "jit" if mode == "jit" or "float64" in name else "nojit"
    with open(os.path.join(golden.folder(which), name + ".eomd"), "rb") as f:
        return f.read()


def main(argv):
    sys.path.insert(0, ROOT)
    import numba
    from tests.runtime.golden import make_golden_states as golden
    out = {"mode": golden.mode(), "target": numba.config.CPU_NAME or "host",
           "golden": {name: golden.build(cfg).hex() for name, cfg in golden.cases()},
           "replay": {u: b.hex() for u, b in replay(argv[0]).items()}}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
