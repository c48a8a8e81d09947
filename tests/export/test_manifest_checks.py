"""Manifest values checked against the graph and the tokenizer: HeadError, never a raw
ValueError or onnxruntime exception.

The edits are re-signed (`sign_manifest`) where needed, as a buggy exporter would write them:
otherwise the fingerprint check would refuse them first (test_fingerprint.py).
"""
import json
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
