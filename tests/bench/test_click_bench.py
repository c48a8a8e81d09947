"""bench/click.py runs end to end on a tiny budget and prints every figure next to its floors
(issue 23 items 5 and 6); the figures themselves are not asserted (timings)."""
from edge_omd_bench import click


def test_click_bench_prints_each_variant_next_to_its_floors(capsys):
    assert click.main(["--rounds", "4", "--warmup", "1",
                       "--only", "sqlite-normal-fair,folder-full-plain"]) == 0
    out = capsys.readouterr().out
    assert "after create+unlink" in out and "after pwrite" in out      # the file-system floor
    assert "bare learn_pair" in out                                      # the update's floor
    for name in ("sqlite-normal-fair", "folder-full-plain"):
        row = next(line for line in out.splitlines() if line.startswith(name))
        assert row.split()[-1] in ("PASS", "FAIL")                      # with its verdict
    assert "sqlite-full-fair" not in out
