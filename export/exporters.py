"""Which tool writes the fp32 graph: optimum (optimum-onnx) or torch.onnx directly.

* "optimum": optimum's ONNX export of the base model (its per-architecture OnnxConfig, dummy
  inputs and model patchers around the TorchScript tracer, the ecosystem's convention for a
  sentence embedding as ONNX), then the pooling grafted into the same graph (export/graft.py).
  The default wherever optimum registers the architecture for "feature-extraction" (llama,
  qwen2, qwen3, bert, roberta, xlm-roberta here; `optimum_support` says why not otherwise).
* "torch": `FeatureModule` (export/pooling.py) traced by torch.onnx: the exporter before
  optimum. Today's heads are re-made byte for byte with it (same fingerprint), and the QDQ
  variant always uses it: a static-shape graph needs a finite attention-mask value
  (`FeatureModule.use_mask_value`), while optimum's graph builds Hugging Face's own mask with
  finfo(float32).min inside, which no calibration range can cover.
* "auto" (the default): "optimum" where it applies, else "torch"; the manifest's
  `exporter.path` records which one wrote the graph.
"""
from __future__ import annotations

import os

from edge_omd.errors import ExportError

EXPORTERS = ("auto", "optimum", "torch")
DEFAULT_EXPORTER = "auto"
_TASK = "feature-extraction"


def optimum_support(model, variant: str) -> str | None:
    """None when optimum can write this model's graph for `variant`, else why not."""
    if variant == "qdq":
        return ("the qdq variant needs a static-shape graph with a finite attention-mask value, "
                "which optimum's export does not write")
    try:
        import optimum.exporters.onnx.model_configs  # noqa: F401 (registers the configs)
        from optimum.exporters.tasks import TasksManager
    except ImportError as e:
        return f"optimum-onnx is not installed ({e.name}); pip install 'edge-omd[export]'"
    mt = model.config.model_type.replace("_", "-")
    try:
        tasks = TasksManager.get_supported_tasks_for_model_type(mt, exporter="onnx",
                                                                library_name="transformers")
    except KeyError:
        return f"optimum {_optimum_version()} has no ONNX config for model type {mt!r}"
    if _TASK not in tasks:
        return f"optimum's ONNX config for {mt!r} has no {_TASK!r} task"
    return None


def resolve(exporter: str, model, variant: str) -> str:
    """"optimum" or "torch" for this model and variant; ExportError for an impossible choice."""
    if exporter not in EXPORTERS:
        raise ExportError(f"exporter {exporter!r} is not one of {', '.join(EXPORTERS)}")
    if exporter == "torch":
        return "torch"
    why = optimum_support(model, variant)
    if why is None:
        return "optimum"
    if exporter == "optimum" or "not installed" in why:
        raise ExportError(f"exporter 'optimum' cannot export this head: {why}; pass "
                          "--exporter torch (exporter='torch')")
    return "torch"


def _optimum_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("optimum-onnx")
    except PackageNotFoundError:
        return "?"


def _config(model):
    """optimum's OnnxConfig for the base model, with position_ids as an input for every
    architecture (positions from the mask make left and right padding equal, export/graft.py)."""
    from optimum.exporters.tasks import TasksManager
    ctor = TasksManager.get_exporter_config_constructor("onnx", model, task=_TASK,
                                                        library_name="transformers")
    base = ctor(model.config)
    if "position_ids" in base.inputs:
        return base

    class WithPositions(type(base)):
        @property
        def inputs(self):
            axes = super().inputs
            axes["position_ids"] = dict(axes["input_ids"])
            return axes
    return WithPositions(model.config, task=_TASK)


def export_optimum(model, path: str, opset: int, *, kind: str, model_type: str, pooling: str,
                   normalize: bool, d: int, padding_idx: int | None) -> None:
    """optimum's base graph, the pooling grafted in, saved as one graph file at `path`."""
    from pathlib import Path

    from optimum.exporters.onnx import export
    from edge_omd_export.graft import graft
    from edge_omd_export.onnx_io import load_graph, save_graph
    base = os.path.join(os.path.dirname(path), "optimum-base.onnx")
    try:
        export(model, _config(model), Path(base), opset=opset)
    except Exception as e:  # optimum and the tracer raise many types
        raise ExportError(f"optimum's ONNX export failed ({type(e).__name__}: {e}); try "
                          "--exporter torch") from e
    g = graft(load_graph(base), kind=kind, model_type=model_type, pooling=pooling,
              normalize=normalize, d=d, padding_idx=padding_idx)
    save_graph(g, os.path.dirname(path), os.path.basename(path))
    for f in os.listdir(os.path.dirname(path)):
        if f.startswith("optimum-base.onnx"):
            os.remove(os.path.join(os.path.dirname(path), f))


def versions(path: str) -> dict:
    """What the manifest records about the exporter that wrote the graph."""
    out = {"path": path}
    if path == "optimum":
        out["optimum_onnx"] = _optimum_version()
    return out
