"""The memory budget: representation choice, true and constant nbytes, the floor.

Long mode (EDGE_OMD_LONG=1): the constant-nbytes stream runs 10^6 updates instead of 10^5.
"""
import os

import numpy as np
import pytest

from edge_omd import BudgetError, ConfigError, RewardModel

LONG = os.environ.get("EDGE_OMD_LONG", "") not in ("", "0")
#: updates in the long-stream test: 10^5 in the suite, 10^6 in the long mode
LONG_STREAM = 1_000_000 if LONG else 100_000


def test_auto_picks_by_budget():
    d = 384
    exact = RewardModel.state_bytes(d, "exact")
    assert RewardModel(d).solver == "exact"
    assert RewardModel(d, budget_bytes=exact).solver == "exact"
    m = RewardModel(d, budget_bytes=exact - 1)
    assert m.solver == "sketch" and m.nbytes <= exact - 1
    # the largest rank that fits: one more would not
    assert RewardModel.state_bytes(d, "sketch", sketch_rank=m.sketch_rank + 1) > exact - 1
    small = RewardModel(d, budget_bytes=RewardModel.state_bytes(d, "sketch", sketch_rank=2))
    assert small.solver == "sketch" and small.sketch_rank == 2
    diag = RewardModel.state_bytes(d, "diagonal")
    m = RewardModel(d, budget_bytes=RewardModel.state_bytes(d, "sketch", sketch_rank=2) - 1)
    assert m.solver == "diagonal" and m.nbytes <= diag
    with pytest.raises(BudgetError):
        RewardModel(d, budget_bytes=diag - 1)
    with pytest.raises(BudgetError):
        RewardModel(d, solver="exact", budget_bytes=exact - 1)


def test_sketch_at_2mib_for_d4096():
    m = RewardModel(4096, budget_bytes=2 << 20)
    assert m.solver == "sketch" and m.nbytes <= 2 << 20 and m.sketch_rank >= 32


# nbytes true and constant over a stream, for every solver x dtype x setting: the harness's
# check_nbytes_constant (tests/runtime/check_solver.py).


@pytest.mark.slow
def test_nbytes_constant_over_a_long_stream():
    d = 8
    m = RewardModel(d, solver="sketch", sketch_rank=2)
    n0 = m.nbytes
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(1000, d)) / np.sqrt(d)
    m.learn_one(Z[0], 1.0)
    n1 = m.nbytes
    for i in range(1, LONG_STREAM):
        m.learn_one(Z[i % 1000], float(i % 2))
    assert m.t == LONG_STREAM
    assert n0 == n1 == m.nbytes
    assert np.isfinite(m.theta).all()


@pytest.mark.parametrize("kw", [
    dict(eta=0), dict(eta=float("nan")), dict(lam=-1), dict(radius=0), dict(forget=0),
    dict(forget=1.5), dict(dtype="float16"), dict(solver="newton"), dict(cg_steps=0),
    dict(budget_bytes=0), dict(budget_bytes=1.5), dict(sketch_rank=0), dict(eta="1"),
    dict(forget=0.9, solver="exact"), dict(lam_warmup=-1), dict(eta=1e7), dict(lam=1e-12),
])
def test_bad_config_is_a_config_error(kw):
    with pytest.raises(ConfigError):
        RewardModel(8, **kw)


def test_bad_dim():
    for dim in (0, -3, 2.5, "8", True, 1 << 20):
        with pytest.raises(ConfigError):
            RewardModel(dim)


def test_auto_with_forgetting_avoids_exact():
    assert RewardModel(8, forget=0.99).solver == "cg"


@pytest.mark.parametrize("args", [(8, "exact", "float16"), ("8", "diagonal"), (8, "sketch", "float32", -5),
                                  (8, "sketch", "float32", 9), (0, "exact"), (8, "newton")])
def test_state_bytes_validates(args):
    with pytest.raises(ConfigError):
        RewardModel.state_bytes(*args)
