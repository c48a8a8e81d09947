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
