"""fp32 -> fp16 / int8 (dynamic) / QDQ (static, for NPU providers) with onnxruntime's tools.

* fp16: onnxruntime.transformers.float16.convert_float_to_float16 with keep_io_types=True, so
  the graph still takes int64 ids and returns float32 features (same runner code). Meant for
  GPU providers; on CPU onnxruntime inserts casts where it lacks fp16 kernels.
* int8: onnxruntime.quantization.quantize_dynamic, per-channel 7-bit weights of MatMul and
  Gather (embeddings), activations uint8 per-tensor, quantised per call, and the few
  "outlier" input channels of a MatMul (found on built-in calibration texts) kept in float32
  beside the int8 product (see `to_int8` for what was measured). The CPU provider's target.
* qdq: static QuantizeLinear/DequantizeLinear pairs calibrated on user texts (MinMax), uint16
  activations and uint8 weights as onnxruntime's QNN config recommends for transformers on the
  Hexagon NPU, on a graph traced with static shapes (batch 1, max_length) because QNN needs
  static shapes. It also runs on the CPU provider (that is how parity is checked here).
"""
from __future__ import annotations

import os

import numpy as np

from edge_omd.errors import ExportError
from edge_omd_export.onnx_io import initializer_bytes, load_graph, save_graph

VARIANTS = ("fp32", "fp16", "int8", "qdq")


def to_fp16(fp32_path: str, out_dir: str, external: bool | None) -> list[str]:
    from onnxruntime.transformers.float16 import convert_float_to_float16
    model = load_graph(fp32_path)
    try:
        half = convert_float_to_float16(model, keep_io_types=True,
                                        disable_shape_infer=initializer_bytes(model) > 1_800_000_000)
    except Exception as e:
        raise ExportError(f"fp16 conversion failed ({e})") from e
    return save_graph(half, out_dir, external=external)


# Texts run through the fp32 graph to find outlier channels (int8 variant). Outlier channels
# are a property of the weights (e.g. one GELU channel of MiniLM's first FFN), so a few varied
# texts find them; these are deliberately not the parity texts nor the benchmark's HH-RLHF.
INT8_CALIBRATION_PAIRS = [
    ("Can you recommend a good book for a long flight?",
     "Sure. If you like mysteries, try an Agatha Christie novel; it is short, gripping and easy "
     "to put down when the meal arrives."),
    ("How many legs does a spider have?", "Eight."),
    ("Write a short poem about the sea.",
     "Grey waves fold and unfold, / the gulls argue over light, / and the tide keeps its old "
     "promise twice a day."),
    ("Explain what a for loop does in Python.",
     "It runs the indented block once for each item: for x in [1, 2, 3]: print(x) prints 1, 2 "
     "and 3 on separate lines."),
    ("My neighbour's dog barks all night. What should I do?",
     "Talk to them calmly first; most people do not know. If that fails, keep a log and contact "
     "the local council."),
    ("What's 17 times 23?", "391"),
    ("Translate 'good morning' into Spanish and French.", "Buenos días; bonjour."),
    ("Why is the sky blue?",
     "Sunlight scatters off air molecules, and blue light, with its shorter wavelength, scatters "
     "far more than red (Rayleigh scattering), so the sky looks blue from every direction."),
    ("Give me a recipe.", "I'm sorry, I can't help with that!!!"),
    ("List three prime numbers.", "2, 3, 5 ... and 7, if you want a fourth."),
    ("Is it rude to wear a hat indoors?",
     "Customs differ: in many places it is fine, but at formal dinners or in some religious "
     "buildings people still take their hats off."),
    ("Tell me about the French Revolution in one sentence.",
     "Beginning in 1789, it overthrew the monarchy, proclaimed the rights of man, and ended in "
     "Napoleon's rise to power."),
    ("", "OK"),
    ("Summarise: The meeting moved to Thursday at 3 pm in room 204; bring the Q3 figures.",
     "Thursday, 3 pm, room 204 - bring Q3 numbers."),
    ("How do I reset my password?",
     "Click 'Forgot password' on the sign-in page, enter your e-mail address, and follow the link "
     "we send you (check your spam folder)."),
    ("What rhymes with orange?", "Almost nothing; 'door hinge' is the usual joke answer."),
]

# A MatMul input channel is an "outlier" when its largest |value| over the calibration texts
# exceeds OUTLIER_TAU times the 99.9th percentile of |values| of the whole input; at most
# OUTLIER_MAX_CHANNELS per input (largest first). Measured on all-MiniLM-L6-v2 (1000 HH-RLHF
# texts, runner batches of 16, 8-bit weights, 1 thread): tau 4 splits 4 inputs (1-2 channels
# each), tau 3 eight, tau 2 seventeen; cosine mean / worst 0.99666 / 0.99093, 0.99734 /
# 0.99324, 0.99780 / 0.99472, batch-1 speed-up over fp32 1.93x, 1.79x, 1.70x: each split
# costs a Mul, a Gather and a small float32 MatMul, so tau 4 is the one that keeps >= 1.8x.
OUTLIER_TAU = 4.0
OUTLIER_MAX_CHANNELS = 8


def encode_pairs(tokenizer, template: str, max_length: int, add_special_tokens: bool,
                 pad_id: int, work_dir: str, pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, mask, pool_mask) of `pairs` with the runner's own encoder (right padding,
    truncation on); pool_mask feeds the third input of "response_mean" graphs."""
    from edge_omd.head.tokenize import TextEncoder, load_tokenizer
    path = os.path.join(work_dir, "calibration-tokenizer.json")
    tokenizer.backend_tokenizer.save(path)
    enc = TextEncoder(load_tokenizer(path), template, max_length, add_special_tokens, pad_id,
                      "right")
    ids, mask, pool, _ = enc.encode_batch(list(pairs), truncate=True, pool=True)
    return ids, mask, pool


def _const_matmuls(graph) -> list:
    """MatMul nodes whose B is a 2-D initializer (the ones quantize_dynamic turns into int8)."""
    ranks = {t.name: len(t.dims) for t in graph.initializer}
    return [n for n in graph.node if n.op_type == "MatMul" and ranks.get(n.input[1]) == 2]


def find_outlier_channels(fp32_path: str, ids: np.ndarray, mask: np.ndarray,
                          pool: np.ndarray | None = None, tau: float = OUTLIER_TAU, max_channels: int = OUTLIER_MAX_CHANNELS,
                          batch: int = 4) -> dict[str, list[int]]:
    """{MatMul input tensor: outlier channel indices} over the calibration rows (ids, mask).

    The fp32 graph runs with every const-B MatMul input exposed as an extra output (padding
    rows included: the runtime's per-call activation scale sees them too), streaming over
    batches of `batch` rows: per input, the running max |x| per channel and the largest
    per-batch 99.9th percentile of |x|.
    """
    import onnx
    import onnxruntime as ort
    model = onnx.load(fp32_path, load_external_data=False)
    xs = sorted({n.input[0] for n in _const_matmuls(model.graph)})
    if not xs:
        return {}
    have = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None)
                              for x in xs if x not in have)
    # Beside fp32.onnx, so that its external-data file (large models) is found.
    probe = os.path.join(os.path.dirname(os.path.abspath(fp32_path)), "outlier-probe.onnx")
    onnx.save_model(model, probe)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(probe, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    feeds = {"input_ids": ids, "attention_mask": mask, "pool_mask": pool}
    wanted = [i.name for i in sess.get_inputs()]
    ch_max: dict[str, np.ndarray] = {}
    q999: dict[str, float] = {}
    for s in range(0, len(ids), batch):
        outs = dict(zip(names, sess.run(None, {k: feeds[k][s:s + batch] for k in wanted})))
        for x in xs:
            a = np.abs(np.asarray(outs[x], np.float32))
            a = a.reshape(-1, a.shape[-1])
            ch_max[x] = np.maximum(ch_max.get(x, 0.0), a.max(axis=0))
            q999[x] = max(q999.get(x, 0.0), float(np.quantile(a, 0.999)))
    del sess
    os.remove(probe)
    plan = {}
    for x in xs:
        top = np.argsort(-ch_max[x], kind="stable")[:max_channels]
        picked = sorted(int(j) for j in top if ch_max[x][j] > tau * q999[x])
        if picked:
            plan[x] = picked
    return plan


def split_outlier_channels(model, plan: dict[str, list[int]]) -> list[str]:
    """Rewrite `model` in place: y = x W becomes y = (x * keep) W' + x[..., S] W[S, :].

    keep is 0 on the outlier channels S and 1 elsewhere, W' is W with rows S zeroed; the first
    product gets quantised, the second (|S| <= OUTLIER_MAX_CHANNELS rows) stays float32: the
    names of those nodes are returned for nodes_to_exclude. In float32 this is the same
    function (the outlier channels only move from one sum to the other).
    """
    from onnx import helper, numpy_helper
    g = model.graph
    init = {t.name: t for t in g.initializer}
    matmuls = _const_matmuls(g)
    split_nodes: dict[str, list] = {}
    for x, S in plan.items():
        width = next(init[n.input[1]].dims[0] for n in matmuls if n.input[0] == x)
        keep = np.ones(width, np.float32)
        keep[S] = 0.0
        g.initializer.extend([numpy_helper.from_array(np.asarray(S, np.int64), x + "/outlier_idx"),
                              numpy_helper.from_array(keep, x + "/outlier_keep")])
        split_nodes[x] = [
            helper.make_node("Mul", [x, x + "/outlier_keep"], [x + "/inliers"], name=x + "/inliers"),
            helper.make_node("Gather", [x, x + "/outlier_idx"], [x + "/outliers"], axis=-1,
                             name=x + "/outliers")]
    # Nodes are keyed by their first output (unique in an ONNX graph), not by Python identity.
    split_set = {n.output[0] for n in matmuls if n.input[0] in plan}
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    # A bias Add right after the MatMul stays right after the int8 product, so onnxruntime still
    # fuses it into DynamicQuantizeMatMul; the outlier product is added after the bias.
    after_bias: dict[str, object] = {}
    excluded, nodes = [], []
    for n in g.node:
        if n.output and n.output[0] in after_bias:
            nodes += [n, after_bias[n.output[0]]]
            continue
        if not n.output or n.output[0] not in split_set:
            nodes.append(n)
            continue
        x, w_name, y = n.input[0], n.input[1], n.output[0]
        S = plan[x]
        W = numpy_helper.to_array(init[w_name]).copy()
        W_out = np.ascontiguousarray(W[S])
        W[S] = 0.0
        init[w_name].CopyFrom(numpy_helper.from_array(W, w_name))
        g.initializer.append(numpy_helper.from_array(W_out, w_name + "/outlier_rows"))
        nodes += [helper.make_node("MatMul", [x + "/inliers", w_name], [y + "/inliers"], name=n.name),
                  helper.make_node("MatMul", [x + "/outliers", w_name + "/outlier_rows"],
                                   [y + "/outliers"], name=n.name + "/outliers")]
        excluded.append(n.name + "/outliers")
        bias = users.get(y, [])
        if (len(bias) == 1 and bias[0].op_type == "Add" and len(bias[0].output) == 1
                and any(i in init for i in bias[0].input if i != y)
                and y not in {o.name for o in g.output}):
            add, z = bias[0], bias[0].output[0]
            add.input[list(add.input).index(y)] = y + "/inliers"
            add.output[0] = z + "/inliers"
            after_bias[add.output[0]] = helper.make_node(
                "Add", [z + "/inliers", y + "/outliers"], [z], name=n.name + "/sum")
        else:
            nodes.append(helper.make_node("Add", [y + "/inliers", y + "/outliers"], [y],
                                          name=n.name + "/sum"))
    # The new Mul/Gather go right after the node that produces x (topological order kept).
    produced = {o for n in nodes for o in n.output}
    ordered = [m for x, ms in split_nodes.items() if x not in produced for m in ms]
    for n in nodes:
        ordered.append(n)
        for o in n.output:
            ordered += split_nodes.get(o, [])
    del g.node[:]
    g.node.extend(ordered)
    return excluded


#: quant_pre_process mode of the int8 variant: "shapes" (symbolic + ONNX shape inference only)
#: or "full" (also onnxruntime's basic graph optimisation); see `to_int8`.
PRE_PROCESS = "shapes"


def pre_process(src: str, dst: str, external: bool, mode: str = PRE_PROCESS) -> str:
    """onnxruntime's quantisation pre-processing of `src` into `dst`; returns `dst`."""
    from onnxruntime.quantization.shape_inference import quant_pre_process
    quant_pre_process(src, dst, skip_optimization=(mode == "shapes"),
                      save_as_external_data=external, all_tensors_to_one_file=True)
    return dst


def to_int8(fp32_path: str, out_dir: str, work_dir: str, external: bool | None,
            calibration: tuple[np.ndarray, ...] | None = None,
            pre: str = PRE_PROCESS) -> list[str]:
    """Dynamic int8 for the CPU provider; `calibration` = (ids, mask[, pool_mask]) to find
    outlier channels; `pre` the quant_pre_process mode.

    What is quantised, and why (issue 8; MiniLM = all-MiniLM-L6-v2 on 1000 HH-RLHF texts in
    runner batches of 16, cosine against fp32; tiny = the tests' random Qwen3; onnxruntime
    1.31.1; the figures come from bench/features.py and the scripts in the issue-8 report):
    * reduce_range=True (7-bit weights, |w| <= 64). onnxruntime's u8s8 kernel on x86 CPUs
      WITHOUT VNNI (AVX2; AVX-512 before Cascade Lake; AMD before Zen 4) adds pairs of
      uint8 x int8 products in a saturating int16 (vpmaddubsw); with 8-bit weights
      255 * 127 * 2 > 32767 and the tiny Qwen3 head fell to min cosine 0.4942 (0.9957 on a
      VNNI CPU), reproduced under `qemu-x86_64 -cpu Haswell` with onnxruntime 1.31.1 and
      1.20.1 alike. 7-bit weights cannot saturate (255 * 64 * 2 = 32640), so a head gives
      the same features on every x86 CPU (tiny: 0.9965 with and without VNNI). Cost on MiniLM:
      cosine mean 0.99666 -> 0.99563 (with the outlier split below).
    * per-channel weight scales: per-tensor ones fell to MiniLM mean 0.956, worst 0.889.
    * Gather (embeddings) quantised: alone it costs 0.0003 of cosine, and it is 52% of
      MiniLM's fp32 bytes (file 0.65x fp32 without it, 0.25x with it).
    * outlier channels: quantising every MatMul gave MiniLM mean 0.99429, worst 0.98461.
      Quantising one node at a time, the FFN output projections of layers 0-2 cost most
      (1 - cosine 0.0011, 0.0008, 0.0005; every other node <= 0.0003): their GELU input has
      ONE channel reaching 17-25 while 99.9% of |values| are below 1.8-2.8, so the per-tensor
      uint8 step is ~10x too coarse for the other 1535 channels. Leaving those projections
      in fp32 restored quality but cut the speed-up to 1.4x (they are 1/3 of the FLOPs);
      moving only the outlier channels to a small float32 product keeps the int8 speed
      (1.93x fp32 at batch 1, 1 thread) and gives mean 0.99563, worst 0.99024.
    * u8u8 (QUInt8 weights) cannot saturate either but ran at 0.98x fp32: no fast kernel.
    * quant_pre_process first (`PRE_PROCESS`), as onnxruntime asks: shape inference (and,
      with "full", its basic graph optimisation) tags the graph, so quantize_dynamic no longer
      warns. Which mode: the one measured faster by `python -m edge_omd_bench.head` (rows
      "int8, pre full" / "int8, pre shapes"; docs/BENCHMARKS.md "Head speed").
    Activation x activation MatMuls (attention scores) are never quantised (dynamic mode
    quantises MatMuls with a constant B only).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    model = load_graph(fp32_path)
    big = initializer_bytes(model) > 1_800_000_000 if external is None else external
    del model
    excluded: list[str] = []
    try:
        src = pre_process(fp32_path, os.path.join(work_dir, "int8-pre.onnx"), big, pre)
        model = load_graph(src)
        if calibration is not None and len(calibration[0]):
            plan = find_outlier_channels(src, *calibration)
            if plan:
                excluded = split_outlier_channels(model, plan)
                src = os.path.join(work_dir, "int8-split.onnx")
                save_graph(model, work_dir, os.path.basename(src), external=big)
        del model
        out = os.path.join(work_dir, "int8.onnx")
        quantize_dynamic(src, out, weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True, op_types_to_quantize=["MatMul", "Gather"],
                         nodes_to_exclude=excluded, use_external_data_format=big)
    except Exception as e:
        raise ExportError(f"int8 dynamic quantisation failed ({type(e).__name__}: {e})") from e
    return save_graph(load_graph(out), out_dir, external=external)


class _Reader:
    """onnxruntime CalibrationDataReader over pre-tokenised (1, L) rows."""

    def __init__(self, ids: np.ndarray, mask: np.ndarray, pool: np.ndarray | None = None):
        self._rows = [{"input_ids": ids[i:i + 1], "attention_mask": mask[i:i + 1]}
                      | ({} if pool is None else {"pool_mask": pool[i:i + 1]})
                      for i in range(len(ids))]
        self._it = iter(self._rows)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._rows)


def to_qdq(static_fp32_path: str, out_dir: str, work_dir: str, calib_ids: np.ndarray,
           calib_mask: np.ndarray, external: bool | None,
           calib_pool: np.ndarray | None = None) -> list[str]:
    from onnxruntime.quantization import QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config
    if len(calib_ids) == 0:
        raise ExportError("the qdq variant needs calibration texts (calibration_texts=[...])")
    out = os.path.join(work_dir, "qdq.onnx")
    try:
        cfg = get_qnn_qdq_config(static_fp32_path, _Reader(calib_ids, calib_mask, calib_pool),
                                 activation_type=QuantType.QUInt16, weight_type=QuantType.QUInt8)
        cfg.use_external_data_format = bool(external)
        quantize(static_fp32_path, out, cfg)
    except Exception as e:
        raise ExportError(f"QDQ static quantisation failed ({type(e).__name__}: {e})") from e
    return save_graph(load_graph(out), out_dir, external=external)
