"""The demo's corpus, simulated user, simulation loop, plot, CLI and interactive mode (fake head)."""
import io
import re
import runpy
from pathlib import Path

import numpy as np
import pytest

from edge_omd.apps import demo
from edge_omd.apps.demo_sim import (DEFAULT_TASTE, FeatureCache, SimulatedUser, chance_top1,
                                    format_taste, load_corpus, parse_taste, progress_bar,
                                    split_prompts)
from edge_omd.errors import ConfigError
from edge_omd.store import SQLiteStore
from tests.sdk.fakes import FakeHead


def test_corpus_styles_are_exact_and_varied():
    c = load_corpus()
    assert c.attributes == ("concise", "casual", "list", "code") and len(c) >= 60
    assert len({it.id for it in c.items}) == len({it.prompt for it in c.items}) == len(c)
    n_code = sum(len(it.responses) == 12 for it in c.items)
    assert 0.3 * len(c) < n_code < 0.7 * len(c)           # both kinds of prompt, in number
    for it in c.items:
        assert len(it.responses) in (8, 12) and len(set(it.responses)) == len(it.responses)
        assert len({tuple(s) for s in it.styles}) == len(it.responses)   # one per style combination
        for text, s in zip(it.responses, it.styles):
            concise, casual, lst, code = s
            assert ("```" in text) == bool(code)
            assert ("\n- " in text) == bool(lst)
            assert not (lst and code)
            prose = text.split("\n\n")[0]
            assert "\n" not in prose and len(prose.split()) <= (25 if concise else 120), it.id
            if casual:   # contractions or exclamations: the informal register
                assert re.search(r"\w'(t|re|ll|ve|d|m|s)\b|!|\b(gonna|wanna|kinda|folks)\b",
                                 prose), (it.id, prose)
            else:        # no contractions, no exclamations
                assert "!" not in prose and not re.search(r"\w'(t|re|ll|ve|d|m)\b", prose), \
                    (it.id, prose)
            if lst:
                assert ("Quick rundown:" if casual else "In short:") in text
        prose = [len(t.split("\n\n")[0].split()) for t in it.responses]
        longest_concise = max(n for n, s in zip(prose, it.styles) if s[0] == 1)
        shortest_detailed = min(n for n, s in zip(prose, it.styles) if s[0] == 0)
        assert longest_concise < shortest_detailed, it.id


def test_corpus_json_is_what_the_generator_writes(tmp_path):
    # scripts/make_demo_corpus.py is a script, not a module of the package: run it by path
    main = runpy.run_path(str(Path(__file__).resolve().parents[2] / "scripts" /
                              "make_demo_corpus.py"), run_name="make_demo_corpus")["main"]
    assert main(["--check"]) == 0
    out = tmp_path / "c.json"
    assert main(["--out", str(out)]) == 0
    new, shipped = load_corpus(out), load_corpus()
    assert new.attributes == shipped.attributes and len(new) == len(shipped)
    for a, b in zip(new.items, shipped.items):
        assert (a.id, a.prompt, a.responses) == (b.id, b.prompt, b.responses)
        assert np.array_equal(a.styles, b.styles)
    out.write_text("{}")
    assert main(["--check", "--out", str(out)]) == 1


def test_held_out_prompts_are_fixed_stratified_and_a_third():
    c = load_corpus()
    asked, unseen = split_prompts(c)
    assert sorted(np.concatenate([asked, unseen]).tolist()) == list(range(len(c)))
    assert abs(len(unseen) - len(c) / 3) <= 1 and len(unseen) >= 20
    for n in (8, 12):   # both kinds of prompt are held out in proportion
        kind = [i for i, it in enumerate(c.items) if len(it.responses) == n]
        assert abs(np.isin(kind, unseen).sum() - len(kind) / 3) <= 1
    a2, u2 = split_prompts(c)
    assert np.array_equal(u2, unseen) and np.array_equal(a2, asked)
    with pytest.raises(ConfigError):
        split_prompts(c, 1.0)


def test_chance_is_the_share_of_best_answers():
    c = load_corpus()
    user = SimulatedUser(DEFAULT_TASTE, c.attributes)
    # concise and code are liked: 2 of 12 answers are best with code variants, 4 of 8 without
    want = np.mean([2 / 12 if len(it.responses) == 12 else 4 / 8 for it in c.items])
    assert chance_top1(user, c.items) == pytest.approx(want)
    flat = SimulatedUser({}, c.attributes)          # indifferent: every answer is a best one
    assert chance_top1(flat, c.items) == 1.0


def test_simulated_user_and_taste():
    c = load_corpus()
    assert parse_taste(None, c.attributes) == DEFAULT_TASTE
    assert parse_taste(format_taste(DEFAULT_TASTE), c.attributes) == DEFAULT_TASTE
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


def test_simulate_reports_rounds_clicks_and_constant_state(tmp_path):
    lines = []
    head = FakeHead(dim=32)
    res = demo.simulate(head, SQLiteStore(tmp_path / "s.sqlite"), rounds=12, every=4,
                        measure_every=2, seed=1, out=lines.append, progress=False)
    assert res.rounds == [0, 2, 4, 6, 8, 10, 12]
    assert len(res.accuracy_unseen) == len(res.accuracy_asked) == 7
    assert res.n_unseen + res.n_asked == len(load_corpus()) and res.n_unseen >= 20
    for part in (res.click_s, res.head_s, res.learn_s, res.commit_s):
        assert len(part) == 12 and all(x >= 0 for x in part)
    # every click ran the head (2 answers embedded), timed inside the click (learn is timed on
    # a twin model outside it, so no sum of parts is asserted: timings are noisy)
    assert all(0 < h <= c for h, c in zip(res.head_s, res.click_s))
    assert len(set(res.state_bytes)) == 1 and res.state_bytes[0] > 32 * 32
    assert 0 < res.chance_unseen < 1 and all(0 <= a <= 1 for a in res.accuracy_unseen)
    assert len(lines) == 2 + 4                     # intro, header, one row per printed round
    assert "chance" in lines[0].lower()
    # before any feedback every answer ties: the score is chance, not the corpus's answer order
    assert res.accuracy_unseen[0] == pytest.approx(res.chance_unseen)


def test_top1_counts_a_tie_as_a_uniform_pick(tmp_path):
    from edge_omd import Personalizer
    corpus = load_corpus()
    user = SimulatedUser(DEFAULT_TASTE, corpus.attributes)
    p = Personalizer(FakeHead(dim=32), SQLiteStore(tmp_path / "t.sqlite"), "u")
    idx = list(range(len(corpus.items)))
    assert demo._accuracy(p, corpus, user, idx) == pytest.approx(chance_top1(user, corpus.items))


def test_click_runs_the_real_head_on_the_two_answers(tmp_path):
    head = FakeHead(dim=32)
    cache = FeatureCache(head)
    demo.simulate(cache, SQLiteStore(tmp_path / "s.sqlite"), rounds=5, every=5,
                  seed=0, out=lambda *a: None, progress=False)
    before = head.calls
    with cache.uncached():
        cache.features("p", ["a", "b"])
        cache.features("p", ["a", "b"])
    assert head.calls == before + 2 and cache.head_s > 0      # no memo inside uncached()
    cache.features("p", ["a", "b"])
    cache.features("p", ["a", "b"])
    assert head.calls == before + 3                            # memo outside it


def test_progress_bar_draws_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = progress_bar(10, "x", file=stream)
        for _ in range(10):
            bar.update(1)
        bar.close()
    assert "\r" in tty.getvalue() and "x: " in tty.getvalue()     # drawn on a terminal
    assert pipe.getvalue() == ""                                  # nothing in a log or pipe
    quiet = Tty()
    bar = progress_bar(10, "x", enabled=False, file=quiet)
    bar.update(10)
    bar.close()
    assert quiet.getvalue() == ""


def test_a_non_tty_run_writes_no_carriage_return(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGE_OMD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(demo, "ensure_demo_head", lambda folder=None: FakeHead(dim=32))
    rc = demo.main(["--rounds", "6", "--every", "3", "--out", str(tmp_path / "d.png"),
                    "--store", str(tmp_path / "s.sqlite")])          # progress bar requested
    cap = capsys.readouterr()
    assert rc == 0 and "plot saved to" in cap.out
    assert "\r" not in cap.out and "\r" not in cap.err


def test_corpus_features_are_kept_between_runs_and_checked(tmp_path):
    head = FakeHead(dim=32)
    kw = dict(rounds=2, every=2, out=lambda *a: None, progress=False, features_dir=tmp_path)
    first = demo.simulate(head, SQLiteStore(tmp_path / "s.sqlite"), **kw)
    files = list(tmp_path.glob("corpus-features-*.npy"))
    assert first.features_from is None and first.embed_s > 0 and len(files) == 1
    calls = head.calls
    again = demo.simulate(head, SQLiteStore(tmp_path / "s.sqlite"), **kw)
    assert again.features_from == str(files[0])
    assert head.calls - calls == 2                  # only the two clicks ran the head
    assert again.accuracy_unseen == first.accuracy_unseen    # same features, same run
    other = FakeHead(dim=32, salt=b"another head")  # another head: its own file
    demo.simulate(other, SQLiteStore(tmp_path / "s.sqlite"), **kw)
    assert len(list(tmp_path.glob("corpus-features-*.npy"))) == 2
    files[0].write_bytes(b"garbage")                # unreadable: embedded again, rewritten
    third = demo.simulate(head, SQLiteStore(tmp_path / "s.sqlite"), **kw)
    assert third.features_from is None and third.accuracy_unseen == first.accuracy_unseen
    assert np.load(files[0]).shape == (first.n_texts, 32)


def test_taste_help_states_the_real_default(capsys):
    assert demo.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"default: {format_taste(DEFAULT_TASTE)}" in text


def test_main_runs_without_stdin_and_saves_the_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGE_OMD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(demo, "ensure_demo_head", lambda folder=None: FakeHead(dim=32))
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    png = tmp_path / "out" / "demo.png"
    rc = demo.main(["--rounds", "6", "--every", "3", "--out", str(png), "--no-progress",
                    "--store", str(tmp_path / "s.sqlite"), "--taste", "code=1,concise=0.5"])
    out = capsys.readouterr().out
    assert rc == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plot saved to" in out and "one click" in out and "(constant over 6 updates)" in out
    assert re.search(r"held-out prompts: [01]\.\d\d before any feedback -> [01]\.\d\d after 6 "
                     r"answers \(chance 0\.\d\d", out)
    assert re.search(r"feature head [\d.]+ ms .*learn [\d.]+ ms .*commit [\d.]+ ms", out)
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


def test_interactive_states_its_arithmetic_confirms_and_names_unknown_keys(tmp_path):
    """The ranking line's arithmetic is the ranking's (score = reward - pessimism x width with
    the pessimism rank used), an unknown key is said to be one and the question asked again,
    and each pick or thumb is confirmed once stored."""
    from edge_omd.strategies import DEFAULT_PESSIMISM
    store = SQLiteStore(tmp_path / "s.sqlite")
    answers = iter(["x", "1", "?", "u", "2", "d", "q"])
    lines = []
    assert demo.interactive(FakeHead(dim=32), store, inp=lambda prompt: next(answers),
                            out=lines.append) == 0
    text = "\n".join(lines)
    unknown = [line for line in lines if line.startswith("[demo] unknown key")]
    assert len(unknown) == 2 and "'x'" in unknown[0] and "'?'" in unknown[1]
    assert "1 to pick answer [1]" in unknown[0] and "u to thumb up" in unknown[1]
    assert "[demo] saved: you prefer [1] (1 updates stored)" in text
    assert "[demo] saved: thumb up on answer 1 (2 updates stored)" in text
    assert "[demo] saved: you prefer [2] (3 updates stored)" in text
    assert "[demo] saved: thumb down on answer 1 (4 updates stored)" in text
    ranked = re.findall(r"score ([-+][\d.]+) = reward ([-+][\d.]+) - ([\d.]+) x width ([\d.]+)",
                        text)
    assert len(ranked) == 6
    for s, r, k, w in ranked:
        assert float(k) == DEFAULT_PESSIMISM
        assert abs(float(s) - (float(r) - float(k) * float(w))) <= 1.5e-3
    assert store.get("you").updates == 4


def test_a_new_user_starts_from_the_simulated_populations_pack(tmp_path):
    lines = []
    head = FakeHead(dim=16)
    store = SQLiteStore(tmp_path / "s.sqlite")
    res = demo.simulate(head, store, rounds=6, every=3, measure_every=3, seed=2, out=lines.append,
                        progress=False, population=12, features_dir=tmp_path / "f")
    assert res.pack is not None and res.pack.fit["users"] == 12 and res.pack_s > 0
    assert res.pack.fingerprint == head.fingerprint
    assert store.get("demo-user").pack_digest == res.pack.digest   # the user learned from it
    assert len(res.accuracy_unseen_cold) == len(res.accuracy_unseen) == 3
    assert res.accuracy_unseen_cold[0] == pytest.approx(res.chance_unseen)   # cold: all tie
    assert "population pack" in lines[0] and "cold start" in lines[2]
    again = demo.simulate(head, store, rounds=3, every=3, seed=2, out=lines.append,
                          progress=False, population=12, features_dir=tmp_path / "f")
    assert again.pack == res.pack and again.pack_s == 0.0          # kept between runs


def test_interactive_keeps_a_person_on_the_earlier_head_until_reset(tmp_path):
    """Issue 20: the demo's head gained views (another dim and fingerprint). A person stored
    on the earlier head keeps their state on it (HeadRegistry) and moves to the current head
    on 'r'; without the earlier head they are told to reset, and nothing is lost."""
    store = SQLiteStore(tmp_path / "s.sqlite")
    old, new = FakeHead(dim=32, salt=b"before views"), FakeHead(dim=48, salt=b"with views")
    answers = iter(["1", "", "q"])
    assert demo.interactive(old, store, inp=lambda p: next(answers), out=[].append) == 0
    assert store.get("you").head_fingerprint == old.fingerprint and store.get("you").updates == 1
    lines = []
    assert demo.interactive(new, store, inp=lambda p: "q", out=lines.append) == 1
    assert "--reset" in lines[-1] and store.get("you").updates == 1
    lines = []
    answers = iter(["2", "", "r", "1", "", "q"])
    assert demo.interactive(new, store, older=[old], inp=lambda p: next(answers),
                            out=lines.append) == 0
    assert any("earlier head" in line for line in lines)
    rec = store.get("you")      # one more answer on the old head, then reset, then one on the new
    assert rec.head_fingerprint == new.fingerprint and rec.updates == 1


def test_the_demo_head_has_the_default_views_and_older_heads_are_optional(tmp_path, monkeypatch):
    export = pytest.importorskip("edge_omd_export")
    from edge_omd.errors import ExportError
    asked = {}

    def fake_export(ckpt, out, **kw):
        asked.update(kw)
        raise ExportError("stop here")
    monkeypatch.setattr(export, "export_model", fake_export)
    monkeypatch.setenv("EDGE_OMD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ExportError):
        demo.ensure_demo_head(log=lambda *a: None)
    assert asked["views"] == demo.HEAD_VIEWS == "default"
    assert demo.older_demo_heads(log=lambda *a: None) == []        # none cached
    (tmp_path / "cache" / "heads" / demo.OLDER_HEAD_NAMES[0]).mkdir(parents=True)
    said = []
    assert demo.older_demo_heads(log=said.append) == [] and "cannot be opened" in said[0]
