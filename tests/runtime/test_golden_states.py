"""The committed golden states (tests/runtime/golden/make_golden_states.py): every solver x dtype,
with and without radius / fingerprint / non-default settings, in the set of this execution mode
(compiled or NUMBA_DISABLE_JIT). A refactor of the format, the solvers or the front must leave
every byte as it was: (a) the same stream gives the same bytes (a solver whose bytes depend on
the CPU, exact, diagonal and the sketch: the same bytes on the machine that wrote them, on another
within the stated tolerance, make_golden_states.TOLERANCE), (b) each committed file loads and
writes itself back unchanged."""
import os

import pytest

from edge_omd import RewardModel
from tests.runtime.golden import make_golden_states as golden

CASES = golden.cases()


def _committed(name):
    path = os.path.join(golden.folder(), name + ".eomd")
    with open(path, "rb") as f:
        return f.read()


def test_every_solver_dtype_and_variant_is_committed():
    names = {n for n, _ in CASES}
    assert len(names) == len(golden.SOLVERS) * len(golden.DTYPES) * 2
    for which in ("jit", "nojit"):
        on_disk = {f[:-5] for f in os.listdir(golden.folder(which)) if f.endswith(".eomd")}
        assert on_disk == names, which


@pytest.mark.parametrize("name,cfg", CASES, ids=[n for n, _ in CASES])
def test_same_stream_same_bytes(name, cfg):
    """A refactor keeps these bytes. A deliberate change of the numerics (a kernel that rounds
    differently) changes them: then rewrite both sets (the generator's docstring) in a commit
    that says so."""
    got = golden.build(cfg)
    if golden.per_cpu(name) and golden.target() != golden.written_target():
        why = golden.within_tolerance(got, _committed(name))  # another CPU: to the tolerance
        assert why is None, f"{name}: beyond the cross-CPU tolerance: {why}"
        return
    assert got == _committed(name), (
        f"{name}: the state bytes changed ({golden.mode()} set). If the numerics changed on "
        "purpose, run tests/runtime/golden/make_golden_states.py with and without "
        "NUMBA_DISABLE_JIT=1 and commit the new states saying why")


@pytest.mark.parametrize("name", [n for n, _ in CASES])
@pytest.mark.parametrize("which", ["jit", "nojit"])
def test_committed_state_loads_and_writes_back_byte_for_byte(name, which):
    with open(os.path.join(golden.folder(which), name + ".eomd"), "rb") as f:
        data = f.read()
    m = RewardModel.from_bytes(data)
    assert m.to_bytes() == data
    assert m.copy().to_bytes() == data
    solver, dtype, variant = name.split("_")
    assert (m.solver, m.dtype, m.dim) == (solver, dtype, golden.D)
    assert (m.head_fingerprint is not None) == (variant == "full")
