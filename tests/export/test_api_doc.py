"""docs/API.md runs as written: every ```python block is executed ON ITS OWN (a fresh namespace,
a fresh folder), with the demo's head cache (`edge_omd.paths.heads_dir()`, under
$EDGE_OMD_CACHE) holding a tiny exported BERT-family head where the MiniLM head would be, so
`ensure_demo_head()` opens it instead of exporting the real one. The table of old names is
checked against the aliases in the code."""
import os
import re
from pathlib import Path

import pytest

from edge_omd import Personalizer, RewardModel

pytestmark = pytest.mark.export

API = Path(__file__).resolve().parents[2] / "docs" / "API.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_api_doc_has_an_example_of_every_verb_it_recommends():
    text = API.read_text(encoding="utf-8")
    code = "\n".join(python_blocks(text))
    assert len(python_blocks(text)) >= 4
    for verb in ("thumb", "prefer", "pick", "rank", "pair_to_show", "queries_to_ask",
                 "learn_pair", "learn_thumb", "learn_choice"):
        assert f".{verb}(" in code, verb


def test_every_python_block_of_the_api_doc_runs_alone(tiny_head, tmp_path, monkeypatch):
    from edge_omd.apps.demo import HEAD_NAME
    cache = tmp_path / "cache"
    (cache / "heads").mkdir(parents=True)
    os.symlink(tiny_head("bert"), cache / "heads" / HEAD_NAME)
    monkeypatch.setenv("EDGE_OMD_CACHE", str(cache))
    for i, block in enumerate(python_blocks(API.read_text(encoding="utf-8"))):
        here = tmp_path / f"block{i + 1}"
        here.mkdir()
        monkeypatch.chdir(here)
        try:
            exec(compile(block, f"docs/API.md python block {i + 1}", "exec"),
                 {"__name__": "__api_doc__"})
        except Exception as e:  # report which block broke, with its text
            raise AssertionError(f"docs/API.md python block {i + 1} failed: "
                                 f"{type(e).__name__}: {e}\n---\n{block}") from e


def test_the_table_of_old_names_is_the_code():
    text = API.read_text(encoding="utf-8")
    table = text[text.index("## Deprecated names"):]
    listed = set(re.findall(r"^\| `(\w+)\.(\w+)[`(]", table, flags=re.M))
    aliases = {(cls.__name__, n) for cls in (Personalizer, RewardModel)
               for n, v in vars(cls).items()
               if (getattr(v, "__doc__", None) or "").startswith("Deprecated:")}
    assert aliases <= listed, aliases - listed
