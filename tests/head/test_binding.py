"""The one head-binding check (edge_omd/head/binding.py) and every place that pairs a state with
a head: each refuses with the same rule and the same words, because each calls it."""
import pytest

from edge_omd import FolderStore, Personalizer, RewardModel, SQLiteStore
from edge_omd.errors import HeadMismatchError, InvalidInputError
from edge_omd.head.binding import bind, check_binding
from edge_omd.store import StoreRecord, check_stored_head
from tests.sdk.fakes import FakeHead

A, B = bytes(range(32)), bytes(range(1, 33))
OTHER_HEAD = "features from different heads are not comparable"   # check_binding's words
OTHER_DIM = "but the feature head gives dim"


def test_the_rule():
    check_binding(A, 8, A, 8)
    check_binding(None, 8, A, 8)            # an unbound state fits any head of its dim
    check_binding(A, 8, None, 8)            # a head without a fingerprint checks the dim only
    check_binding(bytearray(A), 8, memoryview(A), 8)
    with pytest.raises(HeadMismatchError, match=OTHER_HEAD):
        check_binding(A, 8, B, 8)
    with pytest.raises(HeadMismatchError, match="dim 8 " + OTHER_DIM + " 9"):
        check_binding(A, 8, A, 9)
    with pytest.raises(HeadMismatchError, match=OTHER_DIM):
        check_binding(None, 8, None, 9)
    with pytest.raises(HeadMismatchError, match="user 'u': the stored state was learned on"):
        check_binding(A, 8, B, 8, what="user 'u': the stored state")
    with pytest.raises(HeadMismatchError, match=OTHER_HEAD):
        check_binding("not bytes", 8, A, 8)


def test_bind_binds_an_unbound_model_and_refuses_without_changing_it():
    m = RewardModel(8)
    bind(m, A, 8)
    assert m.head_fingerprint == A
    bind(m, A, 8)                                           # the same head again: fine
    before = m.to_bytes()
    with pytest.raises(HeadMismatchError, match=OTHER_HEAD):
        bind(m, B, 8)
    with pytest.raises(HeadMismatchError, match=OTHER_DIM):
        bind(RewardModel(8), A, 9)
    assert m.to_bytes() == before and m.head_fingerprint == A
    with pytest.raises(InvalidInputError):
        bind(object(), A, 8)


def test_every_site_says_it_with_the_one_check(tmp_path):
    # RewardModel.bind_head
    m = RewardModel(64)
    m.bind_head(A)
    with pytest.raises(HeadMismatchError, match=OTHER_HEAD):
        m.bind_head(B)
    # the test fake (FakeHead.check) and the real FeatureHead.check both call binding.bind
    head, other = FakeHead(dim=64), FakeHead(dim=64, salt=b"another head")
    m = RewardModel(64)
    head.check(m)
    assert m.head_fingerprint == head.fingerprint
    with pytest.raises(HeadMismatchError, match=OTHER_HEAD):
        other.check(m)
    with pytest.raises(HeadMismatchError, match=OTHER_DIM):
        FakeHead(dim=32).check(m)
    # the stores: one record and the whole store (SQLite reads only the small columns)
    rec = StoreRecord("u", A, 64, 2, b"", 0, 0.0, 0.0)
    with pytest.raises(HeadMismatchError, match="user 'u': the stored state was learned on"):
        rec.check_head(B, 64)
    with pytest.raises(HeadMismatchError, match=OTHER_DIM):
        check_stored_head("u", 2, A, 64, A, 32)
    for store in (SQLiteStore(tmp_path / "s.sqlite"), FolderStore(tmp_path / "f")):
        p = Personalizer(head, store, "ann")
        p.thumb("p", "a response", up=True)
        with pytest.raises(HeadMismatchError, match="user 'ann': the stored state was learned on"):
            store.check_head(other.fingerprint, 64)
        with pytest.raises(HeadMismatchError, match=OTHER_DIM):
            store.check_head(head.fingerprint, 32)
        # Personalizer.import_state: the blob's (fingerprint, dim) against this head
        blob = p.export_state()
        q = Personalizer(other, store, "bob")
        before = store.get("bob")
        with pytest.raises(HeadMismatchError, match=OTHER_HEAD):
            q.import_state(blob)
        with pytest.raises(HeadMismatchError, match=OTHER_DIM):
            Personalizer(FakeHead(dim=32), store, "cy").import_state(blob)
        assert store.get("bob") == before                  # refusing wrote nothing
        store.close()
