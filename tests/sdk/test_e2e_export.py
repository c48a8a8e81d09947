"""End to end on a real (tiny, random-weight) exported head: export -> FeatureHead -> Personalizer."""
import numpy as np
import pytest

from edge_omd.errors import HeadMismatchError
from edge_omd.personalizer import Personalizer
from edge_omd.store import SQLiteStore

PROMPT = "What is the capital of France ?"
RIGHT = "Paris is the capital of France ."
WRONG = "I think it is Lyon , but I am not sure at all ."


@pytest.mark.slow
@pytest.mark.export
def test_personalizer_on_a_tiny_exported_head(tmp_path):
    export = pytest.importorskip("edge_omd_export")
    pytest.importorskip("torch")
    from edge_omd.head.runner import FeatureHead
    from tests.export._tiny import make_checkpoint

    heads = {}
    for arch in ("llama", "qwen3"):
        ckpt = make_checkpoint(arch, str(tmp_path / f"ckpt-{arch}"))
        folder = export.export_model(ckpt, tmp_path / f"head-{arch}", variant="fp32",
                                     progress=False)
        heads[arch] = FeatureHead.open(folder, ["CPUExecutionProvider"])
    head = heads["llama"]
    store = SQLiteStore(tmp_path / "s.sqlite")
    p = Personalizer(head, store, "alice")
    assert [r.index for r in p.rank(PROMPT, [WRONG, RIGHT], pessimism=0.0)] == [0, 1]   # a tie
    for _ in range(3):
        p.prefer(PROMPT, RIGHT, WRONG)
    ranked = p.rank(PROMPT, [WRONG, RIGHT], pessimism=0.0)
    assert ranked[0].response == RIGHT and ranked[0].reward > ranked[1].reward
    p.thumb(PROMPT, WRONG, up=False)
    assert p.score(PROMPT, [WRONG])[0] < ranked[1].reward
    a, b = p.pair_to_show(PROMPT, [WRONG, RIGHT, "Paris ."], strategy="ucb")
    assert a == int(np.argmax(p.score(PROMPT, [WRONG, RIGHT, "Paris ."])))
    store.close()
    # the state survives reopening, with a freshly opened head
    again = SQLiteStore(tmp_path / "s.sqlite")
    q = Personalizer(FeatureHead.open(head._folder, ["CPUExecutionProvider"]), again, "alice")
    assert q.updates == 4 and q.model.t == 4
    np.testing.assert_array_equal(q.score(PROMPT, [RIGHT, WRONG]), p.score(PROMPT, [RIGHT, WRONG]))
    # another head (same store) is refused, and nothing changes
    with pytest.raises(HeadMismatchError):
        Personalizer(heads["qwen3"], again, "alice")
    with pytest.raises(HeadMismatchError):
        again.check_head(heads["qwen3"].fingerprint, heads["qwen3"].dim)
    assert again.get("alice").updates == 4


@pytest.mark.slow
@pytest.mark.export
def test_demo_head_cache_exports_once_then_reuses(tmp_path, monkeypatch):
    export = pytest.importorskip("edge_omd_export")
    from edge_omd.apps import demo
    from tests.export._tiny import make_checkpoint

    ckpt = make_checkpoint("llama", str(tmp_path / "ckpt"))
    monkeypatch.setattr(demo, "minilm_checkpoint", lambda: ckpt)   # a tiny stand-in checkpoint
    monkeypatch.setenv("EDGE_OMD_CACHE", str(tmp_path / "cache"))
    calls = []
    real = export.export_model

    def counting(*a, **k):
        calls.append(a)
        return real(*a, progress=False, **k)
    monkeypatch.setattr(export, "export_model", counting)
    logs = []
    first = demo.ensure_demo_head(log=logs.append)
    second = demo.ensure_demo_head(log=logs.append)
    assert len(calls) == 1 and first.fingerprint == second.fingerprint
    folder = tmp_path / "cache" / "heads" / demo.HEAD_NAME
    assert sorted(p.name for p in folder.parent.iterdir()) == [demo.HEAD_NAME]
    (folder / "manifest.json").write_text("{ corrupt")              # invalid -> exported again
    third = demo.ensure_demo_head(log=logs.append)
    assert len(calls) == 2 and third.fingerprint == first.fingerprint
    assert any("exporting it again" in m for m in logs)
