"""bench/views.py: the rule's grid, combination ids, and `decide` on made-up results (the rule
of docs/BENCHMARKS.md: highest J passing the content guard G1 and the HH-RLHF guard G2)."""
import numpy as np
import pytest

from edge_omd_bench import views as V


def test_grid_is_the_rules():
    g = V.grid()
    assert len(g) == 165 and g[0] == V.TODAY and len(set(g)) == 165
    assert max(c.d() for c in g) == 384 + 12 + 1024
    for c in g + [V.Combo(0.25, 512, 2, "binary", 0.5, 2, 1.0)]:
        assert V.Combo.parse(c.id) == c


def _res(cells: dict) -> dict:
    """{combo id: {group: top-1 at 50 per user}} -> a grid result (both populations alike)."""
    out = {"meta": {"checkpoints": [0, 50], "seed": 0}, "combos": {}}
    for cid, groups in cells.items():
        top1 = {}
        for g, x in groups.items():
            for p, _ in V.POPULATIONS:
                top1[f"{g}/{p}"] = [[0.0, v] for v in x]
        out["combos"][cid] = {"d": V.Combo.parse(cid).d(), "top1": top1}
    return out


class FakeHH:
    def __init__(self, acc: dict):
        self.acc, self.asked = acc, []

    def correct(self, c):
        self.asked.append(c.id)
        return {"split": np.full(50, self.acc.get(c.id, 0.6))}

    def ci(self, name, x):
        return float(x.mean()), float(x.mean()) - 0.03, float(x.mean()) + 0.03


def test_decide_takes_the_best_that_passes_both_guards():
    rng = np.random.default_rng(0)
    base = rng.random(40) * 0.5
    a, b, c = "e+style*0.5", "e+w256n1raw*1", "e+style*0.25+w1024n2log1p*0.5"
    res = _res({"today": dict(form=base, wording=base, content=base),
                a: dict(form=base + 0.3, wording=base + 0.3, content=base - 0.05),    # best, fails G1
                b: dict(form=base + 0.2, wording=base + 0.2, content=base),           # fails G2
                c: dict(form=base + 0.1, wording=base + 0.1, content=base + 0.01)})
    hh = FakeHH({b: 0.5})
    dec = V.decide(res, hh, log=lambda m: None)
    assert dec["chosen"] == c and a not in dec["passed_g1"] and hh.asked == ["today", b, c]


def test_ties_go_to_the_smaller_d_and_nothing_better_keeps_today():
    base = np.linspace(0, 0.5, 40)
    res = _res({"today": dict(form=base, wording=base, content=base),
                "e+w1024n1raw*1": dict(form=base + 0.1, wording=base + 0.1, content=base),
                "e+w256n1raw*1": dict(form=base + 0.1 - 1e-4, wording=base + 0.1, content=base)})
    assert V.decide(res, None, log=lambda m: None)["chosen"] == "e+w256n1raw*1"
    res = _res({"today": dict(form=base, wording=base, content=base),
                "e+w256n1raw*1": dict(form=base - 0.1, wording=base, content=base)})
    assert V.decide(res, None, log=lambda m: None)["chosen"] == "today"


def test_quick_grid_runs_and_resumes(tmp_path):
    setup = V.make_setup(True, 3, 1)
    path = str(tmp_path / "g.json")
    res = V.run_grid(setup, [V.TODAY, V.Combo(0.25, 256, 2, "log1p", 0.5)], path, log=lambda m: None)
    assert set(res["combos"]) == {"today", "e+style*0.25+w256n2log1p*0.5"}
    cell = res["combos"]["today"]["top1"]["form/design"]
    assert np.asarray(cell).shape == (3, len(V.CHECKPOINTS))
    again = V.run_grid(setup, [V.TODAY], path, log=lambda m: { }[m])      # nothing left to run
    assert again["combos"]["today"] == res["combos"]["today"]
    with pytest.raises(SystemExit):
        V.run_grid(V.make_setup(True, 4, 1), [V.TODAY], path, log=lambda m: None)


def test_wording_block_fixed_divisor_keeps_how_many_words():
    """Rule C's candidate: the transformed counts over ONE divisor (their mean row norm over the
    reference texts), so an answer with twice the words has a longer row; "log1p" is the view."""
    from edge_omd.head.wording import WordingView
    ref = ["Perhaps so.", "I am sorry, maybe not.", "Definitely!"]
    texts = ["Perhaps.", "Perhaps. Perhaps. Perhaps. Perhaps.", ""]
    np.testing.assert_array_equal(V.wording_block(texts, 256, 2, "log1p", ref),
                                  WordingView(8, 2, "log1p", 1.0)(texts))
    F = V.wording_block(texts, 256, 2, "log1pfixed", ref)
    assert np.linalg.norm(V.wording_block(ref, 256, 2, "log1pfixed", ref), axis=1).mean() == pytest.approx(1.0)
    assert np.linalg.norm(F[1]) > np.linalg.norm(F[0]) > 0 == np.linalg.norm(F[2])
    c = WordingView(8, 2, "log1p", 1.0).counts(texts[1])
    np.testing.assert_allclose(F[1] / np.linalg.norm(F[1]), np.sign(c) * np.log1p(np.abs(c))
                               / np.linalg.norm(np.log1p(np.abs(c))))
    assert V.Combo.parse("e+style*0.5+w256n2log1pfixed*0.25") == V.Combo(0.5, 256, 2, "log1pfixed", 0.25)


def test_wording_block_idf_weights_buckets_every_reference_answer_has_least():
    """Rule C2's candidate: per-bucket idf over the reference answers, then unit rows."""
    from edge_omd.head.wording import WordingView
    ref = ["The cat.", "The dog.", "The sorry bird."]
    I = V.wording_block(["The sorry", ""], 256, 1, "rawidf", ref)
    np.testing.assert_allclose(np.linalg.norm(I[0]), 1.0)
    np.testing.assert_array_equal(I[1], 0.0)
    view = WordingView(8, 1, "raw", 1.0)
    the, sorry = (int(np.flatnonzero(view.counts(w))[0]) for w in ("the", "sorry"))
    want = np.array([np.log(4 / 4) + 1, np.log(4 / 2) + 1])      # "the" in 3 of 3, "sorry" in 1
    np.testing.assert_allclose(np.abs(I[0, [the, sorry]]), want / np.linalg.norm(want))


def test_default_combo_is_the_runtime_default_and_measure_takes_other_defaults():
    from edge_omd.head.views import DEFAULT_STYLE_WEIGHT, DEFAULT_WORDING
    c = V.default_combo()
    assert (c.f, c.D, c.n, c.t, c.s) == (DEFAULT_STYLE_WEIGHT, 1 << DEFAULT_WORDING["bits"],
                                         DEFAULT_WORDING["ngrams"], DEFAULT_WORDING["transform"],
                                         DEFAULT_WORDING["scale"])
    setup = V.make_setup(True, 2, 1)
    out = V.measure(setup, c, groups=("all",), pops=(("design", 0),), pessimisms=(0.5,))
    assert set(out) == {"all/design", "all/design@pess0.5"}
    assert np.asarray(out["all/design@pess0.5"]).shape == (2, len(V.CHECKPOINTS))
    other = V.measure(setup, c, groups=("all",), pops=(("design", 0),), strategy="best_worst",
                      driver_beta=0.25)
    assert set(other) == {"all/design"} and np.asarray(other["all/design"]).shape == (2, len(V.CHECKPOINTS))
