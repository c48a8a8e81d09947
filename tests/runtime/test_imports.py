"""The runtime imports without torch or transformers (the brief's hard requirement)."""
import subprocess
import sys

CODE = """
import sys
import edge_omd
from edge_omd import RewardModel, Personalizer, SQLiteStore, FolderStore
from edge_omd import strategies, store, state_format
from edge_omd.head import runner, manifest, tokenize
heavy = sorted(m for m in ("torch", "transformers", "onnx") if m in sys.modules)
print("HEAVY", heavy)
"""


def test_runtime_imports_without_torch_or_transformers():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout, r.stdout
