"""Tracing the feature module to ONNX and saving graphs (external data above 2 GB).

torch.onnx.export with the TorchScript tracer (dynamo=False): the wrapper module is plain
tensor code, and the tracer is the most robust path across transformers versions for it.
"""
from __future__ import annotations

import os

from edge_omd.errors import ExportError

INPUTS = ["input_ids", "attention_mask"]
POOL_INPUT = "pool_mask"     # third input of "response_mean" graphs (export/pooling.py)
OUTPUT = "features"
# protobuf cannot serialise one message over 2 GiB; stay well under it.
EXTERNAL_DATA_BYTES = 1_800_000_000


def trace(module, path: str, example, opset: int, dynamic: bool,
          feature_dim: int | None = None, input_names: list[str] | None = None) -> None:
    """Trace `module(*example)` to `path`; dynamic batch/sequence axes or static.

    input_names: the graph's inputs, one per example tensor (default `INPUTS`).
    feature_dim: written into the graph's output shape (batch, feature_dim). The tracer leaves
    it symbolic for decoders (a gathered hidden state); a concrete d lets the runner check the
    manifest's d against the graph when it opens the head.
    """
    import torch
    names = list(input_names or INPUTS)
    axes = None
    if dynamic:
        axes = {name: {0: "batch", 1: "sequence"} for name in names}
        axes[OUTPUT] = {0: "batch"}
    try:
        with torch.no_grad():
            torch.onnx.export(module, tuple(example), path, input_names=names, output_names=[OUTPUT],
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True,
                              dynamo=False)
    except Exception as e:
        raise ExportError(f"tracing the model to ONNX failed ({type(e).__name__}: {e}); try "
                          "another opset (--opset) or a newer torch") from e
    if feature_dim is not None:
        set_output_dim(path, int(feature_dim))


def set_output_dim(path: str, feature_dim: int) -> None:
    """Declare the last output dimension as `feature_dim` in the graph file at `path`.

    Only the graph proto is rewritten; external-data tensors (not loaded) are left in place.
    """
    import onnx
    model = onnx.load(path, load_external_data=False)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if len(dims) != 2:
        raise ExportError(f"the traced graph's output has rank {len(dims)}, expected (batch, d)")
    if dims[1].HasField("dim_value") and dims[1].dim_value not in (0, feature_dim):
        raise ExportError(f"the traced graph outputs {dims[1].dim_value} features, expected "
                          f"{feature_dim} (the config's hidden size)")
    dims[1].dim_value = feature_dim
    onnx.save_model(model, path)


def initializer_bytes(model) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def save_graph(model, out_dir: str, name: str = "model.onnx", external: bool | None = None) -> list[str]:
    """Save an onnx ModelProto as `name` (+ `name`_data when external); returns the file names.

    external=None decides by size: above ~1.8 GB of weights the tensors go to one external file.
    """
    import onnx
    if external is None:
        external = initializer_bytes(model) > EXTERNAL_DATA_BYTES
    path = os.path.join(out_dir, name)
    data_name = name + "_data"
    for stale in (path, os.path.join(out_dir, data_name)):
        if os.path.exists(stale):
            os.remove(stale)
    if external:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
        return [name, data_name]
    onnx.save_model(model, path)
    return [name]


def load_graph(path: str):
    import onnx
    return onnx.load(path, load_external_data=True)
