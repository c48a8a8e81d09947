"""The optional style block of a head (issue 11 item 2): definitions, manifest, fingerprint."""
import json
import math
import shutil

import numpy as np
import pytest

from edge_omd.errors import ExportError, HeadError
from edge_omd.head.manifest import feature_settings
from edge_omd.head.style import STYLE_FEATURES, StyleBlock, style_raw

L = math.log1p


def feats(text):
    return dict(zip(STYLE_FEATURES, style_raw(text)))


def test_definitions_on_hand_counted_texts():
    t = "# Title\n\nSome **bold** text, 42 items!\n- one\n* two\n3. three\n\n```py\nx = 1\n```\nOK?"
    f = feats(t)
    assert f["log_codepoints"] == L(len(t))
    assert f["log_words"] == L(len(t.split()))
    assert f["log_lines"] == L(9)                # 11 lines, 2 blank
    assert f["list_items"] == L(3)
    assert f["headers"] == L(1)
    assert f["code_blocks"] == L(1)
    assert f["questions"] == L(1) and f["exclamations"] == L(1) and f["bold"] == L(1)
    assert f["digit_ratio"] == 4 / len(t)       # 4, 2, 3, 1
    letters = sum(c.isascii() and c.isalpha() for c in t)
    assert f["upper_ratio"] == sum("A" <= c <= "Z" for c in t) / letters
    assert f["paragraphs"] == L(3)


def test_lengths_are_code_points_and_classes_ascii():
    """An emoji outside the BMP is one code point (two UTF-16 units in Java); non-ASCII
    digits and capitals do not count; Unicode spaces separate words."""
    f = feats("😀 Ünïcode ٣\u3000word")
    assert f["log_codepoints"] == L(16)          # 1 + 1 + 7 + 1 + 1 + 1 + 4
    assert f["log_words"] == L(4)
    assert f["digit_ratio"] == 0.0
    assert f["upper_ratio"] == 0.0                # Ü is not ASCII: letters n, c, o, d, e, w, o, r, d
    e = feats("")
    assert e["log_codepoints"] == 0.0 and e["log_words"] == 0.0 and e["paragraphs"] == 0.0


def test_block_standardises_and_scales():
    texts = ["Short.", "A much longer answer, with a list:\n- a\n- b", "Why? Because!", "```c\nx;\n```"]
    b = StyleBlock.fit(texts, weight=2.0)
    X = np.array([style_raw(t) for t in texts])
    Z = b(texts)
    k = len(STYLE_FEATURES)
    np.testing.assert_allclose(Z.mean(0), 0.0, atol=1e-12)
    sd = X.std(0)
    np.testing.assert_allclose(Z[:, sd > 0].std(0), 2.0 / math.sqrt(k), rtol=1e-12)
    again = StyleBlock.from_manifest(json.loads(json.dumps(b.to_manifest())))
    np.testing.assert_array_equal(again(texts), Z)   # decimal strings round-trip exactly


@pytest.mark.parametrize("edit", [
    lambda m: m.update(version=2), lambda m: m.update(features=m["features"][:-1]),
    lambda m: m["mean"].pop(), lambda m: m.update(weight=1.0), lambda m: m["sd"].__setitem__(0, "0.0"),
    lambda m: m["mean"].__setitem__(0, "nan"), lambda m: m.update(weight="-1"), lambda m: m.pop("sd")])
def test_bad_style_entries_are_refused(edit):
    m = StyleBlock.fit(["a", "bb b", "c?"]).to_manifest()
    edit(m)
    with pytest.raises(HeadError):
        StyleBlock.from_manifest(m)


def test_style_enters_the_fingerprint_only_when_present():
    m = {"d": 4, "pooling": "mean"}
    assert "style" not in feature_settings(m) and "style" not in feature_settings(dict(m, style=None))
    s = StyleBlock.fit(["a", "bb"]).to_manifest()
    assert feature_settings(dict(m, style=s))["style"] == s


@pytest.mark.export
def test_exported_head_appends_the_block(tiny_head, tmp_path):
    pytest.importorskip("torch")
    from edge_omd.head.runner import FeatureHead
    from edge_omd_export import export_model  # noqa: F401
    pairs = [("How do I boil an egg ?", "Put the egg in boiling water ."),
             ("Tell me a joke about cats .", "No !"), ("Give me one word .", "- a\n- b")]
    plain = FeatureHead.open(tiny_head("bert"), ["CPUExecutionProvider"])
    styled_dir = tiny_head("bert", style=True, style_texts=tuple(r for _, r in pairs) + ("x y z",))
    styled = FeatureHead.open(styled_dir, ["CPUExecutionProvider"])
    k = len(STYLE_FEATURES)
    assert styled.dim == plain.dim + k and styled.fingerprint != plain.fingerprint
    got = styled.features_batch(pairs)
    assert got.shape == (3, plain.dim + k) and got.dtype == np.float32
    np.testing.assert_allclose(got[:, :plain.dim], plain.features_batch(pairs), atol=1e-6)
    block = StyleBlock.fit([r for _, r in pairs] + ["x y z"])
    np.testing.assert_allclose(got[:, plain.dim:], block([r for _, r in pairs]).astype(np.float32),
                               rtol=1e-6, atol=1e-7)
    # the block is part of the identity: an edited weight breaks the fingerprint
    edited = tmp_path / "edited"
    shutil.copytree(styled_dir, edited)
    m = json.loads((edited / "manifest.json").read_text())
    m["style"]["weight"] = "2.0"
    (edited / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(HeadError, match="fingerprint"):
        FeatureHead.open(edited, ["CPUExecutionProvider"])


@pytest.mark.export
def test_bad_style_options_are_refused(tiny_ckpt, tmp_path):
    pytest.importorskip("torch")
    from edge_omd_export import export_model
    for kw in ({"style": "yes"}, {"style": True, "style_texts": "one text"},
               {"style": True, "style_texts": ["only one"]}, {"style": True, "style_weight": -1}):
        with pytest.raises(ExportError, match="style"):
            export_model(tiny_ckpt("bert"), tmp_path / "x", progress=False, **kw)
