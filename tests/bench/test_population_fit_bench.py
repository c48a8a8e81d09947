"""The fit's scaling benchmark (bench/population_fit.py): the synthetic stream regenerates the
same users in every pass and in any sharding, pickles as its arguments, and the command prints
one row per population it fitted."""
import pickle

import numpy as np

from edge_omd_bench import population_fit as PF


def _users(shard):
    return [(u.key, u.Z.tobytes(), u.y.tobytes(), u.g.tobytes()) for u in shard]


def test_synthetic_stream_is_the_same_users_in_every_pass_and_sharding():
    whole = PF.SyntheticUsers(0, 40, 8, seed=3)
    assert _users(whole) == _users(whole)                       # a second pass: the same
    parts = [PF.SyntheticUsers(0, 15, 8, seed=3), PF.SyntheticUsers(15, 40, 8, seed=3)]
    assert _users(parts[0]) + _users(parts[1]) == _users(whole)
    assert len(pickle.dumps(whole)) < 400 and len(whole) == 40
    other = PF.SyntheticUsers(0, 40, 8, seed=4)
    assert _users(other) != _users(whole)
    u = next(iter(whole))
    assert u.n == 20 and set(np.unique(u.y)) <= {0.0, 1.0}
    np.testing.assert_allclose(np.linalg.norm(u.Z, axis=1), 1.0)


def test_command_prints_a_row_per_population(capsys):
    assert PF.main(["--synthetic", "80", "--d", "8", "--no-polis"]) == 0
    out = capsys.readouterr().out
    row = [line for line in out.splitlines() if line.startswith("| synthetic stream |")]
    assert len(row) == 1 and row[0].split("|")[2].strip() == "80"
    assert "load average at end" in out
