"""bench/long_text.py runs and finds the cut and the whole text's ids the same."""
from edge_omd_bench import long_text


def test_long_text_bench_smoke(capsys):
    assert long_text.main(["--sizes", "20000", "--whole-up-to", "20000"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "|" in line]
    assert rows[-1].startswith("      20,000 |") and rows[-1].endswith("| True")
