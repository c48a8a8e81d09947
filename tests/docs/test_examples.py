"""The docs run as written: every ```python block of README.md and docs/*.md (new files are
picked up by the glob), and every shell block marked runnable, is executed ON ITS OWN: a fresh
Python (or bash) process, a fresh empty folder, nothing from the blocks before it. So a block
that needs a store or a head makes it itself, and one that stops working fails here.

Fence info strings (GitHub highlights by the first word and ignores the rest):
    ```python                          run
    ```python no-run: <reason>         not run; the reason is required and printed by -rA
    ```bash runnable                   run with bash (likewise ```sh runnable)
    ```bash                            not run (installs, exports, long benchmarks)

The environment is a fresh clone's after `bash scripts/demo.sh`, without its cost: the demo's
head folder ($EDGE_OMD_CACHE/heads/all-minilm-l6-v2-fp32, where `ensure_demo_head()` looks
before it exports the embedded MiniLM) holds a tiny exported BERT-family head, so no example
exports the real model here; compiled kernels come from the suite's kernel cache.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge_omd.paths import numba_cache_dir

pytestmark = pytest.mark.export

ROOT = Path(__file__).resolve().parents[2]
DEMO_HEAD = "all-minilm-l6-v2-fp32"   # edge_omd.apps.demo.HEAD_NAME, not imported: keep it light
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", flags=re.S | re.M)
SHELLS = ("bash", "sh", "shell", "console")


def doc_files() -> list[Path]:
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def blocks(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, language, marker, code) of every fenced block of `path`."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        info = m.group(1).strip()
        lang, _, marker = info.partition(" ")
        out.append((text.count("\n", 0, m.start()) + 1, lang.lower(), marker.strip(), m.group(2)))
    return out


def runnable() -> list:
    cases = []
    for path in doc_files():
        for line, lang, marker, code in blocks(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if lang == "python" and not marker:
                cases.append(pytest.param("python", code, id=where))
            elif lang in SHELLS and marker == "runnable":
                cases.append(pytest.param("bash", code, id=where))
    return cases


def test_markers_are_known_and_give_a_reason():
    """A typo in a marker must not silently turn a block off."""
    for path in doc_files():
        for line, lang, marker, _ in blocks(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if lang == "python":
                assert not marker or re.fullmatch(r"no-run: \S.{9,}", marker), \
                    f"{where}: a python block is run, or marked 'no-run: <reason>' ({marker!r})"
            elif lang in SHELLS:
                assert marker in ("", "runnable"), f"{where}: unknown marker {marker!r}"


def test_the_docs_have_runnable_blocks():
    cases = runnable()
    readme = [c for c in cases if c.id.startswith("README.md:")]
    assert len(readme) >= 1 and len(cases) >= 5


@pytest.fixture(scope="module")
def cache(tiny_head, tmp_path_factory):
    """An EDGE_OMD_CACHE whose demo head is a tiny exported head."""
    root = tmp_path_factory.mktemp("edge_omd_cache")
    (root / "heads").mkdir()
    os.symlink(tiny_head("bert"), root / "heads" / DEMO_HEAD)
    return root


@pytest.mark.parametrize("lang,code", runnable())
def test_block_runs_on_its_own(lang, code, cache, tmp_path):
    env = dict(os.environ, EDGE_OMD_CACHE=str(cache), NUMBA_CACHE_DIR=numba_cache_dir(),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", code] if lang == "python" else ["bash", "-euo", "pipefail", "-c", code]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (f"the block failed (exit {run.returncode}):\n---\n{code}---\n"
                                 f"stdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-3000:]}")


# ----------------------------------------------------------------------------- the README's shape

def test_readme_is_short_and_has_exactly_the_two_quick_start_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    commands = [ln.split("#")[0].strip() for _, lang, _, code in blocks(ROOT / "README.md")
                if lang in SHELLS for ln in code.splitlines() if ln.strip().startswith("bash scripts/")]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/test.sh" in ci    # CI runs the README's test command


def test_relative_links_resolve():
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (path.parent / target).exists(), f"{path.relative_to(ROOT)}: broken link {target}"
