"""One text rule for every Personalizer verb (edge_omd/_checks.py, `text`): the prompt and every
answer hold a non-whitespace character, whether the verb learns (feedback, prefer, choose,
shown) or decides (score, rank, pair_to_show, queries_to_ask). A refused call stores nothing.
A feature head itself takes any str (phi of the empty text is defined)."""
import numpy as np
import pytest

from edge_omd import InvalidInputError
from edge_omd.head.protocol import ArrayHead
from edge_omd.personalizer import Personalizer
from edge_omd.store import FolderStore, SQLiteStore
from tests.sdk.fakes import FakeHead

BLANKS = ["", " ", "\n\t ", "\u3000"]
P, A, B = "how do I boil an egg", "boil it for nine minutes", "fry it"


@pytest.fixture(params=["sqlite", "folder"])
def p(request, tmp_path):
    store = (SQLiteStore(tmp_path / "s.sqlite") if request.param == "sqlite"
             else FolderStore(tmp_path / "f"))
    yield Personalizer(FakeHead(dim=16), store, "u")
    store.close()


def _calls(blank):
    return {
        "rank answer": lambda p: p.rank(P, [blank, B]),
        "rank prompt": lambda p: p.rank(blank, [A, B]),
        "score answer": lambda p: p.score(P, [A, blank]),
        "pair_to_show answer": lambda p: p.pair_to_show(P, [A, B, blank]),
        "queries_to_ask answer": lambda p: p.queries_to_ask([(P, [A, blank])], 1),
        "queries_to_ask prompt": lambda p: p.queries_to_ask([(blank, [A, B])], 1),
        "feedback answer": lambda p: p.thumb(P, blank, True),
        "feedback prompt": lambda p: p.thumb(blank, A, True),
        "feedback shown": lambda p: p.thumb(P, A, True, shown=[B, blank]),
        "prefer chosen": lambda p: p.prefer(P, blank, B),
        "prefer rejected": lambda p: p.prefer(P, A, blank),
        "choose answer": lambda p: p.pick(P, [A, B, blank], 0),
    }


@pytest.mark.parametrize("blank", BLANKS)
def test_every_verb_refuses_a_blank_text_and_stores_nothing(p, blank):
    p.prefer(P, A, B)
    before = (p.store.version("u"), p.model.to_bytes())
    for name, call in _calls(blank).items():
        with pytest.raises(InvalidInputError, match="empty|only whitespace"):
            call(p)
        assert (p.store.version("u"), p.model.to_bytes()) == before, name


def test_what_rank_offers_feedback_accepts(p):
    """Every answer rank returns can be learned from: the two verbs share one rule."""
    for r in p.rank(P, [A, B, "  a short one  "]):
        p.thumb(P, r.response, True)
    assert p.updates == 3


def test_a_head_takes_any_str():
    head = ArrayHead(4, "ones", lambda prompt, responses: np.ones((len(responses), 4)))
    assert head.features("", ["", " "]).shape == (2, 4)
