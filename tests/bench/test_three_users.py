"""The three-users example (bench/three_users.py) with heads that need no model: features that
tell the kinds of answer apart learn every user; constant features stay at the tie rule."""
import numpy as np

from edge_omd.head.protocol import ArrayHead
from edge_omd_bench import three_users as T
from edge_omd_bench.views import Combo


def _kind_head():
    def fn(prompt, responses):
        X = np.zeros((len(responses), 4))
        for i, r in enumerate(responses):
            X[i, 0] = "```" in r
            X[i, 1] = "\n- " in r
            X[i, 2] = len(r) < 80
            X[i, 3] = 1.0
        return X
    return ArrayHead(4, "test/kinds", fn)


def test_the_data_is_16_prompts_of_4_kinds():
    kinds, prompts = T.load()
    assert kinds == ["short", "code", "bullets", "prose"] and len(prompts) == 16
    for p in prompts:
        short, code, bullets, prose = p["answers"]
        assert len(short) < 80 and "```" in code and "\n- " in bullets and "\n" not in prose
        assert len(prose) > 250


def test_features_that_see_the_kinds_learn_every_user(tmp_path):
    kinds, prompts = T.load()
    out = T.run_seed(_kind_head(), kinds, prompts, 0, str(tmp_path))
    assert set(out) == set(T.USERS)
    for u, scores in out.items():
        assert len(scores) == len(T.CHECKS) and scores[-1] == 1.0, (u, scores)


def test_features_that_see_nothing_learn_nothing(tmp_path):
    kinds, prompts = T.load()
    head = ArrayHead(2, "test/constant", lambda p, rs: np.ones((len(rs), 2)))
    out = T.run_seed(head, kinds, prompts, 1, str(tmp_path))
    assert np.mean([s[-1] for s in out.values()]) <= 0.5


def test_views_head_appends_the_views():
    base = _kind_head()
    assert T.views_head(base, Combo()) is base
    h = T.views_head(base, Combo(0.25, 256, 2, "log1p", 0.5))
    X = h.features("p", ["Short.", "- a\n- b"])
    assert h.dim == 4 + 12 + 256 and X.shape == (2, h.dim)
    assert np.allclose(np.linalg.norm(X[:, 16:], axis=1), 0.5, atol=1e-6)
    assert h.fingerprint != T.views_head(base, Combo(0.25, 256, 2, "log1p", 1.0)).fingerprint
