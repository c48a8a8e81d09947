"""The Java core's wording view (android_demo/core WordingView.java) against Python's
(edge_omd/head/wording.py), bit for bit: Python writes the goldens
(android_demo/golden/make_golden_wording.py) into a temp folder, javac compiles the core and
WordingGoldenTests checks them. The view's float64 values are compared as bit patterns; every
step is IEEE-exact or fdlibm's (StrictMath.log1p, ported in Python), so no CPU may change them.
Run alone with: pytest -m java tests/android/test_java_wording.py
"""
import os
import re
import subprocess
import sys

from tests.android import JAVA

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORE = os.path.join(ROOT, "android_demo", "core", "src")
GOLDEN = os.path.join(ROOT, "android_demo", "golden", "make_golden_wording.py")

pytestmark = JAVA


def test_java_wording_view_matches_python_bit_for_bit(tmp_path):
    golden, classes = tmp_path / "golden", tmp_path / "classes"
    subprocess.run([sys.executable, GOLDEN, str(golden)], check=True, capture_output=True,
                   timeout=300, cwd=ROOT)
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(CORE) for f in fs if f.endswith(".java")]
    subprocess.run(["javac", "-encoding", "UTF-8", "-d", str(classes), *files], check=True,
                   capture_output=True, timeout=300)
    r = subprocess.run(["java", "-Xmx768m", "-cp", str(classes), "dev.edgeomd.WordingGoldenTests",
                        str(golden)], capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    m = re.search(r"(\d+) passed, (\d+) failed", out)
    assert m and r.returncode == 0 and int(m.group(2)) == 0, out[-4000:]
    # log1p, murmur, 6 views, manifests, append
    assert int(m.group(1)) >= 10, out[-2000:]
