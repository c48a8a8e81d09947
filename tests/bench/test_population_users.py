"""The synthetic population benchmark (bench/population_users.py) on the demo corpus only with
oracle features (no head, no HH-RLHF): users are a shared taste plus a deviation of the stated
size, opposing users flip the stated number of shared directions, streams are seeded pairs of
one train prompt, and where users share a taste the population model beats a cold start while
a contender plugged in through the hook runs next to it."""
import numpy as np
import pytest

from edge_omd_bench import peruser as pu
from edge_omd_bench import peruser_world as pw
from edge_omd_bench import population as popm
from edge_omd_bench import population_users as PU

SHARP = pw.PopulationConfig(p_target=0.0, idiosyncratic=0.0, temperature=(0.05, 0.05),
                            properties=("has_list", "has_code", "casual", "hedging", "polite"))


def taste_of(u) -> np.ndarray:
    """A drawn user's weights on PROPERTIES and length taste (its WORDING weights are 0)."""
    assert not u.w[len(pw.PROPERTIES):].any()
    return np.r_[u.w[:len(pw.PROPERTIES)], u.w_len]


@pytest.fixture(scope="module")
def world():
    return pw.build_world(n_hh=0, n_demo=45, n_cands=6, seed=0)


def test_users_are_the_shared_taste_plus_a_deviation(world):
    t = PU.Taste(deviation=0.0, oppose=0.0)
    v = PU.shared_taste(world, 0, t)
    users, opp = PU.draw_population(world, 0, 20, t)
    assert not opp.any()
    assert all(np.array_equal(taste_of(u), v) for u in users)
    assert not np.array_equal(PU.shared_taste(world, 1, t), v)        # another population
    t = PU.Taste(deviation=0.5, oppose=0.0)
    users, _ = PU.draw_population(world, 0, 400, t)
    ratio = np.mean([np.linalg.norm(taste_of(u) - v) for u in users]) / np.linalg.norm(v)
    assert 0.4 < ratio < 0.55                 # E||g|| / sqrt(K + 1) is a little below 1


def test_opposing_users_flip_one_or_two_shared_directions(world):
    t = PU.Taste(deviation=0.0, oppose=1.0)
    v = PU.shared_taste(world, 0, t)
    users, opp = PU.draw_population(world, 0, 50, t)
    assert opp.all()
    flips = [np.flatnonzero(taste_of(u) != v) for u in users]
    assert all(1 <= len(f) <= 2 and (v[f] != 0).all() for f in flips)
    assert {len(f) for f in flips} == {1, 2}
    share = PU.draw_population(world, 0, 400, PU.Taste())[1].mean()
    assert 0.18 < share < 0.32


def test_pair_streams_are_seeded_pairs_of_one_train_prompt(world):
    u = PU.draw_population(world, 0, 1, PU.Taste())[0][0]
    s = PU.pair_stream(world, u, 30, 0)
    assert s == PU.pair_stream(world, u, 30, 0) and s != PU.pair_stream(world, u, 30, 1)
    train = {i for i in world.train}
    for a, b in s:
        assert a != b and a // world.n_cands == b // world.n_cands
        assert a // world.n_cands in train


def test_population_model_beats_cold_start_when_users_share_a_taste(world):
    Phi = pu.feature_matrix(world, "oracle")
    cfg = PU.Config(population=60, users=40, stream=30, checkpoints=(0, 10, 30), boot=300,
                    taste=PU.Taste(deviation=0.1, oppose=0.0, shared=SHARP),
                    contenders=("sdk_cold", "sdk_prior", "population", "refit", "agree_rate"))
    zero = popm.Contender("zero", "all-zero scorer",
                          lambda pop: (lambda: popm.FixedScorer(np.zeros(len(pop.Phi)))))
    res = PU.run(cfg, world=world, Phi=Phi, extra=[zero], log=lambda m: None)
    assert "agree_rate" not in res["contenders"]              # undefined on unseen prompts
    s = PU.summarize(res)
    for name in ("design", "second"):
        b = s[name]
        assert b["10"]["minus"]["sdk_cold"]["population"].lo > 0.05
        assert b["10"]["population"].mean > 0.6
        assert b["30"]["sdk_cold"].mean > b["0"]["sdk_cold"].mean + 0.1     # the learner learns
        # all-zero scores rank the first answer: the cold start before any feedback
        assert b["0"]["zero"].mean == b["0"]["sdk_cold"].mean
    v = PU.rule_verdict(s, "population")
    assert not v["met"]                  # never above itself
    assert not PU.rule_verdict(s, "zero")["met"]


def test_quick_cli(world, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(PU.pw, "build_world", lambda **kw: world)
    out = tmp_path / "o.json"
    assert PU.main(["--quick", "--features", "oracle", "--users", "8", "--population", "20",
                    "--seeds", "3", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Population \"seed 3\"" in text and "Rule" in text
    assert out.exists()
