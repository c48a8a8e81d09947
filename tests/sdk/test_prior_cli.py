"""`edge-omd prior PAIRS OUT --head HEAD` (edge_omd/apps/prior.py) and Personalizer(..., prior=):
a tiny fake head (tests/sdk/fakes.py) and PAIRS files written here."""
import gzip
import json

import numpy as np
import pytest

from edge_omd import ConfigError, Personalizer
from edge_omd.apps import cli
from edge_omd.apps import prior as prior_app
from edge_omd.prior import Prior, fit_prior
from edge_omd.store import SQLiteStore
from tests.sdk.fakes import FakeHead

GOOD = ["short clear answer with code", "a precise short answer", "code first then a line"]
BAD = ["rambling long unfocused reply that goes on and on", "a vague reply", "filler words only"]


def _pairs(n):
    """Prompts with a chosen answer from GOOD and a rejected one from BAD."""
    return [{"prompt": f"question number {i} about topic {i % 7}",
             "chosen": GOOD[i % 3] + f" {i % 5}", "rejected": BAD[(i + 1) % 3] + f" {i % 4}"}
            for i in range(n)]


def _write_jsonl(path, rows, gz=False):
    data = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


@pytest.fixture
def fake_head(monkeypatch):
    head = FakeHead(dim=32)
    monkeypatch.setattr(prior_app, "open_head", lambda folder: head)
    return head


def test_cli_fits_the_prior_a_direct_fit_gives(tmp_path, fake_head, capsys):
    rows = _pairs(120)
    pairs = _write_jsonl(tmp_path / "pairs.jsonl", rows + [dict(rows[0], rejected=rows[0]["chosen"])])
    out = tmp_path / "p.prior"
    assert cli.main(["prior", str(pairs), str(out), "--head", "h", "--rank", "4",
                     "--strength", "3"]) == 0
    p = Prior.load(out)
    assert p.fingerprint == fake_head.fingerprint and p.dim == 32 and p.n_pairs == 120
    assert p.strength == 3.0 and p.rank <= 4
    # the same fit by hand: embed both answers, fit on the differences
    Pc = np.stack([fake_head.features(r["prompt"], [r["chosen"]])[0] for r in rows]).astype(float)
    Pr = np.stack([fake_head.features(r["prompt"], [r["rejected"]])[0] for r in rows]).astype(float)
    q = fit_prior(Pc - Pr, rank=4, strength=3.0)
    np.testing.assert_allclose(p.theta0, q.theta0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.H0(), q.H0(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p.phi_mean, 0.5 * (Pc.mean(0) + Pr.mean(0)), rtol=1e-12)
    said = capsys.readouterr().out
    assert "120 pairs" in said and "1 skipped" in said and "wrote" in said


def test_cli_reads_hh_rlhf_transcripts_and_a_budget(tmp_path, fake_head):
    rows = [{"chosen": f"\n\nHuman: q{i}?\n\nAssistant: {GOOD[i % 3]}",
             "rejected": f"\n\nHuman: q{i}?\n\nAssistant: {BAD[i % 3]}"} for i in range(60)]
    pairs = _write_jsonl(tmp_path / "hh.jsonl.gz", rows, gz=True)
    out = tmp_path / "hh.prior"
    assert prior_app.main([str(pairs), str(out), "--head", "h", "--budget-bytes", "2000",
                           "--limit", "50"]) == 0
    p = Prior.load(out)
    assert p.n_pairs == 50 and len(out.read_bytes()) <= 2000
    assert prior_app.split_transcript(rows[0]["chosen"]) == ("\n\nHuman: q0?", GOOD[0])


@pytest.mark.parametrize("content", ["not json\n", '{"chosen": "a"}\n', '{"prompt": 1, '
                                     '"chosen": "a", "rejected": "b"}\n', "\n"])
def test_cli_refuses_a_bad_pairs_file(tmp_path, fake_head, capsys, content):
    pairs = tmp_path / "bad.jsonl"
    pairs.write_text(content)
    out = tmp_path / "p.prior"
    assert prior_app.main([str(pairs), str(out), "--head", "h"]) == 1
    assert "InvalidInputError" in capsys.readouterr().err and not out.exists()


def test_cli_reports_a_missing_head_folder(tmp_path, capsys):
    pairs = _write_jsonl(tmp_path / "pairs.jsonl", _pairs(5))
    assert cli.main(["prior", str(pairs), str(tmp_path / "p"), "--head",
                     str(tmp_path / "nowhere")]) == 1
    assert "HeadError" in capsys.readouterr().err


def test_personalizer_starts_new_users_at_the_prior(tmp_path, fake_head):
    pairs = _write_jsonl(tmp_path / "pairs.jsonl", _pairs(150))
    out = tmp_path / "p.prior"
    assert prior_app.main([str(pairs), str(out), "--head", "h", "--strength", "5"]) == 0
    p = Prior.load(out)
    store = SQLiteStore(tmp_path / "s.sqlite")
    u = Personalizer(fake_head, store, "u", prior=p)
    cold = Personalizer(fake_head, store, "cold")
    prompt, answers = "question number 999 about topic 3", [BAD[0] + " 2", GOOD[1] + " 2"]
    np.testing.assert_allclose(u.score(prompt, answers),
                               fake_head.features(prompt, answers).astype(np.float32) @
                               p.theta0.astype(np.float32), rtol=1e-5)
    assert u.rank(prompt, answers)[0].index == 1          # the population's taste, at once
    assert not cold.score(prompt, answers).any()         # theta = 0 without the prior
    u.prefer(prompt, answers[0], answers[1])              # a stored user keeps its state
    again = Personalizer(fake_head, store, "u", prior=p)
    np.testing.assert_array_equal(again.score(prompt, answers), u.score(prompt, answers))
    u.reset()                                             # reset: back to the prior
    np.testing.assert_allclose(u.score(prompt, answers),
                               Personalizer(fake_head, store, "new", prior=p).score(prompt, answers))
    store.close()


def test_personalizer_refuses_a_prior_of_another_head(tmp_path, fake_head):
    p = fit_prior(np.random.default_rng(0).normal(size=(40, 32)), rank=2,
                  fingerprint=FakeHead(dim=32, salt=b"another head").fingerprint)
    store = SQLiteStore(tmp_path / "s.sqlite")
    with pytest.raises(ConfigError, match="another head"):
        Personalizer(fake_head, store, "u", prior=p)
    with pytest.raises(ConfigError, match="another head"):
        Personalizer(fake_head, store, "u",                # unbound: no fingerprint
                     prior=Prior(np.zeros(32), 0.0, np.zeros((0, 32))))
    with pytest.raises(ConfigError, match="another head"):
        Personalizer(FakeHead(dim=16), store, "u", prior=p)
    with pytest.raises(ConfigError):
        Personalizer(fake_head, store, "u", prior="p.prior")
    with pytest.raises(ConfigError, match="model_options"):
        Personalizer(fake_head, store, "u", model_options={"prior": p})
    store.close()


def test_the_prior_is_fitted_for_the_users_lam(tmp_path, fake_head, capsys):
    """--lam: the users' models' lam; a Personalizer gives its models the prior's lam (a prior
    is a population pack: the model's lam is the pack's), and refuses another lam named in
    model_options (theta_0 minimises the objective of the prior's lam only), saying how to fix
    it."""
    pairs = _write_jsonl(tmp_path / "pairs.jsonl", _pairs(80))
    out = tmp_path / "p.prior"
    assert prior_app.main([str(pairs), str(out), "--head", "h", "--strength", "4",
                           "--lam", "0.5", "--rank", "2"]) == 0
    p = Prior.load(out)
    assert p.lam == 0.5 and p.strength == 4.0
    assert "lam 0.5" in capsys.readouterr().out
    store = SQLiteStore(tmp_path / "s.sqlite")
    with pytest.raises(ConfigError, match=r"fitted for lam = 0.5.*--lam 1"):
        Personalizer(fake_head, store, "u", prior=p, model_options={"lam": 1.0})
    u = Personalizer(fake_head, store, "u", prior=p)
    assert u.model.config.lam == 0.5
    assert u.score("question number 3 about topic 3", GOOD[:2]).any()
    store.close()
    assert prior_app.main([str(pairs), str(out), "--head", "h", "--lam", "0"]) == 1
    assert "ConfigError" in capsys.readouterr().err


@pytest.mark.export
def test_cli_with_a_real_exported_head(tmp_path):
    """The real path once: a tiny BERT exported by edge_omd_export, opened by FeatureHead."""
    from edge_omd import FeatureHead
    from edge_omd_export import export_model
    from tests.export._tiny import make_checkpoint
    folder = export_model(make_checkpoint("bert", str(tmp_path / "ckpt")), tmp_path / "head",
                          variant="fp32", progress=False)
    pairs = _write_jsonl(tmp_path / "pairs.jsonl", _pairs(40))
    out = tmp_path / "p.prior"
    assert cli.main(["prior", str(pairs), str(out), "--head", str(folder), "--rank", "3"]) == 0
    head = FeatureHead.open(folder)
    p = Prior.load(out)
    assert p.fingerprint == head.fingerprint and p.dim == head.dim and p.n_pairs == 40
    store = SQLiteStore(tmp_path / "s.sqlite")
    prompt, answers = "question number 7 about topic 0", [GOOD[0], BAD[0]]
    got = Personalizer(head, store, "u", prior=p).score(prompt, answers)
    np.testing.assert_allclose(got, head.features(prompt, answers).astype(np.float64) @
                               p.theta0.astype(np.float32).astype(np.float64), rtol=1e-5, atol=1e-6)
    store.close()
