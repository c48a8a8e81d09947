"""One grammar for the API (docs/API.md): the old names warn, name the new verb and do exactly
what it does; PersonalizerOptions checks every option once and the keyword arguments build it."""
import warnings

import numpy as np
import pytest

from edge_omd import Personalizer, PersonalizerOptions, RewardModel
from edge_omd._deprecated import PREFIX
from edge_omd.errors import ConfigError, InvalidInputError
from edge_omd.store import SQLiteStore
from tests.sdk.fakes import FakeHead

PROMPT = "how do I reverse a list in python"
ANSWERS = ["use slicing xs[::-1]", "call reversed and wrap it in list", "lists are ordered",
           "sort it backwards"]


def _pair(tmp_path, name):
    head = FakeHead(dim=32)
    store = SQLiteStore(tmp_path / f"{name}.sqlite")
    return (Personalizer(head, store, "old", seed=3, model_options={"dtype": "float64"}),
            Personalizer(head, store, "new", seed=3, model_options={"dtype": "float64"}), store)


def _warned(new, call):
    """call() under an old name: exactly one DeprecationWarning naming `new`; its result."""
    with pytest.warns(DeprecationWarning) as got:
        out = call()
    ours = [w for w in got if str(w.message).startswith(PREFIX)]
    assert len(ours) == 1 and new in str(ours[0].message), [str(w.message) for w in got]
    assert ours[0].filename == __file__          # attributed to the caller, not the SDK
    return out


def test_old_personalizer_verbs_warn_and_do_what_the_new_ones_do(tmp_path):
    old, new, store = _pair(tmp_path, "verbs")
    assert _warned("Personalizer.pair_to_show", lambda: old.choose_pair(PROMPT, ANSWERS)) \
        == new.pair_to_show(PROMPT, ANSWERS)
    _warned("Personalizer.thumb", lambda: old.feedback(PROMPT, ANSWERS[0], True,
                                                         shown=ANSWERS[1:2]))
    new.thumb(PROMPT, ANSWERS[0], True, shown=ANSWERS[1:2])
    _warned("Personalizer.pick", lambda: old.choose(PROMPT, ANSWERS, 2, weight=0.5))
    new.pick(PROMPT, ANSWERS, 2, weight=0.5)
    _warned("picked=", lambda: old.choose(PROMPT, ANSWERS, chosen_index=1))
    new.pick(PROMPT, ANSWERS, picked=1)
    pool = [(PROMPT, ANSWERS), ("another question", ANSWERS[:3])]
    assert _warned("Personalizer.queries_to_ask", lambda: old.select_queries(pool, 2)) \
        == new.queries_to_ask(pool, 2)
    assert old.model.to_bytes() == new.model.to_bytes() and old.updates == new.updates == 3
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="twice"):
        old.choose(PROMPT, ANSWERS, chosen_index=1, picked=1)
    assert old.updates == 3
    store.close()


def test_an_old_name_is_an_error_for_the_repositorys_own_code(tmp_path):
    # tests/conftest.py turns the SDK's deprecation warnings into errors, so a call left on an
    # old name anywhere the suite runs (apps, bench, tests) fails; nothing is learned.
    old, _new, store = _pair(tmp_path, "strict")
    with pytest.raises(DeprecationWarning, match="Personalizer.thumb"):
        old.feedback(PROMPT, ANSWERS[0], True)
    assert old.updates == 0
    store.close()


def test_pick_names_the_index_picked(tmp_path):
    _old, p, store = _pair(tmp_path, "index")
    with pytest.raises(InvalidInputError, match="picked"):
        p.pick(PROMPT, ANSWERS, 4)
    with pytest.raises(TypeError):
        p.pick(PROMPT, ANSWERS, chosen_index=1)     # the old keyword only on the old name
    assert p.updates == 0
    store.close()


def _stream(m, rng):
    for _ in range(5):
        m.learn_choice(rng.standard_normal((3, 6)), 1, weight=0.7)
        m.learn_one(rng.standard_normal(6), 0.25)


def test_old_reward_model_names_warn_and_do_what_the_new_ones_do():
    a = RewardModel(6, solver="sketch", sketch_rank=3, dtype="float64")
    b = a.copy()
    assert _warned("RewardModel.sketch_rank", lambda: a.rank) == a.sketch_rank == 3
    assert RewardModel(6, solver="exact").sketch_rank is None
    assert _warned("sketch_rank=", lambda: RewardModel.state_bytes(6, "sketch", "float64",
                                                                   rank=3)) \
        == RewardModel.state_bytes(6, "sketch", "float64", sketch_rank=3) == a.nbytes
    with pytest.raises(TypeError, match="twice"):
        RewardModel.state_bytes(6, "sketch", rank=3, sketch_rank=3)
    Phi = np.random.default_rng(0).standard_normal((3, 6))
    _warned("picked=", lambda: a.learn_choice(Phi, chosen=2))
    b.learn_choice(Phi, picked=2)
    assert a == b
    with pytest.raises(TypeError, match="unexpected keyword"):
        a.learn_choice(Phi, choosen=2)
    with pytest.raises(TypeError, match="missing"):
        a.learn_choice(Phi)
    # the journal's replay verbs: private now, the old public names still replay
    P = _warned("RewardModel.learn_choice", lambda: a.choice_input(Phi))
    np.testing.assert_array_equal(P, b._choice_input(Phi))
    _warned("RewardModel.learn_choice", lambda: a.learn_choice_observation(P, 0, 0.5))
    b._learn_choice_observation(P, 0, 0.5)
    a.learn_one(Phi[0], 1.0)
    b.learn_one(Phi[0], 1.0)
    z = _warned("RewardModel.learn_one", lambda: a.observation).copy()
    np.testing.assert_array_equal(z, b._observation)
    _warned("RewardModel.learn_one", lambda: a.learn_observation(z, 0.5))
    b._learn_observation(z, 0.5)
    assert a == b and a.t == 4
    assert "sketch_rank=3" in repr(a)


def test_options_are_checked_once_and_frozen():
    o = PersonalizerOptions(beta="paper", delta=0.1, model_options={"dtype": "float64"},
                            checkpoint_every=5, feature_cache_bytes=0, seed=7)
    with pytest.raises(Exception):
        o.beta = 2.0
    with pytest.raises(TypeError):
        o.model_options["eta"] = 2.0                 # a read-only mapping
    assert o.replace(beta=0.5).beta == 0.5 and o.beta == "paper"
    for bad in (dict(beta=-1.0), dict(beta="ucb"), dict(beta=float("nan")), dict(delta=0.0),
                dict(delta=1.0), dict(model_options=[("eta", 1.0)]), dict(model_options={1: 2}),
                dict(model_options={"population": None}), dict(seed=-1), dict(seed="x"),
                dict(checkpoint_every=0), dict(checkpoint_every=True), dict(feature_cache_bytes=-1),
                dict(feature_cache_bytes=1.5), dict(population="a pack")):
        with pytest.raises(ConfigError):
            PersonalizerOptions(**bad)
        with pytest.raises(ConfigError):
            o.replace(**bad)
    assert PersonalizerOptions().model_kwargs() == {"budget_bytes": 8 << 20}
    assert PersonalizerOptions(model_options={"solver": "exact"}).model_kwargs() == \
        {"solver": "exact"}


def test_keyword_arguments_and_options_build_the_same_personalizer(tmp_path):
    head, store = FakeHead(dim=32), SQLiteStore(tmp_path / "o.sqlite")
    kw = dict(beta=0.5, seed=11, checkpoint_every=3, model_options={"dtype": "float64"})
    by_kw = Personalizer(head, store, "a", **kw)
    by_opt = Personalizer(head, store, "b", PersonalizerOptions(**kw))
    mixed = Personalizer(head, store, "c", PersonalizerOptions(beta=2.0, seed=11), beta=0.5,
                         checkpoint_every=3, model_options={"dtype": "float64"})
    assert by_kw.options == by_opt.options == mixed.options
    for p in (by_kw, by_opt, mixed):
        assert p.beta == 0.5 and p.checkpoint_every == 3
        p.thumb(PROMPT, ANSWERS[1], False)
    assert by_kw.model.to_bytes() == by_opt.model.to_bytes() == mixed.model.to_bytes()
    assert by_kw.pair_to_show(PROMPT, ANSWERS, strategy="random") == \
        by_opt.pair_to_show(PROMPT, ANSWERS, strategy="random")
    for bad in (dict(betta=0.5), dict(options={"beta": 0.5}), dict(delta=2.0)):
        with pytest.raises(ConfigError):
            Personalizer(head, store, "d", **bad)
    with pytest.raises(ConfigError, match="PersonalizerOptions"):
        Personalizer(head, store, "d", {"beta": 0.5})
    assert store.get("d") is None                     # nothing written by a refused constructor
    store.close()


def test_no_deprecation_warning_from_the_new_names(tmp_path):
    _old, p, store = _pair(tmp_path, "quiet")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        p.pair_to_show(PROMPT, ANSWERS)
        p.thumb(PROMPT, ANSWERS[0], True)
        p.prefer(PROMPT, ANSWERS[0], ANSWERS[1])
        p.pick(PROMPT, ANSWERS, 0)
        p.rank(PROMPT, ANSWERS)
        p.score(PROMPT, ANSWERS)
        p.queries_to_ask([(PROMPT, ANSWERS)], 1)
        p.checkpoint()
        reopened = Personalizer(p.head, store, "new")     # replays the journal: no alias used
        assert reopened.model.sketch_rank is None and reopened.updates == 3
    store.close()
