"""Reading a local Hugging Face checkpoint folder: config, tokenizer, weights, content hash.

Never touches the hub: everything is loaded with `local_files_only=True`.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os

from edge_omd.errors import ExportError
from edge_omd_export.architectures import ArchSpec, detect

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.txt", "vocab.json")
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")


def read_config(ckpt: str) -> tuple[dict, ArchSpec]:
    if not os.path.isdir(ckpt):
        raise ExportError(f"checkpoint folder {ckpt} does not exist; pass a local Hugging Face "
                          "checkpoint folder (config.json, weights, tokenizer files)")
    path = os.path.join(ckpt, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        raise ExportError(f"{path} is missing: {ckpt} is not a Hugging Face checkpoint folder") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{path} cannot be read ({e})") from e
    return config, detect(config, path)


def weight_files(ckpt: str) -> list[str]:
    files = sorted({p for pat in _WEIGHT_PATTERNS for p in glob.glob(os.path.join(ckpt, pat))})
    if not files:
        raise ExportError(f"{ckpt} holds no weights (*.safetensors or pytorch_model*.bin)")
    return files


def source_hash(ckpt: str) -> str:
    """SHA-256 over config.json then the weight files (sorted by name), hex."""
    h = hashlib.sha256()
    for path in [os.path.join(ckpt, "config.json")] + weight_files(ckpt):
        h.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def load_tokenizer(ckpt: str):
    """The checkpoint's fast tokenizer (the runner needs its tokenizer.json)."""
    if not any(os.path.isfile(os.path.join(ckpt, n)) for n in _TOKENIZER_FILES):
        raise ExportError(f"{ckpt} has no tokenizer (none of {', '.join(_TOKENIZER_FILES)}); "
                          "copy the tokenizer files of the model into the checkpoint folder")
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(ckpt, local_files_only=True, use_fast=True)
    except Exception as e:  # transformers raises many types here
        raise ExportError(f"the tokenizer in {ckpt} cannot be loaded ({e})") from e
    if not getattr(tok, "is_fast", False):
        raise ExportError(f"the tokenizer in {ckpt} has no fast (tokenizers) version; the runner "
                          "needs tokenizer.json: convert it with transformers first")
    return tok


def load_model(ckpt: str, spec: ArchSpec):
    """The base model (no LM head) in fp32, eager attention (traceable, no fused-kernel NaNs)."""
    import torch
    from transformers import AutoModel
    try:
        model = AutoModel.from_pretrained(ckpt, local_files_only=True, dtype=torch.float32,
                                          attn_implementation="eager")
    except Exception as e:
        raise ExportError(f"the weights in {ckpt} cannot be loaded as {spec.name} ({e})") from e
    return model.eval()
