"""The state format read back from Java (android_demo/core), compiled with javac alone.

The full cross-language suite (updates, tokenizers, goldens) is test_java_core.py; this file is
the quick check that Java reads every state Python writes."""
import os
import subprocess

import numpy as np
import pytest

from edge_omd import RewardModel
from tests import solvers
from tests.runtime.streams import feed, mixed_stream
from tests.android import JAVA

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "android_demo", "core", "src")

pytestmark = JAVA


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    out = tmp_path_factory.mktemp("classes")
    files = [os.path.join(dp, f) for sub in ("main", "test") for dp, _, fs in os.walk(os.path.join(SRC, sub))
             for f in fs if f.endswith(".java")]
    subprocess.run(["javac", "-d", str(out), *files], check=True, capture_output=True)
    return str(out)


def _java(classes, path):
    return subprocess.run(["java", "-cp", classes, "dev.edgeomd.StateTool", str(path)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("cfg", [solvers.options(s, 7, rank=3, dtype=dt) for s, dt in solvers.grid()],
                         ids=[f"{s}-{dt}" for s, dt in solvers.grid()])
def test_java_reads_what_python_wrote(classes, tmp_path, cfg):
    m = RewardModel(7, **cfg)
    for kind, args, w in mixed_stream(7, 30, seed=4):
        feed(m, kind, args, w)
    path = tmp_path / "s.eomd"
    m.save(path)
    r = _java(classes, path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.split("\n")
    assert lines[0].split() == [m.solver, "7", str(m.sketch_rank or 0), str(m.t)]
    theta = np.array([float(x) for x in lines[1:8]])
    np.testing.assert_allclose(theta, m.theta, rtol=1e-12)
    assert float(lines[8].split()[1]) == pytest.approx(float(m.reward(np.ones(7))[0]), rel=1e-6)


def test_java_refuses_a_corrupt_state(classes, tmp_path):
    m = RewardModel(5)
    m.learn_pair(np.ones(5) / 3, np.zeros(5))
    b = bytearray(m.to_bytes())
    b[150] ^= 0x10
    path = tmp_path / "bad.eomd"
    path.write_bytes(bytes(b))
    r = _java(classes, path)
    assert r.returncode == 3 and "checksum" in r.stdout


def test_java_payload_layout_is_the_python_specs(classes):
    """StateFormat.payloadSpec (Java) gives, for every solver code and every size of the layout
    golden, the arrays the Python specs give (count, itemsize, int/float, order, total)."""
    layout = os.path.join(ROOT, "tests", "runtime", "golden", "state_layout.json")
    r = subprocess.run(["java", "-cp", classes, "dev.edgeomd.StateLayoutCheck", layout],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "layout OK" in r.stdout, r.stdout + r.stderr
