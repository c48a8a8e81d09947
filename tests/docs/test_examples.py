"""The README runs as written: every ```python block of README.md is executed, in order, in one
namespace, in a fresh folder where `heads/minilm` (the README's one head path, written there by
its `edge-omd export` example) is a tiny exported BERT-family head. A block that stops working
fails here, so the README cannot rot."""
import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.export

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_python_blocks():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3
    assert all('"heads/minilm"' in b for b in blocks if "FeatureHead.open" in b)


def test_every_python_block_of_the_readme_runs(tiny_head, tmp_path, monkeypatch):
    (tmp_path / "heads").mkdir()
    os.symlink(tiny_head("bert"), tmp_path / "heads" / "minilm")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    for i, block in enumerate(python_blocks(README.read_text(encoding="utf-8"))):
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as e:  # report which block broke, with its text
            raise AssertionError(f"README python block {i + 1} failed: {type(e).__name__}: {e}\n"
                                 f"---\n{block}") from e
