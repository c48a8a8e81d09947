"""A head's views (issue 20 part 2, edge_omd/head/views.py): manifest round trip, fingerprint,
old heads unchanged, runtime features == the views bench's features, bad options refused."""
import json
import shutil

import numpy as np
import pytest

from edge_omd.errors import ExportError, HeadError
from edge_omd.head import manifest as hm
from edge_omd.head.style import StyleBlock
from edge_omd.head.views import DEFAULT_STYLE_WEIGHT, DEFAULT_WORDING, HeadViews
from edge_omd.head.wording import WordingView

TEXTS = ["Short.", "A longer answer:\n- one\n- two", "Why? **Because**!", "```py\nx = 1\n```",
         "Perhaps. I'm sorry, I think so \U0001F600", ""]
BASE = {"format": "edge-omd-feature-head", "format_version": 1, "architecture": "bert",
        "kind": "encoder", "d": 384, "pooling": "mean", "normalize": True, "dtype": "fp32",
        "variant": "fp32", "opset": 17, "max_length": 256, "template": "{prompt}\n{response}",
        "add_special_tokens": True, "pad_token_id": 0, "padding_side": "right",
        "graph_files": ["model.onnx"], "graph_sha256": "ab" * 32, "fingerprint": "cd" * 32,
        "tokenizer_file": "tokenizer.json", "static_shape": None,
        "inputs": ["input_ids", "attention_mask"], "output": "features"}
G, T = bytes(range(32)), bytes(range(32, 64))
#: BASE's fingerprint and BASE + a fixed style block's, computed by the code before views
#: existed (main at a72ede6): a head without a wording view keeps its identity.
OLD_FP = {"plain": "2c83f39e3e140412029c803fece140bd392dcfab7f8ecf15a3ac7f877021e883",
          "style": "bb7ef84807cfdbf8d7ea94fc25571dade5e812dbe05dfd63fcd1493cc443d6ac"}
FIXED_STYLE = StyleBlock(list(range(12)), [1.0] * 12, 0.5).to_manifest()


def test_default_views_round_trip_through_the_manifest():
    v = HeadViews.from_options(views="default", style_texts=TEXTS)
    assert v.style.weight == DEFAULT_STYLE_WEIGHT
    assert (v.wording.bits, v.wording.ngrams, v.wording.transform, v.wording.scale) == (
        DEFAULT_WORDING["bits"], DEFAULT_WORDING["ngrams"], DEFAULT_WORDING["transform"],
        DEFAULT_WORDING["scale"])
    m = json.loads(json.dumps(dict(BASE, **v.to_manifest())))      # through JSON text
    hm.validate_manifest(m)
    again = HeadViews.from_manifest(m)
    assert again.to_manifest() == v.to_manifest() and again.dim == v.dim == 12 + 256
    assert hm.feature_dim(m) == 384 + 12 + 256 and hm.feature_dim(BASE) == 384
    e = np.random.default_rng(0).standard_normal((len(TEXTS), 384)).astype(np.float32)
    got = again.append(e, TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384 + 268)
    np.testing.assert_array_equal(got, v.append(e, TEXTS))
    np.testing.assert_array_equal(got[:, :384], e)
    np.testing.assert_array_equal(got[:, 384:396], v.style(TEXTS).astype(np.float32))
    np.testing.assert_array_equal(got[:, 396:], v.wording(TEXTS).astype(np.float32))
    assert HeadViews.from_options(views="none").dim == 0 and not HeadViews.from_manifest(BASE)


def test_views_enter_the_fingerprint_and_old_heads_keep_theirs():
    assert hm.head_fingerprint(G, T, BASE).hex() == OLD_FP["plain"]
    assert hm.head_fingerprint(G, T, dict(BASE, wording=None, style=None)).hex() == OLD_FP["plain"]
    assert hm.head_fingerprint(G, T, dict(BASE, style=FIXED_STYLE)).hex() == OLD_FP["style"]
    seen = set(OLD_FP.values())
    for w in (WordingView(8, 2, "log1p", 0.5), WordingView(9, 2, "log1p", 0.5),
              WordingView(8, 1, "log1p", 0.5), WordingView(8, 2, "raw", 0.5),
              WordingView(8, 2, "log1p", 0.25)):
        for style in (None, FIXED_STYLE):
            m = dict(BASE, style=style, wording=w.to_manifest())
            assert hm.feature_settings(m)["wording"] == w.to_manifest()
            fp = hm.head_fingerprint(G, T, m).hex()
            assert fp not in seen, "another view set, another fingerprint"
            seen.add(fp)


@pytest.mark.parametrize("kw, match", [
    (dict(views="all"), "views must be one of"),
    (dict(views="default", style=True), "preset"),
    (dict(views="none", wording=True), "preset"),
    (dict(style="yes"), "style must be True or False"),
    (dict(style_weight=0.5), "needs style=True"),
    (dict(style=True, style_weight="1"), "style_weight"),
    (dict(style=True, style_weight=-1.0), "style block"),
    (dict(style=True, style_texts="one text"), "style_texts"),
    (dict(style=True, style_texts=["only one"]), "at least 2"),
    (dict(wording={"bits": 25}), "bits"),
    (dict(wording={"ngrams": 3}), "ngrams"),
    (dict(wording={"transform": "sqrt"}), "transform"),
    (dict(wording={"scale": 0.0}), "scale"),
    (dict(wording={"size": 256}), "wording must be"),
    (dict(wording="yes"), "wording must be"),
])
def test_bad_view_options_are_refused(kw, match):
    with pytest.raises(HeadError, match=match):
        HeadViews.from_options(**kw)


def test_bad_view_entries_in_a_manifest_are_refused():
    ok = WordingView(8, 2, "log1p", 0.5).to_manifest()
    for bad in (dict(ok, scale=0.5), dict(ok, bits=0), dict(ok, hash="fnv"), dict(ok, extra=1),
                dict(ok, version=2), [1, 2]):
        with pytest.raises(HeadError, match="wording"):
            hm.validate_manifest(dict(BASE, wording=bad))
    with pytest.raises(HeadError, match="views' dimensions"):          # 384 + 2^16 > MAX_DIM
        hm.validate_manifest(dict(BASE, wording=dict(ok, bits=16)))


def test_export_refuses_bad_views_before_reading_the_checkpoint(tmp_path):
    from edge_omd_export import export_model
    for kw in (dict(views="most"), dict(views="default", wording=True), dict(wording={"bits": 0}),
               dict(style="yes")):
        with pytest.raises(ExportError, match="views"):
            export_model(tmp_path / "no-such-checkpoint", tmp_path / "out", progress=False, **kw)
    assert not (tmp_path / "out").exists()


def test_cli_wording_options_need_wording(capsys):
    from edge_omd_export.cli import main
    assert main(["ckpt", "out", "--wording-bits", "9"]) == 2
    assert "need --wording" in capsys.readouterr().err


# ----------------------------------------------------------------------------- exported heads
@pytest.mark.export
def test_exported_head_with_views_and_the_registry_path(tiny_head, tmp_path):
    pytest.importorskip("torch")
    from edge_omd.errors import HeadMismatchError
    from edge_omd.head.registry import HeadRegistry
    from edge_omd.head.runner import FeatureHead
    from edge_omd.reward_model import RewardModel
    from edge_omd.store import SQLiteStore
    pairs = [("How do I boil an egg ?", "Put the egg in boiling water ."),
             ("Tell me a joke about cats .", "No !"), ("Give me one word .", "- a\n- b")]
    plain_dir = tiny_head("bert")
    views_dir = tiny_head("bert", views="default", style_texts=tuple(TEXTS))
    plain = FeatureHead.open(plain_dir, ["CPUExecutionProvider"])
    viewed = FeatureHead.open(views_dir, ["CPUExecutionProvider"])
    assert viewed.dim == plain.dim + 12 + 256 and viewed.fingerprint != plain.fingerprint
    assert viewed.manifest["graph_sha256"] == plain.manifest["graph_sha256"]   # same graph
    want = HeadViews.from_options(views="default", style_texts=TEXTS).append(
        plain.features_batch(pairs), [r for _, r in pairs])
    np.testing.assert_array_equal(viewed.features_batch(pairs), want)
    # a state learned on the plain head is refused by the viewed one, served by the registry
    store = SQLiteStore(tmp_path / "s.sqlite")
    m = RewardModel(plain.dim)
    plain.check(m)
    store.update("old", lambda _: m.to_bytes(), head_fingerprint=plain.fingerprint, dim=plain.dim)
    with pytest.raises(HeadMismatchError):
        viewed.check(RewardModel.from_bytes(store.get("old").state))
    reg = HeadRegistry(views_dir, plain_dir, providers=["CPUExecutionProvider"])
    assert reg.head_for(store, "old").fingerprint == plain.fingerprint
    assert reg.head_for(store, "new").fingerprint == viewed.fingerprint
    # the views are part of the identity: an edited wording scale breaks the fingerprint
    edited = tmp_path / "edited"
    shutil.copytree(views_dir, edited)
    mf = json.loads((edited / "manifest.json").read_text())
    mf["wording"]["scale"] = "1.0"
    (edited / "manifest.json").write_text(json.dumps(mf))
    with pytest.raises(HeadError, match="fingerprint"):
        FeatureHead.open(edited, ["CPUExecutionProvider"])


@pytest.mark.export
def test_runtime_features_are_the_views_bench_features(tiny_head):
    """The head the default export writes computes, byte for byte, what bench/views.py measured
    for the chosen combination (Blocks.phi), given the same embedding and style texts."""
    pytest.importorskip("torch")
    from edge_omd.head.runner import FeatureHead
    from edge_omd_bench import peruser_world as pw
    from edge_omd_bench import views as V
    world = pw.build_world(n_hh=0, n_demo=8)
    train = tuple(world.texts[r] for i in world.train for r in world.rows(i))
    plain = FeatureHead.open(tiny_head("bert"), ["CPUExecutionProvider"])
    viewed = FeatureHead.open(tiny_head("bert", views="default", style_texts=train),
                              ["CPUExecutionProvider"])
    chosen = V.Combo(DEFAULT_STYLE_WEIGHT, 1 << DEFAULT_WORDING["bits"], DEFAULT_WORDING["ngrams"],
                     DEFAULT_WORDING["transform"], DEFAULT_WORDING["scale"])
    bench = V.Blocks(world, plain.features_batch(world.pairs)).phi(chosen)
    got = viewed.features_batch(world.pairs)
    assert got.dtype == bench.dtype == np.float32
    np.testing.assert_array_equal(got, bench)


@pytest.mark.export
def test_cli_default_is_the_views_and_users_of_the_old_default_keep_their_head(tiny_ckpt, tmp_path):
    """`edge-omd export` without a view option appends the rule's default views (docs/VIEWS.md);
    a user stored on a head the old default made (`--views none`, the same graph) is served on
    it through HeadRegistry, new users get the new head, and a reset moves the old user over."""
    pytest.importorskip("torch")
    from edge_omd import Personalizer
    from edge_omd.errors import HeadMismatchError
    from edge_omd.head.registry import HeadRegistry
    from edge_omd.head.runner import FeatureHead
    from edge_omd.store import SQLiteStore
    from edge_omd_export.cli import main
    ckpt = tiny_ckpt("bert")
    assert main([ckpt, str(tmp_path / "old"), "--views", "none", "--quiet"]) == 0
    assert main([ckpt, str(tmp_path / "new"), "--quiet"]) == 0
    assert main([ckpt, str(tmp_path / "raw"), "--no-normalize", "--quiet"]) == 0
    cpu = ["CPUExecutionProvider"]
    old, new = FeatureHead.open(tmp_path / "old", cpu), FeatureHead.open(tmp_path / "new", cpu)
    want = HeadViews.from_options(views="default").to_manifest()
    assert {k: new.manifest.get(k) for k in want} == want and new.dim == old.dim + 12 + 256
    assert new.fingerprint != old.fingerprint
    assert new.manifest["graph_sha256"] == old.manifest["graph_sha256"]
    raw = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert raw.get("style") is None and raw.get("wording") is None   # unnormalised: no view
    prompt, answers = "How do I boil an egg ?", ["Put the egg in boiling water .", "No !"]
    store = SQLiteStore(tmp_path / "s.sqlite")
    Personalizer(old, store, "ann").prefer(prompt, *answers)
    with pytest.raises(HeadMismatchError, match="the head it was learned on"):
        Personalizer(new, store, "ann")
    reg = HeadRegistry(tmp_path / "new", tmp_path / "old", providers=cpu)
    p = reg.personalizer(store, "ann")
    p.prefer(prompt, *answers)                       # ann goes on learning on the old head
    rec = store.get("ann")
    assert rec.head_fingerprint == old.fingerprint and rec.updates == 2
    reg.personalizer(store, "bob").prefer(prompt, *answers)
    assert store.get("bob").head_fingerprint == new.fingerprint
    reg.reset(store, "ann").prefer(prompt, *answers)
    assert store.get("ann").head_fingerprint == new.fingerprint and store.get("ann").updates == 1
