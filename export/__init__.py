"""edge_omd_export: Hugging Face checkpoint -> ONNX feature head (the `export` extra).

    >>> from edge_omd_export import export_model
    >>> export_model("ckpt/all-MiniLM-L6-v2", "heads/minilm", variant="int8")  # doctest: +SKIP

Installed from the repo's top-level `export/` folder under this name (never as a generic
top-level `export` module). Needs torch, transformers, onnx, onnxruntime; the runner
(`edge_omd.FeatureHead`) needs none of torch/transformers.
"""
from edge_omd_export.api import DEFAULT_OPSET, export_model
from edge_omd_export.architectures import SUPPORTED
from edge_omd_export.variants import VARIANTS

__all__ = ["export_model", "SUPPORTED", "VARIANTS", "DEFAULT_OPSET"]
