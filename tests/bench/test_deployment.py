"""bench/deployment.py: HH-RLHF parsing and the simulation loop (tiny sizes, fake features)."""
import gzip
import json

import numpy as np

from edge_omd_bench import deployment


def test_last_turns_of_a_transcript():
    t = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how to boil an egg?\n\nAssistant: Boil it 9 min."
    assert deployment._last_turns(t) == ("how to boil an egg?", "Boil it 9 min.")
    assert deployment._last_turns("no turns here") is None


def test_hh_groups_from_files(tmp_path):
    for name in deployment.HH_FILES:
        with gzip.open(tmp_path / name, "wt") as f:
            for i in range(20):
                f.write(json.dumps({
                    "chosen": f"\n\nHuman: q{i}?\n\nAssistant: good answer {i}",
                    "rejected": f"\n\nHuman: q{i}?\n\nAssistant: bad answer {i}"}) + "\n")
    groups = deployment.hh_groups(str(tmp_path), n_groups=5, n_cands=6)
    assert len(groups) == 5
    for prompt, cands in groups:
        i = prompt[1:-1]
        assert cands[:2] == [f"good answer {i}", f"bad answer {i}"] and len(set(cands)) == 6
    assert deployment.hh_groups(str(tmp_path / "missing"), 5, 6) is None


def test_run_world_is_reproducible_and_bounded():
    rng = np.random.default_rng(0)
    phis = [rng.normal(size=(6, 8)).astype(np.float32) for _ in range(5)]
    w = rng.normal(size=8)

    def util(seed):
        return [p.astype(np.float64) @ w for p in phis]
    kw = dict(seeds=2, rounds=25, log=lambda *a: None)
    a = deployment.run_world(phis, util, **kw)
    b = deployment.run_world(phis, util, **kw)
    assert a == b
    for s in deployment.ORDER:
        assert all(0 <= x <= 25 for x in a[s]["pair"] + a[s]["first"])
        assert all(0 <= x <= 1 for x in a[s]["final"]) and len(a[s]["final"]) == 2
    # best_worst shows the worst response every round: its pair reward is the lowest
    assert np.mean(a["best_worst"]["pair"]) < np.mean(a["best_second"]["pair"])
    assert "| ucb |" in deployment.table(a, 25, "t")
