"""What a user meets first with a head: clear errors for a wrong path, one warning when a pair was
truncated, and a CLI whose help lists every command without importing anything heavy."""
import os
import subprocess
import sys
import warnings

import pytest

from edge_omd import FeatureHead, HeadError, TruncationWarning

pytestmark = pytest.mark.export


def test_open_on_a_file_or_a_missing_folder_says_what_to_pass(tiny_head, tmp_path):
    graph = os.path.join(tiny_head("bert"), "model.onnx")
    with pytest.raises(HeadError, match="is a file, not a feature head folder"):
        FeatureHead.open(graph)
    with pytest.raises(HeadError, match="does not exist"):
        FeatureHead.open(tmp_path / "nowhere")


def test_truncation_warns_once_per_call_and_says_how_many(tiny_head):
    head = FeatureHead.open(tiny_head("bert"))
    long_prompt = "word " * 2000
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        head.features(long_prompt, ["short answer", "another answer", "a third"])
    trunc = [w for w in got if issubclass(w.category, TruncationWarning)]
    assert len(trunc) == 1 and "3 of 3" in str(trunc[0].message)
    assert head.last_truncated == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # a short pair warns nothing
        head.features("short prompt", ["short answer"])
    assert head.last_truncated == 0


def test_cli_help_lists_every_command_and_imports_nothing_heavy():
    code = ("import sys, contextlib, io\nfrom edge_omd.apps.cli import main, COMMANDS\n"
            "buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n"
            "    try:\n        main(['--help'])\n    except SystemExit as e:\n        assert e.code == 0\n"
            "out = buf.getvalue()\nassert all(c in out for c in COMMANDS), out\n"
            "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'onnx', 'matplotlib')"
            " if m in sys.modules]\nprint('HEAVY', heavy)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout


# ---------------------------------------------------------------- text (issue 21, 8)
def test_a_lone_surrogate_is_read_as_the_replacement_character(tiny_head):
    """Python allows a lone surrogate in a str, UTF-8 cannot hold it: the head tokenizes it as
    U+FFFD (as the Java TextEncoder does) instead of failing in the tokenizer."""
    for arch in ("bert", "qwen2"):
        head = FeatureHead.open(tiny_head(arch))
        got = head.features("the cat \ud800 is", ["on the \udc00", "\udfff"])
        want = head.features("the cat \ufffd is", ["on the \ufffd", "\ufffd"])
        assert (got == want).all()


def test_a_huge_prompt_is_cut_before_the_tokenizer(tiny_head):
    """Only what max_length can keep is tokenized: a 2 MB prompt reaches the tokenizer as a few
    thousand characters (a 10 MB one took 27 s and 1.7 GB tokenized whole)."""
    head = FeatureHead.open(tiny_head("bert"))
    enc = head._encoder
    seen = []

    class Spy:
        def __getattr__(self, name):
            return getattr(tok, name)

        def encode(self, text, **kw):
            seen.append(len(text))
            return tok.encode(text, **kw)
    tok, enc.tokenizer = enc.tokenizer, Spy()
    big = ("the cat is on the computer . " * 80_000)[:2_000_000]
    with pytest.warns(TruncationWarning):
        phi = head.features(big, ["is it safe ?"])
    assert phi.shape == (1, head.dim) and 0 < max(seen) < 100_000


def test_prior_cli_reads_a_lone_surrogate_through_a_real_head(tiny_head, tmp_path, capsys):
    import json
    from edge_omd.apps import cli
    rows = [{"prompt": f"how do I boil an egg ? {i}", "chosen": "put the egg in water \ud800",
             "rejected": f"no . {i}"} for i in range(12)]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc = cli.main(["prior", str(pairs), str(tmp_path / "p.prior"), "--head", tiny_head("bert"),
                   "--rank", "2"])
    assert rc == 0, capsys.readouterr().err
