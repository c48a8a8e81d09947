"""The feature-head folder format: `manifest.json` + ONNX graph file(s) + `tokenizer.json`.

Written by the exporter (`edge_omd_export`), read by `edge_omd.feature_head.FeatureHead`; both
sides use this module so the two cannot drift apart. Standard library only.

Fingerprint contract: `fingerprint = SHA-256(bytes of graph_files[0] || graph_files[1] || ...)`,
the files in the order the manifest lists them (the `.onnx` file, then its external-data file if
any). Two heads with the same fingerprint compute bit-identical graphs; a reward-model state
stores the 32-byte digest and refuses any other head.
"""
from __future__ import annotations

import hashlib
import json
import os

from edge_omd.errors import HeadError

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "edge-omd-feature-head"
FORMAT_VERSION = 1

#: Keys every manifest must carry, with the Python type each must have.
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "format_version": int,
    "architecture": str,
    "kind": str,              # "decoder" | "encoder"
    "d": int,                 # feature dimension
    "pooling": str,           # "last_token" | "mean"
    "normalize": bool,        # L2 normalisation inside the graph
    "dtype": str,             # "fp32" | "fp16" | "int8" | "qdq"
    "opset": int,
    "max_length": int,
    "template": str,          # contains "{prompt}" and "{response}" exactly once each
    "add_special_tokens": bool,
    "pad_token_id": int,
    "padding_side": str,      # "right" | "left": both give the same features
    "graph_files": list,
    "graph_sha256": str,      # hex of the fingerprint
    "tokenizer_file": str,
    "inputs": list,           # ["input_ids", "attention_mask"]
    "output": str,            # "features"
}
OPTIONAL_KEYS = ("static_shape", "source_checkpoint", "source_sha256", "parity", "template_source",
                 "quantization", "source_weight_files",
                 "variant", "exporter", "model_type")

PROMPT_SLOT = "{prompt}"
RESPONSE_SLOT = "{response}"


def graph_fingerprint(folder: str | os.PathLike, graph_files: list[str]) -> bytes:
    """SHA-256 digest (32 raw bytes) of the graph files, hashed in the listed order."""
    h = hashlib.sha256()
    for name in graph_files:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
        except OSError as e:
            raise HeadError(f"feature head {folder}: cannot read graph file {name!r} ({e}); "
                            "re-export the head with `edge-omd export`") from e
    return h.digest()


def validate_manifest(m: object, where: str = "manifest") -> dict:
    """Check keys, types and value ranges; return the manifest or raise `HeadError`."""
    if not isinstance(m, dict):
        raise HeadError(f"{where}: expected a JSON object, got {type(m).__name__}")
    if m.get("format") != FORMAT_NAME:
        raise HeadError(f"{where}: not an edge-omd feature-head manifest (format={m.get('format')!r})")
    if m.get("format_version") != FORMAT_VERSION:
        raise HeadError(f"{where}: format_version {m.get('format_version')!r} is not supported "
                        f"(this edge-omd reads {FORMAT_VERSION}); re-export the head")
    for key, typ in REQUIRED_KEYS.items():
        if key not in m:
            raise HeadError(f"{where}: missing key {key!r}; re-export the head")
        val = m[key]
        # bool is an int subclass: do not let `true` pass as a dimension.
        if not isinstance(val, typ) or (typ is int and isinstance(val, bool)):
            raise HeadError(f"{where}: key {key!r} should be {getattr(typ, '__name__', typ)}, "
                            f"got {type(val).__name__}")
    if m["kind"] not in ("decoder", "encoder"):
        raise HeadError(f"{where}: kind must be 'decoder' or 'encoder', got {m['kind']!r}")
    if m["pooling"] not in ("last_token", "mean"):
        raise HeadError(f"{where}: pooling must be 'last_token' or 'mean', got {m['pooling']!r}")
    if m["padding_side"] not in ("left", "right"):
        raise HeadError(f"{where}: padding_side must be 'left' or 'right'")
    if m["d"] <= 0 or m["max_length"] < 2:
        raise HeadError(f"{where}: d and max_length must be positive (d={m['d']}, "
                        f"max_length={m['max_length']})")
    t = m["template"]
    if t.count(PROMPT_SLOT) != 1 or t.count(RESPONSE_SLOT) != 1 or t.index(PROMPT_SLOT) > t.index(RESPONSE_SLOT):
        raise HeadError(f"{where}: template must contain {PROMPT_SLOT} then {RESPONSE_SLOT} once each")
    if not m["graph_files"] or not all(isinstance(x, str) for x in m["graph_files"]):
        raise HeadError(f"{where}: graph_files must be a non-empty list of file names")
    for name in m["graph_files"] + [m["tokenizer_file"]]:
        if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            raise HeadError(f"{where}: file name {name!r} must be relative to the head folder")
    try:
        if len(bytes.fromhex(m["graph_sha256"])) != 32:
            raise ValueError
    except ValueError:
        raise HeadError(f"{where}: graph_sha256 must be 64 hex characters") from None
    ss = m.get("static_shape")
    if ss is not None and not (isinstance(ss, list) and len(ss) == 2
                               and all(isinstance(v, int) and v > 0 for v in ss)):
        raise HeadError(f"{where}: static_shape must be null or [batch, length]")
    return m


def load_manifest(folder: str | os.PathLike) -> dict:
    """Read and validate `folder/manifest.json`; `HeadError` says what is missing or corrupt."""
    path = os.path.join(folder, MANIFEST_NAME)
    if not os.path.isdir(folder):
        raise HeadError(f"feature head folder {folder} does not exist; export one with "
                        "`edge-omd export CHECKPOINT_DIR OUTPUT_DIR`")
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
    except FileNotFoundError:
        raise HeadError(f"{path} is missing: {folder} is not an exported feature head "
                        "(run `edge-omd export`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HeadError(f"{path} is corrupt ({e}); re-export the head") from e
    return validate_manifest(m, path)


def write_manifest(folder: str | os.PathLike, manifest: dict) -> str:
    """Validate then write `manifest.json` atomically (a reader never sees half a file)."""
    validate_manifest(manifest, "manifest being written")
    path = os.path.join(folder, MANIFEST_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path
