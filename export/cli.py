"""`edge-omd export CHECKPOINT_DIR OUTPUT_DIR [options]`."""
from __future__ import annotations

import argparse
import json
import sys

from edge_omd.errors import EdgeOMDError, InvalidInputError


def _read_calibration(path: str) -> list:
    """One text per line, or JSON lines with "prompt"/"response" (or "text") fields;
    InvalidInputError naming the file and line for anything else."""
    out = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\n")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(f"{path}:{n}: not UTF-8 (column {exc.start + 1})") from None
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError) as exc:
                    raise InvalidInputError(f"{path}:{n}: not JSON ({type(exc).__name__}: "
                                            f"{str(exc)[:200]})") from None
                if isinstance(obj, dict) and isinstance(obj.get("response"), str) \
                        and isinstance(obj.get("prompt", ""), str):
                    out.append((obj.get("prompt", ""), obj["response"]))
                elif isinstance(obj, dict) and isinstance(obj.get("text"), str):
                    out.append(obj["text"])
                else:
                    raise InvalidInputError(f"{path}:{n}: a JSON line needs a string 'text', or "
                                            "a string 'response' (and 'prompt')")
            else:
                out.append(line)
    return out


def cli_default_views(*, normalize: bool) -> str:
    """The views preset `edge-omd export` applies when no view option is given: the views rule's
    choice ("default") for a normalised head, nothing for an unnormalised one, whose embedding's
    norm (the checkpoint's) the views' scales were not set against (docs/VIEWS.md; the rule and
    its stand-in embeddings: docs/BENCHMARKS.md "Views (issue 20)", rule A). `export_model`
    itself appends only the views its arguments ask for."""
    return "default" if normalize else "none"


def main(argv: list[str]) -> int:
    from edge_omd_export.exporters import DEFAULT_EXPORTER, EXPORTERS
    from edge_omd_export.variants import VARIANTS
    ap = argparse.ArgumentParser(
        prog="edge-omd export",
        description="Export a local Hugging Face checkpoint (llama, qwen2, qwen3, BERT-family) "
                    "to an ONNX feature head folder for edge_omd.FeatureHead.")
    ap.add_argument("checkpoint_dir")
    ap.add_argument("output_dir")
    ap.add_argument("--variant", choices=VARIANTS, default="fp32")
    ap.add_argument("--no-normalize", action="store_true", help="do not L2-normalise features")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--calibration-file", help="texts for --variant qdq: one per line, or JSON "
                    "lines with prompt/response or text")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--template", help="'...{prompt}...{response}...' (default: chat template "
                    "of instruct checkpoints, else '{prompt}\\n{response}')")
    ap.add_argument("--external-data", action="store_true", help="force ONNX external data")
    ap.add_argument("--pooling", choices=("mean", "last_token", "response_mean"), default=None,
                    help="default: mean for encoders, last_token for decoders")
    ap.add_argument("--views", choices=("none", "default"), default=None,
                    help="views appended to the embedding (docs/VIEWS.md): default = the views "
                    "rule's choice (style block at weight 0.5 + wording view, 256 buckets), "
                    "what a normalised head gets without any view option; none appends nothing "
                    "(the head before views; also the default with --no-normalize)")
    ap.add_argument("--style", action="store_true", default=None,
                    help="append the style block (12 answer-form features, edge_omd/head/style.py)")
    ap.add_argument("--style-weight", type=float, default=None,
                    help="the style block's norm next to the unit-norm embedding (default 1.0)")
    ap.add_argument("--wording", action="store_true", default=None,
                    help="append the wording view (hashed words and punctuation of the response, "
                    "edge_omd/head/wording.py); the --wording-* options change its parameters")
    ap.add_argument("--wording-bits", type=int, help="2^bits buckets (default 8)")
    ap.add_argument("--wording-ngrams", type=int, choices=(1, 2), help="1: words; 2 (default): "
                    "words and pairs of words")
    ap.add_argument("--wording-transform", choices=("log1p", "binary", "raw"),
                    help="count transform (default log1p)")
    ap.add_argument("--wording-scale", type=float, help="the view's norm (default 0.5)")
    ap.add_argument("--exporter", choices=EXPORTERS, default=DEFAULT_EXPORTER,
                    help="auto (default): optimum where it supports the model and variant, else "
                    "torch; torch: the exporter before optimum (re-makes earlier heads, same "
                    "fingerprint; export/exporters.py)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    wording = {k: v for k in ("bits", "ngrams", "transform", "scale")
               if (v := getattr(args, f"wording_{k}")) is not None}
    if wording and not args.wording:
        print("edge-omd export: UsageError: the --wording-* options need --wording", file=sys.stderr)
        return 2
    views = args.views
    if views is None and args.style is None and args.style_weight is None and args.wording is None:
        views = cli_default_views(normalize=not args.no_normalize)
    try:
        from edge_omd_export.api import export_model
        calib = _read_calibration(args.calibration_file) if args.calibration_file else None
        out = export_model(args.checkpoint_dir, args.output_dir, variant=args.variant,
                           normalize=not args.no_normalize, max_length=args.max_length,
                           calibration_texts=calib, opset=args.opset, template=args.template,
                           progress=not args.quiet, pooling=args.pooling, style=args.style,
                           style_weight=args.style_weight,
                           wording=(wording or True) if args.wording else None, views=views,
                           exporter=args.exporter,
                           external_data=True if args.external_data else None)
    except (EdgeOMDError, OSError, ValueError) as e:
        print(f"edge-omd export: {type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(out)
    return 0
