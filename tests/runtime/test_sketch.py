"""Robust Frequent Directions: the sketch's error against the exact local norm."""
import numpy as np
import pytest

from edge_omd import RewardModel


def _fed(solver, d, rows, rank=None):
    """Feed curvature rows through fantasize at theta = 0 (sigma' = 1/4 exactly)."""
    m = RewardModel(d, dtype="float64", solver=solver, sketch_rank=rank)
    for z in rows:
        m.fantasize(z)
    return m


@pytest.mark.parametrize("rank", [2, 4, 8])
def test_rfd_spectral_error_bound(rank):
    """0 <= A^T A - B^T B <= Delta I (FD), and RFD adds Delta/2 back: |H - H_sk| <= Delta/2."""
    d, n = 16, 200
    rng = np.random.default_rng(rank)
    # a decaying spectrum, as real feature differences have
    rows = rng.normal(size=(n, d)) * np.geomspace(1.0, 0.05, d)
    sk = _fed("sketch", d, rows, rank)
    H = 1.0 * np.eye(d) + 0.25 * rows.T @ rows
    st = sk._solver.state
    m = int(st.rows[0])
    H_sk = st.alpha[0] * np.eye(d) + st.B[:m].T @ st.B[:m]
    half_delta = st.alpha[0] - 1.0
    assert half_delta > 0  # the buffer did shrink
    ev = np.linalg.eigvalsh(H - H_sk)
    assert ev.min() >= -half_delta * (1 + 1e-9) - 1e-9
    assert ev.max() <= half_delta * (1 + 1e-9) + 1e-9
    # widths: the sketch's ||v||_{H_sk^-1} against the exact one, on the data's own directions
    exact = _fed("exact", d, rows)
    V = rows[:50]
    rel = np.abs(sk.width(V) / exact.width(V) - 1)
    assert np.median(rel) < 0.5


def test_without_compensation_the_sketch_underestimates_the_norm():
    """Plain FD (alpha stays lam) has B^T B <= A^T A, so every width is over-estimated."""
    d, rank = 16, 3
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(300, d)) * np.geomspace(1.0, 0.1, d)
    sk = _fed("sketch", d, rows, rank)
    exact = _fed("exact", d, rows)
    V = rng.normal(size=(40, d))
    rfd = sk.width(V)
    plain = _plain_fd_widths(sk, V, lam=1.0)  # the same rows B, without alpha's compensation
    assert (plain >= exact.width(V) * (1 - 1e-9)).all()
    assert np.mean(np.abs(rfd - exact.width(V))) < np.mean(np.abs(plain - exact.width(V)))


def _plain_fd_widths(sk, V, lam):
    st = sk._solver.state
    m = int(st.rows[0])
    H = lam * np.eye(V.shape[1]) + st.B[:m].T @ st.B[:m]
    return np.sqrt(np.einsum("nd,de,ne->n", V, np.linalg.inv(H), V))
