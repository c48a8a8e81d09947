"""The pooling of export/pooling.py as ONNX nodes around optimum's base-model graph.

optimum exports the base model alone: (input_ids, attention_mask, token_type_ids) ->
last_hidden_state for BERT-family encoders, (input_ids, attention_mask, position_ids) ->
last_hidden_state for decoders. `graft` turns that graph into a feature head graph with the
runner's inputs and output, the same function as `FeatureModule` (export/pooling.py):

    inputs   input_ids (B, T) int64, attention_mask (B, T) int64 [, pool_mask (B, T) int64]
    in       position_ids = max(cumsum(mask) - 1, 0)        (decoders, BERT)
                          = cumsum(mask) * mask + padding_idx (RoBERTa, XLM-R)
             token_type_ids = 0                              (one segment)
    out      "last_token":    h at argmax_t(mask_t * (t + 1)), the last real token
             "mean":          sum_t mask_t h_t / max(sum_t mask_t, 1)
             "response_mean": sum_t pool_t h_t / max(sum_t pool_t, 1)
             normalize:       f / max(||f||_2, 1e-12)
    output   features (B, d) float32

Positions from the mask make left and right padding give the same features (the parity check
runs both). Hidden states outside the pooled tokens are selected away with Where, never
multiplied by 0, so a non-finite value in a padding row cannot leak into a feature.
"""
from __future__ import annotations

import numpy as np

from edge_omd.errors import ExportError
from edge_omd_export.onnx_io import INPUTS, OUTPUT, POOL_INPUT

_P = "edge_omd/"     # prefix of every grafted node and tensor name


def graft(model, *, kind: str, model_type: str, pooling: str, normalize: bool, d: int,
          padding_idx: int | None = None, hidden: str = "last_hidden_state"):
    """Rewrite the onnx ModelProto `model` (optimum's base graph) in place into a head graph."""
    from onnx import TensorProto, helper, numpy_helper
    g = model.graph
    names = [i.name for i in g.input]
    for need in ("input_ids", "attention_mask"):
        if need not in names:
            raise ExportError(f"optimum's graph has no input {need!r} (inputs {names}); "
                              "export with --exporter torch")
    if hidden not in [o.name for o in g.output]:
        raise ExportError(f"optimum's graph has no output {hidden!r}; export with --exporter torch")
    consts = {"zero": np.array(0, np.int64), "one": np.array(1, np.int64),
              "one_f": np.array(1.0, np.float32), "zero_f": np.array(0.0, np.float32),
              "eps": np.array(1e-12, np.float32), "ax1": np.array([1], np.int64),
              "ax2": np.array([2], np.int64), "pad_idx": np.array(padding_idx or 0, np.int64)}

    def c(k):
        return _P + k
    pre, post = [], []

    def node(into, op, ins, out, **attrs):
        into.append(helper.make_node(op, ins, [_P + out], name=_P + out, **attrs))
        return _P + out

    # --- the base graph's extra inputs, computed from the mask
    feeds = {}
    if "position_ids" in names:
        cum = node(pre, "CumSum", ["attention_mask", c("ax1")], "cumsum")
        if model_type in ("roberta", "xlm-roberta"):
            feeds["position_ids"] = node(pre, "Add", [node(pre, "Mul", [cum, "attention_mask"],
                                                           "cum_real"), c("pad_idx")],
                                         "position_ids")
        else:
            feeds["position_ids"] = node(pre, "Max", [node(pre, "Sub", [cum, c("one")], "cum_m1"),
                                                      c("zero")], "position_ids")
    if "token_type_ids" in names:
        feeds["token_type_ids"] = node(pre, "Mul", ["input_ids", c("zero")], "token_type_ids")
    for i in list(g.input):
        if i.name in feeds:
            for n in g.node:
                for k, x in enumerate(n.input):
                    if x == i.name:
                        n.input[k] = feeds[i.name]
            g.input.remove(i)
        elif i.name not in ("input_ids", "attention_mask"):
            raise ExportError(f"optimum's graph takes an input {i.name!r} the runner cannot "
                              "feed; export with --exporter torch")

    # --- pooling over `hidden` (B, T, d)
    if pooling == "last_token":
        T = node(post, "Gather", [node(post, "Shape", ["attention_mask"], "shape"), c("one")],
                 "T")
        t = node(post, "Range", [c("zero"), T, c("one")], "t")                       # (T,)
        t1 = node(post, "Cast", [node(post, "Add", [t, c("one")], "t1_i")], "t1", to=TensorProto.FLOAT)
        mf = node(post, "Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
        last = node(post, "ArgMax", [node(post, "Mul", [mf, t1], "score")], "last", axis=1,
                    keepdims=1)                                                        # (B, 1)
        sel = node(post, "Equal", [t, last], "sel")                                   # (B, T)
        den = None
    else:
        src = POOL_INPUT if pooling == "response_mean" else "attention_mask"
        if pooling == "response_mean":
            g.input.append(helper.make_tensor_value_info(POOL_INPUT, TensorProto.INT64,
                                                         ["batch", "sequence"]))
        sel = node(post, "Greater", [src, c("zero")], "sel")
        den = node(post, "Max", [node(post, "ReduceSum", [node(post, "Cast", [src], "w",
                                                                 to=TensorProto.FLOAT), c("ax1")],
                                      "count", keepdims=1), c("one_f")], "den")         # (B, 1)
    picked = node(post, "Where", [node(post, "Unsqueeze", [sel, c("ax2")], "sel3"), hidden,
                                  c("zero_f")], "picked")                              # (B, T, d)
    f = node(post, "ReduceSum", [picked, c("ax1")], "sum", keepdims=0)                # (B, d)
    if den is not None:
        f = node(post, "Div", [f, den], "pooled")
    if normalize:
        norm = node(post, "Sqrt", [node(post, "ReduceSum", [node(post, "Mul", [f, f], "sq"),
                                                            c("ax1")], "sumsq", keepdims=1)], "norm")
        f = node(post, "Div", [f, node(post, "Max", [norm, c("eps")], "norm_eps")], "normed")
    post.append(helper.make_node("Identity", [f], [OUTPUT], name=_P + OUTPUT))

    used = {x for n in pre + post for x in n.input}
    g.initializer.extend(numpy_helper.from_array(v, c(k)) for k, v in consts.items() if c(k) in used)
    nodes = pre + list(g.node) + post
    del g.node[:]
    g.node.extend(nodes)
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", d]))
    order = INPUTS + ([POOL_INPUT] if pooling == "response_mean" else [])
    by_name = {i.name: i for i in g.input}
    ins = [by_name[n] for n in order]
    for i in ins:      # the runner's axis names, as the torch path writes them
        dims = i.type.tensor_type.shape.dim
        dims[0].dim_param, dims[1].dim_param = "batch", "sequence"
    del g.input[:]
    g.input.extend(ins)
    return model
