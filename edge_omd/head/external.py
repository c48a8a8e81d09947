"""The files an ONNX graph reads besides itself: the `location` of its external-data tensors.

onnxruntime loads a tensor whose `external_data` names a `location` from that file, relative to
the graph's folder. The head fingerprint hashes only the files the manifest lists in
`graph_files`, so a graph that read any other file could have its weights edited under an
unchanged fingerprint. `FeatureHead.open` therefore refuses a graph with a location that is not
one of `graph_files` (`external_locations` gives them all).

The walk reads the protobuf wire format directly (onnxruntime has no API for it and the `onnx`
package is not a runtime dependency), over a memory map of the file, skipping every field it
does not need by its length, so the weights inlined in a graph are never read. Where tensors
live in onnx.proto (field numbers):

    ModelProto        graph 7, training_info 20, functions 25
    TrainingInfoProto initialization 1, algorithm 2                      (GraphProto)
    FunctionProto     node 7
    GraphProto        node 1, initializer 5, sparse_initializer 15
    NodeProto         attribute 5
    AttributeProto    t 5, g 6, tensors 10, graphs 11, sparse_tensor 22, sparse_tensors 23
    SparseTensorProto values 1, indices 2                                 (TensorProto)
    TensorProto       external_data 13                                    (StringStringEntryProto)
    StringStringEntryProto key 1, value 2

Subgraphs nest (If / Loop / Scan bodies); the walk uses an explicit stack, so a deeply nested
graph cannot exhaust Python's recursion.
"""
from __future__ import annotations

import mmap
import os

from edge_omd.errors import HeadError

#: message type -> {field number: message type of that (length-delimited) field}
_CHILDREN = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "entry"},
}
_MAX_DEPTH = 256   # messages nested inside one another; onnx's own checker allows far fewer


class _Corrupt(Exception):
    pass


def _varint(buf, i: int, end: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= end or shift > 63:
            raise _Corrupt("truncated or overlong varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, wire type, value start, value end) of each field of one message."""
    i = start
    while i < end:
        key, i = _varint(buf, i, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, j = _varint(buf, i, end)
        elif wire == 1:
            j = i + 8
        elif wire == 2:
            n, i = _varint(buf, i, end)
            j = i + n
        elif wire == 5:
            j = i + 4
        else:   # groups (3, 4) are not used by onnx.proto; 6, 7 do not exist
            raise _Corrupt(f"wire type {wire}")
        if j > end:
            raise _Corrupt("a field runs past the end of its message")
        yield number, wire, i, j
        i = j


def _locations(buf) -> set[str]:
    found: set[str] = set()
    stack = [("model", 0, len(buf), 0)]
    while stack:
        kind, start, end, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise _Corrupt(f"messages nested more than {_MAX_DEPTH} deep")
        if kind == "entry":
            key = value = b""
            for number, wire, a, b in _fields(buf, start, end):
                if wire == 2 and number == 1:
                    key = bytes(buf[a:b])
                elif wire == 2 and number == 2:
                    value = bytes(buf[a:b])
            if key == b"location":
                try:
                    found.add(value.decode("utf-8"))
                except UnicodeDecodeError:
                    raise _Corrupt("an external-data location is not UTF-8") from None
            continue
        children = _CHILDREN[kind]
        for number, wire, a, b in _fields(buf, start, end):
            child = children.get(number)
            if child is not None and wire == 2:
                stack.append((child, a, b, depth + 1))
    return found


def external_locations(graph_path: str) -> set[str]:
    """Every external-data `location` named by a tensor of the ONNX file `graph_path`, as
    written in the file. HeadError if the file cannot be read or is not a protobuf message."""
    try:
        with open(graph_path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise HeadError(f"the graph file {graph_path} is empty; re-export the head")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m, memoryview(m) as buf:
                return _locations(buf)
    except OSError as e:
        raise HeadError(f"cannot read the graph file {graph_path} ({e}); re-export the head") from e
    except _Corrupt as e:
        raise HeadError(f"the graph file {graph_path} is not a valid ONNX model ({e}); "
                        "re-export the head") from None


def check_external_data(folder: str, graph_files: list[str]) -> None:
    """HeadError unless every external-data file the graph (graph_files[0]) reads is one of
    `graph_files`, the files the fingerprint hashes."""
    listed = {os.path.normpath(name) for name in graph_files}
    for loc in sorted(external_locations(os.path.join(folder, graph_files[0]))):
        if os.path.normpath(loc) not in listed:
            raise HeadError(
                f"feature head {folder}: the graph reads tensors from {loc[:200]!r}, a file the "
                f"manifest's graph_files {graph_files} does not list, so the head fingerprint "
                "does not cover it (it could change the features unnoticed); re-export the head")
