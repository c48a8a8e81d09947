"""The population pack as an artefact and as a new user's start (issue 19, items 1-3):
its file (EOMDPOP1, CRC, bound to the head), old prior files loading as packs, the start the
solvers hold, and the Personalizer wiring (new users and reset start there, the record keeps
the pack's digest, the model's lam is the pack's)."""
import numpy as np
import pytest

from edge_omd import RewardModel, SQLiteStore
from edge_omd.errors import ConfigError, StateFormatError
from edge_omd.personalizer import Personalizer
from edge_omd.population import Pack, load
from edge_omd.prior import fit_prior
from tests.sdk.fakes import FakeHead

D = 8


def _pack(d=D, K=2, fingerprint=None, seed=0):
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.normal(size=(d, K)))[0].T
    s = np.array([9.0, 4.0][:K])
    return Pack(rng.normal(size=d) * 0.3, lam=0.5, c=9.0 * (1 + 1e-13), V=np.sqrt(s)[:, None] * Q,
                sign=-1.0, pack_id="test-v1", fingerprint=fingerprint, fit={"kind": "test"})


def test_the_file_round_trips_and_every_damage_is_refused(tmp_path):
    p = _pack()
    b = p.to_bytes()
    q = Pack.from_bytes(b)
    assert q == p and q.to_bytes() == b and q.digest == p.digest and len(p.digest) == 32
    assert q.pack_id == "test-v1" and q.fit == {"kind": "test"} and q.K == 2 and q.sign == -1.0
    p.save(tmp_path / "a.pack")
    assert load(tmp_path / "a.pack") == p
    for i in range(0, len(b), max(1, len(b) // 97)):                 # every byte flip
        bad = bytearray(b)
        bad[i] ^= 0x40
        with pytest.raises(StateFormatError):
            Pack.from_bytes(bytes(bad))
    for n in (0, 8, 12, len(b) - 1):                               # truncations
        with pytest.raises(StateFormatError):
            Pack.from_bytes(b[:n])
    with pytest.raises(StateFormatError):
        Pack.from_bytes("not bytes")


def test_the_pack_is_checked_when_built():
    p = _pack()
    with pytest.raises(ConfigError, match="above c"):            # weaker than lam I
        Pack(p.theta0, 0.5, 1.0, p.V, -1.0)
    with pytest.raises(ConfigError, match="sign"):
        Pack(p.theta0, 0.5, 9.0, p.V, 0.5)
    with pytest.raises(ConfigError, match="NaN"):
        Pack(np.full(D, np.nan), 0.5, 9.0, p.V, -1.0)
    with pytest.raises(ConfigError, match="fit"):
        Pack(p.theta0, 0.5, 9.0, p.V, -1.0, fit={"x": float("inf")})
    # cal_H_0: lam + c - s_k along the directions, lam + c elsewhere
    H = p.precision()
    e = np.sort(np.linalg.eigvalsh(H))
    np.testing.assert_allclose(e[:2], [0.5 + 9.0 * (1 + 1e-13) - 9.0, 0.5 + 9.0 * (1 + 1e-13) - 4.0],
                               rtol=1e-9)
    np.testing.assert_allclose(e[2:], 9.5, rtol=1e-9)


def test_an_old_prior_file_loads_as_the_same_start(tmp_path):
    rng = np.random.default_rng(1)
    prior = fit_prior(rng.normal(size=(60, D)) + 0.5, rank=2, strength=3.0)
    prior.save(tmp_path / "old.prior")
    pack = load(tmp_path / "old.prior")
    assert pack.sign == 1.0 and pack.lam == prior.lam and pack.fit["strength"] == 3.0
    theta0, c, V = prior.start()
    np.testing.assert_array_equal(pack.theta0, theta0)
    assert pack.c == c
    np.testing.assert_array_equal(pack.V, V)
    a = RewardModel(D, prior=prior, dtype="float64")
    b = RewardModel(D, population=pack, dtype="float64")
    assert a.to_bytes() == b.to_bytes()


def test_a_model_starts_at_the_pack_and_resets_there():
    p = _pack()
    m = RewardModel(D, population=p, lam=0.5, dtype="float64", solver="exact")
    np.testing.assert_allclose(m.theta, p.theta0, rtol=0, atol=1e-15)
    H = np.stack([m._solver.matvec(e) for e in np.eye(D)])
    np.testing.assert_allclose(H, p.precision(), rtol=1e-12, atol=1e-12)
    m.learn_pair(np.eye(D)[0], np.eye(D)[1])
    m.reset()
    np.testing.assert_allclose(m.theta, p.theta0, rtol=0, atol=1e-15)
    with pytest.raises(ConfigError, match="lam"):
        RewardModel(D, population=p)                            # the model's lam is 1
    with pytest.raises(ConfigError, match="budget"):            # the sketch cannot hold sign -1
        RewardModel(D, population=p, lam=0.5, solver="sketch", sketch_rank=4)
    with pytest.raises(ConfigError, match="once"):
        RewardModel(D, population=p, prior=p, lam=0.5)


def test_a_new_user_starts_from_the_pack_and_the_record_keeps_its_digest(tmp_path):
    head = FakeHead(dim=D)
    p = _pack(fingerprint=bytes(head.fingerprint))
    store = SQLiteStore(tmp_path / "s.sqlite")
    u = Personalizer(head, store, "ann", population=p)
    assert u.model.config.lam == p.lam                          # the pack's lam
    np.testing.assert_allclose(u.model.theta, p.theta0, atol=1e-7)
    u.prefer("a prompt", "a good answer", "a bad one")
    assert store.get("ann").pack_digest == p.digest == u.pack_digest
    blob = u.export_state()
    v = Personalizer(head, SQLiteStore(tmp_path / "t.sqlite"), "ann")
    v.import_state(blob)
    assert v.pack_digest == p.digest                          # the export carries it
    u.reset()
    np.testing.assert_allclose(u.model.theta, p.theta0, atol=1e-7)
    # without a pack: as before packs existed
    w = Personalizer(head, store, "bob")
    w.thumb("a prompt", "an answer", up=True)
    assert store.get("bob").pack_digest is None and w.pack_digest is None
    # a pack of another head is refused before anything is written
    with pytest.raises(ConfigError, match="another head"):
        Personalizer(head, store, "cy", population=_pack(fingerprint=bytes(32)))
    assert "cy" not in store.users()
    with pytest.raises(ConfigError, match="lam"):
        Personalizer(head, store, "cy", population=p, model_options={"lam": 1.0})
