"""Tiny llama / qwen2 / qwen3 exported to ONNX and compared with PyTorch (no download)."""
import hashlib
import json
import os

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edge_omd.errors import InvalidInputError  # noqa: E402
from edge_omd.head.runner import FeatureHead  # noqa: E402
from tests.export import _tiny  # noqa: E402

pytestmark = pytest.mark.export

PAIRS = _tiny.PAIRS[:3]  # (the empty response is test_pooling's case)


def torch_reference(ckpt, head, pairs, normalize):
    """HF AutoModel, one text at a time, last token, (L2) -- independent of the exporter."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModel.from_pretrained(ckpt).eval()
    m = head.manifest
    out = []
    for p, r in pairs:
        if m["template_source"] == "chat_template":
            ids = tok.apply_chat_template([{"role": "user", "content": p},
                                           {"role": "assistant", "content": r}], tokenize=True)
            ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        else:
            ids = tok(p + "\n" + r)["input_ids"]
        with torch.no_grad():
            f = model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].numpy()
        out.append(f / np.linalg.norm(f) if normalize else f)
    return np.stack(out)


@pytest.mark.parametrize("arch,normalize", [("llama", True), ("qwen2", False), ("qwen3", True)])
def test_fp32_matches_pytorch(tiny_ckpt, tiny_head, arch, normalize):
    folder = tiny_head(arch, "fp32", normalize)
    head = FeatureHead.open(folder, ["CPUExecutionProvider"])
    m = head.manifest
    assert m["architecture"] == arch and m["d"] == 32 == head.dim
    assert m["pooling"] == "last_token" and m["normalize"] is normalize
    assert m["parity"]["max_abs_err"] <= 1e-4 and m["parity"]["tokenizer_ids_match_hf"]
    ref = torch_reference(tiny_ckpt(arch), head, PAIRS, normalize)
    got = head.features_batch(PAIRS)
    assert got.dtype == np.float32 and got.shape == (3, 32)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    # the features differ between texts (a constant output would pass a loose check)
    assert np.abs(got[0] - got[1]).max() > 1e-2
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    one = head.features(PAIRS[2][0], [PAIRS[2][1], PAIRS[0][1]])
    np.testing.assert_allclose(one[0], got[2], atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_left_and_right_padding_give_same_features(tiny_head, arch):
    folder = tiny_head(arch)
    right = FeatureHead.open(folder, ["CPUExecutionProvider"], padding_side="right")
    left = FeatureHead.open(folder, ["CPUExecutionProvider"], padding_side="left")
    a, b = right.features_batch(PAIRS), left.features_batch(PAIRS)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # raw graph: the same row with 5 extra padding tokens on either side
    import onnxruntime as ort
    sess = ort.InferenceSession(os.path.join(folder, "model.onnx"), providers=["CPUExecutionProvider"])
    ids, mask, _ = right._encoder.encode_batch([PAIRS[0]])
    pad = np.full((1, 5), 1, np.int64)
    zero = np.zeros((1, 5), np.int64)
    base = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    for x, mk in [(np.hstack([pad, ids]), np.hstack([zero, mask])),
                  (np.hstack([ids, pad]), np.hstack([mask, zero]))]:
        np.testing.assert_allclose(sess.run(None, {"input_ids": x, "attention_mask": mk})[0], base,
                                   atol=1e-5)


def test_chat_template_rendered_into_manifest(tiny_ckpt, tiny_head):
    from transformers import AutoTokenizer
    head = FeatureHead.open(tiny_head("qwen2"), ["CPUExecutionProvider"])
    m = head.manifest
    assert m["template_source"] == "chat_template" and m["add_special_tokens"] is False
    assert m["template"] == "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{response}<|im_end|>\n"
    tok = AutoTokenizer.from_pretrained(tiny_ckpt("qwen2"))
    msgs = [{"role": "user", "content": PAIRS[0][0]}, {"role": "assistant", "content": PAIRS[0][1]}]
    want = tok(tok.apply_chat_template(msgs, tokenize=False), add_special_tokens=False)["input_ids"]
    got, cut = head._encoder.encode_one(*PAIRS[0])
    assert got == list(want) and not cut
    # llama here has no chat template: plain template with BOS from the tokenizer
    lm = FeatureHead.open(tiny_head("llama"), ["CPUExecutionProvider"]).manifest
    assert lm["template"] == "{prompt}\n{response}" and lm["add_special_tokens"] is True


def test_truncation_keeps_response_end(tiny_head):
    head = FeatureHead.open(tiny_head("llama", max_length=12), ["CPUExecutionProvider"])
    assert head.max_length == 12
    long_prompt = " ".join(["the cat is on the computer ."] * 10)
    response = "Boil or filter it first ; river water can carry germs"
    ids, cut = head._encoder.encode_one(long_prompt, response)
    tok = head._encoder.tokenizer
    want_tail = tok.encode(response, add_special_tokens=False).ids[-11:]
    assert cut and len(ids) == 12
    assert ids[0] == tok.token_to_id("<s>") and ids[1:] == want_tail
    f = head.features_batch([(long_prompt, response), ("Cats are animals .", "No .")])
    assert f.shape == (2, 32) and head.last_truncated == 1
    with pytest.raises(InvalidInputError, match="max_length"):
        head.features(long_prompt, [response], truncate=False)


def _weight_bytes(h):
    import onnx
    g = onnx.load(os.path.join(h._folder, "model.onnx")).graph
    return sum(len(t.raw_data) for t in g.initializer)


def test_fp16_variant(tiny_head):
    fp32 = FeatureHead.open(tiny_head("qwen3"), ["CPUExecutionProvider"])
    head = FeatureHead.open(tiny_head("qwen3", "fp16"), ["CPUExecutionProvider"])
    m = head.manifest
    assert m["dtype"] == "fp16" and m["static_shape"] is None
    p = m["parity"]
    assert p["cosine_min"] >= 0.99 and 0.5 < p["ranking_spearman_mean"] <= 1.0
    a, b = fp32.features_batch(PAIRS), head.features_batch(PAIRS)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.99
    assert head.fingerprint != fp32.fingerprint
    assert _weight_bytes(head) < 0.6 * _weight_bytes(fp32)   # the conversion really happened


def test_int8_variant(tiny_head):
    """What a tiny RANDOM model can show about int8 (the real quality bar, MiniLM on 1000
    HH-RLHF texts: cosine mean >= 0.995, worst >= 0.985, is printed by
    `python -m edge_omd_bench.features`; a random 32-wide model says nothing about real heads):

    * the quantised graph runs through the runner, keeps shapes, L2 norm and finite values;
    * its features track fp32: cosine >= 0.98 on the runner's texts and in the export parity
      report. Measured 0.9965 (min over 12 parity texts; mean 0.9981) with onnxruntime
      1.31.1, the same on a CPU with VNNI and under `qemu-x86_64 -cpu Haswell` (no VNNI);
      0.98 leaves room for kernel changes yet fails on the saturation bug this guards against
      (0.4942 with 8-bit weights on the CPU without VNNI) and on per-tensor weights there
      (0.936);
    * reward RANKINGS agree (what the personalizer uses): Spearman of <theta, phi> over 16
      random theta, mean >= 0.95 (measured 0.991, min 0.972 over the 12 parity texts);
    * every int8 weight lies in the 7-bit range [-64, 64], the property that makes onnxruntime's
      u8s8 kernel saturation-free on x86 CPUs without VNNI (255 * 64 * 2 <= 32767) and holds
      on any machine, whatever CPU runs this test;
    * the weights shrank (int8 about a quarter of fp32 bytes).
    """
    import onnx
    from onnx import numpy_helper
    fp32 = FeatureHead.open(tiny_head("qwen3"), ["CPUExecutionProvider"])
    head = FeatureHead.open(tiny_head("qwen3", "int8"), ["CPUExecutionProvider"])
    m = head.manifest
    assert m["dtype"] == "int8" and m["static_shape"] is None
    p = m["parity"]
    assert p["cosine_min"] >= 0.98 and p["ranking_spearman_mean"] >= 0.95
    a, b = fp32.features_batch(PAIRS), head.features_batch(PAIRS)
    assert b.shape == a.shape == (3, 32) and np.all(np.isfinite(b))
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.98
    assert head.fingerprint != fp32.fingerprint
    g = onnx.load(os.path.join(head._folder, "model.onnx")).graph
    q = [numpy_helper.to_array(t) for t in g.initializer if t.data_type == onnx.TensorProto.INT8]
    assert sum(w.size for w in q) > 10_000                         # the weights are int8 ...
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in q) <= 64   # ... in 7 bits
    assert {n.op_type for n in g.node} >= {"DynamicQuantizeLinear", "MatMulInteger"}
    assert _weight_bytes(head) < 0.35 * _weight_bytes(fp32)


def _toy_head_graph(path, scale=60.0, vocab=50, width=64, out=8, seed=0):
    """(input_ids, attention_mask) -> Gather(E) -> MatMul(W) -> masked sum: a head-shaped graph
    whose MatMul input has ONE outlier channel, 3, large on ONE token, 7 (as MiniLM's FFN
    channel 856 is on a few tokens: rare values that set the whole per-tensor scale)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((vocab, width)).astype(np.float32)
    E[7, 3] = scale
    W = rng.standard_normal((width, out)).astype(np.float32)
    inits = [numpy_helper.from_array(E, "E0"), numpy_helper.from_array(W, "W"),
             numpy_helper.from_array(np.array([1], np.int64), "ax1")]
    # Identity: the table is not an initializer of the Gather, so only the MatMul is quantised
    nodes = [helper.make_node("Identity", ["E0"], ["E"]),
             helper.make_node("Gather", ["E", "input_ids"], ["x"]),
             helper.make_node("MatMul", ["x", "W"], ["h"]),
             helper.make_node("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["mf", "ax2"], ["m3"]),
             helper.make_node("Mul", ["h", "m3"], ["hm"]),
             helper.make_node("ReduceSum", ["hm", "ax1"], ["features"], keepdims=0)]
    inits.append(numpy_helper.from_array(np.array([2], np.int64), "ax2"))
    g = helper.make_graph(nodes, "toy", [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "t"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["b", out])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def test_int8_outlier_channels_split_off(tmp_path):
    """The outlier split: found on calibration rows, exact in float32, and it is what makes
    the int8 product accurate when one input channel dwarfs the others (MiniLM's FFN)."""
    import onnx
    import onnxruntime as ort
    from edge_omd_export import variants
    src = str(tmp_path / "toy.onnx")
    _toy_head_graph(src)
    rng = np.random.default_rng(1)
    ids = rng.integers(8, 50, (8, 24)).astype(np.int64)
    ids[:, 0] = 7                                      # the outlier token once per row
    mask = np.ones_like(ids)
    mask[4:, 18:] = 0
    plan = variants.find_outlier_channels(src, ids, mask)
    assert plan == {"x": [3]}                          # exactly the scaled channel
    model = onnx.load(src)
    excluded = variants.split_outlier_channels(model, plan)
    assert len(excluded) == 1
    onnx.checker.check_model(model)

    def run(m):
        m = m if isinstance(m, str) else m.SerializeToString()
        return ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(
            None, {"input_ids": ids, "attention_mask": mask})[0]
    ref = run(src)
    np.testing.assert_allclose(run(model), ref, rtol=1e-5, atol=1e-4)   # same function
    err = {}
    for name, calib in (("plain", None), ("split", (ids, mask))):
        d = tmp_path / name
        d.mkdir()
        variants.to_int8(src, str(d), str(d), False, calib)
        err[name] = float(np.abs(run(str(d / "model.onnx")) - ref).max() / np.abs(ref).max())
    # measured 0.068 (plain) vs 0.016 (split) with onnxruntime 1.31.1
    assert err["split"] < 0.4 * err["plain"], err
    # no outlier -> no split (a plain random model such as the tiny Qwen3 keeps its graph)
    _toy_head_graph(src, scale=1.0)
    assert variants.find_outlier_channels(src, ids, mask) == {}


@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_qdq_static_graph(tiny_head, arch):
    head = FeatureHead.open(tiny_head(arch, "qdq", max_length=24), ["CPUExecutionProvider"])
    m = head.manifest
    assert m["static_shape"] == [1, 24] and m["dtype"] == "qdq"
    import onnx
    g = onnx.load(os.path.join(head._folder, "model.onnx"))
    ops = {n.op_type for n in g.graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    dims = [d.dim_value for d in g.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 24]
    f = head.features_batch(PAIRS)
    assert f.shape == (3, 32) and np.all(np.isfinite(f))
    assert m["parity"]["cosine_min"] >= 0.9


def test_external_data_and_fingerprint(tiny_head):
    head = FeatureHead.open(tiny_head("qwen2", external_data=True), ["CPUExecutionProvider"])
    files = head.manifest["graph_files"]
    assert files == ["model.onnx", "model.onnx_data"]
    h = hashlib.sha256()
    for name in files:
        h.update(open(os.path.join(head._folder, name), "rb").read())
    assert head.manifest["graph_sha256"] == h.hexdigest()   # both files, in the listed order
    # the head fingerprint covers the graph hash (and tokenizer + settings, test_fingerprint.py)
    assert len(head.fingerprint) == 32 and head.fingerprint != h.digest()
    assert head.manifest["fingerprint"] == head.fingerprint.hex()
    ref = FeatureHead.open(tiny_head("qwen2", normalize=False), ["CPUExecutionProvider"])
    a = head.features_batch(PAIRS)
    b = ref.features_batch(PAIRS)
    np.testing.assert_allclose(a, b / np.linalg.norm(b, axis=1, keepdims=True), atol=1e-5)


def test_cli_export(tiny_ckpt, tmp_path, capsys):
    from edge_omd.apps.cli import main
    rc = main(["export", tiny_ckpt("qwen3"), str(tmp_path / "h"), "--variant", "fp32",
               "--max-length", "64", "--quiet"])
    assert rc == 0
    m = json.load(open(tmp_path / "h" / "manifest.json"))
    assert m["max_length"] == 64 and m["architecture"] == "qwen3"
    assert m["exporter"]["path"] == "optimum"
    rc = main(["export", tiny_ckpt("qwen3"), str(tmp_path / "t"), "--exporter", "torch",
               "--max-length", "64", "--quiet"])
    assert rc == 0
    t = json.load(open(tmp_path / "t" / "manifest.json"))
    assert t["exporter"]["path"] == "torch" and t["fingerprint"] != m["fingerprint"]
    (tmp_path / "calib.txt").write_text("\n".join(_tiny.CORPUS))
    rc = main(["export", tiny_ckpt("qwen3"), str(tmp_path / "q"), "--variant", "qdq",
               "--calibration-file", str(tmp_path / "calib.txt"), "--exporter", "optimum",
               "--quiet"])
    assert rc == 1 and "--exporter torch" in capsys.readouterr().err
    rc = main(["export", str(tmp_path / "nope"), str(tmp_path / "h2"), "--quiet"])
    assert rc == 1 and "does not exist" in capsys.readouterr().err
    rc = main(["export", tiny_ckpt("qwen3"), str(tmp_path / "s"), "--variant", "fp32",
               "--max-length", "64", "--quiet", "--style", "--style-weight", "0.25"])
    assert rc == 0
    s = json.load(open(tmp_path / "s" / "manifest.json"))
    assert float(s["style"]["weight"]) == 0.25
    assert "wording" not in s and "wording" in m     # a view option replaces the default views


def test_gpu_providers_only_where_present(tiny_head):
    import onnxruntime as ort
    folder = tiny_head("llama")
    cpu = FeatureHead.open(folder, ["CPUExecutionProvider"])
    assert cpu.provider == "CPUExecutionProvider"
    head = FeatureHead.open(folder)          # default preference list, falls back to CPU
    assert head.provider in ort.get_available_providers()
    if head.provider == "CPUExecutionProvider":
        pytest.skip("no GPU/NPU provider usable here; CPU fallback checked")
    np.testing.assert_allclose(head.features_batch(PAIRS), cpu.features_batch(PAIRS), atol=1e-3)


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_tiny_encoders_mean_pooling(tiny_ckpt, tiny_head, arch):
    """BERT-family, pooling "mean": masked mean over every token inside the graph, same for
    either padding side, equal to HF (the response span: tests/export/test_pooling.py)."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    folder = tiny_head(arch, pooling="mean")
    head = FeatureHead.open(folder, ["CPUExecutionProvider"])
    assert head.manifest["pooling"] == "mean" and head.manifest["kind"] == "encoder"
    left = FeatureHead.open(folder, ["CPUExecutionProvider"], padding_side="left")
    got = head.features_batch(PAIRS)
    np.testing.assert_allclose(left.features_batch(PAIRS), got, atol=1e-5)
    tok = AutoTokenizer.from_pretrained(tiny_ckpt(arch))
    model = AutoModel.from_pretrained(tiny_ckpt(arch)).eval()
    for (p, r), g in zip(PAIRS, got):
        with torch.no_grad():
            h = model(**tok(p + "\n" + r, return_tensors="pt")).last_hidden_state[0].mean(0)
        np.testing.assert_allclose(g, (h / h.norm()).numpy(), atol=1e-5)


def test_reexport_gives_the_same_fingerprint(tiny_ckpt, tiny_head, tmp_path):
    """Same checkpoint + options -> byte-identical graph, so a learned state stays bound."""
    from edge_omd_export import export_model
    first = FeatureHead.open(tiny_head("llama"), ["CPUExecutionProvider"])
    again = export_model(tiny_ckpt("llama"), tmp_path / "again", progress=False)
    second = FeatureHead.open(again, ["CPUExecutionProvider"])
    assert second.fingerprint == first.fingerprint
    for key in ("graph_sha256", "tokenizer_sha256", "fingerprint"):
        assert second.manifest[key] == first.manifest[key]
    other = export_model(tiny_ckpt("llama"), tmp_path / "raw", normalize=False, progress=False)
    assert FeatureHead.open(other, ["CPUExecutionProvider"]).fingerprint != first.fingerprint
