"""`export_model`: local Hugging Face checkpoint -> feature-head folder.

Folder layout (read by `edge_omd.FeatureHead`):
    manifest.json            architecture, d, pooling, normalisation, dtype, opset, max length,
                             template, source hash, graph and tokenizer hashes, the head
                             fingerprint (SHA-256 over graph + tokenizer + feature settings,
                             see `edge_omd.head.manifest`), parity report
    model.onnx[, _data]      graph: (input_ids, attention_mask[, pool_mask]) -> features
                             (batch, d) float32; pool_mask only for pooling "response_mean"
    tokenizer.json (+ HF tokenizer files)

Steps: load (config, tokenizer, weights) -> template (chat template rendered once, must leave
room within max_length) -> fp32 graph (optimum + the pooling grafted in, or torch.onnx on
export/pooling.py's module: export/exporters.py) -> convert (fp16/int8/qdq) -> write tokenizer +
manifest -> parity check against PyTorch (fails -> ExportError, and the manifest is renamed
manifest.failed.json so the folder cannot be opened by mistake).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

from edge_omd.head import manifest as hm
from edge_omd.errors import ExportError
from edge_omd_export import checkpoint, exporters, onnx_io, parity, variants
from edge_omd_export._progress import Progress
from edge_omd_export.template import build_template

DEFAULT_OPSET = 17
_QUANT_NOTE = {
    "fp32": {"weights": "float32", "activations": "float32"},
    "fp16": {"weights": "float16", "activations": "float16 (float32 graph inputs/outputs)"},
    "int8": {"weights": "int8 per-channel, 7-bit range (MatMul, Gather); outlier MatMul "
                        "input channels in a float32 side product (export/variants.py)",
             "activations": "uint8 dynamic per-tensor (scale computed per call over the batch)"},
    "qdq": {"weights": "uint8 static (QNN config)", "activations": "uint16 static, MinMax calibrated",
            "static_shape": "batch 1 x max_length"},
}


def _max_positions(config: dict, spec) -> int | None:
    n = config.get("max_position_embeddings")
    if n is None:
        return None
    if spec.name in ("roberta", "xlm-roberta"):   # positions start after padding_idx
        return int(n) - int(config.get("pad_token_id", 1)) - 1
    return int(n)


def _pad_id(tok) -> int:
    for v in (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id):
        if v is not None:
            return int(v)
    return 0


def _versions() -> dict:
    import onnxruntime
    import torch
    import transformers
    from edge_omd import __version__
    return {"edge_omd": __version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "onnxruntime": onnxruntime.__version__}


def export_model(checkpoint_dir, output_dir, *, variant: str = "fp32", normalize: bool = True,
                 max_length: int = 256, calibration_texts=None, opset: int = DEFAULT_OPSET,
                 template: str | None = None, progress: bool = True,
                 external_data: bool | None = None,
                 parity_min_cosine: float | None = None,
                 pooling: str | None = None, style: bool | None = None,
                 style_weight: float | None = None, style_texts=None, wording=None,
                 views: str | None = None,
                 exporter: str = exporters.DEFAULT_EXPORTER) -> pathlib.Path:
    """Export `checkpoint_dir` to a feature head in `output_dir`; returns `output_dir`.

    variant: "fp32" | "fp16" | "int8" (dynamic, CPU) | "qdq" (static shapes (1, max_length),
        calibrated on `calibration_texts`, for NPU providers such as QNN).
    normalize: L2-normalise phi inside the graph.
    max_length: token budget of one (prompt, response) text (clipped to the model's positions).
    calibration_texts: for "qdq": list of str (used as responses to an empty prompt) or of
        (prompt, response) pairs.
    template: "...{prompt}...{response}..." to override the chat/plain template.
    external_data: force (True) or forbid (False) ONNX external data; None = only above ~1.8 GB.
    parity_min_cosine: override the min-cosine bound of fp16/int8/qdq.
    pooling: None = the architecture's default (encoders "mean", decoders "last_token");
        "mean" (encoders: every token of prompt + response), "last_token" (decoders) or
        "response_mean" (both: mean over the response span while attention sees the prompt). See export/pooling.py; recorded in the manifest and the fingerprint.
    style: append the style block (edge_omd/head/style.py: 12 answer-form features of the
        response) to the features, standardised on `style_texts` (default: the responses of
        the bundled demo corpus) with block norm `style_weight` (default 1.0); the head's dim
        becomes d + 12.
    wording: append the hashed wording view of the response (edge_omd/head/wording.py): True
        (edge_omd/head/views.py DEFAULT_WORDING) or a dict of its bits, ngrams, transform,
        scale; the head's dim grows by 2^bits.
    views: a preset instead of style/style_weight/wording: "none", or "default" (the views
        rule's choice, docs/VIEWS.md: style at weight 0.5 + wording 256 buckets). Without any
        of these the head appends no view; the `edge-omd export` command passes "default" for
        a normalised head (export/cli.py `cli_default_views`, docs/VIEWS.md).
    exporter: "auto" (optimum where it supports the architecture and variant, else torch),
        "optimum" or "torch" (the exporter before optimum: re-makes today's heads byte for
        byte); see export/exporters.py. Recorded in the manifest's `exporter.path`.
    Raises ExportError (unsupported architecture, missing files, failed conversion or parity).
    """
    if variant not in variants.VARIANTS:
        raise ExportError(f"variant {variant!r} is not one of {', '.join(variants.VARIANTS)}")
    if not isinstance(max_length, int) or max_length < 2:
        raise ExportError(f"max_length must be an int >= 2, got {max_length!r}")
    head_views = _views(views, style, style_weight, style_texts, wording)
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import onnx  # noqa: F401
    except ImportError as e:
        raise ExportError(f"the exporter needs the export extra ({e.name} missing): "
                          "pip install 'edge-omd[export]'") from e
    pairs = _calibration_pairs(calibration_texts, variant)
    ckpt = os.fspath(checkpoint_dir)
    out = pathlib.Path(output_dir)
    prog = Progress(progress)

    with prog.step(f"loading {ckpt}"):
        config, spec = checkpoint.read_config(ckpt)
        spec = spec.with_pooling(pooling)
        tok = checkpoint.load_tokenizer(ckpt)
        weights = checkpoint.weight_files(ckpt)
        model = checkpoint.load_model(ckpt, spec)
        src_hash = checkpoint.source_hash(ckpt)
    path = exporters.resolve(exporter, model, variant)
    limit = _max_positions(config, spec)
    if limit is not None and max_length > limit:
        prog.note(f"max_length {max_length} > the model's {limit} positions: using {limit}")
        max_length = limit
    tmpl, add_special, tmpl_source = build_template(tok, spec.kind, template)
    empty = tmpl.replace(hm.PROMPT_SLOT, "").replace(hm.RESPONSE_SLOT, "")
    n_template = len(tok(empty, add_special_tokens=add_special)["input_ids"])
    if n_template >= max_length:
        raise ExportError(f"the template alone takes {n_template} tokens, leaving no room for text "
                          f"within max_length {max_length}; raise max_length")
    d = int(config.get("hidden_size") or model.config.hidden_size)

    out.mkdir(parents=True, exist_ok=True)
    for stale in (hm.MANIFEST_NAME, "manifest.failed.json"):
        if (out / stale).exists():
            (out / stale).unlink()
    work = tempfile.mkdtemp(prefix=".export-", dir=out)
    from edge_omd_export.pooling import FeatureModule, needs_pool_mask  # imports torch
    inputs = list(onnx_io.INPUTS) + ([onnx_io.POOL_INPUT] if needs_pool_mask(spec.pooling) else [])
    try:
        module = FeatureModule(model, spec.kind, spec.name, normalize,
                               padding_idx=config.get("pad_token_id", 1),
                               pooling=spec.pooling).eval()
        example = _example_inputs(tok, 2, 8, len(inputs))
        fp32_path = os.path.join(work, "fp32.onnx")
        if variant != "qdq":   # the QDQ variant traces its own static-shape graph below
            with prog.step(f"exporting to ONNX with {path} (opset {opset})"):
                if path == "optimum":
                    exporters.export_optimum(model, fp32_path, opset, kind=spec.kind,
                                             model_type=spec.name, pooling=spec.pooling,
                                             normalize=normalize, d=d,
                                             padding_idx=config.get("pad_token_id", 1))
                else:
                    onnx_io.trace(module, fp32_path, example, opset, dynamic=True,
                                  feature_dim=d, input_names=inputs)
        static_shape = None
        label = {"fp32": "saving the fp32 graph", "fp16": "converting to fp16",
                 "int8": "quantising to int8 (dynamic)",
                 "qdq": "calibrating and QDQ-quantising (static shapes)"}[variant]
        with prog.step(label):
            if variant == "fp32":
                files = onnx_io.save_graph(onnx_io.load_graph(fp32_path), str(out),
                                           external=external_data)
            elif variant == "fp16":
                files = variants.to_fp16(fp32_path, str(out), external_data)
            elif variant == "int8":
                calib = variants.encode_pairs(tok, tmpl, max_length, add_special, _pad_id(tok), work,
                                              variants.INT8_CALIBRATION_PAIRS)
                files = variants.to_int8(fp32_path, str(out), work, external_data, calib)
            else:
                static_shape = [1, max_length]
                static_path = os.path.join(work, "static.onnx")
                module.use_mask_value(-1e3)   # static activation scales need a finite mask
                prog.note(f"tracing a static-shape (1, {max_length}) graph")
                onnx_io.trace(module, static_path, _example_inputs(tok, 1, max_length, len(inputs)),
                              opset, dynamic=False, feature_dim=d, input_names=inputs)
                from edge_omd.head.tokenize import TextEncoder, load_tokenizer
                tok.backend_tokenizer.save(os.path.join(work, "tok.json"))
                enc = TextEncoder(load_tokenizer(os.path.join(work, "tok.json")), tmpl,
                                  max_length, add_special, _pad_id(tok), "right")
                ids, mask, pool, _ = enc.encode_batch(pairs, truncate=True, pad_to=max_length,
                                                      pool=True)
                prog.note(f"calibrating on {len(pairs)} texts")
                files = variants.to_qdq(static_path, str(out), work, ids, mask, external_data,
                                        pool if onnx_io.POOL_INPUT in inputs else None)
        tok.save_pretrained(str(out))
        if not (out / "tokenizer.json").is_file():
            tok.backend_tokenizer.save(str(out / "tokenizer.json"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    manifest = {
        "format": hm.FORMAT_NAME, "format_version": hm.FORMAT_VERSION,
        "architecture": spec.name, "model_type": config.get("model_type"), "kind": spec.kind,
        "d": d, "pooling": spec.pooling, "normalize": bool(normalize),
        "dtype": variant, "variant": variant, "opset": int(opset), "max_length": int(max_length),
        "static_shape": static_shape,
        "template": tmpl, "template_source": tmpl_source, "add_special_tokens": add_special,
        "pad_token_id": _pad_id(tok), "padding_side": "right",
        "graph_files": files, "tokenizer_file": "tokenizer.json",
        "max_positions": limit,
        "inputs": inputs, "output": onnx_io.OUTPUT,
        "source_checkpoint": os.path.basename(os.path.abspath(ckpt)),
        "source_sha256": src_hash, "source_weight_files": [os.path.basename(w) for w in weights],
        "quantization": _QUANT_NOTE[variant] | ({"calibration_texts": len(pairs)} if pairs else {}),
        "exporter": _versions() | exporters.versions(path), "parity": None,
    }
    manifest.update(head_views.to_manifest())
    # graph_sha256, tokenizer_sha256 and the fingerprint, computed over the final files and
    # feature settings (the parity report and versions below do not enter it).
    hm.sign_manifest(out, manifest)
    hm.write_manifest(out, manifest)
    with prog.step("checking parity against PyTorch"):
        try:
            report = parity.check(str(out), model, spec, tok, variant, normalize,
                                  min_cosine=parity_min_cosine)
        except Exception as e:
            os.replace(out / hm.MANIFEST_NAME, out / "manifest.failed.json")
            if isinstance(e, ExportError):
                raise
            raise ExportError(f"the parity check could not run on the exported head "
                              f"({type(e).__name__}: {e})") from e
    manifest["parity"] = report
    hm.write_manifest(out, manifest)
    prog.note(f"parity: max abs err {report['max_abs_err']:.3g}, cosine min "
              f"{report['cosine_min']:.5f}, ranking Spearman {report['ranking_spearman_mean']:.4f}")
    views = f" + {head_views.dim} view columns" if head_views else ""
    prog.note(f"wrote {out} (d={d}{views}, {variant}, fingerprint {manifest['fingerprint'][:16]}...)")
    return out


def _example_inputs(tok, batch: int, length: int, n_inputs: int = 2):
    """Tracing inputs: real-looking ids, row 0 full, other rows right-padded; with a third
    input, a pool mask over the second half of each row's real tokens."""
    import torch
    lo = 0 if tok.vocab_size is None else min(5, tok.vocab_size - 1)
    hi = max(lo + 1, min(tok.vocab_size or 100, 1000))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(lo, hi, (batch, length), generator=g, dtype=torch.long)
    mask = torch.ones((batch, length), dtype=torch.long)
    for i in range(1, batch):
        mask[i, length - i * max(1, length // 4):] = 0
    if n_inputs == 2:
        return ids, mask
    pool = mask.clone()
    pool[:, :length // 2] = 0
    return ids, mask, pool


def _views(views, style, style_weight, style_texts, wording):
    """The HeadViews to record (edge_omd/head/views.py), or ExportError."""
    from edge_omd.errors import HeadError
    from edge_omd.head.views import HeadViews
    try:
        return HeadViews.from_options(views=views, style=style, style_weight=style_weight,
                                      style_texts=style_texts, wording=wording)
    except (HeadError, TypeError, ValueError) as e:
        raise ExportError(f"the head's views cannot be built ({e}); see docs/VIEWS.md") from e


def _calibration_pairs(texts, variant: str) -> list[tuple[str, str]]:
    if variant != "qdq":
        return []
    if not texts:
        raise ExportError("variant 'qdq' needs calibration_texts: a list of representative "
                          "texts (str) or (prompt, response) pairs, ideally 50-500")
    pairs = []
    for k, t in enumerate(texts):
        if isinstance(t, str):
            pairs.append(("", t))
        elif isinstance(t, (tuple, list)) and len(t) == 2 and all(isinstance(x, str) for x in t):
            pairs.append((t[0], t[1]))
        else:
            raise ExportError(f"calibration_texts[{k}] must be a str or a (prompt, response) pair")
    return pairs
