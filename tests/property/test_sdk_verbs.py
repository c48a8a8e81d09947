"""Property tests (hypothesis) over the Personalizer's verbs (with the fake head of
tests/sdk/fakes.py) and the stores' (SQLiteStore, FolderStore): hostile and unicode texts
(lone surrogates, NUL, empty), empty and duplicate candidates, wrong types, NaN/inf and huge
scalars, hostile user ids. Each call ends in a typed error (edge_omd.errors) or a correct
result; a refused call changes nothing in the store (its version and the user's model bytes).
Examples per property: tests/property/_hyp.py (quick / long mode, EDGE_OMD_LONG=1).
"""
import itertools
import math
import numbers
import re
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_omd import EdgeOMDError, NumericalError, RewardModel
from edge_omd.personalizer import Personalizer, Query, Ranked
from edge_omd.store import FolderStore, SQLiteStore, UserIdError
from tests import solvers
from tests.property import oracle
from tests.property._hyp import examples, scalars
from tests.sdk.fakes import FakeHead

DIM = 8
HEAD = FakeHead(dim=DIM)
_ids = itertools.count()


@pytest.fixture(scope="module")
def stores():
    tmp = tempfile.mkdtemp()
    out = {"sqlite": SQLiteStore(f"{tmp}/s.sqlite", durable="normal"),
           "folder": FolderStore(f"{tmp}/users", durable="normal")}
    yield out
    for s in out.values():
        s.close()
    shutil.rmtree(tmp, ignore_errors=True)


texts = st.one_of(st.text(max_size=12), st.sampled_from(
    ["", " ", "\ud800", "a\x00b", "naïve 日本語 🙂", "x" * 300, "python code snippet", "prose"]))
any_text = st.one_of(texts, texts, st.none(), st.binary(max_size=4), st.integers())
responses = st.one_of(
    st.lists(texts, max_size=5), st.lists(st.sampled_from(["a", "b", "c"]), min_size=15, max_size=18), st.lists(st.sampled_from(["same", "same", "other"]), max_size=4),
    st.tuples(texts, texts), st.lists(any_text, max_size=3), texts, st.none())
weights = st.one_of(st.floats(0.1, 3.0), scalars)


def _text(x):
    """The verbs' text rule (edge_omd/_checks.py): a str with a non-whitespace character."""
    return isinstance(x, str) and x != "" and not x.isspace()


def _is_str_seq(r, at_least):
    return isinstance(r, (list, tuple)) and all(_text(x) for x in r) and len(r) >= at_least


@st.composite
def calls(draw):
    """(name, kwargs, valid) of one Personalizer call."""
    name = draw(st.sampled_from(["thumb", "prefer", "pick", "score", "rank", "pair_to_show",
                                 "queries_to_ask", "import_state"]))
    if name == "thumb":
        kw = dict(prompt=draw(any_text), response=draw(any_text),
                  up=draw(st.one_of(st.booleans(), scalars)), weight=draw(weights))
        ok = (_text(kw["prompt"]) and _text(kw["response"])
              and oracle.flag(kw["up"]) is not None and oracle.weight(kw["weight"]) is not None)
    elif name == "prefer":
        kw = dict(prompt=draw(any_text), chosen=draw(any_text), rejected=draw(any_text),
                  weight=draw(weights))
        ok = (all(_text(kw[k]) for k in ("prompt", "chosen", "rejected"))
              and kw["chosen"] != kw["rejected"] and oracle.weight(kw["weight"]) is not None)
    elif name == "pick":
        kw = dict(prompt=draw(any_text), responses=draw(responses),
                  picked=draw(st.one_of(st.integers(-1, 5), scalars)), weight=draw(weights))
        r = kw["responses"]
        ok = (_text(kw["prompt"]) and _is_str_seq(r, 2) and len(r) <= oracle.MAX_K
              and oracle.index(kw["picked"], len(r)) is not None
              and oracle.weight(kw["weight"]) is not None)
    elif name in ("score", "rank"):
        kw = dict(prompt=draw(any_text), responses=draw(responses))
        ok = _text(kw["prompt"]) and _is_str_seq(kw["responses"], 1)
        if name == "rank" and draw(st.booleans()):
            kw["pessimism"] = draw(st.one_of(st.floats(0, 3), scalars))
            v = oracle.real(kw["pessimism"])
            ok = ok and v is not None and v >= 0
    elif name == "pair_to_show":
        kw = dict(prompt=draw(any_text), responses=draw(responses),
                  strategy=draw(st.sampled_from(["ucb", "best_quantile", "best_second",
                                                 "best_worst", "random", "UCB", "", None])),
                  q=draw(st.one_of(st.floats(1, 8), st.just(math.inf), scalars)))
        q = kw["q"]
        try:
            q_ok = (isinstance(q, numbers.Real) and not isinstance(q, (bool, np.bool_))
                    and float(q) >= 1)      # inf allowed, NaN not
        except OverflowError:               # an int beyond float's range
            q_ok = False
        ok = (_text(kw["prompt"]) and _is_str_seq(kw["responses"], 2) and q_ok
              and kw["strategy"] in ("ucb", "best_quantile", "best_second", "best_worst", "random"))
    elif name == "queries_to_ask":
        pool = draw(st.lists(st.tuples(any_text, responses), max_size=3))
        kw = dict(pool=pool, k=draw(st.one_of(st.integers(-1, 4), scalars)),
                  strategy=draw(st.sampled_from(["width", "best_worst", "ucb", None])))
        ok = (all(_text(p) and _is_str_seq(r, 2) for p, r in pool)
              and oracle.flag(kw["k"]) is None and isinstance(kw["k"], (int, np.integer))
              and kw["k"] >= 0 and kw["strategy"] in ("width", "best_worst"))
    else:
        kw = dict(blob=draw(st.one_of(st.binary(max_size=64), st.just(b"EOMDUSR1" + bytes(20)),
                                      st.none(), st.text(max_size=8))))
        ok = False   # no real export here: every blob is foreign or corrupt
    return name, kw, ok


def _snapshot(p, store):
    return store.version(p.user_id), p.model.to_bytes()


def _check_result(name, kw, out):
    if name == "score":
        n = len(kw["responses"])
        assert out.shape == (n,) and out.dtype == np.float64 and np.isfinite(out).all()
    elif name == "rank":
        n = len(kw["responses"])
        assert sorted(r.index for r in out) == list(range(n))
        assert all(isinstance(r, Ranked) and r.response == kw["responses"][r.index] for r in out)
        scores = [r.score for r in out]
        assert all(np.isfinite(scores)) and scores == sorted(scores, reverse=True)
    elif name == "pair_to_show":
        i, j = out
        assert i != j and 0 <= i < len(kw["responses"]) and 0 <= j < len(kw["responses"])
    elif name == "queries_to_ask":
        assert len(out) <= kw["k"]
        for q in out:
            assert isinstance(q, Query) and q.first != q.second and np.isfinite(q.width)
            assert 0 <= q.first < len(kw["pool"][q.item][1]) and 0 <= q.second < len(kw["pool"][q.item][1])


@examples(80)
@given(kind=st.sampled_from(["sqlite", "folder"]), model=st.sampled_from(solvers.grid()),
       ops=st.lists(calls(), min_size=1, max_size=4))
def test_personalizer_verbs(stores, kind, model, ops):
    store = stores[kind]
    s, dt = model
    p = Personalizer(HEAD, store, f"u{next(_ids)}",
                     model_options=solvers.options(s, DIM, dtype=dt), seed=0)
    p.prefer("warm up", "python code snippet", "long prose answer")
    for name, kw, ok in ops:
        before = _snapshot(p, store)
        try:
            out, err = getattr(p, name)(**kw), None
        except EdgeOMDError as e:
            out, err = None, e
        if not ok:
            assert err is not None, f"{name}({kw!r:.300}) was accepted"
            assert _snapshot(p, store) == before, f"refused {name} changed the store"
            continue
        if err is not None:
            assert isinstance(err, NumericalError), f"{name}({kw!r:.300}) refused: {err!r}"
            assert _snapshot(p, store) == before
            continue
        after = _snapshot(p, store)
        if name in ("thumb", "prefer", "pick"):
            assert after[0][1] == before[0][1] + 1 and p.updates == after[0][1]
        else:
            assert after == before, f"{name} changed the store"
            _check_result(name, kw, out)
    m = RewardModel.from_bytes(p.model.to_bytes())     # the user's state stays usable
    assert np.isfinite(m.theta).all()


_VALID_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
user_ids = st.one_of(
    st.from_regex(_VALID_ID, fullmatch=True),
    st.text(max_size=140), st.sampled_from(["", ".", "..", "../etc", "a/b", "a\\b", "a\x00", "é",
                                            "a" * 128, "a" * 129, "CON", "-a", "_a", "a\n"]),
    st.none(), st.integers(), st.binary(max_size=8))


@examples(80)
@given(kind=st.sampled_from(["sqlite", "folder"]), uid=user_ids,
       returns=st.sampled_from(["state", "str", "none"]))
def test_store_verbs_with_hostile_user_ids(stores, kind, uid, returns):
    store = stores[kind]
    state = RewardModel(DIM).to_bytes()
    others = {u: store.version(u) for u in store.users()}
    valid = isinstance(uid, str) and _VALID_ID.fullmatch(uid) is not None
    value = {"state": state, "str": "not bytes", "none": None}[returns]

    def attempt(fn):
        try:
            return fn(), None
        except EdgeOMDError as e:
            return None, e
    _, err = attempt(lambda: store.update(uid, lambda rec: value, head_fingerprint=HEAD.fingerprint,
                                          dim=DIM))
    if not valid:
        assert isinstance(err, UserIdError), (uid, err)
        for fn in (lambda: store.get(uid), lambda: store.delete(uid), lambda: store.version(uid)):
            _, e = attempt(fn)
            assert isinstance(e, UserIdError)
        assert {u: store.version(u) for u in store.users()} == others
        return
    had = uid in others
    if returns != "state":
        assert err is not None      # StoreError: the function returned no bytes
        assert {u: store.version(u) for u in store.users()} == others
        return
    assert err is None, err
    rec = store.get(uid)
    assert rec.state == state and uid in store.users()
    assert {u: v for u, v in ((u, store.version(u)) for u in store.users()) if u != uid} == \
        {u: v for u, v in others.items() if u != uid}
    assert store.delete(uid) is True and store.get(uid) is None and uid not in store.users()
    assert store.delete(uid) is False
    del had
