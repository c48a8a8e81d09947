"""The head protocol, ArrayHead (features the app computes itself) and the HeadRegistry
migration (issue 11 items 6 and 8). numpy only: runs in the quick suite."""
import hashlib

import numpy as np
import pytest

from edge_omd import RewardModel
from edge_omd.errors import ConfigError, HeadError, HeadMismatchError, InvalidInputError
from edge_omd.head import ArrayHead, HeadProtocol, HeadRegistry
from edge_omd.personalizer import Personalizer
from edge_omd.store import FolderStore, SQLiteStore

D = 16


def hidden_states(prompt, responses):
    """A stand-in for the app's own LLM: a deterministic pooled 'hidden state' per answer,
    longer answers pointing one way (so a user who likes long answers is learnable)."""
    out = []
    for r in responses:
        seed = int.from_bytes(hashlib.sha256((prompt + "\x00" + r).encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(D) * 0.3
        v[0] += len(r.split()) / 5.0
        out.append(v)
    return np.stack(out).astype(np.float64) * 7.0   # not unit norm: the adapter normalises


def test_array_head_satisfies_the_protocol():
    head = ArrayHead(D, "test-llm/layer-2/response-mean", hidden_states)
    assert isinstance(head, HeadProtocol)
    phi = head.features("p", ["a b c", "a"])
    assert phi.dtype == np.float32 and phi.shape == (2, D)
    np.testing.assert_allclose(np.linalg.norm(phi, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(phi, head.features("p", ["a b c", "a"]))
    assert len(head.fingerprint) == 32
    # the fingerprint names the feature map: another name, dim or normalisation is another head
    assert ArrayHead(D, "test-llm/layer-2/response-mean", hidden_states).fingerprint == head.fingerprint
    assert ArrayHead(D, "test-llm/layer-3/response-mean", hidden_states).fingerprint != head.fingerprint
    assert ArrayHead(D, "test-llm/layer-2/response-mean", hidden_states,
                     normalize=False).fingerprint != head.fingerprint
    raw = ArrayHead(D, "raw", hidden_states, normalize=False).features("p", ["a"])
    np.testing.assert_allclose(raw, hidden_states("p", ["a"]).astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "16"])
def test_array_head_refuses_bad_dim(bad):
    with pytest.raises(ConfigError):
        ArrayHead(bad, "x", hidden_states)


def test_array_head_refuses_bad_config_and_input():
    with pytest.raises(ConfigError):
        ArrayHead(D, "", hidden_states)
    with pytest.raises(ConfigError):
        ArrayHead(D, "x", "not callable")
    head = ArrayHead(D, "x", hidden_states)
    for prompt, responses in ((1, ["a"]), ("p", "a"), ("p", []), ("p", ["a", 2])):
        with pytest.raises(InvalidInputError):
            head.features(prompt, responses)
    for fn in (lambda p, rs: np.zeros((len(rs), D + 1)),
               lambda p, rs: np.full((len(rs), D), np.nan),
               lambda p, rs: np.zeros((len(rs) + 1, D)),
               lambda p, rs: [["a"] * D for _ in rs]):
        with pytest.raises(HeadError):
            ArrayHead(D, "broken", fn).features("p", ["a"])


def test_personalizer_runs_on_an_array_head(tmp_path):
    """No second model: the Personalizer learns from the app's own pooled hidden states,
    persists, reloads, and refuses the state under another feature map."""
    head = ArrayHead(D, "test-llm/layer-2/response-mean", hidden_states)
    long_, short = "one two three four five six seven eight", "one"
    with SQLiteStore(str(tmp_path / "s.sqlite")) as store:
        p = Personalizer(head, store, "alice")
        assert p.rank("q0", [short, long_])[0] is not None
        for k in range(12):
            p.prefer(f"q{k}", long_ + f" w{k}", short)
        p.close()
        p2 = Personalizer(head, store, "alice")
        assert p2.updates == 12
        s = p2.score("new question", [short, long_])
        assert s[1] > s[0]
        assert p2.model.head_fingerprint == head.fingerprint
        other = ArrayHead(D, "test-llm/layer-3/response-mean", hidden_states)
        with pytest.raises(HeadMismatchError, match="HeadRegistry"):
            Personalizer(other, store, "alice")
    # FeatureHead.check's twin: an unbound model is bound, a foreign one refused
    m = RewardModel(D)
    head.check(m)
    assert m.head_fingerprint == head.fingerprint
    with pytest.raises(HeadMismatchError):
        ArrayHead(D, "another", hidden_states).check(m)


# ------------------------------------------------------------------ migration (item 8)
@pytest.mark.parametrize("store_kind", ["sqlite", "folder"])
def test_registry_keeps_old_users_on_their_head(tmp_path, store_kind):
    old = ArrayHead(D, "model/mean", hidden_states)
    new = ArrayHead(D, "model/response-mean", lambda p, rs: hidden_states("", rs))
    store = (SQLiteStore(str(tmp_path / "s.sqlite")) if store_kind == "sqlite"
             else FolderStore(str(tmp_path / "users")))
    with store:
        # before the change: alice learns on the old head
        p = Personalizer(old, store, "alice")
        for k in range(5):
            p.prefer(f"q{k}", "a long answer here", "no")
        p.close()
        theta = p.model.theta.copy()
        # the default head changes: opening alice on it alone is a wall that names the way out
        with pytest.raises(HeadMismatchError, match="HeadRegistry"):
            Personalizer(new, store, "alice")
        reg = HeadRegistry(new, old)
        assert reg.current is new and reg.fingerprints == [new.fingerprint, old.fingerprint]
        assert reg.head_for(store, "alice") is old            # alice keeps her taste
        pa = reg.personalizer(store, "alice")
        np.testing.assert_array_equal(pa.model.theta, theta)
        pa.prefer("q9", "another long answer", "no")         # and keeps learning on it
        pa.close()
        assert reg.head_for(store, "bob") is new              # a new user gets the new head
        pb = reg.personalizer(store, "bob")
        pb.prefer("q0", "x y", "z")
        pb.close()
        assert reg.users_on(store) == {old.fingerprint.hex(): ["alice"],
                                       new.fingerprint.hex(): ["bob"]}
        # alice resets: she moves to the new head, nobody is left on the old one
        pr = reg.reset(store, "alice")
        assert pr.head is new and pr.updates == 0
        pr.prefer("q1", "long long answer", "no")
        pr.close()
        assert reg.users_on(store) == {new.fingerprint.hex(): ["alice", "bob"]}
        # a registry that lost the old head says so for users still bound to it
        p = Personalizer(old, store, "carol")
        p.prefer("q", "a b", "c")
        p.close()
        with pytest.raises(HeadMismatchError, match="not registered.*reset"):
            HeadRegistry(new).head_for(store, "carol")
        assert "unregistered:" + old.fingerprint.hex() in HeadRegistry(new).users_on(store)


def test_registry_refuses_duplicates_and_non_heads():
    h = ArrayHead(D, "a", hidden_states)
    with pytest.raises(ConfigError):
        HeadRegistry(h, ArrayHead(D, "a", hidden_states))
    with pytest.raises(ConfigError):
        HeadRegistry(object())
    with pytest.raises(HeadError):
        HeadRegistry("/nonexistent/head/folder")
