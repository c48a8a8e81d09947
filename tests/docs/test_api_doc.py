"""docs/API.md says what the code does: its examples show every verb it recommends (they run,
each on its own, in tests/docs/test_examples.py), and its table of old names is the code's
deprecated aliases."""
import re
from pathlib import Path


from edge_omd import Personalizer, RewardModel

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


def test_the_table_of_old_names_is_the_code():
    text = API.read_text(encoding="utf-8")
    table = text[text.index("## Deprecated names"):]
    listed = set(re.findall(r"^\| `(\w+)\.(\w+)[`(]", table, flags=re.M))
    aliases = {(cls.__name__, n) for cls in (Personalizer, RewardModel)
               for n, v in vars(cls).items()
               if (getattr(v, "__doc__", None) or "").startswith("Deprecated:")}
    assert aliases <= listed, aliases - listed
