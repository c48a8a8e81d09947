"""`FeatureHead`: phi(x, a) from an exported ONNX feature head, without torch.

    >>> head = FeatureHead.open("heads/minilm")                      # doctest: +SKIP
    >>> phi = head.features("How do I boil an egg?", ["Boil it.", "Fry it."])   # (2, head.dim)
    >>> head.check(reward_model)      # refuses a state learned on another head

phi(x, a) is whatever the exporter put inside the graph (see the manifest's "pooling"): the
last-layer hidden state at the last non-padding token ("last_token", decoders' default), the
masked mean over every token ("mean", encoders' default) or over the response span while
attention sees the prompt ("response_mean"; the graph's third input pool_mask marks the span,
edge_omd/head/tokenize.py), optionally L2-normalised, followed by the head's views of the
response when its manifest records them (answer form, wording: edge_omd/head/views.py,
docs/VIEWS.md). The runner only tokenizes (`tokenizers`), pads and runs the graph
(`onnxruntime`), so Python, Android and every execution provider get the same vector.

`head.fingerprint` (32 bytes) identifies the whole feature map: SHA-256 over the graph file
hashes, the tokenizer.json hash and a canonical JSON of the manifest's feature settings
(template, max_length, special tokens, pad id, pooling, normalisation, d, dtype/variant,
static shape, input/output names); the exact definition is in `edge_omd.head.manifest`.
`open` recomputes it and refuses a head whose files or settings no longer match the manifest,
and checks the manifest against the tokenizer (pad id in the vocabulary) and the graph (input
and output names, output dimension d, static input shape).

Dependencies: numpy + stdlib at import time; onnxruntime and tokenizers are imported in `open`
so that `import edge_omd` works without the `head` extra.
"""
from __future__ import annotations

import hmac
import logging
import os
import warnings
from typing import Sequence

import numpy as np

from edge_omd.head.external import check_external_data
from edge_omd.head.manifest import (graph_fingerprint, head_fingerprint, load_manifest,
                                    tokenizer_digest)
from edge_omd.head.tokenize import TextEncoder, load_tokenizer
from edge_omd.errors import ConfigError, HeadError, InvalidInputError, TruncationWarning
from edge_omd import _checks
from edge_omd.head.binding import bind

#: Execution providers in order of preference (documented in the README): the first one that
#: is compiled into the installed onnxruntime AND usable on this machine (`_usable`) runs the
#: graph; CPU is always last and always usable.
PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "QNNExecutionProvider",
    "CoreMLExecutionProvider",
    "XnnpackExecutionProvider",
    "CPUExecutionProvider",
)
_log = logging.getLogger(__name__)


def _provider_entry(name: str):
    # QNN needs its backend library named; HTP is the NPU backend the QDQ variant targets.
    if name == "QNNExecutionProvider":
        return (name, {"backend_path": _QNN_BACKEND})
    return name


_QNN_BACKEND = "QnnHtp.dll" if os.name == "nt" else "libQnnHtp.so"


def _dlopen(path: str) -> str | None:
    """None if the shared library (and everything it links) loads, else why not. ctypes fails
    quietly in Python, where onnxruntime would print red C++ errors to fd 2 and fall back."""
    import ctypes
    try:
        ctypes.CDLL(path, mode=getattr(os, "RTLD_LAZY", 0) | getattr(os, "RTLD_LOCAL", 0))
        return None
    except OSError as e:
        return str(e)


def _cuda_devices() -> int:
    """Number of CUDA devices the driver reports (0 without a driver or a GPU)."""
    import ctypes
    try:
        cuda = ctypes.CDLL("nvcuda.dll" if os.name == "nt" else "libcuda.so.1")
        n = ctypes.c_int(0)
        if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(n)) != 0:
            return 0
        return n.value
    except (OSError, AttributeError):
        return 0


def _provider_library(ort, short: str) -> str:
    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    name = f"onnxruntime_providers_{short}.dll" if os.name == "nt" else f"libonnxruntime_providers_{short}.so"
    return os.path.join(capi, name)


def _unusable(ort, name: str) -> str | None:
    """Why provider `name` (compiled into this onnxruntime) cannot run here, or None."""
    if name in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
        if _cuda_devices() == 0:
            return "no CUDA driver or device"
        lib = _provider_library(ort, "tensorrt" if name.startswith("Tensorrt") else "cuda")
        if os.path.exists(lib):
            # the provider bridge needs its shared helper loaded first, as onnxruntime does
            _dlopen(_provider_library(ort, "shared"))
            return _dlopen(lib)
        return None
    if name == "QNNExecutionProvider":
        return _dlopen(_QNN_BACKEND)
    return None


def choose_providers(wanted: Sequence[str]) -> list[str]:
    """`wanted`, in order, less the providers this onnxruntime lacks or this machine cannot run
    (missing driver, device or libraries), CPU appended last. Prints nothing."""
    import onnxruntime as ort
    available = set(ort.get_available_providers())
    chain = []
    for p in wanted:
        if p == "CPUExecutionProvider" or p not in available or p in chain:
            continue
        why = _unusable(ort, p)
        if why is None:
            chain.append(p)
        else:
            _log.info("execution provider %s skipped: %s", p, why)
    return chain + ["CPUExecutionProvider"]


def _make_session(graph_path: str, wanted: Sequence[str]):
    """Create an InferenceSession on the first usable preferred providers, falling back to CPU.

    Providers that cannot run here are dropped BEFORE onnxruntime tries them (`choose_providers`),
    so a CPU-only machine gets no error lines; one that still raises is dropped and the next tried.
    """
    import onnxruntime as ort

    chain = choose_providers(wanted)
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only: a missing GPU is expected on most devices
    # Idle intra-op threads sleep instead of spinning: on a busy 2-core machine the spinning
    # pool took cores from the running one (measured: bench/head.py, docs/BENCHMARKS.md).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    last_err = None
    while chain:
        try:
            return ort.InferenceSession(graph_path, sess_options=so,
                                        providers=[_provider_entry(p) for p in chain])
        except Exception as e:  # onnxruntime raises its own pybind exception types
            last_err = e
            if chain == ["CPUExecutionProvider"]:
                break
            chain = chain[1:]
    raise HeadError(f"onnxruntime cannot load the graph {graph_path} ({last_err}); the file is "
                    "corrupt or was exported for a newer onnxruntime; re-export the head")


def _is_token(tok, i: int) -> bool:
    """Whether id `i` belongs to the tokenizer (added tokens included, holes allowed)."""
    if 0 <= i < tok.get_vocab_size(with_added_tokens=True):
        return True
    if not 0 <= i < 2 ** 32:
        return False
    try:
        return tok.id_to_token(i) is not None
    except (OverflowError, ValueError, TypeError):
        return False


def _static_dim(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _check_graph_io(folder: str, session, m: dict) -> None:
    """The manifest's inputs, output, d and static shape against the loaded graph."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    names = [i.name for i in inputs]
    if names != m["inputs"] or not outputs or outputs[0].name != m["output"]:
        raise HeadError(f"feature head {folder}: graph inputs {names} / output "
                        f"{outputs[0].name if outputs else None!r} do not match the manifest")
    shape = list(outputs[0].shape or [])     # [] when the graph carries no shape information
    if shape and len(shape) != 2:
        raise HeadError(f"feature head {folder}: the graph output {m['output']!r} has shape "
                        f"{shape}, expected (batch, d); re-export the head")
    if shape and _static_dim(shape[-1]) is not None and shape[-1] != m["d"]:
        raise HeadError(f"feature head {folder}: the graph outputs {shape[-1]} features but the "
                        f"manifest says d={m['d']}; re-export the head")
    static = m.get("static_shape")
    for inp in inputs:
        dims = list(inp.shape or [])
        fixed = [_static_dim(v) for v in dims]
        if static:
            if len(dims) != 2 or any(f is not None and f != s for f, s in zip(fixed, static)):
                raise HeadError(f"feature head {folder}: graph input {inp.name!r} has shape "
                                f"{dims} but the manifest's static_shape is {static}; "
                                "re-export the head")
        elif len(dims) == 2 and fixed[1] is not None:
            raise HeadError(f"feature head {folder}: graph input {inp.name!r} has the static "
                            f"shape {dims} but the manifest has no static_shape; re-export "
                            "the head")


class FeatureHead:
    """An exported feature head: tokenizer + ONNX graph + manifest. Build with `open`."""

    def __init__(self, folder: str, manifest: dict, session, encoder: TextEncoder,
                 fingerprint: bytes, batch_size: int):
        from edge_omd.head.views import HeadViews
        self._views = HeadViews.from_manifest(manifest, folder)
        self._folder = folder
        self._manifest = manifest
        self._session = session
        self._encoder = encoder
        self._fingerprint = fingerprint
        self._batch_size = batch_size
        self.last_truncated = 0  # how many pairs of the last call were truncated

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(cls, folder: str | os.PathLike, providers: Sequence[str] | None = None, *,
             padding_side: str | None = None, batch_size: int = 16,
             verify: bool = True) -> "FeatureHead":
        """Load `folder` (written by `edge-omd export`).

        providers: preference list of onnxruntime execution provider names; None means
            `PROVIDER_PREFERENCE`. Unavailable ones are skipped; CPU is the fallback.
            `head.provider` says which one actually runs.
        padding_side: override the manifest's side ("left"/"right"); the features do not change.
        batch_size: rows per graph call in `features_batch` (memory vs speed).
        verify: recompute the graph's SHA-256 and compare it with the manifest (detects a
            corrupt or swapped graph; costs one read of the graph files). With verify=False
            the manifest's graph_sha256 is trusted; the tokenizer hash and the fingerprint
            (manifest feature settings) are checked either way.

        Raises HeadError when a file is missing or corrupt, when the fingerprint does not
        match the graph + tokenizer + feature settings, when the graph reads an external-data
        file that graph_files does not list (edge_omd/head/external.py), or when the manifest
        does not fit the tokenizer (pad_token_id outside the vocabulary) or the graph (names,
        dimension d, static shape); ConfigError for a malformed `providers` or `batch_size`.
        """
        folder = os.fspath(folder)
        m = load_manifest(folder)
        if providers is not None and (isinstance(providers, str)
                                      or not all(isinstance(p, str) for p in providers)):
            raise ConfigError("providers must be a list of provider names such as "
                                    "['CUDAExecutionProvider', 'CPUExecutionProvider']")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        for name in m["graph_files"]:
            if not os.path.isfile(os.path.join(folder, name)):
                raise HeadError(f"feature head {folder}: graph file {name!r} is missing; "
                                "re-export the head")
        graph_digest = bytes.fromhex(m["graph_sha256"])
        if verify and not hmac.compare_digest(graph_fingerprint(folder, m["graph_files"]),
                                              graph_digest):
            raise HeadError(f"feature head {folder}: the graph does not match the manifest's "
                            "graph_sha256 (corrupt or replaced file); re-export the head")
        check_external_data(folder, m["graph_files"])
        # the tokenizer's bytes are checked before the tokenizer library parses them
        tok_path = os.path.join(folder, m["tokenizer_file"])
        if not os.path.isfile(tok_path):
            raise HeadError(f"tokenizer file {tok_path} is missing; re-export the head")
        tok_digest = tokenizer_digest(folder, m["tokenizer_file"])
        if "tokenizer_sha256" in m and not hmac.compare_digest(
                tok_digest, bytes.fromhex(m["tokenizer_sha256"])):
            raise HeadError(f"feature head {folder}: {m['tokenizer_file']} does not match the "
                            f"manifest's tokenizer_sha256: tokenizer file {m['tokenizer_file']} "
                            "is corrupt or was edited (other token ids, other features); "
                            "re-export the head")
        fp = head_fingerprint(graph_digest, tok_digest, m)
        if not hmac.compare_digest(fp, bytes.fromhex(m["fingerprint"])):
            raise HeadError(f"feature head {folder}: the manifest's fingerprint does not match "
                            "its graph, tokenizer and feature settings (template, max_length, "
                            "pooling, ... edited after export, or files from another export); "
                            "re-export the head instead of editing it")
        tok = load_tokenizer(tok_path)
        if not _is_token(tok, m["pad_token_id"]):
            raise HeadError(f"feature head {folder}: pad_token_id {m['pad_token_id']} is not a "
                            "token of the tokenizer (vocabulary size "
                            f"{tok.get_vocab_size(with_added_tokens=True)}); re-export the head")
        encoder = TextEncoder(tok, m["template"], m["max_length"], m["add_special_tokens"],
                              m["pad_token_id"], padding_side or m["padding_side"])
        try:
            import onnxruntime  # noqa: F401
        except ImportError as e:  # pragma: no cover - depends on the install
            raise HeadError("the feature head needs onnxruntime: pip install 'edge-omd[head]'") from e
        session = _make_session(os.path.join(folder, m["graph_files"][0]),
                                list(providers) if providers is not None else PROVIDER_PREFERENCE)
        _check_graph_io(folder, session, m)
        return cls(folder, m, session, encoder, fp, batch_size)

    # ------------------------------------------------------------------ read-only facts
    @property
    def dim(self) -> int:
        """Feature dimension: the graph's d, plus the columns of the head's views (style block,
        wording view: edge_omd/head/views.py)."""
        return int(self._manifest["d"]) + self._views.dim

    @property
    def fingerprint(self) -> bytes:
        """32-byte head fingerprint: SHA-256 over graph + tokenizer + feature settings (see
        `edge_omd.head.manifest`), the identity a reward-model state binds to."""
        return self._fingerprint

    @property
    def provider(self) -> str:
        """The execution provider that actually runs the graph (first one onnxruntime kept)."""
        return self._session.get_providers()[0]

    @property
    def manifest(self) -> dict:
        """A copy of the manifest (architecture, pooling, dtype, template, parity, ...)."""
        import copy
        return copy.deepcopy(self._manifest)

    @property
    def max_length(self) -> int:
        return self._encoder.max_length

    def __repr__(self) -> str:
        m = self._manifest
        return (f"FeatureHead({self._folder!r}, {m['architecture']}, d={self.dim}, "
                f"dtype={m['dtype']}, provider={self.provider})")

    # ------------------------------------------------------------------ features
    def features(self, prompt: str, responses: Sequence[str], *, truncate: bool = True) -> np.ndarray:
        """phi(prompt, a) for each response a: float32 array (len(responses), d)."""
        _checks.string("prompt", prompt)
        responses = _checks.responses(responses, check=_checks.string)
        return self.features_batch([(prompt, r) for r in responses], truncate=truncate)

    def features_batch(self, items: Sequence[tuple[str, str]], *, truncate: bool = True) -> np.ndarray:
        """phi for each (prompt, response) pair: float32 array (len(items), d).

        Over-long pairs are truncated keeping the response end (`truncate=True`, the count is in
        `self.last_truncated`) or refused with `InvalidInputError` (`truncate=False`).
        """
        items = list(items)
        if not items:
            raise InvalidInputError("items is empty; pass at least one (prompt, response) pair")
        for k, it in enumerate(items):
            if (not isinstance(it, (tuple, list)) or len(it) != 2
                    or not isinstance(it[0], str) or not isinstance(it[1], str)):
                raise InvalidInputError(f"items[{k}] must be a (prompt: str, response: str) pair")
        static = self._manifest.get("static_shape")
        if static:
            bs, pad_to = static
        else:
            bs, pad_to = self._batch_size, None
        # Rows of similar length share a call, so little compute goes to padding.
        lengths = [len(p) + len(r) for p, r in items]
        order = np.argsort(lengths, kind="stable")
        d = int(self._manifest["d"])
        out = np.empty((len(items), d), dtype=np.float32)
        self.last_truncated = 0
        for s in range(0, len(items), bs):
            idx = order[s:s + bs]
            ids, mask, pool, n_trunc = self._encoder.encode_batch(
                [items[i] for i in idx], truncate, pad_to, pool=True)
            self.last_truncated += n_trunc
            feeds = {"input_ids": ids, "attention_mask": mask, "pool_mask": pool}
            if static and len(idx) < bs:   # static graphs take exactly `bs` rows
                feeds = {k: np.concatenate([v, np.repeat(v[-1:], bs - len(idx), 0)])
                         for k, v in feeds.items()}
            feats = self._run(feeds)
            out[idx] = feats[:len(idx)].astype(np.float32, copy=False)
        if self.last_truncated:
            warnings.warn(TruncationWarning(
                f"{self.last_truncated} of {len(items)} (prompt, response) pairs were longer than "
                f"max_length={self.max_length} tokens and were truncated (prompt start first); "
                "pass truncate=False to refuse them instead"), stacklevel=2)
        if not np.all(np.isfinite(out)):
            raise HeadError("the graph returned non-finite features (fp16 overflow or a corrupt "
                            "graph); use the fp32 variant of this head")
        if self._views:   # answer form and wording of the response (edge_omd/head/views.py)
            out = self._views.append(out, [r for _, r in items])
        return out

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """One graph call on the manifest's inputs (input_ids, attention_mask and, for the
        pooling "response_mean", pool_mask); runtime failures and wrong output shapes become
        HeadError."""
        m = self._manifest
        ids = feeds["input_ids"]
        try:
            (feats,) = self._session.run([m["output"]], {k: feeds[k] for k in m["inputs"]})
        except Exception as e:  # onnxruntime raises its own pybind exception types
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise HeadError(
                f"feature head {self._folder}: the graph failed on input of shape "
                f"{tuple(ids.shape)} ({type(e).__name__}: {msg[:300]}); the manifest does not fit "
                f"the graph (max_length {self.max_length} beyond the model's positions, "
                f"pad_token_id {self._encoder.pad_token_id}, static_shape "
                f"{m.get('static_shape')}) or the graph is corrupt; re-export the head") from e
        feats = np.asarray(feats)
        if feats.ndim != 2 or feats.shape != (ids.shape[0], m["d"]):
            raise HeadError(f"feature head {self._folder}: the graph returned features of shape "
                            f"{feats.shape}, expected ({ids.shape[0]}, {m['d']}) (manifest d); "
                            "re-export the head")
        return feats

    # ------------------------------------------------------------------ binding
    def check(self, model) -> None:
        """Refuse a reward-model state learned on another head; bind an unbound one.

        `model` needs attributes `dim` (int) and `head_fingerprint` (32 bytes or None) and a
        method `bind_head(fingerprint)`. Raises `HeadMismatchError` when the dims differ or
        the model is bound to another fingerprint (the one check: edge_omd/head/binding.py).
        """
        bind(model, self.fingerprint, self.dim)
