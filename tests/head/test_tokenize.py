"""Template splicing, truncation and padding of the runner (needs only `tokenizers`)."""
import numpy as np
import pytest

pytest.importorskip("tokenizers")

from edge_omd.head.tokenize import TextEncoder  # noqa: E402
from edge_omd.errors import InvalidInputError  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    words = ["<pad>", "<s>", "</s>", "[A]", "[B]"] + [f"w{i}" for i in range(40)] + ["{x}"]
    t = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    t.add_special_tokens(["<s>", "</s>", "[A]", "[B]"])
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    t.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    return t


def ids_of(tok, text):
    return tok.encode(text, add_special_tokens=False).ids


def test_template_splice_leaves_braces_alone(tok):
    enc = TextEncoder(tok, "[A] {prompt} [B] {response}", 64, True, 0)
    assert enc.render("w1 {x}", "w2 {response}") == "[A] w1 {x} [B] w2 {response}"


def test_truncation_keeps_template_and_response_end(tok):
    enc = TextEncoder(tok, "[A] {prompt} [B] {response} [A]", 10, True, 0)
    prompt = " ".join(f"w{i}" for i in range(20))
    response = "w30 w31 w32"
    ids, cut = enc.encode_one(prompt, response)
    # <s> [A] | ... w18 w19 [B] w30 w31 w32 | [A] </s>
    assert cut and len(ids) == 10
    assert ids == [1, 3] + ids_of(tok, "w18 w19 [B] w30 w31 w32") + [3, 2]
    # prompt gone entirely -> the response loses its start, never its end
    long_resp = " ".join(f"w{i}" for i in range(20, 40))
    ids, cut = enc.encode_one("w1", long_resp)
    assert ids == [1, 3] + ids_of(tok, " ".join(f"w{i}" for i in range(34, 40))) + [3, 2]
    with pytest.raises(InvalidInputError, match="max_length 10"):
        enc.encode_one(prompt, response, truncate=False)
    short, cut = enc.encode_one("w1", "w2")
    assert not cut and short == tok.encode("[A] w1 [B] w2 [A]").ids


def test_template_longer_than_max_length_is_refused(tok):
    enc = TextEncoder(tok, "[A] [A] [A] {prompt} [B] [B] [B] {response}", 5, True, 0)
    with pytest.raises(InvalidInputError, match="template alone"):
        enc.encode_one("w1 w2 w3", "w4")
    # one token of room is enough: the last token (the decoder's feature) is kept
    enc = TextEncoder(tok, "[A] [A] [A] {prompt} [B] [B] [B] {response}", 6, True, 0)
    ids, cut = enc.encode_one("w1 w2 w3", "w4 w5")
    assert cut and ids == [1, 3, 3, 3, tok.token_to_id("w5"), 2]


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding(tok, side):
    enc = TextEncoder(tok, "{prompt} {response}", 32, True, 0, padding_side=side)
    ids, mask, n = enc.encode_batch([("w1", "w2"), ("w1 w2 w3", "w4 w5")])
    assert ids.shape == mask.shape == (2, 7) and ids.dtype == np.int64 and n == 0
    assert mask.sum(1).tolist() == [4, 7]
    row = ids[0][mask[0] == 1].tolist()
    assert row == [1] + ids_of(tok, "w1 w2") + [2]
    assert (mask[0, :3] == 0).all() if side == "left" else (mask[0, 4:] == 0).all()
    ids, mask, _ = enc.encode_batch([("w1", "w2")], pad_to=9)
    assert ids.shape == (1, 9)


def test_empty_text_without_special_tokens_is_refused(tok):
    enc = TextEncoder(tok, "{prompt}{response}", 8, False, 0)
    with pytest.raises(InvalidInputError, match="no tokens"):
        enc.encode_one("", "")


# ------------------------------------------------------------------ response span (pool_mask)
def test_span_is_response_plus_tail(tok):
    """ids[start:] = the response tokens, then the template tail and trailing specials."""
    enc = TextEncoder(tok, "[A] {prompt} [B] {response} [A]", 64, True, 0)
    ids, start, cut = enc.encode_span("w1 w2 w3", "w4 w5")
    assert not cut
    assert ids == [1, 3] + ids_of(tok, "w1 w2 w3") + [4] + ids_of(tok, "w4 w5") + [3, 2]
    assert ids[start:] == ids_of(tok, "w4 w5") + [3, 2]
    # an empty response pools the tail; an empty prompt changes nothing in the span
    ids, start, _ = enc.encode_span("w1", "")
    assert ids[start:] == [3, 2]
    ids, start, _ = enc.encode_span("", "w7")
    assert ids[start:] == ids_of(tok, "w7") + [3, 2]


def test_span_survives_truncation(tok):
    """The prompt is cut first: the span keeps every response token; once the prompt is gone
    the response loses its START and the span starts right after the template head."""
    enc = TextEncoder(tok, "[A] {prompt} [B] {response} [A]", 10, True, 0)
    prompt = " ".join(f"w{i}" for i in range(20))
    ids, start, cut = enc.encode_span(prompt, "w30 w31")
    assert cut and len(ids) == 10
    assert ids[start:] == ids_of(tok, "w30 w31") + [3, 2] and ids[start - 1] == 4
    long_resp = " ".join(f"w{i}" for i in range(20, 40))
    ids, start, cut = enc.encode_span("w1", long_resp)
    assert cut and len(ids) == 10 and start == 2          # <s> [A] | response end ... [A] </s>
    assert ids[start:] == ids_of(tok, long_resp)[-6:] + [3, 2]


def test_span_without_tail_is_never_empty(tok):
    """No special tokens, no tail: an empty response pools the last token."""
    enc = TextEncoder(tok, "{prompt} {response}", 64, False, 0)
    ids, start, _ = enc.encode_span("w1 w2", "")
    assert ids == ids_of(tok, "w1 w2") and ids[start:] == ids[-1:]
    ids, start, _ = enc.encode_span("w1 w2", "w3")
    assert ids[start:] == ids_of(tok, "w3")


@pytest.mark.parametrize("side", ["right", "left"])
def test_pool_mask_follows_padding(tok, side):
    enc = TextEncoder(tok, "[A] {prompt} [B] {response} [A]", 64, True, 0, side)
    pairs = [("w1", "w2"), ("w1 w2 w3 w4", "w5 w6 w7")]
    ids, mask, pool, n = enc.encode_batch(pairs, pool=True)
    assert n == 0 and ids.shape == mask.shape == pool.shape and pool.dtype == np.int64
    assert np.all(pool <= mask)
    for i, (p, r) in enumerate(pairs):
        row, start, _ = enc.encode_span(p, r)
        real = ids[i][mask[i] == 1].tolist()
        assert real == row
        assert ids[i][pool[i] == 1].tolist() == row[start:]
    # the two-array form is unchanged
    ids2, mask2, n2 = enc.encode_batch(pairs)
    assert np.array_equal(ids2, ids) and np.array_equal(mask2, mask) and n2 == 0
