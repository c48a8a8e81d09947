"""`edge-omd population fit FEEDBACK OUT --head HEAD` (edge_omd/apps/population.py) with a tiny
fake head: users' pairs, thumbs and choices in, a pack bound to the head out, the same bytes for
any --workers; records without user ids give today's prior as a pack; bad input is refused."""
import json

import numpy as np
import pytest

from edge_omd import Personalizer, SQLiteStore
from edge_omd.apps import cli
from edge_omd.apps import population as app
from edge_omd.population import load
from tests.sdk.fakes import FakeHead

TOPICS = ["rain", "taxes", "trains", "bread", "music", "cats"]


def _feedback(n_users=24, seed=0):
    """Users who like answers about some topics: thumbs, pairs and a choice each."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        liked = set(rng.choice(len(TOPICS), size=2, replace=False).tolist()) | {0}
        for j in range(12):
            a, b = rng.choice(len(TOPICS), size=2, replace=False)
            ra, rb = f"an answer about {TOPICS[a]} {j}", f"an answer about {TOPICS[b]} {j}"
            if j % 3 == 0:
                rows.append({"user": f"u{u}", "prompt": f"q{j}", "response": ra,
                             "up": bool(a in liked)})
            elif j % 3 == 1:
                good, bad = (ra, rb) if (a in liked) >= (b in liked) else (rb, ra)
                rows.append({"user": f"u{u}", "prompt": f"q{j}", "chosen": good, "rejected": bad})
            else:
                rs = [ra, rb, f"an answer about {TOPICS[2]} {j}"]
                rows.append({"user": f"u{u}", "prompt": f"q{j}", "responses": rs,
                             "chosen": 0 if a in liked else 1, "weight": 2.0})
    return rows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def head(monkeypatch):
    h = FakeHead(dim=16)
    monkeypatch.setattr(app, "open_head", lambda folder: h)
    return h


def test_fit_writes_a_pack_bound_to_the_head_the_same_for_any_workers(tmp_path, head, capsys):
    fb = _write(tmp_path / "fb.jsonl", _feedback())
    assert cli.main(["population", "fit", str(fb), str(tmp_path / "a.pack"), "--head", "h",
                     "--pack-id", "acme-v1", "--k", "4"]) == 0
    out = capsys.readouterr().out
    pack = load(tmp_path / "a.pack")
    assert pack.pack_id == "acme-v1" and pack.fingerprint == bytes(head.fingerprint)
    assert pack.fit["users"] == 24 and pack.fit["observations"] == 24 * 12
    assert pack.digest.hex() in out
    assert cli.main(["population", "fit", str(fb), str(tmp_path / "b.pack"), "--head", "h",
                     "--pack-id", "acme-v1", "--k", "4", "--workers", "2"]) == 0
    assert (tmp_path / "b.pack").read_bytes() == (tmp_path / "a.pack").read_bytes()
    assert cli.main(["population", "show", str(tmp_path / "a.pack")]) == 0
    assert "acme-v1" in capsys.readouterr().out
    u = Personalizer(head, SQLiteStore(tmp_path / "s.sqlite"), "new", population=pack)
    np.testing.assert_allclose(u.model.theta, pack.theta0, atol=1e-6)


def test_items_says_where_the_scales_are_chosen(tmp_path, head):
    """--items new (default) holds out prompts' answers while choosing the scales (new users
    meet answers nobody judged); --items seen holds out users only (a fixed catalogue)."""
    fb = _write(tmp_path / "fb.jsonl", _feedback())
    for items, share in (("new", 0.3), ("seen", 0.0)):
        argv = ["fit", str(fb), str(tmp_path / f"{items}.pack"), "--head", "h", "--k", "4"]
        assert app.main(argv + (["--items", items] if items == "seen" else [])) == 0
        fit = load(tmp_path / f"{items}.pack").fit
        assert fit["item_share"] == share
        assert (fit["held_out_item_observations"] > 0) == (items == "new")
    with pytest.raises(SystemExit):
        app.main(["fit", str(fb), str(tmp_path / "x.pack"), "--head", "h", "--items", "all"])


def test_without_user_ids_the_pack_is_todays_prior(tmp_path, head):
    rows = [{"prompt": f"q{i}", "chosen": f"an answer about rain {i}",
             "rejected": f"an answer about taxes {i}"} for i in range(40)]
    fb = _write(tmp_path / "pairs.jsonl", rows)
    assert app.main(["fit", str(fb), str(tmp_path / "p.pack"), "--head", "h"]) == 0
    pack = load(tmp_path / "p.pack")
    assert pack.K == 0 and pack.sign == 1.0 and pack.fit["kind"] == "prior"
    assert pack.fit["strength"] == 1.0 and pack.fingerprint == bytes(head.fingerprint)


@pytest.mark.parametrize("bad, match", [
    ('{"user": "a", "prompt": "q", "chosen": "x"}', "needs a pair"),
    ('{"user": "", "prompt": "q", "chosen": "x", "rejected": "y"}', "user"),
    ('{"user": "a", "prompt": "q", "responses": ["x"], "chosen": 0}', "choice"),
    ('{"user": "a", "prompt": "q", "response": "x", "up": true, "weight": -1}', "weight"),
    ('not json', "not JSON"),
])
def test_bad_records_are_refused_naming_the_line(tmp_path, head, capsys, bad, match):
    fb = tmp_path / "bad.jsonl"
    fb.write_text(json.dumps(_feedback(2)[0]) + "\n" + bad + "\n", encoding="utf-8")
    assert app.main(["fit", str(fb), str(tmp_path / "x.pack"), "--head", "h"]) == 1
    err = capsys.readouterr().err
    assert "bad.jsonl:2" in err and match in err
    assert not (tmp_path / "x.pack").exists()


def test_some_records_without_a_user_are_refused(tmp_path, head, capsys):
    rows = _feedback(3)
    del rows[4]["user"]
    fb = _write(tmp_path / "mixed.jsonl", rows)
    assert app.main(["fit", str(fb), str(tmp_path / "x.pack"), "--head", "h"]) == 1
    assert "no 'user'" in capsys.readouterr().err
