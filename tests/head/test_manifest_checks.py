"""Manifest values checked against the graph and the tokenizer: HeadError, never a raw
ValueError or onnxruntime exception.

The edits are re-signed (`sign_manifest`) where needed, as a buggy exporter would write them:
otherwise the fingerprint check would refuse them first (test_fingerprint.py).
"""
import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

from edge_omd.head import manifest as hm  # noqa: E402
from edge_omd.errors import HeadError  # noqa: E402
from edge_omd.head.runner import FeatureHead  # noqa: E402

pytestmark = pytest.mark.export

CPU = ["CPUExecutionProvider"]
LONG = " ".join(["the cat is on the computer ."] * 40)     # ~280 tokens


def _head_copy(src, dst, resign=True, drop=(), **changes):
    shutil.copytree(src, dst)
    path = dst / "manifest.json"
    m = json.loads(path.read_text())
    m.update(changes)
    for k in drop:
        m.pop(k, None)
    if resign:
        hm.sign_manifest(dst, m)
    path.write_text(json.dumps(m))
    return dst


def test_static_shape_must_match_max_length(tiny_head, tmp_path):
    folder = _head_copy(tiny_head("llama"), tmp_path / "h", static_shape=[1, 16])
    with pytest.raises(HeadError, match=r"static_shape \[1, 16\] does not match max_length"):
        FeatureHead.open(folder, CPU)
    with pytest.raises(HeadError, match="static_shape"):
        hm.validate_manifest(dict(json.loads((folder / "manifest.json").read_text()),
                                  static_shape=[1, 0]))


def test_static_shape_must_match_the_graph(tiny_head, tmp_path):
    qdq = tiny_head("llama", "qdq", max_length=24)          # graph input (1, 24)
    FeatureHead.open(qdq, CPU)
    a = _head_copy(qdq, tmp_path / "a", static_shape=[1, 16], max_length=16)
    with pytest.raises(HeadError, match=r"has shape \[1, 16\]|static_shape is \[1, 16\]"):
        FeatureHead.open(a, CPU)
    b = _head_copy(qdq, tmp_path / "b", static_shape=None)
    with pytest.raises(HeadError, match="no static_shape"):
        FeatureHead.open(b, CPU)
    # a dynamic graph with a static_shape claim of another batch still runs: batch rows pad
    c = _head_copy(tiny_head("llama"), tmp_path / "c", static_shape=[2, 128], max_length=128)
    f = FeatureHead.open(c, CPU).features_batch([("a", "b"), ("c", "d"), ("e", "f")])
    assert f.shape == (3, 32)


def test_d_must_match_the_graph_output(tiny_head, tmp_path):
    folder = _head_copy(tiny_head("llama"), tmp_path / "h", d=100)
    with pytest.raises(HeadError, match="graph outputs 32 features but the manifest says d=100"):
        FeatureHead.open(folder, CPU)


@pytest.mark.parametrize("pad", [10 ** 9, 300])
def test_pad_token_id_must_be_in_the_vocabulary(tiny_head, tmp_path, pad):
    folder = _head_copy(tiny_head("llama"), tmp_path / "h", pad_token_id=pad)
    with pytest.raises(HeadError, match=f"pad_token_id {pad} is not a token"):
        FeatureHead.open(folder, CPU)


def test_negative_pad_token_id(tiny_head, tmp_path):
    folder = _head_copy(tiny_head("llama"), tmp_path / "h", resign=False, pad_token_id=-1)
    with pytest.raises(HeadError, match="pad_token_id must be >= 0"):
        FeatureHead.open(folder, CPU)


def test_max_length_within_recorded_positions(tiny_head, tmp_path):
    src = tiny_head("bert")
    assert json.loads(open(f"{src}/manifest.json").read())["max_positions"] == 128
    folder = _head_copy(src, tmp_path / "h", resign=False, max_length=4096)
    with pytest.raises(HeadError, match="max_length 4096 exceeds the model's 128 positions"):
        FeatureHead.open(folder, CPU)


def test_runtime_failure_is_a_head_error(tiny_head, tmp_path):
    """No max_positions recorded: an over-long row fails inside onnxruntime -> HeadError."""
    folder = _head_copy(tiny_head("bert"), tmp_path / "h", drop=["max_positions"],
                        max_length=4096)
    head = FeatureHead.open(folder, CPU)
    assert head.features("q", ["short"]).shape == (1, 32)
    with pytest.raises(HeadError, match=r"the graph failed on input of shape .*max_length 4096"):
        head.features("q", ["short", LONG])


class _Session:
    def __init__(self, real, out):
        self._real, self._out = real, out

    def run(self, names, feeds):
        if isinstance(self._out, Exception):
            raise self._out
        return [self._out(feeds["input_ids"].shape[0])]

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_wrong_output_shape_or_runtime_error_inside_features(tiny_head):
    head = FeatureHead.open(tiny_head("llama"), CPU)
    real = head._session
    head._session = _Session(real, lambda n: np.zeros((n, 7), np.float32))
    with pytest.raises(HeadError, match=r"features of shape \(1, 7\), expected \(1, 32\)"):
        head.features("q", ["a"])
    head._session = _Session(real, lambda n: np.zeros((n + 1, 32), np.float32))
    with pytest.raises(HeadError, match="expected"):
        head.features_batch([("q", "a"), ("q", "b")])
    head._session = _Session(real, RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT"))
    with pytest.raises(HeadError, match="INVALID_ARGUMENT"):
        head.features("q", ["a"])
    head._session = real
    assert head.features("q", ["a"]).shape == (1, 32)


def test_static_pad_shorter_than_a_row_is_a_head_error(tiny_head):
    enc = FeatureHead.open(tiny_head("llama"), CPU)._encoder
    with pytest.raises(HeadError, match="static"):
        enc.encode_batch([("the cat is on the computer", "a robot paints")], pad_to=3)


# ---------------------------------------------------------------- hostile head folders (issue 21, 7)
def _manifest_text(tiny_head, tmp_path):
    folder = tmp_path / "h"
    shutil.copytree(tiny_head("bert"), folder)
    return folder, (folder / "manifest.json").read_text()


@pytest.mark.parametrize("edit", ["nested", "nested-key", "digits"])
def test_a_hostile_manifest_is_a_head_error(tiny_head, tmp_path, edit):
    """JSON nested past Python's recursion limit (RecursionError), a nested extra key, and a
    5,000-digit d (beyond Python's int string limit: ValueError) are HeadError."""
    folder, text = _manifest_text(tiny_head, tmp_path)
    if edit == "nested":
        text = "[" * 100_000 + "]" * 100_000
    elif edit == "nested-key":
        text = text.replace("{", '{"x": ' + "[" * 200 + "]" * 200 + ", ", 1)
    else:
        m = json.loads(text)
        text = text.replace(f'"d": {m["d"]}', '"d": 1' + "0" * 5000, 1)
    (folder / "manifest.json").write_text(text)
    with pytest.raises(HeadError, match="corrupt"):
        FeatureHead.open(folder, CPU)


def test_a_manifest_over_the_limit_is_refused_unread(tiny_head, tmp_path):
    folder, _ = _manifest_text(tiny_head, tmp_path)
    path = folder / "manifest.json"
    with open(path, "r+b") as f:
        f.truncate(64 << 20)      # sparse: nothing is written to disk; 64 x the limit
    with pytest.raises(HeadError, match=r"67108864 bytes, above the \d+ any manifest needs"):
        FeatureHead.open(folder, CPU)


def test_a_fifo_manifest_is_refused_without_blocking(tiny_head, tmp_path):
    folder, _ = _manifest_text(tiny_head, tmp_path)
    (folder / "manifest.json").unlink()
    os.mkfifo(folder / "manifest.json")      # open() of a FIFO with no writer would wait forever
    with pytest.raises(HeadError, match="not a regular file"):
        FeatureHead.open(folder, CPU)


def test_d_is_bounded_like_every_state():
    from edge_omd.config import MAX_DIM
    with pytest.raises(HeadError, match=f"d must be in \\[1, {MAX_DIM}\\]"):
        hm.validate_manifest(_minimal_manifest(d=MAX_DIM + 1))
    hm.validate_manifest(_minimal_manifest(d=MAX_DIM))


def _minimal_manifest(**changes):
    m = {"format": hm.FORMAT_NAME, "format_version": hm.FORMAT_VERSION, "architecture": "bert",
         "kind": "encoder", "d": 32, "pooling": "mean", "normalize": True, "dtype": "fp32",
         "opset": 17, "max_length": 64, "template": "{prompt}\n{response}",
         "add_special_tokens": True, "pad_token_id": 0, "padding_side": "right",
         "graph_files": ["model.onnx"], "graph_sha256": "ab" * 32, "fingerprint": "cd" * 32,
         "tokenizer_file": "tokenizer.json", "inputs": ["input_ids", "attention_mask"],
         "output": "features"}
    m.update(changes)
    return m


def test_a_tokenizer_panic_is_a_head_error(tiny_head, tmp_path):
    """A split regex that exceeds Oniguruma's backtracking limit makes `tokenizers` panic:
    pyo3's PanicException derives from BaseException, past any `except Exception`."""
    folder = tmp_path / "h"
    shutil.copytree(tiny_head("bert"), folder)
    tok = json.loads((folder / "tokenizer.json").read_text())
    tok["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": "(?:x+x+)+y"},
                            "behavior": "Isolated", "invert": False}
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    m = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(hm.sign_manifest(folder, m)))
    head = FeatureHead.open(folder, CPU)
    with pytest.raises(HeadError, match="tokenizer failed"):
        head.features("x" * 40, ["an answer"])
    assert head.features("the cat", ["is on the computer"]).shape == (1, head.dim)


def _relocate_external_data(folder, location):
    """Point every external tensor of folder/model.onnx at `location` (a copy of its data)."""
    import onnx
    path = str(folder / "model.onnx")
    model = onnx.load(path, load_external_data=False)
    moved = 0
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = location
                moved += 1
    onnx.save_model(model, path)
    shutil.copy(folder / "model.onnx_data", folder / location)
    return moved


def test_a_graph_reading_an_unlisted_file_is_refused(tiny_head, tmp_path):
    """The external-data file the graph reads must be one the fingerprint hashes: otherwise
    editing it would change the features under the same fingerprint."""
    folder = tmp_path / "h"
    shutil.copytree(tiny_head("qwen2", external_data=True), folder)
    assert _relocate_external_data(folder, "weights.bin") > 0
    m = json.loads((folder / "manifest.json").read_text())
    assert m["graph_files"] == ["model.onnx", "model.onnx_data"]
    (folder / "manifest.json").write_text(json.dumps(hm.sign_manifest(folder, m)))
    with pytest.raises(HeadError, match="'weights.bin', a file the manifest's graph_files"):
        FeatureHead.open(folder, CPU)
    # listed under its own name, the same graph opens (and its fingerprint covers the file)
    m["graph_files"] = ["model.onnx", "weights.bin"]
    (folder / "manifest.json").write_text(json.dumps(hm.sign_manifest(folder, m)))
    FeatureHead.open(folder, CPU)


def test_external_locations_are_found_in_every_kind_of_tensor(tmp_path):
    """Initializers, Constant-node attribute tensors and the initializers of an If subgraph."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from edge_omd.head.external import external_locations

    def ext(name, location):
        t = helper.make_tensor(name, TensorProto.FLOAT, [1], [1.0])
        t.ClearField("float_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", "0"), ("length", "4")):
            e = t.external_data.add()
            e.key, e.value = k, v
        return t
    then = helper.make_graph([helper.make_node("Identity", ["w2"], ["y"])], "then", [],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
                             initializer=[ext("w2", "sub.bin")])
    nodes = [helper.make_node("Constant", [], ["c"], value=ext("c0", "const.bin")),
             helper.make_node("If", ["cond"], ["out"], then_branch=then, else_branch=then)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])],
                              initializer=[ext("w", "init.bin")])
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    assert external_locations(str(path)) == {"init.bin", "const.bin", "sub.bin"}
    path.write_bytes(b"\x0f\x00garbage")
    with pytest.raises(HeadError, match="not a valid ONNX model"):
        external_locations(str(path))
