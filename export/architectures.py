"""Which checkpoints can be exported, and how each one is pooled.

Default poolings (`ArchSpec.pooling`; `export_model(pooling=...)` picks another from
`POOLINGS_BY_KIND`, see export/pooling.py):
* decoders (causal LMs): "last_token", the last-layer hidden state at the last non-padding
  token (the paper's choice for Llama-3-8B-Instruct / Qwen2.5-7B-Instruct); "response_mean" is
  the option. No real decoder weights are available here to measure which is better, so the
  paper's choice stays the default;
* BERT-family encoders: "mean", the masked mean of the last layer over every token of prompt +
  response (sentence-transformers' pooling); "response_mean" (the mean over the response span
  while attention sees the prompt) is the option. Measured (bench/pooling.py, README
  "Pooling"): on HH-RLHF with the default learner response_mean was +0.4 points on
  harmless-base but -1.5 on helpful-base (both inside their 95% CIs), so it did not meet the
  bar (>= mean on both splits) and the default stays "mean".
"""
from __future__ import annotations

from dataclasses import dataclass

from edge_omd.errors import ExportError


#: The poolings each kind of model may be exported with (the first is not the default).
POOLINGS_BY_KIND = {"decoder": ("last_token", "response_mean"),
                    "encoder": ("mean", "response_mean")}
ENCODER_DEFAULT_POOLING = "mean"
DECODER_DEFAULT_POOLING = "last_token"


@dataclass(frozen=True)
class ArchSpec:
    name: str      # manifest "architecture"
    kind: str      # "decoder" | "encoder"
    pooling: str   # the default: "last_token" | "mean" | "response_mean"

    def with_pooling(self, pooling: str | None) -> "ArchSpec":
        """This spec with `pooling` (None: the default), or ExportError naming the choices."""
        if pooling is None:
            return self
        allowed = POOLINGS_BY_KIND[self.kind]
        if pooling not in allowed:
            raise ExportError(f"pooling {pooling!r} is not available for {self.kind} model "
                              f"{self.name}; choose one of {', '.join(allowed)}")
        return ArchSpec(self.name, self.kind, pooling)


# config.json "model_type" -> spec. Adding an architecture means checking that its base model
# accepts (input_ids, 4-D additive attention_mask, position_ids) and tracing it in a test.
SUPPORTED: dict[str, ArchSpec] = {
    "llama": ArchSpec("llama", "decoder", DECODER_DEFAULT_POOLING),
    "qwen2": ArchSpec("qwen2", "decoder", DECODER_DEFAULT_POOLING),
    "qwen3": ArchSpec("qwen3", "decoder", DECODER_DEFAULT_POOLING),
    "bert": ArchSpec("bert", "encoder", ENCODER_DEFAULT_POOLING),
    "roberta": ArchSpec("roberta", "encoder", ENCODER_DEFAULT_POOLING),
    "xlm-roberta": ArchSpec("xlm-roberta", "encoder", ENCODER_DEFAULT_POOLING),
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
