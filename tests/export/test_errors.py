"""Wrong architecture, missing files, corrupt manifest/graph/tokenizer, bad arguments, check()."""
import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

from edge_omd.errors import ConfigError, ExportError, HeadError, HeadMismatchError, InvalidInputError  # noqa: E402
from edge_omd.head.runner import FeatureHead  # noqa: E402

pytestmark = pytest.mark.export


def test_unsupported_architecture_names_supported_ones(tiny_ckpt, tmp_path):
    from edge_omd_export import export_model
    with pytest.raises(ExportError, match="gpt2.*supported model types: .*llama.*qwen2.*qwen3"):
        export_model(tiny_ckpt("gpt2"), tmp_path / "h", progress=False)


def test_missing_tokenizer_and_config(tmp_path):
    from edge_omd_export import export_model
    from tests.export._tiny import make_checkpoint
    ckpt = make_checkpoint("llama", str(tmp_path / "c"), tokenizer=False)
    with pytest.raises(ExportError, match="no tokenizer"):
        export_model(ckpt, tmp_path / "h", progress=False)
    os.remove(os.path.join(ckpt, "config.json"))
    with pytest.raises(ExportError, match="config.json is missing"):
        export_model(ckpt, tmp_path / "h", progress=False)


def test_bad_export_arguments(tiny_ckpt, tmp_path):
    from edge_omd_export import export_model
    with pytest.raises(ExportError, match="variant"):
        export_model(tiny_ckpt("llama"), tmp_path / "h", variant="int4", progress=False)
    with pytest.raises(ExportError, match="calibration_texts"):
        export_model(tiny_ckpt("llama"), tmp_path / "h", variant="qdq", progress=False)
    with pytest.raises(ExportError, match="template"):
        export_model(tiny_ckpt("llama"), tmp_path / "h", template="{response} {prompt}",
                     progress=False)
    with pytest.raises(ExportError, match="template alone takes 7 tokens"):
        export_model(tiny_ckpt("llama"), tmp_path / "h", max_length=4, progress=False,
                     template="the cat is {prompt} on the {response} computer")


@pytest.fixture
def head_copy(tiny_head, tmp_path):
    dst = tmp_path / "head"
    shutil.copytree(tiny_head("llama"), dst)
    return dst


def test_corrupt_manifest(head_copy):
    path = head_copy / "manifest.json"
    good = json.loads(path.read_text())
    path.write_text("{not json")
    with pytest.raises(HeadError, match="corrupt"):
        FeatureHead.open(head_copy)
    bad = dict(good)
    del bad["d"]
    path.write_text(json.dumps(bad))
    with pytest.raises(HeadError, match="missing key 'd'"):
        FeatureHead.open(head_copy)
    path.write_text(json.dumps(dict(good, d=True)))
    with pytest.raises(HeadError, match="'d' should be int"):
        FeatureHead.open(head_copy)
    path.write_text(json.dumps(dict(good, template="{response}")))
    with pytest.raises(HeadError, match="template"):
        FeatureHead.open(head_copy)
    path.unlink()
    with pytest.raises(HeadError, match="manifest.json is missing"):
        FeatureHead.open(head_copy)
    with pytest.raises(HeadError, match="does not exist"):
        FeatureHead.open(head_copy / "nope")


def test_corrupt_graph_and_tokenizer(head_copy):
    FeatureHead.open(head_copy)  # intact copy opens
    with open(head_copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(HeadError, match="does not match the manifest"):
        FeatureHead.open(head_copy)
    with pytest.raises(HeadError, match="cannot load the graph|corrupt"):
        (head_copy / "model.onnx").write_bytes(b"garbage")
        FeatureHead.open(head_copy, verify=False)
    os.remove(head_copy / "model.onnx")
    with pytest.raises(HeadError, match="graph file 'model.onnx' is missing"):
        FeatureHead.open(head_copy)


def test_missing_or_corrupt_tokenizer_in_head(head_copy):
    (head_copy / "tokenizer.json").write_text("{broken")
    with pytest.raises(HeadError, match="tokenizer file .* is corrupt"):
        FeatureHead.open(head_copy)
    os.remove(head_copy / "tokenizer.json")
    with pytest.raises(HeadError, match="tokenizer file .* is missing"):
        FeatureHead.open(head_copy)


def test_bad_feature_arguments(tiny_head):
    head = FeatureHead.open(tiny_head("llama"), ["CPUExecutionProvider"])
    with pytest.raises(InvalidInputError, match="prompt must be a str"):
        head.features(None, ["a"])
    with pytest.raises(InvalidInputError, match="responses is empty"):
        head.features("p", [])
    with pytest.raises(InvalidInputError, match="not one str"):
        head.features("p", "a response")
    with pytest.raises(InvalidInputError, match=r"items\[1\]"):
        head.features_batch([("p", "r"), ("p", 3)])
    with pytest.raises(InvalidInputError, match="items is empty"):
        head.features_batch([])
    with pytest.raises(ConfigError, match="providers"):      # an opening argument: ConfigError
        FeatureHead.open(tiny_head("llama"), "CPUExecutionProvider")
    with pytest.raises(ConfigError, match="batch_size"):
        FeatureHead.open(tiny_head("llama"), ["CPUExecutionProvider"], batch_size=0)
    # empty strings are valid input: the template and BOS still give tokens
    assert head.features("", [""]).shape == (1, 32)


class _Model:
    def __init__(self, dim, fp):
        self.dim, self.head_fingerprint, self.bound = dim, fp, None

    def bind_head(self, fp):
        self.bound = fp
        self.head_fingerprint = fp


def test_check_binds_and_refuses_other_heads(tiny_head):
    a = FeatureHead.open(tiny_head("llama"), ["CPUExecutionProvider"])
    b = FeatureHead.open(tiny_head("qwen3"), ["CPUExecutionProvider"])
    assert isinstance(a.fingerprint, bytes) and len(a.fingerprint) == 32
    m = _Model(32, None)
    a.check(m)
    assert m.bound == a.fingerprint
    a.check(m)  # same head: accepted
    with pytest.raises(HeadMismatchError, match="different heads"):
        b.check(m)
    with pytest.raises(HeadMismatchError, match="dim 16"):
        a.check(_Model(16, None))


def test_runner_imports_without_torch(tiny_head):
    """The runner path (open + features) must not import torch or transformers."""
    code = (
        "import sys\n"
        "for m in ('torch', 'transformers', 'optimum'): sys.modules[m] = None\n"
        "import edge_omd\n"
        "from edge_omd.head.runner import FeatureHead\n"
        f"h = FeatureHead.open({tiny_head('qwen3')!r})\n"
        "print(h.features('How do I boil an egg ?', ['No .']).shape)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr
    assert "(1, 32)" in out.stdout
