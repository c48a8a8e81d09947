"""Every error of every `edge-omd` command is one line on stderr,
`edge-omd <cmd>: <ErrorClass>: <what>` (the file and line in <what> where there is one), with
a non-zero exit status; never a traceback (edge_omd/apps/cli.py)."""
import gzip
import json
import subprocess
import sys

import pytest

from edge_omd.apps import cli
from edge_omd.apps import prior as prior_app
from tests.sdk.fakes import FakeHead

ROW = {"prompt": "a question", "chosen": "a good answer", "rejected": "a bad one"}


def one_line(capsys, cmd: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"edge-omd {cmd}: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def fake_head(monkeypatch):
    monkeypatch.setattr(prior_app, "open_head", lambda folder: FakeHead(dim=8))


def _jsonl(path, lines: bytes):
    path.write_bytes(b"".join(json.dumps(ROW).encode() + b"\n" for _ in range(3)) + lines)
    return path


@pytest.mark.parametrize("bad, what", [
    (b"[" * 100_000 + b"]" * 100_000 + b"\n", r":4: not JSON \(RecursionError"),
    (b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n', r":4: not UTF-8 \(byte 0xe9"),
    (b'{"prompt": 1, "chosen": "a", "rejected": "b"}\n', ":4: 'prompt' must be a string"),
])
def test_prior_names_the_file_and_line(tmp_path, fake_head, capsys, bad, what):
    import re
    pairs = _jsonl(tmp_path / "pairs.jsonl", bad)
    assert cli.main(["prior", str(pairs), str(tmp_path / "p"), "--head", "h"]) == 1
    line = one_line(capsys, "prior")
    assert line.startswith(f"edge-omd prior: InvalidInputError: {pairs}:4: ")
    assert re.search(what, line) and not (tmp_path / "p").exists()


@pytest.mark.parametrize("damage", ["truncated", "not-gzip"])
def test_prior_reports_a_damaged_gzip_file(tmp_path, fake_head, capsys, damage):
    data = gzip.compress(b"".join(json.dumps(ROW).encode() + b"\n" for _ in range(2000)))
    pairs = tmp_path / "pairs.jsonl.gz"
    pairs.write_bytes(data[:len(data) // 2] if damage == "truncated" else b"plain text\n")
    assert cli.main(["prior", str(pairs), str(tmp_path / "p"), "--head", "h"]) == 1
    line = one_line(capsys, "prior")
    assert f"InvalidInputError: {pairs}:" in line and "gzip" in line


def test_prior_with_a_lone_surrogate_learns(tmp_path, fake_head, capsys):
    """A JSON escape of a lone surrogate is text like any other (the head reads it as U+FFFD)."""
    rows = [dict(ROW, chosen=f"good \ud800 answer {i}") for i in range(20)]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))     # the escape \\ud800
    assert cli.main(["prior", str(pairs), str(tmp_path / "p"), "--head", "h", "--rank", "2"]) == 0


@pytest.mark.parametrize("argv", [
    ["prior"], ["prior", "a", "b", "--head", "h", "--rank", "two"], ["demo", "--rounds", "x"],
    ["demo", "--rounds", "0"], ["export"], ["export", "a", "b", "--variant", "fp64"],
    ["bench", "--only", "nothing"], ["users"], ["show", "store"], ["check", "--what"],
    ["export-user", "s", "u"], ["import-user", "s"], ["delete"], ["rank", "s", "u", "p", "a"],
])
def test_usage_errors_are_one_line(argv, capsys):
    assert cli.main(argv) == 2
    assert "UsageError" in one_line(capsys, argv[0])


def test_an_unknown_command_is_one_line(capsys):
    assert cli.main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("edge-omd: UsageError: unknown command")


@pytest.mark.parametrize("argv, error", [
    (["demo", "--head", "{tmp}/nowhere", "--store", "{tmp}/s.sqlite"], "HeadError"),
    (["export", "{tmp}/no-checkpoint", "{tmp}/out", "--quiet"], ""),
    (["prior", "{tmp}/missing.jsonl", "{tmp}/p", "--head", "h"], "FileNotFoundError"),
    (["users", "{tmp}/no-store"], "StoreError"),
    (["show", "{tmp}/no-store", "u"], "StoreError"),
    (["check", "{tmp}/no-store"], "StoreError"),
    (["export-user", "{tmp}/no-store", "u", "{tmp}/x"], "StoreError"),
    (["import-user", "{tmp}/no-store", "u", "{tmp}/x"], "FileNotFoundError"),
    (["delete", "{tmp}/no-store", "u"], "StoreError"),
    (["rank", "{tmp}/no-store", "u", "--head", "{tmp}/nowhere", "p", "a"], "HeadError"),
])
def test_every_command_reports_its_errors_on_one_line(argv, error, tmp_path, fake_head, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(argv) == 1
    assert f": {error}" in one_line(capsys, argv[0])


def test_a_bug_is_one_line_too_and_its_traceback_on_request(monkeypatch, capsys):
    def broken(argv):
        raise TypeError("a bug")
    monkeypatch.setattr(prior_app, "_main", broken)
    assert cli.main(["prior"]) == 1
    line = one_line(capsys, "prior")
    assert "TypeError: a bug" in line and "EDGE_OMD_TRACEBACK=1" in line
    monkeypatch.setenv("EDGE_OMD_TRACEBACK", "1")
    with pytest.raises(TypeError):
        cli.main(["prior"])


def test_an_interrupt_and_a_warning(monkeypatch, capsys):
    import warnings

    def interrupted(argv):
        warnings.warn("two\nlines", UserWarning)
        raise KeyboardInterrupt
    monkeypatch.setattr(prior_app, "_main", interrupted)
    assert cli.main(["prior"]) == 130
    assert capsys.readouterr().err.splitlines() == ["edge-omd prior: UserWarning: two lines",
                                                    "edge-omd prior: interrupted"]


def test_the_installed_command_exits_non_zero_with_one_line(tmp_path):
    bad = tmp_path / "pairs.jsonl"
    bad.write_bytes(b"\xff\xfe\n")
    r = subprocess.run([sys.executable, "-m", "edge_omd.apps.cli", "prior", str(bad),
                        str(tmp_path / "p"), "--head", str(tmp_path / "nowhere")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("edge-omd prior: HeadError: ")
