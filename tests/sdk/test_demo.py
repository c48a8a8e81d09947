"""The demo's corpus, simulated user, simulation loop, plot, CLI and interactive mode (fake head)."""
import numpy as np
import pytest

from edge_omd import demo
from edge_omd.demo_sim import (DEFAULT_TASTE, FeatureCache, SimulatedUser, load_corpus,
                               parse_taste)
from edge_omd.errors import ConfigError
from edge_omd.store import SQLiteStore
from tests.sdk.fakes import FakeHead


def test_corpus_styles_are_exact_and_varied():
    c = load_corpus()
    assert c.attributes == ("concise", "casual", "list", "code") and len(c) >= 20
    for it in c.items:
        assert len(it.responses) in (8, 12) and len(set(it.responses)) == len(it.responses)
        assert len({tuple(s) for s in it.styles}) == len(it.responses)   # one per style combination
        for text, s in zip(it.responses, it.styles):
            concise, casual, lst, code = s
            assert ("```" in text) == bool(code)
            assert ("\n- " in text) == bool(lst)
        prose = [len(t.split("\n\n")[0].split()) for t in it.responses]
        longest_concise = max(n for n, s in zip(prose, it.styles) if s[0] == 1)
        shortest_detailed = min(n for n, s in zip(prose, it.styles) if s[0] == 0)
        assert longest_concise < shortest_detailed, it.id


def test_simulated_user_and_taste():
    c = load_corpus()
    assert parse_taste(None, c.attributes) == DEFAULT_TASTE
    assert parse_taste("code=2,casual=-1", c.attributes) == {"concise": 0.0, "casual": -1.0,
                                                            "list": 0.0, "code": 2.0}
    for bad in ("code", "tone=1", "code=much"):
        with pytest.raises(ConfigError):
            parse_taste(bad, c.attributes)
    user = SimulatedUser({"code": 1.0}, c.attributes, temperature=0.0,
                         rng=np.random.default_rng(0))
    assert user.prefers_first(1.0, 0.0) and not user.prefers_first(0.0, 1.0)
    noisy = SimulatedUser({"code": 1.0}, c.attributes, temperature=1.0,
                          rng=np.random.default_rng(0))
    freq = np.mean([noisy.prefers_first(1.0, 0.0) for _ in range(4000)])
    assert abs(freq - 1 / (1 + np.exp(-1.0))) < 0.03          # Bradley-Terry probability


def test_feature_cache_embeds_each_text_once():
    head = FakeHead(dim=16)
    cache = FeatureCache(head)
    a = cache.features("p", ["x", "y"])
    calls = head.calls
    b = cache.features("p", ["y", "x"])
    assert head.calls == calls
    np.testing.assert_array_equal(a[::-1], b)
    np.testing.assert_array_equal(a, head.features("p", ["x", "y"]))


def test_simulate_reports_rounds_latency_and_constant_state(tmp_path):
    lines = []
    res = demo.simulate(FakeHead(dim=32), SQLiteStore(tmp_path / "s.sqlite"), rounds=12,
                        every=4, seed=1, out=lines.append, progress=False)
    assert res.rounds == [0, 4, 8, 12] and len(res.accuracy) == len(res.accuracy_unseen) == 4
    assert len(res.latency_s) == 12 and all(x > 0 for x in res.latency_s)
    assert len(set(res.state_bytes)) == 1 and res.state_bytes[0] > 32 * 32
    assert 0 < res.chance < 1 and all(0 <= a <= 1 for a in res.accuracy)
    assert len(lines) == 1 + 4                                  # header + one row per checkpoint


def test_main_runs_without_stdin_and_saves_the_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "ensure_demo_head", lambda folder=None: FakeHead(dim=32))
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    png = tmp_path / "out" / "demo.png"
    rc = demo.main(["--rounds", "6", "--every", "3", "--out", str(png), "--no-progress",
                    "--store", str(tmp_path / "s.sqlite"), "--taste", "code=1,concise=0.5"])
    out = capsys.readouterr().out
    assert rc == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plot saved to" in out and "update latency" in out and "(constant over 6 updates)" in out
    assert demo.main(["--rounds", "0"]) == 2
    assert demo.main(["--taste", "tone=1", "--store", str(tmp_path / "s.sqlite")]) == 1


def test_interactive_with_a_scripted_person(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    answers = iter(["1", "u", "2", "", "s", "d", "q"])
    lines = []
    assert demo.interactive(FakeHead(dim=32), store, inp=lambda prompt: next(answers),
                            out=lines.append) == 0
    assert store.get("you").updates == 4                        # 2 picks + 2 thumbs
    # no stdin at all: stops cleanly and keeps what was answered
    def eof(prompt):
        raise EOFError
    assert demo.interactive(FakeHead(dim=32), store, inp=eof, out=lines.append) == 0
    assert any("no more input" in line for line in lines) and store.get("you").updates == 4


def test_cache_root_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_OMD_CACHE", str(tmp_path / "c"))
    assert demo.cache_root() == tmp_path / "c"
    monkeypatch.delenv("EDGE_OMD_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert demo.cache_root() == tmp_path / "x" / "edge_omd"


def test_interactive_refuses_an_unreadable_state_until_reset(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    store.update("you", lambda old: b"not a reward model", head_fingerprint=None, dim=32)
    lines = []
    assert demo.interactive(FakeHead(dim=32), store, inp=lambda p: "q", out=lines.append) == 1
    assert "--reset" in lines[-1] and store.get("you").state == b"not a reward model"
    assert demo.interactive(FakeHead(dim=32), store, reset=True, inp=lambda p: "q",
                            out=lines.append) == 0
    assert store.get("you") is None


def test_an_explicit_head_folder_is_opened_never_exported_over(tmp_path):
    from edge_omd.errors import HeadError
    folder = tmp_path / "my-head"
    folder.mkdir()
    (folder / "notes.txt").write_text("someone's data")
    with pytest.raises(HeadError):
        demo.ensure_demo_head(folder, log=lambda *a: None)
    assert (folder / "notes.txt").read_text() == "someone's data"


def test_a_failed_export_leaves_no_half_written_head(tmp_path, monkeypatch):
    export = pytest.importorskip("edge_omd_export")
    from edge_omd.errors import ExportError

    def failing_export(*a, **k):
        raise ExportError("simulated failure")
    monkeypatch.setattr(export, "export_model", failing_export)
    monkeypatch.setenv("EDGE_OMD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ExportError, match="simulated failure"):
        demo.ensure_demo_head(log=lambda *a: None)
    assert list((tmp_path / "cache" / "heads").iterdir()) == []    # no temporary folder left
