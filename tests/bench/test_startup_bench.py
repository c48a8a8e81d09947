"""bench/startup.py runs end to end with one fresh process per figure and prints each figure
next to the floor of the same run (issue 23 items 4 and 6), and a baseline revision's rows
beside this one's; the timings themselves are not asserted."""
import os

import pytest

from edge_omd_bench import startup

pytestmark = pytest.mark.jit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_startup_prints_every_row_next_to_the_floor(capsys):
    # this checkout as its own baseline: the rows are printed twice, paired per round
    startup.main(["--runs", "1", "--dim", "8", "--baseline", ROOT])
    out = capsys.readouterr().out
    assert "bytecode cached" in out and "load " in out
    lines = out.splitlines()
    assert any(ln.startswith("floor: numpy, numba + 1 cached kernel") for ln in lines)
    for rev in ("", "baseline "):
        for name in ("cold import", "cold first update", "warm first update", "cold --help"):
            row = next(ln for ln in lines if ln.startswith(rev + name + " "))
            assert row.rstrip().endswith(("met", "MISSED")), row
            float(row[38:].split()[1])  # the difference to the floor, signed
    assert "this - baseline, warm first update, cpu: median" in out
