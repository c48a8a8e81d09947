"""The feature-head folder format: `manifest.json` + ONNX graph file(s) + `tokenizer.json`.

Written by the exporter (`edge_omd_export`), read by `edge_omd.head.runner.FeatureHead`; both
sides use this module so the two cannot drift apart. Standard library only.

Fingerprint contract (manifest key `fingerprint`, 64 hex characters; `FeatureHead.fingerprint`
is the 32 raw bytes). It identifies the whole feature map phi, not only the graph:

    graph_sha256     = SHA-256(bytes of graph_files[0] || graph_files[1] || ...), the files in
                       the order the manifest lists them (the `.onnx` file, then its
                       external-data file if any); also stored as its own manifest key;
    tokenizer_sha256 = SHA-256(bytes of the tokenizer file, `tokenizer_file`); also stored;
    features         = {key: manifest.get(key) for key in FINGERPRINT_KEYS} (absent -> null):
                       architecture, kind, d, pooling, normalize, dtype, variant, max_length,
                       template, add_special_tokens, pad_token_id, static_shape, inputs, output;
                       plus "style" only when the head has a style block (style.py) and
                       "wording" only when it has a wording view (wording.py);
    fingerprint      = SHA-256(canonical_json({"scheme": FINGERPRINT_SCHEME,
                                               "graph_sha256": <hex>,
                                               "tokenizer_sha256": <hex>,
                                               "features": features}))

where canonical_json is `json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=True, allow_nan=False)` encoded as ASCII (sorted keys at every level, no
whitespace, non-ASCII characters of e.g. a chat template written as \\uXXXX escapes).

So a head whose graph, tokenizer.json, template, max_length, special-token handling, pad id,
pooling, normalisation, dimension, dtype/variant or static shape differ gets another
fingerprint, and a reward-model state bound to one head is refused by the other. What does
not change phi is left out: `padding_side` (both sides give the same features, parity checks
it, and `FeatureHead.open(padding_side=...)` may override it), file names, parity report,
exporter versions and provenance (`source_*`). Re-exporting the same checkpoint with the same
options gives the same fingerprint (the graph and tokenizer files are byte-identical).
`FeatureHead.open` recomputes the fingerprint and refuses (HeadError) a head whose files or
feature settings no longer match it: an edited tokenizer.json or manifest cannot keep the
identity of the head it was copied from.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat

from edge_omd.errors import HeadError

MANIFEST_NAME = "manifest.json"
#: A manifest is a few kB (keys, a template, the parity report, a style block); a larger file
#: is refused before it is read, so a hostile folder cannot make `open` read gigabytes.
MAX_MANIFEST_BYTES = 1 << 20
#: ... and nests a few levels; deeper values are refused (copying or printing them would recurse).
MAX_MANIFEST_DEPTH = 16
FORMAT_NAME = "edge-omd-feature-head"
FORMAT_VERSION = 1

#: Keys every manifest must carry, with the Python type each must have.
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "format_version": int,
    "architecture": str,
    "kind": str,              # "decoder" | "encoder"
    "d": int,                 # feature dimension
    "pooling": str,           # "last_token" | "mean" | "response_mean" (POOLINGS)
    "normalize": bool,        # L2 normalisation inside the graph
    "dtype": str,             # "fp32" | "fp16" | "int8" | "qdq"
    "opset": int,
    "max_length": int,
    "template": str,          # contains "{prompt}" and "{response}" exactly once each
    "add_special_tokens": bool,
    "pad_token_id": int,
    "padding_side": str,      # "right" | "left": both give the same features
    "graph_files": list,
    "graph_sha256": str,      # hex SHA-256 of the graph file(s)
    "fingerprint": str,       # hex head fingerprint (graph + tokenizer + feature settings)
    "tokenizer_file": str,
    "inputs": list,           # INPUTS_BY_POOLING[pooling]
    "output": str,            # "features"
}
OPTIONAL_KEYS = ("static_shape", "source_checkpoint", "source_sha256", "parity", "template_source",
                 "quantization", "source_weight_files",
                 "variant", "exporter", "model_type",
                 "tokenizer_sha256",      # hex SHA-256 of tokenizer_file (inside the fingerprint)
                 "max_positions",         # the checkpoint's position limit: max_length <= it
                 "style",                 # null or the style block (edge_omd/head/style.py)
                 "wording")               # null or the wording view (edge_omd/head/wording.py)

#: Manifest keys that define the feature map (or how the runner builds the graph's inputs);
#: they enter the fingerprint. See the module docstring.
FINGERPRINT_KEYS = ("architecture", "kind", "d", "pooling", "normalize", "dtype", "variant",
                    "max_length", "template", "add_special_tokens", "pad_token_id",
                    "static_shape", "inputs", "output")
FINGERPRINT_SCHEME = "edge-omd-head-fingerprint/1"

#: Poolings a head may use (export/pooling.py): the hidden state at the last real token, the
#: mean over every real token, the mean over the response span (tokenize.py) while attention
#: sees the prompt. The graph inputs each one takes, in order:
POOLINGS = ("last_token", "mean", "response_mean")
INPUTS_BY_POOLING = {"last_token": ["input_ids", "attention_mask"],
                     "mean": ["input_ids", "attention_mask"],
                     "response_mean": ["input_ids", "attention_mask", "pool_mask"]}

PROMPT_SLOT = "{prompt}"
RESPONSE_SLOT = "{response}"


def _files_sha256(folder: str | os.PathLike, names: list[str], what: str) -> bytes:
    h = hashlib.sha256()
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
        except OSError as e:
            raise HeadError(f"feature head {folder}: cannot read {what} file {name!r} ({e}); "
                            "re-export the head with `edge-omd export`") from e
    return h.digest()


def graph_fingerprint(folder: str | os.PathLike, graph_files: list[str]) -> bytes:
    """SHA-256 digest (32 raw bytes) of the graph files, hashed in the listed order
    (`graph_sha256`; one input of the head fingerprint, see `head_fingerprint`)."""
    return _files_sha256(folder, graph_files, "graph")


def tokenizer_digest(folder: str | os.PathLike, tokenizer_file: str) -> bytes:
    """SHA-256 digest (32 raw bytes) of the tokenizer file's bytes (`tokenizer_sha256`)."""
    return _files_sha256(folder, [tokenizer_file], "tokenizer")


def canonical_json(obj) -> bytes:
    """Sorted keys, no whitespace, ASCII only: the byte form the fingerprint hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


#: The views a head may append to its graph's d features, in the order they are appended
#: (edge_omd/head/views.py). Each enters the fingerprint only when the head has it.
VIEW_KEYS = ("style", "wording")


def feature_settings(manifest: dict) -> dict:
    """The manifest keys that enter the fingerprint (`FINGERPRINT_KEYS`; absent -> None), and
    each view of `VIEW_KEYS` the head has (absent or null: not in the record at all, so heads
    without a view keep the fingerprint they had before the view existed)."""
    out = {k: manifest.get(k) for k in FINGERPRINT_KEYS}
    for k in VIEW_KEYS:
        if manifest.get(k) is not None:
            out[k] = manifest[k]
    return out


def feature_dim(manifest: dict) -> int:
    """The head's feature dimension: the graph's d plus the columns of its views (views.py)."""
    from edge_omd.head.views import HeadViews
    return int(manifest["d"]) + HeadViews.from_manifest(manifest).dim


def head_fingerprint(graph_digest: bytes, tok_digest: bytes, manifest: dict) -> bytes:
    """The 32-byte head fingerprint (module docstring) from the two file digests + manifest."""
    record = {"scheme": FINGERPRINT_SCHEME, "graph_sha256": bytes(graph_digest).hex(),
              "tokenizer_sha256": bytes(tok_digest).hex(),
              "features": feature_settings(manifest)}
    return hashlib.sha256(canonical_json(record)).digest()


def sign_manifest(folder: str | os.PathLike, manifest: dict) -> dict:
    """Set `graph_sha256`, `tokenizer_sha256` and `fingerprint` from the files in `folder`
    and the manifest's feature settings (the exporter calls this last); returns `manifest`."""
    g = graph_fingerprint(folder, manifest["graph_files"])
    t = tokenizer_digest(folder, manifest["tokenizer_file"])
    manifest["graph_sha256"] = g.hex()
    manifest["tokenizer_sha256"] = t.hex()
    manifest["fingerprint"] = head_fingerprint(g, t, manifest).hex()
    return manifest


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
    if m["pooling"] not in POOLINGS:
        raise HeadError(f"{where}: pooling must be one of {', '.join(POOLINGS)}, got "
                        f"{m['pooling']!r} (a head from a newer edge-omd? upgrade)")
    if m["inputs"] != INPUTS_BY_POOLING[m["pooling"]]:
        raise HeadError(f"{where}: pooling {m['pooling']!r} takes the graph inputs "
                        f"{INPUTS_BY_POOLING[m['pooling']]}, the manifest lists {m['inputs']}; "
                        "re-export the head")
    if m["padding_side"] not in ("left", "right"):
        raise HeadError(f"{where}: padding_side must be 'left' or 'right'")
    from edge_omd.config import MAX_DIM
    if not 1 <= m["d"] <= MAX_DIM or m["max_length"] < 2:
        raise HeadError(f"{where}: d must be in [1, {MAX_DIM}] and max_length at least 2 "
                        f"(d={str(m['d'])[:40]}, max_length={str(m['max_length'])[:40]})")
    t = m["template"]
    if t.count(PROMPT_SLOT) != 1 or t.count(RESPONSE_SLOT) != 1 or t.index(PROMPT_SLOT) > t.index(RESPONSE_SLOT):
        raise HeadError(f"{where}: template must contain {PROMPT_SLOT} then {RESPONSE_SLOT} once each")
    if not m["graph_files"] or not all(isinstance(x, str) for x in m["graph_files"]):
        raise HeadError(f"{where}: graph_files must be a non-empty list of file names")
    for name in m["graph_files"] + [m["tokenizer_file"]]:
        if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            raise HeadError(f"{where}: file name {name!r} must be relative to the head folder")
    for key in ("graph_sha256", "fingerprint", "tokenizer_sha256"):
        if key not in m:     # tokenizer_sha256 is optional (the fingerprint covers the file)
            continue
        try:
            if not isinstance(m[key], str) or len(bytes.fromhex(m[key])) != 32:
                raise ValueError
        except ValueError:
            raise HeadError(f"{where}: {key} must be 64 hex characters") from None
    if m["pad_token_id"] < 0:
        raise HeadError(f"{where}: pad_token_id must be >= 0, got {m['pad_token_id']}")
    ss = m.get("static_shape")
    if ss is not None:
        if not (isinstance(ss, list) and len(ss) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in ss)):
            raise HeadError(f"{where}: static_shape must be null or [batch, length]")
        if ss[1] != m["max_length"]:
            raise HeadError(f"{where}: static_shape {ss} does not match max_length "
                            f"{m['max_length']} (a static graph takes rows of exactly max_length "
                            "tokens); re-export the head")
    from edge_omd.head.views import HeadViews
    if m["d"] + HeadViews.from_manifest(m, where).dim > MAX_DIM:
        raise HeadError(f"{where}: d plus the views' dimensions exceeds {MAX_DIM}; re-export "
                        "with fewer wording buckets")
    mp = m.get("max_positions")
    if mp is not None:
        if not isinstance(mp, int) or isinstance(mp, bool) or mp < 2:
            raise HeadError(f"{where}: max_positions must be null or an int >= 2, got {mp!r}")
        if m["max_length"] > mp:
            raise HeadError(f"{where}: max_length {m['max_length']} exceeds the model's "
                            f"{mp} positions; re-export with max_length <= {mp}")
    return m


def load_manifest(folder: str | os.PathLike) -> dict:
    """Read and validate `folder/manifest.json`; `HeadError` says what is missing or corrupt."""
    path = os.path.join(folder, MANIFEST_NAME)
    if os.path.isfile(folder):
        raise HeadError(f"{folder} is a file, not a feature head folder: pass the folder that "
                        f"holds {MANIFEST_NAME}, model.onnx and tokenizer.json (written by "
                        "`edge-omd export CHECKPOINT_DIR OUTPUT_DIR`)")
    if not os.path.isdir(folder):
        raise HeadError(f"feature head folder {folder} does not exist; export one with "
                        "`edge-omd export CHECKPOINT_DIR OUTPUT_DIR`")
    try:
        raw = _read_regular_file(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise HeadError(f"{path} is missing: {folder} is not an exported feature head "
                        "(run `edge-omd export`)") from None
    except OSError as e:
        raise HeadError(f"{path} cannot be read ({e}); re-export the head") from e
    try:
        m = json.loads(raw.decode("utf-8"))
    # ValueError: bad JSON, bad UTF-8, an integer beyond Python's digit limit;
    # RecursionError: arrays or objects nested thousands deep.
    except (ValueError, RecursionError) as e:
        raise HeadError(f"{path} is corrupt ({type(e).__name__}: {str(e)[:200]}); "
                        "re-export the head") from None
    if _depth(m) > MAX_MANIFEST_DEPTH:
        raise HeadError(f"{path} is corrupt (values nested more than {MAX_MANIFEST_DEPTH} deep; "
                        "a manifest nests a few levels); re-export the head")
    return validate_manifest(m, path)


def _depth(obj) -> int:
    """How deep lists and objects nest in a parsed JSON value (iterative: no recursion)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        v, level = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((c, level + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def _read_regular_file(path: str, max_bytes: int) -> bytes:
    """The bytes of `path` if it is a regular file of at most `max_bytes` (OSError otherwise).
    Opened non-blocking and checked with fstat, so a FIFO or a device in its place is refused
    instead of blocking or being read without end."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"not a regular file (mode {stat.filemode(st.st_mode)})")
        if st.st_size > max_bytes:
            raise OSError(f"{st.st_size} bytes, above the {max_bytes} any manifest needs")
        chunks, left = [], max_bytes + 1   # +1: a file that grew since fstat is caught too
        while left > 0:
            b = os.read(fd, left)
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise OSError(f"more than the {max_bytes} bytes any manifest needs")
        return data
    finally:
        os.close(fd)


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
