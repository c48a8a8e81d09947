"""Response-span pooling (issue 11 item 1) for every exported architecture, against PyTorch.

The reference is independent of the runner: the Hugging Face tokenizer (with its offset
mapping) on the rendered text, the span = tokens ending after the response's first character
to the end of the row, the HF base model on that one row, mean over the span, L2.
"""
import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edge_omd.errors import ExportError, HeadError  # noqa: E402
from edge_omd.head.runner import FeatureHead  # noqa: E402
from tests.export import _tiny  # noqa: E402

pytestmark = pytest.mark.export

PAIRS = _tiny.PAIRS
ARCH_POOLINGS = [("llama", "response_mean"), ("llama", "last_token"),
                 ("qwen2", "response_mean"), ("qwen3", "response_mean"),
                 ("bert", "response_mean"), ("bert", "mean"),
                 ("roberta", "response_mean"), ("roberta", "mean")]


def hf_reference(ckpt, head, pairs):
    """(n, d) features computed with transformers only (module docstring)."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModel.from_pretrained(ckpt).eval()
    m = head.manifest
    pre, rest = m["template"].split("{prompt}")
    mid, post = rest.split("{response}")
    out = []
    for p, r in pairs:
        text = pre + p + mid + r + post
        enc = tok(text, add_special_tokens=m["add_special_tokens"], return_offsets_mapping=True)
        ids, offs = enc["input_ids"], enc["offset_mapping"]
        r0 = len(pre + p + mid)
        with torch.no_grad():
            h = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        if m["pooling"] == "last_token":
            f = h[-1]
        elif m["pooling"] == "mean":
            f = h.mean(0)
        else:
            # the first token that ends after the response start (specials added by the
            # post-processor have offsets (0, 0)); none: the last token
            first = next((i for i, (_, end) in enumerate(offs) if end > r0), len(ids) - 1)
            f = h[first:].mean(0)
        f = f.numpy()
        out.append(f / np.linalg.norm(f) if m["normalize"] else f)
    return np.stack(out)


@pytest.mark.parametrize("arch,pooling", ARCH_POOLINGS)
def test_pooling_matches_pytorch_both_padding_sides(tiny_ckpt, tiny_head, arch, pooling):
    folder = tiny_head(arch, pooling=pooling)
    head = FeatureHead.open(folder, ["CPUExecutionProvider"])
    m = head.manifest
    assert m["pooling"] == pooling
    want_inputs = ["input_ids", "attention_mask"] + (["pool_mask"] if pooling == "response_mean" else [])
    assert m["inputs"] == want_inputs
    assert m["parity"]["max_abs_err"] <= 1e-4 and m["parity"]["left_right_max_abs_diff"] <= 1e-4
    got = head.features_batch(PAIRS)
    left = FeatureHead.open(folder, ["CPUExecutionProvider"], padding_side="left")
    np.testing.assert_allclose(left.features_batch(PAIRS), got, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got, hf_reference(tiny_ckpt(arch), head, PAIRS), atol=1e-4, rtol=0)
    assert np.abs(got[0] - got[1]).max() > 1e-2


@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_response_span_sees_the_prompt_and_only_pools_the_response(tiny_head, arch):
    """Same response, other prompt: the features change (attention sees the prompt) but far
    less than under "mean" over every token (the prompt is not pooled)."""
    resp = "Boil or filter it first ; river water can carry germs , always ."
    a, b = ("Is it safe to drink water from a river ?", resp), ("Tell me a joke about cats .", resp)
    span = FeatureHead.open(tiny_head(arch, pooling="response_mean"), ["CPUExecutionProvider"])
    fa, fb = span.features_batch([a, b])
    assert np.abs(fa - fb).max() > 1e-4
    if arch == "bert":
        full = FeatureHead.open(tiny_head(arch, pooling="mean"), ["CPUExecutionProvider"])
        ga, gb = full.features_batch([a, b])
        assert np.linalg.norm(fa - fb) < np.linalg.norm(ga - gb)


@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_truncation_keeps_the_span(tiny_ckpt, tiny_head, arch):
    """A prompt far over max_length is cut first; the head equals the reference on the cut
    row, pooled over the whole response (+ tail)."""
    import torch
    from transformers import AutoModel
    folder = tiny_head(arch, pooling="response_mean", max_length=16)
    head = FeatureHead.open(folder, ["CPUExecutionProvider"])
    long_prompt = " ".join(["the cat is on the computer ."] * 6)
    resp = "Put the egg in boiling water ."
    with pytest.warns(Warning):
        got = head.features_batch([(long_prompt, resp), ("Cats are animals .", "No .")])
    ids, start, cut = head._encoder.encode_span(long_prompt, resp)
    tail = head._encoder.encode_span("", resp)
    assert cut and len(ids) == 16
    assert ids[start:] == tail[0][tail[1]:]                     # the whole response + tail
    model = AutoModel.from_pretrained(tiny_ckpt(arch)).eval()
    with torch.no_grad():
        f = model(input_ids=torch.tensor([ids])).last_hidden_state[0, start:].mean(0).numpy()
    np.testing.assert_allclose(got[0], f / np.linalg.norm(f), atol=1e-4, rtol=0)


def test_pooling_is_in_the_fingerprint(tiny_head, tmp_path):
    span = FeatureHead.open(tiny_head("bert", pooling="response_mean"), ["CPUExecutionProvider"])
    full = FeatureHead.open(tiny_head("bert", pooling="mean"), ["CPUExecutionProvider"])
    assert span.fingerprint != full.fingerprint
    # editing the recorded pooling (and the inputs with it) breaks the fingerprint
    edited = tmp_path / "edited"
    shutil.copytree(tiny_head("bert", pooling="response_mean"), edited)
    m = json.loads((edited / "manifest.json").read_text())
    m["pooling"], m["inputs"] = "mean", ["input_ids", "attention_mask"]
    (edited / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(HeadError, match="fingerprint"):
        FeatureHead.open(edited, ["CPUExecutionProvider"])
    # pooling and inputs must agree
    m["inputs"] = ["input_ids", "attention_mask", "pool_mask"]
    (edited / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(HeadError, match="pool_mask|inputs"):
        FeatureHead.open(edited, ["CPUExecutionProvider"])


def test_defaults_and_refused_poolings(tiny_ckpt, tiny_head, tmp_path):
    from edge_omd_export import export_model
    from edge_omd_export.architectures import SUPPORTED
    # the encoders' default stays "mean": response_mean did not beat it on both HH-RLHF splits
    assert FeatureHead.open(tiny_head("bert"), ["CPUExecutionProvider"]).manifest["pooling"] == \
        SUPPORTED["bert"].pooling == SUPPORTED["roberta"].pooling == "mean"
    assert FeatureHead.open(tiny_head("llama"), ["CPUExecutionProvider"]).manifest["pooling"] == \
        "last_token"
    for arch, bad in (("llama", "mean"), ("bert", "last_token"), ("bert", "max")):
        with pytest.raises(ExportError, match="pooling"):
            export_model(tiny_ckpt(arch), tmp_path / f"{arch}-{bad}", pooling=bad, progress=False)
        assert not (tmp_path / f"{arch}-{bad}" / "manifest.json").exists()


@pytest.mark.parametrize("variant", ["int8", "qdq"])
def test_quantised_variants_take_the_pool_mask(tiny_head, variant):
    kw = {"max_length": 24} if variant == "qdq" else {}
    head = FeatureHead.open(tiny_head("bert", variant, pooling="response_mean", **kw),
                            ["CPUExecutionProvider"])
    m = head.manifest
    assert m["inputs"][-1] == "pool_mask" and m["parity"]["cosine_min"] >= 0.9
    ref = FeatureHead.open(tiny_head("bert", pooling="response_mean", **kw), ["CPUExecutionProvider"])
    a, b = head.features_batch(PAIRS[:2]), ref.features_batch(PAIRS[:2])
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.9
    assert os.path.isfile(os.path.join(head._folder, m["graph_files"][0]))


def test_registry_serves_the_old_head_folder_after_the_default_changed(tiny_head, tmp_path):
    """Issue 11 item 8 with real head folders: a user learned on the "mean" head (the default
    before) keeps it; new users get the "response_mean" head; reset moves the user."""
    from edge_omd.head import HeadRegistry
    from edge_omd.personalizer import Personalizer
    from edge_omd.store import SQLiteStore
    old_dir, new_dir = tiny_head("bert", pooling="mean"), tiny_head("bert", pooling="response_mean")
    old = FeatureHead.open(old_dir, ["CPUExecutionProvider"])
    with SQLiteStore(str(tmp_path / "s.sqlite")) as store:
        p = Personalizer(old, store, "alice")
        p.prefer(*PAIRS[0], PAIRS[1][1])
        p.close()
        reg = HeadRegistry(new_dir, old_dir, providers=["CPUExecutionProvider"])
        head = reg.head_for(store, "alice")
        assert head.fingerprint == old.fingerprint and head.manifest["pooling"] == "mean"
        assert reg.personalizer(store, "alice").updates == 1
        assert reg.head_for(store, "bob").manifest["pooling"] == "response_mean"
        assert reg.reset(store, "alice").head.manifest["pooling"] == "response_mean"
