"""`edge-omd` command line: `demo`, `export`, `prior`, `population`, `bench` and the operator's
commands on a state store (`users`, `show`, `check`, `export-user`, `import-user`, `delete`,
`rank`).

Each subcommand lives in its own module and is imported only when called, so `edge-omd --help`
imports nothing heavy and the runtime never imports torch/transformers (only `export` does).

Every error a command reports is ONE line on stderr, and the exit status is not 0:

    edge-omd <cmd>: <ErrorClass>: <what>          e.g.
    edge-omd prior: InvalidInputError: pairs.jsonl:12: not JSON (Expecting value: ...)

where <what> names the file and line when there is one. Usage errors are `UsageError` (exit
status 2), interrupts exit with 130, everything else with 1. An exception that is not one of the
SDK's (a bug) is reported the same way; EDGE_OMD_TRACEBACK=1 shows its traceback instead.
"""
import argparse
import importlib
import os
import sys
import warnings

#: name -> ("module" with main(argv), or "module:function" taking argv; one-line description)
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
    "users": ("edge_omd.apps.admin:users",
              "list the users of a state store: edge-omd users STORE"),
    "show": ("edge_omd.apps.admin:show",
             "one stored user: solver, dtype, dim, bytes, updates, head and pack fingerprints, "
             "last commit: edge-omd show STORE USER"),
    "check": ("edge_omd.apps.admin:check",
              "check every user of a store (envelope, loader, journal replay, head binding); "
              "exit status 1 on damage: edge-omd check STORE [--head HEAD]"),
    "export-user": ("edge_omd.apps.admin:export_user",
                    "write one user's state to a file (Personalizer.export_state): "
                    "edge-omd export-user STORE USER FILE"),
    "import-user": ("edge_omd.apps.admin:import_user",
                    "read a user's state from an export-user file into a store: "
                    "edge-omd import-user STORE USER FILE [--replace]"),
    "delete": ("edge_omd.apps.admin:delete",
               "erase one user (forget me): edge-omd delete STORE USER"),
    "rank": ("edge_omd.apps.admin:rank",
             "rank answers for a stored user: edge-omd rank STORE USER --head HEAD PROMPT "
             "ANSWER..."),
}


def _usage_error(parser, message):
    """argparse's usage error on one line, like every other error of the CLI (`run` puts it in
    place for every parser a command builds, the exporter's and the bench's included)."""
    parser.exit(2, f"{parser.prog}: UsageError: {' '.join(message.split())} "
                   f"(see {parser.prog} --help)\n")


def one_line(exc: BaseException) -> str:
    """`ErrorClass: what` of an exception, on one line (an OSError as `file: reason`)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        what = f"{exc.filename}: {exc.strerror}"
    else:
        what = str(exc) or "(no message)"
    return f"{type(exc).__name__}: {' '.join(what.split())}"


def run(cmd: str, fn) -> int:
    """Call fn() (a subcommand) and return its exit status; any error it raises is reported as
    the one line of the module docstring."""
    prog = f"edge-omd {cmd}"

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: {category.__name__}: {' '.join(str(message).split())}",
              file=sys.stderr)

    usage_error = argparse.ArgumentParser.error
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        argparse.ArgumentParser.error = _usage_error
        try:
            return int(fn() or 0)
        except SystemExit as e:          # argparse (--help: 0; usage: 2) or a SystemExit(str)
            if isinstance(e.code, str):
                print(f"{prog}: Error: {' '.join(e.code.split())}", file=sys.stderr)
                return 1
            return 0 if e.code is None else int(e.code)
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        except BaseException as e:       # BaseException: a Rust panic (pyo3) is not an Exception
            if os.environ.get("EDGE_OMD_TRACEBACK") == "1":
                raise
            from edge_omd.errors import EdgeOMDError
            ours = isinstance(e, (EdgeOMDError, OSError))
            print(f"{prog}: {one_line(e)}" + ("" if ours else
                  " (unexpected: please report it; EDGE_OMD_TRACEBACK=1 shows where)"),
                  file=sys.stderr)
            return 1
        finally:
            argparse.ArgumentParser.error = usage_error


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
        if argv[0] in ("-h", "--help"):
            parser.parse_args(argv[:1])   # prints the help and exits 0
        print(f"edge-omd: UsageError: unknown command {argv[0]!r}; one of "
              f"{', '.join(COMMANDS)} (see edge-omd --help)", file=sys.stderr)
        return 2
    module, _, function = COMMANDS[argv[0]][0].partition(":")
    return run(argv[0], lambda: getattr(importlib.import_module(module),
                                        function or "main")(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
