"""Which checkpoints can be exported, and how each one is pooled.

Decoders (causal LMs) give phi = last-layer hidden state at the last non-padding token (the
paper's choice for Llama-3-8B-Instruct / Qwen2.5-7B-Instruct); BERT-family encoders give the
masked mean of the last layer (sentence-transformers' pooling for all-MiniLM-L6-v2).
"""
from __future__ import annotations

from dataclasses import dataclass

from edge_omd.errors import ExportError


@dataclass(frozen=True)
class ArchSpec:
    name: str      # manifest "architecture"
    kind: str      # "decoder" | "encoder"
    pooling: str   # "last_token" | "mean"


# config.json "model_type" -> spec. Adding an architecture means checking that its base model
# accepts (input_ids, 4-D additive attention_mask, position_ids) and tracing it in a test.
SUPPORTED: dict[str, ArchSpec] = {
    "llama": ArchSpec("llama", "decoder", "last_token"),
    "qwen2": ArchSpec("qwen2", "decoder", "last_token"),
    "qwen3": ArchSpec("qwen3", "decoder", "last_token"),
    "bert": ArchSpec("bert", "encoder", "mean"),
    "roberta": ArchSpec("roberta", "encoder", "mean"),
    "xlm-roberta": ArchSpec("xlm-roberta", "encoder", "mean"),
}


def supported_names() -> str:
    return ", ".join(sorted(SUPPORTED))


def detect(config: dict, where: str = "config.json") -> ArchSpec:
    """The spec for a checkpoint's config, or `ExportError` naming what is supported."""
    mt = config.get("model_type")
    if mt not in SUPPORTED:
        archs = config.get("architectures") or []
        raise ExportError(f"{where}: model_type {mt!r} ({', '.join(archs) or 'no architectures'}) "
                          f"is not supported; supported model types: {supported_names()}")
    return SUPPORTED[mt]
