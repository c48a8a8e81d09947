"""A new pack for existing users (issue 19, item 4): the migration's algebra (a user who
learned nothing lands on the new pack's start; there and back is the identity; the result is
the Gaussian prior swap), what each solver can do, and the one registry path with heads: a
stored user on the current head moves to the current pack once, in one store transaction, a
user on an old head keeps head and pack until reset."""
import hashlib

import numpy as np
import pytest

from edge_omd import RewardModel
from edge_omd.errors import ConfigError
from edge_omd.head import ArrayHead, HeadRegistry
from edge_omd.personalizer import Personalizer
from edge_omd.population import Pack
from edge_omd.population.migrate import migrate
from edge_omd.store import FolderStore, SQLiteStore

D = 12


def _pack(seed, lam=0.5, fingerprint=None, K=3):
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.normal(size=(D, K)))[0].T
    s = np.array([8.0, 4.0, 1.0][:K])
    return Pack(rng.normal(size=D) * 0.5, lam, 8.5, np.sqrt(s)[:, None] * Q, -1.0,
                f"p{seed}", fingerprint)


def _learn(m, n=40, seed=3):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        m.learn_one(rng.normal(size=D) / 3.0, float(rng.random() < 0.6))


def _H(m):
    return m._curvature()


@pytest.mark.parametrize("solver", ["exact", "cg", "diagonal"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_untouched_user_lands_on_the_new_start_and_back_is_the_identity(solver, dtype):
    p1, p2 = _pack(1), _pack(2, lam=0.2)
    tol = 1e-12 if dtype == "float64" else 1e-5
    m = RewardModel(D, population=p1, lam=p1.lam, solver=solver, dtype=dtype)
    fresh = RewardModel(D, population=p2, lam=p2.lam, solver=solver, dtype=dtype)
    moved = migrate(m, p1, p2)
    assert moved.config.lam == p2.lam and moved.population is p2 and moved.t == 0
    np.testing.assert_allclose(moved.theta, fresh.theta, atol=tol * 10)
    np.testing.assert_allclose(_H(moved), _H(fresh), atol=tol * 100)
    _learn(m)
    moved = migrate(m, p1, p2)
    back = migrate(moved, p2, p1)
    assert moved.t == m.t == back.t == 40
    np.testing.assert_allclose(back.theta, m.theta, atol=tol * 100)
    np.testing.assert_allclose(_H(back), _H(m), atol=tol * 1000)
    moved.reset()                                   # a moved user resets to the new pack
    np.testing.assert_allclose(moved.theta, fresh.theta, atol=tol * 10)


def test_the_move_swaps_the_gaussian_prior_and_keeps_the_evidence():
    p1, p2 = _pack(1), _pack(2, lam=0.2)
    m = RewardModel(D, population=p1, lam=p1.lam, solver="exact", dtype="float64")
    _learn(m)
    H_t, theta_t = _H(m), m.theta
    moved = migrate(m, p1, p2)
    P1, P2 = p1.precision(), p2.precision()
    H2 = H_t - P1 + P2
    np.testing.assert_allclose(_H(moved), H2, atol=1e-10)
    want = np.linalg.solve(H2, H_t @ theta_t - P1 @ p1.theta0 + P2 @ p2.theta0)
    np.testing.assert_allclose(moved.theta, want, atol=1e-10)
    # no pack at either end: theta = 0, cal_H_0 = lam I
    cold = RewardModel(D, lam=0.2, solver="exact", dtype="float64")
    _learn(cold)
    onto = migrate(cold, None, p2)
    H = _H(cold) - 0.2 * np.eye(D) + P2
    np.testing.assert_allclose(_H(onto), H, atol=1e-10)
    np.testing.assert_allclose(onto.theta, np.linalg.solve(H, _H(cold) @ cold.theta + P2 @ p2.theta0),
                               atol=1e-10)


def test_a_floor_keeps_the_state_loadable_where_forgetting_made_the_evidence_indefinite():
    p1, p2 = _pack(1, lam=0.5), _pack(2, lam=0.5)
    m = RewardModel(D, population=p1, lam=p1.lam, solver="cg", forget=0.9, dtype="float64")
    _learn(m, n=60)
    moved = migrate(m, p1, p2)
    assert np.linalg.eigvalsh(_H(moved)).min() >= 0.5 * (1 - 1e-9)
    RewardModel.from_bytes(moved.to_bytes())       # the loader accepts it


def test_what_cannot_move_is_refused_and_nothing_changes():
    p1, p2 = _pack(1), _pack(2)
    m = RewardModel(D, population=p1, lam=p1.lam, solver="exact", dtype="float64")
    before = m.to_bytes()
    with pytest.raises(ConfigError, match="lam"):              # not learned against p1
        migrate(RewardModel(D, lam=1.0), p1, p2)
    with pytest.raises(ConfigError, match="dim"):
        migrate(m, p1, Pack(np.zeros(D + 1), 0.5, 0.0, np.zeros((0, D + 1))))
    with pytest.raises(ConfigError, match="head"):
        fp = bytes(range(32))
        bound = RewardModel(D, population=p1, lam=p1.lam, head_fingerprint=fp)
        migrate(bound, p1, _pack(2, fingerprint=bytes(32)))
    sk = RewardModel(D, lam=p1.lam, solver="sketch", sketch_rank=4)
    with pytest.raises(ConfigError, match="sketch"):
        migrate(sk, None, p2)
    assert m.to_bytes() == before


def _seed(*texts):
    return int.from_bytes(hashlib.sha256("\0".join(texts).encode()).digest()[:8], "little")


def _head(name="h"):
    return ArrayHead(D, name, lambda p, rs: np.stack([
        np.random.default_rng(_seed(p, r)).normal(size=D) for r in rs]))


@pytest.mark.parametrize("store_kind", ["sqlite", "folder"])
def test_the_registry_moves_a_stored_user_to_the_new_pack_once(tmp_path, store_kind):
    head = _head()
    fp = head.fingerprint
    p1, p2 = _pack(1, fingerprint=fp), _pack(2, lam=0.2, fingerprint=fp)
    store = (SQLiteStore(str(tmp_path / "s.sqlite")) if store_kind == "sqlite"
             else FolderStore(str(tmp_path / "users")))
    with store:
        p = Personalizer(head, store, "ann", population=p1)
        for k in range(6):
            p.thumb(f"q{k}", f"answer {k}", k % 2 == 0)
        p.close()
        learned = p.model
        cold = Personalizer(head, store, "cy")               # learned before any pack
        cold.thumb("q", "a", True)
        assert store.get("ann").pack_digest == p1.digest and store.get("cy").pack_digest is None
        updates = p.updates
        # the vendor ships p2: without p1 registered the record's pack is unknown
        with pytest.raises(ConfigError, match="not registered"):
            HeadRegistry(head, packs=[p2]).personalizer(store, "ann")
        assert store.get("ann").pack_digest == p1.digest     # nothing written
        reg = HeadRegistry(head, packs=[p2, p1])
        pa = reg.personalizer(store, "ann")
        rec = store.get("ann")
        assert rec.pack_digest == p2.digest and pa.pack_digest == p2.digest
        assert pa.updates == updates                         # the count is kept
        want = migrate(learned, p1, p2)
        np.testing.assert_allclose(pa.model.theta, want.theta, atol=1e-6)
        state = rec.state
        again = reg.personalizer(store, "ann")               # once: nothing more written
        assert store.get("ann").state == state and again.pack_digest == p2.digest
        pa.thumb("q9", "more", True)                      # and keeps learning
        assert reg.move_users(store) == ["cy"]               # the cold user too, once
        assert store.get("cy").pack_digest == p2.digest and reg.move_users(store) == []
        with pytest.raises(ConfigError, match="registry"):
            reg.personalizer(store, "ann", population=p2)
        fresh = reg.reset(store, "ann")                      # a reset starts at the pack
        np.testing.assert_allclose(fresh.model.theta, p2.theta0, atol=1e-6)


def test_a_user_on_an_old_head_keeps_head_and_pack_until_reset(tmp_path):
    old, new = _head("old"), _head("new")
    p_old = _pack(1, fingerprint=old.fingerprint)
    p_new = _pack(2, lam=0.2, fingerprint=new.fingerprint)
    with SQLiteStore(str(tmp_path / "s.sqlite")) as store:
        p = Personalizer(old, store, "ann", population=p_old)
        p.thumb("q", "a", True)
        state = store.get("ann").state
        with pytest.raises(ConfigError, match="current head"):
            HeadRegistry(new, old, packs=[p_old])
        reg = HeadRegistry(new, old, packs=[p_new, p_old])
        pa = reg.personalizer(store, "ann")
        assert pa.head is old and pa.population is p_old
        assert store.get("ann").state == state and store.get("ann").pack_digest == p_old.digest
        assert reg.move_users(store) == []
        pr = reg.reset(store, "ann")                         # head and pack change together
        assert pr.head is new and pr.population is p_new
        pr.thumb("q", "a", True)
        rec = store.get("ann")
        assert rec.head_fingerprint == new.fingerprint and rec.pack_digest == p_new.digest
