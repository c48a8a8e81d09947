"""bench/thumbs.py at tiny size (demo corpus world, oracle features, no head): each reference is
what its docstring says, the per-user comparison swaps only the learner's thumb (plain gives the
benchmark's own numbers) and leaves bench/peruser.py as it found it."""
from dataclasses import replace

import numpy as np
import pytest

from edge_omd_bench import peruser as P
from edge_omd_bench import peruser_world as pw
from edge_omd_bench import thumbs as T


def test_running_mean_reference_is_the_mean_of_the_thumbed_answers():
    rng = np.random.default_rng(0)
    phis = rng.normal(size=(5, 4))
    ref = T.ThumbReference("running_mean", 4)
    zs = []
    for phi in phis:
        zs.append(ref.z(phi))
        ref.learned(zs[-1])          # learned in float64: exactly phi - m
    np.testing.assert_allclose(zs[0], phis[0])
    for i in range(1, 5):
        np.testing.assert_allclose(zs[i], phis[i] - phis[:i].mean(axis=0), atol=1e-12)
    assert ref.n == 5
    pop = T.ThumbReference("pop_mean", 4, pop_mean=np.ones(4))
    np.testing.assert_array_equal(pop.z(phis[0]), phis[0] - 1.0)
    np.testing.assert_array_equal(T.ThumbReference("plain", 4).z(phis[1]), phis[1])
    with pytest.raises(ValueError):
        T.ThumbReference("nonsense", 4)


def test_bias_model_sees_the_bias_only_in_thumbs():
    m = T.BiasModel(3, solver="exact", dtype="float64")
    m.learn_thumb(np.zeros(3), True)        # only the bias coordinate moves
    np.testing.assert_array_equal(m.theta, np.zeros(3))
    assert m.inner.theta[-1] > 0
    P3 = np.eye(3)
    np.testing.assert_array_equal(m.reward(P3), np.zeros(3))   # scored rows carry no bias
    m.learn_pair(P3[0], P3[1])
    assert m.reward(P3)[0] > m.reward(P3)[1]


def test_offered_means_leave_the_answer_out():
    world = pw.build_world(n_hh=0, n_demo=6, n_cands=4, seed=0)
    Phi = np.arange(len(world.texts) * 3, dtype=np.float32).reshape(-1, 3)
    off = T.offered_means(world, Phi)
    rows = world.rows(0)
    np.testing.assert_allclose(off[Phi[rows[1]].tobytes()],
                               Phi[[rows[0], rows[2], rows[3]]].astype(np.float64).mean(axis=0))


def test_peruser_swaps_only_the_thumb_and_restores_the_learner():
    world = pw.build_world(n_hh=0, n_demo=30, n_cands=6, seed=0)
    Phi = P.feature_matrix(world, "oracle")
    cfg = replace(P.Config.preset_named("quick"), users=3, populations=(("design", 0),),
                  checkpoints=(0, 15), boot=50, workers=1)
    keep = P.OMD
    res = T.run_peruser(("plain", "running_mean", "bias", "offered"), cfg=cfg, world=world,
                        Phi=Phi, log=lambda m: None)
    assert P.OMD is keep
    own = P.run(replace(cfg, strategies=("thumbs",), contenders=(P.OMD_DEFAULT,), ceiling=False),
                Phi=Phi, world=world, log=lambda m: None)

    def top1(r):
        return np.asarray(r["populations"]["design"]["strategies"]["thumbs"]["beta"]["0.0"]["top1"])
    np.testing.assert_array_equal(top1(res["plain"]), top1(own))
    assert any(not np.array_equal(top1(res[k]), top1(own)) for k in ("running_mean", "offered"))
    summary = T.report_peruser(res, log=lambda m: None)
    assert summary["design"]["plain"]["minus_plain"]["mean"] == (0.0, 0.0, 0.0)
    assert set(summary["design"]) == {"plain", "running_mean", "bias", "offered"}
