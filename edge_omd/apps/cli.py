"""`edge-omd` command line: `demo`, `export`, `prior`, `population`, `bench`.

Each subcommand lives in its own module and is imported only when called, so `edge-omd --help`
imports nothing heavy and the runtime never imports torch/transformers (only `export` does).
"""
import argparse
import importlib
import sys

#: name -> (module with main(argv), one-line description)
COMMANDS = {
    "demo": ("edge_omd.apps.demo",
             "learn a simulated (or, with --interactive, your own) taste on the embedded corpus "
             "with the real all-MiniLM-L6-v2 head; prints accuracy, latency, state size"),
    "export": ("edge_omd_export.cli",
               "export a Hugging Face checkpoint (Llama-3, Qwen2/3, BERT family) to an ONNX "
               "feature head folder (needs the export extra: torch, transformers, onnx)"),
    "prior": ("edge_omd.apps.prior",
              "fit a population prior (where new users start) on preference pairs embedded by a "
              "head: edge-omd prior PAIRS OUT --head HEAD"),
    "population": ("edge_omd.apps.population",
                   "fit a population pack (where new users start) on users' feedback: "
                   "edge-omd population fit FEEDBACK OUT --head HEAD"),
    "bench": ("edge_omd_bench.cli",
              "race edge-omd against the MLE refit, River, scikit-learn and Vowpal Wabbit; "
              "writes bench/results/REPORT.md (needs the bench extra)"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-omd",
        description="On-device personalization: one-pass online reward modeling.",
        epilog="Run `edge-omd COMMAND --help` for a command's options.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, desc) in COMMANDS.items():
        # add_help=False: `edge-omd demo --help` is answered by the demo's own parser
        sub.add_parser(name, help=desc, description=desc, add_help=False)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv:
        parser.print_help()
        return 2
    if argv[0] not in COMMANDS:
        parser.parse_args(argv[:1])  # -h/--help prints the help and exits 0; unknown: exit 2
        return 2
    module, _ = COMMANDS[argv[0]]
    return int(importlib.import_module(module).main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
