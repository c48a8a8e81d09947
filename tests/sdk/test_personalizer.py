"""Personalizer: feedback moves rankings the right way, persistence, batching, forget/export."""
import numpy as np
import pytest

from edge_omd.errors import ConfigError, HeadMismatchError, InvalidInputError, StateFormatError
from edge_omd.personalizer import Personalizer
from edge_omd.store import FolderStore, SQLiteStore, UserIdError
from tests.sdk.fakes import FakeHead

PROMPT = "how do I reverse a list in python"
CODE = "use slicing code xs reverse python snippet"
PROSE = "lists are ordered collections and there are many ways to think about order"


def test_preferences_move_the_ranking_towards_the_chosen_style(head, store):
    p = Personalizer(head, store, "u")
    new_prompt = "how do I sort a dict in python"
    cands = ["a python snippet with code sorted items", "there are many ways to think about it"]
    for _ in range(6):
        p.prefer(PROMPT, CODE, PROSE)
    top = p.rank(new_prompt, cands, pessimism=0.0)
    assert top[0].index == 0 and top[0].reward > top[1].reward
    # and the opposite taste ranks the other way
    q = Personalizer(head, store, "v")
    for _ in range(6):
        q.prefer(PROMPT, PROSE, CODE)
    assert q.rank(new_prompt, cands, pessimism=0.0)[0].index == 1
    assert p.updates == 6 and q.updates == 6


def test_thumbs_move_scores_the_right_way(head, store):
    p = Personalizer(head, store, "u")
    before = p.score(PROMPT, [CODE, PROSE])
    p.thumb(PROMPT, CODE, up=True)
    p.thumb(PROMPT, PROSE, up=False)
    after = p.score(PROMPT, [CODE, PROSE])
    assert after[0] > before[0] and after[1] < before[1]
    assert store.get("u").updates == 2                    # each one committed on its own


def test_rank_is_the_pessimistic_lower_confidence_bound(head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u", beta=0.8)
    p.prefer(PROMPT, CODE, PROSE)
    cands = [CODE, PROSE, "completely unseen words zebra quantum harp"]
    ranked = p.rank(PROMPT, cands, pessimism=0.8)
    phi = head.features(PROMPT, cands)
    m = p.model
    r, w = m.reward(phi), m.width(phi, phi.astype(np.float64).mean(0))
    for x in ranked:
        assert x.score == pytest.approx(r[x.index] - 0.8 * w[x.index])
        assert x.response == cands[x.index]
    assert [x.index for x in ranked] == list(np.argsort(-(r - 0.8 * w), kind="stable"))
    assert [x.index for x in p.rank(PROMPT, cands, pessimism=0.0)] == list(np.argsort(-r, kind="stable"))
    # the default is plain reward (strategies.DEFAULT_PESSIMISM = 0), whatever beta is
    default = p.rank(PROMPT, cands)
    assert [x.score for x in default] == [pytest.approx(r[x.index]) for x in default]
    assert [x.index for x in default] == list(np.argsort(-r, kind="stable"))


def test_bad_input_changes_nothing(head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u")
    p.thumb(PROMPT, CODE, up=True)
    before = sqlite_store.get("u")
    for call in (lambda: p.thumb(PROMPT, CODE, up="yes"),
                 lambda: p.thumb(PROMPT, 42, up=True),
                 lambda: p.prefer(PROMPT, CODE, PROSE, weight=-1.0),
                 lambda: p.prefer(PROMPT, CODE, PROSE, weight=float("nan")),
                 lambda: p.rank(PROMPT, CODE),
                 lambda: p.rank(PROMPT, [CODE], pessimism=-1),
                 lambda: p.pair_to_show(PROMPT, [CODE]),
                 lambda: p.pair_to_show(PROMPT, [CODE, PROSE], strategy="nope")):
        with pytest.raises(InvalidInputError):  # call-time arguments: never ConfigError
            call()
    assert sqlite_store.get("u") == before and p.model.t == 1 and p.pending == 0
    with pytest.raises(UserIdError):
        Personalizer(head, sqlite_store, "../etc/passwd")
    with pytest.raises(ConfigError):
        Personalizer(head, sqlite_store, "u", beta=-1.0)
    with pytest.raises(ConfigError):
        Personalizer(head, sqlite_store, "w", model_options={"eta": -3})
    assert sqlite_store.users() == ["u"]


def test_batch_applies_at_once_and_commits_once(head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u")
    with p.batch():
        p.prefer(PROMPT, CODE, PROSE)
        p.prefer(PROMPT, CODE, PROSE)
        assert p.pending == 2 and p.model.t == 2           # decisions already see them
        assert sqlite_store.version("u") is None           # nothing committed yet
        assert p.score(PROMPT, [CODE])[0] > 0
    # one transaction, one journal record per observation: the counter counts observations
    assert p.pending == 0 and sqlite_store.get("u").updates == 2 and p.updates == 2
    assert len(sqlite_store.get("u").journal) == 2
    assert Personalizer(head, sqlite_store, "u").model.t == 2
    with pytest.raises(RuntimeError):
        with p.batch():
            p.thumb(PROMPT, CODE, up=True)
            raise RuntimeError("app crashed inside the block")
    assert Personalizer(head, sqlite_store, "u").model.t == 3     # flushed on the way out


def test_batch_replays_on_top_of_a_concurrent_writer(head, tmp_path):
    path = tmp_path / "s.sqlite"
    a = Personalizer(head, SQLiteStore(path), "u")
    b = Personalizer(head, SQLiteStore(path), "u")
    with a.batch():
        a.prefer(PROMPT, CODE, PROSE)
        b.prefer(PROMPT, PROSE, CODE)                     # commits while a holds pending work
        assert a.model.t == 2                             # reload + replay of a's pending one
    assert b.model.t == 2 and b.updates == 2


def test_reset_forgets_the_user(head, store):
    p = Personalizer(head, store, "u")
    p.prefer(PROMPT, CODE, PROSE)
    p.reset()
    assert store.get("u") is None and "u" not in store.users()
    assert p.model.t == 0 and not p.model.theta.any() and p.updates == 0
    p.thumb(PROMPT, CODE, up=True)                     # and it learns again from scratch
    assert store.get("u").updates == 1


def test_export_import_moves_a_user_between_devices(head, tmp_path):
    phone = Personalizer(head, SQLiteStore(tmp_path / "phone.sqlite"), "alice")
    for _ in range(3):
        phone.prefer(PROMPT, CODE, PROSE)
    blob = phone.export_state()
    laptop = Personalizer(head, FolderStore(tmp_path / "laptop"), "alice-laptop")
    laptop.import_state(blob)
    np.testing.assert_array_equal(laptop.model.theta, phone.model.theta)
    assert laptop.model.t == 3 and laptop.updates == 3        # the export's count comes along
    np.testing.assert_array_equal(laptop.score(PROMPT, [CODE, PROSE]), phone.score(PROMPT, [CODE, PROSE]))
    # a state from another head, a corrupt blob, a foreign blob: refused, nothing changes
    other = Personalizer(FakeHead(dim=64, salt=b"other"), SQLiteStore(tmp_path / "o.sqlite"), "x")
    with pytest.raises(HeadMismatchError):
        other.import_state(blob)
    bad = bytearray(blob)
    bad[40] ^= 1
    with pytest.raises(StateFormatError, match="checksum"):
        laptop.import_state(bytes(bad))
    with pytest.raises(StateFormatError):
        laptop.import_state(b"EOMDREC1" + b"\0" * 64)
    with pytest.raises(InvalidInputError):
        laptop.import_state("not bytes")
    assert other.updates == 0 and laptop.updates == 3
    # importing an older state never moves the counter backwards
    for _ in range(4):
        laptop.prefer(PROMPT, PROSE, CODE)
    assert laptop.updates == 7
    laptop.import_state(blob)
    assert laptop.updates == 7 and laptop.model.t == 3


def test_beta_paper_option(head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u", beta="paper", delta=0.1)
    assert p.beta == pytest.approx(np.sqrt(64) * np.log(1 / 0.1))
    p.prefer(PROMPT, CODE, PROSE)
    assert p.beta == pytest.approx(np.sqrt(64) * np.log(2 / 0.1))
    assert Personalizer(head, sqlite_store, "v").beta == 1.0
    with pytest.raises(ConfigError):
        Personalizer(head, sqlite_store, "v", beta="optimistic")


def test_model_options_apply_to_new_users_only(head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u", model_options={"dtype": "float64", "lam": 2.0})
    p.prefer(PROMPT, CODE, PROSE)
    assert p.model.dtype == "float64" and p.model.hyperparameters["lam"] == 2.0
    q = Personalizer(head, sqlite_store, "u", model_options={"lam": 5.0})
    assert q.model.hyperparameters["lam"] == 2.0           # the stored user keeps its own
    assert p.model.head_fingerprint == head.fingerprint     # bound to the head on creation


def test_default_budget_keeps_exact_for_small_heads_and_sketches_large_ones(sqlite_store):
    from edge_omd.personalizer import DEFAULT_BUDGET_BYTES
    small = Personalizer(FakeHead(dim=64), sqlite_store, "small")
    assert small.model.solver == "exact"
    big = FakeHead(dim=1536)             # exact would be 9 MiB > the 8 MiB default
    m = Personalizer(big, sqlite_store, "big").model
    assert m.solver == "sketch" and m.nbytes <= DEFAULT_BUDGET_BYTES
    for opts in ({"budget_bytes": None}, {"solver": "exact"}):   # exact, one argument away
        assert Personalizer(big, sqlite_store, "x", model_options=opts).model.solver == "exact"


def test_a_failed_commit_leaves_the_stored_and_the_cached_state_as_they_were(head, sqlite_store,
                                                                             monkeypatch):
    from edge_omd.store.sqlite import _SQLiteTx
    p = Personalizer(head, sqlite_store, "u")
    p.prefer(PROMPT, CODE, PROSE)
    before, theta = sqlite_store.get("u"), p.model.theta

    def disk_full(self, records):       # the model has learned inside the transaction...
        raise OSError("disk full")      # ...and the append fails

    monkeypatch.setattr(_SQLiteTx, "append", disk_full)
    with pytest.raises(OSError):
        p.prefer(PROMPT, PROSE, CODE)
    monkeypatch.undo()
    assert sqlite_store.get("u") == before
    assert [r.seq for r in sqlite_store.get("u").journal] == [r.seq for r in before.journal] == [1]
    np.testing.assert_array_equal(p.model.theta, theta)   # not the half-learned cache
    assert p.model.t == 1 and p.pending == 0 and p.updates == 1
    p.prefer(PROMPT, PROSE, CODE)
    assert p.updates == 2 and p.model.t == 2


# ------------------------------------------------------------------ typed errors for scalars

BAD_VERB_CALLS = {
    "thumb weight=None": lambda p: p.thumb(PROMPT, CODE, True, weight=None),
    "thumb weight='abc'": lambda p: p.thumb(PROMPT, CODE, True, weight="abc"),
    "thumb weight=True": lambda p: p.thumb(PROMPT, CODE, True, weight=True),
    "prefer weight=[1]": lambda p: p.prefer(PROMPT, CODE, PROSE, weight=[1.0]),
    "prefer weight=np.True_": lambda p: p.prefer(PROMPT, CODE, PROSE, weight=np.True_),
    "rank pessimism='1'": lambda p: p.rank(PROMPT, [CODE, PROSE], pessimism="1"),
    "rank pessimism=[]": lambda p: p.rank(PROMPT, [CODE, PROSE], pessimism=[]),
    "rank pessimism=inf": lambda p: p.rank(PROMPT, [CODE, PROSE], pessimism=float("inf")),
    "pair_to_show q='4'": lambda p: p.pair_to_show(PROMPT, [CODE, PROSE, "x"],
                                                 strategy="best_quantile", q="4"),
    "pair_to_show q=None": lambda p: p.pair_to_show(PROMPT, [CODE, PROSE, "x"],
                                                  strategy="best_quantile", q=None),
    "pair_to_show strategy=[]": lambda p: p.pair_to_show(PROMPT, [CODE, PROSE], strategy=[]),
    "queries_to_ask pool=None": lambda p: p.queries_to_ask(None, 2),
    "queries_to_ask pool=str": lambda p: p.queries_to_ask("abc", 2),
    "queries_to_ask k=True": lambda p: p.queries_to_ask([(PROMPT, [CODE, PROSE])], True),
}


@pytest.mark.parametrize("name", sorted(BAD_VERB_CALLS))
def test_bad_scalar_arguments_raise_typed_errors_and_change_nothing(name, head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u")
    p.thumb(PROMPT, CODE, up=True)
    before = sqlite_store.get("u")
    with pytest.raises(InvalidInputError):  # call-time arguments: never ConfigError
        BAD_VERB_CALLS[name](p)
    assert sqlite_store.get("u") == before and p.updates == 1 and p.pending == 0
    assert p.model.t == 1


def test_bool_weight_is_refused_in_batch_mode_too(head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u")
    with p.batch():
        with pytest.raises(InvalidInputError):
            p.thumb(PROMPT, CODE, True, weight=True)
        p.thumb(PROMPT, CODE, True, weight=2)        # an int weight is fine
        assert p.pending == 1
    assert p.updates == 1 and p.model.t == 1


@pytest.mark.parametrize("kwargs", [
    {"beta": None}, {"beta": "1.0"}, {"beta": True}, {"beta": [1.0]}, {"beta": float("nan")},
    {"beta": "paper", "delta": "x"}, {"beta": "paper", "delta": None}, {"delta": "x"},
    {"model_options": [1]}, {"model_options": "eta"}, {"model_options": {"bogus": 1}},
    {"model_options": {"dim": 3}}, {"model_options": {1: 2}}, {"seed": "abc"},
])
def test_bad_constructor_arguments_raise_config_error(kwargs, head, sqlite_store):
    with pytest.raises(ConfigError):
        Personalizer(head, sqlite_store, "bob", **kwargs)
    assert sqlite_store.users() == []


def test_good_scalar_arguments_still_work(head, sqlite_store):
    p = Personalizer(head, sqlite_store, "u", beta=np.float32(0.5), delta=np.float64(0.1),
                     model_options={"eta": 1}, seed=np.int64(3))
    p.thumb(PROMPT, CODE, True, weight=np.float32(0.5))
    p.prefer(PROMPT, CODE, PROSE, weight=3)
    assert p.updates == 2 and p.beta == 0.5
    assert len(p.rank(PROMPT, [CODE, PROSE], pessimism=np.int64(2))) == 2
    assert p.pair_to_show(PROMPT, [CODE, PROSE, "x"], strategy="best_quantile", q=2) [0] in (0, 1, 2)
    assert len(p.queries_to_ask(iter([(PROMPT, [CODE, PROSE])]), np.int64(1))) == 1
    assert Personalizer(head, sqlite_store, "v", beta="paper", delta=0.1).beta > 0
