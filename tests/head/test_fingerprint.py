"""The head fingerprint covers the whole feature map: graph + tokenizer.json + feature settings.

Two heads that share the graph bytes but differ in template, max_length, tokenizer, pooling,
normalisation, ... compute different features, so they must have different fingerprints and
`check()` must refuse a state learned on the other one.
"""
import hashlib
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

from edge_omd.head import manifest as hm  # noqa: E402
from edge_omd.errors import HeadError, HeadMismatchError  # noqa: E402
from edge_omd.head.runner import FeatureHead  # noqa: E402

pytestmark = pytest.mark.export

CPU = ["CPUExecutionProvider"]
PAIR = ("How do I boil an egg ?", "Put the egg in boiling water .")


class _Model:
    def __init__(self, dim, fp=None):
        self.dim, self.head_fingerprint = dim, fp

    def bind_head(self, fp):
        self.head_fingerprint = fp


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit(folder, resign=False, **changes):
    path = folder / "manifest.json"
    m = json.loads(path.read_text())
    m.update(changes)
    if resign:
        hm.sign_manifest(folder, m)
    path.write_text(json.dumps(m))
    return m


def test_fingerprint_definition_is_the_documented_one(tiny_head):
    """Recompute the fingerprint from the module docstring's definition, independently."""
    folder = tiny_head("llama")
    head = FeatureHead.open(folder, CPU)
    m = head.manifest
    graph = hashlib.sha256(b"".join(open(f"{folder}/{n}", "rb").read()
                                    for n in m["graph_files"])).hexdigest()
    tok = hashlib.sha256(open(f"{folder}/{m['tokenizer_file']}", "rb").read()).hexdigest()
    assert (m["graph_sha256"], m["tokenizer_sha256"]) == (graph, tok)
    keys = ["architecture", "kind", "d", "pooling", "normalize", "dtype", "variant", "max_length",
            "template", "add_special_tokens", "pad_token_id", "static_shape", "inputs", "output"]
    record = {"scheme": "edge-omd-head-fingerprint/1", "graph_sha256": graph,
              "tokenizer_sha256": tok, "features": {k: m.get(k) for k in keys}}
    blob = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert head.fingerprint == hashlib.sha256(blob).digest()
    assert m["fingerprint"] == head.fingerprint.hex()
    assert head.fingerprint != bytes.fromhex(m["graph_sha256"])


@pytest.mark.parametrize("option", [{"template": "Question : {prompt}\nAnswer : {response}"},
                                    {"max_length": 12}])
def test_same_graph_other_export_options_other_fingerprint(tiny_head, option):
    """--template / --max-length leave the graph bytes alone but change the features."""
    a = FeatureHead.open(tiny_head("llama"), CPU)
    b = FeatureHead.open(tiny_head("llama", **option), CPU)
    assert a.manifest["graph_sha256"] == b.manifest["graph_sha256"]      # same graph ...
    assert a.fingerprint != b.fingerprint                                # ... other head
    long_prompt = " ".join(["the cat is on the computer ."] * 4)
    fa, fb = a.features(long_prompt, [PAIR[1]]), b.features(long_prompt, [PAIR[1]])
    assert np.abs(fa - fb).max() > 1e-3                                  # other features
    m = _Model(a.dim)
    a.check(m)
    a.check(m)
    with pytest.raises(HeadMismatchError, match="different heads"):
        b.check(m)
    m2 = _Model(b.dim)
    b.check(m2)
    with pytest.raises(HeadMismatchError):
        a.check(m2)


@pytest.mark.parametrize("changes", [
    {"template": "Question : {prompt}\nAnswer : {response}"},
    {"max_length": 64},
    {"add_special_tokens": False},
    {"pad_token_id": 0},
    {"pooling": "mean"},
    {"normalize": False},
    {"d": 16},
    {"dtype": "fp16"},
    {"variant": "int8"},
])
def test_edited_feature_setting_is_refused_at_open(tiny_head, tmp_path, changes):
    folder = _copy(tiny_head("llama"), tmp_path / "h")
    _edit(folder, **changes)
    with pytest.raises(HeadError, match="fingerprint does not match"):
        FeatureHead.open(folder, CPU)
    with pytest.raises(HeadError, match="fingerprint does not match"):
        FeatureHead.open(folder, CPU, verify=False)     # checked even without the graph read


def test_resigned_edit_gets_another_fingerprint(tiny_head, tmp_path):
    """Re-signing an edited manifest is possible, but it then is another head."""
    src = FeatureHead.open(tiny_head("llama"), CPU)
    folder = _copy(tiny_head("llama"), tmp_path / "h")
    _edit(folder, resign=True, template="Question : {prompt}\nAnswer : {response}")
    other = FeatureHead.open(folder, CPU)
    assert other.fingerprint != src.fingerprint
    m = _Model(src.dim)
    src.check(m)
    with pytest.raises(HeadMismatchError):
        other.check(m)


def test_settings_outside_the_feature_map_keep_the_fingerprint(tiny_head, tmp_path):
    """padding_side (same features either side), parity, provenance: not in the fingerprint."""
    src = FeatureHead.open(tiny_head("llama"), CPU)
    folder = _copy(tiny_head("llama"), tmp_path / "h")
    _edit(folder, padding_side="left", parity=None, source_checkpoint="renamed", exporter={})
    same = FeatureHead.open(folder, CPU)
    assert same.fingerprint == src.fingerprint
    assert FeatureHead.open(folder, CPU, padding_side="right").fingerprint == src.fingerprint
    np.testing.assert_allclose(same.features(*PAIR[:1], [PAIR[1]]),
                               src.features(*PAIR[:1], [PAIR[1]]), atol=1e-5)


def _retokenize(path):
    """A valid tokenizer.json with two ordinary words' ids swapped: other ids, other features."""
    tok = json.loads(path.read_text())
    vocab = tok["model"]["vocab"]
    vocab["egg"], vocab["water"] = vocab["water"], vocab["egg"]
    path.write_text(json.dumps(tok))


def test_tampered_tokenizer_is_refused_at_open(tiny_head, tmp_path):
    folder = _copy(tiny_head("llama"), tmp_path / "h")
    _retokenize(folder / "tokenizer.json")
    with pytest.raises(HeadError, match="tokenizer.json does not match"):
        FeatureHead.open(folder, CPU)
    with pytest.raises(HeadError, match="tokenizer.json does not match"):
        FeatureHead.open(folder, CPU, verify=False)
    # without the tokenizer_sha256 key the fingerprint itself still catches it
    m = json.loads((folder / "manifest.json").read_text())
    del m["tokenizer_sha256"]
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(HeadError, match="fingerprint does not match"):
        FeatureHead.open(folder, CPU)
    # re-signed: it opens, as another head with other features
    _edit(folder, resign=True)
    src = FeatureHead.open(tiny_head("llama"), CPU)
    other = FeatureHead.open(folder, CPU)
    assert other.fingerprint != src.fingerprint
    assert other.manifest["graph_sha256"] == src.manifest["graph_sha256"]
    assert np.abs(other.features(*PAIR[:1], [PAIR[1]]) - src.features(*PAIR[:1], [PAIR[1]])).max() > 1e-3


def test_manifest_without_fingerprint_is_refused(tiny_head, tmp_path):
    """A head written before the fingerprint covered the settings must be re-exported."""
    folder = _copy(tiny_head("llama"), tmp_path / "h")
    m = json.loads((folder / "manifest.json").read_text())
    del m["fingerprint"]
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(HeadError, match="missing key 'fingerprint'"):
        FeatureHead.open(folder, CPU)
    _edit(folder, fingerprint="zz")
    with pytest.raises(HeadError, match="fingerprint must be 64 hex"):
        FeatureHead.open(folder, CPU)


def test_registry_keeps_users_of_a_torch_exported_head_after_the_optimum_default(tiny_head,
                                                                                  tmp_path):
    """The default exporter changed (torch -> optimum): other graph bytes, another fingerprint.
    A user learned on the torch head keeps it through HeadRegistry; new users get the optimum
    head; a reset moves the user (README "Changing the head")."""
    from edge_omd.head import HeadRegistry
    from edge_omd.personalizer import Personalizer
    from edge_omd.store import SQLiteStore
    old_dir, new_dir = tiny_head("bert", exporter="torch"), tiny_head("bert")
    old = FeatureHead.open(old_dir, CPU)
    assert old.fingerprint != FeatureHead.open(new_dir, CPU).fingerprint
    with SQLiteStore(str(tmp_path / "s.sqlite")) as store:
        p = Personalizer(old, store, "alice")
        p.prefer(*PAIR, "No .")
        p.close()
        with pytest.raises(HeadMismatchError, match="HeadRegistry"):
            Personalizer(FeatureHead.open(new_dir, CPU), store, "alice")
        reg = HeadRegistry(new_dir, old_dir, providers=CPU)
        assert reg.head_for(store, "alice").fingerprint == old.fingerprint
        assert reg.personalizer(store, "alice").updates == 1
        assert reg.head_for(store, "bob").manifest["exporter"]["path"] == "optimum"
        assert reg.reset(store, "alice").head.manifest["exporter"]["path"] == "optimum"
