"""bench/features.py helpers on tiny heads: real-text parsing, int8 quality, runner memory."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.export


def test_hh_pairs_split_prompt_and_responses():
    from edge_omd_bench import features
    pairs = features.load_hh_pairs(5)
    if pairs is None:
        pytest.skip(f"hh-rlhf not found under {features.HH_DIR}")
    assert len(pairs) == 5
    for prompt, chosen, rejected in pairs:
        assert prompt.startswith("Human:") and "Assistant:" not in chosen[:12]
        assert chosen != rejected or chosen == ""


def test_quality_and_rss_on_tiny_heads(tiny_head):
    from edge_omd_bench import features
    pairs = [("Is it safe ?", "Boil water first .", "Yes , always ."),
             ("Tell me a joke .", "Why did the cat sit on the computer ?", "No ."),
             ("How do I boil an egg ?", "Put the egg in boiling water .", "Cats are animals ."),
             ("Give me one word .", "Hello", "the a an of")]
    q = features.quality(tiny_head("qwen3"), tiny_head("qwen3", "int8"), pairs)
    assert q["n_texts"] == 8 and 0.95 <= q["cos_mean"] <= 1.0 + 1e-6
    assert -1.0 <= q["rho"] <= 1.0
    same = features.quality(tiny_head("qwen3"), tiny_head("qwen3"), pairs)
    assert np.isclose(same["cos_min"], 1.0, atol=1e-6) and np.isclose(same["rho"], 1.0)
    mb = features.runner_peak_rss_mb(tiny_head("qwen3"))
    assert 10 < mb < 4000


def test_int8_bar_on_tiny_heads(tiny_head):
    """The int8 bar's figures are computed, not assumed (no timing is asserted: shared CPUs)."""
    from edge_omd_bench import features
    items = [("Is it safe ?", "Boil water first ."), ("Tell me a joke .", "No ."),
             ("How do I boil an egg ?", "Put the egg in boiling water ."), ("Hello", "the a an of")]
    r = features.int8_bar(tiny_head("qwen3"), tiny_head("qwen3", "int8"), items, reps=2,
                          repeats=1, vocab_hi=50)
    assert r["n_texts"] == 4 and 0.98 <= r["cos_min"] <= r["cos_mean"] <= 1.0 + 1e-6
    assert r["speedup 1 thread"] > 0 and r["speedup default threads"] > 0
    # measured 0.967: a 32-wide model's file is mostly graph structure, not weights
    assert 0.5 < r["size_ratio"] < 1.0
    same = features.int8_bar(tiny_head("qwen3"), tiny_head("qwen3"), items, reps=2, repeats=1,
                             vocab_hi=50)
    assert np.isclose(same["cos_min"], 1.0, atol=1e-6) and same["size_ratio"] == 1.0
