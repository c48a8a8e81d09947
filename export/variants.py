"""fp32 -> fp16 / int8 (dynamic) / QDQ (static, for NPU providers) with onnxruntime's tools.

* fp16: onnxruntime.transformers.float16.convert_float_to_float16 with keep_io_types=True, so
  the graph still takes int64 ids and returns float32 features (same runner code). Meant for
  GPU providers; on CPU onnxruntime inserts casts where it lacks fp16 kernels.
* int8: onnxruntime.quantization.quantize_dynamic, per-channel int8 weights of MatMul and
  Gather (embeddings), activations quantised per call. The CPU provider's target.
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


def to_int8(fp32_path: str, out_dir: str, work_dir: str, external: bool | None) -> list[str]:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    big = initializer_bytes(load_graph(fp32_path)) > 1_800_000_000 if external is None else external
    out = os.path.join(work_dir, "int8.onnx")
    try:
        # Per-channel int8 weights: per-tensor scales cost MiniLM ~0.04 of cosine on real text.
        # No quant_pre_process: its rewritten graph stops onnxruntime from fusing
        # DynamicQuantizeMatMul and ran 2x SLOWER than fp32 in our measurement.
        quantize_dynamic(fp32_path, out, weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gather"], use_external_data_format=big)
    except Exception as e:
        raise ExportError(f"int8 dynamic quantisation failed ({e})") from e
    return save_graph(load_graph(out), out_dir, external=external)


class _Reader:
    """onnxruntime CalibrationDataReader over pre-tokenised (1, L) rows."""

    def __init__(self, ids: np.ndarray, mask: np.ndarray):
        self._rows = [{"input_ids": ids[i:i + 1], "attention_mask": mask[i:i + 1]}
                      for i in range(len(ids))]
        self._it = iter(self._rows)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._rows)


def to_qdq(static_fp32_path: str, out_dir: str, work_dir: str, calib_ids: np.ndarray,
           calib_mask: np.ndarray, external: bool | None) -> list[str]:
    from onnxruntime.quantization import QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config
    if len(calib_ids) == 0:
        raise ExportError("the qdq variant needs calibration texts (calibration_texts=[...])")
    out = os.path.join(work_dir, "qdq.onnx")
    try:
        cfg = get_qnn_qdq_config(static_fp32_path, _Reader(calib_ids, calib_mask),
                                 activation_type=QuantType.QUInt16, weight_type=QuantType.QUInt8)
        cfg.use_external_data_format = bool(external)
        quantize(static_fp32_path, out, cfg)
    except Exception as e:
        raise ExportError(f"QDQ static quantisation failed ({type(e).__name__}: {e})") from e
    return save_graph(load_graph(out), out_dir, external=external)
