"""The frozen ModelConfig (edge_omd/config.py) and the one argument-check module
(edge_omd/_checks.py): each error class used for what errors.py says it is for."""
import dataclasses

import numpy as np
import pytest

from edge_omd import RewardModel, UserIdError, errors
from edge_omd import _checks
from edge_omd.config import HYPERPARAMETERS, ModelConfig
from edge_omd.errors import ConfigError, InvalidInputError, StoreError


def test_config_is_frozen_validated_and_round_trips_through_the_header():
    c = ModelConfig(dim=5, solver="cg", eta=np.float32(0.5), cg_steps=np.int64(4), radius=2,
                    budget_bytes=10_000)
    assert (c.eta, c.cg_steps, c.radius) == (0.5, 4, 2.0)
    assert type(c.cg_steps) is int and type(c.radius) is float
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.eta = 2.0
    assert ModelConfig.from_header(c.to_header()) == c
    for bad in (dict(eta=0.0), dict(eta=True), dict(lam=float("nan")), dict(forget=1.5),
                dict(cg_steps=2.0), dict(cg_tol=1.0), dict(dtype="float16"), dict(radius=-1),
                dict(budget_bytes=0), dict(rank=6), dict(dim=0), dict(lam_warmup=-1)):
        with pytest.raises(ConfigError):
            ModelConfig(**dict(dict(dim=5), **bad))


def test_model_reads_its_config_and_hyperparameters_from_it():
    m = RewardModel(6, solver="cg", eta=2.0, lam=0.5, forget=0.9, cg_steps=5, lam_warmup=7)
    assert m.config.solver == "cg" and m.config.rank is None
    assert m.hyperparameters == m.config.hyperparameters()
    assert set(m.hyperparameters) == set(HYPERPARAMETERS)
    assert m._solver.config is m.config                # the solver reads it, no copies
    assert m.copy().config == m.config
    assert RewardModel.from_config(m.config).to_bytes() == RewardModel(
        6, solver="cg", eta=2.0, lam=0.5, forget=0.9, cg_steps=5, lam_warmup=7).to_bytes()
    s = RewardModel(40, budget_bytes=9000)             # auto: resolved into the config
    assert s.config.solver == s.solver and s.config.rank == s.sketch_rank


def test_constructor_arguments_raise_config_error_call_arguments_invalid_input():
    with pytest.raises(ConfigError):
        RewardModel(4, head_fingerprint=b"short")      # a constructor argument
    with pytest.raises(ConfigError):
        RewardModel(4, bogus=1)
    m = RewardModel(4)
    with pytest.raises(InvalidInputError):
        m.bind_head(b"short")                          # a call's argument
    for call in (lambda: m.learn_one(np.ones(4) / 2, 1.0, weight=True),
                 lambda: m.learn_one(np.ones(3), 1.0),
                 lambda: m.learn_thumb(np.ones(4) / 2, 1),
                 lambda: m.learn_pair(np.ones(4) / 2, np.zeros(4), weight=float("inf"))):
        with pytest.raises(InvalidInputError):
            call()
    assert m.t == 0


def test_checks_accept_numpy_scalars_and_read_only_arrays_and_refuse_bools():
    assert _checks.real("x", np.float32(1.5)) == 1.5
    assert _checks.int_in("k", np.int64(3), 0, 5) == 3
    for bad in (True, np.bool_(False), "1", None, [1.0], float("nan")):
        with pytest.raises(InvalidInputError):
            _checks.real("x", bad)
    with pytest.raises(ConfigError):
        _checks.integer("k", 2.0, ConfigError)
    ro = np.ones(3) / 3
    ro.setflags(write=False)
    assert _checks.vector(ro, "z", 3) is ro
    assert _checks.vector(np.arange(3, dtype=np.uint8), "z", 3).dtype == np.float64
    with pytest.raises(InvalidInputError):
        _checks.vector(np.array([1.0, np.nan, 0.0]), "z", 3)
    with pytest.raises(InvalidInputError):
        _checks.matrix(np.full((2, 3), 1e7), "Phi", 3)
    assert _checks.fingerprint(bytearray(32)) == bytes(32)


def test_user_id_error_lives_in_errors_and_is_importable_everywhere():
    from edge_omd import store
    assert UserIdError is errors.UserIdError is store.UserIdError
    assert issubclass(UserIdError, StoreError) and issubclass(UserIdError, ValueError)
    with pytest.raises(UserIdError):
        store.validate_user_id("../x")


def test_store_constructor_argument_is_config_error(tmp_path):
    from edge_omd.store import SQLiteStore
    for bad in (True, "30", float("nan"), -1.0):
        with pytest.raises(ConfigError):
            SQLiteStore(tmp_path / "s.sqlite", timeout_s=bad)
