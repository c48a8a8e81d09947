"""The torch module that is traced: base model + pooling + optional L2 norm, all in the graph.

Inputs: input_ids (B, T) int64, attention_mask (B, T) int64 (1 = real token), and for the
pooling "response_mean" also pool_mask (B, T) int64 (1 = a token of the response span, see
edge_omd/head/tokenize.py; a subset of attention_mask). Output: features (B, d) float32.

Poolings (`POOLINGS`; manifest key "pooling", part of the head fingerprint):
* "last_token" (decoders): hidden state at the last real token;
* "mean" (encoders): masked mean over every real token, prompt and response;
* "response_mean" (both): masked mean over the response span only, while attention still sees
  the whole row (prompt included); sum_t p_t h_t / max(sum_t p_t, 1), p = pool_mask.
The graphs of "last_token" and "mean" take two inputs (the same graph as before the third
pooling existed, so re-exporting gives the same fingerprint); "response_mean" takes three.

Padding on either side gives the same features because
* position ids are computed from the mask, pos_t = max(cumsum(mask)_t - 1, 0), so the first
  real token is position 0 whether the row starts with padding or not (RoBERTa adds its
  padding_idx + 1 offset);
* decoders get a 4-D additive mask built here: query i may see key j iff j <= i and key j is
  real; every query also sees itself, so a padding row never has an all-masked softmax (whose
  NaN would leak into real rows through 0 * NaN). Passing a 4-D mask also keeps Hugging Face's
  mask-construction code (vmap, cache logic) out of the trace; masked scores get
  finfo(float32).min like in Hugging Face (-1e3 in the QDQ graph, see `mask_value`);
* pooling reads the mask: decoders take the hidden state at the LAST position with mask = 1,
  idx = argmax_t(mask_t * (t + 1)); encoders take sum_t mask_t h_t / max(sum_t mask_t, 1).
Normalisation: phi / max(||phi||_2, 1e-12) (torch.nn.functional.normalize).
"""
from __future__ import annotations

import torch

POOLINGS = ("last_token", "mean", "response_mean")


def needs_pool_mask(pooling: str) -> bool:
    """Whether the graph of this pooling takes the third input `pool_mask`."""
    return pooling == "response_mean"


class FeatureModule(torch.nn.Module):
    def __init__(self, base: torch.nn.Module, kind: str, model_type: str, normalize: bool,
                 padding_idx: int | None = None, mask_value: float | None = None,
                 pooling: str | None = None):
        super().__init__()
        self.base = base
        self.kind = kind
        self.pooling = pooling or ("last_token" if kind == "decoder" else "mean")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling {self.pooling!r} is not one of {POOLINGS}")
        self.model_type = model_type
        self.normalize = normalize
        self.padding_idx = padding_idx
        # None -> finfo(dtype).min (what Hugging Face adds). The QDQ variant passes -1e3: a
        # static activation scale must cover the whole range of scores + mask, and -3.4e38
        # would leave no resolution for the real scores (exp(-1e3) is 0 in fp32 anyway).
        self.mask_value = mask_value

    def use_mask_value(self, value: float) -> None:
        """Use a finite additive mask value (the QDQ variant) instead of finfo(float32).min.

        Decoders build their mask in `forward`. BERT-family encoders build theirs inside
        Hugging Face's `get_extended_attention_mask` as (1 - mask) * finfo.min, which cannot be
        rescaled from outside, so that method is replaced on this model instance only.
        """
        self.mask_value = float(value)
        if self.kind == "encoder":
            def extended(attention_mask, input_shape=None, device=None, dtype=None):
                m = attention_mask[:, None, None, :].to(torch.float32)
                return (1.0 - m) * self.mask_value
            self.base.get_extended_attention_mask = extended

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                pool_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T = input_ids.shape
        mask_f = attention_mask.to(torch.float32)                     # (B, T)
        pos = (torch.cumsum(attention_mask, dim=-1) - 1).clamp(min=0)  # (B, T)
        if self.kind == "decoder":
            dtype = next(self.base.parameters()).dtype
            t = torch.arange(T, device=input_ids.device)
            causal = t.view(1, T) <= t.view(T, 1)                        # (T, T) query x key
            diag = t.view(1, T) == t.view(T, 1)
            allowed = causal.view(1, 1, T, T) & ((attention_mask.view(B, 1, 1, T) > 0)
                                                 | diag.view(1, 1, T, T))
            mask4 = torch.where(allowed, torch.zeros((), dtype=dtype),
                                torch.full((), torch.finfo(dtype).min if self.mask_value is None
                                           else self.mask_value, dtype=dtype))
            h = self.base(input_ids=input_ids, attention_mask=mask4, position_ids=pos,
                          use_cache=False).last_hidden_state                 # (B, T, d)
            if self.pooling == "response_mean":
                feats = _masked_mean(h, pool_mask)
            else:
                last = (mask_f * (t + 1).to(torch.float32).view(1, T)).argmax(dim=-1)  # (B,)
                feats = torch.gather(h, 1, last.view(B, 1, 1).expand(B, 1, h.shape[-1])).squeeze(1)
        else:
            if self.model_type in ("roberta", "xlm-roberta"):
                pos = (torch.cumsum(attention_mask, dim=-1) * attention_mask) + self.padding_idx
            h = self.base(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=torch.zeros_like(input_ids),
                          position_ids=pos).last_hidden_state              # (B, T, d)
            if self.pooling == "response_mean":
                feats = _masked_mean(h, pool_mask)
            else:
                w = mask_f.to(h.dtype).unsqueeze(-1)                     # (B, T, 1)
                feats = (h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
        feats = feats.to(torch.float32)
        if self.normalize:
            feats = torch.nn.functional.normalize(feats, p=2.0, dim=-1, eps=1e-12)
        return feats


def _masked_mean(h: torch.Tensor, pool_mask: torch.Tensor) -> torch.Tensor:
    """sum_t p_t h_t / max(sum_t p_t, 1) over the sequence axis; p = pool_mask (B, T)."""
    w = pool_mask.to(h.dtype).unsqueeze(-1)                              # (B, T, 1)
    return (h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
